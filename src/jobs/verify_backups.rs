//! `kind: verify_backups`: the runbook's "Verify backup completion", made
//! a proof rather than a glance.
//!
//! - The newest automated snapshot is `available`, younger than `max_age`,
//!   and encrypted (unless `require_encrypted: false`).
//! - The region's manual snapshots are within the quota, with headroom.
//! - With `restore_test: true`: the newest automated snapshot is restored
//!   to a throwaway instance (tagged, a small class), waited for, and the
//!   `restore_checks` (SQL checks whose `database_url` says `{endpoint}`)
//!   run against it; how long the restore took is recorded; the instance is
//!   deleted afterwards, always, even on failure or cancellation.
//!
//! Each verdict is a check result of the run (the morning report reads
//! them like a checklist's); each AWS call is a step.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::procedure::{self, Done, Poll, StepError};
use super::{ExecEnv, Job, JobError, JobKind, Outcome, RunContext};
use crate::adapters::Adapters;
use crate::adapters::aws::{DbSnapshot, Target, owned_by};
use crate::checks::sql::SqlCheck;
use crate::checks::{self, CheckConfig, CheckContext};
use crate::clock::Clock;
use crate::config::JobSpec;
use crate::model::{CheckResult, CheckStatus, Dur, Record, fmt_age};
use crate::secret::SecretUrl;
use crate::yaml::{At, Diags, Ident};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// The RDS instance. Required.
    pub instance: Ident,
    /// AWS region. Default: the standard chain.
    pub region: Option<Ident>,
    /// The newest automated snapshot must be younger. Default `24h`.
    pub max_age: Option<Dur>,
    /// Default `true`.
    #[serde(default = "yes")]
    pub require_encrypted: bool,
    /// The region's manual snapshot quota. Default 100 (AWS's default; set
    /// it if yours was raised).
    pub manual_snapshot_quota: Option<At<u64>>,
    /// Warn above this fraction of the quota. Default 0.8.
    pub quota_warn: Option<At<f64>>,
    /// Restore the newest snapshot and check it. Default `false`.
    #[serde(default)]
    pub restore_test: bool,
    /// The throwaway instance's class. Default `db.t3.micro`.
    pub restore_class: Option<Ident>,
    /// How long the restore may take. Default `1h`.
    pub restore_timeout: Option<Dur>,
    /// How often the restore is looked at. Default `30s`.
    pub poll: Option<Dur>,
    /// `sql` checks run against the restored instance; `{endpoint}` in
    /// their `database_url` becomes its `host:port`. Default: none.
    pub restore_checks: Option<At<Vec<CheckConfig>>>,
}

fn yes() -> bool {
    true
}

