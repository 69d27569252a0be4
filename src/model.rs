//! The plain data of a run: ids, statuses, the history row, check results,
//! step records and durations. Every layer speaks these types; this module
//! imports nothing of runbookd's, so it can sit below all of them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub type RunId = i64;

/// Parameters of a run given by hand (`run --only`, later `trigger
/// --param`), by name.
pub type Params = std::collections::BTreeMap<String, String>;

/// An enum stored and shown as a fixed lowercase word.
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!(
                        concat!("unknown ", stringify!($name), " `{}` (one of: {})"),
                        other,
                        [$($text),*].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum! {
    /// Why a run started.
    Trigger {
        Schedule => "schedule",
        Manual => "manual",
        Catchup => "catchup",
        Retry => "retry",
        /// Started because another job's run failed (`on_failure`).
        Chained => "chained",
    }
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger::Manual
    }
}

string_enum! {
    RunStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        TimedOut => "timed_out",
        Cancelled => "cancelled",
        Skipped => "skipped",
        Abandoned => "abandoned",
    }
}

impl RunStatus {
    pub fn is_success(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Skipped)
    }
}

string_enum! {
    /// The verdict of one check.
    CheckStatus {
        Pass => "pass",
        Warn => "warn",
        Fail => "fail",
        Error => "error",
    }
}

impl CheckStatus {
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

string_enum! {
    /// Where one step of a run stands.
    StepStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        /// Not done: a dry run, or an earlier step made it unnecessary.
        Skipped => "skipped",
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
            Measured::Number(n) => f.write_str(&fmt_number(*n)),
            Measured::Text(t) => f.write_str(t),
        }
    }
}

/// A number as a person reads it: integers plainly, fractions to a few
/// significant places.
pub fn fmt_number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let s = if v.abs() >= 1.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.6}")
    };
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A condition on a number, as jobs.yaml writes it: `< 0.01`, `>= 5`,
/// `== 0`, `!= 0`, `between 0.1 and 0.5`, `outside 1 and 2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    Lt(f64),
    Le(f64),
    Gt(f64),
    Ge(f64),
    Eq(f64),
    Ne(f64),
    Between(f64, f64),
    Outside(f64, f64),
}

impl Condition {
    pub fn holds(&self, v: f64) -> bool {
        match *self {
            Condition::Lt(x) => v < x,
            Condition::Le(x) => v <= x,
            Condition::Gt(x) => v > x,
            Condition::Ge(x) => v >= x,
            Condition::Eq(x) => v == x,
            Condition::Ne(x) => v != x,
            Condition::Between(a, b) => v >= a && v <= b,
            Condition::Outside(a, b) => v < a || v > b,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |x: f64| fmt_number(x);
        match *self {
            Condition::Lt(x) => write!(f, "< {}", n(x)),
            Condition::Le(x) => write!(f, "<= {}", n(x)),
            Condition::Gt(x) => write!(f, "> {}", n(x)),
            Condition::Ge(x) => write!(f, ">= {}", n(x)),
            Condition::Eq(x) => write!(f, "== {}", n(x)),
            Condition::Ne(x) => write!(f, "!= {}", n(x)),
            Condition::Between(a, b) => write!(f, "between {} and {}", n(a), n(b)),
            Condition::Outside(a, b) => write!(f, "outside {} and {}", n(a), n(b)),
        }
    }
}

impl FromStr for Condition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let num = |t: &str| {
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("`{}` is not a number", t.trim()))
        };
        let help = "write `< 0.01`, `<= 5`, `> 0`, `>= 1`, `== 0`, `!= 0`, `between 0.1 and 0.5` or `outside 1 and 2`";
        for (word, ctor) in [
            ("between", Condition::Between as fn(f64, f64) -> Condition),
            ("outside", Condition::Outside),
        ] {
            if let Some(rest) = s.strip_prefix(word) {
                let (a, b) = rest
                    .split_once(" and ")
                    .ok_or_else(|| format!("`{s}`: {help}"))?;
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("`{s}`: the lower bound comes first"));
                }
                return Ok(ctor(a, b));
            }
        }
        for (op, ctor) in [
            ("<=", Condition::Le as fn(f64) -> Condition),
            (">=", Condition::Ge),
            ("==", Condition::Eq),
            ("!=", Condition::Ne),
            ("<", Condition::Lt),
            (">", Condition::Gt),
        ] {
            if let Some(rest) = s.strip_prefix(op) {
                return Ok(ctor(num(rest)?));
            }
        }
        Err(format!("`{s}` is not a condition: {help}"))
    }
}

