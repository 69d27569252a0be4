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

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::adapters::Adapters;
use crate::model::{Dur, Threshold};
use crate::secret::Redactor;
use crate::yaml::{self, Common, Diags, Pos, Text};

pub use crate::model::{CheckResult, CheckStatus, Measured, fmt_age};

/// One kind of check. Each kind is one file with its config struct
/// (deserialized from the check's own fields) implementing this, and one
/// line in [`CheckKinds`].
#[async_trait]
pub trait Check: fmt::Debug + Send + Sync + std::any::Any {
    /// What it asks of whom, for dry runs and logs; never holds a secret.
    fn target(&self) -> String;

    /// Problems only visible once the check is read; `at` is where the
    /// check starts.
    fn validate(&self, _at: Pos, _diags: &mut Diags) {}

    /// The configured threshold of the result named after the check
    /// itself, for a result that could not measure (a timeout) and so did
    /// not state it. A kind that measures several [`Part`]s states each
    /// part's threshold on every result it makes, errors included.
    fn threshold(&self) -> Option<String> {
        None
    }

    /// Measures. Every result is named after the check, or by a [`Part`]
    /// for kinds that measure several things.
    async fn run(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult>;
}

/// One of the things a kind that measures several reports as a result of
/// its own. Each kind has an enum of its parts, so nothing ever picks a
/// result by the end of its name.
pub trait Part: Copy + fmt::Debug + 'static {
    /// Every part of the kind, in the order it reports them.
    const ALL: &'static [Self];

    /// The part's word after the check's name (`ready` in `api/ready`);
    /// `None` for the part named as the check itself.
    fn word(self) -> Option<&'static str>;

    /// The result's name, as history stores it: `check/word`, or `check`.
    fn result_name(self, check: &str) -> String {
        match self.word() {
            Some(w) => format!("{check}/{w}"),
            None => check.to_string(),
        }
    }
}

impl dyn Check {
    /// The check as its kind's struct, if it is a `T`.
    pub fn downcast<T: 'static>(&self) -> Option<&T> {
        (self as &dyn std::any::Any).downcast_ref::<T>()
    }
}

crate::kinds! {
    /// The check kinds, one line each.
    CheckKinds => dyn Check:
    "http" => http::HttpCheck,
    "prometheus" => prometheus::PrometheusCheck,
    "alertmanager" => alertmanager::AlertmanagerCheck,
    "sql" => sql::SqlCheck,
    "redis" => redis::RedisCheck,
    "rds" => rds::RdsCheck,
    "secret_age" => secret_age::SecretAgeCheck,
    "kubernetes" => kubernetes::KubernetesCheck,
}

/// What a check sees: the instant it evaluates at (queries of historical
/// data use it), the clients to the outside, and the secrets to scrub from
/// what it quotes (before cutting it short, so no secret is left half).
#[derive(Clone)]
pub struct CheckContext {
    pub now: DateTime<Utc>,
    pub adapters: Arc<Adapters>,
    pub timeout: Duration,
    pub redactor: Redactor,
}

impl CheckContext {
    pub fn new(now: DateTime<Utc>, adapters: Arc<Adapters>) -> Self {
        CheckContext {
            now,
            adapters,
            timeout: DEFAULT_CHECK_TIMEOUT,
            redactor: Redactor::default(),
        }
    }

    pub fn with_redactor(mut self, r: Redactor) -> Self {
        self.redactor = r;
        self
    }
}

pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// One configured check.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub name: String,
    /// The registered kind, e.g. `http`.
    pub kind: &'static str,
    pub description: Option<String>,
    pub timeout: Duration,
    pub spec: Arc<dyn Check>,
    /// Where the check starts, and where its name is written.
    pub at: Pos,
    pub name_at: Pos,
}

/// Fields every check has.
#[derive(Debug, Default)]
struct CheckCommon {
    name: Option<yaml::Name>,
    description: Option<Text>,
    /// Default `10s`.
    timeout: Option<Dur>,
}

