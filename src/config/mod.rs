//! jobs.yaml: the model, its defaults, and loading.
//!
//! Loading is pure apart from reading the file: the environment is passed in,
//! and everything that can be checked without I/O is checked here, so
//! `runbookd validate` finds every error a run would hit at start-up. The
//! file is read by `crate::yaml` (positions, interpolation, kinds); every
//! semantic problem is then found from the positions the values carry, and
//! all are reported together.
//!
//! This module sits below the job kinds: it knows a job's common fields and
//! holds its kind's own part as a [`JobSpec`], read through the registry
//! ([`JobKinds`]) the caller passes in.

mod alerting;
mod mail;
pub mod urls;

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use indexmap::IndexMap;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::model::{Dur, Params};
use crate::retry::Backoff;
use crate::schedule::{CronExpr, parse_timezone};
use crate::secret::{CapabilityUrl, Redactor, SecretUrl, collecting};
use crate::yaml::{self, At, Common, Diags, Kinded, Lenient, Pos, Text};

pub use crate::yaml::Diagnostic;
pub use alerting::{AlertmanagerConfig, OWN_LABELS, Severity};
pub use mail::{DEFAULT_FROM, Links, MailConfig, addresses};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://runbookd.db";

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

/// A job kind's own configuration, as read from jobs.yaml.
pub trait JobSpec: fmt::Debug + Send + Sync + Any {
    /// Problems only visible once the whole job is read, each at its
    /// position. `job` names the job for messages.
    fn validate(&self, _job: &str, _diags: &mut Diags) {}

    /// Other jobs this one names, each with the kind it must be (`"*"`:
    /// any kind): checked once the whole file is read.
    fn references(&self) -> Vec<(&Text, &'static str)> {
        Vec::new()
    }

    /// Checks the parameters of a run given by hand, before it is claimed.
    /// By default a kind takes none.
    fn accepts(&self, params: &Params) -> Result<(), RunRefused> {
        match params.keys().next() {
            None => Ok(()),
            Some(k) => Err(RunRefused::NoParameters(k.clone())),
        }
    }

    /// Why a real run of this job must be confirmed by the operator in so
    /// many words (`run --confirm`, `trigger --confirm`), if it must: it
    /// takes production down. A dry run needs no confirmation.
    fn confirmation(&self) -> Option<String> {
        None
    }

    fn as_any(&self) -> &dyn Any;
}

/// The registry of job kinds the loader reads jobs with (`jobs::Registry`).
pub trait JobKinds {
    const NAMES: &'static [&'static str];

    fn deserialize<'de, D: Deserializer<'de>>(
        kind: &str,
        d: D,
    ) -> Result<Arc<dyn JobSpec>, D::Error>;
}

/// What a job does when it is due while an earlier run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
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

/// When a job's outcome is mailed to its recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notify {
    /// Never.
    #[default]
    Never,
    /// The first failure of a job that was not failing (repeats are not
    /// mailed), and one "recovered" mail at the next success. Retries do
    /// not mail until the last attempt.
    OnFailure,
    /// Every run's final outcome, success or failure.
    Always,
}

crate::words! { Concurrency { Forbid = "forbid", Allow = "allow", Replace = "replace" } }
crate::words! { Notify { Never = "never", OnFailure = "on_failure", Always = "always" } }

impl fmt::Display for Concurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Concurrency::Forbid => "forbid",
            Concurrency::Allow => "allow",
            Concurrency::Replace => "replace",
        })
    }
}

