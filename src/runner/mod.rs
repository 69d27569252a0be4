//! One run, from its claimed first attempt to its last retry: timeout,
//! cancellation, heartbeat, retries with backoff, and the history row of
//! every attempt. Whatever happens, a run this process owns never stays
//! `running`: it ends `succeeded`, `failed`, `timed_out` or `cancelled`, and if
//! the process dies a peer or the next start marks it `abandoned`.

mod overlap;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::adapters::Adapters;
use crate::adapters::ping::PingSignal;
use crate::alerting::Which;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, JobConfig};
use crate::delivery::{Delivered, Postman};
use crate::identity::Identity;
use crate::jobs::{self, ExecEnv, JobError, Processes, RunContext, Steps};
use crate::model::{ChainedRun, CheckResult, CheckStatus, Measured, Params, Record, Threshold};
use crate::notify;
use crate::retry::{self, Backoff};
use crate::runlog::{RunLog, TeeLine};

type Tee = Arc<dyn Fn(&TeeLine<'_>) + Send + Sync>;
pub use overlap::{Admission, REPLACE_WAIT};

use crate::secret::Redactor;
use crate::store::{
    Finish, HistoryStore, NewRun, RunId, RunStatus, StoreError, StoreHealth, Trigger, WatchedStore,
};

/// How long a job may take to stop after it is cancelled before it is
/// dropped (which kills a command's process group).
pub const STOP_WAIT: Duration = Duration::from_secs(60);

/// Why a run stopped when someone asked through the store.
pub const CANCEL_ASKED: &str =
    "cancelled on request (runbookd cancel, or concurrency: replace on another replica)";

/// A cancellation with the reason recorded on the run.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Stop {
    pub fn new() -> Self {
        Stop::default()
    }

    /// The first reason wins: it is what actually stopped the run.
    pub fn cancel(&self, reason: impl Into<String>) {
        let mut r = self.reason.lock().expect("stop reason lock");
        if r.is_none() {
            *r = Some(reason.into());
        }
        drop(r);
        self.token.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    fn reason(&self) -> String {
        self.reason
            .lock()
            .expect("stop reason lock")
            .clone()
            .unwrap_or_else(|| "cancelled".to_string())
    }

    fn child(&self) -> Stop {
        Stop {
            token: self.token.child_token(),
            reason: Arc::new(Mutex::new(None)),
        }
    }
}

/// How long a process about to exit waits for its pings and alert posts
/// (each has its own, shorter timeout: an end ping waits for its start,
/// 2 × 5 s).
pub const SETTLE_WAIT: Duration = Duration::from_secs(30);

/// How long a failure's mail waits for the runs it chained (a triage
/// takes about its slowest part, under 10 s).
pub const CHAIN_WAIT: Duration = Duration::from_secs(30);

/// Published as runs start and end: the daemon's metrics count them and
/// tests wait on them instead of sleeping.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    Started {
        id: RunId,
        job: String,
        trigger: Trigger,
        scheduled_for: Option<DateTime<Utc>>,
        started_at: DateTime<Utc>,
    },
    /// An attempt ended, or a fire was recorded skipped (then with no
    /// `Started` before it: it started and ended in the same instant).
    Finished {
        id: RunId,
        job: String,
        /// As in the attempt's `Started`; a skipped fire's own.
        trigger: Trigger,
        status: RunStatus,
        attempt: u32,
        /// When it ended, and how long the attempt took.
        at: DateTime<Utc>,
        took: Duration,
        /// Its check results: name, status, number measured.
        checks: Vec<(String, CheckStatus, Option<f64>)>,
    },
    /// A run is over: its last attempt ended, no retry follows. Retries and
    /// chained runs are their own.
    Ended {
        id: RunId,
        job: String,
        status: RunStatus,
        dry_run: bool,
        at: DateTime<Utc>,
    },
    /// A run's dead man's switch was pinged (in the background: never part
    /// of the run's outcome). `id` is the run's first attempt.
    Pinged {
        id: RunId,
        job: String,
        signal: PingSignal,
        outcome: CallOutcome,
        at: DateTime<Utc>,
    },
    /// Alerts were posted to Alertmanager (in the background): the jobs
    /// the post carried firing and resolved.
    AlertsPosted {
        firing: Vec<String>,
        resolved: Vec<String>,
        outcome: CallOutcome,
        at: DateTime<Utc>,
    },
}

