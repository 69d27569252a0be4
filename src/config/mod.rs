//! jobs.yaml: the model, its defaults, and loading.
//!
//! Loading is pure apart from reading the file: the environment is passed in,
//! and everything that can be checked without I/O is checked here, so
//! `runbookd validate` finds every error a run would hit at start-up.
//! Each job is checked on its own, so one broken job does not hide the errors
//! of the next.

pub mod interpolate;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::jobs::JobSpec;
use crate::schedule::{CronExpr, parse_timezone};
use crate::secret::{Redactor, SecretUrl, collecting};
use yaml::{Kind, Mark, Node, Spanned};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://runbookd.db";

/// One problem in jobs.yaml, printed as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} error(s) in {}:\n{}", .0.len(), .0.first().map(|d| d.file.as_str()).unwrap_or("config"), .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// What a job does when it is due while an earlier run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// Record the new fire as `skipped` and keep the running one.
    #[default]
    Forbid,
    /// Start the new run beside the old.
    Allow,
    /// Cancel the running one, then start the new run.
    Replace,
}

impl fmt::Display for Concurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Concurrency::Forbid => "forbid",
            Concurrency::Allow => "allow",
            Concurrency::Replace => "replace",
        })
    }
}

/// A duration written as `30s`, `5m`, `2h`, `90d` or `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration `{s}`: {e} (use forms like 30s, 5m, 2h, 90d)"
            ))
        })
    }
}

/// Retry policy: `max` extra attempts after a failure or timeout, waiting
/// `backoff`, doubled each time, never more than `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max: 0,
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `next_attempt` (2 for the first retry).
    pub fn delay_before(&self, next_attempt: u32) -> Duration {
        let exp = next_attempt.saturating_sub(2).min(30);
        self.backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetries {
    #[serde(default)]
    max: u32,
    backoff: Option<Dur>,
    max_backoff: Option<Dur>,
}

impl RawRetries {
    fn over(&self, base: RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            max: self.max,
            backoff: self.backoff.map(|d| d.0).unwrap_or(base.backoff),
            max_backoff: self.max_backoff.map(|d| d.0).unwrap_or(base.max_backoff),
        }
    }
}

/// `defaults:`, applied to every job that does not set the field itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    /// IANA zone for schedules. Default `UTC`.
    timezone: Option<Spanned<String>>,
    /// Per-attempt limit. Default `1h`.
    timeout: Option<Dur>,
    /// Default `forbid`.
    concurrency: Option<Concurrency>,
    /// Default `{ max: 0, backoff: 30s, max_backoff: 10m }`.
    retries: Option<RawRetries>,
    /// Default: none (missed fires are not run).
    catch_up: Option<Dur>,
}

#[derive(Debug, Clone)]
pub struct Defaults {
    pub timezone: Tz,
    pub timeout: Duration,
    pub concurrency: Concurrency,
    pub retries: RetryPolicy,
    pub catch_up: Option<Duration>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timezone: Tz::UTC,
            timeout: Duration::from_secs(3600),
            concurrency: Concurrency::Forbid,
            retries: RetryPolicy::default(),
            catch_up: None,
        }
    }
}

/// `history:`, the run history store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    /// `postgres://…` or `sqlite://path`. Default `sqlite://runbookd.db`.
    database_url: Option<SecretUrl>,
    /// Runs older than this are deleted by the daemon. Default `90d`.
    retention: Option<Dur>,
    /// Bytes of log kept per run; the rest is dropped and the drop is said.
    /// Default 262144.
    log_max_bytes: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct HistoryConfig {
    pub database_url: SecretUrl,
    pub retention: Duration,
    pub log_max_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            database_url: SecretUrl::new(DEFAULT_DATABASE_URL),
            retention: Duration::from_secs(90 * 86400),
            log_max_bytes: 256 * 1024,
        }
    }
}

