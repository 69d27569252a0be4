//! Pass 2: the value types a kind's struct is read into ([`Text`], the
//! checked texts, [`At`], choices with [`words!`](crate::words)), each
//! with its position, each reporting a bad value and reading on.

use super::*;

/// A string value of jobs.yaml: interpolated, with its position.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Text {
    pub(super) value: String,
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
            let found = found_at(item.at);
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
