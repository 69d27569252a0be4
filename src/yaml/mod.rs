//! Reading jobs.yaml with positions, on serde-saphyr.
//!
//! serde-saphyr parses, enforces budgets against alias bombs, refuses a
//! second document, and puts a line and column on every error and every
//! `Spanned` value. What it cannot do for us lives here, in two passes over
//! the same text:
//!
//! 1. A tree of every node with its position and tag. From it: duplicate
//!    keys (reported once, at the duplicate, naming the first), `${VAR}`
//!    interpolation of every string value, quoted or not, with every missing
//!    variable reported at once and the interpolated parts of secret values
//!    known, and the `kind` of every mapping that has one.
//! 2. The typed model, deserialized by serde-saphyr. Strings are read as
//!    [`Text`], which looks up its interpolated value by position; a mapping
//!    whose struct depends on its `kind` ([`visit_kinded`]) looks its kind up
//!    by the position of its first key, so nothing is buffered and every
//!    position inside survives. Unknown fields there are reported, with a
//!    "did you mean", and reading goes on.
//!
//! A type error (a list where a string belongs) stops pass 2 at the first
//! one; everything else is collected and reported together.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;

use serde::de::{self, DeserializeSeed, IgnoredAny, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::{Location, Spanned, Tagged};

use crate::model::Dur;

pub mod interpolate;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn of(l: &Location) -> Pos {
        Pos {
            line: l.line() as usize,
            col: l.column() as usize,
        }
    }

    /// The position `n` characters to the right, for pointing inside a scalar.
    pub fn right(self, n: usize) -> Pos {
        Pos {
            line: self.line,
            col: self.col + n,
        }
    }

    pub fn is_known(self) -> bool {
        self.line > 0
    }
}

/// One problem in the file, printed as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Problems found while reading and validating, by position.
#[derive(Debug, Default)]
pub struct Diags(Vec<(Pos, String)>);

