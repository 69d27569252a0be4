//! The attempt loop: each attempt under its timeout and heartbeat, its
//! history row written whatever happens, and the retries with backoff.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{JobConfig, RetryPolicy};
use crate::jobs::{self, JobError, Processes, RunContext, Steps};
use crate::model::{CheckResult, Measured, Record, Threshold};
use crate::retry::{self, Backoff};
use crate::runlog::RunLog;
use crate::store::{Finish, NewRun, RunId, RunStatus, Trigger};

use super::events::checks_of;
use super::heartbeat::heartbeat_loop;
use super::{Ended, RunEvent, RunRequest, Runner, STOP_WAIT, Stop};

impl Runner {
    pub(super) fn new_run(&self, job: &JobConfig, req: &RunRequest, attempt: u32) -> NewRun {
        NewRun {
            job: job.name.clone(),
            trigger: trigger_of(attempt, req.trigger),
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

    pub(super) async fn attempts(
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
            if !retries(
                status,
                attempt,
                job.retries.max,
                stop.is_cancelled(),
                req.dry_run,
            ) {
                return Ended {
                    id,
                    status,
                    attempt,
                    error,
                    notified: None,
                    chained: Vec::new(),
                };
            }
            let wait = retry_wait(&job.retries, attempt + 1);
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
            trigger_of(attempt, req.trigger),
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
                checks = checks_of(&outcome.records);
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
            trigger: trigger_of(attempt, req.trigger),
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

/// An attempt after the first is a retry, whatever started the run.
fn trigger_of(attempt: u32, first: Trigger) -> Trigger {
    if attempt > 1 { Trigger::Retry } else { first }
}

/// Whether attempt `attempt`, ended `status`, is followed by another: a
/// failure or a timeout of a real run nobody stopped, within the job's
/// `retries.max` extra attempts.
fn retries(status: RunStatus, attempt: u32, max: u32, stopped: bool, dry_run: bool) -> bool {
    let retryable = matches!(status, RunStatus::Failed | RunStatus::TimedOut);
    retryable && attempt <= max && !stopped && !dry_run
}

/// The wait before attempt `next`, in whole milliseconds: the jittered
/// wait is logged.
fn retry_wait(policy: &RetryPolicy, next: u32) -> Duration {
    Duration::from_millis(policy.wait_before(next).as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_real_unstopped_failure_within_max_is_retried() {
        // (status, attempt, max, stopped, dry run, retried)
        let cases = [
            (RunStatus::Failed, 1, 2, false, false, true),
            (RunStatus::TimedOut, 2, 2, false, false, true),
            (RunStatus::Failed, 3, 2, false, false, false),
            (RunStatus::Failed, 1, 0, false, false, false),
            (RunStatus::Succeeded, 1, 2, false, false, false),
            (RunStatus::Cancelled, 1, 2, false, false, false),
            (RunStatus::Skipped, 1, 2, false, false, false),
            (RunStatus::Failed, 1, 2, true, false, false),
            (RunStatus::Failed, 1, 2, false, true, false),
        ];
        for (status, attempt, max, stopped, dry, want) in cases {
            assert_eq!(
                retries(status, attempt, max, stopped, dry),
                want,
                "{status} attempt {attempt} of max {max} stopped={stopped} dry={dry}"
            );
        }
    }

    #[test]
    fn retry_waits_double_up_to_the_cap_jittered_in_whole_ms() {
        let policy = RetryPolicy {
            max: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(4),
        };
        let ceilings = [1_000, 2_000, 4_000, 4_000, 4_000];
        for (next, ceiling) in (2..).zip(ceilings) {
            assert_eq!(
                policy.delay_before(next),
                Duration::from_millis(ceiling),
                "ceiling before attempt {next}"
            );
            for _ in 0..50 {
                let wait = retry_wait(&policy, next);
                assert_eq!(wait.subsec_nanos() % 1_000_000, 0, "{wait:?} not whole ms");
                // Jitter takes at most a quarter off, never adds.
                assert!(
                    wait <= Duration::from_millis(ceiling)
                        && wait >= Duration::from_millis(ceiling * 3 / 4),
                    "wait before attempt {next}: {wait:?}, ceiling {ceiling} ms"
                );
            }
        }
    }

    #[test]
    fn later_attempts_are_retries() {
        assert_eq!(trigger_of(1, Trigger::Schedule), Trigger::Schedule);
        assert_eq!(trigger_of(1, Trigger::Chained), Trigger::Chained);
        assert_eq!(trigger_of(2, Trigger::Schedule), Trigger::Retry);
        assert_eq!(trigger_of(3, Trigger::Manual), Trigger::Retry);
    }
}
