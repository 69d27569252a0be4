//! Overlap: what a newly claimed run does about its job's runs already
//! going (`concurrency: forbid | replace | allow`), decided in one place for
//! scheduled fires, triggered and chained runs and runs by hand.
//!
//! The claim reads the job's running runs in its own transaction, one claim
//! of a job at a time (a per-job advisory lock on Postgres, the one writer
//! on SQLite), so every run it sees was claimed before it and every later
//! claim sees it: of two claims racing, exactly one yields, never both and
//! never neither. A `replace` run starts only once the runs it replaces
//! have ended (or been marked abandoned), so two copies never overlap.

use std::time::Duration;

use crate::config::{Concurrency, JobConfig};
use crate::jobs::JobError;
use crate::runlog::RunLog;
use crate::store::{Claimed, NewRun, Run, RunId, StoreError, Trigger};

use super::{RunRequest, Runner, STOP_WAIT};

/// What a claim decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Another process claimed this fire first.
    Lost,
    /// Recorded `skipped`: the reason, and the runs it yielded to.
    Skipped {
        id: RunId,
        reason: String,
        blockers: Vec<RunId>,
    },
    /// Claimed and free to start (a `replace` run once the runs in
    /// [`RunRequest::replacing`] have ended).
    Start { id: RunId },
}

impl Admission {
    /// The run to execute, if it may start.
    pub fn started(&self) -> Option<RunId> {
        match self {
            Admission::Start { id } => Some(*id),
            _ => None,
        }
    }
}

/// How long a `replace` run waits for the runs it replaces to end: a run
/// asked to stop sees it at its next heartbeat and then has [`STOP_WAIT`];
/// one whose daemon died is marked abandoned once its heartbeat is stale
/// (`daemon.stale_after`, 30 s by default).
pub const REPLACE_WAIT: Duration = Duration::from_secs(STOP_WAIT.as_secs() + 60);

/// How often the wait looks at the history.
const REPLACE_POLL: Duration = Duration::from_millis(50);

/// The runs a new claim reckons with. Dry runs change nothing: they neither
/// hold up nor are replaced by a real run, and a dry run yields to nothing.
/// Pure.
pub fn blockers(earlier: &[Run], dry_run: bool) -> Vec<RunId> {
    if dry_run {
        return Vec::new();
    }
    earlier
        .iter()
        .filter(|r| !r.dry_run)
        .map(|r| r.id)
        .collect()
}