/// `daemon:`, settings of `runbookd serve`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    /// Address of /healthz and /metrics. Default `0.0.0.0:9090`.
    listen: Option<Spanned<String>>,
    /// How often a running run proves it is alive. Default `5s`.
    heartbeat: Option<Dur>,
    /// A running run whose heartbeat is older than this is `abandoned`.
    /// Default `30s`.
    stale_after: Option<Dur>,
    /// On SIGTERM, how long running jobs may finish before they are cancelled.
    /// Default `30s`.
    shutdown_grace: Option<Dur>,
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub listen: std::net::SocketAddr,
    pub heartbeat: Duration,
    pub stale_after: Duration,
    pub shutdown_grace: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: ([0, 0, 0, 0], 9090).into(),
            heartbeat: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// The fields every job has, whatever its kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommon {
    // Read from the node before deserializing (it picks the kind's struct);
    // declared so `kind` is a known field.
    #[allow(dead_code)]
    kind: Spanned<String>,
    description: Option<String>,
    // Schedule and timezone are read from the node by the loader (so their
    // errors are reported even when another field is broken); declared so
    // their types are checked and they are known fields.
    /// Cron, 5 fields or 6 with seconds first. No schedule: manual only.
    #[allow(dead_code)]
    schedule: Option<Spanned<String>>,
    #[allow(dead_code)]
    timezone: Option<Spanned<String>>,
    concurrency: Option<Concurrency>,
    timeout: Option<Dur>,
    retries: Option<RawRetries>,
    catch_up: Option<Dur>,
    #[serde(default)]
    suspend: bool,
}

#[derive(Debug, Clone)]
pub struct JobConfig {
    pub name: String,
    pub description: Option<String>,
    pub schedule: Option<CronExpr>,
    pub timezone: Tz,
    pub concurrency: Concurrency,
    pub timeout: Duration,
    pub retries: RetryPolicy,
    pub catch_up: Option<Duration>,
    pub suspend: bool,
    pub spec: JobSpec,
}

impl JobConfig {
    pub fn kind(&self) -> &'static str {
        self.spec.kind()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub defaults: Defaults,
    pub history: HistoryConfig,
    pub daemon: DaemonConfig,
    pub jobs: IndexMap<String, JobConfig>,
    /// Every secret value the file resolved to, for scrubbing output.
    pub redactor: Redactor,
}

impl Config {
    pub fn job(&self, name: &str) -> Result<&JobConfig, String> {
        self.jobs.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
            let hint = known
                .iter()
                .map(|k| (strsim::damerau_levenshtein(k, name), *k))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            format!(
                "no job named `{name}` in {}{hint}; jobs: {}",
                self.file.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })
    }
}

/// Reads and loads a jobs.yaml file with the process environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(path, &text, &|k| std::env::var(k).ok())
}

/// Loads jobs.yaml text. `env` resolves `${VAR}` references.
pub fn load_str(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let ((config, mut diags), secrets) = collecting(|| Loader::new(path, env).load(text));
    diags.sort();
    diags.dedup();
    match config {
        Some(mut c) if diags.is_empty() => {
            c.redactor = Redactor::new(secrets);
            Ok(c)
        }
        _ => Err(ConfigError::Invalid(diags)),
    }
}

const TOP_LEVEL: &[&str] = &["defaults", "history", "daemon", "jobs"];

struct Loader<'a> {
    file: String,
    env: &'a dyn Fn(&str) -> Option<String>,
    diags: Vec<Diagnostic>,
}

impl<'a> Loader<'a> {
    fn new(path: &Path, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Loader {
            file: path.display().to_string(),
            env,
            diags: Vec::new(),
        }
    }

