//! Job kinds. A kind is one file: its config struct (the kind's own fields
//! of jobs.yaml) implementing [`JobSpec`] and [`JobKind`], and its
//! executor. This module registers them, one line each, and defines what a
//! running job sees ([`RunContext`]) and hands back ([`Outcome`]).

pub mod checklist;
pub mod command;
pub mod procedure;
pub mod report;
pub mod rollout;
pub mod rotate_secret;
pub mod snapshot_migrate;
pub mod triage;
pub mod verify_backups;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::adapters::Adapters;
use crate::clock::Clock;
use crate::config::{self, Config, ConfigError, JobConfig, JobSpec};
use crate::identity::Identity;
use crate::model::{Params, Record, RunId, Step, StepStatus};
use crate::process::Group;
use crate::runlog::RunLog;
use crate::secret::Redactor;
use crate::store::HistoryStore;

/// A job kind: builds the executor of a job from its spec.
pub trait JobKind: JobSpec {
    fn executor(&self, env: &ExecEnv) -> Arc<dyn Job>;
}

/// The registry: the kinds jobs.yaml accepts, one line each.
macro_rules! job_kinds {
    ($($name:literal => $ty:ty),+ $(,)?) => {
        crate::kinds! {
            /// The job kinds jobs.yaml accepts.
            Registry => dyn JobSpec: $($name => $ty),+
        }

        impl config::JobKinds for Registry {
            const NAMES: &'static [&'static str] = Registry::NAMES;

            fn deserialize<'de, D: serde::Deserializer<'de>>(
                kind: &str,
                d: D,
            ) -> Result<Arc<dyn JobSpec>, D::Error> {
                Registry::deserialize(kind, d)
            }
        }

        /// The executor of a job, by its kind.
        pub fn executor(job: &JobConfig, env: &ExecEnv) -> Arc<dyn Job> {
            let spec = job.spec.as_any();
            $(
                if let Some(s) = spec.downcast_ref::<$ty>() {
                    return JobKind::executor(s, env);
                }
            )+
            Arc::new(Unregistered(job.kind))
        }
    };
}

job_kinds! {
    "command" => command::CommandSpec,
    "checklist" => checklist::ChecklistSpec,
    "rollout" => rollout::RolloutSpec,
    "rotate_secret" => rotate_secret::RotateSpec,
    "snapshot_migrate" => snapshot_migrate::MigrateSpec,
    "verify_backups" => verify_backups::VerifySpec,
    "report" => report::ReportSpec,
    "triage" => triage::TriageSpec,
}

/// Reads a jobs file with every registered kind and the process
/// environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    config::load_file::<Registry>(path)
}

/// Reads jobs.yaml text; `env` resolves `${VAR}`.
pub fn load_str(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    config::load_str::<Registry>(path, text, env)
}

/// A spec whose type is not registered (only a test can build one).
#[derive(Debug)]
struct Unregistered(&'static str);

#[async_trait]
impl Job for Unregistered {
    async fn run(&self, _: &RunContext) -> Result<Outcome, JobError> {
        Err(JobError::Failed(format!(
            "job kind `{}` is not registered",
            self.0
        )))
    }
}

/// What executors are built with: the seams to outside systems and the
/// clock.
#[derive(Debug, Clone)]
pub struct ExecEnv {
    pub adapters: Arc<Adapters>,
    pub clock: Arc<dyn Clock>,
    /// The run history, for kinds that read it (the report).
    pub store: Arc<dyn HistoryStore>,
    /// The whole jobs file, for kinds that look at other jobs; `None` for
    /// a runner built without one (tests).
    pub config: Option<Arc<Config>>,
    /// Every secret runbookd knows, for what a job quotes.
    pub redactor: Redactor,
}

/// What a job sees while it runs.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub run_id: RunId,
    pub job: String,
    pub attempt: u32,
    /// Plan and log every mutating step, perform none.
    pub dry_run: bool,
    /// Given by hand; the kind's `accepts` has checked them.
    pub params: Params,
    /// The operator confirmed a change that takes production down
    /// (`--confirm`; see `JobSpec::confirmation`).
    pub confirmed: bool,
    pub log: RunLog,
    /// Records the run's steps in the history as they happen.
    pub steps: Steps,
    /// Records the process groups the run starts, so a daemon that finds
    /// the run's owner dead can stop them.
    pub procs: Processes,
    /// Scrubs secrets from what the run writes; a secret the run makes (a
    /// rotated value) is added here before anything could print it.
    pub redactor: Redactor,
    /// Cancelled on timeout, shutdown, `concurrency: replace` or a cancel
    /// request. A job must stop promptly and leave nothing half-done that it
    /// has not logged.
    pub cancel: CancellationToken,
}

