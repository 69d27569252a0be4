//! Secret values: a type that never prints its contents, and a redactor that
//! scrubs every known secret, and every credential of a common shape
//! ([`crate::scrub`]), from text before it reaches a log, the terminal, the
//! history store or a mail.
//!
//! Two layers because either alone leaks: the type stops accidental `{:?}` of a
//! config struct, the redactor catches a secret that a child process echoes.
//! Everything masked reads [`REDACTED`], whatever found it.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::{Deserialize, Deserializer};

use crate::yaml::{Pos, Text};

pub const REDACTED: &str = crate::scrub::MASK;

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

/// A URL that is itself the credential, a capability URL: whoever has
/// healthchecks.io's `https://hc-ping.com/<uuid>` or Cronitor's
/// `https://cronitor.link/p/<key>/<monitor>` can report for the check. So
/// the whole URL is a secret, as is each part the environment put in, and
/// displays show only its scheme and host.
#[derive(Clone, PartialEq, Eq)]
pub struct CapabilityUrl(String);

impl CapabilityUrl {
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        collect(&url);
        CapabilityUrl(url)
    }

    /// As jobs.yaml wrote it: the whole value and each `${…}` part in it
    /// are registered with the redactor.
    pub fn from_text(t: &Text) -> Self {
        t.parts.iter().for_each(|p| collect(p));
        CapabilityUrl::new(t.trim())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Scheme and host, the rest masked: enough to tell which service.
    pub fn shown(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(u) => format!(
                "{}://{}/{REDACTED}",
                u.scheme(),
                u.host_str().unwrap_or_default()
            ),
            Err(_) => REDACTED.to_string(),
        }
    }
}

impl fmt::Debug for CapabilityUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

impl fmt::Display for CapabilityUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
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

/// Replaces every known secret value, and every credential of a common
/// shape, in text with `[REDACTED]`, and escapes terminal control
/// characters. Clones share one list, so a secret learned while running (a
/// rotated value) is scrubbed everywhere from then on.
#[derive(Clone, Default)]
pub struct Redactor {
    known: Arc<std::sync::RwLock<Known>>,
}

#[derive(Default)]
struct Known {
    secrets: Vec<String>,
    /// Finds every occurrence of every secret in one pass, overlapping ones
    /// too (a secret inside another is masked with it).
    matcher: Option<AhoCorasick>,
}

impl Known {
    fn of(mut v: Vec<String>) -> Self {
        v.retain(|s| !s.is_empty());
        v.sort();
        v.dedup();
        // Built from a few configured values: cannot exceed the limits of
        // the automaton; if it ever did, the list is kept and scrubbed by
        // shape only rather than panicking.
        let matcher = (!v.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&v)
                    .ok()
            })
            .flatten();
        Known {
            secrets: v,
            matcher,
        }
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.len())
    }
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        Redactor {
            known: Arc::new(std::sync::RwLock::new(Known::of(
                secrets.into_iter().collect(),
            ))),
        }
    }

    fn known(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        self.known.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A new list: these secrets and `more`.
    pub fn with(&self, more: impl IntoIterator<Item = String>) -> Self {
        Redactor::new(self.known().secrets.iter().cloned().chain(more))
    }

    /// Learns a secret now, for this redactor and every clone of it.
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut w = self.known.write().unwrap_or_else(|e| e.into_inner());
        let v = std::mem::take(&mut w.secrets);
        *w = Known::of(v.into_iter().chain([secret.to_string()]).collect());
    }

    /// The text as it may be kept or shown: known secrets and credentials
    /// masked, all in one pass, and control characters escaped.
    pub fn redact(&self, text: &str) -> String {
        self.redact_line(text, &mut false)
    }

    /// One line of a stream read line by line: `in_key` carries whether
    /// the stream is inside a private key block from line to line.
    pub fn redact_line(&self, text: &str, in_key: &mut bool) -> String {
        let mut spans = Vec::new();
        if let Some(m) = &self.known().matcher {
            spans.extend(m.find_overlapping_iter(text).map(|m| m.range()));
        }
        *in_key = crate::scrub::credentials(text, *in_key, &mut spans);
        crate::scrub::rebuild(text, &mut spans)
    }

    /// A JSON value with every string redacted, and the string value of a
    /// key that names a secret masked whole.
    pub fn redact_json(&self, v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.redact_json(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s)
                                if !s.is_empty() && crate::scrub::names_a_secret(k) =>
                            {
                                Value::String(REDACTED.to_string())
                            }
                            v => self.redact_json(v),
                        };
                        (self.redact(k), v)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.known().secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known().secrets.is_empty()
    }
}

