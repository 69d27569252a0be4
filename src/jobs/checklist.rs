//! `kind: checklist`: named checks run concurrently (at most
//! `max_concurrency` at a time), so a checklist takes about as long as its
//! slowest check. The job fails when any check fails or errors; warnings
//! pass. Every result is stored with the run.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{ExecEnv, Job, JobError, JobKind, Outcome, RunContext};
use crate::adapters::Adapters;
use crate::checks::{self, CheckConfig, CheckContext};
use crate::clock::Clock;
use crate::config::JobSpec;
use crate::model::Record;
use crate::yaml::{At, Diags};

pub const DEFAULT_MAX_CONCURRENCY: usize = 8;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistSpec {
    /// The checks, run concurrently. Required, at least one.
    pub checks: At<Vec<CheckConfig>>,
    /// Checks running at once. Default 8.
    pub max_concurrency: Option<At<usize>>,
}

impl ChecklistSpec {
    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
            .map(|m| m.value)
            .unwrap_or(DEFAULT_MAX_CONCURRENCY)
    }
}

impl JobSpec for ChecklistSpec {
    fn validate(&self, _job: &str, diags: &mut Diags) {
        checks::validate_list(&self.checks.value, self.checks.at, diags);
        if let Some(m) = self.max_concurrency
            && m.value == 0
        {
            diags.at(m.at, "max_concurrency must be at least 1");
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl JobKind for ChecklistSpec {
    fn executor(&self, env: &ExecEnv) -> Arc<dyn Job> {
        Arc::new(ChecklistJob::new(
            self.clone(),
            env.adapters.clone(),
            env.clock.clone(),
        ))
    }
}

#[derive(Debug)]
pub struct ChecklistJob {
    spec: ChecklistSpec,
    adapters: Arc<Adapters>,
    clock: Arc<dyn Clock>,
}

impl ChecklistJob {
    pub fn new(spec: ChecklistSpec, adapters: Arc<Adapters>, clock: Arc<dyn Clock>) -> Self {
        ChecklistJob {
            spec,
            adapters,
            clock,
        }
    }
}

#[async_trait]
impl Job for ChecklistJob {
    async fn run(&self, ctx: &RunContext) -> Result<Outcome, JobError> {
        if ctx.dry_run {
            // Checks only read, but a dry run promises no contact at all: it
            // lists what would be asked of whom.
            for c in &self.spec.checks.value {
                ctx.log.info(&format!(
                    "dry run: would check {} ({}): {}",
                    c.name,
                    c.kind,
                    c.spec.target()
                ));
            }
            return Ok(Outcome {
                summary: Some(format!(
                    "dry run: {} checks listed, none run",
                    self.spec.checks.value.len()
                )),
                ..Default::default()
            });
        }
        let check_ctx = CheckContext {
            now: self.clock.now(),
            adapters: self.adapters.clone(),
            timeout: checks::DEFAULT_CHECK_TIMEOUT,
        };
        ctx.log.info(&format!(
            "running {} checks, at most {} at a time",
            self.spec.checks.value.len(),
            self.spec.max_concurrency()
        ));
        let results = tokio::select! {
            r = checks::run_all(&self.spec.checks.value, &check_ctx, self.spec.max_concurrency()) => r,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        for line in checks::render_table(&results).lines() {
            ctx.log.info(line);
        }
        let (ok, summary) = checks::summarize(&results);
        Ok(Outcome {
            failure: (!ok).then(|| summary.clone()),
            summary: Some(summary),
            records: results.into_iter().map(Record::Check).collect(),
        })
    }
}
