//! Problems found in jobs.yaml, by position, and the "did you mean" that
//! goes with an unknown name.

use super::*;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub(super) fn of(l: &Location) -> Pos {
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
