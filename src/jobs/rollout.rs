//! `kind: rollout`: the runbook's manual deployment operations, as
//! `kubectl` does them.
//!
//! - `restart`: patch `spec.template.metadata.annotations
//!   ["kubectl.kubernetes.io/restartedAt"]` (`kubectl rollout restart`);
//! - `undo`: put back the pod template of the previous revision's
//!   ReplicaSet (`kubectl rollout undo`);
//! - `scale`: set `spec.replicas` (`kubectl scale`); to 0 (the runbook's
//!   maintenance mode) only with `--confirm`.
//!
//! Each then waits for the rollout the way `kubectl rollout status` decides
//! ([`rollout_state`]). A paused deployment, or one still rolling out, is
//! refused before anything is changed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::SecondsFormat;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use serde::Deserialize;

use super::procedure::{self, Done, Poll, StepError};
use super::{ExecEnv, Job, JobError, JobKind, Outcome, RunContext};
use crate::adapters::kube::ClusterApi;
use crate::clock::Clock;
use crate::config::JobSpec;
use crate::model::Dur;
use crate::yaml::{At, Diags, Ident};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Restart,
    Undo,
    Scale,
}

crate::words! { Action { Restart = "restart", Undo = "undo", Scale = "scale" } }

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// `restart`, `undo` or `scale`. Required.
    pub action: At<Action>,
    /// The deployment. Required.
    pub deployment: Ident,
    /// Default `default`.
    pub namespace: Option<Ident>,
    /// `scale` only, and required there.
    pub replicas: Option<At<i32>>,
    /// How long the rollout may take. Default `10m`. (`timeout` is the
    /// whole run's.)
    pub rollout_timeout: Option<Dur>,
    /// How often the rollout is looked at. Default `2s`.
    pub poll: Option<Dur>,
}

impl RolloutSpec {
    fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

impl JobSpec for RolloutSpec {
    fn validate(&self, _job: &str, diags: &mut Diags) {
        match (self.action.value, &self.replicas) {
            (Action::Scale, None) => diags.at(self.action.at, "scale needs `replicas`"),
            (Action::Scale, Some(r)) if r.value < 0 => diags.at(r.at, "replicas must be 0 or more"),
            (Action::Restart | Action::Undo, Some(r)) => {
                diags.at(r.at, "`replicas` is for `action: scale`")
            }
            _ => {}
        }
    }

    /// Scaling to 0 takes the API down: it must be asked for in so many
    /// words.
    fn confirmation(&self) -> Option<String> {
        let zero =
            self.action.value == Action::Scale && self.replicas.is_some_and(|r| r.value == 0);
        zero.then(|| {
            format!(
                "scaling {} to 0 replicas (maintenance mode) takes the API down",
                self.deployment
            )
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl JobKind for RolloutSpec {
    fn executor(&self, env: &ExecEnv) -> Arc<dyn Job> {
        Arc::new(RolloutJob {
            spec: self.clone(),
            cluster: env.adapters.cluster.clone(),
            clock: env.clock.clone(),
        })
    }
}

#[derive(Debug)]
pub struct RolloutJob {
    spec: RolloutSpec,
    cluster: Arc<dyn ClusterApi>,
    clock: Arc<dyn Clock>,
}

/// Where a rollout stands, as `kubectl rollout status` reads it. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    Done(String),
    Progressing(String),
    Failed(String),
}

/// `generation`: the deployment's generation after our change; a status
/// that has not observed it says nothing yet.
pub fn rollout_state(dep: &Deployment, generation: i64) -> RolloutState {
    let Some(status) = &dep.status else {
        return RolloutState::Progressing("no status yet".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return RolloutState::Progressing(
            "waiting for the deployment controller to see the change".into(),
        );
    }
    if let Some(c) = status.conditions.iter().flatten().find(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return RolloutState::Failed(format!(
            "ProgressDeadlineExceeded: {}",
            c.message.clone().unwrap_or_default()
        ));
    }
    let want = dep.spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < want {
        return RolloutState::Progressing(format!("{updated} of {want} replicas updated"));
    }
    if replicas > updated {
        return RolloutState::Progressing(format!(
            "{} old replica(s) pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return RolloutState::Progressing(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    RolloutState::Done(format!("{updated}/{want} replicas updated and available"))
}

/// Why a deployment is not to be changed now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("the deployment is paused (kubectl rollout resume it first)")]
    Paused,
    #[error("a rollout is still in progress: {0}")]
    Progressing(String),
    #[error("the last rollout failed: {0}")]
    Failed(String),
}

/// Refuses what `kubectl` would not do blindly: a paused deployment, or one
/// that has not finished its last rollout.
pub fn ready_to_change(dep: &Deployment) -> Result<(), NotReady> {
    if dep.spec.paused == Some(true) {
        return Err(NotReady::Paused);
    }
    let generation = dep.metadata.generation.unwrap_or(0);
    match rollout_state(dep, generation) {
        RolloutState::Done(_) => Ok(()),
        RolloutState::Progressing(s) => Err(NotReady::Progressing(s)),
        RolloutState::Failed(s) => Err(NotReady::Failed(s)),
    }
}

/// Why there is no revision to undo to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoPrevious {
    #[error("the deployment has no revision annotation")]
    Unannotated,
    #[error("no revision before {0} to go back to")]
    First(i64),
}

/// What a deployment must be before a change. Undo only needs it not
/// paused, as `kubectl rollout undo`: it is the way out of a rollout that
/// is stuck or failed, so refusing those would refuse it when it is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    Settled,
    NotPaused,
    Nothing,
}

/// The API path of a deployment, for the calls a dry run prints.
pub fn deployment_path(namespace: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
}

/// The patch `kubectl rollout restart` sends.
pub fn restart_patch(at: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }}}}})
}

