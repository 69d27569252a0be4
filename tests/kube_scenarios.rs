//! The Kubernetes check against a scripted API server, the way kube-rs tests
//! its own controllers: a `tower_test` mock answers each request the client
//! makes, asserting the request, and every scenario runs under a timeout.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use runbookd::adapters::Adapters;
use runbookd::adapters::kube::{Cluster, ClusterApi};
use runbookd::checks::{self, CheckContext, CheckStatus};
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

const NOW: &str = "2026-11-29T09:00:00Z";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc)
}

/// One expected request and the answer to give.
struct Step {
    path: &'static str,
    query_contains: Option<&'static str>,
    status: StatusCode,
    body: Value,
    /// A plain-text answer (a pod's log) instead of JSON.
    text: Option<&'static str>,
}

impl Step {
    fn ok(path: &'static str, body: Value) -> Self {
        Step {
            path,
            query_contains: None,
            status: StatusCode::OK,
            body,
            text: None,
        }
    }

    fn text(path: &'static str, text: &'static str) -> Self {
        Step {
            text: Some(text),
            ..Step::ok(path, Value::Null)
        }
    }

    fn selector(mut self, q: &'static str) -> Self {
        self.query_contains = Some(q);
        self
    }

    fn status(mut self, s: StatusCode) -> Self {
        self.status = s;
        self
    }
}

/// Plays the API server's side: each request must match the next step.
async fn serve(mut handle: ApiHandle, steps: Vec<Step>) {
    for step in steps {
        let (req, send) = handle
            .next_request()
            .await
            .expect("the client made fewer requests than scripted");
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().path(), step.path);
        if let Some(q) = step.query_contains {
            let query = req.uri().query().unwrap_or("");
            assert!(query.contains(q), "query {query:?} lacks {q:?}");
        }
        send.send_response(
            Response::builder()
                .status(step.status)
                .body(Body::from(match step.text {
                    Some(t) => t.as_bytes().to_vec(),
                    None => serde_json::to_vec(&step.body).unwrap(),
                }))
                .unwrap(),
        );
    }
}

fn cluster_and_server(steps: Vec<Step>) -> (Cluster, tokio::task::JoinHandle<()>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    (
        Cluster::with_client(client),
        tokio::spawn(serve(handle, steps)),
    )
}

fn pod_list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items})
}

fn pod(name: &str, ready: bool, waiting: Option<&str>) -> Value {
    let state = match waiting {
        Some(reason) => json!({"waiting": {"reason": reason}}),
        None => json!({"running": {"startedAt": "2026-11-28T10:00:00Z"}}),
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "api"}},
        "spec": {"containers": [{"name": "api", "image": "flexoraa/api:1.4.2",
                 "resources": {"limits": {"memory": "1Gi"}}}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                   "containerStatuses": [{"name": "api", "ready": ready, "restartCount": 0,
                                          "image": "flexoraa/api:1.4.2", "imageID": "", "state": state}]}
    })
}

fn deployment(available: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api-deployment", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "x"}]}}},
        "status": {"replicas": 2, "availableReplicas": available, "updatedReplicas": 2}
    })
}

fn not_found(what: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("{what} not found"), "reason": "NotFound", "code": 404})
}

async fn run_check(cluster: Cluster) -> Vec<checks::CheckResult> {
    let check = checks::parse(
        "{name: api, kind: kubernetes, namespace: default, selector: app=api, deployment: api-deployment}",
    )
    .unwrap();
    let ctx = CheckContext {
        now: now(),
        adapters: Arc::new(Adapters::real().with_cluster(Arc::new(cluster))),
        timeout: Duration::from_secs(10),
        redactor: Default::default(),
    };
    check.execute(&ctx).await
}

async fn scenario<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("scenario timed out");
}

