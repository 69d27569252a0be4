//! Stateful fakes of the seams a maintenance job drives: a cluster whose
//! deployment rolls out (or does not) over a few polls and whose Jobs
//! complete (or fail); RDS snapshots that take a while, fail, or refuse;
//! Secrets Manager versions and staging labels. Each keeps a log of the
//! calls it was given, so a test can say what was changed, and that a dry
//! run changed nothing. They cover what moto does not model (everything is
//! available at once there, a reused token with another value is accepted,
//! automated snapshots can be deleted).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::json;

use crate::adapters::aws::{
    AwsError, AwsErrorKind, DbInstance, DbSnapshot, RdsApi, RdsEvent, SecretInfo, SecretVersion,
    SecretsApi, Target,
};
use crate::adapters::kube::{ClusterApi, KubeError, PodMetrics};
use crate::secret::Secret;

/// How a fake deployment answers a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutBehaviour {
    /// Rolled out after `polls` reads.
    Succeeds { polls: u32 },
    /// `ProgressDeadlineExceeded` after a read.
    Stalls,
}

#[derive(Debug)]
struct ClusterState {
    deployment: Deployment,
    /// Reads left until the current change has rolled out.
    pending: Option<u32>,
    rollout: RolloutBehaviour,
    /// Rollouts after the first behave like this (a rollback that works).
    then: RolloutBehaviour,
    changes: u32,
    replica_sets: Vec<ReplicaSet>,
    jobs: BTreeMap<String, Job>,
    job_outcome: Option<(&'static str, String)>,
    job_logs: String,
    forbid_patch: bool,
    external_secret_refreshed: Option<chrono::DateTime<chrono::Utc>>,
    external_secrets_stuck: bool,
    pods: Vec<Pod>,
    /// (pod, previous container) → log text.
    pod_logs: BTreeMap<(String, bool), String>,
    events: Vec<Event>,
    metrics: Option<Vec<PodMetrics>>,
    /// Every read waits this long (a slow API server).
    latency: std::time::Duration,
    /// Pods whose log reads never answer (a pod on a dying node).
    silent_logs: Vec<String>,
    calls: Vec<String>,
}

/// A cluster with one deployment (`api-deployment`, 3 replicas, revision 3).
#[derive(Debug)]
pub struct FakeCluster(Mutex<ClusterState>);

impl Default for FakeCluster {
    fn default() -> Self {
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "api-deployment", "namespace": "default", "generation": 3, "uid": "d-1",
                         "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}},
                                  "spec": {"serviceAccountName": "api", "containers": [
                                      {"name": "api", "image": "flexoraa/api:3",
                                       "envFrom": [{"secretRef": {"name": "api-secrets"}}]}]}}},
            "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3,
                       "availableReplicas": 3, "readyReplicas": 3},
        }))
        .expect("fake deployment");
        let rs = |rev: u32| -> ReplicaSet {
            serde_json::from_value(json!({
                "metadata": {"name": format!("api-deployment-{rev}"),
                             "annotations": {"deployment.kubernetes.io/revision": rev.to_string()},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                  "name": "api-deployment", "uid": "d-1"}]},
                "spec": {"selector": {"matchLabels": {"app": "api"}},
                         "template": {"metadata": {"labels": {"app": "api", "pod-template-hash": format!("h{rev}")}},
                                      "spec": {"containers": [{"name": "api", "image": format!("flexoraa/api:{rev}")}]}}}
            }))
            .expect("fake replica set")
        };
        FakeCluster(Mutex::new(ClusterState {
            deployment,
            pending: None,
            rollout: RolloutBehaviour::Succeeds { polls: 2 },
            then: RolloutBehaviour::Succeeds { polls: 2 },
            changes: 0,
            replica_sets: vec![rs(1), rs(2), rs(3)],
            jobs: BTreeMap::new(),
            job_outcome: Some(("Complete", String::new())),
            job_logs: "Batch 42 run: 3 migrations\n".into(),
            forbid_patch: false,
            external_secret_refreshed: None,
            external_secrets_stuck: false,
            pods: Vec::new(),
            pod_logs: BTreeMap::new(),
            events: Vec::new(),
            metrics: None,
            latency: std::time::Duration::ZERO,
            silent_logs: Vec::new(),
            calls: Vec::new(),
        }))
    }
}