/// How a job ended, when it ended on its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// One line for listings and the morning report.
    pub summary: Option<String>,
    /// Set when the job ran to the end but its verdict is a failure (a
    /// checklist with a failing check); the run ends `failed` with this error.
    pub failure: Option<String>,
    /// Results for the history (check results; steps are saved as they
    /// happen through [`Steps`]).
    pub records: Vec<Record>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job saw its cancel token and stopped. The runner knows why.
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
}

#[async_trait]
pub trait Job: Send + Sync + std::fmt::Debug {
    async fn run(&self, ctx: &RunContext) -> Result<Outcome, JobError>;
}

/// Records a run's process groups in the history.
#[derive(Clone)]
pub struct Processes {
    store: Arc<dyn HistoryStore>,
    run: RunId,
    identity: Identity,
    log: RunLog,
}

impl std::fmt::Debug for Processes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processes").field("run", &self.run).finish()
    }
}

impl Processes {
    pub fn new(store: Arc<dyn HistoryStore>, run: RunId, identity: Identity, log: RunLog) -> Self {
        Processes {
            store,
            run,
            identity,
            log,
        }
    }

    /// The value of [`crate::process::RUN_TAG`] for every process the run
    /// starts, set before the spawn: it is all a restart has to go on if
    /// the daemon dies before [`Processes::started`] records the group.
    pub fn tag(&self) -> String {
        crate::process::run_tag(&self.identity.owner(), self.run)
    }

    /// Best effort: the group also dies with the daemon (parent-death
    /// signal); the record lets a restart stop what that leaves.
    pub async fn started(&self, group: Group) {
        if let Err(e) = self
            .store
            .record_process(self.run, &self.identity.host, group)
            .await
        {
            self.log.info(&format!(
                "cannot record process group {} in the history: {e}",
                group.pgid
            ));
        }
    }
}

/// Saves a run's steps as they start and end. A step that cannot be
/// recorded is an error: a job that changes production must not go on
/// unrecorded.
#[derive(Clone)]
pub struct Steps {
    store: Arc<dyn HistoryStore>,
    clock: Arc<dyn Clock>,
    run: RunId,
    redactor: Redactor,
    log: RunLog,
    next: Arc<AtomicU32>,
}

impl std::fmt::Debug for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steps").field("run", &self.run).finish()
    }
}

/// A step that has started; end it with [`StepHandle::end`].
#[derive(Debug)]
pub struct StepHandle {
    steps: Steps,
    step: Step,
}

