//! `kind: http`: an endpoint answers as expected, fast enough. Covers the
//! runbook's `curl https://api.flexoraa.com/health` and, optionally, the
//! WhatsApp Graph API token check.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use indexmap::IndexMap;
use serde::Deserialize;

use super::{Check, CheckContext, CheckResult, CheckStatus};
use crate::config::urls::{self, UrlKind};
use crate::model::Dur;
use crate::secret::{Secret, SecretUrl};
use crate::yaml::{Diags, Ident, Lenient, Pos, Required};

/// Bodies are read up to this many bytes for `body_contains` and
/// `json_field`.
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StatusSet {
    One(u16),
    Many(Vec<u16>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonField {
    /// Dotted path into the JSON body, e.g. `status` or `data.db.ok`.
    pub path: Required,
    pub equals: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// Default `GET`.
    pub method: Option<Ident>,
    /// Its password, if any, is a secret.
    pub url: SecretUrl,
    /// Request headers. Their values are treated as secrets (tokens).
    #[serde(default)]
    pub headers: IndexMap<String, Secret>,
    /// Status code, or list, that passes. Default: any 2xx.
    pub expect_status: Option<StatusSet>,
    /// Text the body must contain. Default: not checked.
    pub body_contains: Option<Required>,
    /// A JSON field the body must have with this value. Default: not checked.
    pub json_field: Option<Lenient<JsonField>>,
    /// Latency that warns. Default: none.
    pub warn_latency: Option<Dur>,
    /// Latency that fails. Default: none.
    pub fail_latency: Option<Dur>,
}

#[async_trait]
impl Check for HttpCheck {
    fn threshold(&self) -> Option<String> {
        let latency = self.latency_threshold();
        Some(if latency.is_empty() {
            self.expected()
        } else {
            format!("{}; {latency}", self.expected())
        })
    }

    fn target(&self) -> String {
        format!("{} {}", self.method(), self.url)
    }

    fn validate(&self, at: Pos, diags: &mut Diags) {
        urls::check(&self.url, "url", UrlKind::Http, at, diags);
        if let Some(m) = &self.method
            && reqwest::Method::from_bytes(m.to_uppercase().as_bytes()).is_err()
        {
            diags.at(m.at(), format!("`{m}` is not an HTTP method"));
        }
    }

    async fn run(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult> {
        vec![self.check(name, ctx).await]
    }
}

impl HttpCheck {
    pub fn method(&self) -> String {
        self.method.as_deref().unwrap_or("GET").to_uppercase()
    }

    fn status_ok(&self, code: u16) -> bool {
        match &self.expect_status {
            None => (200..300).contains(&code),
            Some(StatusSet::One(c)) => *c == code,
            Some(StatusSet::Many(cs)) => cs.contains(&code),
        }
    }

    fn expected(&self) -> String {
        match &self.expect_status {
            None => "status 2xx".into(),
            Some(StatusSet::One(c)) => format!("status {c}"),
            Some(StatusSet::Many(cs)) => format!(
                "status in {}",
                cs.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }

    fn latency_threshold(&self) -> String {
        let ms = |d: Duration| d.as_millis();
        let mut parts = Vec::new();
        if let Some(f) = self.fail_latency {
            parts.push(format!("fail if > {} ms", ms(f.0)));
        }
        if let Some(w) = self.warn_latency {
            parts.push(format!("warn if > {} ms", ms(w.0)));
        }
        parts.join("; ")
    }

    async fn check(&self, name: &str, ctx: &CheckContext) -> CheckResult {
        let method =
            reqwest::Method::from_bytes(self.method().as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = ctx
            .adapters
            .http
            .request(method, self.url.expose())
            .timeout(ctx.timeout);
        for (k, v) in &self.headers {
            req = req.header(k, v.expose());
        }
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return CheckResult::error(
                    name,
                    describe_error(&self.method(), &self.url.shown(), &e),
                );
            }
        };
        let code = resp.status().as_u16();
        let body = match read_body(resp).await {
            Ok(b) => b,
            Err(e) => {
                return CheckResult::error(
                    name,
                    describe_error(&self.method(), &self.url.shown(), &e),
                );
            }
        };
        let latency = started.elapsed();
        let ms = latency.as_millis() as f64;
        if !self.status_ok(code) {
            // Scrub first, then cut: a token cut in half would survive.
            let snippet: String = ctx.redactor.redact(&body).chars().take(120).collect();
            return CheckResult::new(
                name,
                CheckStatus::Fail,
                format!(
                    "{} {} answered {code}: {}",
                    self.method(),
                    self.url,
                    snippet.trim()
                ),
            )
            .number(code as f64)
            .threshold(self.expected());
        }
        if let Some(want) = &self.body_contains
            && !body.contains(want.as_str())
        {
            return CheckResult::new(
                name,
                CheckStatus::Fail,
                format!("body does not contain `{want}`"),
            )
            .number(code as f64)
            .threshold(format!("body contains `{want}`"));
        }
        if let Some(Lenient(field)) = &self.json_field {
            let threshold = format!("{} == {}", field.path, field.equals);
            match serde_json::from_str::<serde_json::Value>(&body) {
                Err(e) => {
                    return CheckResult::new(
                        name,
                        CheckStatus::Fail,
                        format!("body is not JSON: {e}"),
                    )
                    .threshold(threshold);
                }
                Ok(v) => {
                    let got = field.path.split('.').try_fold(&v, |v, k| v.get(k));
                    if !json_equal(got, &field.equals) {
                        let shown = got
                            .map(|g| g.to_string())
                            .unwrap_or_else(|| "missing".into());
                        return CheckResult::new(
                            name,
                            CheckStatus::Fail,
                            format!("JSON field `{}` is {shown}", field.path),
                        )
                        .text(shown)
                        .threshold(threshold);
                    }
                }
            }
        }
        let (status, why) = match (self.fail_latency, self.warn_latency) {
            (Some(f), _) if latency > f.0 => (CheckStatus::Fail, "too slow"),
            (_, Some(w)) if latency > w.0 => (CheckStatus::Warn, "slow"),
            _ => (CheckStatus::Pass, "ok"),
        };
        CheckResult::new(
            name,
            status,
            format!("{code} in {} ms ({why})", latency.as_millis()),
        )
        .number(ms)
        .threshold(self.latency_threshold())
    }
}

/// A JSON value equals the configured one; YAML's `ok` and JSON's `"ok"`
/// are the same, and a number compares by value.
fn json_equal(got: Option<&serde_json::Value>, want: &serde_json::Value) -> bool {
    match (got, want) {
        (None, _) => false,
        (Some(serde_json::Value::Number(a)), serde_json::Value::Number(b)) => {
            a.as_f64() == b.as_f64()
        }
        (Some(g), w) => g == w,
    }
}

async fn read_body(mut resp: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_BODY.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_BODY {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// "refused: GET http://…: connection refused", naming the class an SRE
/// acts on: DNS, refused, TLS, timeout.
pub fn describe_error(method: &str, url: &str, e: &reqwest::Error) -> String {
    let mut chain = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        chain.push(c.to_string());
        cur = c.source();
    }
    let all = chain.join(": ");
    let lower = all.to_lowercase();
    let class = if e.is_timeout() || lower.contains("timed out") {
        "timeout"
    } else if lower.contains("dns error")
        || lower.contains("failed to lookup address")
        || lower.contains("name or service not known")
    {
        "DNS"
    } else if lower.contains("connection refused") {
        "refused"
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("invalidcontenttype")
        || lower.contains("corrupt message")
    {
        "TLS"
    } else if e.is_connect() {
        "connect"
    } else {
        "http"
    };
    // The last cause is the most specific; reqwest's top message repeats the URL.
    let cause = chain.last().cloned().unwrap_or_default();
    format!("{class}: {method} {url}: {cause}")
}
