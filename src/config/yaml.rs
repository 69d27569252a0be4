//! A YAML tree that remembers where every node came from, and a serde
//! `Deserializer` over it.
//!
//! serde_yaml stops at the first error and forgets positions once a value is
//! parsed, so it cannot say `jobs.yaml:14:15: unknown timezone` for a value that
//! parsed fine as a string. This tree (built from yaml-rust2's marked events)
//! keeps a line and column on every node, lets the loader interpolate and
//! check each job on its own so all errors come out at once, and makes every
//! serde error carry the position of the node it was about.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
}

impl Mark {
    fn from_marker(m: Marker) -> Self {
        Mark {
            line: m.line(),
            col: m.col() + 1,
        }
    }

    /// The mark `n` characters to the right, for pointing inside a scalar.
    pub fn right(self, n: usize) -> Mark {
        Mark {
            line: self.line,
            col: self.col + n,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Scalar {
        text: String,
        /// Plain scalars are typed by their text (`5` is a number); quoted
        /// and block scalars are always strings.
        plain: bool,
        /// Set for a `!secret` tagged scalar.
        secret: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub mark: Mark,
}

impl Node {
    pub fn scalar(text: &str, mark: Mark) -> Node {
        Node {
            kind: Kind::Scalar {
                text: text.to_string(),
                plain: false,
                secret: false,
            },
            mark,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn entries(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true, .. } if is_null_text(text))
    }

    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar { .. } if self.is_null() => "null",
            Kind::Scalar { .. } => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// Mutable walk over every scalar that is a value (not a mapping key).
    pub fn for_each_value_scalar(&mut self, f: &mut impl FnMut(&mut String, bool, bool, Mark)) {
        let mark = self.mark;
        match &mut self.kind {
            Kind::Scalar {
                text,
                plain,
                secret,
            } => f(text, *plain, *secret, mark),
            Kind::Seq(items) => items.iter_mut().for_each(|n| n.for_each_value_scalar(f)),
            Kind::Map(entries) => entries
                .iter_mut()
                .for_each(|(_, v)| v.for_each_value_scalar(f)),
        }
    }
}

fn is_null_text(t: &str) -> bool {
    matches!(t, "" | "~" | "null" | "Null" | "NULL")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub mark: Mark,
    pub message: String,
}

/// Parses one YAML document. An empty document is an empty mapping.
pub fn parse(text: &str) -> Result<Node, ParseError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| ParseError {
        mark: Mark::from_marker(*e.marker()),
        message: e.info().to_string(),
    })?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder.root.unwrap_or(Node {
        kind: Kind::Map(Vec::new()),
        mark: Mark { line: 1, col: 1 },
    }))
}

enum Frame {
    Seq(Node, usize),
    Map(Node, usize, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<ParseError>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(seq, _)) => {
                if let Kind::Seq(items) = &mut seq.kind {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, _, pending)) => match pending.take() {
                None => {
                    // A block mapping's start event sits after its first key;
                    // its first key is where a reader looks for it.
                    if matches!(&map.kind, Kind::Map(e) if e.is_empty()) && node.mark < map.mark {
                        map.mark = node.mark;
                    }
                    *pending = Some(node)
                }
                Some(key) => {
                    if let Kind::Map(entries) = &mut map.kind {
                        entries.push((key, node));
                    }
                }
            },
        }
    }
}

fn is_secret_tag(tag: &Option<Tag>) -> bool {
    matches!(tag, Some(t) if t.handle == "!" && t.suffix == "secret")
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, marker: Marker) {
        let mark = Mark::from_marker(marker);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(t) = &tag
                    && !is_secret_tag(&tag)
                    && self.error.is_none()
                {
                    self.error = Some(ParseError {
                        mark,
                        message: format!(
                            "unsupported tag `{}{}` (the only tag runbookd knows is `!secret`)",
                            t.handle, t.suffix
                        ),
                    });
                }
                let node = Node {
                    kind: Kind::Scalar {
                        text,
                        plain: style == TScalarStyle::Plain,
                        secret: is_secret_tag(&tag),
                    },
                    mark,
                };
                self.push_value(node, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(
                Node {
                    kind: Kind::Seq(Vec::new()),
                    mark,
                },
                anchor,
            )),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map(
                Node {
                    kind: Kind::Map(Vec::new()),
                    mark,
                },
                anchor,
                None,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(Frame::Seq(node, anchor) | Frame::Map(node, anchor, _)) =
                    self.stack.pop()
                {
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Node {
                    kind: Kind::Scalar {
                        text: String::new(),
                        plain: true,
                        secret: false,
                    },
                    mark,
                });
                self.push_value(node, 0);
            }
            _ => {}
        }
    }
}

