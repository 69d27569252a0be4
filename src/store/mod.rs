//! The run history: one trait, a Postgres implementation for production and
//! a SQLite one so a new user needs no server. Both pass the same conformance
//! suite (`tests/store_conformance.rs`).
//!
//! The claim that stops two daemons running one fire twice lives here: a run
//! row is unique on `(job, scheduled_for, attempt)`, and inserting it is the
//! claim. Leader election would still leave a window at hand-over; a unique
//! constraint does not.

mod postgres;
mod sql;
mod sqlite;
mod watch;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::{
    CheckPoint, CheckResult, LogSnapshot, MailBacklog, NewRequest, NotifyState, Pause,
    ProcessGroup, QueuedMail, Request, RequestFilter, RequestId, Step,
};
use crate::secret::redact_url;

pub use crate::model::{
    Finish, MissedFires, NewRun, Run, RunFilter, RunId, RunPage, RunStatus, Trigger,
};
pub use postgres::PostgresStore;
pub use sql::SqlStore;
pub use sqlite::SqliteStore;
pub use watch::{PROBE_EVERY, StoreHealth, WatchedStore};

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
    /// A write would not be durable (the database file was deleted or
    /// replaced under us).
    #[error("history store {url}: {why}")]
    Lost { url: String, why: String },
}

#[async_trait]
pub trait HistoryStore: Send + Sync + fmt::Debug {
    /// The URL with any password masked.
    fn url(&self) -> &str;

    async fn migrate(&self) -> Result<()>;

    /// Whether the store answers (and would keep what it is given).
    async fn ping(&self) -> Result<()>;

    /// The daemon's view of this store, when it is watched.
    fn health(&self) -> Option<Arc<StoreHealth>> {
        None
    }

    /// What the store pushes to its daemons as it happens (Postgres
    /// LISTEN/NOTIFY): a request queued, a cancel asked. `None`: it pushes
    /// nothing (SQLite), and polling is the only way.
    async fn wakeups(&self) -> Result<Option<Box<dyn Wakeups>>> {
        Ok(None)
    }

    /// Inserts a run. `None` means another process already holds this
    /// `(job, scheduled_for, attempt)`: the fire is theirs.
    async fn insert_run(&self, run: &NewRun) -> Result<Option<RunId>>;

    /// Inserts a run as [`HistoryStore::insert_run`] does and, in the same
    /// transaction, reads the job's other running runs: one claim of a job
    /// at a time, so the runs read are exactly those claimed before it.
    async fn claim_run(&self, run: &NewRun) -> Result<Option<Claimed>>;

    /// Claims each run as [`HistoryStore::claim_run`] does, in one round
    /// trip where the backend can (a tick's fires of one instant); the
    /// claims in the order given. Give the runs sorted by job: replicas
    /// then lock jobs in one order.
    async fn claim_runs(&self, runs: &[NewRun]) -> Result<Vec<Option<Claimed>>>;

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

    /// One page of a job's runs, newest first (by id), without logs.
    async fn page_runs(&self, page: &RunPage) -> Result<Vec<Run>>;

    /// The attempts that retry `run` (whose `retry_of` it is), oldest
    /// first, at most `limit`.
    async fn retries_of(&self, run: &Run, limit: u32) -> Result<Vec<Run>>;

    /// The runs `run` chained (`on_failure`) that started by `until`,
    /// oldest first, at most `limit`.
    async fn chained_from(&self, run: &Run, until: DateTime<Utc>, limit: u32) -> Result<Vec<Run>>;

    /// One run with its log.
    async fn get_run(&self, id: RunId) -> Result<Option<Run>>;

    /// A job's latest run: a dry run (`Some(true)`), a real one
    /// (`Some(false)`), or either (`None`).
    async fn last_run(&self, job: &str, dry_run: Option<bool>) -> Result<Option<Run>>;

    /// How far the schedulers have looked at this job's fires.
    async fn cursor(&self, job: &str) -> Result<Option<DateTime<Utc>>>;

    /// Moves these jobs' cursors forward to `to` (never back), in one
    /// statement: a tick saves every job's at once.
    async fn advance_cursors(&self, jobs: &[&str], to: DateTime<Utc>) -> Result<()>;

    /// Records that runbookd knows these jobs at `at` (a daemon loaded
    /// them, or `run` runs one): each job's first-seen instant is kept and
    /// only ever moves earlier.
    async fn see_jobs(&self, jobs: &[&str], at: DateTime<Utc>) -> Result<()>;

    /// When runbookd first saw each job it has seen.
    async fn first_seen(&self) -> Result<BTreeMap<String, DateTime<Utc>>>;

    /// Stores a run's check results, in order.
    async fn record_checks(&self, run: RunId, checks: &[CheckResult]) -> Result<()>;

    /// A run's check results, in order.
    async fn checks(&self, run: RunId) -> Result<Vec<CheckResult>>;

    /// Saves a step as it starts, and again (same position) as it ends.
    async fn record_step(&self, run: RunId, step: &Step) -> Result<()>;