/// How a call to an outside watcher (Alertmanager, a dead man's switch)
/// went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    Sent,
    /// Refused, or not reached.
    Failed,
    TimedOut,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Sent => "sent",
            CallOutcome::Failed => "failed",
            CallOutcome::TimedOut => "timed_out",
        }
    }
}

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

/// Builds a [`Runner`]: the one place runs are wired to the store, the
/// clock and the outside systems (real or fake).
pub struct RunnerBuilder {
    store: Arc<dyn HistoryStore>,
    adapters: Arc<Adapters>,
    clock: Arc<dyn Clock>,
    identity: Identity,
    heartbeat: Duration,
    log_max_bytes: usize,
    redactor: Redactor,
    config: Option<Arc<Config>>,
    chain_wait: Duration,
}

impl RunnerBuilder {
    /// How long a failure's mail waits for its chained runs (default
    /// [`CHAIN_WAIT`]).
    pub fn chain_wait(mut self, d: Duration) -> Self {
        self.chain_wait = d;
        self
    }

    /// Heartbeat, log size, redactor and mail settings from the jobs file,
    /// which jobs that look at other jobs (the report) also see.
    pub fn config(mut self, config: &Config) -> Self {
        self.heartbeat = config.daemon.heartbeat;
        self.log_max_bytes = config.history.log_max_bytes;
        self.redactor = config.redactor.clone();
        self.config = Some(Arc::new(config.clone()));
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    pub fn log_max_bytes(mut self, n: usize) -> Self {
        self.log_max_bytes = n;
        self
    }

    pub fn redactor(mut self, r: Redactor) -> Self {
        self.redactor = r;
        self
    }

    pub fn build(self) -> Runner {
        let (events, _) = broadcast::channel(1024);
        // Every call the runner and the scheduler make is watched: failures
        // counted, and a down store known at once.
        let store: Arc<dyn HistoryStore> = match self.store.health() {
            Some(_) => self.store,
            None => Arc::new(WatchedStore::new(self.store)),
        };
        let health = store.health().expect("a watched store has health");
        let postman = Postman::new(
            store.clone(),
            self.adapters.mail.clone(),
            self.clock.clone(),
        );
        Runner {
            health,
            postman,
            env: ExecEnv {
                adapters: self.adapters,
                clock: self.clock.clone(),
                store: store.clone(),
                config: self.config,
                redactor: self.redactor.clone(),
            },
            store,
            clock: self.clock,
            identity: self.identity,
            heartbeat: self.heartbeat.max(Duration::from_millis(50)),
            log_max_bytes: self.log_max_bytes,
            redactor: self.redactor,
            events,
            tee: None,
            chain_wait: self.chain_wait,
            local: Arc::default(),
            outbound: TaskTracker::new(),
        }
    }
}

impl Runner {
    /// A runner over `store`, reaching the outside through `adapters`;
    /// the rest defaults (system clock, this process, 5 s heartbeat).
    /// The sender of this runner's mail, for the daemon's resends.
    pub fn postman(&self) -> &Postman {
        &self.postman
    }

    pub fn builder(store: Arc<dyn HistoryStore>, adapters: Arc<Adapters>) -> RunnerBuilder {
        RunnerBuilder {
            store,
            adapters,
            clock: Arc::new(SystemClock),
            identity: Identity::current(),
            heartbeat: Duration::from_secs(5),
            log_max_bytes: 256 * 1024,
            redactor: Redactor::default(),
            config: None,
            chain_wait: CHAIN_WAIT,
        }
    }

    /// Stops a run at once if this process runs it (a cancel the store
    /// pushed); false if it is not here. Runs elsewhere, or a push that was
    /// lost, see the request at their next heartbeat.
    pub fn cancel_local(&self, id: RunId, reason: &str) -> bool {
        let stop = self
            .local
            .lock()
            .expect("local runs lock")
            .get(&id)
            .cloned();
        match stop {
            Some(stop) => {
                tracing::info!(
                    run = id,
                    "cancel requested through the history store (pushed)"
                );
                stop.cancel(reason);
                true
            }
            None => false,
        }
    }