impl FakeCluster {
    /// Every log read of `pod`, previous or current, never answers.
    pub fn log_never_answers(self, pod: &str) -> Self {
        self.0.lock().unwrap().silent_logs.push(pod.to_string());
        self
    }

    /// The pods of every selector.
    pub fn with_pods(self, pods: Vec<Pod>) -> Self {
        self.0.lock().unwrap().pods = pods;
        self
    }

    /// A pod's log; `previous` is the container before the current one.
    pub fn with_log(self, pod: &str, previous: bool, text: &str) -> Self {
        self.0
            .lock()
            .unwrap()
            .pod_logs
            .insert((pod.to_string(), previous), text.to_string());
        self
    }

    pub fn with_events(self, events: Vec<Event>) -> Self {
        self.0.lock().unwrap().events = events;
        self
    }

    /// metrics.k8s.io served, with these pods' usage.
    pub fn with_metrics(self, metrics: Vec<PodMetrics>) -> Self {
        self.0.lock().unwrap().metrics = Some(metrics);
        self
    }

    /// The current revision (3) was rolled out at `at`.
    pub fn rolled_out_at(self, at: DateTime<Utc>) -> Self {
        {
            let mut s = self.0.lock().unwrap();
            for rs in &mut s.replica_sets {
                let rev = rs
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                    .and_then(|r| r.parse::<i64>().ok())
                    .unwrap_or(0);
                let t = at - chrono::Duration::days(7 * (3 - rev));
                rs.metadata.creation_timestamp =
                    serde_json::from_value(json!(t.to_rfc3339())).expect("timestamp");
            }
        }
        self
    }

    /// Every read takes `latency`.
    pub fn slow(self, latency: std::time::Duration) -> Self {
        self.0.lock().unwrap().latency = latency;
        self
    }

    async fn delay(&self) {
        let d = self.0.lock().unwrap().latency;
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    /// The first rollout behaves like `first`, later ones like `then`.
    pub fn rollouts(self, first: RolloutBehaviour, then: RolloutBehaviour) -> Self {
        {
            let mut s = self.0.lock().unwrap();
            s.rollout = first;
            s.then = then;
        }
        self
    }

    /// Migration Jobs end `Failed` with `reason`.
    pub fn jobs_fail(self, reason: &str) -> Self {
        self.0.lock().unwrap().job_outcome = Some(("Failed", reason.to_string()));
        self
    }

    /// Migration Jobs never end (the deadline has to).
    pub fn jobs_hang(self) -> Self {
        self.0.lock().unwrap().job_outcome = None;
        self
    }

    /// The External Secrets operator never refreshes.
    pub fn external_secrets_stuck(self) -> Self {
        self.0.lock().unwrap().external_secrets_stuck = true;
        self
    }

    /// Patches are refused with 403.
    pub fn forbid_patches(self) -> Self {
        self.0.lock().unwrap().forbid_patch = true;
        self
    }

    /// The deployment's last rollout has failed (ProgressDeadlineExceeded),
    /// as after a bad deploy that crash-loops.
    pub fn stalled(self) -> Self {
        {
            let mut s = self.0.lock().unwrap();
            let status = s.deployment.status.get_or_insert_with(Default::default);
            status.updated_replicas = Some(1);
            status.conditions =
                Some(vec![serde_json::from_value(json!({
                "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet \"api-deployment-3\" has timed out progressing."
            }))
            .expect("condition")]);
        }
        self
    }

    pub fn pause(&self) {
        self.0.lock().unwrap().deployment.spec.paused = Some(true);
    }

    /// Every call made, as `VERB what`.
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().calls.clone()
    }