/// A value together with where it was written, for errors found after
/// deserialization (a cron expression that parses as a string but not as cron).
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub mark: Mark,
}

const SPANNED: &str = "$__runbookd_spanned";
const SPANNED_FIELDS: &[&str] = &["$__line", "$__col", "$__value"];

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for Spanned<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: de::Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Spanned<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value with a position")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let _: Option<String> = map.next_key()?;
                let line: usize = map.next_value()?;
                let _: Option<String> = map.next_key()?;
                let col: usize = map.next_value()?;
                let _: Option<String> = map.next_key()?;
                let value: T = map.next_value()?;
                Ok(Spanned {
                    value,
                    mark: Mark { line, col },
                })
            }
        }
        d.deserialize_struct(SPANNED, SPANNED_FIELDS, V(std::marker::PhantomData))
    }
}

/// A deserialization error, placed at the innermost node it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    pub message: String,
    pub mark: Option<Mark>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            mark: None,
        }
    }
}

impl DeError {
    fn at(mut self, mark: Mark) -> Self {
        self.mark.get_or_insert(mark);
        self
    }
}

/// Deserializes `T` from a node.
pub fn from_node<T: de::DeserializeOwned>(node: &Node) -> Result<T, DeError> {
    T::deserialize(NodeDe(node)).map_err(|e: DeError| e.at(node.mark))
}

/// The field names a struct accepts, read from its `Deserialize` impl so the
/// loader's unknown-field suggestions cannot drift from the structs.
pub fn struct_fields<T: de::DeserializeOwned>() -> &'static [&'static str] {
    struct Probe;
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl fmt::Display for Found {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Found(&[])
        }
    }
    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Found(fields)) => fields,
        Ok(_) => &[],
    }
}

struct NodeDe<'a>(&'a Node);

impl<'a> NodeDe<'a> {
    fn text(&self) -> Result<&'a str, DeError> {
        match &self.0.kind {
            Kind::Scalar { text, .. } => Ok(text),
            _ => Err(de::Error::custom(format!(
                "expected a scalar, found {}",
                self.0.type_name()
            ))),
        }
    }

    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        let t = self.text()?;
        t.trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("expected {what}, found `{t}`")))
    }
}

