//! `kind: snapshot_migrate`: the runbook's "Database Migration", snapshot
//! first, always.
//!
//! 1. The RDS instance must be `available`.
//! 2. A manual snapshot `<prefix>-YYYYMMDD-HHMMSS`, tagged as runbookd's.
//! 3. Wait until it is `available`; a failed snapshot, or none within
//!    `snapshot_timeout`, stops here: no snapshot, no migration, ever.
//! 4. The migration runs as a Kubernetes Job built from the API
//!    deployment's container (image, env, mounts, service account), with
//!    `backoffLimit: 0`, `restartPolicy: Never` and `activeDeadlineSeconds`;
//!    its `Complete` or `Failed` condition is waited for and its logs are
//!    copied into the run's log.
//! 5. The `verify` checks run.
//! 6. This job's own older snapshots beyond `keep` are deleted: only manual
//!    ones tagged by runbookd for this job, never automated ones, never
//!    another tool's. A failed migration prunes nothing.
//!
//! Once the snapshot exists, a failure says which snapshot to restore from,
//! with the command.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job as KubeJob;
use serde::Deserialize;

use super::procedure::{self, Done, Poll, StepError};
use super::rollout::deployment_path;
use super::{ExecEnv, Job, JobError, JobKind, Outcome, RunContext};
use crate::adapters::Adapters;
use crate::adapters::aws::{DbSnapshot, Target, owned_by};
use crate::checks::{self, CheckConfig, CheckContext};
use crate::clock::Clock;
use crate::config::JobSpec;
use crate::model::{Dur, Record};
use crate::yaml::{At, Diags, Ident, Text};

pub const DEFAULT_PREFIX: &str = "runbookd-premigrate";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateSpec {
    /// The RDS instance. Required.
    pub instance: Ident,
    /// AWS region. Default: the standard chain.
    pub region: Option<Ident>,
    /// Snapshot names are `<prefix>-YYYYMMDD-HHMMSS`. Default
    /// `runbookd-premigrate`.
    pub snapshot_prefix: Option<Ident>,
    /// How long the snapshot may take. Default `30m`.
    pub snapshot_timeout: Option<Dur>,
    /// This job's snapshots kept after a successful migration. Default 5.
    pub keep: Option<At<usize>>,
    /// The deployment whose container runs the migration. Required.
    pub deployment: Ident,
    /// Default `default`.
    pub namespace: Option<Ident>,
    /// The container to copy. Default: the pod's first.
    pub container: Option<Ident>,
    /// The migration. Default `["npm", "run", "migrate"]`.
    pub command: Option<At<Vec<Text>>>,
    /// The Job's `activeDeadlineSeconds`. Default `30m`.
    pub migration_timeout: Option<Dur>,
    /// How often snapshots and the Job are looked at. Default `10s`.
    pub poll: Option<Dur>,
    /// Checks that must pass after the migration. Default: none.
    pub verify: Option<At<Vec<CheckConfig>>>,
}

impl MigrateSpec {
    fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }

    fn prefix(&self) -> &str {
        self.snapshot_prefix.as_deref().unwrap_or(DEFAULT_PREFIX)
    }

    fn command(&self) -> Vec<String> {
        match &self.command {
            Some(c) => c.value.iter().map(|t| t.to_string()).collect(),
            None => vec!["npm".into(), "run".into(), "migrate".into()],
        }
    }
}

/// An identifier RDS would refuse for a snapshot, and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{id}` is not an RDS snapshot identifier ({rule})")]
pub struct BadSnapshotId {
    pub id: String,
    pub rule: &'static str,
}

/// Why an RDS snapshot identifier is not allowed, if it is not: 1-255
/// letters, digits and hyphens, a letter first, no `--`, no `-` at the end.
pub fn check_snapshot_id(id: &str) -> Result<(), BadSnapshotId> {
    let why = if id.is_empty() || id.len() > 255 {
        Some("1 to 255 characters")
    } else if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("a letter first")
    } else if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Some("letters, digits and hyphens only")
    } else if id.contains("--") {
        Some("no two hyphens in a row")
    } else if id.ends_with('-') {
        Some("no hyphen at the end")
    } else {
        None
    };
    match why {
        Some(rule) => Err(BadSnapshotId {
            id: id.to_string(),
            rule,
        }),
        None => Ok(()),
    }
}

