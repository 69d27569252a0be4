//! `/healthz`, `/readyz` and `/metrics` of `runbookd serve`.
//!
//! Health is the process's own: its loop turns. A down history store does
//! not fail health, because a restart would not bring it back, and the loop
//! never waits on it; it fails readiness, shows in `runbookd_store_up` and
//! `runbookd_store_errors_total`, and in the logs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::runner::RunEvent;
use crate::scheduler::TickReport;
use crate::store::{RunStatus, StoreHealth};

/// A tick older than this makes `/healthz` fail.
pub const TICK_STALE_SECS: i64 = 15;

#[derive(Debug, Default)]
pub struct DaemonState {
    started_at_ms: AtomicI64,
    last_tick_ms: AtomicI64,
    last_loop_ms: AtomicI64,
    ticks: AtomicU64,
    active_runs: AtomicI64,
    started: Mutex<BTreeMap<(String, String), u64>>,
    finished: Mutex<BTreeMap<(String, String), u64>>,
    fire_delay: Mutex<BTreeMap<String, f64>>,
    missed: Mutex<BTreeMap<String, u64>>,
    durations: Mutex<BTreeMap<String, Histogram>>,
    last_success: Mutex<BTreeMap<String, i64>>,
    next_fire: Mutex<BTreeMap<String, i64>>,
    checks: Mutex<BTreeMap<(String, String), u64>>,
    check_values: Mutex<BTreeMap<(String, String), f64>>,
    claim_conflicts: AtomicU64,
    abandoned: AtomicU64,
    store: Arc<StoreHealth>,
}

/// Upper bounds (seconds) of the run-duration histogram: from a quick check
/// to a long migration.
const BUCKETS: [f64; 11] = [
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += v;
    }
}

impl DaemonState {
    pub fn new(now: DateTime<Utc>, store: Arc<StoreHealth>) -> Arc<Self> {
        let s = DaemonState {
            store,
            ..Default::default()
        };
        s.started_at_ms
            .store(now.timestamp_millis(), Ordering::Relaxed);
        Arc::new(s)
    }

    pub fn ticked(&self, now: DateTime<Utc>, active: usize, report: &TickReport) {
        self.last_tick_ms
            .store(now.timestamp_millis(), Ordering::Relaxed);
        self.ticks.fetch_add(1, Ordering::Relaxed);
        self.active_runs.store(active as i64, Ordering::Relaxed);
        let mut missed = self.missed.lock().expect("metrics lock");
        for (job, n) in &report.missed {
            *missed.entry(job.clone()).or_default() += n;
        }
        self.claim_conflicts
            .fetch_add(report.lost_claims as u64, Ordering::Relaxed);
    }

    /// Each scheduled job's next fire, as the scheduler sees it.
    pub fn next_fires(&self, fires: impl IntoIterator<Item = (String, DateTime<Utc>)>) {
        let mut m = self.next_fire.lock().expect("metrics lock");
        m.clear();
        m.extend(fires.into_iter().map(|(j, t)| (j, t.timestamp())));
    }

