//! Pass 1: a tree of every node with its position and tag, from which
//! duplicate keys, `${VAR}` interpolation and the `kind` of every mapping
//! are known; and [`load`], which runs both passes.

use super::*;

#[derive(Debug, Clone)]
pub(super) enum Node {
    Null,
    /// Strings, and numbers and booleans as written.
    Scalar(String),
    /// A plain scalar the parser read as a number or a boolean, printed
    /// back. `Item` turns it into a `Scalar` as written: `1.10` must stay
    /// `1.10`, not become `1.1`.
    Inferred(String),
    Seq(Vec<Item>),
    Map(Vec<(Item, Item)>),
}

#[derive(Debug, Clone)]
pub(super) struct Item {
    pub(super) node: Node,
    /// Where the node is written (for an alias: where its anchor is).
    pub(super) at: Pos,
    pub(super) secret: bool,
    /// Read as a number or boolean: its text is taken from the source.
    pub(super) inferred: bool,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Tagged<Node>>::deserialize(d)?;
        let (node, inferred) = match s.value.0 {
            Node::Inferred(v) => (Node::Scalar(v), true),
            other => (other, false),
        };
        Ok(Item {
            node,
            at: Pos::of(&s.defined),
            secret: s.value.1.as_deref() == Some("!secret"),
            inferred,
        })
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Inferred(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Inferred(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Inferred(v.to_string()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
                Ok(Node::Inferred(v.to_string()))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
                Ok(Node::Inferred(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Inferred(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Scalar(v))
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
                Err(E::custom("binary values are not supported"))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(i) = seq.next_element::<Item>()? {
                    items.push(i);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = map.next_key::<Item>()? {
                    let v = map.next_value::<Item>()?;
                    entries.push((k, v));
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// What pass 1 learned about one string value.
#[derive(Debug, Clone, Default)]
pub(super) struct Scalar {
    pub(super) value: String,
    pub(super) quoted: bool,
    /// The values `${…}` put into this scalar.
    pub(super) parts: Vec<String>,
    /// What holds it, for messages: "`instance`", "an entry of `matchers`".
    pub(super) field: String,
    /// As written, when `${…}` changed it: an empty value can then say
    /// which reference gave it.
    pub(super) written: Option<String>,
}

/// The `kind` of a mapping, found by the position of its first key.
#[derive(Debug, Clone)]
pub(super) struct KindAt {
    pub(super) kind: String,
    pub(super) at: Pos,
    /// Where the mapping itself starts.
    pub(super) map_at: Pos,
}

#[derive(Debug, Default)]
struct Context {
    scalars: HashMap<Pos, Scalar>,
    kinds: HashMap<Pos, KindAt>,
    diags: Diags,
    secrets: Vec<String>,
    /// What is written at each position, and what holds it, so a type
    /// error can say "expected …, found a list" in the file's terms.
    found: HashMap<Pos, Found>,
}

#[derive(Debug, Clone)]
pub(super) struct Found {
    pub(super) field: String,
    pub(super) what: String,
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// Records a problem found while deserializing; reading goes on.
pub fn report(pos: Pos, message: impl Into<String>) {
    let message = message.into();
    CONTEXT.with(|c| {
        if let Some(c) = c.borrow_mut().as_mut() {
            c.diags.at(pos, message);
        }
    });
}

pub(super) fn scalar_at(pos: Pos) -> Option<Scalar> {
    CONTEXT.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|c| c.scalars.get(&pos).cloned())
    })
}

pub(super) fn found_at(pos: Pos) -> Option<Found> {
    CONTEXT.with(|c| c.borrow().as_ref().and_then(|c| c.found.get(&pos).cloned()))
}

pub(super) fn kind_at(pos: Pos) -> Option<KindAt> {
    CONTEXT.with(|c| c.borrow().as_ref().and_then(|c| c.kinds.get(&pos).cloned()))
}

/// The result of reading a file.
#[derive(Debug)]
pub struct Loaded<T> {
    /// `None` when a syntax or type error stopped reading.
    pub value: Option<T>,
    pub diags: Vec<(Pos, String)>,
    /// Every value the file marked secret, and the interpolated parts of
    /// secret values.
    pub secrets: Vec<String>,
    /// Each job (an entry of the top-level `jobs` mapping) and where it
    /// starts, so a problem can name the job it is in.
    pub jobs: Vec<(String, Pos)>,
}

/// Limits far above any real jobs file and far below what hurts: a nested
/// alias bomb stops at the first budget it exceeds, in milliseconds.
fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 100_000;
    budget.max_events = 200_000;
    budget.max_aliases = 10_000;
    budget.max_total_scalar_bytes = 8 * 1024 * 1024;
    o.budget = Some(budget);
    o.alias_limits.max_total_replayed_events = 100_000;
    // A plain `.inf` is text to a string field; pass 1 reads every value
    // untyped and must not refuse it.
    o.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
    o
}

fn error_pos(e: &serde_saphyr::Error) -> Pos {
    e.location()
        .map(|l| Pos::of(&l))
        .unwrap_or(Pos { line: 1, col: 1 })
}

fn root_cause(mut e: &serde_saphyr::Error) -> &serde_saphyr::Error {
    loop {
        match e {
            serde_saphyr::Error::WithSnippet { error, .. }
            | serde_saphyr::Error::AliasError { error, .. } => e = error,
            _ => return e,
        }
    }
}

/// The message of a serde-saphyr error without its snippet or position.
fn error_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::MessageFormatter;
    let e = root_cause(e);
    if let serde_saphyr::Error::SerdeUnknownField {
        field, expected, ..
    } = e
    {
        return unknown_field_message(field, expected);
    }
    if let serde_saphyr::Error::SerdeUnknownVariant {
        variant, expected, ..
    } = e
    {
        let list: Vec<String> = expected.iter().map(|v| format!("`{v}`")).collect();
        let hint = did_you_mean(variant, expected)
            .map(|v| format!(" (did you mean `{v}`?)"))
            .unwrap_or_default();
        return format!(
            "unknown value `{variant}`{hint}, expected one of {}",
            list.join(", ")
        );
    }
    serde_saphyr::DefaultMessageFormatter
        .format_message(e)
        .into_owned()
}

/// A type error in the file's terms: what was expected, in words a user
/// writes, and what was found there. serde's own words ("invalid u32",
/// "externally tagged enum") name Rust types, not the file.
fn type_error_message(e: &serde_saphyr::Error, found: Option<&Found>) -> String {
    use serde_saphyr::Error as E;
    let expected = match root_cause(e) {
        E::InvalidScalar { ty, .. } => match *ty {
            "u8" => whole(0, u8::MAX),
            "u16" => whole(0, u16::MAX),
            "u32" => whole(0, u32::MAX),
            "u64" => whole(0, u64::MAX),
            "u128" | "usize" => "a whole number, 0 or more".to_string(),
            "i8" => whole(i8::MIN, i8::MAX),
            "i16" => whole(i16::MIN, i16::MAX),
            "i32" => whole(i32::MIN, i32::MAX),
            "i64" => whole(i64::MIN, i64::MAX),
            "floating point" | "f32" | "f64" => "a number".to_string(),
            "boolean" => "true or false".to_string(),
            other => format!("a {other}"),
        },
        E::NullIntoString { .. } => "text".to_string(),
        E::ExternallyTaggedEnumExpectedScalarOrMapping { .. }
        | E::UnexpectedValueForUnitEnumVariant { .. } => "one word".to_string(),
        E::Unexpected { expected, .. } => match *expected {
            "string scalar" | "scalar" => "text".to_string(),
            "sequence start" => "a list".to_string(),
            "mapping start" | "empty mapping start" => "a mapping".to_string(),
            other => other.to_string(),
        },
        E::SerdeInvalidType { expected, .. } => expected.clone(),
        _ => return error_message(e),
    };
    let field = found
        .map(|f| f.field.as_str())
        .filter(|f| !f.is_empty())
        .map(|f| format!("{f}: "))
        .unwrap_or_default();
    let what = match (found, root_cause(e)) {
        (Some(f), _) => f.what.clone(),
        (None, E::SerdeInvalidType { unexpected, .. }) => unexpected.clone(),
        (None, _) => return format!("{field}expected {expected}"),
    };
    format!("{field}expected {expected}, found {what}")
}

fn whole<T: fmt::Display>(min: T, max: T) -> String {
    format!("a whole number from {min} to {max}")
}

/// Reads `text` into `T` in the two passes described above. `env` resolves
/// `${VAR}`.
pub fn load<T: de::DeserializeOwned>(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Loaded<T> {
    let mut ctx = Context::default();
    let mut jobs = Vec::new();
    let tree_options = {
        let mut o = options();
        // Pass 1 sees both copies of a duplicate key to say where each is.
        o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
        o
    };
    let tree: Option<Item> = match serde_saphyr::from_str_with_options(text, tree_options) {
        Ok(t) => t,
        Err(e) => {
            let message = match root_cause(&e) {
                serde_saphyr::Error::MultipleDocuments { .. } => {
                    "a second YAML document (`---`): jobs.yaml holds exactly one".to_string()
                }
                _ => format!("YAML syntax: {}", error_message(&e)),
            };
            ctx.diags.at(error_pos(&e), message);
            return Loaded {
                value: None,
                diags: ctx.diags.into_vec(),
                secrets: Vec::new(),
                jobs,
            };
        }
    };
    if let Some(root) = &tree {
        walk(root, "", "", text, env, &mut ctx);
        if let Node::Map(entries) = &root.node {
            for (k, v) in entries {
                if let (Node::Scalar(name), Node::Map(list)) = (&k.node, &v.node)
                    && name == "jobs"
                {
                    for (jk, _) in list {
                        if let Node::Scalar(job) = &jk.node {
                            jobs.push((job.clone(), jk.at));
                        }
                    }
                }
            }
        }
    }
    let prior = CONTEXT.with(|c| c.borrow_mut().replace(ctx));
    let typed = {
        let mut o = options();
        // Pass 1 reported duplicates; here the first copy is the one read.
        o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::FirstWins;
        serde_saphyr::from_str_with_options::<T>(text, o)
    };
    let mut ctx = CONTEXT
        .with(|c| std::mem::replace(&mut *c.borrow_mut(), prior))
        .unwrap_or_default();
    let value = match typed {
        Ok(v) => Some(v),
        Err(e) => {
            let at = error_pos(&e);
            let message = type_error_message(&e, ctx.found.get(&at));
            ctx.diags.at(at, message);
            None
        }
    };
    Loaded {
        value,
        diags: ctx.diags.into_vec(),
        secrets: ctx.secrets,
        jobs,
    }
}

/// `path` is the key of the enclosing mapping entry (`jobs` for the jobs);
/// `field` names what holds the item, for messages.
fn walk(
    item: &Item,
    path: &str,
    field: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    ctx: &mut Context,
) {
    let what = match &item.node {
        Node::Null => "nothing".to_string(),
        Node::Seq(_) => "a list".to_string(),
        Node::Map(_) => "a mapping".to_string(),
        _ if item.secret => "a secret value".to_string(),
        Node::Scalar(s) | Node::Inferred(s) => {
            // As written (a `${VAR}` stays a reference: its value may be a
            // secret), cut short.
            let s = match item.inferred {
                true => as_written(text, item.at).unwrap_or_else(|| s.clone()),
                false => s.clone(),
            };
            let short: String = s.chars().take(40).collect();
            let more = if short.len() < s.len() { "…" } else { "" };
            if short.contains(|c: char| c == '`' || name_breaker(c)) {
                format!("{short:?}{more}")
            } else {
                format!("`{short}`{more}")
            }
        }
    };
    ctx.found.insert(
        item.at,
        Found {
            field: field.to_string(),
            what,
        },
    );
    match &item.node {
        // `Item` has made these scalars.
        Node::Null | Node::Inferred(_) => {}
        Node::Scalar(s) => {
            let quoted = source_char(text, item.at).is_some_and(|c| c == '"' || c == '\'');
            let s = match item.inferred {
                true => as_written(text, item.at).unwrap_or_else(|| s.clone()),
                false => s.clone(),
            };
            let s = &s;
            let mut scalar = Scalar {
                value: s.clone(),
                quoted,
                parts: Vec::new(),
                field: field.to_string(),
                written: None,
            };
            if s.contains('$') {
                match interpolate::interpolate(s, env) {
                    Ok((v, parts)) => {
                        if v != *s {
                            scalar.written = Some(s.clone());
                        }
                        scalar.value = v;
                        scalar.parts = parts;
                    }
                    Err(errs) => {
                        for e in errs {
                            // Exact for one-line scalars; after the quote if quoted.
                            let at = item.at.right(e.offset + usize::from(quoted));
                            ctx.diags.at(at, e.message);
                        }
                    }
                }
            }
            if item.secret {
                ctx.secrets.push(scalar.value.clone());
                ctx.secrets.extend(scalar.parts.iter().cloned());
            }
            ctx.scalars.insert(item.at, scalar);
        }
        Node::Seq(items) => {
            let field = match field {
                "" => String::new(),
                f if f.starts_with("an entry of ") => f.to_string(),
                f => format!("an entry of {f}"),
            };
            items
                .iter()
                .for_each(|i| walk(i, path, &field, text, env, ctx))
        }
        Node::Map(entries) => {
            let mut seen: Vec<(&str, Pos)> = Vec::new();
            for (k, v) in entries {
                let key = match &k.node {
                    Node::Scalar(s) => s.as_str(),
                    _ => "",
                };
                if let Some((_, first)) = seen.iter().find(|(s, _)| *s == key) {
                    let what = if path == "jobs" { "job" } else { "key" };
                    ctx.diags.at(
                        k.at,
                        format!(
                            "duplicate {what} `{key}` (first defined at line {}, column {})",
                            first.line, first.col
                        ),
                    );
                    // The typed pass reads the first copy only.
                    continue;
                }
                seen.push((key, k.at));
                // Keys become labels, table cells, environment names and
                // header names: a control character in one breaks them.
                if let Some(c) = key.chars().find(|c| name_breaker(*c)) {
                    ctx.diags.at(
                        k.at,
                        format!(
                            "key {key:?} holds {}: a key must not contain control characters",
                            shown_char(c)
                        ),
                    );
                }
                if key == "kind"
                    && let (Node::Scalar(kind), Some((first, _))) = (&v.node, entries.first())
                {
                    ctx.kinds.insert(
                        first.at,
                        KindAt {
                            kind: kind.trim().to_string(),
                            at: v.at,
                            map_at: item.at,
                        },
                    );
                }
                let top = if path.is_empty() { key } else { "-" };
                walk(v, top, &format!("`{key}`"), text, env, ctx);
            }
        }
    }
}

/// A plain number or boolean as written at `at`, after any tag or anchor.
/// Such a scalar is one token: it ends at a space, a comment or a flow
/// indicator.
fn as_written(text: &str, at: Pos) -> Option<String> {
    let line = text.lines().nth(at.line.checked_sub(1)?)?;
    let mut rest: &str = {
        let skip: usize = line
            .chars()
            .take(at.col.checked_sub(1)?)
            .map(char::len_utf8)
            .sum();
        line.get(skip..)?
    };
    while rest.starts_with('!') || rest.starts_with('&') {
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    let token: String = rest
        .chars()
        .take_while(|c| !matches!(c, ' ' | '\t' | ',' | ']' | '}' | '#'))
        .collect();
    (!token.is_empty()).then_some(token)
}

fn source_char(text: &str, at: Pos) -> Option<char> {
    let line = text.lines().nth(at.line.checked_sub(1)?)?;
    line.chars().nth(at.col.checked_sub(1)?)
}
