//! Job kinds. Each kind has its config struct and its executor in one file;
//! this module only registers them.

pub mod checklist;
pub mod command;

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::adapters::Adapters;
use crate::checks::CheckResult;
use crate::clock::Clock;
use crate::config::yaml::{self, DeError, Node};
use crate::runlog::RunLog;
use crate::store::RunId;

/// The kinds jobs.yaml accepts, for error messages.
pub const KINDS: &[&str] = &["command", "checklist"];

#[derive(Debug, Clone)]
pub enum JobSpec {
    Command(command::CommandSpec),
    Checklist(checklist::ChecklistSpec),
}

/// What executors are built with: the seams to outside systems and the
/// clock.
#[derive(Debug, Clone)]
pub struct ExecEnv {
    pub adapters: Arc<Adapters>,
    pub clock: Arc<dyn Clock>,
}

impl JobSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::Command(_) => "command",
            JobSpec::Checklist(_) => "checklist",
        }
    }

    pub fn executor(&self, env: &ExecEnv) -> Arc<dyn Job> {
        match self {
            JobSpec::Command(s) => Arc::new(command::CommandJob::new(s.clone())),
            JobSpec::Checklist(s) => Arc::new(checklist::ChecklistJob::new(
                s.clone(),
                env.adapters.clone(),
                env.clock.clone(),
            )),
        }
    }
}

/// The fields a kind accepts beside the common ones.
pub fn fields(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "command" => Some(yaml::struct_fields::<command::CommandSpec>()),
        "checklist" => Some(yaml::struct_fields::<checklist::RawChecklist>()),
        _ => None,
    }
}

/// Deserializes and checks a kind's own fields.
pub fn parse_spec(kind: &str, node: &Node) -> Result<JobSpec, DeError> {
    match kind {
        "command" => command::CommandSpec::from_node(node).map(JobSpec::Command),
        "checklist" => checklist::ChecklistSpec::from_node(node).map(JobSpec::Checklist),
        other => Err(DeError {
            message: format!("unknown kind `{other}`"),
            mark: Some(node.mark),
        }),
    }
}

/// What a job sees while it runs.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub run_id: RunId,
    pub job: String,
    pub attempt: u32,
    /// Plan and log every mutating step, perform none.
    pub dry_run: bool,
    pub log: RunLog,
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
    /// Check results, stored with the run.
    pub checks: Vec<CheckResult>,
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
