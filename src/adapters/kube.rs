//! Kubernetes behind a narrow trait: the pods of a selector, a deployment
//! and its ReplicaSets, pod memory from `metrics.k8s.io` (the runbook's
//! `kubectl top`), and the few changes runbookd makes: a deployment patched
//! (restart, undo, scale), a migration Job run and its logs, an
//! ExternalSecret told to sync. The real implementation uses kube with
//! in-cluster config or `KUBECONFIG`; tests drive it with `tower_test`
//! scenarios and use a stateful fake elsewhere.
//!
//! A refused call (403) names the RBAC verb and resource it needed, so the
//! run says what to add to the Role.
//!
//! Every call names its objects exactly: an empty namespace, name or
//! selector is refused before any request (the API server reads an empty
//! selector as "every pod", an empty name as a list), and what comes back
//! must be what was asked for: a deployment of another name or namespace is
//! an error, pods and events of another namespace are dropped.

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde::Deserialize;
use tokio::sync::OnceCell;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KubeError(pub String);

/// One container's usage from metrics.k8s.io.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ContainerUsage {
    pub name: String,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub memory: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PodMetrics {
    pub metadata: kube::api::ObjectMeta,
    #[serde(default)]
    pub containers: Vec<ContainerUsage>,
}

#[derive(Debug, Clone, Deserialize)]
struct PodMetricsList {
    #[serde(default)]
    items: Vec<PodMetrics>,
}

#[async_trait]
pub trait ClusterApi: Send + Sync + std::fmt::Debug {
    async fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<Pod>, KubeError>;
    async fn deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Deployment>, KubeError>;
    /// `None` when the cluster does not serve metrics.k8s.io.
    async fn pod_metrics(
        &self,
        namespace: &str,
        selector: &str,
    ) -> Result<Option<Vec<PodMetrics>>, KubeError>;

    /// The ReplicaSets a deployment owns (its revisions).
    async fn replica_sets(
        &self,
        namespace: &str,
        deployment: &Deployment,
    ) -> Result<Vec<ReplicaSet>, KubeError> {
        let _ = (namespace, deployment);
        Err(KubeError(
            "this cluster client cannot list ReplicaSets".into(),
        ))
    }

    /// A strategic merge patch of a deployment (as `kubectl rollout restart`,
    /// `undo` and `scale` do); the deployment as it is after.
    async fn patch_deployment(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Deployment, KubeError> {
        let _ = (namespace, name, patch);
        Err(KubeError(
            "this cluster client cannot patch deployments".into(),
        ))
    }

    async fn create_job(&self, namespace: &str, job: &Job) -> Result<Job, KubeError> {
        let _ = (namespace, job);
        Err(KubeError("this cluster client cannot create jobs".into()))
    }

    async fn job(&self, namespace: &str, name: &str) -> Result<Option<Job>, KubeError> {
        let _ = (namespace, name);
        Err(KubeError("this cluster client cannot read jobs".into()))
    }

    /// The last `tail` lines of the logs of a Job's pods.
    async fn job_logs(&self, namespace: &str, job: &str, tail: i64) -> Result<String, KubeError> {
        let _ = (namespace, job, tail);
        Err(KubeError("this cluster client cannot read logs".into()))
    }

    /// The last `tail` lines of one container's log (at most 256 KiB);
    /// `previous` reads the container that ended before the current one
    /// (`kubectl logs --previous`), which is where a crash loop's reason
    /// is. A pod with sidecars needs the container named.
    async fn pod_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        tail: i64,
        previous: bool,
    ) -> Result<String, KubeError> {
        let _ = (namespace, pod, container, tail, previous);
        Err(KubeError("this cluster client cannot read pod logs".into()))
    }

    /// The namespace's Warning events (`kubectl get events
    /// --field-selector type=Warning`).
    async fn warning_events(&self, namespace: &str) -> Result<Vec<Event>, KubeError> {
        let _ = namespace;
        Err(KubeError("this cluster client cannot list events".into()))
    }

