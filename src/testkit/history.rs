//! Histories for tests, written through the store as the runner would:
//! `Seed::new(store).add(RunSpec::scheduled("watch", at).took(3)).await`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::model::{
    CheckResult, Finish, LogSnapshot, MissedFires, NewRun, RunId, RunStatus, Step, StepStatus,
    Trigger,
};
use crate::store::HistoryStore;

/// One run to write, built with chained calls.
#[derive(Debug, Clone)]
pub struct RunSpec {
    job: String,
    trigger: Trigger,
    by: String,
    scheduled_for: Option<DateTime<Utc>>,
    started_at: DateTime<Utc>,
    took: Duration,
    status: RunStatus,
    attempt: u32,
    error: Option<String>,
    dry_run: bool,
    checks: Vec<CheckResult>,
    steps: Vec<(
        String,
        String,
        StepStatus,
        String,
        Option<serde_json::Value>,
    )>,
}

impl RunSpec {
    /// A run of the fire at `at`, started on time, succeeded in 1 s.
    pub fn scheduled(job: &str, at: DateTime<Utc>) -> Self {
        RunSpec {
            job: job.into(),
            trigger: Trigger::Schedule,
            by: "scheduler".into(),
            scheduled_for: Some(at),
            started_at: at,
            took: Duration::seconds(1),
            status: RunStatus::Succeeded,
            attempt: 1,
            error: None,
            dry_run: false,
            checks: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// A run by hand.
    pub fn manual(job: &str, at: DateTime<Utc>, by: &str) -> Self {
        RunSpec {
            trigger: Trigger::Manual,
            by: by.into(),
            scheduled_for: None,
            ..Self::scheduled(job, at)
        }
    }

    /// Started this long after its fire.
    pub fn late(mut self, by: Duration) -> Self {
        self.started_at += by;
        self
    }

    pub fn catchup(mut self) -> Self {
        self.trigger = Trigger::Catchup;
        self
    }

    pub fn took(mut self, d: Duration) -> Self {
        self.took = d;
        self
    }

    pub fn failed(mut self, status: RunStatus, error: &str) -> Self {
        self.status = status;
        self.error = Some(error.into());
        self
    }

    /// A retry: attempt `n` of the same fire, started `after` the fire.
    pub fn retry(mut self, n: u32, after: Duration) -> Self {
        self.attempt = n;
        self.trigger = Trigger::Retry;
        self.started_at += after;
        self
    }

    /// Still going.
    pub fn running(mut self) -> Self {
        self.status = RunStatus::Running;
        self
    }

    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    pub fn check(mut self, c: CheckResult) -> Self {
        self.checks.push(c);
        self
    }

    pub fn step(
        mut self,
        name: &str,
        target: &str,
        status: StepStatus,
        detail: &str,
        payload: Option<serde_json::Value>,
    ) -> Self {
        self.steps
            .push((name.into(), target.into(), status, detail.into(), payload));
        self
    }
}

/// Writes runs and missed fires into a store.
pub struct Seed {
    store: Arc<dyn HistoryStore>,
}

impl Seed {
    pub fn new(store: Arc<dyn HistoryStore>) -> Self {
        Seed { store }
    }

    /// Records the job first seen by `at`, as the daemon that scheduled a
    /// run or recorded a missed fire had: its cursor was before the fire.
    async fn seen_before(&self, job: &str, at: DateTime<Utc>) {
        self.store
            .see_jobs(&[job], at - Duration::minutes(1))
            .await
            .expect("record a seeded job first seen");
    }

    /// Records `job` first seen at `at` (kept if an earlier one is).
    pub async fn seen(&self, job: &str, at: DateTime<Utc>) {
        self.store
            .see_jobs(&[job], at)
            .await
            .expect("record a seeded job first seen");
    }

    pub async fn add(&self, r: RunSpec) -> RunId {
        self.seen_before(
            &r.job,
            r.scheduled_for.unwrap_or(r.started_at).min(r.started_at),
        )
        .await;
        let id = self
            .store
            .insert_run(&NewRun {
                job: r.job.clone(),
                trigger: r.trigger,
                triggered_by: r.by.clone(),
                scheduled_for: r.scheduled_for,
                started_at: r.started_at,
                status: RunStatus::Running,
                attempt: r.attempt,
                error: None,
                dry_run: r.dry_run,
                owner: "seed:1:test".into(),
                retry_of: None,
            })
            .await
            .expect("insert a seeded run")
            .expect("a seeded run is not a duplicate claim");
        for (i, (name, target, status, detail, payload)) in r.steps.iter().enumerate() {
            let at = r.started_at + Duration::seconds(i as i64);
            self.store
                .record_step(
                    id,
                    &Step {
                        position: i as u32,
                        name: name.clone(),
                        target: target.clone(),
                        status: *status,
                        started_at: at,
                        finished_at: Some(at + Duration::seconds(1)),
                        detail: detail.clone(),
                        payload: payload.clone(),
                    },
                )
                .await
                .expect("record a seeded step");
        }
        if !r.checks.is_empty() {
            self.store
                .record_checks(id, &r.checks)
                .await
                .expect("record seeded checks");
        }
        if r.status != RunStatus::Running {
            self.store
                .finish_run(
                    id,
                    &Finish {
                        status: r.status,
                        finished_at: r.started_at + r.took,
                        error: r.error.clone(),
                        log: LogSnapshot {
                            text: String::new(),
                            truncated: false,
                        },
                    },
                )
                .await
                .expect("finish a seeded run");
        }
        id
    }

    pub async fn missed(
        &self,
        job: &str,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
        count: u64,
        reason: &str,
    ) {
        self.seen_before(job, first).await;
        self.store
            .record_missed(&MissedFires {
                job: job.into(),
                first,
                last,
                count,
                reason: reason.into(),
                recorded_at: last,
            })
            .await
            .expect("record seeded missed fires");
    }
}