impl Diags {
    pub fn at(&mut self, pos: Pos, message: impl Into<String>) {
        self.0.push((pos, message.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<(Pos, String)> {
        self.0
    }
}

/// `unknown field `x` (did you mean `y`?); expected one of …`.
pub fn unknown_field_message(key: &str, known: &[&str]) -> String {
    let list = known
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match did_you_mean(key, known) {
        Some(k) => format!("unknown field `{key}` (did you mean `{k}`?); expected one of {list}"),
        None => format!("unknown field `{key}`; expected one of {list}"),
    }
}

pub fn did_you_mean<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(k, word), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

// ---------------------------------------------------------------------------
// Pass 1: the tree.

#[derive(Debug, Clone)]
enum Node {
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
struct Item {
    node: Node,
    /// Where the node is written (for an alias: where its anchor is).
    at: Pos,
    secret: bool,
    /// Read as a number or boolean: its text is taken from the source.
    inferred: bool,
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
struct Scalar {
    value: String,
    quoted: bool,
    /// The values `${…}` put into this scalar.
    parts: Vec<String>,
    /// What holds it, for messages: "`instance`", "an entry of `matchers`".
    field: String,
    /// As written, when `${…}` changed it: an empty value can then say
    /// which reference gave it.
    written: Option<String>,
}

/// The `kind` of a mapping, found by the position of its first key.
#[derive(Debug, Clone)]
struct KindAt {
    kind: String,
    at: Pos,
    /// Where the mapping itself starts.
    map_at: Pos,
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
struct Found {
    field: String,
    what: String,
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

fn scalar_at(pos: Pos) -> Option<Scalar> {
    CONTEXT.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|c| c.scalars.get(&pos).cloned())
    })
}

fn kind_at(pos: Pos) -> Option<KindAt> {
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

// ---------------------------------------------------------------------------
// Pass 2: values.

/// A string value of jobs.yaml: interpolated, with its position.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Text {
    value: String,
    pub at: Pos,
    /// Written in quotes: a column inside the value is one further right.
    pub quoted: bool,
    /// The values `${…}` put into it.
    pub parts: Vec<String>,
}

impl Text {
    pub fn new(value: impl Into<String>) -> Self {
        Text {
            value: value.into(),
            ..Default::default()
        }
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn into_string(self) -> String {
        self.value
    }

    /// The position of the character at `offset` inside the value.
    pub fn inside(&self, offset: usize) -> Pos {
        self.at.right(offset + usize::from(self.quoted))
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.value, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::new(s)
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.value == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.value == *other
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<String>::deserialize(d)?;
        let at = Pos::of(&s.defined);
        Ok(match scalar_at(at) {
            Some(info) => Text {
                value: info.value,
                at,
                quoted: info.quoted,
                parts: info.parts,
            },
            None => Text {
                value: s.value,
                at,
                quoted: false,
                parts: Vec::new(),
            },
        })
    }
}

// ---------------------------------------------------------------------------
// Text that must say something.

/// A character that breaks a line, a label or a table cell where it is
/// printed: control characters (newline, tab, ESC), Unicode line and
/// paragraph separators, and invisible format characters (zero-width,
/// bidirectional overrides) that make one name look like another.
pub fn name_breaker(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// A character as a message names it.
pub fn shown_char(c: char) -> String {
    match c {
        ' ' => "a space".to_string(),
        '\n' => "a newline".to_string(),
        '\t' => "a tab".to_string(),
        '\r' => "a carriage return".to_string(),
        c => format!("the character U+{:04X}", c as u32),
    }
}

/// What a [`Checked`] text must be besides not empty.
pub trait Rule {
    /// Why `value` (not blank) breaks the rule, if it does; `field` names
    /// it ("`instance`").
    fn problem(value: &str, field: &str) -> Option<String>;
}

/// A [`Text`] that must not be empty or only whitespace once `${…}` is
/// interpolated (a variable set but empty counts as missing), and must keep
/// its rule `R`. A breach is reported at the value's position, naming the
/// field, and reading goes on. The aliases say which rule: [`Ident`],
/// [`Required`], [`Name`].
pub struct Checked<R> {
    text: Text,
    rule: std::marker::PhantomData<fn() -> R>,
}

/// The name of something runbookd acts on outside itself: an RDS instance,
/// a secret, a deployment, a namespace, a region. AWS and Kubernetes read
/// an empty name as "every one", so it must be there, and hold no
/// whitespace or control character.
pub type Ident = Checked<Identifier>;
/// Text whose absence would change what is read: a query, a label
/// selector, a path, a URL. Not blank; tabs and newlines allowed (a query
/// may span lines), other control characters not.
pub type Required = Checked<NotBlank>;
/// A name runbookd prints as a label, a table cell or a heading (a check,
/// a rule): at most 128 characters, no control or invisible characters, no
/// space at either end.
pub type Name = Checked<Label>;

/// The rule of [`Ident`].
#[derive(Debug)]
pub enum Identifier {}
/// The rule of [`Required`].
#[derive(Debug)]
pub enum NotBlank {}
/// The rule of [`Name`].
#[derive(Debug)]
pub enum Label {}

impl Rule for Identifier {
    fn problem(value: &str, field: &str) -> Option<String> {
        let c = value
            .chars()
            .find(|c| c.is_whitespace() || name_breaker(*c))?;
        Some(format!(
            "{field} {value:?} holds {}: a name of something outside runbookd has no whitespace or control characters",
            shown_char(c)
        ))
    }
}

impl Rule for NotBlank {
    fn problem(value: &str, field: &str) -> Option<String> {
        let c = value
            .chars()
            .find(|c| !matches!(c, '\t' | '\n') && name_breaker(*c))?;
        Some(format!(
            "{field} holds {}: only tabs and newlines may be in it",
            shown_char(c)
        ))
    }
}

/// Longest [`Name`], in characters.
pub const MAX_NAME_CHARS: usize = 128;

impl Rule for Label {
    fn problem(value: &str, field: &str) -> Option<String> {
        if let Some(c) = value.chars().find(|c| name_breaker(*c)) {
            return Some(format!(
                "{field} {value:?} holds {}: a name must not contain control or invisible characters",
                shown_char(c)
            ));
        }
        if value.trim() != value {
            return Some(format!("{field} {value:?} starts or ends with a space"));
        }
        let n = value.chars().count();
        (n > MAX_NAME_CHARS)
            .then(|| format!("{field} is {n} characters long; a name has at most {MAX_NAME_CHARS}"))
    }
}

impl<R: Rule> Checked<R> {
    /// A value made by code (a default, a test), not read: not checked.
    pub fn new(value: impl Into<String>) -> Self {
        Checked {
            text: Text::new(value),
            rule: std::marker::PhantomData,
        }
    }

    pub fn text(&self) -> &Text {
        &self.text
    }

    pub fn at(&self) -> Pos {
        self.text.at
    }

    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// Why the text breaks the rule, if it does; `field` names it.
    pub fn problem(text: &Text, field: &str) -> Option<String> {
        let value = text.as_str();
        let written = scalar_at(text.at).and_then(|s| s.written);
        if value.is_empty() {
            return Some(match written {
                Some(w) => format!(
                    "{field} must not be empty: `{w}` gives an empty value (a variable set but empty counts as missing)"
                ),
                None => format!("{field} must not be empty"),
            });
        }
        if value.trim().is_empty() {
            return Some(match written {
                Some(w) => format!("{field} must not be empty: `{w}` gives only whitespace"),
                None => format!("{field} must not be empty: it is only whitespace"),
            });
        }
        R::problem(value, field)
    }
}

impl<R> Clone for Checked<R> {
    fn clone(&self) -> Self {
        Checked {
            text: self.text.clone(),
            rule: std::marker::PhantomData,
        }
    }
}

impl<R> Default for Checked<R> {
    fn default() -> Self {
        Checked {
            text: Text::default(),
            rule: std::marker::PhantomData,
        }
    }
}

impl<R> PartialEq for Checked<R> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<R> Eq for Checked<R> {}

impl<R> Deref for Checked<R> {
    type Target = str;
    fn deref(&self) -> &str {
        self.text.as_str()
    }
}

impl<R> fmt::Debug for Checked<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl<R> fmt::Display for Checked<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.text, f)
    }
}

impl<R: Rule> From<&str> for Checked<R> {
    fn from(s: &str) -> Self {
        Checked::new(s)
    }
}

impl<R> PartialEq<str> for Checked<R> {
    fn eq(&self, other: &str) -> bool {
        self.text.as_str() == other
    }
}

impl<R> PartialEq<&str> for Checked<R> {
    fn eq(&self, other: &&str) -> bool {
        self.text.as_str() == *other
    }
}

impl<'de, R: Rule> Deserialize<'de> for Checked<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Text::deserialize(d)?;
        let field = scalar_at(text.at)
            .map(|s| s.field)
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "the value".to_string());
        if let Some(m) = Self::problem(&text, &field) {
            report(text.at, m);
        }
        Ok(Checked {
            text,
            rule: std::marker::PhantomData,
        })
    }
}