pub fn revision(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<i64> {
    meta.annotations
        .as_ref()?
        .get("deployment.kubernetes.io/revision")?
        .parse()
        .ok()
}

/// The ReplicaSet `kubectl rollout undo` goes back to: the newest revision
/// before the deployment's current one. Pure.
pub fn previous_revision<'a>(
    dep: &Deployment,
    sets: &'a [ReplicaSet],
) -> Result<&'a ReplicaSet, NoPrevious> {
    let current = revision(&dep.metadata).ok_or(NoPrevious::Unannotated)?;
    sets.iter()
        .filter_map(|rs| revision(&rs.metadata).map(|r| (r, rs)))
        .filter(|(r, rs)| *r < current && rs.spec.template.is_some())
        .max_by_key(|(r, _)| *r)
        .map(|(_, rs)| rs)
        .ok_or(NoPrevious::First(current))
}

/// The patch that puts back `rs`'s pod template (without the hash label
/// its ReplicaSet added).
pub fn undo_patch(rs: &ReplicaSet) -> serde_json::Value {
    let mut template = serde_json::to_value(&rs.spec.template).unwrap_or_default();
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(|l| l.as_object_mut())
    {
        labels.remove("pod-template-hash");
    }
    if let Some(t) = template.as_object_mut() {
        t.insert("$patch".into(), "replace".into());
    }
    serde_json::json!({"spec": {"template": template}})
}

impl RolloutJob {
    fn target(&self) -> String {
        format!(
            "deployment/{} in {}",
            self.spec.deployment,
            self.spec.namespace()
        )
    }

    async fn read(&self, ctx: &RunContext, guard: Guard) -> Result<Option<Deployment>, JobError> {
        let (ns, name) = (self.spec.namespace(), self.spec.deployment.as_str());
        procedure::step(
            ctx,
            "read-deployment",
            &self.target(),
            &format!("GET {}", deployment_path(ns, name)),
            || async {
                let dep = self.cluster.deployment(ns, name).await?.ok_or_else(|| {
                    StepError::found(format!("no deployment `{name}` in namespace `{ns}`"))
                })?;
                let refused = match guard {
                    Guard::Settled => ready_to_change(&dep).err(),
                    Guard::NotPaused if dep.spec.paused == Some(true) => Some(NotReady::Paused),
                    Guard::NotPaused | Guard::Nothing => None,
                };
                if let Some(e) = refused {
                    return Err(StepError::found(format!("refusing to change it: {e}")));
                }
                let detail = format!(
                    "generation {}, revision {}",
                    dep.metadata.generation.unwrap_or(0),
                    revision(&dep.metadata).unwrap_or(0)
                );
                Ok(Done::new(dep, detail))
            },
        )
        .await
    }