impl JobSpec for VerifySpec {
    fn validate(&self, _job: &str, diags: &mut Diags) {
        if let Some(list) = &self.restore_checks {
            checks::validate_list(&list.value, list.at, diags);
            for c in &list.value {
                match c.spec.downcast::<SqlCheck>() {
                    None => diags.at(c.at, format!("restore check `{}` must be of kind sql", c.name)),
                    Some(s) if !s.database_url.expose().contains("{endpoint}") => diags.at(
                        c.at,
                        format!(
                            "restore check `{}`: its database_url needs `{{endpoint}}` where the restored instance's host:port goes",
                            c.name
                        ),
                    ),
                    Some(_) => {}
                }
            }
            if !self.restore_test {
                diags.at(list.at, "restore_checks need `restore_test: true`");
            }
        }
        if let Some(w) = self.quota_warn
            && !(0.0..=1.0).contains(&w.value)
        {
            diags.at(w.at, "quota_warn is a fraction of the quota, 0 to 1");
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl JobKind for VerifySpec {
    fn executor(&self, env: &ExecEnv) -> Arc<dyn Job> {
        Arc::new(VerifyJob {
            spec: self.clone(),
            adapters: env.adapters.clone(),
            clock: env.clock.clone(),
        })
    }
}

#[derive(Debug)]
pub struct VerifyJob {
    spec: VerifySpec,
    adapters: Arc<Adapters>,
    clock: Arc<dyn Clock>,
}

/// The verdict on the newest automated snapshot. Pure.
pub fn judge_backup(
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
    snapshots: &[DbSnapshot],
    max_age: Duration,
    require_encrypted: bool,
) -> Vec<CheckResult> {
    let threshold = format!("available, younger than {}", fmt_age(max_age));
    let Some(newest) = snapshots
        .iter()
        .filter(|s| s.created.is_some())
        .max_by_key(|s| s.created)
    else {
        return vec![
            CheckResult::new(
                format!("{name}/latest"),
                CheckStatus::Fail,
                "no automated snapshots",
            )
            .threshold(threshold),
        ];
    };
    let age = (now - newest.created.expect("filtered"))
        .to_std()
        .unwrap_or_default();
    let status = if newest.status != "available" || age > max_age {
        CheckStatus::Fail
    } else {
        CheckStatus::Pass
    };
    let mut out = vec![
        CheckResult::new(
            format!("{name}/latest"),
            status,
            format!("{} is {}, {} old", newest.id, newest.status, fmt_age(age)),
        )
        .number(age.as_secs_f64() / 3600.0)
        .threshold(threshold),
    ];
    if require_encrypted {
        out.push(
            CheckResult::new(
                format!("{name}/encrypted"),
                if newest.encrypted {
                    CheckStatus::Pass
                } else {
                    CheckStatus::Fail
                },
                if newest.encrypted {
                    format!("{} is encrypted", newest.id)
                } else {
                    format!("{} is NOT encrypted", newest.id)
                },
            )
            .threshold("encrypted"),
        );
    }
    out
}

/// Manual snapshots against the quota. Pure.
pub fn judge_quota(name: &str, used: u64, quota: u64, warn: f64) -> CheckResult {
    let share = used as f64 / quota.max(1) as f64;
    let status = if used >= quota {
        CheckStatus::Fail
    } else if share > warn {
        CheckStatus::Warn
    } else {
        CheckStatus::Pass
    };
    CheckResult::new(
        format!("{name}/quota"),
        status,
        format!("{used} of {quota} manual snapshots in the region"),
    )
    .number(used as f64)
    .threshold(format!("warn above {:.0}%, fail at {quota}", warn * 100.0))
}

impl VerifyJob {
    fn target(&self) -> Target {
        Target {
            region: self.spec.region.as_ref().map(|r| r.to_string()),
        }
    }

    /// The restore test; the instance it makes is deleted by the caller.
    async fn restore(
        &self,
        ctx: &RunContext,
        snapshot: &str,
        restored: &str,
        results: &mut Vec<CheckResult>,
    ) -> Result<(), JobError> {
        let target = self.target();
        let class = self.spec.restore_class.as_deref().unwrap_or("db.t3.micro");
        let tags = vec![
            ("created-by".to_string(), "runbookd".to_string()),
            ("runbookd-job".to_string(), ctx.job.clone()),
            ("runbookd-purpose".to_string(), "restore-test".to_string()),
        ];
        let started = self.clock.now();
        procedure::step(
            ctx,
            "restore-snapshot",
            &format!("rds:{restored}"),
            &format!(
                "rds:RestoreDBInstanceFromDBSnapshot DBSnapshotIdentifier={snapshot} DBInstanceIdentifier={restored} DBInstanceClass={class} PubliclyAccessible=false Tags=created-by=runbookd,runbookd-purpose=restore-test"
            ),
            || async {
                procedure::aws(Duration::from_secs(1), &ctx.cancel, || {
                    self.adapters
                        .rds
                        .restore_instance(&target, snapshot, restored, class, &tags)
                })
                .await
                ?;
                Ok(Done::new((), format!("restoring {snapshot} as {restored}"))
                    .payload(serde_json::json!({"instance": restored, "snapshot": snapshot})))
            },
        )
        .await?;
        let timeout = self
            .spec
            .restore_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(3600));
        let every = self
            .spec
            .poll
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(30));
        let endpoint = procedure::step(
            ctx,
            "wait-restore",
            &format!("rds:{restored}"),
            &format!("rds:DescribeDBInstances DBInstanceIdentifier={restored} until available"),
            || async {
                let endpoint =
                    procedure::wait_for(ctx, "the restored instance", every, timeout, || async {
                        let i = self
                            .adapters
                            .rds
                            .instance(&target, restored)
                            .await
                            .and_then(|i| i.belonging_to(restored))?;
                        match i.status.as_str() {
                            "available" => Ok(Poll::Done(i.endpoint.unwrap_or_default())),
                            "failed" | "incompatible-restore" | "incompatible-parameters" => {
                                Err(StepError::found(format!("the restore ended {}", i.status)))
                            }
                            other => Ok(Poll::Waiting(other.to_string())),
                        }
                    })
                    .await?;
                Ok(Done::new(
                    endpoint.clone(),
                    format!("available at {endpoint}"),
                ))
            },
        )
        .await?;
        let took = (self.clock.now() - started).to_std().unwrap_or_default();
        results.push(
            CheckResult::new(
                "restore/duration",
                CheckStatus::Pass,
                format!("{snapshot} restored in {}", fmt_age(took)),
            )
            .number(took.as_secs_f64()),
        );
        let (Some(endpoint), Some(list)) = (endpoint, &self.spec.restore_checks) else {
            return Ok(());
        };
        let adjusted: Vec<CheckConfig> = list
            .value
            .iter()
            .filter_map(|c| {
                let sql = c.spec.downcast::<SqlCheck>()?;
                let mut sql: SqlCheck = sql.clone();
                sql.database_url =
                    SecretUrl::new(sql.database_url.expose().replace("{endpoint}", &endpoint));
                Some(CheckConfig {
                    name: format!("restore/{}", c.name),
                    spec: Arc::new(sql),
                    ..c.clone()
                })
            })
            .collect();
        let cctx = CheckContext::new(self.clock.now(), self.adapters.clone())
            .with_redactor(ctx.redactor.clone());
        results.extend(checks::run_all(&adjusted, &cctx, 4).await);
        Ok(())
    }
}

#[async_trait]
impl Job for VerifyJob {
    async fn run(&self, ctx: &RunContext) -> Result<Outcome, JobError> {
        let instance = self.spec.instance.as_str();
        let target = self.target();
        let max_age = self
            .spec
            .max_age
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(86400));
        let mut results: Vec<CheckResult> = Vec::new();
        let automated = procedure::step(
            ctx,
            "list-automated-snapshots",
            &format!("rds:{instance}"),
            &format!(
                "rds:DescribeDBSnapshots DBInstanceIdentifier={instance} SnapshotType=automated"
            ),
            || async {
                let list = procedure::aws(Duration::from_secs(1), &ctx.cancel, || {
                    self.adapters.rds.automated_snapshots(&target, instance)
                })
                .await?;
                // Another instance's snapshot must never pass for this one's.
                let answered = list.len();
                let list = owned_by(list, instance);
                let n = list.len();
                let other = match answered - n {
                    0 => String::new(),
                    k => format!("; {k} of other instances ignored"),
                };
                Ok(Done::new(list, format!("{n} automated snapshot(s){other}")))
            },
        )
        .await?;
        if let Some(list) = &automated {
            results.extend(judge_backup(
                "backup",
                self.clock.now(),
                list,
                max_age,
                self.spec.require_encrypted,
            ));
        }
        let used = procedure::step(
            ctx,
            "count-manual-snapshots",
            "rds:region",
            "rds:DescribeDBSnapshots SnapshotType=manual (the whole region)",
            || async {
                let list = procedure::aws(Duration::from_secs(1), &ctx.cancel, || {
                    self.adapters.rds.manual_snapshots(&target, None)
                })
                .await?;
                let n = list.len() as u64;
                Ok(Done::new(n, format!("{n} manual snapshot(s)")))
            },
        )
        .await?;
        if let Some(used) = used {
            results.push(judge_quota(
                "backup",
                used,
                self.spec
                    .manual_snapshot_quota
                    .map(|q| q.value)
                    .unwrap_or(100),
                self.spec.quota_warn.map(|w| w.value).unwrap_or(0.8),
            ));
        }
        if self.spec.restore_test {
            let newest = automated
                .as_ref()
                .and_then(|l| {
                    l.iter()
                        .filter(|s| s.status == "available")
                        .max_by_key(|s| s.created)
                })
                .map(|s| s.id.clone())
                .unwrap_or_else(|| "<newest automated snapshot>".to_string());
            let restored = format!("{instance}-verify-{}", ctx.run_id).to_lowercase();
            let tested = self.restore(ctx, &newest, &restored, &mut results).await;
            // Whatever happened (even a cancel), the throwaway instance goes.
            let gone = procedure::cleanup(
                ctx,
                "delete-restored",
                &format!("rds:{restored}"),
                &format!(
                    "rds:DeleteDBInstance DBInstanceIdentifier={restored} SkipFinalSnapshot=true"
                ),
                Duration::from_secs(120),
                || async {
                    match self.adapters.rds.delete_instance(&target, &restored).await {
                        Ok(()) => Ok("deletion started".to_string()),
                        Err(e) if e.kind == crate::adapters::aws::AwsErrorKind::NotFound => {
                            Ok("never created".to_string())
                        }
                        Err(e) => Err(e.into()),
                    }
                },
            )
            .await;
            if let Err(e) = tested {
                results.push(CheckResult::error("restore", e.to_string()));
                if matches!(e, JobError::Cancelled) {
                    gone?;
                    return Err(JobError::Cancelled);
                }
            }
            gone?;
        }
        let (ok, summary) = checks::summarize(&results);
        Ok(Outcome {
            summary: Some(if ctx.dry_run {
                "dry run: nothing read or changed".to_string()
            } else {
                summary.clone()
            }),
            failure: (!ok).then_some(summary),
            records: results.into_iter().map(Record::Check).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn snap(status: &str, created: &str, encrypted: bool) -> DbSnapshot {
        DbSnapshot {
            id: format!("rds:db-{created}"),
            status: status.into(),
            created: Some(t(created)),
            encrypted,
            ..Default::default()
        }
    }

    #[test]
    fn backup_verdicts_table() {
        let now = t("2026-11-30T09:00:00Z");
        let day = Duration::from_secs(86400);
        // (snapshots, require_encrypted, expected statuses)
        let cases: &[(Vec<DbSnapshot>, bool, &[CheckStatus])] = &[
            (
                vec![snap("available", "2026-11-30T03:00:00Z", true)],
                true,
                &[CheckStatus::Pass, CheckStatus::Pass],
            ),
            (
                vec![snap("available", "2026-11-28T03:00:00Z", true)],
                true,
                &[CheckStatus::Fail, CheckStatus::Pass],
            ),
            (
                vec![snap("creating", "2026-11-30T03:00:00Z", true)],
                false,
                &[CheckStatus::Fail],
            ),
            (
                vec![snap("available", "2026-11-30T03:00:00Z", false)],
                true,
                &[CheckStatus::Pass, CheckStatus::Fail],
            ),
            (vec![], true, &[CheckStatus::Fail]),
            (
                vec![
                    snap("available", "2026-11-28T03:00:00Z", true),
                    snap("available", "2026-11-30T03:00:00Z", true),
                ],
                true,
                &[CheckStatus::Pass, CheckStatus::Pass],
            ),
        ];
        for (snaps, enc, want) in cases {
            let got: Vec<CheckStatus> = judge_backup("b", now, snaps, day, *enc)
                .iter()
                .map(|r| r.status)
                .collect();
            assert_eq!(&got, want, "{snaps:?}");
        }
    }

    #[test]
    fn quota_verdicts() {
        assert_eq!(judge_quota("b", 10, 100, 0.8).status, CheckStatus::Pass);
        assert_eq!(judge_quota("b", 85, 100, 0.8).status, CheckStatus::Warn);
        assert_eq!(judge_quota("b", 100, 100, 0.8).status, CheckStatus::Fail);
    }
}