    /// Runs this daemon marked `abandoned` (their owner died or went quiet).
    pub fn abandoned(&self, n: usize) {
        self.abandoned.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The daemon's loop came round: the process is alive.
    pub fn loop_turned(&self, now: DateTime<Utc>) {
        self.last_loop_ms
            .store(now.timestamp_millis(), Ordering::Relaxed);
    }

    pub fn observe(&self, ev: &RunEvent) {
        match ev {
            RunEvent::Started {
                job,
                trigger,
                scheduled_for,
                started_at,
                ..
            } => {
                *self
                    .started
                    .lock()
                    .expect("metrics lock")
                    .entry((job.clone(), trigger.to_string()))
                    .or_default() += 1;
                if let Some(s) = scheduled_for {
                    let delay = (*started_at - *s).num_microseconds().unwrap_or(0) as f64 / 1e6;
                    self.fire_delay
                        .lock()
                        .expect("metrics lock")
                        .insert(job.clone(), delay);
                }
            }
            RunEvent::Finished {
                job,
                status,
                at,
                took,
                checks,
                ..
            } => {
                *self
                    .finished
                    .lock()
                    .expect("metrics lock")
                    .entry((job.clone(), status.to_string()))
                    .or_default() += 1;
                if *status != RunStatus::Skipped {
                    self.durations
                        .lock()
                        .expect("metrics lock")
                        .entry(job.clone())
                        .or_default()
                        .observe(took.as_secs_f64());
                }
                if *status == RunStatus::Succeeded {
                    self.last_success
                        .lock()
                        .expect("metrics lock")
                        .insert(job.clone(), at.timestamp());
                }
                let mut counts = self.checks.lock().expect("metrics lock");
                let mut values = self.check_values.lock().expect("metrics lock");
                for (check, st, value) in checks {
                    *counts.entry((job.clone(), st.to_string())).or_default() += 1;
                    match value {
                        Some(v) => values.insert((job.clone(), check.clone()), *v),
                        None => values.remove(&(job.clone(), check.clone())),
                    };
                }
            }
        }
    }

    /// `Ok` with a summary, or `Err` with why the daemon is unhealthy: its
    /// loop has not come round for [`TICK_STALE_SECS`].
    pub fn health(&self, now: DateTime<Utc>) -> Result<String, String> {
        let last = self.last_loop_ms.load(Ordering::Relaxed);
        let started = self.started_at_ms.load(Ordering::Relaxed);
        let now_ms = now.timestamp_millis();
        if last == 0 {
            if now_ms - started > TICK_STALE_SECS * 1000 {
                return Err(format!(
                    "no scheduler tick in the {TICK_STALE_SECS}s since start"
                ));
            }
            return Ok("starting".to_string());
        }
        let age = (now_ms - last) / 1000;
        if age > TICK_STALE_SECS {
            return Err(format!("the daemon's loop last came round {age}s ago"));
        }
        Ok(format!("ok: loop came round {age}s ago"))
    }

    /// Ready: the scheduler is running and the history store answers.
    pub fn readiness(&self) -> Result<String, String> {
        if self.last_tick_ms.load(Ordering::Relaxed) == 0 {
            return Err("the scheduler has not evaluated its jobs yet".to_string());
        }
        if !self.store.is_up() {
            return Err(format!(
                "history store down: {}",
                self.store
                    .last_error()
                    .unwrap_or_else(|| "unknown error".into())
            ));
        }
        Ok("ready".to_string())
    }

    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        family(
            &mut out,
            "runbookd_last_tick_timestamp_seconds",
            "gauge",
            "When the scheduler last evaluated its jobs.",
            [(
                String::new(),
                (self.last_tick_ms.load(Ordering::Relaxed) as f64 / 1000.0).to_string(),
            )],
        );
        family(
            &mut out,
            "runbookd_ticks_total",
            "counter",
            "Scheduler evaluations.",
            [(String::new(), load(&self.ticks))],
        );
        family(
            &mut out,
            "runbookd_active_runs",
            "gauge",
            "Runs this process is executing.",
            [(
                String::new(),
                self.active_runs.load(Ordering::Relaxed).to_string(),
            )],
        );
        family(
            &mut out,
            "runbookd_store_up",
            "gauge",
            "Whether the history store answers (1) or not (0).",
            [(String::new(), u8::from(self.store.is_up()).to_string())],
        );
        let errors: Vec<(String, String)> = self
            .store
            .errors()
            .iter()
            .map(|(op, n)| (format!("{{op=\"{}\"}}", esc(op)), n.to_string()))
            .collect();
        family(
            &mut out,
            "runbookd_store_errors_total",
            "counter",
            "Failed history store calls, by operation.",
            errors,
        );
        let missed: Vec<(String, String)> = self
            .missed
            .lock()
            .expect("metrics lock")
            .iter()
            .map(|(job, n)| (format!("{{job=\"{}\"}}", esc(job)), n.to_string()))
            .collect();
        family(
            &mut out,
            "runbookd_fires_missed_total",
            "counter",
            "Scheduled fires that will never run (runbookd or its store was down).",
            missed,
        );
        let by =
            |map: &Mutex<BTreeMap<(String, String), u64>>, label: &str| -> Vec<(String, String)> {
                map.lock()
                    .expect("metrics lock")
                    .iter()
                    .map(|((job, v), n)| {
                        (
                            format!("{{job=\"{}\",{label}=\"{}\"}}", esc(job), esc(v)),
                            n.to_string(),
                        )
                    })
                    .collect()
            };
        family(
            &mut out,
            "runbookd_runs_started_total",
            "counter",
            "Run attempts started by this process.",
            by(&self.started, "trigger"),
        );
        family(
            &mut out,
            "runbookd_runs_finished_total",
            "counter",
            "Run attempts ended, by status.",
            by(&self.finished, "status"),
        );
        let delays: Vec<(String, String)> = self
            .fire_delay
            .lock()
            .expect("metrics lock")
            .iter()
            .map(|(job, d)| (format!("{{job=\"{}\"}}", esc(job)), d.to_string()))
            .collect();
        family(
            &mut out,
            "runbookd_fire_delay_seconds",
            "gauge",
            "Scheduled instant to start, of the job's last scheduled run.",
            delays,
        );
        let mut samples = Vec::new();
        let mut sums = Vec::new();
        let mut counts = Vec::new();
        for (job, h) in self.durations.lock().expect("metrics lock").iter() {
            let job = esc(job);
            for (b, n) in BUCKETS.iter().zip(h.counts) {
                samples.push((
                    format!("_bucket{{job=\"{job}\",le=\"{b}\"}}"),
                    n.to_string(),
                ));
            }
            samples.push((
                format!("_bucket{{job=\"{job}\",le=\"+Inf\"}}"),
                h.count.to_string(),
            ));
            sums.push((format!("_sum{{job=\"{job}\"}}"), h.sum.to_string()));
            counts.push((format!("_count{{job=\"{job}\"}}"), h.count.to_string()));
        }
        samples.extend(sums);
        samples.extend(counts);
        family(
            &mut out,
            "runbookd_run_duration_seconds",
            "histogram",
            "How long run attempts took, by job (skipped runs not counted).",
            samples,
        );
        let by_job = |m: &Mutex<BTreeMap<String, i64>>| -> Vec<(String, String)> {
            m.lock()
                .expect("metrics lock")
                .iter()
                .map(|(job, v)| (format!("{{job=\"{}\"}}", esc(job)), v.to_string()))
                .collect()
        };
        family(
            &mut out,
            "runbookd_last_success_timestamp_seconds",
            "gauge",
            "When the job last succeeded on this process.",
            by_job(&self.last_success),
        );
        family(
            &mut out,
            "runbookd_next_fire_timestamp_seconds",
            "gauge",
            "The job's next scheduled fire.",
            by_job(&self.next_fire),
        );
        family(
            &mut out,
            "runbookd_check_results_total",
            "counter",
            "Check results recorded, by job and status.",
            by(&self.checks, "status"),
        );
        let values: Vec<(String, String)> = self
            .check_values
            .lock()
            .expect("metrics lock")
            .iter()
            .map(|((job, check), v)| {
                (
                    format!("{{job=\"{}\",check=\"{}\"}}", esc(job), esc(check)),
                    v.to_string(),
                )
            })
            .collect();
        family(
            &mut out,
            "runbookd_check_value",
            "gauge",
            "The number a check last measured.",
            values,
        );
        family(
            &mut out,
            "runbookd_claim_conflicts_total",
            "counter",
            "Fires another replica claimed first.",
            [(
                String::new(),
                self.claim_conflicts.load(Ordering::Relaxed).to_string(),
            )],
        );
        family(
            &mut out,
            "runbookd_runs_abandoned_total",
            "counter",
            "Runs this process marked abandoned (their owner died or stopped beating).",
            [(
                String::new(),
                self.abandoned.load(Ordering::Relaxed).to_string(),
            )],
        );
        out
    }
}

