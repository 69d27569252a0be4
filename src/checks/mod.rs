//! Checks: read-only probes of the outside world, each giving pass, warn,
//! fail or error with the measured value, the threshold and a one-line
//! reason. A `checklist` job runs a list of them concurrently.
//!
//! `error` means "could not measure" (refused, DNS, TLS, auth, timeout, a bad
//! answer): never a pass, never a crash.

pub mod alertmanager;
pub mod compare;
pub mod http;
pub mod kubernetes;
pub mod prometheus;
pub mod rds;
pub mod redis;
pub mod secret_age;
pub mod sql;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::adapters::Adapters;
use crate::config::Dur;
use crate::config::yaml::{self, DeError, Kind, Node};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
    Error,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
            CheckStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pass" => Some(CheckStatus::Pass),
            "warn" => Some(CheckStatus::Warn),
            "fail" => Some(CheckStatus::Fail),
            "error" => Some(CheckStatus::Error),
            _ => None,
        }
    }
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a check measured: a number when it is one, so later runs and the
/// morning report can compare it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Measured {
    Number(f64),
    Text(String),
}

impl Measured {
    pub fn number(&self) -> Option<f64> {
        match self {
            Measured::Number(n) => Some(*n),
            Measured::Text(_) => None,
        }
    }
}

impl fmt::Display for Measured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Measured::Number(n) => f.write_str(&compare::fmt_number(*n)),
            Measured::Text(t) => f.write_str(t),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub check: String,
    pub status: CheckStatus,
    pub value: Option<Measured>,
    pub threshold: Option<String>,
    pub reason: String,
    pub duration_ms: u64,
}

impl CheckResult {
    pub fn new(check: impl Into<String>, status: CheckStatus, reason: impl Into<String>) -> Self {
        CheckResult {
            check: check.into(),
            status,
            value: None,
            threshold: None,
            reason: reason.into(),
            duration_ms: 0,
        }
    }

    pub fn error(check: impl Into<String>, reason: impl Into<String>) -> Self {
        CheckResult::new(check, CheckStatus::Error, reason)
    }

    pub fn value(mut self, v: Measured) -> Self {
        self.value = Some(v);
        self
    }

    pub fn number(self, n: f64) -> Self {
        self.value(Measured::Number(n))
    }

    pub fn text(self, t: impl Into<String>) -> Self {
        self.value(Measured::Text(t.into()))
    }

    pub fn threshold(mut self, t: impl Into<String>) -> Self {
        let t = t.into();
        self.threshold = (!t.is_empty()).then_some(t);
        self
    }
}

/// What a check sees: the instant it evaluates at (queries of historical
/// data use it) and the clients to the outside.
#[derive(Clone)]
pub struct CheckContext {
    pub now: DateTime<Utc>,
    pub adapters: Arc<Adapters>,
    pub timeout: Duration,
}

/// One configured check.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub name: String,
    pub description: Option<String>,
    pub timeout: Duration,
    pub spec: CheckSpec,
}

#[derive(Debug, Clone)]
pub enum CheckSpec {
    Http(http::HttpCheck),
    Prometheus(prometheus::PrometheusCheck),
    Alertmanager(alertmanager::AlertmanagerCheck),
    Sql(sql::SqlCheck),
    Redis(redis::RedisCheck),
    Rds(rds::RdsCheck),
    SecretAge(secret_age::SecretAgeCheck),
    Kubernetes(kubernetes::KubernetesCheck),
}

pub const CHECK_KINDS: &[&str] = &[
    "http",
    "prometheus",
    "alertmanager",
    "sql",
    "redis",
    "rds",
    "secret_age",
    "kubernetes",
];

impl CheckSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            CheckSpec::Http(_) => "http",
            CheckSpec::Prometheus(_) => "prometheus",
            CheckSpec::Alertmanager(_) => "alertmanager",
            CheckSpec::Sql(_) => "sql",
            CheckSpec::Redis(_) => "redis",
            CheckSpec::Rds(_) => "rds",
            CheckSpec::SecretAge(_) => "secret_age",
            CheckSpec::Kubernetes(_) => "kubernetes",
        }
    }

    /// The target, for dry runs and logs; never holds a secret.
    pub fn target(&self) -> String {
        match self {
            CheckSpec::Http(c) => format!("{} {}", c.method(), c.url),
            CheckSpec::Prometheus(c) => format!("{} query {}", c.url, c.query),
            CheckSpec::Alertmanager(c) => c.url.clone(),
            CheckSpec::Sql(c) => crate::secret::redact_url(c.database_url.expose()),
            CheckSpec::Redis(c) => crate::secret::redact_url(c.url.expose()),
            CheckSpec::Rds(c) => format!("RDS instance {}", c.instance),
            CheckSpec::SecretAge(c) => format!("secret {}", c.secret_id),
            CheckSpec::Kubernetes(c) => format!("namespace {} pods {}", c.namespace, c.selector),
        }
    }

    /// Runs the check. Every result is named after the check, or
    /// `check/aspect` for kinds that measure several things.
    async fn run(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult> {
        match self {
            CheckSpec::Http(c) => vec![c.run(name, ctx).await],
            CheckSpec::Prometheus(c) => vec![c.run(name, ctx).await],
            CheckSpec::Alertmanager(c) => vec![c.run(name, ctx).await],
            CheckSpec::Sql(c) => vec![c.run(name, ctx).await],
            CheckSpec::Redis(c) => c.run(name, ctx).await,
            CheckSpec::Rds(c) => c.run(name, ctx).await,
            CheckSpec::SecretAge(c) => vec![c.run(name, ctx).await],
            CheckSpec::Kubernetes(c) => c.run(name, ctx).await,
        }
    }
}