    /// Marks `abandoned` the runs whose process is gone: on this host at
    /// once, elsewhere once their heartbeat is older than `stale_after`. A
    /// dead owner's job processes on this host are stopped first, so a
    /// `forbid` job never runs beside its orphan.
    pub async fn reap(&self, stale_after: Duration) -> Result<Vec<RunId>, StoreError> {
        let store = self.store.as_ref();
        let now = self.clock.now();
        let mut reaped = Vec::new();
        for run in store.running(None).await? {
            if self
                .identity
                .owner_is_dead(&run.owner, std::path::Path::new("/proc"))
            {
                let stopped = self.stop_orphans(&run).await;
                let reason = format!(
                    "abandoned: its process {} is gone (found by {} at start-up){}",
                    run.owner,
                    self.identity.owner(),
                    if stopped > 0 {
                        format!("; stopped {stopped} process(es) it left running")
                    } else {
                        String::new()
                    }
                );
                if store.abandon(run.id, now, &reason).await? {
                    reaped.push(run.id);
                }
            }
        }
        let stale_before = now - chrono::Duration::from_std(stale_after).unwrap_or_default();
        reaped.extend(store.abandon_stale(stale_before, now).await?);
        for id in &reaped {
            tracing::warn!(run = id, "marked run {id} abandoned: its process stopped");
        }
        Ok(reaped)
    }