/// One metric family in the Prometheus text format: HELP, TYPE, samples
/// (label set, value).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, String)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

async fn healthz(State(state): State<Arc<DaemonState>>) -> impl IntoResponse {
    match state.health(Utc::now()) {
        Ok(msg) => (StatusCode::OK, msg),
        Err(msg) => (StatusCode::SERVICE_UNAVAILABLE, msg),
    }
}

async fn readyz(State(state): State<Arc<DaemonState>>) -> impl IntoResponse {
    match state.readiness() {
        Ok(msg) => (StatusCode::OK, msg),
        Err(msg) => (StatusCode::SERVICE_UNAVAILABLE, msg),
    }
}

async fn metrics(State(state): State<Arc<DaemonState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
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
/// `stop` is cancelled.
pub async fn bind(
    addr: SocketAddr,
    state: Arc<DaemonState>,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(state);
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
    use crate::store::{RunStatus, Trigger};

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
        assert!(e.contains("60s ago"), "{e}");
    }

    #[test]
    fn readiness_needs_a_tick_and_the_store() {
        let store = Arc::new(StoreHealth::default());
        let s = DaemonState::new(t("2026-01-01T00:00:00Z"), store.clone());
        assert!(s.readiness().is_err());
        s.ticked(t("2026-01-01T00:00:01Z"), 0, &TickReport::default());
        assert!(s.readiness().is_ok());
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
            status: RunStatus::Failed,
            attempt: 1,
            at: t("2026-01-01T00:00:03Z"),
            took: std::time::Duration::from_millis(2750),
            checks: vec![("p99".into(), crate::model::CheckStatus::Warn, Some(1.5))],
        });
        s.observe(&RunEvent::Finished {
            id: 2,
            job: "hello".into(),
            status: RunStatus::Succeeded,
            attempt: 1,
            at: t("2026-01-01T00:01:00Z"),
            took: std::time::Duration::from_millis(400),
            checks: vec![("p99".into(), crate::model::CheckStatus::Pass, Some(0.4))],
        });
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
}