#[tokio::test]
async fn healthy_pods_full_rollout_and_metrics() {
    scenario(async {
        let (cluster, server) = cluster_and_server(vec![
            Step::ok("/api/v1/namespaces/default/pods", pod_list(vec![pod("api-1", true, None), pod("api-2", true, None)]))
                .selector("labelSelector=app%3Dapi"),
            Step::ok("/apis/apps/v1/namespaces/default/deployments/api-deployment", deployment(2)),
            Step::ok(
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
                json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": [
                    {"metadata": {"name": "api-1"}, "timestamp": NOW, "window": "30s",
                     "containers": [{"name": "api", "usage": {"cpu": "100m", "memory": "512Mi"}}]},
                    {"metadata": {"name": "api-2"}, "timestamp": NOW, "window": "30s",
                     "containers": [{"name": "api", "usage": {"cpu": "100m", "memory": "256Mi"}}]}
                ]}),
            )
            .selector("labelSelector=app%3Dapi"),
        ]);
        let results = run_check(cluster).await;
        server.await.unwrap();
        let got: Vec<(&str, CheckStatus)> = results.iter().map(|r| (r.check.as_str(), r.status)).collect();
        assert_eq!(
            got,
            [
                ("api/ready", CheckStatus::Pass),
                ("api/restarts", CheckStatus::Pass),
                ("api/oomkilled", CheckStatus::Pass),
                ("api/rollout", CheckStatus::Pass),
                ("api/memory", CheckStatus::Pass),
            ],
            "{results:#?}"
        );
        assert!(results[4].reason.contains("api-1/api uses 512 MiB of 1024 MiB (50%)"), "{}", results[4].reason);
    })
    .await;
}

#[tokio::test]
async fn crash_loop_short_rollout_and_no_metrics_api() {
    scenario(async {
        let (cluster, server) = cluster_and_server(vec![
            Step::ok(
                "/api/v1/namespaces/default/pods",
                pod_list(vec![
                    pod("api-1", true, None),
                    pod("api-2", false, Some("CrashLoopBackOff")),
                ]),
            ),
            Step::ok(
                "/apis/apps/v1/namespaces/default/deployments/api-deployment",
                deployment(1),
            ),
            Step::ok(
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
                not_found("the server could not find the requested resource"),
            )
            .status(StatusCode::NOT_FOUND),
        ]);
        let results = run_check(cluster).await;
        server.await.unwrap();
        assert_eq!(results[0].status, CheckStatus::Fail);
        assert!(
            results[0].reason.contains("api-2 (CrashLoopBackOff)"),
            "{}",
            results[0].reason
        );
        assert_eq!(results[3].status, CheckStatus::Fail);
        assert!(
            results[3].reason.contains("only 1/2 available"),
            "{}",
            results[3].reason
        );
        assert_eq!(results[4].status, CheckStatus::Warn);
        assert!(
            results[4].reason.contains("does not serve metrics.k8s.io"),
            "{}",
            results[4].reason
        );
    })
    .await;
}

#[tokio::test]
async fn missing_deployment_and_forbidden_pods() {
    scenario(async {
        let (cluster, server) = cluster_and_server(vec![
            Step::ok("/apis/apps/v1/namespaces/default/deployments/api-deployment", not_found("deployments.apps \"api-deployment\""))
                .status(StatusCode::NOT_FOUND),
        ]);
        let dep = cluster.deployment("default", "api-deployment").await.unwrap();
        assert!(dep.is_none(), "404 is 'no such deployment', not an error");
        server.await.unwrap();

        let (cluster, server) = cluster_and_server(vec![Step::ok(
            "/api/v1/namespaces/default/pods",
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "pods is forbidden: User \"system:serviceaccount:ops:runbookd\" cannot list resource \"pods\"",
                   "reason": "Forbidden", "code": 403}),
        )
        .status(StatusCode::FORBIDDEN)]);
        let results = run_check(cluster).await;
        server.await.unwrap();
        assert_eq!(results.len(), 1, "{results:#?}");
        assert_eq!(results[0].status, CheckStatus::Error);
        assert!(results[0].reason.starts_with("auth: list pods app=api in default"), "{}", results[0].reason);
    })
    .await;
}

