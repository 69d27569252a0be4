//! `/healthz`, `/readyz` and `/metrics` of `runbookd serve`.
//!
//! Health is the process's own: its loop turns. A down history store does
//! not fail health, because a restart would not bring it back, and the loop
//! never waits on it; it fails readiness, shows in `runbookd_store_up` and
//! `runbookd_store_errors_total`, and in the logs.
//!
//! Metrics are kept and written by prometheus-client, in the Prometheus text
//! format 0.0.4: the crate escapes label values, so no job or check name can
//! make Prometheus reject the scrape. Their values follow events (runs,
//! ticks, maintenance passes); a scrape only works out ages from its own
//! instant, and never calls the store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::adapters::ping::PingSignal;
use crate::model::{CheckStatus, MailBacklog, RunId};
use crate::runner::{CallOutcome, RunEvent};
use crate::schedule::CronExpr;
use crate::scheduler::TickReport;
use crate::store::{RunStatus, StoreHealth, Trigger};

/// A tick older than this makes `/healthz` fail.
pub const TICK_STALE_SECS: i64 = 15;

/// Upper bounds (seconds) of the run-duration histogram: from a quick check
/// to a long migration.
const BUCKETS: [f64; 11] = [
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
];

/// The statuses a run can end with, each a series of
/// `runbookd_job_last_status` (1 on the job's last, 0 on the others).
const FINAL: [RunStatus; 5] = [
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::TimedOut,
    RunStatus::Cancelled,
    RunStatus::Abandoned,
];

type FloatGauge = Gauge<f64, AtomicU64>;

