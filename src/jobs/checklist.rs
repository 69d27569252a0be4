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
use crate::config::{JobSpec, RunRefused};
use crate::model::{Params, Record};
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

    /// `only` and `skip`: comma-separated names of its checks.
    fn accepts(&self, params: &Params) -> Result<(), RunRefused> {
        let names: Vec<&str> = self.checks.value.iter().map(|c| c.name.as_str()).collect();
        for (k, v) in params {
            if k != "only" && k != "skip" {
                return Err(RunRefused::NotChecklistParameter(k.clone()));
            }
            for name in list(v) {
                if !names.contains(&name) {
                    return Err(RunRefused::NoSuchCheck {
                        param: k.clone(),
                        name: name.to_string(),
                        checks: names.iter().map(|n| n.to_string()).collect(),
                    });
                }
            }
        }
        if selected(&self.checks.value, params).is_empty() {
            return Err(RunRefused::NoCheckLeft);
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// The checks a run's `only` and `skip` leave.
fn selected<'a>(checks: &'a [CheckConfig], params: &Params) -> Vec<&'a CheckConfig> {
    let only: Vec<&str> = params
        .get("only")
        .map(|v| list(v).collect())
        .unwrap_or_default();
    let skip: Vec<&str> = params
        .get("skip")
        .map(|v| list(v).collect())
        .unwrap_or_default();
    checks
        .iter()
        .filter(|c| only.is_empty() || only.contains(&c.name.as_str()))
        .filter(|c| !skip.contains(&c.name.as_str()))
        .collect()
}

impl JobKind for ChecklistSpec {
    fn executor(&self, env: &ExecEnv) -> Arc<dyn Job> {
        Arc::new(ChecklistJob {
            spec: self.clone(),
            adapters: env.adapters.clone(),
            clock: env.clock.clone(),
            redactor: env.redactor.clone(),
        })
    }
}

#[derive(Debug)]
pub struct ChecklistJob {
    spec: ChecklistSpec,
    adapters: Arc<Adapters>,
    clock: Arc<dyn Clock>,
    redactor: crate::secret::Redactor,
}

#[async_trait]
impl Job for ChecklistJob {
    async fn run(&self, ctx: &RunContext) -> Result<Outcome, JobError> {
        let chosen: Vec<CheckConfig> = selected(&self.spec.checks.value, &ctx.params)
            .into_iter()
            .cloned()
            .collect();
        if ctx.dry_run {
            // Checks only read, but a dry run promises no contact at all: it
            // lists what would be asked of whom.
            for c in &chosen {
                ctx.log.info(&format!(
                    "dry run: would check {} ({}): {}",
                    c.name,
                    c.kind,
                    c.spec.target()
                ));
            }
            return Ok(Outcome {
                summary: Some(format!("dry run: {} checks listed, none run", chosen.len())),
                ..Default::default()
            });
        }
        let check_ctx = CheckContext::new(self.clock.now(), self.adapters.clone())
            .with_redactor(self.redactor.clone());
        ctx.log.info(&format!(
            "running {} checks, at most {} at a time",
            chosen.len(),
            self.spec.max_concurrency()
        ));
        let results = tokio::select! {
            r = checks::run_all(&chosen, &check_ctx, self.spec.max_concurrency()) => r,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        // The results are stored with the run, and `run`, `show` and
        // `trigger --wait` print them as a table: a copy in the log would
        // say everything twice.
        let (ok, summary) = checks::summarize(&results);
        Ok(Outcome {
            failure: (!ok).then(|| summary.clone()),
            summary: Some(summary),
            records: results.into_iter().map(Record::Check).collect(),
        })
    }
}