macro_rules! deserialize_number {
    ($($method:ident => $visit:ident : $ty:ty, $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            let n: $ty = self.parse($what).map_err(|e: DeError| e.at(self.0.mark))?;
            v.$visit(n).map_err(|e: DeError| e.at(self.0.mark))
        }
    )*};
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let mark = self.0.mark;
        let r = match &self.0.kind {
            Kind::Scalar { text, plain, .. } => {
                if !*plain {
                    v.visit_str(text)
                } else if is_null_text(text) {
                    v.visit_unit()
                } else if let Some(b) = parse_bool(text) {
                    v.visit_bool(b)
                } else if let Ok(i) = text.parse::<i64>() {
                    v.visit_i64(i)
                } else if let Ok(f) = text.parse::<f64>() {
                    v.visit_f64(f)
                } else {
                    v.visit_str(text)
                }
            }
            Kind::Seq(items) => v.visit_seq(Seq(items.iter())),
            Kind::Map(entries) => v.visit_map(Map::new(entries)),
        };
        r.map_err(|e: DeError| e.at(mark))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let t = self.text().map_err(|e: DeError| e.at(self.0.mark))?;
        match parse_bool(t) {
            Some(b) => v.visit_bool(b),
            None => Err(de::Error::custom(format!(
                "expected true or false, found `{t}`"
            ))),
        }
        .map_err(|e: DeError| e.at(self.0.mark))
    }

    deserialize_number! {
        deserialize_i8 => visit_i8: i8, "an integer";
        deserialize_i16 => visit_i16: i16, "an integer";
        deserialize_i32 => visit_i32: i32, "an integer";
        deserialize_i64 => visit_i64: i64, "an integer";
        deserialize_u8 => visit_u8: u8, "a non-negative integer";
        deserialize_u16 => visit_u16: u16, "a non-negative integer";
        deserialize_u32 => visit_u32: u32, "a non-negative integer";
        deserialize_u64 => visit_u64: u64, "a non-negative integer";
        deserialize_f32 => visit_f32: f32, "a number";
        deserialize_f64 => visit_f64: f64, "a number";
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let t = self.text().map_err(|e: DeError| e.at(self.0.mark))?;
        v.visit_str(t).map_err(|e: DeError| e.at(self.0.mark))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.0.is_null() {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.0.is_null() {
            v.visit_unit()
        } else {
            Err(de::Error::custom(format!(
                "expected null, found {}",
                self.0.type_name()
            )))
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.0.kind {
            Kind::Seq(items) => v.visit_seq(Seq(items.iter())),
            _ => Err(de::Error::custom(format!(
                "expected a list, found {}",
                self.0.type_name()
            ))),
        }
        .map_err(|e: DeError| e.at(self.0.mark))
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.0.kind {
            Kind::Map(entries) => v.visit_map(Map::new(entries)),
            _ => Err(de::Error::custom(format!(
                "expected a mapping, found {}",
                self.0.type_name()
            ))),
        }
        .map_err(|e: DeError| e.at(self.0.mark))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        if name == SPANNED {
            return v.visit_map(SpannedAccess {
                node: self.0,
                step: 0,
            });
        }
        // Unknown keys are reported here, with a suggestion, before serde's
        // generic message can name them without a hint.
        if let Kind::Map(entries) = &self.0.kind {
            for (k, _) in entries.iter() {
                if let Some(key) = k.as_str()
                    && !fields.contains(&key)
                {
                    return Err(DeError {
                        message: unknown_field_message(key, fields),
                        mark: Some(k.mark),
                    });
                }
            }
        }
        self.deserialize_map(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let mark = self.0.mark;
        match &self.0.kind {
            Kind::Scalar { text, .. } => {
                let de: de::value::StrDeserializer<'_, DeError> = text.as_str().into_deserializer();
                v.visit_enum(de)
            }
            _ => Err(de::Error::custom(format!(
                "expected one of the listed names, found {}",
                self.0.type_name()
            ))),
        }
        .map_err(|e: DeError| e.at(mark))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit_struct tuple tuple_struct
    }
}

/// "unknown field `timout` (did you mean `timeout`?); expected one of ...".
pub fn unknown_field_message(key: &str, fields: &[&str]) -> String {
    let best = fields
        .iter()
        .map(|f| (strsim::damerau_levenshtein(key, f), *f))
        .filter(|(d, f)| *d <= 2.max(f.len() / 3))
        .min();
    let list = fields
        .iter()
        .filter(|f| !f.starts_with("$__"))
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match best {
        Some((_, f)) => {
            format!("unknown field `{key}` (did you mean `{f}`?); expected one of {list}")
        }
        None => format!("unknown field `{key}`; expected one of {list}"),
    }
}

fn parse_bool(t: &str) -> Option<bool> {
    match t {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

struct Seq<'a>(std::slice::Iter<'a, Node>);

impl<'de, 'a> SeqAccess<'de> for Seq<'a> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.0.next() {
            Some(n) => seed
                .deserialize(NodeDe(n))
                .map(Some)
                .map_err(|e: DeError| e.at(n.mark)),
            None => Ok(None),
        }
    }
}

struct Map<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
}