/// Retry policy: `max` extra attempts after a failure or timeout, waiting
/// `backoff`, doubled each time, never more than `max_backoff` (each wait
/// jittered shorter by up to a quarter, see [`crate::retry`]).
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
    fn waits(&self) -> Backoff {
        Backoff::new(self.backoff, self.max_backoff)
    }

    /// The longest wait before attempt `next_attempt` (2 for the first
    /// retry).
    pub fn delay_before(&self, next_attempt: u32) -> Duration {
        self.waits().ceiling(next_attempt.saturating_sub(1))
    }

    /// The wait before attempt `next_attempt`: [`delay_before`](Self::delay_before),
    /// jittered.
    pub fn wait_before(&self, next_attempt: u32) -> Duration {
        self.waits().delay(next_attempt.saturating_sub(1))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetries {
    /// Extra attempts. Default 0.
    #[serde(default)]
    max: u32,
    /// First wait. Default `30s`.
    backoff: Option<Dur>,
    /// Longest wait. Default `10m`.
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
    timezone: Option<Text>,
    /// Per-attempt limit. Default `1h`.
    timeout: Option<Dur>,
    /// Default `forbid`.
    concurrency: Option<Concurrency>,
    /// Default `{ max: 0, backoff: 30s, max_backoff: 10m }`.
    retries: Option<Lenient<RawRetries>>,
    /// Default: none (missed fires are not run).
    catch_up: Option<Dur>,
    /// Default `never`.
    notify: Option<Notify>,
}

#[derive(Debug, Clone)]
pub struct Defaults {
    pub timezone: Tz,
    pub timeout: Duration,
    pub concurrency: Concurrency,
    pub retries: RetryPolicy,
    pub catch_up: Option<Duration>,
    pub notify: Notify,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timezone: Tz::UTC,
            timeout: Duration::from_secs(3600),
            concurrency: Concurrency::Forbid,
            retries: RetryPolicy::default(),
            catch_up: None,
            notify: Notify::Never,
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
    retention: Option<At<Dur>>,
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
    /// Address of /healthz, /readyz and /metrics. Default `0.0.0.0:8790`:
    /// none of Prometheus (9090), Alertmanager (9093-9094) or the node
    /// exporter (9100), and outside the fully allocated exporter range.
    listen: Option<Text>,
    /// How often a running run proves it is alive. Default `5s`.
    heartbeat: Option<Dur>,
    /// A running run whose heartbeat is older than this is `abandoned`.
    /// Default `30s`.
    stale_after: Option<Dur>,
    /// On SIGTERM, how long running jobs may finish before they are cancelled.
    /// Default `30s`.
    shutdown_grace: Option<Dur>,
    /// On Postgres, LISTEN for triggers and cancels so they take effect at
    /// once; polling (every tick, every heartbeat) stays as the fallback.
    /// Default `true`; SQLite always polls.
    notify: Option<bool>,
}

/// `console:`, the read-only web console of `runbookd serve` (README,
/// "Console").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    /// Serve the console beside /healthz, /readyz and /metrics. Default
    /// `true`.
    enabled: Option<bool>,
    /// A file (a mounted Secret) holding the bearer token every console
    /// request must carry (`Authorization: Bearer …`). Default none.
    bearer_token_file: Option<Text>,
    /// A file holding `user:password`, asked for with HTTP basic auth.
    /// Default none. At most one of the two; with neither the console
    /// asks for nothing (a ClusterIP reached by `kubectl port-forward`).
    basic_auth_file: Option<Text>,
}

/// How the console asks who is there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConsoleAuth {
    /// Nothing asked (the default).
    #[default]
    None,
    /// `Authorization: Bearer <the file's content>`.
    Bearer(PathBuf),
    /// `Authorization: Basic` with the file's `user:password`.
    Basic(PathBuf),
}

#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    pub enabled: bool,
    pub auth: ConsoleAuth,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            auth: ConsoleAuth::None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub listen: std::net::SocketAddr,
    pub heartbeat: Duration,
    pub stale_after: Duration,
    pub shutdown_grace: Duration,
    pub notify: bool,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: ([0, 0, 0, 0], 8790).into(),
            heartbeat: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            notify: true,
        }
    }
}

/// The fields every job has, whatever its kind.
#[derive(Debug, Default)]
struct JobCommon {
    description: Option<Text>,
    /// Cron, 5 fields or 6 with seconds first. No schedule: manual only.
    schedule: Option<Text>,
    /// Default `defaults.timezone`.
    timezone: Option<Text>,
    concurrency: Option<Concurrency>,
    timeout: Option<At<Dur>>,
    retries: Option<At<Lenient<RawRetries>>>,
    catch_up: Option<At<Dur>>,
    /// Default `false`.
    suspend: bool,
    /// Default `defaults.notify`.
    notify: Option<Notify>,
    /// Comma-separated; default `mail.to`.
    notify_to: Option<Text>,
    /// Jobs started when a run fails for good. Default none.
    on_failure: Option<Vec<Text>>,
    /// The `severity` label of its alert. Default `warning`. (`severity`
    /// alone is the triage kind's levels.)
    alert_severity: Option<Severity>,
    /// A dead man's switch to ping (a capability URL, secret whole).
    /// Default none; empty is none.
    ping_url: Option<Text>,
}