    /// Sets an annotation on an ExternalSecret (`force-sync`), so the
    /// External Secrets operator refreshes it from the provider now.
    async fn annotate_external_secret(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), KubeError> {
        let _ = (namespace, name, key, value);
        Err(KubeError(
            "this cluster client cannot annotate ExternalSecrets".into(),
        ))
    }

    /// Reads an ExternalSecret's sync state, to know the operator has
    /// written the new value before pods restart to read it.
    async fn external_secret_sync(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ExternalSecretSync, KubeError> {
        let _ = (namespace, name);
        Err(KubeError(
            "this cluster client cannot read ExternalSecrets".into(),
        ))
    }
}

/// What the External Secrets operator last did with an ExternalSecret.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExternalSecretSync {
    /// When it last wrote the Secret from the provider (`status.refreshTime`).
    pub refreshed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Its `Ready` condition: whether true, and its message.
    pub ready: Option<(bool, String)>,
}

/// The sync state in an ExternalSecret object. Pure.
pub fn external_secret_sync(v: &serde_json::Value) -> ExternalSecretSync {
    let status = &v["status"];
    let refreshed_at = status["refreshTime"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.to_utc());
    let ready = status["conditions"].as_array().and_then(|cs| {
        cs.iter().find(|c| c["type"] == "Ready").map(|c| {
            (
                c["status"] == "True",
                c["message"]
                    .as_str()
                    .or(c["reason"].as_str())
                    .unwrap_or("")
                    .to_string(),
            )
        })
    });
    ExternalSecretSync {
        refreshed_at,
        ready,
    }
}

/// Refuses an empty or blank `value` (a namespace, a name, a selector)
/// before any call.
pub fn exact(what: &str, value: &str) -> Result<(), KubeError> {
    if value.trim().is_empty() {
        return Err(KubeError(format!(
            "an empty {what} names nothing (Kubernetes would read it as every one); nothing was asked"
        )));
    }
    Ok(())
}

/// Whether an object read as `name` in `namespace` is that object. A
/// namespace missing from the answer is taken as the one asked.
pub fn is_object(meta: &kube::api::ObjectMeta, namespace: &str, name: &str) -> bool {
    meta.name.as_deref() == Some(name) && in_namespace(meta, namespace)
}

fn in_namespace(meta: &kube::api::ObjectMeta, namespace: &str) -> bool {
    meta.namespace.as_deref().is_none_or(|n| n == namespace)
}

/// The object if it is `name` in `namespace`, else an error naming both.
fn belonging<K: kube::Resource>(
    object: K,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<K, KubeError> {
    let meta = object.meta();
    if is_object(meta, namespace, name) {
        return Ok(object);
    }
    Err(KubeError(format!(
        "asked for {kind} {name} in {namespace}, the API server answered with {} in {}; nothing is judged from it",
        meta.name.as_deref().unwrap_or("an unnamed object"),
        meta.namespace.as_deref().unwrap_or(namespace)
    )))
}

/// What a call needed, for a 403: `verb` on `resource`.
fn refused(e: kube::Error, verb: &str, resource: &str, what: &str) -> KubeError {
    match &e {
        kube::Error::Api(s) if s.code == 403 => KubeError(format!(
            "forbidden: {what}: runbookd's service account needs `{verb}` on `{resource}` in its Role ({})",
            s.message
        )),
        _ => describe(e, what),
    }
}

/// The real cluster; the client is made on first use.
#[derive(Default)]
pub struct Cluster {
    client: OnceCell<kube::Client>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cluster")
    }
}

impl Cluster {
    /// A cluster over a given client (a `tower_test` mock in tests).
    pub fn with_client(client: kube::Client) -> Self {
        Cluster {
            client: OnceCell::new_with(Some(client)),
        }
    }

    async fn client(&self) -> Result<kube::Client, KubeError> {
        self.client
            .get_or_try_init(|| async {
                kube::Client::try_default().await.map_err(|e| {
                    KubeError(format!(
                        "no Kubernetes config (in-cluster service account or KUBECONFIG): {e}"
                    ))
                })
            })
            .await
            .cloned()
    }
}

