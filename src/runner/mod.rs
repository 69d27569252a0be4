//! One run, from its claimed first attempt to its last retry: timeout,
//! cancellation, heartbeat, retries with backoff, and the history row of
//! every attempt. Whatever happens, a run this process owns never stays
//! `running`: it ends `succeeded`, `failed`, `timed_out` or `cancelled`, and if
//! the process dies a peer or the next start marks it `abandoned`.

mod attempts;
mod builder;
mod chain;
mod events;
mod heartbeat;
mod notice;
mod outbound;
mod overlap;
mod reap;
mod stop;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;

use crate::adapters::ping::PingSignal;
use crate::clock::Clock;
use crate::config::JobConfig;
use crate::delivery::Postman;
use crate::identity::Identity;
use crate::jobs::ExecEnv;
use crate::model::{ChainedRun, Params};
use crate::runlog::{RunLog, TeeLine};
use crate::secret::Redactor;
use crate::store::{
    Finish, HistoryStore, NewRun, RunId, RunStatus, StoreError, StoreHealth, Trigger,
};

pub use builder::{CHAIN_WAIT, RunnerBuilder};
pub use events::{CallOutcome, RunEvent};
pub use outbound::SETTLE_WAIT;
pub use overlap::{Admission, REPLACE_WAIT};
pub use stop::{CANCEL_ASKED, STOP_WAIT, Stop};

type Tee = Arc<dyn Fn(&TeeLine<'_>) + Send + Sync>;

/// What a manual or scheduled run asks for.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub trigger: Trigger,
    pub triggered_by: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub dry_run: bool,
    pub params: Params,
    /// Said in the run's log after its first line (e.g. that it was forced
    /// past an overlap rule).
    pub notes: Vec<String>,
    /// Run by hand with `--force`: a `forbid` job runs beside its running
    /// run, and the log says so.
    pub force: bool,
    /// The runs this one replaces (`concurrency: replace`), asked to stop
    /// when it was claimed: its first attempt starts once they have ended.
    pub replacing: Vec<RunId>,
    /// The operator confirmed a change that takes production down.
    pub confirmed: bool,
}

/// The end of a run: its last attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub id: RunId,
    pub status: RunStatus,
    pub attempt: u32,
    pub error: Option<String>,
    /// What became of the run's notification, when it had one: where it
    /// went (an outbox file, a server) or why it is pending.
    pub notified: Option<String>,
    /// The runs its failure started (`on_failure`).
    pub chained: Vec<ChainedRun>,
}

#[derive(Clone)]
pub struct Runner {
    store: Arc<dyn HistoryStore>,
    health: Arc<StoreHealth>,
    clock: Arc<dyn Clock>,
    identity: Identity,
    heartbeat: Duration,
    log_max_bytes: usize,
    redactor: Redactor,
    events: broadcast::Sender<RunEvent>,
    tee: Option<Tee>,
    env: ExecEnv,
    /// Sends notifications, keeping them until they are sent.
    postman: Postman,
    /// How long a failure's mail waits for the runs it chained.
    chain_wait: Duration,
    /// The attempts this process is running, by run id, so a `replace`
    /// decided here stops them at once instead of at their next heartbeat.
    local: Arc<Mutex<HashMap<RunId, Stop>>>,
    /// Alert posts and pings going on in the background, each bounded by
    /// its timeout: a process about to exit waits for them
    /// ([`Runner::settle`]).
    outbound: TaskTracker,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("store", &self.store.url())
            .field("owner", &self.identity.owner())
            .finish()
    }
}

impl Runner {
    /// The sender of this runner's mail, for the daemon's resends.
    pub fn postman(&self) -> &Postman {
        &self.postman
    }

    /// Echo every log line (already redacted) to `f`, for foreground runs.
    pub fn with_tee(mut self, f: impl Fn(&TeeLine<'_>) + Send + Sync + 'static) -> Self {
        self.tee = Some(Arc::new(f));
        self
    }

    pub fn store(&self) -> &Arc<dyn HistoryStore> {
        &self.store
    }

    /// Whether the history store answers, and its failures.
    pub fn store_health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Claims a fire already decided against (its job is paused): the one
    /// insert records it `skipped`, so no reader ever sees it running and
    /// no overlap rule counts it. `None`: another process has this fire.
    pub async fn claim_skipped(
        &self,
        job: &JobConfig,
        req: &RunRequest,
        reason: &str,
    ) -> Result<Option<RunId>, StoreError> {
        let run = NewRun {
            status: RunStatus::Skipped,
            error: Some(reason.to_string()),
            ..self.new_run(job, req, 1)
        };
        let id = self.store.insert_run(&run).await?;
        if let Some(id) = id {
            self.skipped(job, req.trigger, id, run.started_at);
        }
        Ok(id)
    }

    /// Ends a fire claimed for `req` as `skipped` without running it.
    pub async fn skip(
        &self,
        job: &JobConfig,
        req: &RunRequest,
        id: RunId,
        reason: &str,
    ) -> Result<(), StoreError> {
        let log = RunLog::new(self.log_max_bytes, self.redactor.clone());
        log.info(reason);
        let finish = Finish {
            status: RunStatus::Skipped,
            finished_at: self.clock.now(),
            error: Some(reason.to_string()),
            log: log.snapshot(),
        };
        self.store.finish_run(id, &finish).await?;
        self.skipped(job, req.trigger, id, finish.finished_at);
        Ok(())
    }

    /// Runs a claimed first attempt, then retries as the job's policy says;
    /// then mails the outcome if the job's `notify` asks (dry runs never).
    pub async fn execute(
        &self,
        job: &JobConfig,
        req: &RunRequest,
        first: RunId,
        stop: &Stop,
    ) -> Ended {
        let started = self.ping(job, req, first, Some(PingSignal::Start), None);
        let mut ended = self.attempts(job, req, first, stop).await;
        self.ping(
            job,
            req,
            first,
            crate::pings::end_signal(ended.status),
            started,
        );
        let _ = self.events.send(RunEvent::Ended {
            id: ended.id,
            job: job.name.clone(),
            status: ended.status,
            dry_run: req.dry_run,
            at: self.clock.now(),
        });
        if !chain::chains(
            ended.status,
            req,
            stop.is_cancelled(),
            !job.on_failure.is_empty(),
        ) {
            if !req.dry_run {
                ended.notified = self.notify(job, &ended).await;
            }
            return ended;
        }
        self.chain_then_notify(job, ended, stop).await
    }
}