impl CheckConfig {
    /// Runs under the check's timeout; a check that overruns is `error`.
    pub async fn execute(&self, ctx: &CheckContext) -> Vec<CheckResult> {
        let started = std::time::Instant::now();
        let ctx = CheckContext {
            timeout: self.timeout,
            ..ctx.clone()
        };
        let mut results =
            match tokio::time::timeout(self.timeout, self.spec.run(&self.name, &ctx)).await {
                Ok(r) => r,
                Err(_) => vec![CheckResult::error(
                    &self.name,
                    format!(
                        "timeout: no answer from {} within {}",
                        self.spec.target(),
                        humantime::format_duration(self.timeout)
                    ),
                )],
            };
        let ms = started.elapsed().as_millis() as u64;
        for r in &mut results {
            if r.duration_ms == 0 {
                r.duration_ms = ms;
            }
        }
        results
    }
}

/// Fields every check has.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommon {
    name: String,
    // Read from the node to pick the kind; declared so it is a known field.
    #[allow(dead_code)]
    kind: String,
    description: Option<String>,
    /// Default `10s`.
    timeout: Option<Dur>,
}

pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

fn kind_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "http" => yaml::struct_fields::<http::HttpCheck>(),
        "prometheus" => yaml::struct_fields::<prometheus::PrometheusCheck>(),
        "alertmanager" => yaml::struct_fields::<alertmanager::AlertmanagerCheck>(),
        "sql" => yaml::struct_fields::<sql::SqlCheck>(),
        "redis" => yaml::struct_fields::<redis::RedisCheck>(),
        "rds" => yaml::struct_fields::<rds::RdsCheck>(),
        "secret_age" => yaml::struct_fields::<secret_age::SecretAgeCheck>(),
        "kubernetes" => yaml::struct_fields::<kubernetes::KubernetesCheck>(),
        _ => return None,
    })
}

/// Parses one entry of a checklist's `checks:` list.
pub fn parse_check(node: &Node) -> Result<CheckConfig, DeError> {
    let at = |mark, message: String| DeError {
        message,
        mark: Some(mark),
    };
    let entries = node.entries().ok_or_else(|| {
        at(
            node.mark,
            format!(
                "a check is a mapping with `name` and `kind`, found {}",
                node.type_name()
            ),
        )
    })?;
    let kind_node = node.get("kind").ok_or_else(|| {
        at(
            node.mark,
            format!(
                "check: missing field `kind` (one of: {})",
                CHECK_KINDS.join(", ")
            ),
        )
    })?;
    let kind = kind_node.as_str().unwrap_or("").trim();
    let fields = kind_fields(kind).ok_or_else(|| {
        at(
            kind_node.mark,
            format!(
                "unknown check kind `{kind}` (one of: {})",
                CHECK_KINDS.join(", ")
            ),
        )
    })?;
    let common_fields = yaml::struct_fields::<RawCommon>();
    let (mut common, mut specific) = (Vec::new(), Vec::new());
    for (k, v) in entries {
        let key = k.as_str().unwrap_or("");
        if common_fields.contains(&key) {
            common.push((k.clone(), v.clone()));
        } else if fields.contains(&key) {
            specific.push((k.clone(), v.clone()));
        } else {
            let all: Vec<&str> = common_fields.iter().chain(fields).copied().collect();
            return Err(at(
                k.mark,
                format!("{kind} check: {}", yaml::unknown_field_message(key, &all)),
            ));
        }
    }
    let common: RawCommon = yaml::from_node(&Node {
        kind: Kind::Map(common),
        mark: node.mark,
    })?;
    let specific = Node {
        kind: Kind::Map(specific),
        mark: node.mark,
    };
    let spec = match kind {
        "http" => CheckSpec::Http(http::HttpCheck::from_node(&specific)?),
        "prometheus" => CheckSpec::Prometheus(prometheus::PrometheusCheck::from_node(&specific)?),
        "alertmanager" => CheckSpec::Alertmanager(yaml::from_node(&specific)?),
        "sql" => CheckSpec::Sql(sql::SqlCheck::from_node(&specific)?),
        "redis" => CheckSpec::Redis(redis::RedisCheck::from_node(&specific)?),
        "rds" => CheckSpec::Rds(yaml::from_node(&specific)?),
        "secret_age" => CheckSpec::SecretAge(yaml::from_node(&specific)?),
        "kubernetes" => CheckSpec::Kubernetes(kubernetes::KubernetesCheck::from_node(&specific)?),
        _ => unreachable!("kind checked above"),
    };
    if common.name.trim().is_empty() {
        return Err(at(node.mark, "check `name` must not be empty".into()));
    }
    Ok(CheckConfig {
        name: common.name,
        description: common.description,
        timeout: common.timeout.map(|t| t.0).unwrap_or(DEFAULT_CHECK_TIMEOUT),
        spec,
    })
}