    /// A run's steps, in order.
    async fn steps(&self, run: RunId) -> Result<Vec<Step>>;

    /// Records the process group a run started on `host`.
    async fn record_process(&self, run: RunId, host: &str, group: ProcessGroup) -> Result<()>;

    /// The process groups a run started, with their hosts.
    async fn processes(&self, run: RunId) -> Result<Vec<(String, ProcessGroup)>>;

    /// Records fires that will never run (see [`MissedFires`]).
    async fn record_missed(&self, missed: &MissedFires) -> Result<()>;

    /// Missed fires recorded since `since`, oldest first.
    async fn missed(&self, since: DateTime<Utc>) -> Result<Vec<MissedFires>>;

    /// A job's check results of runs started since `since`, oldest first.
    async fn check_history(&self, job: &str, since: DateTime<Utc>) -> Result<Vec<CheckPoint>>;

    /// Keeps a message until it is sent. False if one with its Message-ID
    /// is already kept (the same message, queued again).
    async fn queue_mail(&self, mail: &QueuedMail) -> Result<bool>;

    /// Takes a due pending message for sending until `lease_until`. False if
    /// it is sent, not due, or another sender took it first.
    async fn claim_mail(
        &self,
        message_id: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool>;

    /// Pending messages due by `now`, oldest first.
    async fn due_mail(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<QueuedMail>>;

    async fn mail_sent(&self, message_id: &str, at: DateTime<Utc>) -> Result<()>;

    /// Records `tries` failed sends and when to try again.
    async fn mail_failed(
        &self,
        message_id: &str,
        error: &str,
        tries: u32,
        next_at: DateTime<Utc>,
    ) -> Result<()>;

    async fn mail(&self, message_id: &str) -> Result<Option<QueuedMail>>;

    /// How many messages are pending, and the oldest's queue time: one
    /// aggregate read, for the daemon's metrics.
    async fn mail_backlog(&self) -> Result<MailBacklog>;

    /// Marks a job failing. True only when it was not already: the failure
    /// is news and worth telling; repeats are not.
    async fn notify_failing(&self, job: &str, run: RunId, at: DateTime<Utc>) -> Result<bool>;

    /// Marks a job recovered. True only when it had been marked failing:
    /// the one "recovered" message.
    async fn notify_recovered(&self, job: &str, run: RunId, at: DateTime<Utc>) -> Result<bool>;

    /// Every job's notify state, by job name.
    async fn notify_states(&self) -> Result<Vec<NotifyState>>;

    /// Asks the daemons for a run. Returns the request's id.
    async fn request_run(&self, req: &NewRequest) -> Result<RequestId>;

    /// Takes the oldest pending request for `owner` to start, if any; no
    /// two takers get the same one.
    async fn take_request(&self, owner: &str, now: DateTime<Utc>) -> Result<Option<Request>>;

    /// Records the run a taken request became.
    async fn request_started(&self, id: RequestId, run: RunId) -> Result<()>;

    /// Records why a taken request was not started.
    async fn refuse_request(&self, id: RequestId, error: &str) -> Result<()>;

    async fn get_request(&self, id: RequestId) -> Result<Option<Request>>;

    /// Records as expired every pending request whose lifetime ended by
    /// `now`, and returns them. (None is ever taken after its lifetime,
    /// whether or not it has been recorded yet.)
    async fn expire_requests(&self, now: DateTime<Utc>) -> Result<Vec<Request>>;

    /// Takes back a pending request, atomically against any daemon taking
    /// it: `None` if it was not pending (taken, refused, expired, withdrawn
    /// or unknown; [`HistoryStore::get_request`] says which).
    async fn withdraw_request(
        &self,
        id: RequestId,
        by: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Request>>;

    /// Requests, newest first.
    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<Request>>;

    /// Pauses a job's scheduled fires. False if it was already paused.
    async fn pause_job(&self, pause: &Pause) -> Result<bool>;

    /// False if it was not paused.
    async fn resume_job(&self, job: &str) -> Result<bool>;

    async fn paused_jobs(&self) -> Result<Vec<Pause>>;

    /// Deletes ended runs started before `before`, and missed-fire records
    /// older than it. Returns how many runs.
    async fn prune(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// A change another process made that a daemon acts on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// A run request was queued.
    Request,
    /// Someone asked for this run to be cancelled.
    Cancel(RunId),
    /// The push connection was lost and made again: what was pushed
    /// meanwhile is lost, so look (poll) once.
    Resync,
}

/// The store's pushed changes, one at a time.
#[async_trait]
pub trait Wakeups: Send {
    /// The next change. Never ends: a lost connection is made again (and
    /// said with [`Wakeup::Resync`]).
    async fn next(&mut self) -> Wakeup;
}

/// A claimed run and the job's runs that were going on when it was claimed
/// (all claimed earlier; dry runs among them).
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: RunId,
    pub earlier: Vec<Run>,
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

/// Row limit for listings when the caller gives none.
pub const DEFAULT_LIMIT: u32 = 50;
