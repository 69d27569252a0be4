//! Chaining: the runs a failed run's job names in `on_failure`, claimed
//! as the scheduler claims, and what the failure's mail says of them.

use std::time::Duration;

use crate::config::JobConfig;
use crate::model::{ChainedRun, Params};
use crate::store::{RunId, RunStatus, Trigger};

use super::{Admission, Ended, RunRequest, Runner, Stop};

impl Runner {
    /// Starts a failed run's chained runs, then mails the failure: the mail
    /// waits for them at most `chain_wait`, and the run ends once they have.
    pub(super) async fn chain_then_notify(
        &self,
        job: &JobConfig,
        mut ended: Ended,
        stop: &Stop,
    ) -> Ended {
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
                None => still_running(&next.name, *id, self.chain_wait),
            };
            chained.push((*pos, c));
        }
        ended.chained = in_order(chained);
        ended.notified = self.notify(job, &ended).await;
        if done.is_none() {
            runs.await;
        }
        ended
    }

    /// Claims a run of each job a failed run's job names in `on_failure`
    /// (trigger `chained`, `triggered_by` naming the failed run), applying
    /// overlap rules as the scheduler does, after the claim: a job that is
    /// not `allow` and already running is recorded `skipped`. Returns the
    /// runs to execute and, for the others, why they did not start, each
    /// with its place in `on_failure`.
    #[allow(clippy::type_complexity)]
    pub(super) async fn start_chain(
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
            let mut req = chained_request(ended, &job.name);
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
}

/// Whether a run that ended `status` starts its job's `on_failure` runs.
/// A chained run never chains: a failing triage cannot start another.
pub(super) fn chains(
    status: RunStatus,
    req: &RunRequest,
    stopped: bool,
    has_on_failure: bool,
) -> bool {
    let failed = matches!(status, RunStatus::Failed | RunStatus::TimedOut);
    failed && !req.dry_run && req.trigger != Trigger::Chained && !stopped && has_on_failure
}

/// What the failure's mail says of a chained run it stopped waiting for.
fn still_running(job: &str, id: RunId, waited: Duration) -> ChainedRun {
    ChainedRun {
        job: job.to_string(),
        id: Some(id),
        status: RunStatus::Running,
        summary: Some(format!(
            "still running after {}",
            humantime::format_duration(waited)
        )),
    }
}

/// The chained runs in the order `on_failure` names them.
fn in_order(mut chained: Vec<(usize, ChainedRun)>) -> Vec<ChainedRun> {
    chained.sort_by_key(|(pos, _)| *pos);
    chained.into_iter().map(|(_, c)| c).collect()
}

/// What a chained run asks for: trigger `chained`, `triggered_by` naming
/// the failed run, and its log saying why it started.
fn chained_request(ended: &Ended, job: &str) -> RunRequest {
    RunRequest {
        trigger: Trigger::Chained,
        triggered_by: crate::model::chained_by(ended.id, job),
        scheduled_for: None,
        dry_run: false,
        params: Params::default(),
        notes: vec![format!(
            "started because run {} of `{job}` ended {}",
            ended.id, ended.status
        )],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(id: RunId, status: RunStatus) -> Ended {
        Ended {
            id,
            status,
            attempt: 1,
            error: None,
            notified: None,
            chained: Vec::new(),
        }
    }

    #[test]
    fn chains_only_a_real_failure_of_an_unchained_run() {
        let scheduled = RunRequest {
            trigger: Trigger::Schedule,
            ..Default::default()
        };
        let dry = RunRequest {
            dry_run: true,
            ..scheduled.clone()
        };
        let chained = RunRequest {
            trigger: Trigger::Chained,
            ..Default::default()
        };
        // (status, request, stopped, has on_failure, chains)
        let cases = [
            (RunStatus::Failed, &scheduled, false, true, true),
            (RunStatus::TimedOut, &scheduled, false, true, true),
            (RunStatus::Succeeded, &scheduled, false, true, false),
            (RunStatus::Cancelled, &scheduled, false, true, false),
            (RunStatus::Skipped, &scheduled, false, true, false),
            (RunStatus::Failed, &scheduled, false, false, false),
            (RunStatus::Failed, &scheduled, true, true, false),
            (RunStatus::Failed, &dry, false, true, false),
            (RunStatus::Failed, &chained, false, true, false),
        ];
        for (status, req, stopped, has, want) in cases {
            assert_eq!(
                chains(status, req, stopped, has),
                want,
                "{status} {:?} dry={} stopped={stopped} on_failure={has}",
                req.trigger,
                req.dry_run
            );
        }
    }

    #[test]
    fn a_chained_request_names_the_failed_run() {
        let req = chained_request(&ended(42, RunStatus::TimedOut), "nightly");
        assert_eq!(req.trigger, Trigger::Chained);
        assert_eq!(req.triggered_by, crate::model::chained_by(42, "nightly"));
        assert!(!req.dry_run && !req.force && !req.confirmed);
        assert!(req.replacing.is_empty() && req.params.is_empty());
        assert_eq!(
            req.notes,
            vec![format!(
                "started because run 42 of `nightly` ended {}",
                RunStatus::TimedOut
            )]
        );
    }

    #[test]
    fn chained_runs_keep_their_place_in_on_failure() {
        let c = |job: &str| still_running(job, 7, Duration::from_secs(30));
        let got = in_order(vec![(2, c("c")), (0, c("a")), (1, c("b"))]);
        let jobs: Vec<&str> = got.iter().map(|c| c.job.as_str()).collect();
        assert_eq!(jobs, ["a", "b", "c"]);
    }

    #[test]
    fn a_run_not_waited_for_is_still_running() {
        let c = still_running("triage", 9, Duration::from_secs(30));
        assert_eq!(c.job, "triage");
        assert_eq!(c.id, Some(9));
        assert_eq!(c.status, RunStatus::Running);
        assert_eq!(c.summary.as_deref(), Some("still running after 30s"));
    }
}