/// What triage reads besides the check's calls: a crash-looping pod's
/// previous log, and the namespace's Warning events; a Role without
/// `list events` is named as such.
#[tokio::test]
async fn previous_logs_and_warning_events_for_triage() {
    scenario(async {
        let (cluster, server) = cluster_and_server(vec![
            Step::text(
                "/api/v1/namespaces/default/pods/api-b/log",
                "Error: sorry, too many clients already\nprocess exited with code 1\n",
            )
            .selector("container=api&limitBytes=262144&previous=true&tailLines=100"),
            Step::ok(
                "/api/v1/namespaces/default/events",
                json!({"apiVersion": "v1", "kind": "EventList", "metadata": {"resourceVersion": "9"}, "items": [
                    {"metadata": {"name": "api-b.1", "namespace": "default"},
                     "involvedObject": {"kind": "Pod", "name": "api-b"},
                     "reason": "BackOff", "message": "Back-off restarting failed container api",
                     "type": "Warning", "count": 14, "lastTimestamp": "2026-11-29T08:59:00Z"}
                ]}),
            )
            .selector("fieldSelector=type%3DWarning"),
        ]);
        let log = cluster.pod_logs("default", "api-b", "api", 100, true).await.unwrap();
        assert!(log.contains("too many clients already"), "{log}");
        let events = cluster.warning_events("default").await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason.as_deref(), Some("BackOff"));
        assert_eq!(events[0].count, Some(14));
        server.await.unwrap();

        let (cluster, server) = cluster_and_server(vec![
            Step::ok(
                "/api/v1/namespaces/default/events",
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "events is forbidden: User \"system:serviceaccount:ops:runbookd\" cannot list resource \"events\"",
                       "reason": "Forbidden", "code": 403}),
            )
            .status(StatusCode::FORBIDDEN),
            Step::ok(
                "/api/v1/namespaces/default/pods/api-b/log",
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "pods \"api-b\" is forbidden", "reason": "Forbidden", "code": 403}),
            )
            .status(StatusCode::FORBIDDEN),
        ]);
        let e = cluster.warning_events("default").await.unwrap_err().to_string();
        assert!(e.contains("needs `list` on `events`"), "{e}");
        let e = cluster.pod_logs("default", "api-b", "api", 100, false).await.unwrap_err().to_string();
        assert!(e.contains("needs `get` on `pods/log`"), "{e}");
        server.await.unwrap();
    })
    .await;
}

/// An empty namespace, name or selector is never sent (the API server reads
/// an empty selector as every pod, an empty name as a list), and what comes
/// back must be what was asked for.
#[tokio::test]
async fn reads_name_their_objects_exactly_and_keep_only_those() {
    scenario(async {
        // Nothing is scripted: an empty identifier must make no request.
        let (cluster, server) = cluster_and_server(vec![]);
        for e in [
            cluster.deployment("default", "").await.unwrap_err(),
            cluster.deployment("", "api-deployment").await.unwrap_err(),
            cluster.pods("default", "").await.unwrap_err(),
            cluster.pods("  ", "app=api").await.unwrap_err(),
            cluster.warning_events("").await.unwrap_err(),
        ] {
            assert!(e.0.contains("names nothing"), "{e}");
        }
        server.await.unwrap();

        let mut other = deployment(2);
        other["metadata"]["name"] = json!("payments-deployment");
        let mut elsewhere = pod("api-9", true, None);
        elsewhere["metadata"]["namespace"] = json!("kube-system");
        let (cluster, server) = cluster_and_server(vec![
            Step::ok(
                "/apis/apps/v1/namespaces/default/deployments/api-deployment",
                other,
            ),
            Step::ok(
                "/api/v1/namespaces/default/pods",
                pod_list(vec![pod("api-1", true, None), elsewhere]),
            )
            .selector("labelSelector=app%3Dapi"),
        ]);
        let e = cluster
            .deployment("default", "api-deployment")
            .await
            .unwrap_err();
        assert!(
            e.0.contains("answered with payments-deployment in default"),
            "{e}"
        );
        let pods = cluster.pods("default", "app=api").await.unwrap();
        let names: Vec<_> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(names, ["api-1"]);
        server.await.unwrap();
    })
    .await;
}