impl<'de> Common<'de> for JobCommon {
    const FIELDS: &'static [&'static str] = &[
        "kind",
        "description",
        "schedule",
        "timezone",
        "concurrency",
        "timeout",
        "retries",
        "catch_up",
        "suspend",
        "notify",
        "notify_to",
        "on_failure",
        "alert_severity",
        "ping_url",
    ];

    fn take<M: MapAccess<'de>>(&mut self, key: &str, map: &mut M) -> Result<bool, M::Error> {
        match key {
            "kind" => {
                map.next_value::<IgnoredAny>()?;
            }
            "description" => self.description = map.next_value()?,
            "schedule" => self.schedule = map.next_value()?,
            "timezone" => self.timezone = map.next_value()?,
            "concurrency" => self.concurrency = map.next_value()?,
            "timeout" => self.timeout = map.next_value()?,
            "retries" => self.retries = map.next_value()?,
            "catch_up" => self.catch_up = map.next_value()?,
            "suspend" => self.suspend = map.next_value::<Option<bool>>()?.unwrap_or(false),
            "notify" => self.notify = map.next_value()?,
            "notify_to" => self.notify_to = map.next_value()?,
            "on_failure" => self.on_failure = map.next_value()?,
            "alert_severity" => self.alert_severity = map.next_value()?,
            "ping_url" => self.ping_url = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

type RawJob = Kinded<JobCommon, Arc<dyn JobSpec>>;

/// `jobs:` in file order, each read by its kind.
struct RawJobs<R>(Vec<(Text, RawJob)>, PhantomData<R>);

impl<'de, R: JobKinds> Deserialize<'de> for RawJobs<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Jobs<R>(PhantomData<R>);
        impl<'de, R: JobKinds> Visitor<'de> for Jobs<R> {
            type Value = RawJobs<R>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of job name to job")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(RawJobs(Vec::new(), PhantomData))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut jobs = Vec::new();
                while let Some(name) = map.next_key::<Text>()? {
                    let job = map.next_value_seed(Job::<R>(PhantomData))?;
                    jobs.push((name, job));
                }
                Ok(RawJobs(jobs, PhantomData))
            }
        }
        struct Job<R>(PhantomData<R>);
        impl<'de, R: JobKinds> DeserializeSeed<'de> for Job<R> {
            type Value = RawJob;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawJob, D::Error> {
                d.deserialize_map(self)
            }
        }
        impl<'de, R: JobKinds> Visitor<'de> for Job<R> {
            type Value = RawJob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a job: a mapping with `kind`")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<RawJob, M::Error> {
                yaml::visit_kinded(map, "job", R::NAMES, false, |kind, de| {
                    R::deserialize(kind, de)
                })
            }
        }
        d.deserialize_any(Jobs::<R>(PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound = "R: JobKinds")]
struct RawFile<R> {
    #[serde(default)]
    defaults: Option<Lenient<RawDefaults>>,
    #[serde(default)]
    history: Option<Lenient<RawHistory>>,
    #[serde(default)]
    daemon: Option<At<Lenient<RawDaemon>>>,
    #[serde(default)]
    mail: Option<Lenient<mail::RawMail>>,
    #[serde(default)]
    links: Option<Lenient<mail::RawLinks>>,
    #[serde(default)]
    alertmanager: Option<Lenient<alerting::RawAlertmanager>>,
    #[serde(default)]
    console: Option<At<Lenient<RawConsole>>>,
    #[serde(default)]
    jobs: Option<RawJobs<R>>,
}

