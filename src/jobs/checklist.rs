//! `kind: checklist`: named checks run concurrently (at most
//! `max_concurrency` at a time), so a checklist takes about as long as its
//! slowest check. The job fails when any check fails or errors; warnings
//! pass. Every result is stored with the run.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Job, JobError, Outcome, RunContext};
use crate::adapters::Adapters;
use crate::checks::{self, CheckConfig, CheckContext};
use crate::clock::Clock;
use crate::config::yaml::{self, DeError, Kind, Node};

pub const DEFAULT_MAX_CONCURRENCY: usize = 8;

/// The fields of a checklist, for the loader; `checks` is parsed by hand so
/// each check's kind picks its own struct.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChecklist {
    #[allow(dead_code)]
    checks: serde::de::IgnoredAny,
    /// Checks running at once. Default 8.
    max_concurrency: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ChecklistSpec {
    pub checks: Vec<CheckConfig>,
    pub max_concurrency: usize,
}

impl ChecklistSpec {
    pub fn from_node(node: &Node) -> Result<Self, DeError> {
        let raw: RawChecklist = yaml::from_node(node)?;
        let list = node.get("checks").ok_or_else(|| DeError {
            message: "missing field `checks`".into(),
            mark: Some(node.mark),
        })?;
        let Kind::Seq(items) = &list.kind else {
            return Err(DeError {
                message: format!(
                    "checks: expected a list of checks, found {}",
                    list.type_name()
                ),
                mark: Some(list.mark),
            });
        };
        if items.is_empty() {
            return Err(DeError {
                message: "checks: a checklist needs at least one check".into(),
                mark: Some(list.mark),
            });
        }
        let mut checks: Vec<CheckConfig> = Vec::new();
        for item in items {
            let c = checks::parse_check(item)?;
            if checks.iter().any(|o| o.name == c.name) {
                return Err(DeError {
                    message: format!("duplicate check name `{}`", c.name),
                    mark: Some(item.get("name").map(|n| n.mark).unwrap_or(item.mark)),
                });
            }
            checks.push(c);
        }
        let max_concurrency = raw.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
        if max_concurrency == 0 {
            return Err(DeError {
                message: "max_concurrency must be at least 1".into(),
                mark: Some(
                    node.get("max_concurrency")
                        .map(|n| n.mark)
                        .unwrap_or(node.mark),
                ),
            });
        }
        Ok(ChecklistSpec {
            checks,
            max_concurrency,
        })
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
            for c in &self.spec.checks {
                ctx.log.info(&format!(
                    "dry run: would check {} ({}): {}",
                    c.name,
                    c.spec.kind(),
                    c.spec.target()
                ));
            }
            return Ok(Outcome {
                summary: Some(format!(
                    "dry run: {} checks listed, none run",
                    self.spec.checks.len()
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
            self.spec.checks.len(),
            self.spec.max_concurrency
        ));
        let results = tokio::select! {
            r = checks::run_all(&self.spec.checks, &check_ctx, self.spec.max_concurrency) => r,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        for line in checks::render_table(&results).lines() {
            ctx.log.info(line);
        }
        let (ok, summary) = checks::summarize(&results);
        Ok(Outcome {
            failure: (!ok).then(|| summary.clone()),
            summary: Some(summary),
            checks: results,
        })
    }
}