    async fn patch(
        &self,
        ctx: &RunContext,
        name: &str,
        patch: serde_json::Value,
    ) -> Result<Option<i64>, JobError> {
        let (ns, dep) = (self.spec.namespace(), self.spec.deployment.as_str());
        procedure::step(
            ctx,
            name,
            &self.target(),
            &format!(
                "PATCH {} (strategic merge) {patch}",
                deployment_path(ns, dep)
            ),
            || async {
                let after = self.cluster.patch_deployment(ns, dep, &patch).await?;
                let generation = after.metadata.generation.unwrap_or(0);
                Ok(Done::new(
                    generation,
                    format!("patched; generation {generation}"),
                ))
            },
        )
        .await
    }

    async fn wait(&self, ctx: &RunContext, generation: Option<i64>) -> Result<(), JobError> {
        let (ns, name) = (self.spec.namespace(), self.spec.deployment.as_str());
        let timeout = self
            .spec
            .rollout_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(600));
        let every = self
            .spec
            .poll
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(2));
        let generation = generation.unwrap_or(0);
        procedure::step(
            ctx,
            "wait-rollout",
            &self.target(),
            &format!(
                "GET {} every {} until rolled out (at most {})",
                deployment_path(ns, name),
                humantime::format_duration(every),
                humantime::format_duration(timeout)
            ),
            || async {
                let started = self.clock.now();
                let done = procedure::wait_for(ctx, "the rollout", every, timeout, || async {
                    let dep =
                        self.cluster.deployment(ns, name).await?.ok_or_else(|| {
                            StepError::found(format!("deployment `{name}` is gone"))
                        })?;
                    match rollout_state(&dep, generation) {
                        RolloutState::Done(s) => Ok(Poll::Done(s)),
                        RolloutState::Progressing(s) => Ok(Poll::Waiting(s)),
                        RolloutState::Failed(s) => Err(StepError::Found(s)),
                    }
                })
                .await?;
                let took = (self.clock.now() - started).num_milliseconds() as f64 / 1000.0;
                Ok(Done::new((), format!("{done} after {took:.1}s")))
            },
        )
        .await?;
        Ok(())
    }
}

/// Restarts a deployment the way `kubectl rollout restart` does and waits
/// for it; shared with secret rotation.
pub async fn restart_and_wait(
    ctx: &RunContext,
    cluster: &Arc<dyn ClusterApi>,
    clock: &Arc<dyn Clock>,
    namespace: &str,
    deployment: &str,
    timeout: Duration,
    poll: Duration,
) -> Result<(), JobError> {
    let job = RolloutJob {
        spec: RolloutSpec {
            action: At {
                value: Action::Restart,
                at: Default::default(),
            },
            deployment: Ident::new(deployment),
            namespace: Some(Ident::new(namespace)),
            replicas: None,
            rollout_timeout: Some(Dur(timeout)),
            poll: Some(Dur(poll)),
        },
        cluster: cluster.clone(),
        clock: clock.clone(),
    };
    let generation = job
        .patch(ctx, "restart", restart_patch(clock.now()))
        .await?;
    job.wait(ctx, generation).await
}

