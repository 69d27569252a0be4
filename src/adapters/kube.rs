//! Kubernetes behind a narrow trait: the pods of a selector, a deployment,
//! and pod memory from `metrics.k8s.io` (the runbook's `kubectl top`). The
//! real implementation uses kube with in-cluster config or `KUBECONFIG`;
//! tests drive it with `tower_test` scenarios and use a fake elsewhere.

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
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
        let api: Api<Pod> = Api::namespaced(self.client().await?, namespace);
        api.list(&ListParams::default().labels(selector))
            .await
            .map(|l| l.items)
            .map_err(|e| describe(e, &format!("list pods {selector} in {namespace}")))
    }

    async fn deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Deployment>, KubeError> {
        let api: Api<Deployment> = Api::namespaced(self.client().await?, namespace);
        api.get_opt(name)
            .await
            .map_err(|e| describe(e, &format!("get deployment {name} in {namespace}")))
    }

    async fn pod_metrics(
        &self,
        namespace: &str,
        selector: &str,
    ) -> Result<Option<Vec<PodMetrics>>, KubeError> {
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