/// `<prefix>-YYYYMMDD-HHMMSS`, checked.
pub fn snapshot_id(prefix: &str, at: DateTime<Utc>) -> Result<String, BadSnapshotId> {
    let id = format!("{prefix}-{}", at.format("%Y%m%d-%H%M%S")).to_lowercase();
    check_snapshot_id(&id).map(|_| id)
}

/// The tags that make a snapshot this job's.
pub fn ownership(job: &str) -> Vec<(String, String)> {
    vec![
        ("created-by".into(), "runbookd".into()),
        ("runbookd-job".into(), job.into()),
    ]
}

/// Which of `snapshots` to delete so `keep` of this job's remain: only
/// manual ones tagged by runbookd for `job`, oldest first. Pure.
pub fn to_prune(snapshots: &[DbSnapshot], job: &str, keep: usize) -> Vec<String> {
    let mut ours: Vec<&DbSnapshot> = snapshots
        .iter()
        .filter(|s| s.manual)
        .filter(|s| s.tag("created-by") == Some("runbookd") && s.tag("runbookd-job") == Some(job))
        .collect();
    ours.sort_by_key(|s| std::cmp::Reverse(s.created));
    ours.iter().skip(keep).map(|s| s.id.clone()).collect()
}

/// Why the migration Job cannot be made from the deployment.
#[derive(Debug, thiserror::Error)]
pub enum NoMigrationJob {
    #[error("the deployment has no pod spec")]
    NoPodSpec,
    #[error("the deployment has no container `{0}`")]
    NoSuchContainer(String),
    #[error("the deployment has no container")]
    NoContainer,
    #[error("build the migration Job: {0}")]
    Build(#[from] serde_json::Error),
}

/// The migration Job: the deployment's container (image, env, mounts,
/// service account) running `command`, once, with a deadline. Pure.
pub fn migration_job(
    dep: &Deployment,
    container: Option<&str>,
    name: &str,
    command: &[String],
    deadline: Duration,
    labels: BTreeMap<String, String>,
) -> Result<KubeJob, NoMigrationJob> {
    let pod = dep
        .spec
        .template
        .spec
        .as_ref()
        .ok_or(NoMigrationJob::NoPodSpec)?;
    let c = match container {
        Some(n) => pod
            .containers
            .iter()
            .find(|c| c.name == n)
            .ok_or_else(|| NoMigrationJob::NoSuchContainer(n.to_string()))?,
        None => pod.containers.first().ok_or(NoMigrationJob::NoContainer)?,
    };
    let job = serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline.as_secs().max(1),
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": pod.service_account_name,
                    "imagePullSecrets": pod.image_pull_secrets,
                    "securityContext": pod.security_context,
                    "volumes": pod.volumes,
                    "containers": [{
                        "name": "migrate",
                        "image": c.image,
                        "command": command,
                        "env": c.env,
                        "envFrom": c.env_from,
                        "volumeMounts": c.volume_mounts,
                        "securityContext": c.security_context,
                        "resources": c.resources,
                    }],
                },
            },
        },
    });
    Ok(serde_json::from_value(strip_nulls(job))?)
}

fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(strip_nulls).collect())
        }
        other => other,
    }
}

/// A Kubernetes name: lowercase, at most 63 characters.
fn kube_name(s: &str) -> String {
    let mut n: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    n.truncate(63);
    n.trim_end_matches('-').to_string()
}