#[async_trait]
impl Job for RolloutJob {
    async fn run(&self, ctx: &RunContext) -> Result<Outcome, JobError> {
        // Checked before the claim by every way in; here again so no path
        // can miss it. A dry run changes nothing and needs no confirmation.
        if let Some(why) = self.spec.confirmation()
            && !ctx.confirmed
            && !ctx.dry_run
        {
            return Err(JobError::Failed(format!("{why}: run it with --confirm")));
        }
        let ns = self.spec.namespace();
        let summary = match self.spec.action.value {
            Action::Restart => {
                self.read(ctx, Guard::Settled).await?;
                let generation = self
                    .patch(ctx, "restart", restart_patch(self.clock.now()))
                    .await?;
                self.wait(ctx, generation).await?;
                format!("restarted {}", self.target())
            }
            Action::Undo => {
                let dep = self.read(ctx, Guard::NotPaused).await?;
                let patch = match &dep {
                    Some(dep) => {
                        let sets = procedure::step(
                            ctx,
                            "read-revisions",
                            &self.target(),
                            &format!("GET /apis/apps/v1/namespaces/{ns}/replicasets (owned by the deployment)"),
                            || async {
                                let sets = self
                                    .cluster
                                    .replica_sets(ns, dep)
                                    .await
                                    ?;
                                let prev = previous_revision(dep, &sets)
                                    .map_err(|e| StepError::found(e.to_string()))?
                                    .clone();
                                let r = revision(&prev.metadata).unwrap_or(0);
                                Ok(Done::new(prev, format!("going back to revision {r}"))
                                    .payload(serde_json::json!({"revision": r})))
                            },
                        )
                        .await?;
                        sets.map(|rs| undo_patch(&rs))
                    }
                    None => None,
                };
                let patch = patch.unwrap_or_else(|| {
                    serde_json::json!({"spec": {"template": "<the pod template of the previous revision's ReplicaSet>"}})
                });
                let generation = self.patch(ctx, "undo", patch).await?;
                self.wait(ctx, generation).await?;
                format!("rolled {} back to its previous revision", self.target())
            }
            Action::Scale => {
                let n = self.spec.replicas.map(|r| r.value).unwrap_or(1);
                self.read(ctx, Guard::Nothing).await?;
                let generation = self
                    .patch(ctx, "scale", serde_json::json!({"spec": {"replicas": n}}))
                    .await?;
                self.wait(ctx, generation).await?;
                format!("scaled {} to {n} replica(s)", self.target())
            }
        };
        Ok(Outcome {
            summary: Some(if ctx.dry_run {
                format!("dry run: nothing changed; {summary} is what it would do")
            } else {
                summary
            }),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(v: serde_json::Value) -> Deployment {
        let mut base = json!({
            "metadata": {"name": "api", "generation": 5,
                          "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": []}}},
        });
        base.as_object_mut().unwrap().insert("status".into(), v);
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn rollout_state_table() {
        // (status, generation we patched to, expected)
        let cases: &[(serde_json::Value, i64, &str)] = &[
            (
                json!({"observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
                5,
                "progressing: waiting for the deployment controller",
            ),
            (
                json!({"observedGeneration": 5, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 3}),
                5,
                "progressing: 1 of 3 replicas updated",
            ),
            (
                json!({"observedGeneration": 5, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
                5,
                "progressing: 1 old replica(s) pending termination",
            ),
            (
                json!({"observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
                5,
                "progressing: 2 of 3 updated replicas available",
            ),
            (
                json!({"observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
                5,
                "done: 3/3",
            ),
            (
                json!({"observedGeneration": 5, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2,
                    "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                    "message": "ReplicaSet api-7c9 has timed out progressing."}]}),
                5,
                "failed: ProgressDeadlineExceeded: ReplicaSet api-7c9",
            ),
        ];
        for (status, generation, want) in cases {
            let got = match rollout_state(&dep(status.clone()), *generation) {
                RolloutState::Done(s) => format!("done: {s}"),
                RolloutState::Progressing(s) => format!("progressing: {s}"),
                RolloutState::Failed(s) => format!("failed: {s}"),
            };
            assert!(got.starts_with(want), "{status}: {got}");
        }
    }

    #[test]
    fn paused_or_busy_deployments_are_refused() {
        let mut d = dep(
            json!({"observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert!(ready_to_change(&d).is_ok());
        d.spec.paused = Some(true);
        assert!(
            ready_to_change(&d)
                .unwrap_err()
                .to_string()
                .contains("paused")
        );
        let d = dep(
            json!({"observedGeneration": 5, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 3}),
        );
        assert!(
            ready_to_change(&d)
                .unwrap_err()
                .to_string()
                .contains("still in progress")
        );
    }

    fn rs(revision: &str, image: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": format!("api-{revision}"), "annotations": {"deployment.kubernetes.io/revision": revision}},
            "spec": {"selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api", "pod-template-hash": "abc"}},
                                  "spec": {"containers": [{"name": "api", "image": image}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn undo_goes_back_one_revision_without_the_hash_label() {
        let d = dep(json!({}));
        let sets = [rs("1", "api:1"), rs("2", "api:2"), rs("3", "api:3")];
        let prev = previous_revision(&d, &sets).unwrap();
        assert_eq!(prev.metadata.name.as_deref(), Some("api-2"));
        let p = undo_patch(prev);
        assert_eq!(
            p.pointer("/spec/template/spec/containers/0/image"),
            Some(&json!("api:2"))
        );
        assert_eq!(
            p.pointer("/spec/template/metadata/labels/pod-template-hash"),
            None
        );
        assert_eq!(p.pointer("/spec/template/$patch"), Some(&json!("replace")));
        assert!(
            previous_revision(&d, &sets[2..])
                .unwrap_err()
                .to_string()
                .contains("no revision before 3")
        );
    }

    #[test]
    fn the_restart_patch_is_kubectls() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            restart_patch(at),
            json!({"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": "2026-11-30T09:00:00Z"}}}}})
        );
    }
}
