//! `runbookd serve`: the scheduler loop, its timer, its housekeeping and its
//! HTTP endpoint, started and stopped together.
//!
//! The timer is tokio-cron-scheduler, running one UTC job every second whose
//! only effect is to wake the loop. UTC because the crate fixes a timezone's
//! offset when the job is created (its issue #107), which is only correct for
//! a zone without DST; every real schedule is evaluated by `schedule.rs`.
//! A tick that comes late or not at all delays fires; it cannot lose them,
//! because each tick evaluates everything since the last.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::{self, DaemonState};
use crate::runner::{CANCEL_ASKED, Runner};
use crate::scheduler::Scheduler;
use crate::store::{HistoryStore, RunFilter, RunStatus, StoreError, Wakeup, Wakeups};

const PRUNE_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the timer (tokio-cron-scheduler): {0}")]
    Timer(String),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
}

pub type Result<T, E = DaemonError> = std::result::Result<T, E>;

/// Runs the daemon until `shutdown` is cancelled, then drains. The runner
/// carries the store, the clock and the outside systems, so a test can run
/// a whole daemon against fakes.
pub async fn serve(
    config: Arc<Config>,
    runner: Runner,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> Result<()> {
    let daemon = &config.daemon;
    let store = runner.store().clone();
    let clock = runner.clock().clone();
    let identity = runner.identity().clone();
    let reaped = runner.reap(daemon.stale_after).await?;
    let health = runner.store_health().clone();
    let postman = runner.postman().clone();
    let alerter = runner.clone();
    let runner_redactor = runner.redactor().clone();
    let mut resending: Option<tokio::task::JoinHandle<()>> = None;
    let mut reposting: Option<tokio::task::JoinHandle<()>> = None;
    let mut last_repost: Option<tokio::time::Instant> = None;
    let mut pruning: Option<tokio::task::JoinHandle<()>> = None;
    // Before anything starts: an unreadable credential file fails `serve`.
    let console = if config.console.enabled {
        crate::console::router(crate::console::Console::new(
            config.clone(),
            store.clone(),
            health.clone(),
            clock.clone(),
            runner_redactor,
        )?)
    } else {
        axum::Router::new()
    };
    let state = DaemonState::new(clock.now(), health.clone());
    state.abandoned(reaped.len());
    for job in config.jobs.values() {
        let schedule = job
            .schedule
            .clone()
            .filter(|_| !job.suspend)
            .map(|s| (s, job.timezone));
        state.describe_job(&job.name, job.timeout, schedule);
    }
    // Each job's last status from the history, so a restart does not
    // forget a failing job; in the background, as a down store must not
    // hold up the start, and a run this process ends meanwhile wins.
    let seeding = tokio::spawn(last_runs(config.clone(), store.clone(), state.clone()));
    let mut events = runner.subscribe();
    let observer_state = state.clone();
    let observer = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ev) => observer_state.observe(&ev),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("metrics missed {n} run events")
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let scheduler = Scheduler::start(config.clone(), runner, clock.clone()).await?;

    let http_stop = CancellationToken::new();
    let (bound, http_task) = http::bind(listen, state.clone(), console, http_stop.clone())
        .await
        .map_err(|source| DaemonError::Bind {
            addr: listen,
            source,
        })?;

    let wake = Arc::new(Notify::new());
    let mut timer = start_timer(wake.clone()).await?;
    // Requests and cancels the store pushes, acted on at once; polling
    // (each tick, each heartbeat) stays for what a push misses.
    let requested = Arc::new(Notify::new());
    let relaying = if config.daemon.notify {
        match store.wakeups().await {
            Ok(Some(w)) => Some(tokio::spawn(relay(
                w,
                scheduler.runner().clone(),
                requested.clone(),
            ))),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("{e}; triggers and cancels are polled");
                None
            }
        }
    } else {
        None
    };
    let scheduled = config
        .jobs
        .values()
        .filter(|j| j.schedule.is_some())
        .count();
    tracing::info!(
        listen = %bound,
        store = store.url(),
        owner = identity.owner(),
        "runbookd serving {} job(s), {scheduled} scheduled",
        config.jobs.len()
    );

    let mut maintenance = tokio::time::interval(daemon.heartbeat);
    maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<tokio::time::Instant> = None;
    // The first evaluation happens at once: it is the one that catches up.
    wake.notify_one();
    loop {
        // The timer polls every 500 ms; a fire due before its next poll is
        // met exactly by sleeping until it.
        let exact = scheduler
            .next_due()
            .map(|at| (at - clock.now()).to_std().unwrap_or_default())
            .filter(|d| *d <= EXACT_WAKE_WITHIN);
        let until_due = async move {
            match exact {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = until_due => tick(&scheduler, &state, clock.as_ref()).await,
            _ = wake.notified() => tick(&scheduler, &state, clock.as_ref()).await,
            _ = requested.notified() => {
                scheduler.take_requests_now().await;
            }
            _ = maintenance.tick() => {
                // While the store is down only the scheduler's probe calls
                // it: housekeeping waits, so the loop never stalls on it.
                if health.is_up() {
                    let stale_before = clock.now() - chrono::Duration::from_std(daemon.stale_after).unwrap_or_default();
                    match store.abandon_stale(stale_before, clock.now()).await {
                        Ok(ids) => {
                            state.abandoned(ids.len());
                            for id in ids {
                                tracing::warn!(run = id, "marked run {id} abandoned: no heartbeat for {}", humantime::format_duration(daemon.stale_after));
                            }
                        }
                        Err(e) => tracing::warn!("{e}"),
                    }
                    // Requests past their lifetime are never taken; this
                    // records them, so `requests` and the logs say so.
                    match store.expire_requests(clock.now()).await {
                        Ok(expired) => {
                            for r in expired {
                                tracing::warn!(request = r.id, job = %r.job, "request #{} for `{}` by {} expired unstarted: no daemon took it by {}", r.id, r.job, r.requested_by, r.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default());
                            }
                        }
                        Err(e) => tracing::warn!("{e}"),
                    }
                }
                // Mail kept because its server was down: sent in the
                // background (an SMTP conversation may take its timeout),
                // one pass at a time.
                if health.is_up() && resending.as_ref().is_none_or(|t| t.is_finished()) {
                    let postman = postman.clone();
                    let (store, state) = (store.clone(), state.clone());
                    resending = Some(tokio::spawn(async move {
                        match postman.resend_due(RESEND_BATCH).await {
                            Ok(r) if r.sent + r.failed > 0 => tracing::info!("pending mail: {} sent, {} still failing", r.sent, r.failed),
                            Ok(_) => {}
                            Err(e) => tracing::warn!("pending mail: {e}"),
                        }
                        match store.mail_backlog().await {
                            Ok(b) => state.mail(b),
                            Err(e) => tracing::warn!("pending mail: {e}"),
                        }
                    }));
                }
                // Failing jobs' alerts, posted again every `resend` (and
                // recent recoveries', so resolved wins: alerting.rs), in
                // the background, one pass at a time: a silent
                // Alertmanager holds up nothing.
                if let Some(am) = &config.alertmanager
                    && health.is_up()
                    && last_repost.is_none_or(|t| t.elapsed() >= am.resend)
                    && reposting.as_ref().is_none_or(|t| t.is_finished())
                {
                    last_repost = Some(tokio::time::Instant::now());
                    let alerter = alerter.clone();
                    reposting = Some(tokio::spawn(async move {
                        alerter.post_alerts(crate::alerting::Which::Due).await;
                    }));
                }
                // Old runs are deleted in the background, in bounded
                // batches, one prune at a time: a first prune after a
                // retention change can take minutes, and no fire waits on it.
                if health.is_up()
                    && last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY)
                    && pruning.as_ref().is_none_or(|t| t.is_finished())
                {
                    last_prune = Some(tokio::time::Instant::now());
                    let retention = config.history.retention;
                    let before = clock.now() - chrono::Duration::from_std(retention).unwrap_or_default();
                    let store = store.clone();
                    pruning = Some(tokio::spawn(async move {
                        match store.prune(before).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!("pruned {n} run(s) older than {}", humantime::format_duration(retention)),
                            Err(e) => tracing::warn!("{e}"),
                        }
                    }));
                }
            }
        }
        state.loop_turned(clock.now());
    }

    for t in [resending, pruning, relaying, reposting]
        .into_iter()
        .flatten()
    {
        t.abort();
    }
    seeding.abort();
    tracing::info!("stopping: no new fires; draining running jobs");
    let _ = timer.shutdown().await;
    scheduler.shutdown(daemon.shutdown_grace).await;
    // The last runs' end pings and alerts, each bounded by its timeout.
    alerter.settle(crate::runner::SETTLE_WAIT).await;
    http_stop.cancel();
    let _ = http_task.await;
    observer.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Acts on what the store pushes: a queued request wakes the loop to take