impl JobSpec for MigrateSpec {
    fn validate(&self, _job: &str, diags: &mut Diags) {
        if let Some(p) = &self.snapshot_prefix
            && !p.trim().is_empty()
        {
            let sample = format!("{}-20261130-090000", p.as_str());
            if let Err(e) = check_snapshot_id(&sample) {
                diags.at(p.at(), format!("snapshot_prefix: {e}"));
            }
        }
        if let Some(k) = self.keep
            && k.value == 0
        {
            diags.at(
                k.at,
                "keep must be at least 1: the snapshot just made is kept",
            );
        }
        if let Some(c) = &self.command
            && c.value.is_empty()
        {
            diags.at(
                c.at,
                "command must name the migration, e.g. [npm, run, migrate]",
            );
        }
        if let Some(v) = &self.verify {
            checks::validate_list(&v.value, v.at, diags);
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl JobKind for MigrateSpec {
    fn executor(&self, env: &ExecEnv) -> Arc<dyn Job> {
        Arc::new(MigrateJob {
            spec: self.clone(),
            adapters: env.adapters.clone(),
            clock: env.clock.clone(),
        })
    }
}

#[derive(Debug)]
pub struct MigrateJob {
    spec: MigrateSpec,
    adapters: Arc<Adapters>,
    clock: Arc<dyn Clock>,
}

impl MigrateJob {
    fn target(&self) -> Target {
        Target {
            region: self.spec.region.as_ref().map(|r| r.to_string()),
        }
    }

    fn poll(&self) -> Duration {
        self.spec
            .poll
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10))
    }

    /// Steps 4 to 6, once the snapshot exists.
    async fn migrate(
        &self,
        ctx: &RunContext,
        snapshot: &str,
        records: &mut Vec<Record>,
    ) -> Result<String, JobError> {
        let (ns, dep_name) = (self.spec.namespace(), self.spec.deployment.as_str());
        let command = self.spec.command();
        let deadline = self
            .spec
            .migration_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(1800));
        let job_name = kube_name(&format!("{}-migrate-{}", ctx.job, ctx.run_id));
        let labels: BTreeMap<String, String> = [
            (
                "app.kubernetes.io/managed-by".to_string(),
                "runbookd".to_string(),
            ),
            ("runbookd/job".to_string(), kube_name(&ctx.job)),
            ("runbookd/run".to_string(), ctx.run_id.to_string()),
        ]
        .into();
        let job = procedure::step(
            ctx,
            "create-migration-job",
            &format!("job/{job_name} in {ns}"),
            &format!(
                "GET {}, then POST /apis/batch/v1/namespaces/{ns}/jobs {job_name}: its container's image and env, command {command:?}, backoffLimit 0, restartPolicy Never, activeDeadlineSeconds {}",
                deployment_path(ns, dep_name),
                deadline.as_secs()
            ),
            || async {
                let dep = self
                    .adapters
                    .cluster
                    .deployment(ns, dep_name)
                    .await
                    ?
                    .ok_or_else(|| StepError::found(format!("no deployment `{dep_name}` in namespace `{ns}`")))?;
                let job = migration_job(
                    &dep,
                    self.spec.container.as_deref(),
                    &job_name,
                    &command,
                    deadline,
                    labels.clone(),
                )
                .map_err(|e| StepError::found(e.to_string()))?;
                let image = job
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref())
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.image.clone())
                    .unwrap_or_default();
                self.adapters
                    .cluster
                    .create_job(ns, &job)
                    .await
                    ?;
                Ok(Done::new(job_name.clone(), format!("Job {job_name} created from {image}"))
                    .payload(serde_json::json!({"job": job_name, "image": image})))
            },
        )
        .await?;
        if let Some(job) = &job {
            let outcome = procedure::step(
                ctx,
                "wait-migration",
                &format!("job/{job} in {ns}"),
                &format!("GET /apis/batch/v1/namespaces/{ns}/jobs/{job} until Complete or Failed"),
                || async {
                    let r = procedure::wait_for(
                        ctx,
                        "the migration Job",
                        self.poll(),
                        // The cluster enforces the deadline; this only
                        // covers a cluster that does not report it.
                        deadline + (deadline / 2).min(Duration::from_secs(60)),
                        || async {
                            let j =
                                self.adapters.cluster.job(ns, job).await?.ok_or_else(|| {
                                    StepError::found(format!("Job {job} is gone"))
                                })?;
                            job_state(&j)
                        },
                    )
                    .await;
                    // The logs, whatever the outcome.
                    match self.adapters.cluster.job_logs(ns, job, 500).await {
                        Ok(logs) => {
                            for l in logs.lines() {
                                ctx.log.info(&format!("migration | {l}"));
                            }
                        }
                        Err(e) => ctx
                            .log
                            .info(&format!("cannot read the migration's logs: {e}")),
                    }
                    r.map(|how| Done::new((), how))
                },
            )
            .await;
            // However the step saw it end (the wait may notice the cancel
            // first and fail), a cancelled run says what it left behind.
            if outcome.is_err() && ctx.cancel.is_cancelled() {
                // Stopping runbookd does not stop the cluster's Job, and a
                // rerun would start a second migration beside it.
                ctx.log.record(&format!(
                    "cancelled while the migration ran: Job {job} in {ns} is still running in the cluster and was not deleted (a half-applied migration is worse than a finished one); watch it with `kubectl -n {ns} get job {job}` before rerunning. Snapshot {snapshot} was taken first."
                ));
            }
            outcome?;
        }
        if let Some(list) = &self.spec.verify {
            let names: Vec<&str> = list.value.iter().map(|c| c.name.as_str()).collect();
            let results = procedure::step(
                ctx,
                "verify",
                &format!("{} check(s)", list.value.len()),
                &format!("checks {}", names.join(", ")),
                || async {
                    let cctx = CheckContext::new(self.clock.now(), self.adapters.clone())
                        .with_redactor(ctx.redactor.clone());
                    let results = checks::run_all(&list.value, &cctx, 8).await;
                    let (ok, summary) = checks::summarize(&results);
                    records.extend(results.iter().cloned().map(Record::Check));
                    if ok {
                        Ok(Done::new((), summary))
                    } else {
                        Err(StepError::found(format!("verification failed: {summary}")))
                    }
                },
            )
            .await;
            results?;
        }
        Ok(format!(
            "snapshot {snapshot} taken, migration {} and verified",
            job.map(|j| format!("Job {j} completed"))
                .unwrap_or_else(|| "run".into())
        ))
    }

    async fn prune(&self, ctx: &RunContext, just_made: &str) -> Result<(), JobError> {
        let instance = self.spec.instance.as_str();
        let keep = self.spec.keep.map(|k| k.value).unwrap_or(5);
        let target = self.target();
        let doomed = procedure::step(
            ctx,
            "find-old-snapshots",
            &format!("rds:{instance}"),
            &format!(
                "rds:DescribeDBSnapshots DBInstanceIdentifier={instance} SnapshotType=manual (this job's, beyond the newest {keep})"
            ),
            || async {
                let all = procedure::aws(Duration::from_secs(1), &ctx.cancel, || {
                    self.adapters.rds.manual_snapshots(&target, Some(instance))
                })
                .await
                ?;
                // Another instance's snapshots are never this job's to prune.
                let all = owned_by(all, instance);
                let doomed: Vec<String> = to_prune(&all, &ctx.job, keep)
                    .into_iter()
                    .filter(|id| id != just_made)
                    .collect();
                let detail = format!("{} to delete", doomed.len());
                Ok(Done::new(doomed.clone(), detail).payload(serde_json::json!({"delete": doomed})))
            },
        )
        .await?
        .unwrap_or_default();
        for id in doomed {
            procedure::step(
                ctx,
                "delete-old-snapshot",
                &format!("rds:{id}"),
                &format!("rds:DeleteDBSnapshot DBSnapshotIdentifier={id}"),
                || async {
                    procedure::aws(Duration::from_secs(1), &ctx.cancel, || {
                        self.adapters.rds.delete_snapshot(&target, &id)
                    })
                    .await?;
                    Ok(Done::new((), "deleted"))
                },
            )
            .await?;
        }
        Ok(())
    }
}