impl Default for Condition {
    /// Only stands in for a condition that could not be read (reported).
    fn default() -> Self {
        Condition::Gt(f64::INFINITY)
    }
}

/// What a check's result was measured against. It renders itself as the
/// check's table, the history and the report show it ("fail if > 900 ms;
/// warn if > 200 ms"), and is stored and serialized as that text: read
/// back, text that a typed threshold writes the same way is that threshold
/// again (so the report's charts get the numbers), any other is words.
#[derive(Debug, Clone)]
pub enum Threshold {
    /// Conditions on the measured number, written in `unit`.
    Limits {
        fail: Option<Condition>,
        warn: Option<Condition>,
        /// "ms": written after each condition's number.
        unit: Option<String>,
    },
    /// An age the thing must stay under: "fail if older than 90d".
    Age {
        fail: Duration,
        warn: Option<Duration>,
    },
    /// Any other words: "available", "== 200", "all pods Ready".
    Text(String),
}

impl Threshold {
    /// The typed value `text` is, if one writes it exactly so.
    fn limits(text: &str) -> Option<Threshold> {
        let (mut fail, mut warn, mut unit) = (None, None, None);
        for part in text.split("; ") {
            let (slot, rest) = if let Some(r) = part.strip_prefix("fail if ") {
                (&mut fail, r)
            } else if let Some(r) = part.strip_prefix("warn if ") {
                (&mut warn, r)
            } else {
                return None;
            };
            let (condition, this_unit) = match rest.parse::<Condition>() {
                Ok(c) => (c, None),
                Err(_) => {
                    let (c, u) = rest.rsplit_once(' ')?;
                    (c.parse::<Condition>().ok()?, Some(u.to_string()))
                }
            };
            if slot.replace(condition).is_some() {
                return None;
            }
            unit = unit.or(this_unit);
        }
        let t = Threshold::Limits { fail, warn, unit };
        (t.to_string() == text).then_some(t)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Limits { fail, warn, unit } => {
                let unit = unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
                let parts: Vec<String> = [("fail", fail), ("warn", warn)]
                    .into_iter()
                    .filter_map(|(word, c)| c.map(|c| format!("{word} if {c}{unit}")))
                    .collect();
                f.write_str(&parts.join("; "))
            }
            Threshold::Age { fail, warn } => {
                write!(f, "fail if older than {}", fmt_age(*fail))?;
                match warn {
                    Some(w) => write!(f, "; warn if older than {}", fmt_age(*w)),
                    None => Ok(()),
                }
            }
            Threshold::Text(t) => f.write_str(t),
        }
    }
}