/// Reads one of `names`, as a choice is written in jobs.yaml (after
/// `${…}`), and returns its index. Anything else is reported at its
/// position with the list, and reading goes on (with index 0; the load
/// fails). An enum reads through it with [`words!`](crate::words).
pub fn one_of<'de, D: Deserializer<'de>>(d: D, names: &[&str]) -> Result<usize, D::Error> {
    let item = Item::deserialize(d)?;
    let list = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let word = match &item.node {
        Node::Scalar(s) | Node::Inferred(s) => scalar_at(item.at)
            .map(|i| i.value)
            .unwrap_or_else(|| s.clone()),
        _ => {
            let found = CONTEXT.with(|c| {
                c.borrow()
                    .as_ref()
                    .and_then(|c| c.found.get(&item.at).cloned())
            });
            let (field, what) = match found {
                Some(f) if !f.field.is_empty() => (format!("{}: ", f.field), f.what),
                Some(f) => (String::new(), f.what),
                None => (String::new(), "something else".to_string()),
            };
            report(
                item.at,
                format!("{field}expected one of {list}, found {what}"),
            );
            return Ok(0);
        }
    };
    let word = word.trim();
    if let Some(i) = names.iter().position(|n| *n == word) {
        return Ok(i);
    }
    let hint = did_you_mean(word, names)
        .map(|v| format!(" (did you mean `{v}`?)"))
        .unwrap_or_default();
    report(
        item.at,
        format!("unknown value `{word}`{hint}, expected one of {list}"),
    );
    Ok(0)
}

/// Reads an enum through [`one_of`], one line per choice:
///
/// ```text
/// words! { Notify { Never = "never", OnFailure = "on_failure" } }
/// ```
#[macro_export]
macro_rules! words {
    ($ty:ident { $($variant:ident = $name:literal),+ $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                const ALL: &[$ty] = &[$($ty::$variant),+];
                let i = $crate::yaml::one_of(d, &[$($name),+])?;
                Ok(ALL[i])
            }
        }
    };
}

/// A value parsed from its text; a bad one is reported at its position and
/// reading goes on (the load fails at the end with every problem).
pub fn parse_reported<T: std::str::FromStr<Err = String> + Default>(t: &Text) -> T {
    t.value.parse().unwrap_or_else(|m| {
        report(t.at, m);
        T::default()
    })
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(parse_reported(&Text::deserialize(d)?))
    }
}

/// A value with the position it was written at.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct At<T> {
    pub value: T,
    pub at: Pos,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for At<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<T>::deserialize(d)?;
        Ok(At {
            value: s.value,
            at: Pos::of(&s.referenced),
        })
    }
}

// ---------------------------------------------------------------------------
// Mappings whose struct depends on their `kind`.

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

