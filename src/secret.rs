//! Secret values: a type that never prints its contents, and a redactor that
//! scrubs every known secret from text before it reaches a log, the terminal or
//! the history store.
//!
//! Two layers because either alone leaks: the type stops accidental `{:?}` of a
//! config struct, the redactor catches a secret that a child process echoes.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

use crate::yaml::{Pos, Text};

pub const REDACTED: &str = "[REDACTED]";

/// A string that is never displayed. Read it with [`Secret::expose`] at the
/// one place that hands it to the outside system.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        collect(&value);
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// The whole value is secret, and so is each part the environment put
    /// in (`Bearer ${TOKEN}`: the token alone is scrubbed too).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = Text::deserialize(d)?;
        t.parts.iter().for_each(|p| collect(p));
        Ok(Secret::new(t.into_string()))
    }
}

/// A service URL whose password is a secret: the password is registered
/// with the redactor and every display masks it, while host and database
/// stay readable in errors.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretUrl {
    url: String,
    /// Where jobs.yaml wrote it, for errors about it.
    pub at: Pos,
}

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        if let Some(p) = url_password(&url) {
            collect(&p);
        }
        SecretUrl {
            url,
            at: Pos::default(),
        }
    }

    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The URL with its password masked.
    pub fn shown(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // An empty URL would read nothing, or fall back to a default.
        let t = crate::yaml::Required::deserialize(d)?.text().clone();
        let at = t.at;
        let mut u = SecretUrl::new(t.into_string());
        u.at = at;
        Ok(u)
    }
}

thread_local! {
    // Active only inside `collecting`: config loading registers every value
    // that deserializes as a `Secret` so the redactor knows it.
    static COLLECTOR: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Registers a secret value with the collector of the current load, if any.
pub fn collect(value: &str) {
    COLLECTOR.with(|c| {
        if let Some(v) = c.borrow_mut().as_mut()
            && !value.is_empty()
        {
            v.push(value.to_string());
        }
    });
}

/// Runs `f` and returns, with its result, every secret value created inside.
pub fn collecting<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let previous = COLLECTOR.with(|c| c.borrow_mut().replace(Vec::new()));
    let out = f();
    let found = COLLECTOR.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous));
    (out, found.unwrap_or_default())
}

/// Replaces every known secret value in text with `[REDACTED]`. Clones
/// share one list, so a secret learned while running (a rotated value) is
/// scrubbed everywhere from then on.
#[derive(Clone, Default)]
pub struct Redactor {
    // Longest first, so a secret that contains another is scrubbed whole.
    secrets: Arc<std::sync::RwLock<Vec<String>>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.len())
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.retain(|s| !s.is_empty());
    v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    v.dedup();
    v
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        Redactor {
            secrets: Arc::new(std::sync::RwLock::new(sorted(
                secrets.into_iter().collect(),
            ))),
        }
    }

    fn list(&self) -> std::sync::RwLockReadGuard<'_, Vec<String>> {
        self.secrets.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A new list: these secrets and `more`.
    pub fn with(&self, more: impl IntoIterator<Item = String>) -> Self {
        Redactor::new(self.list().iter().cloned().chain(more))
    }

    /// Learns a secret now, for this redactor and every clone of it.
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut w = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        let v = std::mem::take(&mut *w);
        *w = sorted(v.into_iter().chain([secret.to_string()]).collect());
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.list().iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.list().len()
    }

    pub fn is_empty(&self) -> bool {
        self.list().is_empty()
    }
}

/// Renders a database or service URL with its password replaced, for errors
/// and listings.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        // Not a URL we can parse: show only the scheme-ish prefix, because the
        // rest may hold credentials in a form we do not understand.
        Err(_) => match raw.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***"),
            None => "***".to_string(),
        },
    }
}

/// The password part of a URL, if any, so the redactor can learn it.
pub fn url_password(raw: &str) -> Option<String> {
    let u = url::Url::parse(raw).ok()?;
    let p = u.password()?;
    let decoded = percent_decode(p);
    Some(decoded)
}

/// `%40` back to `@`, as in a URL's user and password.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn collecting_sees_secrets_created_inside_only() {
        let _outside = Secret::new("outside");
        let (_, found) = collecting(|| {
            let _a = Secret::new("alpha");
            let _b = Secret::new("");
        });
        assert_eq!(found, vec!["alpha".to_string()]);
    }

    #[test]
    fn a_secret_learned_later_is_scrubbed_by_every_clone() {
        let r = Redactor::new(["old-secret".to_string()]);
        let clone = r.clone();
        r.add("new-secret-value");
        assert_eq!(clone.redact("x new-secret-value y"), "x [REDACTED] y");
    }

    #[test]
    fn redactor_scrubs_longest_first() {
        let r = Redactor::new(["abc".to_string(), "abcdef".to_string()]);
        assert_eq!(r.redact("x abcdef y abc"), "x [REDACTED] y [REDACTED]");
    }

    #[test]
    fn secret_url_registers_only_its_password() {
        let (u, found) = collecting(|| SecretUrl::new("redis://:s3cr3t-pw@cache:6379/0"));
        assert_eq!(found, vec!["s3cr3t-pw".to_string()]);
        assert_eq!(format!("{u:?}"), "redis://:***@cache:6379/0");
        let (_, none) = collecting(|| SecretUrl::new("redis://cache:6379"));
        assert!(none.is_empty());
    }

    #[test]
    fn url_password_is_masked_and_extracted() {
        let u = "postgres://app:p%40ss@db.example:5432/app";
        assert_eq!(redact_url(u), "postgres://app:***@db.example:5432/app");
        assert_eq!(url_password(u).as_deref(), Some("p@ss"));
        assert_eq!(redact_url("sqlite://runbookd.db"), "sqlite://runbookd.db");
    }
}