/// it; a cancel stops the run at once if this process runs it. After a
/// lost connection the loop looks for requests once (cancels are seen at
/// the runs' heartbeats).
pub async fn relay(mut wakeups: Box<dyn Wakeups>, runner: Runner, requested: Arc<Notify>) {
    loop {
        match wakeups.next().await {
            Wakeup::Request | Wakeup::Resync => requested.notify_one(),
            Wakeup::Cancel(id) => {
                runner.cancel_local(id, CANCEL_ASKED);
            }
        }
    }
}

/// Pending messages sent per maintenance pass (or after a `runbookd run`)
/// at most.
pub(crate) const RESEND_BATCH: u32 = 20;

/// A fire due within this of now is waited for exactly, not left to the
/// timer's next poll.
const EXACT_WAKE_WITHIN: Duration = Duration::from_secs(2);

async fn tick(scheduler: &Scheduler, state: &DaemonState, clock: &dyn crate::clock::Clock) {
    let report = scheduler.tick().await;
    state.ticked(clock.now(), scheduler.active_runs(), &report);
    state.next_fires(scheduler.next_fires());
}

/// Runs read per job for its last final run: enough to pass its latest
/// retries, dry runs and skipped fires.
const LAST_RUN_WINDOW: u32 = 20;

/// Tells `state` each job's last final run (not a dry run, not skipped,
/// not running) from the history.
async fn last_runs(config: Arc<Config>, store: Arc<dyn HistoryStore>, state: Arc<DaemonState>) {
    for name in config.jobs.keys() {
        let filter = RunFilter {
            job: Some(name.to_string()),
            since: None,
            limit: LAST_RUN_WINDOW,
        };
        match store.list_runs(&filter).await {
            Ok(runs) => {
                let last = runs.iter().find(|r| {
                    !r.dry_run && !matches!(r.status, RunStatus::Running | RunStatus::Skipped)
                });
                if let Some(r) = last {
                    state.last_run(&r.job, r.status, r.finished_at.unwrap_or(r.started_at));
                }
                // The last success too, for "no success in N periods" after
                // a restart (beyond this window it is older than 20 runs).
                let success = runs
                    .iter()
                    .find(|r| !r.dry_run && r.status == RunStatus::Succeeded);
                if let Some(r) = success {
                    state.succeeded(&r.job, r.finished_at.unwrap_or(r.started_at));
                }
            }
            Err(e) => {
                tracing::warn!("cannot read the last runs for /metrics: {e}");
                return;
            }
        }
    }
}

async fn start_timer(wake: Arc<Notify>) -> Result<tokio_cron_scheduler::JobScheduler> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let err = |e: tokio_cron_scheduler::JobSchedulerError| DaemonError::Timer(e.to_string());
    let timer = JobScheduler::new().await.map_err(err)?;
    let job = Job::new_async("* * * * * *", move |_id, _lock| {
        let wake = wake.clone();
        Box::pin(async move { wake.notify_one() })
    })
    .map_err(err)?;
    timer.add(job).await.map_err(err)?;
    timer.start().await.map_err(err)?;
    Ok(timer)
}
