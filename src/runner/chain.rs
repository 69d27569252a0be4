//! Chaining: the runs a failed run's job names in `on_failure`, claimed
//! as the scheduler claims, and what the failure's mail says of them.

use crate::config::JobConfig;
use crate::model::{ChainedRun, Params};
use crate::store::{RunId, RunStatus, Trigger};

use super::{Admission, Ended, RunRequest, Runner};

impl Runner {
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
}
