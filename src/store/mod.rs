//! The run history: one trait, a Postgres implementation for production and
//! a SQLite one so a new user needs no server. Both pass the same conformance
//! suite (`tests/store_conformance.rs`).
//!
//! The claim that stops two daemons running one fire twice lives here: a run
//! row is unique on `(job, scheduled_for, attempt)`, and inserting it is the
//! claim. Leader election would still leave a window at hand-over; a unique
//! constraint does not.

mod postgres;
mod sqlite;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::checks::CheckResult;
use crate::runlog::LogSnapshot;
use crate::secret::redact_url;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

pub type RunId = i64;

/// Every store call is bounded by this, so a hung database shows up as an
/// error naming the operation instead of a daemon that silently stops.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to history store {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("history store {url} did not answer {op} within {}s", .after.as_secs())]
    Timeout {
        url: String,
        op: &'static str,
        after: Duration,
    },
    #[error("history store {url}: {op} failed: {source}")]
    Query {
        url: String,
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("history store {url}: migration failed: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error(
        "unsupported history store URL {url}: use postgres://user:pass@host:5432/db or sqlite://path/to/file.db"
    )]
    UnsupportedUrl { url: String },
    #[error("history store {url}: {what}")]
    Corrupt { url: String, what: String },
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

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
    /// Only filled by [`HistoryStore::get_run`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    pub log_truncated: bool,
    /// Check results of a checklist run; only filled by
    /// [`HistoryStore::get_run`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
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

#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub status: RunStatus,
    pub finished_at: DateTime<Utc>,
    pub error: Option<String>,
    pub log: LogSnapshot,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunFilter {
    pub job: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: u32,
}

#[async_trait]
pub trait HistoryStore: Send + Sync + fmt::Debug {
    /// The URL with any password masked.
    fn url(&self) -> &str;

    async fn migrate(&self) -> Result<()>;

    /// Inserts a run. `None` means another process already holds this
    /// `(job, scheduled_for, attempt)`: the fire is theirs.
    async fn insert_run(&self, run: &NewRun) -> Result<Option<RunId>>;

    /// Proves a run is alive and saves its log so far. Returns whether
    /// someone asked to cancel it (`concurrency: replace` on another replica).
    async fn heartbeat(
        &self,
        id: RunId,
        at: DateTime<Utc>,
        log: Option<&LogSnapshot>,
    ) -> Result<bool>;

    async fn finish_run(&self, id: RunId, finish: &Finish) -> Result<()>;

    /// Asks whoever runs `id` to cancel it. False if it is not running.
    async fn request_cancel(&self, id: RunId) -> Result<bool>;

    /// Runs with status `running`, of one job or all.
    async fn running(&self, job: Option<&str>) -> Result<Vec<Run>>;

    /// Marks `abandoned` every running run whose heartbeat is older than
    /// `stale_before`.
    async fn abandon_stale(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<RunId>>;

    /// Marks one running run `abandoned` with a reason. False if it had
    /// already ended.
    async fn abandon(&self, id: RunId, now: DateTime<Utc>, reason: &str) -> Result<bool>;

    /// Newest first.
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>>;

    /// One run with its log.
    async fn get_run(&self, id: RunId) -> Result<Option<Run>>;

    async fn last_run(&self, job: &str) -> Result<Option<Run>>;

    /// How far the schedulers have looked at this job's fires.
    async fn cursor(&self, job: &str) -> Result<Option<DateTime<Utc>>>;

    /// Moves the cursor forward (never back).
    async fn advance_cursor(&self, job: &str, to: DateTime<Utc>) -> Result<()>;

    /// Stores a run's check results, in order.
    async fn record_checks(&self, run: RunId, checks: &[CheckResult]) -> Result<()>;

    /// A run's check results, in order.
    async fn checks(&self, run: RunId) -> Result<Vec<CheckResult>>;

    /// Deletes ended runs started before `before`. Returns how many.
    async fn prune(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Opens the store a URL names and brings its schema up to date.
pub async fn open(url: &str) -> Result<Arc<dyn HistoryStore>> {
    let store: Arc<dyn HistoryStore> =
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Arc::new(PostgresStore::connect(url).await?)
        } else if url.starts_with("sqlite:") {
            Arc::new(SqliteStore::connect(url).await?)
        } else {
            return Err(StoreError::UnsupportedUrl {
                url: redact_url(url),
            });
        };
    store.migrate().await?;
    Ok(store)
}

/// Bounds a store call with [`STORE_TIMEOUT`] and names it in errors.
async fn timed<T>(
    url: &str,
    op: &'static str,
    fut: impl std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
) -> Result<T> {
    match tokio::time::timeout(STORE_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(StoreError::Query {
            url: url.to_string(),
            op,
            source,
        }),
        Err(_) => Err(StoreError::Timeout {
            url: url.to_string(),
            op,
            after: STORE_TIMEOUT,
        }),
    }
}

fn parse_enum<T: FromStr<Err = String>>(url: &str, text: &str) -> Result<T> {
    text.parse().map_err(|what| StoreError::Corrupt {
        url: url.to_string(),
        what,
    })
}

/// Row limit for listings when the caller gives none.
pub const DEFAULT_LIMIT: u32 = 50;

/// Rebuilds a stored check result from a `checks.sql` row. The column
/// types are the same in both backends, so one decoder serves both.
fn check_from_row<R>(url: &str, row: &R) -> Result<CheckResult>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let get = |e: sqlx::Error| StoreError::Query {
        url: url.to_string(),
        op: "decode check result",
        source: e,
    };
    let status: String = row.try_get("status").map_err(get)?;
    let status = crate::checks::CheckStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
        url: url.to_string(),
        what: format!("unknown check status `{status}`"),
    })?;
    let number: Option<f64> = row.try_get("value_number").map_err(get)?;
    let text: Option<String> = row.try_get("value_text").map_err(get)?;
    let duration_ms: i64 = row.try_get("duration_ms").map_err(get)?;
    Ok(CheckResult {
        check: row.try_get("check_name").map_err(get)?,
        status,
        value: match (number, text) {
            (Some(n), _) => Some(crate::checks::Measured::Number(n)),
            (None, Some(t)) => Some(crate::checks::Measured::Text(t)),
            (None, None) => None,
        },
        threshold: row.try_get("threshold").map_err(get)?,
        reason: row.try_get("reason").map_err(get)?,
        duration_ms: duration_ms.max(0) as u64,
    })
}