    /// Stops what a dead owner's run left running on this host: members of
    /// its recorded process groups started while the owner still lived.
    async fn stop_orphans(&self, run: &crate::model::Run) -> usize {
        let groups = match self.store.processes(run.id).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(
                    run = run.id,
                    "cannot read the process groups of run {}: {e}",
                    run.id
                );
                return 0;
            }
        };
        // The owner lived until its last heartbeat, give or take one beat.
        let since_alive = (self.clock.now() - run.heartbeat_at).num_milliseconds() as f64 / 1000.0
            - 2.0 * self.heartbeat.as_secs_f64();
        let bound = crate::process::ticks_now().map(|t| {
            t.saturating_sub(
                (since_alive.max(0.0) * crate::process::ticks_per_second() as f64) as u64,
            )
        });
        // First by the tag, which names exactly this run's processes, also
        // those started before the group was recorded (the owner died in
        // between); then what is left in the recorded groups (a child
        // started with a cleared environment).
        let mut stopped = crate::process::stop_tagged(
            &crate::process::run_tag(&run.owner, run.id),
            Duration::from_secs(2),
        )
        .await;
        for (host, group) in groups {
            if host == self.identity.host {
                stopped += crate::process::stop_group(group, bound, Duration::from_secs(2)).await;
            }
        }
        if stopped > 0 {
            tracing::warn!(
                run = run.id,
                "stopped {stopped} process(es) of run {} left by {}",
                run.id,
                run.owner
            );
        }
        stopped
    }

    /// Echo every log line (already redacted) to `f`, for foreground runs.
    pub fn with_tee(mut self, f: impl Fn(&TeeLine<'_>) + Send + Sync + 'static) -> Self {
        self.tee = Some(Arc::new(f));
        self
    }

    /// Waits, at most `within`, for the alert posts and pings still going
    /// on in the background (each bounded by its own timeout). True if
    /// none is left. A process calls this before it exits
    /// ([`SETTLE_WAIT`]), so a run's end ping is sent.
    pub async fn settle(&self, within: Duration) -> bool {
        self.outbound.close();
        let done = tokio::time::timeout(within, self.outbound.wait())
            .await
            .is_ok();
        self.outbound.reopen();
        if !done {
            tracing::warn!(
                "{} ping(s) or alert post(s) still going after {}; left unfinished",
                self.outbound.len(),
                humantime::format_duration(within)
            );
        }
        done
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
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

    fn new_run(&self, job: &JobConfig, req: &RunRequest, attempt: u32) -> NewRun {
        NewRun {
            job: job.name.clone(),
            trigger: if attempt > 1 {
                Trigger::Retry
            } else {
                req.trigger
            },
            triggered_by: req.triggered_by.clone(),
            scheduled_for: req.scheduled_for,
            started_at: self.clock.now(),
            status: RunStatus::Running,
            attempt,
            error: None,
            dry_run: req.dry_run,
            owner: self.identity.owner(),
            retry_of: None,
        }
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

    fn skipped(&self, job: &JobConfig, trigger: Trigger, id: RunId, at: DateTime<Utc>) {
        let _ = self.events.send(RunEvent::Finished {
            id,
            job: job.name.clone(),
            trigger,
            status: RunStatus::Skipped,
            attempt: 1,
            at,
            took: Duration::ZERO,
            checks: Vec::new(),
        });
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
        let failed = matches!(ended.status, RunStatus::Failed | RunStatus::TimedOut);
        // A chained run never chains: a failing triage cannot start another.
        let chain = failed
            && !req.dry_run
            && req.trigger != Trigger::Chained
            && !stop.is_cancelled()
            && !job.on_failure.is_empty();
        if !chain {
            if !req.dry_run {
                ended.notified = self.notify(job, &ended).await;
            }
            return ended;
        }
        // The chained runs go at once; the failure's mail waits for them at
        // most CHAIN_WAIT, so it carries a triage's diagnosis without ever
        // being held up by a long chained job.
        let (started, mut chained) = self.start_chain(job, &ended).await;
        let child = stop.child();
        let runs = futures::future::join_all(
            started
                .iter()
                .map(|(_, next, req, id)| Box::pin(self.execute(next, req, *id, &child))),
        );
        tokio::pin!(runs);
        let done = tokio::select! {
            r = &mut runs => Some(r),
            _ = tokio::time::sleep(self.chain_wait) => None,
        };
        for (i, (pos, next, _, id)) in started.iter().enumerate() {
            let c = match &done {
                Some(results) => {
                    let e = &results[i];
                    // Where it ended: a triage's last step is its diagnosis;
                    // a run that did not succeed says its error.
                    let summary = match self.store.get_run(e.id).await {
                        Ok(Some(r)) if r.status == RunStatus::Succeeded => {
                            r.steps.last().map(|s| s.detail.clone())
                        }
                        Ok(Some(r)) => r.error,
                        _ => e.error.clone(),
                    };
                    ChainedRun {
                        job: next.name.clone(),
                        id: Some(e.id),
                        status: e.status,
                        summary,
                    }
                }
                None => ChainedRun {
                    job: next.name.clone(),
                    id: Some(*id),
                    status: RunStatus::Running,
                    summary: Some(format!(
                        "still running after {}",
                        humantime::format_duration(self.chain_wait)
                    )),
                },
            };
            chained.push((*pos, c));
        }
        chained.sort_by_key(|(pos, _)| *pos);
        ended.chained = chained.into_iter().map(|(_, c)| c).collect();
        ended.notified = self.notify(job, &ended).await;
        if done.is_none() {
            runs.await;
        }
        ended
    }

    /// Pings the job's dead man's switch, if it has one and the run is
    /// real, in the background ([`crate::pings`]); after `after` (the
    /// run's start ping) has ended, so the service sees them in order.
    fn ping(
        &self,
        job: &JobConfig,
        req: &RunRequest,
        first: RunId,
        signal: Option<PingSignal>,
        after: Option<tokio::task::JoinHandle<()>>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let (Some(url), Some(signal)) = (job.ping_url.clone(), signal) else {
            return None;
        };
        if req.dry_run {
            return None;
        }
        let rid = crate::pings::rid(self.store.url(), first);
        let pings = self.env.adapters.pings.clone();
        let (events, clock, redactor) = (
            self.events.clone(),
            self.clock.clone(),
            self.redactor.clone(),
        );
        let name = job.name.clone();
        Some(self.outbound.spawn(async move {
            if let Some(start) = after {
                let _ = start.await;
            }
            let result = pings
                .ping(&url, signal, rid, crate::pings::PING_TIMEOUT)
                .await;
            let outcome = match &result {
                Ok(()) => {
                    tracing::debug!(job = %name, run = first, "pinged {signal} ({url}, rid {rid})");
                    CallOutcome::Sent
                }
                Err(e) => {
                    tracing::warn!(job = %name, run = first, "{}; the run goes on regardless", redactor.redact(&e.to_string()));
                    if e.timed_out() {
                        CallOutcome::TimedOut
                    } else {
                        CallOutcome::Failed
                    }
                }
            };
            let _ = events.send(RunEvent::Pinged {
                id: first,
                job: name,
                signal,
                outcome,
                at: clock.now(),
            });
        }))
    }

    /// Posts the alert of `job`'s state now, in the background.
    fn alert_in_background(&self, job: &str) {
        if self
            .env
            .config
            .as_ref()
            .is_none_or(|c| c.alertmanager.is_none())
        {
            return;
        }
        let (this, job) = (self.clone(), job.to_string());
        self.outbound.spawn(async move {
            this.post_alerts(Which::Job(&job)).await;
        });
    }

    /// Posts the alerts the jobs' states call for ([`crate::alerting`]):
    /// one job's after its run changed it, or every due one (the daemon's
    /// pass, every `alertmanager.resend`). Logged and told as an event;
    /// never fails anything.
    pub async fn post_alerts(&self, which: Which<'_>) {
        let Some(config) = self.env.config.as_deref() else {
            return;
        };
        let posted = crate::alerting::post(
            self.store.as_ref(),
            self.env.adapters.alerts.as_ref(),
            config,
            &self.redactor,
            which,
            self.clock.now(),
        )
        .await;
        let posted = match posted {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("{e}");
                return;
            }
        };
        let what = describe_post(&posted.firing, &posted.resolved);
        let outcome = match &posted.result {
            Ok(()) => {
                tracing::debug!("posted {what} to Alertmanager");
                CallOutcome::Sent
            }
            Err(e) => {
                tracing::warn!(
                    "cannot post {what}: {}",
                    self.redactor.redact(&e.to_string())
                );
                if e.timed_out() {
                    CallOutcome::TimedOut
                } else {
                    CallOutcome::Failed
                }
            }
        };
        let _ = self.events.send(RunEvent::AlertsPosted {
            firing: posted.firing,
            resolved: posted.resolved,
            outcome,
            at: self.clock.now(),
        });
    }

    /// Claims a run of each job a failed run's job names in `on_failure`
    /// (trigger `chained`, `triggered_by` naming the failed run), applying
    /// overlap rules as the scheduler does, after the claim: a job that is
    /// not `allow` and already running is recorded `skipped`. Returns the
    /// runs to execute and, for the others, why they did not start, each
    /// with its place in `on_failure`.
    #[allow(clippy::type_complexity)]
    async fn start_chain(
        &self,
        job: &JobConfig,
        ended: &Ended,
    ) -> (
        Vec<(usize, JobConfig, RunRequest, RunId)>,
        Vec<(usize, ChainedRun)>,
    ) {
        let (mut started, mut not) = (Vec::new(), Vec::new());
        let Some(config) = self.env.config.clone() else {
            return (started, not);
        };
        for (pos, name) in job.on_failure.iter().enumerate() {
            let refused = |why: String| ChainedRun {
                job: name.to_string(),
                id: None,
                status: RunStatus::Skipped,
                summary: Some(why),
            };
            let Ok(next) = config.job(name.as_str()) else {
                not.push((pos, refused(format!("no job named `{name}`"))));
                continue;
            };
            let mut req = RunRequest {
                trigger: Trigger::Chained,
                triggered_by: crate::model::chained_by(ended.id, &job.name),
                scheduled_for: None,
                dry_run: false,
                params: Params::default(),
                notes: vec![format!(
                    "started because run {} of `{}` ended {}",
                    ended.id, job.name, ended.status
                )],
                ..Default::default()
            };
            let id = match self.admit(next, &mut req).await {
                Ok(Admission::Start { id }) => id,
                Ok(Admission::Lost) => {
                    not.push((pos, refused("another process claimed it".into())));
                    continue;
                }
                Ok(Admission::Skipped { id, blockers, .. }) => {
                    not.push((
                        pos,
                        ChainedRun {
                            job: next.name.clone(),
                            id: blockers.first().copied(),
                            status: RunStatus::Running,
                            summary: Some(format!("already running; run {id} recorded skipped")),
                        },
                    ));
                    continue;
                }
                Err(e) => {
                    tracing::error!(job = %job.name, run = ended.id, "cannot start {} on failure: {e}", next.name);
                    not.push((pos, refused(format!("not started: {e}"))));
                    continue;
                }
            };
            tracing::info!(job = %job.name, run = ended.id, "run {} failed: starting {} (run {id})", ended.id, next.name);
            started.push((pos, next.clone(), req, id));
        }
        (started, not)
    }

    /// Mails a run's final outcome as [`crate::notify`] decides, and posts
    /// its alert when the job's failing state flipped
    /// ([`crate::alerting`], in the background). A mail that cannot go is
    /// kept for the daemon; nothing here fails the run.
    async fn notify(&self, job: &JobConfig, ended: &Ended) -> Option<String> {
        let now = self.clock.now();
        let verdict = match notify::record(self.store.as_ref(), job, ended.id, ended.status, now)
            .await
        {
            Ok(Some(v)) => v,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(job = %job.name, run = ended.id, "cannot record the notification state: {e}");
                return None;
            }
        };
        if verdict.changed {
            self.alert_in_background(&job.name);
        }
        // Alerts only: a job may notify with no one to mail.
        if job.notify_to.is_empty() {
            return None;
        }
        let notice = verdict.notice(job.notify)?;
        let run = match self.store.get_run(ended.id).await {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(job = %job.name, run = ended.id, "cannot read the run to notify: {e}");
                return None;
            }
        };
        let (mail, links) = match &self.env.config {
            Some(c) => (c.mail.clone(), c.links.clone()),
            None => Default::default(),
        };
        let mut draft = notify::compose(
            notice,
            job,
            &run,
            &mail,
            &links,
            job.timezone,
            &ended.chained,
        );
        draft.text = self.redactor.redact(&draft.text);
        if let Some(h) = &draft.html {
            draft.html = Some(self.redactor.redact(h));
        }
        let id = notify::message_id(&job.name, run.id, notice, &self.identity.host);
        let email = match draft.compose(&id) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(job = %job.name, run = run.id, "cannot build the notification: {e}");
                return None;
            }
        };
        let what = format!("{} notification of run {}", notice.word(), run.id);
        let said = match self
            .postman
            .deliver(&email, Some(&job.name), Some(run.id))
            .await
        {
            Ok(Delivered::Sent(to)) => {
                format!("{what} sent to {}: {to}", email.recipients.join(", "))
            }
            Ok(Delivered::Pending { error, .. }) => {
                format!("{what} not sent yet ({error}); kept, and resent by `runbookd serve`")
            }
            Ok(Delivered::AlreadySent) => return None,
            Err(e) => format!("{what} lost: {e}"),
        };
        tracing::info!(job = %job.name, run = run.id, "{said}");
        Some(said)
    }

    async fn attempts(
        &self,
        job: &JobConfig,
        req: &RunRequest,
        first: RunId,
        stop: &Stop,
    ) -> Ended {
        let mut id = first;
        let mut attempt = 1;
        let _ = self.events.send(RunEvent::Started {
            id,
            job: job.name.clone(),
            trigger: req.trigger,
            scheduled_for: req.scheduled_for,
            started_at: self.clock.now(),
        });
        loop {
            // Every line logged inside the attempt names its job and run.
            let span = tracing::info_span!("run", job = %job.name, run = id, attempt);
            let (status, error) = self
                .attempt(job, req, id, attempt, stop)
                .instrument(span)
                .await;
            let retryable = matches!(status, RunStatus::Failed | RunStatus::TimedOut);
            if !retryable || attempt > job.retries.max || stop.is_cancelled() || req.dry_run {
                return Ended {
                    id,
                    status,
                    attempt,
                    error,
                    notified: None,
                    chained: Vec::new(),
                };
            }
            // Whole milliseconds: the jittered wait is logged.
            let wait =
                Duration::from_millis(job.retries.wait_before(attempt + 1).as_millis() as u64);
            tracing::info!(job = %job.name, run = id, attempt, wait = %humantime::format_duration(wait), "retrying after {status}");
            if retry::wait(wait, Some(&stop.token)).await.is_err() {
                return Ended {
                    id,
                    status,
                    attempt,
                    error,
                    notified: None,
                    chained: Vec::new(),
                };
            }
            attempt += 1;
            let mut run = self.new_run(job, req, attempt);
            run.retry_of = Some(id);
            match self.store.insert_run(&run).await {
                Ok(Some(next)) => {
                    let _ = self.events.send(RunEvent::Started {
                        id: next,
                        job: job.name.clone(),
                        trigger: Trigger::Retry,
                        scheduled_for: run.scheduled_for,
                        started_at: run.started_at,
                    });
                    id = next;
                }
                Ok(None) => {
                    return Ended {
                        id,
                        status,
                        attempt: attempt - 1,
                        error,
                        notified: None,
                        chained: Vec::new(),
                    };
                }
                Err(e) => {
                    tracing::error!(job = %job.name, run = id, "cannot record retry attempt {attempt}: {e}");
                    return Ended {
                        id,
                        status,
                        attempt: attempt - 1,
                        error,
                        notified: None,
                        chained: Vec::new(),
                    };
                }
            }
        }
    }

    async fn attempt(
        &self,
        job: &JobConfig,
        req: &RunRequest,
        id: RunId,
        attempt: u32,
        outer: &Stop,
    ) -> (RunStatus, Option<String>) {
        let began = self.clock.now();
        let mut log = RunLog::new(self.log_max_bytes, self.redactor.clone()).for_run(&job.name, id);
        if let Some(tee) = &self.tee {
            let tee = tee.clone();
            log = log.with_tee(move |l| tee(l));
        }
        let stop = outer.child();
        log.info(&format!(
            "run {id} of `{}` ({} job), attempt {attempt}, trigger {}{}, by {} on {}",
            job.name,
            job.kind(),
            if attempt > 1 {
                Trigger::Retry
            } else {
                req.trigger
            },
            req.scheduled_for
                .map(|s| format!(" for {}", s.to_rfc3339()))
                .unwrap_or_default(),
            req.triggered_by,
            self.identity.owner(),
        ));
        if !req.params.is_empty() {
            let p: Vec<String> = req.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            log.info(&format!("parameters: {}", p.join(" ")));
        }
        for note in &req.notes {
            log.info(note);
        }
        let ctx = RunContext {
            run_id: id,
            job: job.name.clone(),
            attempt,
            dry_run: req.dry_run,
            params: req.params.clone(),
            confirmed: req.confirmed,
            log: log.clone(),
            steps: Steps::new(
                self.store.clone(),
                self.clock.clone(),
                id,
                self.redactor.clone(),
                log.clone(),
            ),
            procs: Processes::new(self.store.clone(), id, self.identity.clone(), log.clone()),
            redactor: self.redactor.clone(),
            cancel: stop.token.clone(),
        };
        let heartbeat_done = CancellationToken::new();
        let beat = tokio::spawn(
            heartbeat_loop(
                self.store.clone(),
                self.clock.clone(),
                id,
                self.heartbeat,
                log.clone(),
                stop.clone(),
                heartbeat_done.clone(),
            )
            .in_current_span(),
        );

        self.local
            .lock()
            .expect("local runs lock")
            .insert(id, outer.clone());
        let exec = jobs::executor(job, &self.env);
        let replacing = if attempt == 1 {
            req.replacing.as_slice()
        } else {
            &[]
        };
        let fut = async {
            if !replacing.is_empty() {
                // A run cancelled while it waits (replaced in turn, or
                // stopped) ends at once: it has started nothing.
                tokio::select! {
                    r = self.await_replaced(job, replacing, &log) => r?,
                    _ = stop.cancelled() => return Err(JobError::Cancelled),
                }
            }
            exec.run(&ctx).await
        };
        tokio::pin!(fut);
        let mut timed_out = false;
        let result = tokio::select! {
            r = &mut fut => Some(r),
            _ = tokio::time::sleep(job.timeout) => {
                timed_out = true;
                stop.cancel(format!("timed out after {}", humantime::format_duration(job.timeout)));
                None
            }
            _ = stop.cancelled() => None,
        };
        let result = match result {
            Some(r) => r,
            None => match tokio::time::timeout(STOP_WAIT, &mut fut).await {
                Ok(r) => r,
                Err(_) => {
                    log.info(&format!(
                        "job did not stop within {}s of being cancelled; abandoning its task",
                        STOP_WAIT.as_secs()
                    ));
                    Err(JobError::Cancelled)
                }
            },
        };
        heartbeat_done.cancel();
        let _ = beat.await;
        self.local.lock().expect("local runs lock").remove(&id);

        let mut checks = Vec::new();
        let (status, error) = match result {
            Ok(outcome) if !stop.is_cancelled() => {
                self.store_records(id, &outcome.records, &log).await;
                checks = outcome
                    .records
                    .iter()
                    .filter_map(|r| match r {
                        Record::Check(c) => Some((
                            c.check.clone(),
                            c.status,
                            c.value.as_ref().and_then(|v| v.number()),
                        )),
                        Record::Step(_) => None,
                    })
                    .collect();
                match outcome.failure {
                    // The outcome is the command's own last line; the log
                    // keeps it for the history without echoing it twice.
                    Some(f) => {
                        log.record(&format!("failed: {f}"));
                        (RunStatus::Failed, Some(f))
                    }
                    None => {
                        if let Some(s) = &outcome.summary {
                            log.record(&format!("succeeded: {s}"));
                        }
                        (RunStatus::Succeeded, None)
                    }
                }
            }
            // A job that finished in the same instant it was cancelled still
            // reports how it was stopped: the cancel is what the operator
            // needs to see.
            Ok(_) | Err(JobError::Cancelled) | Err(JobError::Failed(_)) if stop.is_cancelled() => {
                let reason = if timed_out {
                    stop.reason()
                } else {
                    outer.reason_or(&stop)
                };
                let status = if timed_out {
                    RunStatus::TimedOut
                } else {
                    RunStatus::Cancelled
                };
                log.info(&format!("{status}: {reason}"));
                (status, Some(reason))
            }
            Err(JobError::Cancelled) => (
                RunStatus::Failed,
                Some("job stopped as cancelled without being asked".to_string()),
            ),
            Err(JobError::Failed(m)) => {
                log.record(&format!("failed: {m}"));
                (RunStatus::Failed, Some(m))
            }
            Ok(_) => unreachable!("handled above"),
        };
        let error = error.map(|e| self.redactor.redact(&e));
        let finish = Finish {
            status,
            finished_at: self.clock.now(),
            error: error.clone(),
            log: log.snapshot(),
        };
        self.record_finish(id, &finish).await;
        let _ = self.events.send(RunEvent::Finished {
            id,
            job: job.name.clone(),
            trigger: if attempt > 1 {
                Trigger::Retry
            } else {
                req.trigger
            },
            status,
            attempt,
            at: finish.finished_at,
            took: (finish.finished_at - began).to_std().unwrap_or_default(),
            checks,
        });
        (status, error)
    }

    /// Stores what the job handed back, whatever its kind.
    async fn store_records(&self, id: RunId, records: &[Record], log: &RunLog) {
        let checks: Vec<CheckResult> = records
            .iter()
            .filter_map(|r| match r {
                Record::Check(c) => Some(self.redact_check(c)),
                Record::Step(_) => None,
            })
            .collect();
        if !checks.is_empty()
            && let Err(e) = self.store.record_checks(id, &checks).await
        {
            log.info(&format!("cannot store check results: {e}"));
        }
        for r in records {
            if let Record::Step(step) = r {
                let mut step = step.clone();
                step.detail = self.redactor.redact(&step.detail);
                step.target = self.redactor.redact(&step.target);
                if let Err(e) = self.store.record_step(id, &step).await {
                    log.info(&format!("cannot store step `{}`: {e}", step.name));
                }
            }
        }
    }

    fn redact_check(&self, c: &CheckResult) -> CheckResult {
        let r = &self.redactor;
        CheckResult {
            check: c.check.clone(),
            status: c.status,
            value: c.value.as_ref().map(|v| match v {
                Measured::Text(t) => Measured::Text(r.redact(t)),
                n => n.clone(),
            }),
            threshold: c
                .threshold
                .as_ref()
                .map(|t| Threshold::from(r.redact(&t.to_string()))),
            reason: r.redact(&c.reason),
            duration_ms: c.duration_ms,
        }
    }

    /// Writing the end of a run is retried: a brief store outage must not
    /// leave the row `running` until a peer abandons it.
    async fn record_finish(&self, id: RunId, finish: &Finish) {
        let waits = Backoff::doubling(Duration::from_millis(250));
        for n in 1..=5 {
            match self.store.finish_run(id, finish).await {
                Ok(()) => return,
                Err(e) if n < 5 => {
                    tracing::warn!(
                        run = id,
                        "recording the end of run {id} failed (try {n} of 5): {e}"
                    );
                    // Not cancellable: the end of a cancelled run must be
                    // written too.
                    let _ = retry::wait(waits.delay(n), None).await;
                }
                Err(e) => tracing::error!(
                    run = id,
                    "cannot record the end of run {id} ({}): {e}; it will be marked abandoned when its heartbeat goes stale",
                    finish.status
                ),
            }
        }
    }
}