impl<'de> Common<'de> for CheckCommon {
    const FIELDS: &'static [&'static str] = &["name", "kind", "description", "timeout"];

    fn take<M: MapAccess<'de>>(&mut self, key: &str, map: &mut M) -> Result<bool, M::Error> {
        match key {
            "kind" => {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
            "name" => self.name = map.next_value()?,
            "description" => self.description = map.next_value()?,
            "timeout" => self.timeout = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Stands in for a check whose kind was missing or unknown; that is
/// reported, so a config holding one never loads.
#[derive(Debug)]
struct Unreadable;

#[async_trait]
impl Check for Unreadable {
    fn target(&self) -> String {
        "-".into()
    }
    async fn run(&self, name: &str, _: &CheckContext) -> Vec<CheckResult> {
        vec![CheckResult::error(name, "this check could not be read")]
    }
}

impl<'de> Deserialize<'de> for CheckConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CheckConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a check: a mapping with `name` and `kind`")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<CheckConfig, M::Error> {
                let k: yaml::Kinded<CheckCommon, Arc<dyn Check>> =
                    yaml::visit_kinded(map, "check", CheckKinds::NAMES, true, |kind, de| {
                        CheckKinds::deserialize(kind, de)
                    })?;
                let kind = CheckKinds::NAMES
                    .iter()
                    .find(|n| **n == k.kind.as_str())
                    .copied()
                    .unwrap_or("unknown");
                let name = match k.common.name {
                    Some(n) => n.text().clone(),
                    None => {
                        yaml::report(k.at, "check: missing field `name`");
                        Text::default()
                    }
                };
                Ok(CheckConfig {
                    name: name.to_string(),
                    kind,
                    description: k.common.description.map(|d| d.to_string()),
                    timeout: k
                        .common
                        .timeout
                        .map(|t| t.0)
                        .unwrap_or(DEFAULT_CHECK_TIMEOUT),
                    spec: k.spec.unwrap_or_else(|| Arc::new(Unreadable)),
                    at: k.at,
                    name_at: name.at,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// Problems of a list of checks: empty, duplicate names, and each kind's
/// own (a name itself is checked as it is read: [`yaml::Name`]). `at` is where the list is written.
pub fn validate_list(checks: &[CheckConfig], at: Pos, diags: &mut Diags) {
    if checks.is_empty() {
        diags.at(at, "checks: a checklist needs at least one check");
    }
    for (i, c) in checks.iter().enumerate() {
        if checks[..i].iter().any(|o| o.name == c.name) {
            diags.at(c.name_at, format!("duplicate check name `{}`", c.name));
        }
        c.spec.validate(c.at, diags);
    }
}

/// Why a check's text did not read: every problem, `line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct BadCheck(pub Vec<String>);

/// Reads one check from its jobs.yaml form, through the loader's reader
/// and validation (for tests and tools); `${VAR}` comes from the process
/// environment.
pub fn parse(text: &str) -> Result<CheckConfig, BadCheck> {
    let loaded = yaml::load::<CheckConfig>(text, &|k| std::env::var(k).ok());
    let mut diags = Diags::default();
    if let Some(c) = &loaded.value {
        validate_list(std::slice::from_ref(c), c.at, &mut diags);
    }
    let all: Vec<String> = loaded
        .diags
        .into_iter()
        .chain(diags.into_vec())
        .map(|(p, m)| format!("{}:{}: {m}", p.line, p.col))
        .collect();
    match loaded.value {
        Some(c) if all.is_empty() => Ok(c),
        _ => Err(BadCheck(all)),
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
            if r.threshold.is_none() {
                r.threshold = self
                    .spec
                    .threshold()
                    .filter(|t| !t.is_empty())
                    .map(Threshold::from);
            }
        }
        results
    }
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

/// Whether the checks measured nothing: every one ended `error` (refused,
/// timed out, no data), so they say production could not be reached from
/// here, not that it failed.
pub fn none_reached(results: &[CheckResult]) -> bool {
    !results.is_empty() && results.iter().all(|r| r.status == CheckStatus::Error)
}

/// The readable table `run` and `show` print.
pub fn render_table(results: &[CheckResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.check.clone(),
                r.status.to_string(),
                crate::table::cell(r.value.as_ref()),
                crate::table::cell(r.threshold.as_ref()),
                r.reason.clone(),
            ]
        })
        .collect();
    crate::table::render(&["CHECK", "STATUS", "VALUE", "THRESHOLD", "REASON"], &rows)
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

    #[test]
    fn a_multi_line_reason_stays_in_its_row() {
        let t = render_table(&[
            CheckResult::new(
                "db",
                CheckStatus::Error,
                "connect failed:\nDETAIL: role \"app\" does not exist\r\n  HINT: check the user\n",
            ),
            CheckResult::new("api", CheckStatus::Pass, "200 in 3 ms"),
        ]);
        assert_eq!(
            t,
            "CHECK  STATUS  VALUE  THRESHOLD  REASON\n\
             db     error   -      -          connect failed: \u{23ce} DETAIL: role \"app\" does not exist \u{23ce} HINT: check the user\n\
             api    pass    -      -          200 in 3 ms\n"
        );
    }
}