fn describe(e: kube::Error, what: &str) -> KubeError {
    let msg = match &e {
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
            format!("auth: {what}: {} ({})", s.message, s.code)
        }
        kube::Error::Api(s) => format!("{what}: {} ({})", s.message, s.code),
        other => format!("{what}: {other}"),
    };
    KubeError(msg)
}

#[async_trait]
impl ClusterApi for Cluster {
    async fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<Pod>, KubeError> {
        exact("namespace", namespace)?;
        exact("label selector", selector)?;
        let api: Api<Pod> = Api::namespaced(self.client().await?, namespace);
        api.list(&ListParams::default().labels(selector))
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter(|p| in_namespace(&p.metadata, namespace))
                    .collect()
            })
            .map_err(|e| describe(e, &format!("list pods {selector} in {namespace}")))
    }

    async fn deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Deployment>, KubeError> {
        exact("namespace", namespace)?;
        exact("deployment name", name)?;
        let api: Api<Deployment> = Api::namespaced(self.client().await?, namespace);
        api.get_opt(name)
            .await
            .map_err(|e| describe(e, &format!("get deployment {name} in {namespace}")))?
            .map(|d| belonging(d, "deployment", namespace, name))
            .transpose()
    }

    async fn pod_metrics(
        &self,
        namespace: &str,
        selector: &str,
    ) -> Result<Option<Vec<PodMetrics>>, KubeError> {
        exact("namespace", namespace)?;
        exact("label selector", selector)?;
        let client = self.client().await?;
        let path = format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods?labelSelector={}",
            url::form_urlencoded::byte_serialize(selector.as_bytes()).collect::<String>()
        );
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| KubeError(format!("build metrics request: {e}")))?;
        match client.request::<PodMetricsList>(req).await {
            Ok(list) => Ok(Some(list.items)),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(describe(e, "read pod metrics (metrics.k8s.io)")),
        }
    }

    async fn replica_sets(
        &self,
        namespace: &str,
        deployment: &Deployment,
    ) -> Result<Vec<ReplicaSet>, KubeError> {
        let name = deployment.metadata.name.clone().unwrap_or_default();
        let selector = deployment
            .spec
            .selector
            .match_labels
            .as_ref()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client().await?, namespace);
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| {
                refused(
                    e,
                    "list",
                    "replicasets",
                    &format!("list ReplicaSets of {name}"),
                )
            })?;
        let uid = deployment.metadata.uid.clone();
        Ok(list
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata.owner_references.as_ref().is_some_and(|o| {
                    o.iter().any(|r| {
                        // The uid tells this deployment from an earlier
                        // one of the same name.
                        r.kind == "Deployment"
                            && match &uid {
                                Some(u) => &r.uid == u,
                                None => r.name == name,
                            }
                    })
                })
            })
            .collect())
    }

    async fn patch_deployment(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Deployment, KubeError> {
        exact("namespace", namespace)?;
        exact("deployment name", name)?;
        let api: Api<Deployment> = Api::namespaced(self.client().await?, namespace);
        let d = api
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .map_err(|e| {
                refused(
                    e,
                    "patch",
                    "deployments",
                    &format!("patch deployment {name} in {namespace}"),
                )
            })?;
        belonging(d, "deployment", namespace, name)
    }

    async fn create_job(&self, namespace: &str, job: &Job) -> Result<Job, KubeError> {
        exact("namespace", namespace)?;
        let api: Api<Job> = Api::namespaced(self.client().await?, namespace);
        let name = job.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), job).await.map_err(|e| {
            refused(
                e,
                "create",
                "jobs",
                &format!("create Job {name} in {namespace}"),
            )
        })
    }

    async fn job(&self, namespace: &str, name: &str) -> Result<Option<Job>, KubeError> {
        exact("namespace", namespace)?;
        exact("Job name", name)?;
        let api: Api<Job> = Api::namespaced(self.client().await?, namespace);
        api.get_opt(name)
            .await
            .map_err(|e| refused(e, "get", "jobs", &format!("get Job {name} in {namespace}")))?
            .map(|j| belonging(j, "Job", namespace, name))
            .transpose()
    }

    async fn job_logs(&self, namespace: &str, job: &str, tail: i64) -> Result<String, KubeError> {
        exact("namespace", namespace)?;
        exact("Job name", job)?;
        let pods: Api<Pod> = Api::namespaced(self.client().await?, namespace);
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .map_err(|e| refused(e, "list", "pods", &format!("list pods of Job {job}")))?;
        let mut out = String::new();
        for p in list.items {
            let pod = p.metadata.name.unwrap_or_default();
            let logs = pods
                .logs(
                    &pod,
                    &LogParams {
                        tail_lines: Some(tail),
                        ..LogParams::default()
                    },
                )
                .await
                .map_err(|e| {
                    refused(e, "get", "pods/log", &format!("read the logs of pod {pod}"))
                })?;
            out.push_str(&logs);
        }
        Ok(out)
    }

    async fn pod_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        tail: i64,
        previous: bool,
    ) -> Result<String, KubeError> {
        exact("namespace", namespace)?;
        exact("pod name", pod)?;
        let pods: Api<Pod> = Api::namespaced(self.client().await?, namespace);
        pods.logs(
            pod,
            &LogParams {
                container: (!container.is_empty()).then(|| container.to_string()),
                tail_lines: Some(tail),
                limit_bytes: Some(256 * 1024),
                previous,
                ..LogParams::default()
            },
        )
        .await
        .map_err(|e| refused(e, "get", "pods/log", &format!("read the logs of pod {pod}")))
    }

    async fn warning_events(&self, namespace: &str) -> Result<Vec<Event>, KubeError> {
        exact("namespace", namespace)?;
        let api: Api<Event> = Api::namespaced(self.client().await?, namespace);
        api.list(&ListParams::default().fields("type=Warning"))
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter(|e| in_namespace(&e.metadata, namespace))
                    .collect()
            })
            .map_err(|e| {
                refused(
                    e,
                    "list",
                    "events",
                    &format!("list Warning events in {namespace}"),
                )
            })
    }

    async fn annotate_external_secret(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), KubeError> {
        exact("namespace", namespace)?;
        exact("ExternalSecret name", name)?;
        let client = self.client().await?;
        let path = format!(
            "/apis/external-secrets.io/v1beta1/namespaces/{namespace}/externalsecrets/{name}"
        );
        let body = serde_json::json!({"metadata": {"annotations": {key: value}}});
        let req = http::Request::patch(path)
            .header("Content-Type", "application/merge-patch+json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .map_err(|e| KubeError(format!("build ExternalSecret patch: {e}")))?;
        client
            .request::<serde_json::Value>(req)
            .await
            .map(|_| ())
            .map_err(|e| {
                refused(
                    e,
                    "patch",
                    "externalsecrets.external-secrets.io",
                    &format!("annotate ExternalSecret {name} in {namespace}"),
                )
            })
    }

    async fn external_secret_sync(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ExternalSecretSync, KubeError> {
        exact("namespace", namespace)?;
        exact("ExternalSecret name", name)?;
        let client = self.client().await?;
        let path = format!(
            "/apis/external-secrets.io/v1beta1/namespaces/{namespace}/externalsecrets/{name}"
        );
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| KubeError(format!("build ExternalSecret read: {e}")))?;
        client
            .request::<serde_json::Value>(req)
            .await
            .map(|v| external_secret_sync(&v))
            .map_err(|e| {
                refused(
                    e,
                    "get",
                    "externalsecrets.external-secrets.io",
                    &format!("read ExternalSecret {name} in {namespace}"),
                )
            })
    }
}

/// Bytes in a Kubernetes quantity such as `512Mi`, `1Gi`, `1500M`, `1e9`.
pub fn quantity_bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "m" => 1e-3,
        _ => return None,
    };
    Some(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for (q, want) in [
            ("512Mi", 512.0 * 1024.0 * 1024.0),
            ("1Gi", 1024.0 * 1024.0 * 1024.0),
            ("1500M", 1.5e9),
            ("123456Ki", 123456.0 * 1024.0),
            ("1e9", 1e9),
            ("2048", 2048.0),
        ] {
            assert_eq!(quantity_bytes(q), Some(want), "{q}");
        }
        assert_eq!(quantity_bytes("12Zi"), None);
    }
}