    /// Calls that change something.
    pub fn changes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| !c.starts_with("GET") && !c.starts_with("LIST"))
            .collect()
    }

    pub fn created_jobs(&self) -> Vec<Job> {
        self.0.lock().unwrap().jobs.values().cloned().collect()
    }

    fn advance(s: &mut ClusterState) {
        let Some(left) = s.pending else { return };
        let generation = s.deployment.metadata.generation.unwrap_or(0);
        let want = s.deployment.spec.replicas.unwrap_or(1);
        let behaviour = if s.changes <= 1 { s.rollout } else { s.then };
        let status = s.deployment.status.get_or_insert_with(Default::default);
        status.observed_generation = Some(generation);
        match behaviour {
            RolloutBehaviour::Stalls => {
                status.updated_replicas = Some(1);
                status.conditions = Some(vec![serde_json::from_value(json!({
                    "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                    "message": "ReplicaSet \"api-deployment-4\" has timed out progressing."
                }))
                .expect("condition")]);
                s.pending = None;
            }
            RolloutBehaviour::Succeeds { .. } if left == 0 => {
                status.replicas = Some(want);
                status.updated_replicas = Some(want);
                status.available_replicas = Some(want);
                status.conditions = None;
                s.pending = None;
            }
            RolloutBehaviour::Succeeds { .. } => {
                status.updated_replicas = Some(want.min(1));
                status.replicas = Some(want + 1);
                status.conditions = None;
                s.pending = Some(left - 1);
            }
        }
    }
}