#[derive(Debug, Clone)]
pub struct JobConfig {
    pub name: String,
    /// The registered kind, e.g. `checklist`.
    pub kind: &'static str,
    pub description: Option<String>,
    pub schedule: Option<CronExpr>,
    pub timezone: Tz,
    pub concurrency: Concurrency,
    pub timeout: Duration,
    pub retries: RetryPolicy,
    pub catch_up: Option<Duration>,
    pub suspend: bool,
    pub notify: Notify,
    /// Who its notifications go to (`notify_to`, else `mail.to`).
    pub notify_to: Vec<String>,
    /// Jobs started, trigger `chained`, when a run of this one fails for
    /// good (after its last retry). A chained run never chains.
    pub on_failure: Vec<Text>,
    /// Its alert's `severity` label (`alertmanager:`), from
    /// `alert_severity`.
    pub severity: Severity,
    /// The dead man's switch its runs ping: `/start`, then the URL itself
    /// or `/fail`.
    pub ping_url: Option<CapabilityUrl>,
    pub spec: Arc<dyn JobSpec>,
    /// The job as written in the file (its lines, dedented, `${VAR}`s
    /// unresolved), for the console; shown only through the redactor.
    pub source: String,
}

impl JobConfig {
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Refuses a real run of a job that takes production down unless the
    /// operator confirmed it; a dry run changes nothing and needs no
    /// confirmation.
    pub fn check_confirmed(&self, confirmed: bool, dry_run: bool) -> Result<(), RunRefused> {
        match self.spec.confirmation() {
            Some(why) if !confirmed && !dry_run => Err(RunRefused::Unconfirmed(why)),
            _ => Ok(()),
        }
    }

    /// The kind's own configuration, if it is a `T`.
    pub fn spec_as<T: 'static>(&self) -> Option<&T> {
        self.spec.as_any().downcast_ref::<T>()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub defaults: Defaults,
    pub history: HistoryConfig,
    pub daemon: DaemonConfig,
    pub mail: MailConfig,
    pub links: Links,
    /// Where job failures go as alerts, when set.
    pub alertmanager: Option<AlertmanagerConfig>,
    pub console: ConsoleConfig,
    pub jobs: IndexMap<String, JobConfig>,
    /// Every secret value the file resolved to, for scrubbing output.
    pub redactor: Redactor,
}

impl Config {
    pub fn job(&self, name: &str) -> Result<&JobConfig, UnknownJob> {
        self.jobs.get(name).ok_or_else(|| {
            let known: Vec<String> = self.jobs.keys().cloned().collect();
            let like = known
                .iter()
                .map(|k| (strsim::damerau_levenshtein(k, name), k))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| k.clone());
            UnknownJob {
                name: name.to_string(),
                file: self.file.clone(),
                like,
                known,
            }
        })
    }
}

/// A job asked for by name that the file does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no job named `{name}` in {}{}; jobs: {}",
    .file.display(),
    .like.as_ref().map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default(),
    if .known.is_empty() { "none".to_string() } else { .known.join(", ") }
)]
pub struct UnknownJob {
    pub name: String,
    pub file: PathBuf,
    /// The nearest name the file has, if one is close.
    pub like: Option<String>,
    /// Every job the file has, in its order.
    pub known: Vec<String>,
}

/// Why a run of a job is refused before it is claimed: parameters its
/// kind does not take ([`JobSpec::accepts`]), or no confirmation for a job
/// that takes production down ([`JobConfig::check_confirmed`]). The
/// checklist's own refusals are here because the trait returns one type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunRefused {
    #[error("this kind of job takes no `{0}` parameter")]
    NoParameters(String),
    #[error("a checklist takes `only` and `skip`, not `{0}`")]
    NotChecklistParameter(String),
    #[error("--{param}: no check named `{name}` in this checklist; its checks: {}", .checks.join(", "))]
    NoSuchCheck {
        param: String,
        name: String,
        checks: Vec<String>,
    },
    #[error("--only and --skip leave no check to run")]
    NoCheckLeft,
    /// The kind's [`JobSpec::confirmation`] comes first.
    #[error("{0}: run it with --confirm (or --dry-run to see what it would do)")]
    Unconfirmed(String),
}

/// Reads and loads a jobs.yaml file with the process environment.
pub fn load_file<R: JobKinds>(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str::<R>(path, &text, &|k| std::env::var(k).ok())
}