/// Label values are our words; the crate escapes whatever they hold.
macro_rules! word_label {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    )*};
}
word_label!(Trigger, RunStatus, CheckStatus, CallOutcome, PingSignal);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByJob {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByTrigger {
    job: String,
    trigger: Trigger,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByStatus {
    job: String,
    status: RunStatus,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByCheckStatus {
    job: String,
    status: CheckStatus,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByCheck {
    job: String,
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByOp {
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByOutcome {
    outcome: CallOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByPing {
    job: String,
    signal: PingSignal,
    outcome: CallOutcome,
}

fn by_job(job: &str) -> ByJob {
    ByJob {
        job: job.to_string(),
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Every metric of `/metrics`; handles into the registry that encodes them.
#[derive(Debug)]
struct Metrics {
    last_tick: FloatGauge,
    ticks: Counter,
    ready: Gauge,
    active_runs: Gauge,
    store_up: Gauge,
    store_errors: Family<ByOp, Counter>,
    fires_missed: Family<ByJob, Counter>,
    runs_started: Family<ByTrigger, Counter>,
    runs_finished: Family<ByStatus, Counter>,
    fire_delay: Family<ByJob, FloatGauge>,
    run_duration: Family<ByJob, Histogram, fn() -> Histogram>,
    last_success: Family<ByJob, Gauge>,
    next_fire: Family<ByJob, Gauge>,
    job_period: Family<ByJob, FloatGauge>,
    job_last_status: Family<ByStatus, Gauge>,
    job_last_finished: Family<ByJob, Gauge>,
    job_timeout: Family<ByJob, FloatGauge>,
    running_longest: Family<ByJob, FloatGauge>,
    mail_pending: Gauge,
    mail_oldest_pending: FloatGauge,
    check_results: Family<ByCheckStatus, Counter>,
    check_value: Family<ByCheck, FloatGauge>,
    claim_conflicts: Counter,
    runs_abandoned: Counter,
    alertmanager_posts: Family<ByOutcome, Counter>,
    pings: Family<ByPing, Counter>,
}

impl Metrics {
    /// Registers every metric under `runbookd_`, in the order they are
    /// shown. The crate adds `_total` to counters and a full stop to help.
    fn register(r: &mut Registry) -> Metrics {
        let m = Metrics {
            last_tick: Default::default(),
            ticks: Default::default(),
            ready: Default::default(),
            active_runs: Default::default(),
            store_up: Default::default(),
            store_errors: Default::default(),
            fires_missed: Default::default(),
            runs_started: Default::default(),
            runs_finished: Default::default(),
            fire_delay: Default::default(),
            run_duration: Family::new_with_constructor(duration_histogram),
            last_success: Default::default(),
            next_fire: Default::default(),
            job_period: Default::default(),
            job_last_status: Default::default(),
            job_last_finished: Default::default(),
            job_timeout: Default::default(),
            running_longest: Default::default(),
            mail_pending: Default::default(),
            mail_oldest_pending: Default::default(),
            check_results: Default::default(),
            check_value: Default::default(),
            claim_conflicts: Default::default(),
            runs_abandoned: Default::default(),
            alertmanager_posts: Default::default(),
            pings: Default::default(),
        };
        r.register(
            "last_tick_timestamp_seconds",
            "When the scheduler last evaluated its jobs",
            m.last_tick.clone(),
        );
        r.register("ticks", "Scheduler evaluations", m.ticks.clone());
        r.register(
            "ready",
            "1 while /readyz answers 200 (jobs evaluated, store up), else 0",
            m.ready.clone(),
        );
        r.register(
            "active_runs",
            "Runs this process is executing",
            m.active_runs.clone(),
        );
        r.register(
            "store_up",
            "Whether the history store answers (1) or not (0)",
            m.store_up.clone(),
        );
        r.register(
            "store_errors",
            "Failed history store calls, by operation",
            m.store_errors.clone(),
        );
        r.register(
            "fires_missed",
            "Scheduled fires that will never run (runbookd or its store was down)",
            m.fires_missed.clone(),
        );
        r.register(
            "runs_started",
            "Runs this process recorded, by trigger; a fire recorded skipped starts and ends at once",
            m.runs_started.clone(),
        );
        r.register(
            "runs_finished",
            "Run attempts ended, by status, skipped fires included",
            m.runs_finished.clone(),
        );
        r.register(
            "fire_delay_seconds",
            "Scheduled instant to start, of the job's last scheduled run",
            m.fire_delay.clone(),
        );
        r.register(
            "run_duration_seconds",
            "How long run attempts took, by job (skipped runs not counted)",
            m.run_duration.clone(),
        );
        r.register(
            "last_success_timestamp_seconds",
            "When the job last succeeded on this process",
            m.last_success.clone(),
        );
        r.register(
            "next_fire_timestamp_seconds",
            "The job's next scheduled fire",
            m.next_fire.clone(),
        );
        r.register(
            "job_period_seconds",
            "The job's period now: from its previous scheduled fire to its next",
            m.job_period.clone(),
        );
        r.register(
            "job_last_status",
            "1 on the status of the job's last final run (dry runs and skipped fires aside), 0 on the others",
            m.job_last_status.clone(),
        );
        r.register(
            "job_last_finished_timestamp_seconds",
            "When the job's last final run ended; on replicas the newest is the job's",
            m.job_last_finished.clone(),
        );
        r.register(
            "job_timeout_seconds",
            "The job's timeout, per attempt",
            m.job_timeout.clone(),
        );
        r.register(
            "running_longest_seconds",
            "Age of the job's oldest attempt running on this process",
            m.running_longest.clone(),
        );
        r.register(
            "mail_pending",
            "Messages kept in the history store until they can be sent",
            m.mail_pending.clone(),
        );
        r.register(
            "mail_oldest_pending_seconds",
            "Age of the oldest pending message (0 when none is)",
            m.mail_oldest_pending.clone(),
        );
        r.register(
            "check_results",
            "Check results recorded, by job and status",
            m.check_results.clone(),
        );
        r.register(
            "check_value",
            "The number a check last measured",
            m.check_value.clone(),
        );
        r.register(
            "claim_conflicts",
            "Fires another replica claimed first",
            m.claim_conflicts.clone(),
        );
        r.register(
            "runs_abandoned",
            "Runs this process marked abandoned (their owner died or stopped beating)",
            m.runs_abandoned.clone(),
        );
        r.register(
            "alertmanager_posts",
            "Posts of job alerts to Alertmanager, by outcome (sent, failed, timed_out)",
            m.alertmanager_posts.clone(),
        );
        r.register(
            "pings",
            "Dead man's switch pings, by job, signal (start, success, fail) and outcome",
            m.pings.clone(),
        );
        m
    }
}

/// What `serve` knows of itself: health, readiness and its metrics. Values
/// follow events (runs, ticks, maintenance passes); a scrape reads them and
/// computes only what depends on its own instant (ages), without a store
/// call.
#[derive(Debug)]
pub struct DaemonState {
    started_at_ms: AtomicI64,
    last_tick_ms: AtomicI64,
    last_loop_ms: AtomicI64,
    store: Arc<StoreHealth>,
    registry: Registry,
    m: Metrics,
    /// Attempts running on this process: their job and start.
    running: Mutex<HashMap<RunId, (String, DateTime<Utc>)>>,
    /// Scheduled jobs' schedules, for their period.
    schedules: Mutex<HashMap<String, (CronExpr, Tz)>>,
    /// The next fire each period was computed for.
    next_fire: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Each job's last final run: its status and end, newest kept.
    last: Mutex<HashMap<String, (RunStatus, DateTime<Utc>)>>,
    mail: Mutex<MailBacklog>,
    /// One scrape at a time: each sets the values of its instant first.
    scrape: Mutex<()>,
}

impl DaemonState {
    pub fn new(now: DateTime<Utc>, store: Arc<StoreHealth>) -> Arc<Self> {
        let mut registry = Registry::with_prefix("runbookd");
        let m = Metrics::register(&mut registry);
        Arc::new(DaemonState {
            started_at_ms: AtomicI64::new(now.timestamp_millis()),
            last_tick_ms: AtomicI64::new(0),
            last_loop_ms: AtomicI64::new(0),
            store,
            registry,
            m,
            running: Mutex::default(),
            schedules: Mutex::default(),
            next_fire: Mutex::default(),
            last: Mutex::default(),
            mail: Mutex::default(),
            scrape: Mutex::default(),
        })
    }

    /// A job of the config: its timeout, and its schedule (for its period)
    /// when it has one and is not suspended.
    pub fn describe_job(&self, job: &str, timeout: Duration, schedule: Option<(CronExpr, Tz)>) {
        self.m
            .job_timeout
            .get_or_create(&by_job(job))
            .set(timeout.as_secs_f64());
        if let Some(s) = schedule {
            self.schedules
                .lock()
                .expect("metrics lock")
                .insert(job.to_string(), s);
        }
    }

    pub fn ticked(&self, now: DateTime<Utc>, active: usize, report: &TickReport) {
        self.last_tick_ms
            .store(now.timestamp_millis(), Ordering::Relaxed);
        self.m.last_tick.set(now.timestamp_millis() as f64 / 1000.0);
        self.m.ticks.inc();
        self.m.active_runs.set(active as i64);
        if active == 0 {
            // Nothing runs: an attempt whose end was lost (a lagging event
            // channel) must not read as running for ever.
            self.running.lock().expect("metrics lock").clear();
        }
        for (job, n) in &report.missed {
            self.m.fires_missed.get_or_create(&by_job(job)).inc_by(*n);
        }
        self.m.claim_conflicts.inc_by(report.lost_claims as u64);
    }

    /// Each scheduled job's next fire, as the scheduler sees it. A job's
    /// period is worked out again only when its next fire moves.
    pub fn next_fires(&self, fires: impl IntoIterator<Item = (String, DateTime<Utc>)>) {
        let fires: HashMap<String, DateTime<Utc>> = fires.into_iter().collect();
        let mut known = self.next_fire.lock().expect("metrics lock");
        known.retain(|job, _| {
            let keep = fires.contains_key(job);
            if !keep {
                self.m.next_fire.remove(&by_job(job));
                self.m.job_period.remove(&by_job(job));
            }
            keep
        });
        let schedules = self.schedules.lock().expect("metrics lock");
        for (job, at) in fires {
            let label = by_job(&job);
            self.m.next_fire.get_or_create(&label).set(at.timestamp());
            if known.get(&job) == Some(&at) {
                continue;
            }
            let period = schedules
                .get(&job)
                .and_then(|(expr, tz)| expr.prev_fire(*tz, at))
                .and_then(|prev| (at - prev.at).to_std().ok());
            match period {
                Some(p) => {
                    self.m.job_period.get_or_create(&label).set(p.as_secs_f64());
                }
                None => {
                    self.m.job_period.remove(&label);
                }
            }
            known.insert(job, at);
        }
    }

    /// Runs this daemon marked `abandoned` (their owner died or went quiet).
    pub fn abandoned(&self, n: usize) {
        self.m.runs_abandoned.inc_by(n as u64);
    }

    /// The pending mail, as a maintenance pass read it.
    pub fn mail(&self, backlog: MailBacklog) {
        *self.mail.lock().expect("metrics lock") = backlog;
    }

    /// A job's last final run as the history has it (read at start): kept
    /// unless this process has seen a newer one end.
    pub fn last_run(&self, job: &str, status: RunStatus, at: DateTime<Utc>) {
        if !FINAL.contains(&status) {
            return;
        }
        let mut last = self.last.lock().expect("metrics lock");
        if last.get(job).is_some_and(|(_, seen)| *seen > at) {
            return;
        }
        last.insert(job.to_string(), (status, at));
        if status == RunStatus::Succeeded {
            self.succeeded(job, at);
        }
        for s in FINAL {
            self.m
                .job_last_status
                .get_or_create(&ByStatus {
                    job: job.to_string(),
                    status: s,
                })
                .set(i64::from(s == status));
        }
        self.m
            .job_last_finished
            .get_or_create(&by_job(job))
            .set(at.timestamp());
    }

    /// A job's newest real success as the history has it (read at start),
    /// or as this process saw it end; an older one changes nothing.
    pub fn succeeded(&self, job: &str, at: DateTime<Utc>) {
        let g = self.m.last_success.get_or_create(&by_job(job));
        if g.get() < at.timestamp() {
            g.set(at.timestamp());
        }
    }

    /// The daemon's loop came round: the process is alive.
    pub fn loop_turned(&self, now: DateTime<Utc>) {
        self.last_loop_ms
            .store(now.timestamp_millis(), Ordering::Relaxed);
    }

    pub fn observe(&self, ev: &RunEvent) {
        match ev {
            RunEvent::Started {
                id,
                job,
                trigger,
                scheduled_for,
                started_at,
            } => {
                self.m
                    .runs_started
                    .get_or_create(&ByTrigger {
                        job: job.clone(),
                        trigger: *trigger,
                    })
                    .inc();
                self.running
                    .lock()
                    .expect("metrics lock")
                    .insert(*id, (job.clone(), *started_at));
                if let Some(s) = scheduled_for {
                    let delay = (*started_at - *s).num_microseconds().unwrap_or(0) as f64 / 1e6;
                    self.m.fire_delay.get_or_create(&by_job(job)).set(delay);
                }
            }
            RunEvent::Finished {
                id,
                job,
                trigger,
                status,
                took,
                checks,
                ..
            } => {
                self.running.lock().expect("metrics lock").remove(id);
                if *status == RunStatus::Skipped {
                    // Recorded skipped: started and ended in one instant.
                    self.m
                        .runs_started
                        .get_or_create(&ByTrigger {
                            job: job.clone(),
                            trigger: *trigger,
                        })
                        .inc();
                } else {
                    self.m
                        .run_duration
                        .get_or_create(&by_job(job))
                        .observe(took.as_secs_f64());
                }
                self.m
                    .runs_finished
                    .get_or_create(&ByStatus {
                        job: job.clone(),
                        status: *status,
                    })
                    .inc();
                for (check, st, value) in checks {
                    self.m
                        .check_results
                        .get_or_create(&ByCheckStatus {
                            job: job.clone(),
                            status: *st,
                        })
                        .inc();
                    let label = ByCheck {
                        job: job.clone(),
                        check: check.clone(),
                    };
                    match value {
                        Some(v) => {
                            self.m.check_value.get_or_create(&label).set(*v);
                        }
                        None => {
                            self.m.check_value.remove(&label);
                        }
                    }
                }
            }
            RunEvent::Ended {
                job,
                status,
                dry_run,
                at,
                ..
            } => {
                if !dry_run {
                    self.last_run(job, *status, *at);
                }
            }
            RunEvent::Pinged {
                job,
                signal,
                outcome,
                ..
            } => {
                self.m
                    .pings
                    .get_or_create(&ByPing {
                        job: job.clone(),
                        signal: *signal,
                        outcome: *outcome,
                    })
                    .inc();
            }
            RunEvent::AlertsPosted { outcome, .. } => {
                self.m
                    .alertmanager_posts
                    .get_or_create(&ByOutcome { outcome: *outcome })
                    .inc();
            }
        }
    }

    /// `Ok` with a summary, or `Err` with why the daemon is unhealthy: its
    /// loop has not come round for [`TICK_STALE_SECS`].
    pub fn health(&self, now: DateTime<Utc>) -> Result<String, Unhealthy> {
        let last = self.last_loop_ms.load(Ordering::Relaxed);
        let started = self.started_at_ms.load(Ordering::Relaxed);
        let now_ms = now.timestamp_millis();
        if last == 0 {
            if now_ms - started > TICK_STALE_SECS * 1000 {
                return Err(Unhealthy::NoTick);
            }
            return Ok("starting".to_string());
        }
        let age = (now_ms - last) / 1000;
        if age > TICK_STALE_SECS {
            return Err(Unhealthy::Stale { age_secs: age });
        }
        Ok(format!("ok: loop came round {age}s ago"))
    }

    /// Ready: the scheduler is running and the history store answers.
    pub fn readiness(&self) -> Result<String, NotReady> {
        if self.last_tick_ms.load(Ordering::Relaxed) == 0 {
            return Err(NotReady::NotEvaluated);
        }
        if !self.store.is_up() {
            return Err(NotReady::StoreDown(
                self.store
                    .last_error()
                    .unwrap_or_else(|| "unknown error".into()),
            ));
        }
        Ok("ready".to_string())
    }

    /// The scrape now.
    pub fn render_metrics(&self) -> String {
        self.render_at(Utc::now())
    }

    /// The scrape at `now`, in the Prometheus text format (0.0.4).
    pub fn render_at(&self, now: DateTime<Utc>) -> String {
        let _one = self.scrape.lock().expect("metrics lock");
        self.m.store_up.set(i64::from(self.store.is_up()));
        self.m.ready.set(i64::from(self.readiness().is_ok()));
        // The store's health keeps the counts; the counters show them.
        for (op, n) in self.store.errors() {
            self.m
                .store_errors
                .get_or_create(&ByOp { op: op.to_string() })
                .inner()
                .store(n, Ordering::Relaxed);
        }
        let age = |since: DateTime<Utc>| (now - since).to_std().unwrap_or_default().as_secs_f64();
        let mut longest: HashMap<&str, f64> = HashMap::new();
        let running = self.running.lock().expect("metrics lock");
        for (job, started) in running.values() {
            let a = longest.entry(job).or_default();
            *a = a.max(age(*started));
        }
        self.m.running_longest.clear();
        for (job, a) in longest {
            self.m.running_longest.get_or_create(&by_job(job)).set(a);
        }
        drop(running);
        let mail = *self.mail.lock().expect("metrics lock");
        self.m.mail_pending.set(mail.pending as i64);
        self.m
            .mail_oldest_pending
            .set(mail.oldest.map(age).unwrap_or(0.0));
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!("cannot encode /metrics: {e}");
        }
        out
    }
}

/// Why `/healthz` answers 503: the daemon's loop is stuck.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unhealthy {
    #[error("no scheduler tick in the {TICK_STALE_SECS}s since start")]
    NoTick,
    #[error("the daemon's loop last came round {age_secs}s ago")]
    Stale { age_secs: i64 },
}

/// Why `/readyz` answers 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("the scheduler has not evaluated its jobs yet")]
    NotEvaluated,
    #[error("history store down: {0}")]
    StoreDown(String),
}

async fn healthz(State(state): State<Arc<DaemonState>>) -> impl IntoResponse {
    match state.health(Utc::now()) {
        Ok(msg) => (StatusCode::OK, msg),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why.to_string()),
    }
}

async fn readyz(State(state): State<Arc<DaemonState>>) -> impl IntoResponse {
    match state.readiness() {
        Ok(msg) => (StatusCode::OK, msg),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why.to_string()),
    }
}

async fn metrics(State(state): State<Arc<DaemonState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        state.render_metrics(),
    )
}

pub fn router(state: Arc<DaemonState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Binds `addr` (so a taken port fails `serve` at once) and serves until
/// `stop` is cancelled: the daemon's endpoints and `more` (the console)
/// beside them, each with its own layers.
pub async fn bind(
    addr: SocketAddr,
    state: Arc<DaemonState>,
    more: Router,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(state).merge(more);
    let handle = tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = r {
            tracing::error!("http server on {local}: {e}");
        }
    });
    Ok((local, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn health_follows_the_loop() {
        let s = DaemonState::new(t("2026-01-01T00:00:00Z"), Arc::default());
        assert!(s.health(t("2026-01-01T00:00:05Z")).is_ok());
        assert!(s.health(t("2026-01-01T00:01:00Z")).is_err());
        s.loop_turned(t("2026-01-01T00:01:00Z"));
        assert!(s.health(t("2026-01-01T00:01:10Z")).is_ok());
        let e = s.health(t("2026-01-01T00:02:00Z")).unwrap_err();
        assert!(e.to_string().contains("60s ago"), "{e}");
    }

    #[test]
    fn readiness_needs_a_tick_and_the_store() {
        let store = Arc::new(StoreHealth::default());
        let s = DaemonState::new(t("2026-01-01T00:00:00Z"), store.clone());
        assert!(s.readiness().is_err());
        s.ticked(t("2026-01-01T00:00:01Z"), 0, &TickReport::default());
        assert!(s.readiness().is_ok());
    }

    fn started(id: RunId, job: &str, trigger: Trigger, at: &str) -> RunEvent {
        RunEvent::Started {
            id,
            job: job.into(),
            trigger,
            scheduled_for: None,
            started_at: t(at),
        }
    }

    fn finished(id: RunId, job: &str, status: RunStatus, at: &str) -> RunEvent {
        RunEvent::Finished {
            id,
            job: job.into(),
            trigger: Trigger::Manual,
            status,
            attempt: 1,
            at: t(at),
            took: Duration::from_secs(1),
            checks: Vec::new(),
        }
    }

    fn ended(id: RunId, job: &str, status: RunStatus, dry_run: bool, at: &str) -> RunEvent {
        RunEvent::Ended {
            id,
            job: job.into(),
            status,
            dry_run,
            at: t(at),
        }
    }

    /// The value of the sample `series` (name and labels as written).
    fn sample(scrape: &str, series: &str) -> Option<f64> {
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn metrics_count_runs() {
        let s = DaemonState::new(t("2026-01-01T00:00:00Z"), Arc::default());
        s.observe(&RunEvent::Started {
            id: 1,
            job: "hello".into(),
            trigger: Trigger::Schedule,
            scheduled_for: Some(t("2026-01-01T00:00:00Z")),
            started_at: t("2026-01-01T00:00:00.250Z"),
        });
        s.observe(&RunEvent::Finished {
            id: 1,
            job: "hello".into(),
            trigger: Trigger::Schedule,
            status: RunStatus::Failed,
            attempt: 1,
            at: t("2026-01-01T00:00:03Z"),
            took: std::time::Duration::from_millis(2750),
            checks: vec![("p99".into(), crate::model::CheckStatus::Warn, Some(1.5))],
        });
        s.observe(&RunEvent::Finished {
            id: 2,
            job: "hello".into(),
            trigger: Trigger::Schedule,
            status: RunStatus::Succeeded,
            attempt: 1,
            at: t("2026-01-01T00:01:00Z"),
            took: std::time::Duration::from_millis(400),
            checks: vec![("p99".into(), crate::model::CheckStatus::Pass, Some(0.4))],
        });
        s.observe(&ended(
            2,
            "hello",
            RunStatus::Succeeded,
            false,
            "2026-01-01T00:01:00Z",
        ));
        s.next_fires([("hello".to_string(), t("2026-01-01T00:02:00Z"))]);
        s.abandoned(2);
        s.ticked(
            t("2026-01-01T00:01:00Z"),
            0,
            &TickReport {
                lost_claims: 3,
                ..Default::default()
            },
        );
        let m = s.render_metrics();
        assert!(
            m.contains("runbookd_runs_started_total{job=\"hello\",trigger=\"schedule\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("runbookd_runs_finished_total{job=\"hello\",status=\"failed\"} 1"),
            "{m}"
        );
        for line in [
            "runbookd_run_duration_seconds_bucket{job=\"hello\",le=\"0.5\"} 1",
            "runbookd_run_duration_seconds_bucket{job=\"hello\",le=\"5\"} 2",
            "runbookd_run_duration_seconds_bucket{job=\"hello\",le=\"+Inf\"} 2",
            "runbookd_run_duration_seconds_sum{job=\"hello\"} 3.15",
            "runbookd_run_duration_seconds_count{job=\"hello\"} 2",
            "# TYPE runbookd_run_duration_seconds histogram",
            "runbookd_last_success_timestamp_seconds{job=\"hello\"} 1767225660",
            "runbookd_next_fire_timestamp_seconds{job=\"hello\"} 1767225720",
            "runbookd_check_results_total{job=\"hello\",status=\"warn\"} 1",
            "runbookd_check_results_total{job=\"hello\",status=\"pass\"} 1",
            "runbookd_check_value{job=\"hello\",check=\"p99\"} 0.4",
            "runbookd_claim_conflicts_total 3",
            "runbookd_runs_abandoned_total 2",
        ] {
            assert!(m.contains(line), "no `{line}` in\n{m}");
        }
        assert!(
            m.contains("runbookd_fire_delay_seconds{job=\"hello\"} 0.25"),
            "{m}"
        );
    }

    #[test]
    fn a_skipped_fire_counts_as_started_and_finished() {
        let s = DaemonState::new(t("2026-01-01T00:00:00Z"), Arc::default());
        s.observe(&RunEvent::Finished {
            id: 1,
            job: "tick".into(),
            trigger: Trigger::Schedule,
            status: RunStatus::Skipped,
            attempt: 1,
            at: t("2026-01-01T00:00:01Z"),
            took: Duration::ZERO,
            checks: Vec::new(),
        });
        s.observe(&started(2, "tick", Trigger::Manual, "2026-01-01T00:00:02Z"));
        s.observe(&finished(
            2,
            "tick",
            RunStatus::Succeeded,
            "2026-01-01T00:00:03Z",
        ));
        let m = s.render_metrics();
        let started = |trigger| {
            sample(
                &m,
                &format!("runbookd_runs_started_total{{job=\"tick\",trigger=\"{trigger}\"}}"),
            )
        };
        assert_eq!(started("schedule"), Some(1.0), "{m}");
        assert_eq!(started("manual"), Some(1.0), "{m}");
        assert_eq!(
            sample(
                &m,
                "runbookd_runs_finished_total{job=\"tick\",status=\"skipped\"}"
            ),
            Some(1.0),
            "{m}"
        );
        // A skipped fire took no time.
        assert_eq!(
            sample(&m, "runbookd_run_duration_seconds_count{job=\"tick\"}"),
            Some(1.0),
            "{m}"
        );
    }

    #[test]
    fn the_period_follows_the_schedule_as_the_next_fire_moves() {
        let s = DaemonState::new(t("2026-01-01T00:00:00Z"), Arc::default());
        let weekdays: CronExpr = "0 9 * * 1-5".parse().unwrap();
        s.describe_job(
            "standup",
            Duration::from_secs(90),
            Some((weekdays, chrono_tz::UTC)),
        );
        s.describe_job("manual", Duration::from_secs(3600), None);
        // (next fire as the scheduler sees it, period in hours)
        for (next, hours) in [
            // Friday 09:00: from Thursday's.
            ("2026-01-02T09:00:00Z", 24.0),
            // Monday 09:00: from Friday's, over the weekend.
            ("2026-01-05T09:00:00Z", 72.0),
            ("2026-01-06T09:00:00Z", 24.0),
        ] {
            s.next_fires([("standup".to_string(), t(next))]);
            let m = s.render_at(t(next));
            assert_eq!(
                sample(&m, "runbookd_job_period_seconds{job=\"standup\"}"),
                Some(hours * 3600.0),
                "next {next}:\n{m}"
            );
        }
        let m = s.render_at(t("2026-01-06T09:00:00Z"));
        assert_eq!(
            sample(&m, "runbookd_job_timeout_seconds{job=\"standup\"}"),
            Some(90.0)
        );
        assert_eq!(
            sample(&m, "runbookd_job_timeout_seconds{job=\"manual\"}"),
            Some(3600.0)
        );
        assert_eq!(
            sample(&m, "runbookd_job_period_seconds{job=\"manual\"}"),
            None
        );
        // A job no longer scheduled loses its next fire and its period.
        s.next_fires([]);
        let m = s.render_at(t("2026-01-06T09:00:00Z"));
        for family in ["next_fire_timestamp_seconds", "job_period_seconds"] {
            assert!(
                !m.contains(&format!("runbookd_{family}{{job=\"standup\"}}")),
                "{m}"
            );
        }
    }

    #[test]
    fn the_last_status_is_the_newest_final_real_run() {
        let s = DaemonState::new(t("2026-01-01T00:00:00Z"), Arc::default());
        let status = |m: &str, job: &str, st: &str| {
            sample(
                m,
                &format!("runbookd_job_last_status{{job=\"{job}\",status=\"{st}\"}}"),
            )
        };
        // Read from the history at start.
        s.last_run("nightly", RunStatus::Failed, t("2026-01-01T02:00:00Z"));
        let m = s.render_at(t("2026-01-01T03:00:00Z"));
        assert_eq!(status(&m, "nightly", "failed"), Some(1.0), "{m}");
        assert_eq!(status(&m, "nightly", "succeeded"), Some(0.0), "{m}");
        assert_eq!(status(&m, "nightly", "timed_out"), Some(0.0), "{m}");
        // A dry run is not the job's status; a real success is.
        s.observe(&ended(
            7,
            "nightly",
            RunStatus::Succeeded,
            true,
            "2026-01-01T03:00:00Z",
        ));
        let m = s.render_at(t("2026-01-01T03:00:00Z"));
        assert_eq!(status(&m, "nightly", "failed"), Some(1.0), "{m}");
        s.observe(&ended(
            8,
            "nightly",
            RunStatus::Succeeded,
            false,
            "2026-01-01T04:00:00Z",
        ));
        // The history read comes late: older than what this process saw.
        s.last_run("nightly", RunStatus::TimedOut, t("2026-01-01T03:30:00Z"));
        // Not final statuses: ignored.
        s.last_run("nightly", RunStatus::Skipped, t("2026-01-01T05:00:00Z"));
        let m = s.render_at(t("2026-01-01T05:00:00Z"));
        assert_eq!(status(&m, "nightly", "succeeded"), Some(1.0), "{m}");
        assert_eq!(status(&m, "nightly", "failed"), Some(0.0), "{m}");
        assert_eq!(status(&m, "nightly", "timed_out"), Some(0.0), "{m}");
        assert_eq!(
            sample(
                &m,
                "runbookd_job_last_finished_timestamp_seconds{job=\"nightly\"}"
            ),
            Some(t("2026-01-01T04:00:00Z").timestamp() as f64),
            "{m}"
        );
    }

    /// `/readyz` as a gauge, for the not-ready alert: a replica that has
    /// not evaluated its jobs yet (or since its store went down) is 0.
    #[test]
    fn ready_is_readiness_as_a_gauge() {
        let s = DaemonState::new(t("2026-01-01T00:00:00Z"), Arc::default());
        let ready =
            |s: &DaemonState| sample(&s.render_at(t("2026-01-01T00:00:02Z")), "runbookd_ready");
        assert_eq!(ready(&s), Some(0.0));
        s.ticked(t("2026-01-01T00:00:01Z"), 0, &TickReport::default());
        assert_eq!(ready(&s), Some(1.0));
    }

    /// The job's last real success: read from the history at start (so a
    /// restarted replica still knows it), kept newest, and never a dry
    /// run's.
    #[test]
    fn the_last_success_is_the_newest_real_one_history_included() {
        let s = DaemonState::new(t("2026-01-01T00:00:00Z"), Arc::default());
        let success = |s: &DaemonState, job: &str| {
            sample(
                &s.render_at(t("2026-01-02T00:00:00Z")),
                &format!("runbookd_last_success_timestamp_seconds{{job=\"{job}\"}}"),
            )
        };
        // The history's last final run succeeded.
        s.last_run("nightly", RunStatus::Succeeded, t("2026-01-01T03:00:00Z"));
        assert_eq!(
            success(&s, "nightly"),
            Some(t("2026-01-01T03:00:00Z").timestamp() as f64)
        );
        // Its last run failed; an earlier success in the history.
        s.last_run("backup", RunStatus::Failed, t("2026-01-01T02:00:00Z"));
        s.succeeded("backup", t("2026-01-01T01:00:00Z"));
        assert_eq!(
            success(&s, "backup"),
            Some(t("2026-01-01T01:00:00Z").timestamp() as f64)
        );
        // An older one read late changes nothing.
        s.succeeded("nightly", t("2026-01-01T00:30:00Z"));
        assert_eq!(
            success(&s, "nightly"),
            Some(t("2026-01-01T03:00:00Z").timestamp() as f64)
        );
        // A dry run's success is not the job's.
        s.observe(&finished(
            9,
            "nightly",
            RunStatus::Succeeded,
            "2026-01-01T05:00:00Z",
        ));
        s.observe(&ended(
            9,
            "nightly",
            RunStatus::Succeeded,
            true,
            "2026-01-01T05:00:00Z",
        ));
        assert_eq!(
            success(&s, "nightly"),
            Some(t("2026-01-01T03:00:00Z").timestamp() as f64)
        );
        // A real one is.
        s.observe(&finished(
            10,
            "nightly",
            RunStatus::Succeeded,
            "2026-01-01T06:00:00Z",
        ));
        s.observe(&ended(
            10,
            "nightly",
            RunStatus::Succeeded,
            false,
            "2026-01-01T06:00:00Z",
        ));
        assert_eq!(
            success(&s, "nightly"),
            Some(t("2026-01-01T06:00:00Z").timestamp() as f64)
        );
    }

    #[test]
    fn running_attempts_and_pending_mail_are_aged_at_the_scrape() {
        let s = DaemonState::new(t("2026-01-01T00:00:00Z"), Arc::default());
        s.observe(&started(
            1,
            "migrate",
            Trigger::Manual,
            "2026-01-01T00:00:00Z",
        ));
        s.observe(&started(
            2,
            "migrate",
            Trigger::Manual,
            "2026-01-01T00:10:00Z",
        ));
        s.observe(&started(
            3,
            "quick",
            Trigger::Manual,
            "2026-01-01T00:19:00Z",
        ));
        s.observe(&finished(
            3,
            "quick",
            RunStatus::Succeeded,
            "2026-01-01T00:19:30Z",
        ));
        s.mail(MailBacklog {
            pending: 3,
            oldest: Some(t("2026-01-01T00:05:00Z")),
        });
        let m = s.render_at(t("2026-01-01T00:20:00Z"));
        assert_eq!(
            sample(&m, "runbookd_running_longest_seconds{job=\"migrate\"}"),
            Some(1200.0),
            "{m}"
        );
        assert_eq!(
            sample(&m, "runbookd_running_longest_seconds{job=\"quick\"}"),
            None,
            "{m}"
        );
        assert_eq!(sample(&m, "runbookd_mail_pending"), Some(3.0), "{m}");
        assert_eq!(
            sample(&m, "runbookd_mail_oldest_pending_seconds"),
            Some(900.0),
            "{m}"
        );
        s.observe(&finished(
            1,
            "migrate",
            RunStatus::Succeeded,
            "2026-01-01T00:21:00Z",
        ));
        s.mail(MailBacklog::default());
        let m = s.render_at(t("2026-01-01T00:25:00Z"));
        assert_eq!(
            sample(&m, "runbookd_running_longest_seconds{job=\"migrate\"}"),
            Some(900.0),
            "{m}"
        );
        assert_eq!(sample(&m, "runbookd_mail_pending"), Some(0.0), "{m}");
        assert_eq!(
            sample(&m, "runbookd_mail_oldest_pending_seconds"),
            Some(0.0),
            "{m}"
        );
        // Nothing runs by the scheduler's count: an end never heard of
        // does not leave a run aging for ever.
        s.ticked(t("2026-01-01T00:26:00Z"), 0, &TickReport::default());
        let m = s.render_at(t("2026-01-01T00:30:00Z"));
        assert!(!m.contains("runbookd_running_longest_seconds{"), "{m}");
    }

    #[test]
    fn alert_posts_and_pings_are_counted_by_outcome() {
        let s = DaemonState::new(t("2026-01-01T00:00:00Z"), Arc::default());
        let posted = |outcome| RunEvent::AlertsPosted {
            firing: vec!["nightly".into()],
            resolved: Vec::new(),
            outcome,
            at: t("2026-01-01T00:01:00Z"),
        };
        s.observe(&posted(CallOutcome::Sent));
        s.observe(&posted(CallOutcome::Sent));
        s.observe(&posted(CallOutcome::TimedOut));
        let pinged = |signal, outcome| RunEvent::Pinged {
            id: 1,
            job: "nightly".into(),
            signal,
            outcome,
            at: t("2026-01-01T00:01:00Z"),
        };
        s.observe(&pinged(PingSignal::Start, CallOutcome::Sent));
        s.observe(&pinged(PingSignal::Fail, CallOutcome::Failed));
        let m = s.render_at(t("2026-01-01T00:02:00Z"));
        assert_eq!(
            sample(&m, "runbookd_alertmanager_posts_total{outcome=\"sent\"}"),
            Some(2.0),
            "{m}"
        );
        assert_eq!(
            sample(
                &m,
                "runbookd_alertmanager_posts_total{outcome=\"timed_out\"}"
            ),
            Some(1.0),
            "{m}"
        );
        assert_eq!(
            sample(
                &m,
                "runbookd_pings_total{job=\"nightly\",signal=\"start\",outcome=\"sent\"}"
            ),
            Some(1.0),
            "{m}"
        );
        assert_eq!(
            sample(
                &m,
                "runbookd_pings_total{job=\"nightly\",signal=\"fail\",outcome=\"failed\"}"
            ),
            Some(1.0),
            "{m}"
        );
    }
}