fn merge(into: &mut serde_json::Value, patch: &serde_json::Value) {
    match (into, patch) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            if b.get("$patch").and_then(|p| p.as_str()) == Some("replace") {
                let mut b = b.clone();
                b.remove("$patch");
                *a = b;
                return;
            }
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[async_trait]
impl ClusterApi for FakeCluster {
    async fn pods(&self, ns: &str, selector: &str) -> Result<Vec<Pod>, KubeError> {
        self.delay().await;
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("LIST pods {ns} {selector}"));
        Ok(s.pods.clone())
    }

    async fn pod_logs(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        tail: i64,
        previous: bool,
    ) -> Result<String, KubeError> {
        self.delay().await;
        let silent = {
            let mut s = self.0.lock().unwrap();
            s.calls.push(format!(
                "GET logs {ns}/{pod} container={container} tail={tail} previous={previous}"
            ));
            s.silent_logs.iter().any(|p| p == pod)
        };
        if silent {
            std::future::pending::<()>().await;
        }
        let s = self.0.lock().unwrap();
        match s.pod_logs.get(&(pod.to_string(), previous)) {
            Some(t) => {
                let lines: Vec<&str> = t.lines().collect();
                let from = lines.len().saturating_sub(tail.max(0) as usize);
                Ok(lines[from..].join("\n"))
            }
            None if previous => Err(KubeError(format!(
                "read the logs of pod {pod}: previous terminated container \"api\" in pod \"{pod}\" not found (400)"
            ))),
            None => Ok(String::new()),
        }
    }

    async fn warning_events(&self, ns: &str) -> Result<Vec<Event>, KubeError> {
        self.delay().await;
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("LIST events {ns} type=Warning"));
        Ok(s.events.clone())
    }

    async fn deployment(&self, ns: &str, name: &str) -> Result<Option<Deployment>, KubeError> {
        self.delay().await;
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("GET deployment {ns}/{name}"));
        if name != "api-deployment" {
            return Ok(None);
        }
        FakeCluster::advance(&mut s);
        Ok(Some(s.deployment.clone()))
    }

    async fn pod_metrics(&self, _: &str, _: &str) -> Result<Option<Vec<PodMetrics>>, KubeError> {
        self.delay().await;
        Ok(self.0.lock().unwrap().metrics.clone())
    }

    async fn replica_sets(&self, ns: &str, d: &Deployment) -> Result<Vec<ReplicaSet>, KubeError> {
        let s = self.0.lock().unwrap();
        let _ = d;
        let mut s = s;
        s.calls.push(format!("LIST replicasets {ns}"));
        Ok(s.replica_sets.clone())
    }

    async fn patch_deployment(
        &self,
        ns: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Deployment, KubeError> {
        let mut s = self.0.lock().unwrap();
        s.calls
            .push(format!("PATCH deployment {ns}/{name} {patch}"));
        if s.forbid_patch {
            return Err(KubeError(format!(
                "forbidden: patch deployment {name} in {ns}: runbookd's service account needs `patch` on `deployments` in its Role (deployments.apps \"{name}\" is forbidden)"
            )));
        }
        let mut v = serde_json::to_value(&s.deployment).expect("deployment to JSON");
        merge(&mut v, patch);
        let mut d: Deployment = serde_json::from_value(v).map_err(|e| KubeError(e.to_string()))?;
        d.metadata.generation = Some(d.metadata.generation.unwrap_or(0) + 1);
        s.deployment = d;
        s.changes += 1;
        let polls = match if s.changes <= 1 { s.rollout } else { s.then } {
            RolloutBehaviour::Succeeds { polls } => polls,
            RolloutBehaviour::Stalls => 0,
        };
        s.pending = Some(polls);
        Ok(s.deployment.clone())
    }

    async fn create_job(&self, ns: &str, job: &Job) -> Result<Job, KubeError> {
        let mut s = self.0.lock().unwrap();
        let name = job.metadata.name.clone().unwrap_or_default();
        s.calls.push(format!("POST job {ns}/{name}"));
        s.jobs.insert(name, job.clone());
        Ok(job.clone())
    }

    async fn job(&self, ns: &str, name: &str) -> Result<Option<Job>, KubeError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("GET job {ns}/{name}"));
        let outcome = s.job_outcome.clone();
        let Some(job) = s.jobs.get_mut(name) else {
            return Ok(None);
        };
        if let Some((kind, reason)) = outcome {
            job.status = Some(
                serde_json::from_value(json!({"conditions": [
                    {"type": kind, "status": "True", "reason": reason, "message": format!("Job {kind}")}
                ]}))
                .expect("job status"),
            );
        } else {
            job.status = Some(serde_json::from_value(json!({"active": 1})).expect("job status"));
        }
        Ok(Some(job.clone()))
    }

    async fn job_logs(&self, ns: &str, job: &str, _: i64) -> Result<String, KubeError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("GET logs {ns}/{job}"));
        Ok(s.job_logs.clone())
    }

    async fn annotate_external_secret(
        &self,
        ns: &str,
        name: &str,
        key: &str,
        _value: &str,
    ) -> Result<(), KubeError> {
        let mut s = self.0.lock().unwrap();
        s.calls
            .push(format!("PATCH externalsecret {ns}/{name} {key}"));
        if !s.external_secrets_stuck {
            // The operator, at once.
            s.external_secret_refreshed = Some(chrono::Utc::now() + chrono::Duration::seconds(1));
        }
        Ok(())
    }

    async fn external_secret_sync(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<crate::adapters::kube::ExternalSecretSync, KubeError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("GET externalsecret {ns}/{name}"));
        Ok(crate::adapters::kube::ExternalSecretSync {
            refreshed_at: s.external_secret_refreshed,
            ready: Some((true, String::new())),
        })
    }
}

/// How a fake snapshot goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotBehaviour {
    /// `creating` for `polls` reads, then `available`.
    Available { polls: u32 },
    /// `creating`, then `failed`.
    Fails,
}