/// Loads jobs.yaml text. `env` resolves `${VAR}` references.
pub fn load_str<R: JobKinds>(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let ((loaded, built, diags), secrets) = collecting(|| {
        let loaded = yaml::load::<Lenient<RawFile<R>>>(text, env);
        let mut diags = Diags::default();
        let built = loaded
            .value
            .as_ref()
            .map(|raw| build::<R>(path, &raw.0, &mut diags));
        ((loaded.diags, loaded.secrets, loaded.jobs), built, diags)
    });
    let (read_diags, tagged_secrets, job_starts) = loaded;
    // A value refused as it was read stands in as its default (a bad
    // duration as 0s); judging that default again would report a second,
    // false problem at the same place ("timeout must be more than 0s").
    let refused: std::collections::HashSet<Pos> = read_diags.iter().map(|(p, _)| *p).collect();
    let mut all: Vec<Diagnostic> = read_diags
        .into_iter()
        .chain(
            diags
                .into_vec()
                .into_iter()
                .filter(|(p, _)| !refused.contains(p)),
        )
        .map(|(pos, message)| Diagnostic {
            file: file.clone(),
            line: pos.line,
            col: pos.col,
            message: in_job(&job_starts, pos, message),
        })
        .collect();
    all.sort();
    all.dedup();
    match built {
        Some(mut c) if all.is_empty() => {
            c.redactor = Redactor::new(secrets.into_iter().chain(tagged_secrets));
            for (name, at) in &job_starts {
                if let Some(j) = c.jobs.get_mut(name) {
                    j.source = job_source(text, *at);
                }
            }
            Ok(c)
        }
        _ => Err(ConfigError::Invalid(all)),
    }
}

