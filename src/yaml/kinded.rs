//! Mappings whose struct depends on their `kind`: the common fields read
//! as they come, the kind's own fields leniently, and [`Lenient`] for
//! structs that are not a kind's.

use super::*;

/// The fields every mapping of a family (jobs, checks) has besides its
/// kind's own, read as they come.
pub trait Common<'de>: Default {
    /// For "did you mean" and the list in errors.
    const FIELDS: &'static [&'static str];
    /// Reads the value of `key` if it is a common field.
    fn take<M: MapAccess<'de>>(&mut self, key: &str, map: &mut M) -> Result<bool, M::Error>;
}

/// A mapping read by its kind: the kind, the common fields, and the kind's
/// own struct (`None` when the kind was missing or unknown; that is already
/// reported).
#[derive(Debug)]
pub struct Kinded<C, S> {
    pub kind: Text,
    /// Where the mapping starts.
    pub at: Pos,
    pub common: C,
    pub spec: Option<S>,
}

/// Reads a mapping of a kinded family: `what` names it in messages ("job",
/// "check"; with `label_kind`, "http check"), `kinds` lists the registered
/// kinds, and `parse` deserializes the kind's own struct from the
/// deserializer it is given.
pub fn visit_kinded<'de, M, C, S, F>(
    mut map: M,
    what: &str,
    kinds: &[&'static str],
    label_kind: bool,
    parse: F,
) -> Result<Kinded<C, S>, M::Error>
where
    M: MapAccess<'de>,
    C: Common<'de>,
    F: for<'a> FnOnce(&str, KindDeserializer<'a, 'de, M, C>) -> Result<S, M::Error>,
{
    let mut common = C::default();
    let Some(first) = map.next_key::<Spanned<String>>()? else {
        return Err(de::Error::custom(format!(
            "an empty mapping: a {what} needs `kind` (one of: {})",
            kinds.join(", ")
        )));
    };
    let first_at = Pos::of(&first.defined);
    let found = kind_at(first_at);
    let Some(found) = found else {
        report(
            first_at,
            format!(
                "{what}: missing field `kind` (one of: {})",
                kinds.join(", ")
            ),
        );
        map.next_value::<IgnoredAny>()?;
        drain(&mut map)?;
        return Ok(Kinded {
            kind: Text::default(),
            at: first_at,
            common,
            spec: None,
        });
    };
    let kind = Text {
        value: found.kind.clone(),
        at: found.at,
        ..Default::default()
    };
    if !kinds.contains(&found.kind.as_str()) {
        let hint = did_you_mean(&found.kind, kinds)
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        let noun = if label_kind {
            format!("{what} kind")
        } else {
            "kind".to_string()
        };
        report(
            found.at,
            format!(
                "unknown {noun} `{}`{hint}; one of: {}",
                found.kind,
                kinds.join(", ")
            ),
        );
        map.next_value::<IgnoredAny>()?;
        drain(&mut map)?;
        return Ok(Kinded {
            kind,
            at: found.map_at,
            common,
            spec: None,
        });
    }
    let spec = {
        let filter = Filter {
            inner: &mut map,
            common: &mut common,
            pending: Some(first),
            fields: &[],
            label: if label_kind {
                format!("{} {what}: ", found.kind)
            } else {
                String::new()
            },
            _de: std::marker::PhantomData,
        };
        parse(&found.kind, KindDeserializer { filter })?
    };
    // The kind's struct stops reading at the end of the mapping; nothing is
    // left, but a struct that ends early must not leave entries behind.
    drain(&mut map)?;
    Ok(Kinded {
        kind,
        at: found.map_at,
        common,
        spec: Some(spec),
    })
}

fn drain<'de, M: MapAccess<'de>>(map: &mut M) -> Result<(), M::Error> {
    while map.next_key::<IgnoredAny>()?.is_some() {
        map.next_value::<IgnoredAny>()?;
    }
    Ok(())
}

/// The entries of a kinded mapping minus the common fields, which it reads
/// into `common` on the way; unknown fields are reported and skipped.
pub struct Filter<'a, 'de, M, C> {
    inner: &'a mut M,
    common: &'a mut C,
    pending: Option<Spanned<String>>,
    fields: &'static [&'static str],
    label: String,
    _de: std::marker::PhantomData<&'de ()>,
}

impl<'de, M: MapAccess<'de>, C: Common<'de>> MapAccess<'de> for Filter<'_, 'de, M, C> {
    type Error = M::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, M::Error> {
        loop {
            let key = match self.pending.take() {
                Some(k) => k,
                None => match self.inner.next_key::<Spanned<String>>()? {
                    Some(k) => k,
                    None => return Ok(None),
                },
            };
            if C::FIELDS.contains(&key.value.as_str()) {
                self.common.take(&key.value, self.inner)?;
                continue;
            }
            if self.fields.is_empty() || self.fields.contains(&key.value.as_str()) {
                let k: de::value::StringDeserializer<M::Error> = key.value.into_deserializer();
                return seed.deserialize(k).map(Some);
            }
            let known: Vec<&str> = C::FIELDS.iter().chain(self.fields).copied().collect();
            report(
                Pos::of(&key.referenced),
                format!(
                    "{}{}",
                    self.label,
                    unknown_field_message(&key.value, &known)
                ),
            );
            self.inner.next_value::<IgnoredAny>()?;
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, M::Error> {
        self.inner.next_value_seed(seed)
    }
}

/// Hands a kind's struct the filtered entries, learning its field names.
pub struct KindDeserializer<'a, 'de, M, C> {
    filter: Filter<'a, 'de, M, C>,
}

impl<'de, M: MapAccess<'de>, C: Common<'de>> Deserializer<'de> for KindDeserializer<'_, 'de, M, C> {
    type Error = M::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, M::Error> {
        v.visit_map(self.filter)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, M::Error> {
        // A kind's field named like a common one would never be filled:
        // the common field takes it first. That is a bug in the kind, and
        // every test that reads the kind finds it here.
        if let Some(clash) = fields.iter().find(|f| C::FIELDS.contains(f)) {
            panic!("{name} has a field `{clash}` that the common fields take; rename it");
        }
        self.filter.fields = fields;
        v.visit_map(self.filter)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// No common fields: for [`Lenient`].
#[derive(Debug, Default)]
struct NoCommon;

impl<'de> Common<'de> for NoCommon {
    const FIELDS: &'static [&'static str] = &[];
    fn take<M: MapAccess<'de>>(&mut self, _: &str, _: &mut M) -> Result<bool, M::Error> {
        Ok(false)
    }
}

/// A struct whose unknown fields are reported (with a "did you mean") and
/// skipped, so reading goes on and every one is reported. Wrap each
/// `deny_unknown_fields` struct that is not a kind's own (those are read
/// leniently by [`visit_kinded`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lenient<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Lenient<T>, M::Error> {
                let mut none = NoCommon;
                let filter = Filter {
                    inner: &mut map,
                    common: &mut none,
                    pending: None,
                    fields: &[],
                    label: String::new(),
                    _de: std::marker::PhantomData,
                };
                T::deserialize(KindDeserializer { filter }).map(Lenient)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}