#[derive(Debug)]
struct RdsState {
    instances: BTreeMap<String, DbInstance>,
    snapshots: BTreeMap<String, (DbSnapshot, u32)>,
    behaviour: SnapshotBehaviour,
    throttles: u32,
    quota_exceeded: bool,
    deny_deletes: bool,
    restored_endpoint: String,
    events: Vec<RdsEvent>,
    calls: Vec<String>,
    /// Answers as AWS does to a filter it ignores (an empty one): every
    /// snapshot, and the first instance for a name it does not know.
    ignores_filters: bool,
}

/// RDS with one instance and whatever snapshots a test adds.
#[derive(Debug)]
pub struct FakeRds(Mutex<RdsState>);

impl FakeRds {
    pub fn new(instance: &str) -> Self {
        let mut instances = BTreeMap::new();
        instances.insert(
            instance.to_string(),
            DbInstance {
                id: instance.to_string(),
                status: "available".into(),
                storage_encrypted: true,
                ..Default::default()
            },
        );
        FakeRds(Mutex::new(RdsState {
            instances,
            snapshots: BTreeMap::new(),
            behaviour: SnapshotBehaviour::Available { polls: 1 },
            throttles: 0,
            quota_exceeded: false,
            deny_deletes: false,
            restored_endpoint: "127.0.0.1:5432".into(),
            events: Vec::new(),
            calls: Vec::new(),
            ignores_filters: false,
        }))
    }

    /// A second instance, `available`.
    pub fn with_instance(self, id: &str) -> Self {
        self.0.lock().unwrap().instances.insert(
            id.to_string(),
            DbInstance {
                id: id.to_string(),
                status: "available".into(),
                storage_encrypted: true,
                ..Default::default()
            },
        );
        self
    }

    /// Every read answers for every instance, as AWS (and moto) answer an
    /// empty filter: what runbookd asked for must be picked out by the
    /// caller.
    pub fn ignoring_filters(self) -> Self {
        self.0.lock().unwrap().ignores_filters = true;
        self
    }

    /// The instance's status (`rebooting`, `storage-full`, …) and events.
    pub fn instance_is(self, status: &str, events: Vec<RdsEvent>) -> Self {
        {
            let mut s = self.0.lock().unwrap();
            for i in s.instances.values_mut() {
                i.status = status.to_string();
            }
            s.events = events;
        }
        self
    }

    pub fn snapshots_go(self, b: SnapshotBehaviour) -> Self {
        self.0.lock().unwrap().behaviour = b;
        self
    }

    /// The next `n` calls are throttled.
    pub fn throttle(self, n: u32) -> Self {
        self.0.lock().unwrap().throttles = n;
        self
    }

    pub fn quota_exceeded(self) -> Self {
        self.0.lock().unwrap().quota_exceeded = true;
        self
    }

    /// DeleteDBSnapshot is refused, as for a role without the permission.
    pub fn deny_deletes(self) -> Self {
        self.0.lock().unwrap().deny_deletes = true;
        self
    }

    /// Where a restored instance answers.
    pub fn restores_at(self, endpoint: &str) -> Self {
        self.0.lock().unwrap().restored_endpoint = endpoint.into();
        self
    }

    pub fn add_snapshot(&self, s: DbSnapshot) {
        self.0
            .lock()
            .unwrap()
            .snapshots
            .insert(s.id.clone(), (s, 0));
    }

    pub fn set_instance_status(&self, id: &str, status: &str) {
        if let Some(i) = self.0.lock().unwrap().instances.get_mut(id) {
            i.status = status.into();
        }
    }

    pub fn snapshot_ids(&self) -> Vec<String> {
        self.0.lock().unwrap().snapshots.keys().cloned().collect()
    }

    pub fn instance_ids(&self) -> Vec<String> {
        self.0.lock().unwrap().instances.keys().cloned().collect()
    }

    pub fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().calls.clone()
    }

    fn enter(&self, call: String) -> Result<std::sync::MutexGuard<'_, RdsState>, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(call);
        if s.throttles > 0 {
            s.throttles -= 1;
            return Err(AwsError {
                kind: AwsErrorKind::Throttled,
                message: "Throttling: Rate exceeded".into(),
            });
        }
        Ok(s)
    }
}