/// Two thresholds are the same when they say the same: one read back from
/// the history is equal to the one the check made.
impl PartialEq for Threshold {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl From<String> for Threshold {
    fn from(text: String) -> Self {
        Threshold::limits(&text).unwrap_or(Threshold::Text(text))
    }
}

impl From<&str> for Threshold {
    fn from(text: &str) -> Self {
        Threshold::from(text.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub check: String,
    pub status: CheckStatus,
    pub value: Option<Measured>,
    pub threshold: Option<Threshold>,
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

    pub fn threshold(mut self, t: impl Into<Threshold>) -> Self {
        let t = t.into();
        self.threshold = (!t.to_string().is_empty()).then_some(t);
        self
    }
}

/// One step of a run that acts on the outside world: what was called, on
/// what, how it went, how long it took. Saved as it starts and again as it
/// ends, so a crash mid-job leaves the steps done so far in the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Position in the run, from 0.
    pub position: u32,
    /// What was done, e.g. `create-snapshot`.
    pub name: String,
    /// On what, e.g. `rds:flexoraa-production-db`.
    pub target: String,
    pub status: StepStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// One line: the call made, or its result.
    pub detail: String,
    /// Structured result a later reader needs, e.g. `{"snapshot": "…"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

/// A result a job hands back for the history, whatever its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Check(CheckResult),
    Step(Step),
}

/// A row of the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub id: RunId,
    pub job: String,
    pub trigger: Trigger,
    pub triggered_by: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub attempt: u32,
    pub error: Option<String>,
    pub dry_run: bool,
    /// `host:pid:instance` of the process executing the run.
    pub owner: String,
    pub heartbeat_at: DateTime<Utc>,
    /// The earlier attempt this one retries.
    pub retry_of: Option<RunId>,
    /// Only filled when one run is read whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    pub log_truncated: bool,
    /// Check results, in order; only filled when one run is read whole.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// Steps, in order; only filled when one run is read whole.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

impl Run {
    pub fn duration(&self) -> Option<chrono::Duration> {
        self.finished_at.map(|f| f - self.started_at)
    }
}

/// A row to insert: the claim of a fire, or a manual run.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub job: String,
    pub trigger: Trigger,
    pub triggered_by: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    /// `Running`, or a terminal status for a fire decided without running
    /// (`Skipped`).
    pub status: RunStatus,
    pub attempt: u32,
    pub error: Option<String>,
    pub dry_run: bool,
    pub owner: String,
    pub retry_of: Option<RunId>,
}

string_enum! {
    /// Where a queued message stands.
    MailStatus {
        Pending => "pending",
        Sent => "sent",
    }
}

/// A message kept in the history store until it is sent: no report is lost
/// to a mail server that is down, and none is sent twice (the Message-ID
/// is the key).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedMail {
    pub message_id: String,
    pub subject: String,
    pub recipients: Vec<String>,
    /// The whole message (RFC 5322, ASCII).
    #[serde(skip)]
    pub raw: String,
    /// The job and run it is about.
    pub job: Option<String>,
    pub run_id: Option<RunId>,
    pub status: MailStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Whether a job is failing, as its notifications last told it: the one
/// row every replica reads before telling it again (an alert re-posted).
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyState {
    pub job: String,
    pub failing: bool,
    /// The run that made it failing, or the one that recovered it.
    pub run_id: RunId,
    /// When that was recorded.
    pub since: DateTime<Utc>,
}

/// The mail kept because it could not be sent yet: how much, and since
/// when.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MailBacklog {
    pub pending: u64,
    /// When the oldest pending message was queued.
    pub oldest: Option<DateTime<Utc>>,
}

string_enum! {
    /// Where a request for a run stands.
    RequestStatus {
        Pending => "pending",
        Started => "started",
        Refused => "refused",
        /// Not taken by any daemon within its lifetime; never runs.
        Expired => "expired",
        /// Taken back while pending (`runbookd withdraw`, or `trigger
        /// --wait` giving up); never runs.
        Withdrawn => "withdrawn",
    }
}

pub type RequestId = i64;

/// A run asked of the daemons (`runbookd trigger`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewRequest {
    pub job: String,
    pub params: Params,
    pub requested_by: String,
    pub reason: Option<String>,
    pub dry_run: bool,
    pub requested_at: DateTime<Utc>,
    /// After this no daemon takes it: it is recorded expired instead.
    pub expires_at: Option<DateTime<Utc>>,
    /// `--confirm`: the operator confirmed a change that takes production
    /// down.
    pub confirmed: bool,
}

/// A request as stored: taken by one replica, which records the run it
/// started (or why it refused).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub id: RequestId,
    pub job: String,
    pub params: Params,
    pub requested_by: String,
    pub reason: Option<String>,
    pub dry_run: bool,
    pub requested_at: DateTime<Utc>,
    pub status: RequestStatus,
    pub taken_by: Option<String>,
    pub taken_at: Option<DateTime<Utc>>,
    pub run_id: Option<RunId>,
    /// Why it was refused, expired or withdrawn.
    #[serde(rename = "why")]
    pub error: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Who withdrew it.
    pub closed_by: Option<String>,
    /// When it was refused, expired or withdrawn.
    pub closed_at: Option<DateTime<Utc>>,
    pub confirmed: bool,
}

/// Which requests a listing shows, newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
    pub job: Option<String>,
    pub limit: u32,
}

/// A job whose scheduled fires every replica skips until it is resumed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pause {
    pub job: String,
    pub paused_by: String,
    pub reason: Option<String>,
    pub paused_at: DateTime<Utc>,
}

/// One check result of a run, with the run: a point of that check's
/// history, as the morning report reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckPoint {
    pub run_id: RunId,
    pub started_at: DateTime<Utc>,
    pub result: CheckResult,
}

/// A run's process group and when its leader started (clock ticks since
/// boot), which tells it apart from a later group given the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessGroup {
    pub pgid: i32,
    pub leader_start: u64,
}

/// A copy of a run's log as text, for the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogSnapshot {
    pub text: String,
    pub truncated: bool,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub status: RunStatus,
    pub finished_at: DateTime<Utc>,
    pub error: Option<String>,
    pub log: LogSnapshot,
}