/// Runs checks with at most `limit` at a time; results keep the checks'
/// order.
pub async fn run_all(checks: &[CheckConfig], ctx: &CheckContext, limit: usize) -> Vec<CheckResult> {
    use futures::stream::{self, StreamExt};
    type Pending<'a> =
        std::pin::Pin<Box<dyn std::future::Future<Output = (usize, Vec<CheckResult>)> + Send + 'a>>;
    // Built as a list first: a closure over borrowed checks inside the
    // stream trips the compiler's higher-ranked lifetime inference.
    let pending: Vec<Pending<'_>> = checks
        .iter()
        .enumerate()
        .map(|(i, c)| -> Pending<'_> { Box::pin(async move { (i, c.execute(ctx).await) }) })
        .collect();
    let mut indexed: Vec<(usize, Vec<CheckResult>)> = stream::iter(pending)
        .buffer_unordered(limit.max(1))
        .collect()
        .await;
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().flat_map(|(_, r)| r).collect()
}

/// A check's worst status decides the job: any fail or error fails it.
pub fn summarize(results: &[CheckResult]) -> (bool, String) {
    let count = |s| results.iter().filter(|r| r.status == s).count();
    let (p, w, f, e) = (
        count(CheckStatus::Pass),
        count(CheckStatus::Warn),
        count(CheckStatus::Fail),
        count(CheckStatus::Error),
    );
    let bad: Vec<String> = results
        .iter()
        .filter(|r| r.status >= CheckStatus::Fail)
        .map(|r| format!("{} ({})", r.check, r.status))
        .collect();
    let head = format!(
        "{} checks: {p} pass, {w} warn, {f} fail, {e} error",
        results.len()
    );
    if bad.is_empty() {
        (true, head)
    } else {
        (false, format!("{head}: {}", bad.join(", ")))
    }
}

/// An age as an SRE says it: `45s`, `12m`, `6h`, `30h 15m`, `3d 4h`.
pub fn fmt_age(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins) = (s / 86400, s % 86400 / 3600, s % 3600 / 60);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{mins}m"),
        3600..172800 => {
            let h = s / 3600;
            if mins == 0 {
                format!("{h}h")
            } else {
                format!("{h}h {mins}m")
            }
        }
        _ => {
            if hours == 0 {
                format!("{days}d")
            } else {
                format!("{days}d {hours}h")
            }
        }
    }
}

/// The readable table `run` and `show` print.
pub fn render_table(results: &[CheckResult]) -> String {
    let rows: Vec<[String; 5]> = results
        .iter()
        .map(|r| {
            [
                r.check.clone(),
                r.status.to_string(),
                r.value
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.threshold.clone().unwrap_or_else(|| "-".into()),
                r.reason.clone(),
            ]
        })
        .collect();
    let header = ["CHECK", "STATUS", "VALUE", "THRESHOLD", "REASON"];
    let mut widths = header.map(|h| h.len());
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count().min(60));
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 4 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_fails_on_fail_or_error_only() {
        let r = |s| CheckResult::new("c", s, "");
        let cases = [
            (vec![r(CheckStatus::Pass), r(CheckStatus::Warn)], true),
            (vec![r(CheckStatus::Pass), r(CheckStatus::Fail)], false),
            (vec![r(CheckStatus::Error)], false),
            (vec![], true),
        ];
        for (results, ok) in cases {
            assert_eq!(summarize(&results).0, ok, "{results:?}");
        }
    }

    #[test]
    fn ages_read_well() {
        let cases = [
            (42, "42s"),
            (600, "10m"),
            (6 * 3600, "6h"),
            (30 * 3600 + 900, "30h 15m"),
            (90 * 86400, "90d"),
            (54 * 3600, "2d 6h"),
        ];
        for (secs, want) in cases {
            assert_eq!(fmt_age(Duration::from_secs(secs)), want);
        }
    }

    #[test]
    fn table_has_the_five_columns() {
        let t = render_table(&[
            CheckResult::new("api", CheckStatus::Fail, "503 from /health")
                .number(503.0)
                .threshold("== 200"),
        ]);
        let mut lines = t.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("CHECK  STATUS  VALUE  THRESHOLD  REASON")
        );
        assert_eq!(
            lines.next().unwrap(),
            "api    fail    503    == 200     503 from /health"
        );
    }
}