fn not_found(what: String) -> AwsError {
    AwsError {
        kind: AwsErrorKind::NotFound,
        message: what,
    }
}

#[async_trait]
impl RdsApi for FakeRds {
    async fn events(&self, _: &Target, id: &str, minutes: i32) -> Result<Vec<RdsEvent>, AwsError> {
        let s = self.enter(format!("DescribeEvents {id} {minutes}m"))?;
        Ok(s.events.clone())
    }

    async fn instance(&self, _: &Target, id: &str) -> Result<DbInstance, AwsError> {
        let s = self.enter(format!("DescribeDBInstances {id}"))?;
        s.instances
            .get(id)
            .or_else(|| {
                s.ignores_filters
                    .then(|| s.instances.values().next())
                    .flatten()
            })
            .cloned()
            .ok_or_else(|| not_found(format!("DBInstanceNotFound: {id}")))
    }

    async fn automated_snapshots(&self, _: &Target, id: &str) -> Result<Vec<DbSnapshot>, AwsError> {
        let s = self.enter(format!("DescribeDBSnapshots automated {id}"))?;
        Ok(s.snapshots
            .values()
            .map(|(x, _)| x.clone())
            .filter(|x| !x.manual && (s.ignores_filters || x.instance == id))
            .collect())
    }

    async fn manual_snapshots(
        &self,
        _: &Target,
        instance: Option<&str>,
    ) -> Result<Vec<DbSnapshot>, AwsError> {
        let s = self.enter(format!("DescribeDBSnapshots manual {instance:?}"))?;
        Ok(s.snapshots
            .values()
            .map(|(x, _)| x.clone())
            .filter(|x| x.manual && (s.ignores_filters || instance.is_none_or(|i| x.instance == i)))
            .collect())
    }

    async fn create_snapshot(
        &self,
        _: &Target,
        instance: &str,
        snapshot: &str,
        tags: &[(String, String)],
    ) -> Result<DbSnapshot, AwsError> {
        let mut s = self.enter(format!("CreateDBSnapshot {instance} {snapshot}"))?;
        if !s.instances.contains_key(instance) {
            return Err(not_found(format!("DBInstanceNotFound: {instance}")));
        }
        if s.quota_exceeded {
            return Err(AwsError {
                kind: AwsErrorKind::Quota,
                message: "SnapshotQuotaExceeded: Cannot create more than 100 manual snapshots"
                    .into(),
            });
        }
        let snap = DbSnapshot {
            id: snapshot.into(),
            status: "creating".into(),
            created: Some(Utc::now()),
            instance: instance.into(),
            manual: true,
            encrypted: true,
            tags: tags.to_vec(),
        };
        s.snapshots.insert(snapshot.into(), (snap.clone(), 0));
        Ok(snap)
    }

    async fn snapshot(&self, _: &Target, id: &str) -> Result<Option<DbSnapshot>, AwsError> {
        let mut s = self.enter(format!("DescribeDBSnapshots {id}"))?;
        let behaviour = s.behaviour;
        let Some((snap, reads)) = s.snapshots.get_mut(id) else {
            return Ok(None);
        };
        *reads += 1;
        if snap.status == "creating" {
            snap.status = match behaviour {
                SnapshotBehaviour::Available { polls } if *reads > polls => "available".into(),
                SnapshotBehaviour::Fails if *reads > 1 => "failed".into(),
                _ => "creating".into(),
            };
        }
        Ok(Some(snap.clone()))
    }