/// Fires of a job that did not run and never will: missed while runbookd
/// was down or its history store was, outside the catch-up rule. Kept so the
/// morning report can show them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissedFires {
    pub job: String,
    /// The oldest and newest of the missed fires.
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub count: u64,
    pub reason: String,
    pub recorded_at: DateTime<Utc>,
}

/// One page of a job's runs, newest first: those older than `before` (a
/// run id), of a status and a trigger when given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunPage {
    pub job: String,
    pub status: Option<RunStatus>,
    pub trigger: Option<Trigger>,
    pub before: Option<RunId>,
    pub limit: u32,
}

/// What a chained run's `triggered_by` says: the failed run that started
/// it.
pub fn chained_by(run: RunId, job: &str) -> String {
    format!("run {run} of {job}")
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunFilter {
    pub job: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: u32,
}

/// A duration written in jobs.yaml as `30s`, `5m`, `2h`, `90d` or `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(Dur)
            .map_err(|e| format!("invalid duration `{s}`: {e} (use forms like 30s, 5m, 2h, 90d)"))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_write_themselves_as_the_checks_always_did() {
        let ms = |n: f64| Some(Condition::Gt(n));
        let cases = [
            (
                Threshold::Limits {
                    fail: ms(900.0),
                    warn: ms(200.0),
                    unit: Some("ms".into()),
                },
                "fail if > 900 ms; warn if > 200 ms",
            ),
            (
                Threshold::Limits {
                    fail: Some(Condition::Ge(0.01)),
                    warn: Some(Condition::Ge(0.005)),
                    unit: None,
                },
                "fail if >= 0.01; warn if >= 0.005",
            ),
            (
                Threshold::Limits {
                    fail: None,
                    warn: Some(Condition::Between(1.0, 2.5)),
                    unit: None,
                },
                "warn if between 1 and 2.5",
            ),
            (
                Threshold::Age {
                    fail: Duration::from_secs(90 * 86400),
                    warn: Some(Duration::from_secs(75 * 86400)),
                },
                "fail if older than 90d; warn if older than 75d",
            ),
            (Threshold::Text("all pods Ready".into()), "all pods Ready"),
        ];
        for (t, text) in cases {
            assert_eq!(t.to_string(), text);
            assert_eq!(serde_json::to_value(&t).unwrap(), serde_json::json!(text));
            // Read back from the history, it is the same threshold.
            assert_eq!(Threshold::from(text), t, "{text}");
        }
    }

    #[test]
    fn text_is_typed_only_when_the_type_writes_it_the_same() {
        let limits = |text: &str| matches!(Threshold::from(text), Threshold::Limits { .. });
        for text in [
            "fail if > 0.05; warn if > 0.01",
            "fail if > 5000 ms",
            "warn if < 3",
            "fail if outside 1 and 2",
        ] {
            assert!(limits(text), "{text}");
        }
        for text in [
            "== 200",
            "available",
            "fail if older than 90d",
            // Not as a threshold writes them: kept as words, exactly.
            "fail if >   5",
            "fail if > 0.050",
            "warn if > 1; fail if > 2",
            "fail if > 5 ms; warn if > 2 s",
            "fail if > 5 in 1h",
        ] {
            assert!(!limits(text), "{text}");
            assert_eq!(Threshold::from(text).to_string(), text);
        }
        assert_eq!(
            CheckResult::new("c", CheckStatus::Pass, "")
                .threshold("")
                .threshold,
            None
        );
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
    fn words_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), *s);
        }
        for s in StepStatus::ALL {
            assert_eq!(s.as_str().parse::<StepStatus>().unwrap(), *s);
        }
        assert!("nope".parse::<Trigger>().unwrap_err().contains("one of"));
    }

    #[test]
    fn durations_parse_or_say_how() {
        assert_eq!(
            "1h 30m".parse::<Dur>().unwrap().0,
            Duration::from_secs(5400)
        );
        assert!(
            "soon"
                .parse::<Dur>()
                .unwrap_err()
                .contains("invalid duration `soon`")
        );
    }
}

/// A run started because another failed (`on_failure`), as the failed
/// run's notification names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainedRun {
    pub job: String,
    /// Its run; `None` when it could not be started.
    pub id: Option<RunId>,
    pub status: RunStatus,
    /// Its one-line outcome (a triage's diagnosis), or why it did not run.
    pub summary: Option<String>,
}