/// "the alerts of a, b (firing) and c (resolved)", for logs.
fn describe_post(firing: &[String], resolved: &[String]) -> String {
    let mut parts = Vec::new();
    if !firing.is_empty() {
        parts.push(format!("{} (firing)", firing.join(", ")));
    }
    if !resolved.is_empty() {
        parts.push(format!("{} (resolved)", resolved.join(", ")));
    }
    format!("the alerts of {}", parts.join(" and "))
}

impl Stop {
    /// The outer reason if the outer token stopped us, else our own.
    fn reason_or(&self, inner: &Stop) -> String {
        if self.is_cancelled() {
            self.reason()
        } else {
            inner.reason()
        }
    }
}

async fn heartbeat_loop(
    store: Arc<dyn HistoryStore>,
    clock: Arc<dyn Clock>,
    id: RunId,
    every: Duration,
    log: RunLog,
    stop: Stop,
    done: CancellationToken,
) {
    let mut saved_version = u64::MAX;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = done.cancelled() => return,
        }
        let version = log.version();
        let snapshot = (version != saved_version).then(|| log.snapshot());
        match store.heartbeat(id, clock.now(), snapshot.as_ref()).await {
            Ok(cancel_requested) => {
                saved_version = version;
                if cancel_requested && !stop.is_cancelled() {
                    log.info("cancel requested through the history store");
                    stop.cancel(CANCEL_ASKED);
                }
            }
            Err(e) => tracing::warn!(run = id, "heartbeat failed: {e}"),
        }
    }
}