    async fn delete_snapshot(&self, _: &Target, id: &str) -> Result<(), AwsError> {
        let mut s = self.enter(format!("DeleteDBSnapshot {id}"))?;
        if s.deny_deletes {
            return Err(AwsError {
                kind: AwsErrorKind::Other,
                message: format!(
                    "AccessDenied: not authorized to perform rds:DeleteDBSnapshot on {id}"
                ),
            });
        }
        match s.snapshots.get(id) {
            None => Err(not_found(format!("DBSnapshotNotFound: {id}"))),
            // As AWS: an automated snapshot goes with its retention only.
            Some((snap, _)) if !snap.manual => Err(AwsError {
                kind: AwsErrorKind::Other,
                message: format!("InvalidDBSnapshotState: cannot delete automated snapshot {id}"),
            }),
            Some(_) => {
                s.snapshots.remove(id);
                Ok(())
            }
        }
    }

    async fn restore_instance(
        &self,
        _: &Target,
        snapshot: &str,
        instance: &str,
        _class: &str,
        _tags: &[(String, String)],
    ) -> Result<DbInstance, AwsError> {
        let mut s = self.enter(format!(
            "RestoreDBInstanceFromDBSnapshot {snapshot} {instance}"
        ))?;
        if !s.snapshots.contains_key(snapshot) {
            return Err(not_found(format!("DBSnapshotNotFound: {snapshot}")));
        }
        let i = DbInstance {
            id: instance.into(),
            status: "available".into(),
            endpoint: Some(s.restored_endpoint.clone()),
            ..Default::default()
        };
        s.instances.insert(instance.into(), i.clone());
        Ok(DbInstance {
            status: "creating".into(),
            ..i
        })
    }

    async fn delete_instance(&self, _: &Target, id: &str) -> Result<(), AwsError> {
        let mut s = self.enter(format!("DeleteDBInstance {id}"))?;
        s.instances
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| not_found(format!("DBInstanceNotFound: {id}")))
    }
}

#[derive(Debug, Default)]
struct SecretsState {
    /// version id → (value, stages)
    versions: BTreeMap<String, (String, Vec<String>)>,
    /// token → value, to refuse a reused token with another value.
    tokens: BTreeMap<String, String>,
    calls: Vec<String>,
    last_changed: Option<DateTime<Utc>>,
}

/// One secret with its versions and staging labels.
#[derive(Debug, Default)]
pub struct FakeSecrets(Mutex<SecretsState>);

impl FakeSecrets {
    /// A secret whose `AWSCURRENT` is version `v1` holding `value`.
    pub fn with_current(value: &str) -> Self {
        let f = FakeSecrets::default();
        f.0.lock()
            .unwrap()
            .versions
            .insert("v1".into(), (value.into(), vec!["AWSCURRENT".into()]));
        f
    }

    /// Adds a version with stages, as a crashed rotation would leave it.
    pub fn add_version(&self, id: &str, value: &str, stages: &[&str]) {
        let mut s = self.0.lock().unwrap();
        for (_, st) in s.versions.values_mut() {
            st.retain(|x| !stages.contains(&x.as_str()));
        }
        s.versions.insert(
            id.into(),
            (value.into(), stages.iter().map(|x| x.to_string()).collect()),
        );
    }

    /// The value staged `stage`.
    pub fn value(&self, stage: &str) -> Option<String> {
        let s = self.0.lock().unwrap();
        s.versions
            .values()
            .find(|(_, st)| st.iter().any(|x| x == stage))
            .map(|(v, _)| v.clone())
    }

    pub fn version(&self, stage: &str) -> Option<String> {
        let s = self.0.lock().unwrap();
        s.versions
            .iter()
            .find(|(_, (_, st))| st.iter().any(|x| x == stage))
            .map(|(id, _)| id.clone())
    }

    pub fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().calls.clone()
    }

    pub fn changes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| !c.starts_with("DescribeSecret"))
            .collect()
    }
}