    fn err(&mut self, mark: Mark, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line: mark.line,
            col: mark.col,
            message: message.into(),
        });
    }

    fn de<T: serde::de::DeserializeOwned>(&mut self, node: &Node, what: &str) -> Option<T> {
        match yaml::from_node::<T>(node) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(
                    e.mark.unwrap_or(node.mark),
                    format!("{what}: {}", e.message),
                );
                None
            }
        }
    }

    fn load(mut self, text: &str) -> (Option<Config>, Vec<Diagnostic>) {
        let mut root = match yaml::parse(text) {
            Ok(n) => n,
            Err(e) => {
                self.err(e.mark, format!("YAML syntax: {}", e.message));
                return (None, self.diags);
            }
        };
        self.check_duplicates(&root, "");
        self.interpolate(&mut root);
        if root.is_null() {
            root.kind = Kind::Map(Vec::new());
        }
        let Some(entries) = root.entries() else {
            self.err(
                root.mark,
                format!(
                    "expected a mapping with {}, found {}",
                    TOP_LEVEL.join(", "),
                    root.type_name()
                ),
            );
            return (None, self.diags);
        };
        for (k, _) in entries {
            let key = k.as_str().unwrap_or("");
            if !TOP_LEVEL.contains(&key) {
                self.err(k.mark, yaml::unknown_field_message(key, TOP_LEVEL));
            }
        }

        let defaults = self.defaults(root.get("defaults"));
        let history = self.history(root.get("history"));
        let daemon = self.daemon(root.get("daemon"));
        let mut jobs = IndexMap::new();
        match root.get("jobs") {
            None => {}
            Some(n) if n.is_null() => {}
            Some(n) => match n.entries() {
                None => self.err(
                    n.mark,
                    format!(
                        "jobs: expected a mapping of job name to job, found {}",
                        n.type_name()
                    ),
                ),
                Some(entries) => {
                    for (k, v) in entries {
                        let name = k.as_str().unwrap_or("").to_string();
                        if let Some(job) = self.job(&name, k.mark, v, &defaults) {
                            jobs.entry(name).or_insert(job);
                        }
                    }
                }
            },
        }
        let config = Config {
            file: PathBuf::from(&self.file),
            defaults,
            history,
            daemon,
            jobs,
            redactor: Redactor::default(),
        };
        (Some(config), self.diags)
    }

    /// Duplicate keys are an error everywhere; for jobs they would silently
    /// drop a job.
    fn check_duplicates(&mut self, node: &Node, path: &str) {
        match &node.kind {
            Kind::Map(entries) => {
                let mut seen: Vec<(&str, Mark)> = Vec::new();
                for (k, v) in entries {
                    let key = k.as_str().unwrap_or("");
                    if let Some((_, first)) = seen.iter().find(|(s, _)| *s == key) {
                        let what = if path == "jobs" { "job" } else { "key" };
                        let first = *first;
                        self.err(
                            k.mark,
                            format!(
                                "duplicate {what} `{key}` (first defined at line {}, column {})",
                                first.line, first.col
                            ),
                        );
                    } else {
                        seen.push((key, k.mark));
                    }
                    let child = if path.is_empty() {
                        key.to_string()
                    } else {
                        format!("{path}.{key}")
                    };
                    self.check_duplicates(v, &child);
                }
            }
            Kind::Seq(items) => items.iter().for_each(|n| self.check_duplicates(n, path)),
            Kind::Scalar { .. } => {}
        }
    }

    fn interpolate(&mut self, root: &mut Node) {
        let env = self.env;
        let mut errors = Vec::new();
        root.for_each_value_scalar(&mut |text, plain, secret, mark| {
            match interpolate::interpolate(text, env) {
                Ok(v) => *text = v,
                Err(errs) => {
                    for e in errs {
                        // Columns inside a scalar are exact for one-line plain
                        // scalars and off by the quote for quoted ones.
                        let at = if plain {
                            mark.right(e.offset)
                        } else {
                            mark.right(e.offset + 1)
                        };
                        errors.push((at, e.message));
                    }
                }
            }
            if secret {
                crate::secret::collect(text);
            }
        });
        for (at, m) in errors {
            self.err(at, m);
        }
    }

    fn timezone(&mut self, tz: &Spanned<String>) -> Option<Tz> {
        self.timezone_in(tz, "")
    }

    fn timezone_in(&mut self, tz: &Spanned<String>, prefix: &str) -> Option<Tz> {
        match parse_timezone(tz.value.trim()) {
            Ok(t) => Some(t),
            Err(m) => {
                self.err(tz.mark, format!("{prefix}{m}"));
                None
            }
        }
    }

    /// `Some(None)` when the key is absent or null, `None` after reporting a
    /// value that is not a scalar.
    fn spanned_scalar(
        &mut self,
        node: &Node,
        key: &str,
        what: &str,
    ) -> Option<Option<Spanned<String>>> {
        match node.get(key) {
            None => Some(None),
            Some(v) if v.is_null() => Some(None),
            Some(v) => match v.as_str() {
                Some(s) => Some(Some(Spanned {
                    value: s.to_string(),
                    mark: v.mark,
                })),
                None => {
                    self.err(
                        v.mark,
                        format!("{what}: {key}: expected a string, found {}", v.type_name()),
                    );
                    None
                }
            },
        }
    }

    fn defaults(&mut self, node: Option<&Node>) -> Defaults {
        let mut d = Defaults::default();
        let Some(raw) = node
            .filter(|n| !n.is_null())
            .and_then(|n| self.de::<RawDefaults>(n, "defaults"))
        else {
            return d;
        };
        if let Some(tz) = &raw.timezone
            && let Some(t) = self.timezone(tz)
        {
            d.timezone = t;
        }
        if let Some(t) = raw.timeout {
            d.timeout = t.0;
        }
        if let Some(c) = raw.concurrency {
            d.concurrency = c;
        }
        if let Some(r) = &raw.retries {
            d.retries = r.over(d.retries);
        }
        d.catch_up = raw.catch_up.map(|c| c.0);
        d
    }

    fn history(&mut self, node: Option<&Node>) -> HistoryConfig {
        let mut h = HistoryConfig::default();
        let Some(raw) = node
            .filter(|n| !n.is_null())
            .and_then(|n| self.de::<RawHistory>(n, "history"))
        else {
            return h;
        };
        if let Some(u) = raw.database_url
            && !u.expose().is_empty()
        {
            h.database_url = u;
        }
        if let Some(r) = raw.retention {
            if r.0 < Duration::from_secs(3600) {
                let mark = node
                    .and_then(|n| n.get("retention"))
                    .map(|n| n.mark)
                    .unwrap_or_default();
                self.err(mark, "history.retention must be at least 1h");
            }
            h.retention = r.0;
        }
        if let Some(b) = raw.log_max_bytes {
            h.log_max_bytes = b;
        }
        h
    }

    fn daemon(&mut self, node: Option<&Node>) -> DaemonConfig {
        let mut d = DaemonConfig::default();
        let Some(raw) = node
            .filter(|n| !n.is_null())
            .and_then(|n| self.de::<RawDaemon>(n, "daemon"))
        else {
            return d;
        };
        if let Some(l) = &raw.listen {
            match l.value.parse() {
                Ok(a) => d.listen = a,
                Err(_) => self.err(
                    l.mark,
                    format!(
                        "daemon.listen: `{}` is not an address like 0.0.0.0:9090",
                        l.value
                    ),
                ),
            }
        }
        if let Some(h) = raw.heartbeat {
            d.heartbeat = h.0;
        }
        if let Some(s) = raw.stale_after {
            d.stale_after = s.0;
        }
        if let Some(g) = raw.shutdown_grace {
            d.shutdown_grace = g.0;
        }
        if d.heartbeat.is_zero() || d.stale_after < d.heartbeat * 2 {
            let mark = node.map(|n| n.mark).unwrap_or_default();
            self.err(
                mark,
                format!(
                    "daemon.stale_after ({}) must be at least twice daemon.heartbeat ({}), or live runs would be marked abandoned",
                    humantime::format_duration(d.stale_after),
                    humantime::format_duration(d.heartbeat)
                ),
            );
        }
        d
    }

    fn job(
        &mut self,
        name: &str,
        name_mark: Mark,
        node: &Node,
        defaults: &Defaults,
    ) -> Option<JobConfig> {
        if !is_job_name(name) {
            self.err(
                name_mark,
                format!(
                    "job name `{name}` must be 1-52 characters of a-z, 0-9 and `-`, starting and ending with a letter or digit (it names Kubernetes CronJobs)"
                ),
            );
        }
        let Some(entries) = node.entries() else {
            self.err(
                node.mark,
                format!(
                    "job `{name}`: expected a mapping, found {}",
                    node.type_name()
                ),
            );
            return None;
        };
        let Some(kind_node) = node.get("kind") else {
            self.err(
                node.mark,
                format!(
                    "job `{name}`: missing field `kind` (one of: {})",
                    crate::jobs::KINDS.join(", ")
                ),
            );
            return None;
        };
        let kind = kind_node.as_str().unwrap_or("").trim().to_string();
        let Some(kind_fields) = crate::jobs::fields(&kind) else {
            self.err(
                kind_node.mark,
                format!(
                    "job `{name}`: unknown kind `{kind}` (one of: {})",
                    crate::jobs::KINDS.join(", ")
                ),
            );
            return None;
        };
        let common_fields = yaml::struct_fields::<RawCommon>();
        let mut common = Vec::new();
        let mut specific = Vec::new();
        for (k, v) in entries {
            let key = k.as_str().unwrap_or("");
            if common_fields.contains(&key) {
                common.push((k.clone(), v.clone()));
            } else if kind_fields.contains(&key) {
                specific.push((k.clone(), v.clone()));
            } else {
                let all: Vec<&str> = common_fields.iter().chain(kind_fields).copied().collect();
                self.err(
                    k.mark,
                    format!("job `{name}`: {}", yaml::unknown_field_message(key, &all)),
                );
            }
        }
        let what = format!("job `{name}`");
        let common: Option<RawCommon> = self.de(
            &Node {
                kind: Kind::Map(common),
                mark: node.mark,
            },
            &what,
        );
        let spec = match crate::jobs::parse_spec(
            &kind,
            &Node {
                kind: Kind::Map(specific),
                mark: node.mark,
            },
        ) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(
                    e.mark.unwrap_or(node.mark),
                    format!("{what}: {}", e.message),
                );
                None
            }
        };
        // Schedule and timezone are checked from the node itself, so a
        // structural error elsewhere in the job does not hide them.
        let timezone = match self.spanned_scalar(node, "timezone", &what) {
            Some(Some(tz)) => self.timezone_in(&tz, &format!("{what}: ")).map(Some),
            Some(None) => Some(None),
            None => None,
        };
        let schedule = match self.spanned_scalar(node, "schedule", &what) {
            Some(Some(s)) => match s.value.parse::<CronExpr>() {
                Ok(c) => Some(Some(c)),
                Err(e) => {
                    // Point inside the expression: after a quote if quoted.
                    let quoted = node
                        .get("schedule")
                        .map(|n| matches!(n.kind, Kind::Scalar { plain: false, .. }))
                        .unwrap_or(false);
                    let lead = s.value.len() - s.value.trim_start().len();
                    let at = s.mark.right(e.offset + lead + usize::from(quoted));
                    self.err(
                        at,
                        format!("{what}: invalid schedule `{}`: {}", s.value, e.message),
                    );
                    None
                }
            },
            Some(None) => Some(None),
            None => None,
        };
        let common = common?;
        let timezone = timezone?.unwrap_or(defaults.timezone);
        let retries = common
            .retries
            .as_ref()
            .map(|r| r.over(defaults.retries))
            .unwrap_or(defaults.retries);
        if retries.max_backoff < retries.backoff {
            let mark = node.get("retries").map(|n| n.mark).unwrap_or(node.mark);
            self.err(
                mark,
                format!("{what}: retries.max_backoff must not be less than retries.backoff"),
            );
        }
        let timeout = common.timeout.map(|t| t.0).unwrap_or(defaults.timeout);
        if timeout.is_zero() {
            let mark = node.get("timeout").map(|n| n.mark).unwrap_or(node.mark);
            self.err(mark, format!("{what}: timeout must be more than 0s"));
        }
        let catch_up = common.catch_up.map(|c| c.0).or(defaults.catch_up);
        if common.catch_up.is_some() && common.schedule.is_none() {
            let mark = node.get("catch_up").map(|n| n.mark).unwrap_or(node.mark);
            self.err(
                mark,
                format!(
                    "{what}: catch_up needs a schedule (a manual-only job has no fires to miss)"
                ),
            );
        }
        Some(JobConfig {
            name: name.to_string(),
            description: common.description,
            schedule: schedule?,
            timezone,
            concurrency: common.concurrency.unwrap_or(defaults.concurrency),
            timeout,
            retries,
            catch_up,
            suspend: common.suspend,
            spec: spec?,
        })
    }
}

fn is_job_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 52
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests;