/// The lines of the job whose name is at `at`: its key's line and every
/// line indented deeper after it, dedented, trailing blank lines dropped.
fn job_source(text: &str, at: Pos) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(first) = at.line.checked_sub(1).and_then(|i| lines.get(i)) else {
        return String::new();
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    let base = indent(first);
    let mut out = vec![&first[base.min(first.len())..]];
    for l in &lines[at.line..] {
        if !l.trim().is_empty() && indent(l) <= base {
            break;
        }
        out.push(l.get(base..).unwrap_or("").trim_end());
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out.join("\n") + "\n"
}

/// Prefixes a problem inside a job with the job's name, unless it says it.
fn in_job(starts: &[(String, Pos)], pos: Pos, message: String) -> String {
    let job = starts
        .iter()
        .rev()
        .find(|(_, at)| *at <= pos)
        .map(|(name, _)| name);
    match job {
        Some(name) if !message.starts_with("job `") && !message.starts_with("duplicate job") => {
            format!("job `{name}`: {message}")
        }
        _ => message,
    }
}

fn timezone(t: &Text, diags: &mut Diags) -> Option<Tz> {
    match parse_timezone(t.trim()) {
        Ok(tz) => Some(tz),
        Err(m) => {
            diags.at(t.at, m.to_string());
            None
        }
    }
}

/// Builds the model from what was read, reporting every semantic problem.
fn build<R: JobKinds>(path: &Path, raw: &RawFile<R>, diags: &mut Diags) -> Config {
    let defaults = defaults(raw.defaults.as_ref().map(|d| &d.0), diags);
    let history = history(raw.history.as_ref().map(|h| &h.0), diags);
    let daemon = daemon(raw.daemon.as_ref(), diags);
    let console = console(raw.console.as_ref(), diags);
    let mail = mail::mail(raw.mail.as_ref().map(|m| &m.0), diags);
    let links = mail::links(raw.links.as_ref().map(|l| &l.0), diags);
    let alertmanager = alerting::alertmanager(
        raw.alertmanager.as_ref().map(|a| &a.0),
        daemon.heartbeat,
        diags,
    );
    let mut jobs = IndexMap::new();
    if raw.jobs.as_ref().is_none_or(|j| j.0.is_empty()) {
        // An empty file, or `jobs:` alone, would serve nothing and say ok.
        diags.at(
            Pos { line: 1, col: 1 },
            "no jobs: the file needs a `jobs:` mapping with at least one job",
        );
    }
    for (name, job) in raw.jobs.iter().flat_map(|j| j.0.iter()) {
        if let Some(j) = build_job::<R>(name, job, &defaults, &mail, alertmanager.is_some(), diags)
        {
            jobs.entry(name.to_string()).or_insert(j);
        }
    }
    for job in jobs.values() {
        for (i, next) in job.on_failure.iter().enumerate() {
            if job.on_failure[..i]
                .iter()
                .any(|n| n.as_str() == next.as_str())
            {
                diags.at(
                    next.at,
                    format!("on_failure names `{}` twice", next.as_str()),
                );
            } else if next.as_str() == job.name {
                diags.at(
                    next.at,
                    format!("`{}` cannot chain to itself on failure", job.name),
                );
            } else if let Some(target) = jobs.get(next.as_str()) {
                // A chained run is started with no parameters; a job that
                // refuses to run without one would be refused at the very
                // failure it was meant to answer.
                if let Err(why) = target
                    .spec
                    .accepts(&Params::default())
                    .and_then(|()| target.check_confirmed(false, false))
                {
                    diags.at(
                        next.at,
                        format!(
                            "on_failure: `{}` cannot run chained: {why}; a chained run has no --confirm or other parameters",
                            next.as_str()
                        ),
                    );
                }
            } else {
                diags.at(
                    next.at,
                    format!("on_failure: no job named `{}`", next.as_str()),
                );
            }
        }
        for (name, kind) in job.spec.references() {
            match jobs.get(name.as_str()) {
                None if kind == "*" => {
                    diags.at(name.at, format!("no job named `{}`", name.as_str()))
                }
                None => diags.at(
                    name.at,
                    format!(
                        "no job named `{}` (a {kind} job is needed here)",
                        name.as_str()
                    ),
                ),
                Some(j) if kind != "*" && j.kind != kind => diags.at(
                    name.at,
                    format!(
                        "`{}` is a {} job; a {kind} job is needed here",
                        name.as_str(),
                        j.kind
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    Config {
        file: path.to_path_buf(),
        defaults,
        history,
        daemon,
        mail,
        links,
        alertmanager,
        console,
        jobs,
        redactor: Redactor::default(),
    }
}

fn console(raw: Option<&At<Lenient<RawConsole>>>, diags: &mut Diags) -> ConsoleConfig {
    let mut c = ConsoleConfig::default();
    let Some(At {
        value: Lenient(raw),
        at,
    }) = raw
    else {
        return c;
    };
    if let Some(e) = raw.enabled {
        c.enabled = e;
    }
    // Empty (a `${VAR:-}` the chart leaves unset) is not set, as for
    // alertmanager.url: the shipped file names both variables.
    let named = |t: &Option<Text>| {
        t.as_ref()
            .map(|t| t.trim())
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    };
    c.auth = match (named(&raw.bearer_token_file), named(&raw.basic_auth_file)) {
        (Some(_), Some(_)) => {
            diags.at(
                *at,
                "console: set bearer_token_file or basic_auth_file, not both (one way to log in)",
            );
            ConsoleAuth::None
        }
        (Some(b), None) => ConsoleAuth::Bearer(b),
        (None, Some(b)) => ConsoleAuth::Basic(b),
        (None, None) => ConsoleAuth::None,
    };
    c
}

fn defaults(raw: Option<&RawDefaults>, diags: &mut Diags) -> Defaults {
    let mut d = Defaults::default();
    let Some(raw) = raw else { return d };
    if let Some(tz) = raw.timezone.as_ref().and_then(|t| timezone(t, diags)) {
        d.timezone = tz;
    }
    if let Some(t) = raw.timeout {
        d.timeout = t.0;
    }
    if let Some(c) = raw.concurrency {
        d.concurrency = c;
    }
    if let Some(r) = &raw.retries {
        d.retries = r.0.over(d.retries);
    }
    d.catch_up = raw.catch_up.map(|c| c.0);
    if let Some(n) = raw.notify {
        d.notify = n;
    }
    d
}

fn history(raw: Option<&RawHistory>, diags: &mut Diags) -> HistoryConfig {
    let mut h = HistoryConfig::default();
    let Some(raw) = raw else { return h };
    if let Some(u) = &raw.database_url {
        urls::check(
            u,
            "history.database_url",
            urls::UrlKind::History,
            Pos::default(),
            diags,
        );
        h.database_url = u.clone();
    }
    if let Some(r) = raw.retention {
        if r.value.0 < Duration::from_secs(3600) {
            diags.at(r.at, "history.retention must be at least 1h");
        }
        h.retention = r.value.0;
    }
    if let Some(b) = raw.log_max_bytes {
        h.log_max_bytes = b;
    }
    h
}

fn daemon(raw: Option<&At<Lenient<RawDaemon>>>, diags: &mut Diags) -> DaemonConfig {
    let mut d = DaemonConfig::default();
    let Some(At {
        value: Lenient(raw),
        at,
    }) = raw
    else {
        return d;
    };
    if let Some(l) = &raw.listen {
        match l.parse() {
            Ok(a) => d.listen = a,
            Err(_) => diags.at(
                l.at,
                format!(
                    "daemon.listen: `{}` is not an address like 0.0.0.0:8790",
                    l.as_str()
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
    if let Some(n) = raw.notify {
        d.notify = n;
    }
    if d.heartbeat.is_zero() || d.stale_after < d.heartbeat * 2 {
        diags.at(
            *at,
            format!(
                "daemon.stale_after ({}) must be at least twice daemon.heartbeat ({}), or live runs would be marked abandoned",
                humantime::format_duration(d.stale_after),
                humantime::format_duration(d.heartbeat)
            ),
        );
    }
    d
}

fn build_job<R: JobKinds>(
    name: &Text,
    raw: &RawJob,
    defaults: &Defaults,
    mail: &MailConfig,
    alerting: bool,
    diags: &mut Diags,
) -> Option<JobConfig> {
    if !is_job_name(name) {
        diags.at(
            name.at,
            format!(
                "job name `{}` must be 1-52 characters of a-z, 0-9 and `-`, starting and ending with a letter or digit (it names Kubernetes CronJobs)",
                name.as_str()
            ),
        );
    }
    let common = &raw.common;
    let timezone = match &common.timezone {
        Some(t) => timezone(t, diags),
        None => Some(defaults.timezone),
    };
    let schedule = match &common.schedule {
        None => Some(None),
        Some(s) => match s.parse::<CronExpr>() {
            Ok(c) => Some(Some(c)),
            Err(e) => {
                let lead = s.len() - s.trim_start().len();
                diags.at(
                    s.inside(e.offset + lead),
                    format!("invalid schedule `{}`: {}", s.as_str(), e.message),
                );
                None
            }
        },
    };
    let retries = common
        .retries
        .as_ref()
        .map(|r| r.value.0.over(defaults.retries))
        .unwrap_or(defaults.retries);
    if retries.max_backoff < retries.backoff {
        let at = common.retries.as_ref().map(|r| r.at).unwrap_or(name.at);
        diags.at(
            at,
            "retries.max_backoff must not be less than retries.backoff",
        );
    }
    let timeout = common
        .timeout
        .map(|t| t.value.0)
        .unwrap_or(defaults.timeout);
    if timeout.is_zero() {
        let at = common.timeout.map(|t| t.at).unwrap_or(name.at);
        diags.at(at, "timeout must be more than 0s");
    }
    if let Some(c) = common.catch_up
        && common.schedule.is_none()
    {
        diags.at(
            c.at,
            "catch_up needs a schedule (a manual-only job has no fires to miss)",
        );
    }
    let notify = common.notify.unwrap_or(defaults.notify);
    let notify_to = match &common.notify_to {
        Some(t) => addresses(t, "notify_to", diags),
        None => mail.to.clone(),
    };
    // With Alertmanager set, a job may notify by alert alone.
    if notify != Notify::Never && notify_to.is_empty() && !alerting {
        let at = common.notify_to.as_ref().map(|t| t.at).unwrap_or(name.at);
        diags.at(
            at,
            format!(
                "notify: {} needs recipients: set mail.to or this job's notify_to (or alertmanager.url, for alerts alone)",
                match notify {
                    Notify::Always => "always",
                    _ => "on_failure",
                }
            ),
        );
    }
    let ping_url = alerting::ping_url(common.ping_url.as_ref(), diags);
    let spec = raw.spec.as_ref()?;
    spec.validate(name, diags);
    let kind = R::NAMES.iter().find(|k| **k == raw.kind.as_str())?;
    Some(JobConfig {
        source: String::new(),
        name: name.to_string(),
        kind,
        description: common.description.as_ref().map(|d| d.to_string()),
        schedule: schedule?,
        timezone: timezone?,
        concurrency: common.concurrency.unwrap_or(defaults.concurrency),
        timeout,
        retries,
        catch_up: common.catch_up.map(|c| c.value.0).or(defaults.catch_up),
        suspend: common.suspend,
        notify,
        notify_to,
        on_failure: common.on_failure.clone().unwrap_or_default(),
        severity: common.alert_severity.unwrap_or_default(),
        ping_url,
        spec: spec.clone(),
    })
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