#[async_trait]
impl SecretsApi for FakeSecrets {
    async fn describe(&self, _: &Target, id: &str) -> Result<SecretInfo, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("DescribeSecret {id}"));
        Ok(SecretInfo {
            name: id.into(),
            last_changed: s.last_changed,
            versions: s
                .versions
                .iter()
                .filter(|(_, (_, st))| !st.is_empty())
                .map(|(vid, (_, st))| SecretVersion {
                    id: vid.clone(),
                    stages: st.clone(),
                })
                .collect(),
            ..Default::default()
        })
    }

    async fn put_pending(
        &self,
        _: &Target,
        id: &str,
        token: &str,
        value: &Secret,
    ) -> Result<String, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("PutSecretValue {id} {token}"));
        if let Some(v) = s.tokens.get(token)
            && v != value.expose()
        {
            return Err(AwsError {
                kind: AwsErrorKind::Other,
                message: "ResourceExistsException: a version with this ClientRequestToken already exists with a different value".into(),
            });
        }
        s.tokens.insert(token.into(), value.expose().into());
        for (_, st) in s.versions.values_mut() {
            st.retain(|x| x != "AWSPENDING");
        }
        s.versions.insert(
            token.into(),
            (value.expose().into(), vec!["AWSPENDING".into()]),
        );
        s.last_changed = Some(Utc::now());
        Ok(token.into())
    }

    async fn move_stage(
        &self,
        _: &Target,
        id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!(
            "UpdateSecretVersionStage {id} {stage} to={to:?} from={from:?}"
        ));
        if let Some(f) = from {
            let holds = s
                .versions
                .get(f)
                .is_some_and(|(_, st)| st.iter().any(|x| x == stage));
            if !holds {
                return Err(AwsError {
                    kind: AwsErrorKind::Other,
                    message: format!("InvalidParameterException: {stage} is not on version {f}"),
                });
            }
            if let Some((_, st)) = s.versions.get_mut(f) {
                st.retain(|x| x != stage);
            }
        }
        if let Some(t) = to {
            if !s.versions.contains_key(t) {
                return Err(not_found(format!("no version {t}")));
            }
            if stage == "AWSCURRENT" {
                for (_, st) in s.versions.values_mut() {
                    st.retain(|x| x != "AWSPREVIOUS");
                }
                if let Some(f) = from
                    && let Some((_, st)) = s.versions.get_mut(f)
                {
                    st.push("AWSPREVIOUS".into());
                }
            }
            if let Some((_, st)) = s.versions.get_mut(t) {
                st.retain(|x| x != "AWSPREVIOUS");
                st.push(stage.into());
            }
        }
        Ok(())
    }
}

/// An Alertmanager that keeps every post, for tests of who posts what
/// (replicas), and says when one arrives.
#[derive(Debug, Default)]
pub struct FakeAlertSink {
    posts: Mutex<Vec<Vec<crate::adapters::alerts::Alert>>>,
    posted: tokio::sync::Notify,
}

impl FakeAlertSink {
    /// Every post so far, in order.
    pub fn posts(&self) -> Vec<Vec<crate::adapters::alerts::Alert>> {
        self.posts.lock().unwrap().clone()
    }

    /// Waits until the posts so far satisfy `done`, failing after `within`.
    pub async fn wait_for(
        &self,
        within: std::time::Duration,
        what: &str,
        mut done: impl FnMut(&[Vec<crate::adapters::alerts::Alert>]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let posted = self.posted.notified();
            tokio::pin!(posted);
            posted.as_mut().enable();
            if done(&self.posts()) {
                return;
            }
            if tokio::time::timeout_at(deadline, posted).await.is_err() {
                panic!(
                    "timed out after {within:?} waiting for {what}; posts: {:#?}",
                    self.posts()
                );
            }
        }
    }
}

#[async_trait]
impl crate::adapters::alerts::AlertSink for FakeAlertSink {
    async fn post_alerts(
        &self,
        _: &crate::secret::SecretUrl,
        alerts: &[crate::adapters::alerts::Alert],
        _: std::time::Duration,
    ) -> Result<(), crate::adapters::alerts::AlertError> {
        self.posts.lock().unwrap().push(alerts.to_vec());
        self.posted.notify_waiters();
        Ok(())
    }
}