fn list(ids: &[RunId]) -> String {
    ids.iter()
        .map(|i| format!("#{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Runner {
    /// Claims the first attempt of `req` and applies the job's overlap rule.
    /// A claimed run is never left `running` with nothing behind it: if the
    /// rule cannot be applied, the row is marked abandoned and the error
    /// returned.
    pub async fn admit(
        &self,
        job: &JobConfig,
        req: &mut RunRequest,
    ) -> Result<Admission, StoreError> {
        let claimed = self.store.claim_run(&self.new_run(job, req, 1)).await?;
        self.admit_claimed(job, req, claimed).await
    }

    /// Claims the first attempts of several requests in one round trip
    /// where the store can (the fires a tick found due at one instant), so
    /// the last of fifty is not fifty claims late; each claim in the order
    /// given, to be admitted with [`Runner::admit_claimed`].
    pub async fn claim_first(
        &self,
        asked: &[(&JobConfig, &RunRequest)],
    ) -> Result<Vec<Option<Claimed>>, StoreError> {
        let runs: Vec<NewRun> = asked
            .iter()
            .map(|(job, req)| self.new_run(job, req, 1))
            .collect();
        self.store.claim_runs(&runs).await
    }

    /// Applies the job's overlap rule to a claim already made (`None`:
    /// another process claimed the fire), as [`Runner::admit`] does.
    pub async fn admit_claimed(
        &self,
        job: &JobConfig,
        req: &mut RunRequest,
        claimed: Option<Claimed>,
    ) -> Result<Admission, StoreError> {
        let Some(claimed) = claimed else {
            return Ok(Admission::Lost);
        };
        let id = claimed.id;
        match self.overlap(job, req, id, &claimed.earlier).await {
            Ok(a) => Ok(a),
            Err(e) => {
                let _ = self
                    .store
                    .abandon(id, self.clock.now(), &format!("not started: {e}"))
                    .await;
                Err(e)
            }
        }
    }

    async fn overlap(
        &self,
        job: &JobConfig,
        req: &mut RunRequest,
        id: RunId,
        earlier: &[Run],
    ) -> Result<Admission, StoreError> {
        let others = blockers(earlier, req.dry_run);
        if others.is_empty() || job.concurrency == Concurrency::Allow {
            return Ok(Admission::Start { id });
        }
        let runs = list(&others);
        let asked = req.clone();
        let skip = async |reason: String, blockers: Vec<RunId>| {
            self.skip(job, &asked, id, &reason).await?;
            Ok(Admission::Skipped {
                id,
                reason,
                blockers,
            })
        };
        // A chained run is started unattended by a failure: it neither
        // runs beside nor replaces a run someone else started.
        if req.trigger == Trigger::Chained {
            return skip(
                format!(
                    "skipped: `{}` is already running as run {runs}; a chained run does not start beside it (concurrency: {})",
                    job.name, job.concurrency
                ),
                others,
            )
            .await;
        }
        match job.concurrency {
            Concurrency::Allow => Ok(Admission::Start { id }),
            Concurrency::Forbid if req.force => {
                req.notes.push(format!(
                    "forced with --force by {}: running beside run {runs} (concurrency: forbid)",
                    req.triggered_by
                ));
                Ok(Admission::Start { id })
            }
            Concurrency::Forbid => {
                skip(
                    format!("skipped: run {runs} is still running (concurrency: forbid)"),
                    others,
                )
                .await
            }
            Concurrency::Replace => {
                let by = match req.scheduled_for {
                    Some(at) => format!("for {}", at.to_rfc3339()),
                    None => format!("{} by {}", req.trigger, req.triggered_by),
                };
                let reason = format!("replaced by run #{id} {by} (concurrency: replace)");
                for other in &others {
                    self.stop_run(*other, &reason).await?;
                }
                req.notes.push(format!(
                    "replacing run {runs} (concurrency: replace): asked it to stop; starting once it has ended"
                ));
                req.replacing = others;
                Ok(Admission::Start { id })
            }
        }
    }

    /// Asks a run to stop: at once if this process runs it, else through
    /// the store (its owner sees it at its next heartbeat).
    async fn stop_run(&self, id: RunId, reason: &str) -> Result<(), StoreError> {
        let local = self
            .local
            .lock()
            .expect("local runs lock")
            .get(&id)
            .cloned();
        match local {
            Some(stop) => stop.cancel(reason),
            None => {
                self.store.request_cancel(id).await?;
            }
        }
        Ok(())
    }

    /// Waits until none of `ids` is running any more, and says how long it
    /// waited. Runs that never end within [`REPLACE_WAIT`] fail this one:
    /// starting beside them is what `replace` promises never to do.
    pub(super) async fn await_replaced(
        &self,
        job: &JobConfig,
        ids: &[RunId],
        log: &RunLog,
    ) -> Result<(), JobError> {
        let began = tokio::time::Instant::now();
        let runs = list(ids);
        loop {
            match self.store.running(Some(&job.name)).await {
                Ok(running) if !running.iter().any(|r| ids.contains(&r.id)) => {
                    log.info(&format!(
                        "waited {} for run {runs} to end (concurrency: replace)",
                        humantime::format_duration(Duration::from_millis(
                            began.elapsed().as_millis() as u64
                        ))
                    ));
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(job = %job.name, "cannot see whether run {runs} has ended: {e}")
                }
            }
            if began.elapsed() >= REPLACE_WAIT {
                return Err(JobError::Failed(format!(
                    "not started: run {runs} did not end within {} of being asked to stop (concurrency: replace), and two copies must not run at once",
                    humantime::format_duration(REPLACE_WAIT)
                )));
            }
            tokio::time::sleep(REPLACE_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn run(id: RunId, dry_run: bool) -> Run {
        let at = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap();
        Run {
            id,
            job: "j".into(),
            trigger: Trigger::Schedule,
            triggered_by: "t".into(),
            scheduled_for: None,
            started_at: at,
            finished_at: None,
            status: crate::store::RunStatus::Running,
            attempt: 1,
            error: None,
            dry_run,
            owner: "h:1:a".into(),
            heartbeat_at: at,
            retry_of: None,
            log: None,
            log_truncated: false,
            checks: Vec::new(),
            steps: Vec::new(),
        }
    }

    #[test]
    fn blockers_table() {
        // Earlier runs (id, dry), whether the new run is a dry run, blockers.
        type Case<'a> = (&'a [(RunId, bool)], bool, &'a [RunId]);
        let cases: &[Case] = &[
            (&[], false, &[]),
            (&[(3, false)], false, &[3]),
            (&[(3, false), (5, false)], false, &[3, 5]),
            (&[(3, true)], false, &[]),
            (&[(3, true), (4, false)], false, &[4]),
            (&[(3, false)], true, &[]),
        ];
        for (earlier, dry, want) in cases {
            let runs: Vec<Run> = earlier.iter().map(|(i, d)| run(*i, *d)).collect();
            assert_eq!(blockers(&runs, *dry), *want, "{earlier:?} dry={dry}");
        }
    }
}