/// The kinds of a family and how to read each: one line per kind.
///
/// ```text
/// kinds! { CheckSpec => dyn Check:
///     "http" => http::HttpCheck,
///     "sql" => sql::SqlCheck,
/// }
/// ```
#[macro_export]
macro_rules! kinds {
    ($(#[$m:meta])* $registry:ident => $object:ty: $($name:literal => $ty:ty),+ $(,)?) => {
        $(#[$m])*
        pub struct $registry;

        impl $registry {
            /// Every registered kind, in registration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// Deserializes the struct of `kind` (one of [`Self::NAMES`]).
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(
                kind: &str,
                d: D,
            ) -> Result<std::sync::Arc<$object>, D::Error> {
                match kind {
                    $($name => {
                        let v: std::sync::Arc<$object> =
                            std::sync::Arc::new(<$ty as serde::Deserialize>::deserialize(d)?);
                        Ok(v)
                    })+
                    other => Err(<D::Error as serde::de::Error>::custom(format!("unknown kind `{other}`"))),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        a: Option<Text>,
        b: Option<Vec<Text>>,
        #[allow(dead_code)]
        d: Option<Dur>,
    }

    fn diags(text: &str) -> Vec<String> {
        let l = load::<Doc>(text, &|k| (k == "X").then(|| "ex".to_string()));
        l.diags
            .iter()
            .map(|(p, m)| format!("{}:{}: {m}", p.line, p.col))
            .collect()
    }

    #[test]
    fn text_is_interpolated_with_its_position() {
        let l = load::<Doc>("a: \"v=${X}\"\nb: [p, '${X:-d}']\n", &|k| {
            (k == "X").then(|| "ex".to_string())
        });
        let d = l.value.unwrap();
        let a = d.a.unwrap();
        assert_eq!(a.as_str(), "v=ex");
        assert_eq!((a.at.line, a.at.col, a.quoted), (1, 4, true));
        assert_eq!(a.parts, vec!["ex".to_string()]);
        assert_eq!(d.b.unwrap()[1].as_str(), "ex");
    }

    #[test]
    fn problems_table() {
        // (yaml, expected diagnostics)
        let cases: &[(&str, &[&str])] = &[
            (
                "a: ${NOPE}\n",
                &["1:4: environment variable `NOPE` is not set"],
            ),
            (
                "a: x\na: y\n",
                &["2:1: duplicate key `a` (first defined at line 1, column 1)"],
            ),
            ("d: soon\n", &["1:4: invalid duration `soon`"]),
            ("c: 1\n", &["1:1: unknown field `c`"]),
            ("a: [\n", &["YAML syntax"]),
            ("a: x\n---\na: y\n", &["a second YAML document"]),
        ];
        for (yaml, want) in cases {
            let got = diags(yaml);
            assert_eq!(got.len(), want.len(), "{yaml:?}: {got:#?}");
            for (g, w) in got.iter().zip(want.iter()) {
                assert!(g.contains(w), "{yaml:?}: wanted {w:?} in {g:?}");
            }
        }
    }

    #[test]
    fn plain_numbers_and_booleans_stay_as_written() {
        // (yaml value, text read)
        let cases = [
            ("1.10", "1.10"),
            ("on", "on"),
            ("yes", "yes"),
            ("n", "n"),
            ("0755", "0755"),
            ("0x1F", "0x1F"),
            ("1e3", "1e3"),
            ("-0", "-0"),
            (".inf", ".inf"),
            ("1_000", "1_000"),
            ("'1.10'", "1.10"),
            ("\"1.10\"", "1.10"),
            ("!secret 0123456", "0123456"),
            ("&anchor 1.20", "1.20"),
        ];
        for (yaml, want) in cases {
            let l = load::<Doc>(&format!("a: {yaml}\nb: [{yaml}, 2.50]\n"), &no_env);
            let d = l.value.unwrap_or_else(|| panic!("{yaml}: {:?}", l.diags));
            assert_eq!(d.a.unwrap().as_str(), want, "{yaml}");
            let b = d.b.unwrap();
            assert_eq!(b[0].as_str(), want, "{yaml} in a flow list");
            assert_eq!(b[1].as_str(), "2.50");
        }
        let l = load::<Doc>("a: !secret 0123456\n", &no_env);
        assert_eq!(l.secrets, vec!["0123456".to_string()]);
    }

    #[test]
    fn an_alias_bomb_stops_fast_with_a_position() {
        let mut y = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            y.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let l = load::<serde::de::IgnoredAny>(&y, &no_env);
        assert!(l.value.is_none());
        assert!(l.diags[0].0.is_known(), "{:?}", l.diags);
        // Bounded work, not minutes; generous for a loaded machine.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}