/// A database or service URL runbookd was given, for errors and listings:
/// its password masked as in any other text. One that does not parse shows
/// only its scheme, because the rest may hold credentials in a form not
/// understood.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(_) => Redactor::default().redact(raw),
        Err(_) => match raw.split_once("://") {
            Some((scheme, _)) => format!("{}://{REDACTED}", Redactor::default().redact(scheme)),
            None => REDACTED.to_string(),
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

/// `%40` back to `@`, as in a URL's user and password. A `%` not followed
/// by two hex digits is kept as it is; bytes that are not UTF-8 become
/// U+FFFD.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
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
        assert_eq!(format!("{u:?}"), "redis://:[REDACTED]@cache:6379/0");
        let (_, none) = collecting(|| SecretUrl::new("redis://cache:6379"));
        assert!(none.is_empty());
    }

    #[test]
    fn a_capability_url_is_secret_whole_and_shows_its_host_only() {
        let (u, found) = collecting(|| {
            CapabilityUrl::new("https://hc-ping.com/0f0c6a4e-1a57-4d2b-9c1e-7c3f2b9e8a11")
        });
        assert_eq!(
            found,
            vec!["https://hc-ping.com/0f0c6a4e-1a57-4d2b-9c1e-7c3f2b9e8a11".to_string()]
        );
        assert_eq!(format!("{u}"), "https://hc-ping.com/[REDACTED]");
        assert_eq!(format!("{u:?}"), "https://hc-ping.com/[REDACTED]");
        let r = Redactor::new(found);
        assert_eq!(
            r.redact("GET https://hc-ping.com/0f0c6a4e-1a57-4d2b-9c1e-7c3f2b9e8a11/start failed"),
            "GET [REDACTED]/start failed"
        );
    }

    #[test]
    fn percent_escapes_decode_and_stray_percents_stay() {
        let cases = [
            ("p%40ss", "p@ss"),
            ("%41%42c", "ABc"),
            ("a%2", "a%2"),
            ("100%", "100%"),
            ("%zz%", "%zz%"),
            ("%e2%82%ac", "\u{20ac}"),
            ("%ff", "\u{fffd}"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(percent_decode(raw), want, "{raw}");
        }
    }

    #[test]
    fn url_password_is_masked_and_extracted() {
        let u = "postgres://app:p%40ss@db.example:5432/app";
        assert_eq!(
            redact_url(u),
            "postgres://app:[REDACTED]@db.example:5432/app"
        );
        assert_eq!(url_password(u).as_deref(), Some("p@ss"));
        assert_eq!(redact_url("sqlite://runbookd.db"), "sqlite://runbookd.db");
        // Not understood: only the scheme is shown.
        assert_eq!(
            redact_url("postgres://u:p/w@db/app"),
            "postgres://[REDACTED]"
        );
    }

    /// Credentials in text runbookd did not write, by their shape: (text,
    /// as kept). The mask is the same as for a known secret.
    #[test]
    fn credentials_of_common_shapes_are_masked_and_lookalikes_kept() {
        let cases: &[(&str, &str)] = &[
            // URL userinfo.
            (
                "connecting to postgres://app:hunter2@db:5432/app failed",
                "connecting to postgres://app:[REDACTED]@db:5432/app failed",
            ),
            (
                "redis://:s3cret@cache:6379 down",
                "redis://:[REDACTED]@cache:6379 down",
            ),
            ("postgres://u:p@ss@db/app", "postgres://u:[REDACTED]@db/app"),
            (
                "see https://example.com/a?b=1#c and ssh://git@host/x",
                "see https://example.com/a?b=1#c and ssh://git@host/x",
            ),
            // Bearer and Basic.
            (
                "GET /x Authorization: Bearer eyJhbGciOi.abc.def ok",
                "GET /x Authorization: Bearer [REDACTED] ok",
            ),
            (
                "authorization: bearer 0123456789abcdef==",
                "authorization: bearer [REDACTED]",
            ),
            (
                "Authorization: Basic dXNlcjpodW50ZXIy",
                "Authorization: Basic [REDACTED]",
            ),
            (
                "WWW-Authenticate: Bearer realm=\"api\", error=\"invalid_token\"",
                "WWW-Authenticate: Bearer realm=\"api\", error=\"invalid_token\"",
            ),
            (
                "basic auth is disabled; basically fine",
                "basic auth is disabled; basically fine",
            ),
            // key=value.
            (
                "login password=p%40ss&user=x",
                "login password=[REDACTED]&user=x",
            ),
            ("ünïcode TOKEN=abc, then", "ünïcode TOKEN=[REDACTED], then"),
            (
                "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "AWS_SECRET_ACCESS_KEY=[REDACTED]",
            ),
            (
                "DB_PASSWORD=Zq81x api_key=k-1 apikey=k2 secret=s1 passwd=p1 pwd=p2",
                "DB_PASSWORD=[REDACTED] api_key=[REDACTED] apikey=[REDACTED] secret=[REDACTED] passwd=[REDACTED] pwd=[REDACTED]",
            ),
            (
                "access_key=AKIDEXAMPLE private_key=pk1 credential=c1 STRIPE_SECRET=sk_live_1 GH_TOKEN=ghp_1",
                "access_key=[REDACTED] private_key=[REDACTED] credential=[REDACTED] STRIPE_SECRET=[REDACTED] GH_TOKEN=[REDACTED]",
            ),
            (
                "run --password=hunter2 spring.datasource.password=pw1 password=\"two words\"",
                "run --password=[REDACTED] spring.datasource.password=[REDACTED] password=\"[REDACTED]\"",
            ),
            ("password = hunter2 (ini)", "password = [REDACTED] (ini)"),
            // key: value.
            ("password: hunter2", "password: [REDACTED]"),
            (
                "GITHUB_TOKEN:\tghp_abc123 next",
                "GITHUB_TOKEN:\t[REDACTED] next",
            ),
            ("X-Api-Key: k-123", "X-Api-Key: [REDACTED]"),
            // JSON, and the like.
            (
                r#"{"user":"a","password":"hunter2","api_key":"k-1","token": "t-2","tokens_used":3}"#,
                r#"{"user":"a","password":"[REDACTED]","api_key":"[REDACTED]","token": "[REDACTED]","tokens_used":3}"#,
            ),
            (
                r#"{"password":"a\"b c","n":1}"#,
                r#"{"password":"[REDACTED]","n":1}"#,
            ),
            (
                r#"body="{\"password\":\"hunter2\",\"ok\":true}""#,
                r#"body="{\"password\":\"[REDACTED]\",\"ok\":true}""#,
            ),
            ("{'password': 'hunter2'}", "{'password': '[REDACTED]'}"),
            (
                r#"{"accessToken":"abc","apiKey":"k","SecretAccessKey":"s"}"#,
                r#"{"accessToken":"[REDACTED]","apiKey":"[REDACTED]","SecretAccessKey":"[REDACTED]"}"#,
            ),
            (
                r#"{"token": null, "secret": ""}"#,
                r#"{"token": null, "secret": ""}"#,
            ),
            // An AWS secret access key standing alone; a hex digest is not one.
            (
                "key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here",
                "key [REDACTED] here",
            ),
            (
                "commit dfca80f5d1c3a6b9e2f4a7c8d9e0f1a2b3c4d5e6 ok",
                "commit dfca80f5d1c3a6b9e2f4a7c8d9e0f1a2b3c4d5e6 ok",
            ),
            // A PEM private key block: its body, whatever its kind.
            (
                "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nq83+xYz==\n-----END RSA PRIVATE KEY-----\nafter",
                "key:\n-----BEGIN RSA PRIVATE KEY-----\n[REDACTED]\n-----END RSA PRIVATE KEY-----\nafter",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
                "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
            ),
            // Keys that do not name a secret, and colons that are not a key's.
            (
                "token_count=5 tokens_used=3 max_tokens: 100 secret_id=prod/db passwordless=true",
                "token_count=5 tokens_used=3 max_tokens: 100 secret_id=prod/db passwordless=true",
            ),
            (
                "ClientRequestToken=1b4e28ba-2fa1-11d2-883f-0016d3cca427 NextToken: abc public_key=ssh-ed25519",
                "ClientRequestToken=1b4e28ba-2fa1-11d2-883f-0016d3cca427 NextToken: abc public_key=ssh-ed25519",
            ),
            (
                "step 1 rotate on secret:prod/whatsapp; graph-api-token: token rejected",
                "step 1 rotate on secret:prod/whatsapp; graph-api-token: token rejected",
            ),
            (
                r#"<img src="data:image/png;base64,iVBORw0K/GgoAAAAN+abcKey=" alt="chart">"#,
                r#"<img src="data:image/png;base64,iVBORw0K/GgoAAAAN+abcKey=" alt="chart">"#,
            ),
            (
                "Token::new(); if token == x {} evidence: logs.expired_token = 3 (>= 1)",
                "Token::new(); if token == x {} evidence: logs.expired_token = 3 (>= 1)",
            ),
        ];
        let r = Redactor::default();
        let mut wrong = Vec::new();
        for (text, want) in cases {
            let got = r.redact(text);
            if got != *want {
                wrong.push(format!("{text:?}\n  got  {got:?}\n  want {want:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn a_private_key_read_line_by_line_is_masked_to_its_end_line() {
        let r = Redactor::default();
        let mut in_key = false;
        let lines = [
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU",
            "AAAAC3NzaC1lZDI1NTE5AAAAIJx=",
            "-----END OPENSSH PRIVATE KEY-----",
            "next line",
        ];
        let got: Vec<String> = lines
            .iter()
            .map(|l| r.redact_line(l, &mut in_key))
            .collect();
        assert_eq!(
            got,
            [
                "-----BEGIN OPENSSH PRIVATE KEY-----",
                "[REDACTED]",
                "[REDACTED]",
                "-----END OPENSSH PRIVATE KEY-----",
                "next line",
            ]
        );
        assert!(!in_key);
        // Scrubbed text, decorated and scrubbed again, keeps its shape.
        let once = r.redact("-----BEGIN PRIVATE KEY-----\nMIIE\nq83=\n-----END PRIVATE KEY-----");
        let quoted: String = once.lines().map(|l| format!("  | {l}\n")).collect();
        assert_eq!(r.redact(&quoted), quoted);
        assert_eq!(
            quoted,
            "  | -----BEGIN PRIVATE KEY-----\n  | [REDACTED]\n  | -----END PRIVATE KEY-----\n"
        );
    }

    #[test]
    fn one_pass_never_rewrites_a_mask() {
        // `ACT` is inside the mask left for `abcd`; a second pass would
        // rewrite it.
        let r = Redactor::new(["abcd".to_string(), "ACT".to_string()]);
        assert_eq!(r.redact("abcd ACT"), "[REDACTED] [REDACTED]");
        // Overlapping secrets are masked whole, none of either left.
        let r = Redactor::new(["abc".to_string(), "bcdef".to_string()]);
        assert_eq!(r.redact("xabcdefx abc"), "x[REDACTED]x [REDACTED]");
        // A known secret inside a credential's value: one mask.
        let r = Redactor::new(["hunter2".to_string()]);
        assert_eq!(r.redact("password=hunter2xyz"), "password=[REDACTED]");
    }

    #[test]
    fn terminal_controls_are_escaped() {
        let r = Redactor::default();
        assert_eq!(
            r.redact("\x1b]0;pwned\x07\x1b[2Jred\ttab\r\nnext\rover\u{9b}2J\x7f"),
            "\\x1b]0;pwned\\x07\\x1b[2Jred\ttab\r\nnext\\x0dover\\u009b2J\\x7f"
        );
        assert_eq!(r.redact("plain\nlines\n"), "plain\nlines\n");
    }

    #[test]
    fn json_is_redacted_value_by_value() {
        let r = Redactor::new(["k-known".to_string()]);
        let v = serde_json::json!({
            "lines": ["{\"password\":\"hunter2\"}", "uses k-known"],
            "client_secret": "cs-1",
            "tokens_used": 3,
            "nested": {"DB_PASSWORD": "pw", "ok": "\u{1b}[0m"},
        });
        assert_eq!(
            r.redact_json(&v),
            serde_json::json!({
                "lines": ["{\"password\":\"[REDACTED]\"}", "uses [REDACTED]"],
                "client_secret": "[REDACTED]",
                "tokens_used": 3,
                "nested": {"DB_PASSWORD": "[REDACTED]", "ok": "\\x1b[0m"},
            })
        );
    }
}