impl Steps {
    pub fn new(
        store: Arc<dyn HistoryStore>,
        clock: Arc<dyn Clock>,
        run: RunId,
        redactor: Redactor,
        log: RunLog,
    ) -> Self {
        Steps {
            store,
            clock,
            run,
            redactor,
            log,
            next: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Records a step as started: `name` what is done, `target` on what,
    /// `detail` the call.
    pub async fn start(
        &self,
        name: &str,
        target: &str,
        detail: &str,
    ) -> Result<StepHandle, JobError> {
        let step = Step {
            position: self.next.fetch_add(1, Ordering::SeqCst),
            name: name.to_string(),
            target: self.redactor.redact(target),
            status: StepStatus::Running,
            started_at: self.clock.now(),
            finished_at: None,
            detail: self.redactor.redact(detail),
            payload: None,
        };
        self.log.info(&format!(
            "step {} {name} on {}: {}",
            step.position + 1,
            step.target,
            step.detail
        ));
        self.save(&step).await?;
        Ok(StepHandle {
            steps: self.clone(),
            step,
        })
    }

    /// Records a step that is not done (a dry run's), in one line.
    pub async fn skipped(&self, name: &str, target: &str, detail: &str) -> Result<Step, JobError> {
        let now = self.clock.now();
        let step = Step {
            position: self.next.fetch_add(1, Ordering::SeqCst),
            name: name.to_string(),
            target: self.redactor.redact(target),
            status: StepStatus::Skipped,
            started_at: now,
            finished_at: Some(now),
            detail: self.redactor.redact(detail),
            payload: None,
        };
        self.log.info(&format!(
            "step {} {name} on {}: {}",
            step.position + 1,
            step.target,
            step.detail
        ));
        self.save(&step).await?;
        Ok(step)
    }

    async fn save(&self, step: &Step) -> Result<(), JobError> {
        self.store
            .record_step(self.run, step)
            .await
            .map_err(|e| JobError::Failed(format!("cannot record step `{}`: {e}", step.name)))
    }
}

impl StepHandle {
    /// Ends the step with `status`, a one-line `detail` and an optional
    /// structured payload, and saves it.
    pub async fn end(
        mut self,
        status: StepStatus,
        detail: &str,
        payload: Option<serde_json::Value>,
    ) -> Result<Step, JobError> {
        self.step.status = status;
        self.step.finished_at = Some(self.steps.clock.now());
        self.step.detail = self.steps.redactor.redact(detail);
        // A payload passes the redactor like every other text, string by
        // string (a credential inside a quoted JSON body is found there).
        self.step.payload = payload.map(|p| self.steps.redactor.redact_json(&p));
        self.steps.log.info(&format!(
            "step {} {} {status}: {}",
            self.step.position + 1,
            self.step.name,
            self.step.detail
        ));
        self.steps.save(&self.step).await?;
        Ok(self.step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::model::{NewRun, RunStatus, Trigger};
    use crate::testkit::TestDatabase;

    #[tokio::test]
    async fn steps_are_in_the_history_as_they_happen_and_redacted() {
        let db = TestDatabase::sqlite();
        let store = db.open().await;
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let run = store
            .insert_run(&NewRun {
                job: "rotate".into(),
                trigger: Trigger::Manual,
                triggered_by: "sre".into(),
                scheduled_for: None,
                started_at: t0,
                status: RunStatus::Running,
                attempt: 1,
                error: None,
                dry_run: false,
                owner: "h:1:a".into(),
                retry_of: None,
            })
            .await
            .unwrap()
            .unwrap();
        let clock = ManualClock::new(t0);
        let redactor = Redactor::new(["s3cret-value-123".to_string()]);
        let log = RunLog::new(10_000, redactor.clone());
        let steps = Steps::new(
            store.clone(),
            Arc::new(clock.clone()),
            run,
            redactor,
            log.clone(),
        );
        let put = steps
            .start(
                "put-secret-value",
                "secret:/app/jwt",
                "PutSecretValue s3cret-value-123",
            )
            .await
            .unwrap();
        let saved = store.steps(run).await.unwrap();
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].status, StepStatus::Running);
        assert_eq!(saved[0].detail, "PutSecretValue [REDACTED]");
        clock.advance(chrono::Duration::seconds(2));
        put.end(
            StepStatus::Succeeded,
            "version v2 staged AWSPENDING",
            Some(serde_json::json!({"version": "v2", "leak": "s3cret-value-123"})),
        )
        .await
        .unwrap();
        let second = steps
            .start("restart", "deployment/api", "patch")
            .await
            .unwrap();
        assert_eq!(second.step.position, 1);
        let saved = store.steps(run).await.unwrap();
        assert_eq!(saved[0].status, StepStatus::Succeeded);
        assert_eq!(
            saved[0].finished_at,
            Some(t0 + chrono::Duration::seconds(2))
        );
        let payload = saved[0].payload.as_ref().unwrap().to_string();
        assert!(!payload.contains("s3cret-value-123"), "{payload}");
        assert_eq!(saved[1].status, StepStatus::Running);
        let text = log.snapshot().text;
        assert!(text.contains("step 1 put-secret-value succeeded"), "{text}");
        assert!(!text.contains("s3cret-value-123"), "{text}");
    }
}