/// A Job's verdict from its conditions: done, still going (with how far),
/// or failed (with why).
fn job_state(j: &KubeJob) -> Result<Poll<String>, StepError> {
    let conditions = j
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if conditions
        .iter()
        .any(|c| c.status == "True" && c.type_ == "Complete")
    {
        return Ok(Poll::Done("the migration Job completed".to_string()));
    }
    if let Some(c) = conditions
        .iter()
        .find(|c| c.status == "True" && c.type_ == "Failed")
    {
        return Err(StepError::found(format!(
            "the migration Job failed: {}: {}",
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default()
        )));
    }
    Ok(Poll::Waiting(format!(
        "{} pod(s) active",
        j.status.as_ref().and_then(|s| s.active).unwrap_or(0)
    )))
}

#[async_trait]
impl Job for MigrateJob {
    async fn run(&self, ctx: &RunContext) -> Result<Outcome, JobError> {
        let instance = self.spec.instance.as_str();
        let target = self.target();
        procedure::step(
            ctx,
            "check-instance",
            &format!("rds:{instance}"),
            &format!("rds:DescribeDBInstances DBInstanceIdentifier={instance}"),
            || async {
                let i = procedure::aws(Duration::from_secs(1), &ctx.cancel, || {
                    self.adapters.rds.instance(&target, instance)
                })
                .await
                .and_then(|i| i.belonging_to(instance))?;
                if i.status != "available" {
                    return Err(StepError::found(format!(
                        "instance {instance} is {}, not available: no snapshot, no migration",
                        i.status
                    )));
                }
                Ok(Done::new((), "available"))
            },
        )
        .await?;
        let id = snapshot_id(self.spec.prefix(), self.clock.now())
            .map_err(|e| JobError::Failed(e.to_string()))?;
        let mut tags = ownership(&ctx.job);
        tags.push(("runbookd-run".into(), ctx.run_id.to_string()));
        procedure::step(
            ctx,
            "create-snapshot",
            &format!("rds:{instance}"),
            &format!(
                "rds:CreateDBSnapshot DBInstanceIdentifier={instance} DBSnapshotIdentifier={id} Tags={}",
                tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
            ),
            || async {
                let s = procedure::aws(Duration::from_secs(1), &ctx.cancel, || {
                    self.adapters.rds.create_snapshot(&target, instance, &id, &tags)
                })
                .await
                ?;
                Ok(Done::new((), format!("snapshot {} is {}", s.id, s.status))
                    .payload(serde_json::json!({"snapshot": s.id})))
            },
        )
        .await?;
        let timeout = self
            .spec
            .snapshot_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(1800));
        procedure::step(
            ctx,
            "wait-snapshot",
            &format!("rds:{id}"),
            &format!("rds:DescribeDBSnapshots DBSnapshotIdentifier={id} until available"),
            || async {
                procedure::wait_for(ctx, "the snapshot", self.poll(), timeout, || async {
                    let s = self
                        .adapters
                        .rds
                        .snapshot(&target, &id)
                        .await?
                        .ok_or_else(|| StepError::found(format!("snapshot {id} is gone")))?;
                    match s.status.as_str() {
                        "available" => Ok(Poll::Done(())),
                        "creating" | "pending" | "copying" => Ok(Poll::Waiting(s.status)),
                        other => Err(StepError::found(format!(
                            "snapshot {id} is {other}: no snapshot, no migration"
                        ))),
                    }
                })
                .await
                .map(|()| Done::new((), "available"))
            },
        )
        .await?;
        let mut records = Vec::new();
        match self.migrate(ctx, &id, &mut records).await {
            // Pruning is after the change: its failure must not read as the
            // migration's, and above all must not advise a restore, which
            // would lose every write since the snapshot.
            Ok(summary) => match self.prune(ctx, &id).await {
                Ok(()) => Ok(Outcome {
                    summary: Some(if ctx.dry_run {
                        format!("dry run: nothing changed; would snapshot {instance} and migrate")
                    } else {
                        summary
                    }),
                    records,
                    ..Default::default()
                }),
                Err(JobError::Cancelled) => Err(JobError::Cancelled),
                Err(JobError::Failed(cause)) => Ok(Outcome {
                    failure: Some(format!(
                        "{summary}; only pruning old snapshots failed: {cause}. The migration stands; do not restore. Old snapshots are kept: once the cause is fixed, the next run prunes them, or delete them with `aws rds delete-db-snapshot --db-snapshot-identifier ID`."
                    )),
                    records,
                    ..Default::default()
                }),
            },
            Err(JobError::Cancelled) => Err(JobError::Cancelled),
            Err(JobError::Failed(cause)) => Ok(Outcome {
                failure: Some(format!(
                    "{cause}. The database was snapshotted first: restore from snapshot {id} with `aws rds restore-db-instance-from-db-snapshot --db-instance-identifier {instance}-restored --db-snapshot-identifier {id}`"
                )),
                records,
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_follow_the_rds_rules() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T09:05:07Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            snapshot_id(DEFAULT_PREFIX, at).unwrap(),
            "runbookd-premigrate-20261130-090507"
        );
        for (id, why) in [
            ("1abc", "a letter first"),
            ("a--b", "two hyphens"),
            ("ab-", "at the end"),
            ("a_b", "letters, digits and hyphens"),
            ("", "1 to 255"),
        ] {
            assert!(
                check_snapshot_id(id).unwrap_err().to_string().contains(why),
                "{id}"
            );
        }
        assert!(snapshot_id("pre--x", at).is_err());
    }

    fn snap(id: &str, manual: bool, job: Option<&str>, created: &str) -> DbSnapshot {
        DbSnapshot {
            id: id.into(),
            status: "available".into(),
            created: Some(DateTime::parse_from_rfc3339(created).unwrap().to_utc()),
            manual,
            tags: job.map(ownership).unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn pruning_touches_only_this_jobs_manual_snapshots() {
        let all = [
            snap("ours-1", true, Some("migrate"), "2026-11-01T00:00:00Z"),
            snap("ours-2", true, Some("migrate"), "2026-11-02T00:00:00Z"),
            snap("ours-3", true, Some("migrate"), "2026-11-03T00:00:00Z"),
            snap(
                "other-job",
                true,
                Some("something-else"),
                "2026-10-01T00:00:00Z",
            ),
            snap("by-hand", true, None, "2026-09-01T00:00:00Z"),
            snap("rds:auto", false, Some("migrate"), "2026-08-01T00:00:00Z"),
        ];
        assert_eq!(to_prune(&all, "migrate", 2), vec!["ours-1"]);
        assert_eq!(to_prune(&all, "migrate", 5), Vec::<String>::new());
        assert_eq!(to_prune(&all, "migrate", 1), vec!["ours-2", "ours-1"]);
    }

    #[test]
    fn the_migration_job_copies_the_container_and_runs_once() {
        let dep: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-deployment"},
            "spec": {"selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}}, "spec": {
                        "serviceAccountName": "api",
                        "containers": [{"name": "api", "image": "flexoraa/api:1.4.2",
                                        "env": [{"name": "NODE_ENV", "value": "production"}],
                                        "envFrom": [{"secretRef": {"name": "api-secrets"}}]}]}}}
        }))
        .unwrap();
        let job = migration_job(
            &dep,
            None,
            "migrate-7",
            &["npm".into(), "run".into(), "migrate".into()],
            Duration::from_secs(1800),
            BTreeMap::from([("runbookd/run".to_string(), "7".to_string())]),
        )
        .unwrap();
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(v["spec"]["backoffLimit"], 0);
        assert_eq!(v["spec"]["activeDeadlineSeconds"], 1800);
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["serviceAccountName"], "api");
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "flexoraa/api:1.4.2");
        assert_eq!(c["command"], serde_json::json!(["npm", "run", "migrate"]));
        assert_eq!(c["envFrom"][0]["secretRef"]["name"], "api-secrets");
        assert!(
            migration_job(
                &dep,
                Some("nope"),
                "x",
                &[],
                Duration::from_secs(1),
                BTreeMap::new()
            )
            .is_err()
        );
    }
}