impl<'a> Map<'a> {
    fn new(entries: &'a [(Node, Node)]) -> Self {
        Map {
            entries: entries.iter(),
            value: None,
        }
    }
}

impl<'de, 'a> MapAccess<'de> for Map<'a> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(NodeDe(k))
                    .map(Some)
                    .map_err(|e: DeError| e.at(k.mark))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let v = self
            .value
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value without a key"))?;
        seed.deserialize(NodeDe(v))
            .map_err(|e: DeError| e.at(v.mark))
    }
}

struct SpannedAccess<'a> {
    node: &'a Node,
    step: usize,
}

impl<'de, 'a> MapAccess<'de> for SpannedAccess<'a> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match SPANNED_FIELDS.get(self.step) {
            Some(f) => seed.deserialize(f.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let step = self.step;
        self.step += 1;
        match step {
            0 => seed.deserialize((self.node.mark.line as u64).into_deserializer()),
            1 => seed.deserialize((self.node.mark.col as u64).into_deserializer()),
            _ => seed.deserialize(NodeDe(self.node)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        max: u32,
        #[serde(default)]
        flag: bool,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: Spanned<String>,
        argv: Vec<String>,
        inner: Option<Inner>,
    }

    #[test]
    fn positions_are_one_based_line_and_column() {
        let n = parse("a: 1\nbb:\n  - x\n  - 'y'\n").unwrap();
        let bb = n.get("bb").unwrap();
        let Kind::Seq(items) = &bb.kind else {
            panic!("seq")
        };
        assert_eq!(items[0].mark, Mark { line: 3, col: 5 });
        assert_eq!(items[1].mark, Mark { line: 4, col: 5 });
        assert_eq!(n.get("a").unwrap().mark, Mark { line: 1, col: 4 });
    }

    #[test]
    fn deserializes_with_lenient_strings_and_spans() {
        let n = parse("name: hello\nargv: [sleep, 5]\ninner: {max: 2}\n").unwrap();
        let o: Outer = from_node(&n).unwrap();
        assert_eq!(o.argv, vec!["sleep", "5"]);
        assert_eq!(o.name.value, "hello");
        assert_eq!(o.name.mark, Mark { line: 1, col: 7 });
        assert_eq!(
            o.inner,
            Some(Inner {
                max: 2,
                flag: false
            })
        );
    }

    #[test]
    fn errors_point_at_the_offending_node() {
        let cases: &[(&str, &str, Mark)] = &[
            (
                "name: x\nargv: []\ninner:\n  maxx: 2\n",
                "unknown field `maxx` (did you mean `max`?)",
                Mark { line: 4, col: 3 },
            ),
            (
                "name: x\nargv: []\ninner:\n  max: lots\n",
                "expected a non-negative integer, found `lots`",
                Mark { line: 4, col: 8 },
            ),
            (
                "name: x\ninner: {max: 1}\n",
                "missing field `argv`",
                Mark { line: 1, col: 1 },
            ),
            (
                "name: x\nargv: {a: 1}\n",
                "expected a list, found a mapping",
                Mark { line: 2, col: 7 },
            ),
        ];
        for (text, want, mark) in cases {
            let n = parse(text).unwrap();
            let e = from_node::<Outer>(&n).unwrap_err();
            assert!(e.message.contains(want), "{text:?}: got {}", e.message);
            assert_eq!(e.mark, Some(*mark), "{text:?}: {}", e.message);
        }
    }

    #[test]
    fn secret_tag_and_anchors() {
        let n = parse("a: &x !secret s3cr3t\nb: *x\n").unwrap();
        assert!(matches!(
            &n.get("a").unwrap().kind,
            Kind::Scalar { secret: true, .. }
        ));
        assert_eq!(n.get("b").unwrap().as_str(), Some("s3cr3t"));
        let e = parse("a: !custom x\n").unwrap_err();
        assert!(e.message.contains("unsupported tag"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.mark.line >= 1, "{e:?}");
    }

    #[test]
    fn probe_lists_struct_fields() {
        assert_eq!(struct_fields::<Inner>(), &["max", "flag"]);
    }
}
