//! The changes runbookd makes to a cluster, request by request, against a
//! scripted API server (`tower_test`, as kube-rs tests its controllers):
//! the restart patch, the rollback and scale patches' target, the migration
//! Job, its status and logs, the ExternalSecret nudge, and a 403 that names
//! the missing RBAC verb. Every scenario runs under a timeout.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use runbookd::adapters::kube::{Cluster, ClusterApi};
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// One expected request, what to check in it, and the answer.
struct Expect {
    method: Method,
    path: &'static str,
    query: Option<&'static str>,
    content_type: Option<&'static str>,
    body: Option<Box<dyn Fn(&Value) + Send + Sync>>,
    status: StatusCode,
    answer: Vec<u8>,
}

impl Expect {
    fn new(method: Method, path: &'static str, answer: Value) -> Self {
        Expect {
            method,
            path,
            query: None,
            content_type: None,
            body: None,
            status: StatusCode::OK,
            answer: serde_json::to_vec(&answer).unwrap(),
        }
    }

    fn query(mut self, q: &'static str) -> Self {
        self.query = Some(q);
        self
    }

    fn content_type(mut self, c: &'static str) -> Self {
        self.content_type = Some(c);
        self
    }

    fn body(mut self, f: impl Fn(&Value) + Send + Sync + 'static) -> Self {
        self.body = Some(Box::new(f));
        self
    }

    fn status(mut self, s: StatusCode) -> Self {
        self.status = s;
        self
    }

    fn text(mut self, t: &str) -> Self {
        self.answer = t.as_bytes().to_vec();
        self
    }
}

async fn serve(mut handle: ApiHandle, script: Vec<Expect>) {
    for e in script {
        let (req, send) = handle
            .next_request()
            .await
            .expect("the client made fewer requests than scripted");
        assert_eq!(req.method(), e.method, "{}", req.uri());
        assert_eq!(req.uri().path(), e.path);
        if let Some(q) = e.query {
            let query = req.uri().query().unwrap_or("");
            assert!(query.contains(q), "query {query:?} lacks {q:?}");
        }
        if let Some(c) = e.content_type {
            let got = req
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(got.as_deref(), Some(c));
        }
        if let Some(check) = &e.body {
            let bytes = req.into_body().collect_bytes().await.unwrap();
            check(&serde_json::from_slice(&bytes).unwrap());
        }
        send.send_response(
            Response::builder()
                .status(e.status)
                .body(Body::from(e.answer))
                .unwrap(),
        );
    }
}

async fn scenario<F: std::future::Future<Output = ()>>(
    script: Vec<Expect>,
    f: impl FnOnce(Cluster) -> F,
) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let cluster = Cluster::with_client(kube::Client::new(service, "default"));
    let server = tokio::spawn(serve(handle, script));
    tokio::time::timeout(Duration::from_secs(10), async {
        f(cluster).await;
        server.await.expect("the scripted server saw every request");
    })
    .await
    .expect("scenario timed out");
}

fn deployment(generation: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "api-deployment", "namespace": "default", "generation": generation, "uid": "d-1"},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                    "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "api:3"}]}}}})
}

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/default/deployments/api-deployment";

#[tokio::test]
async fn the_restart_patch_is_a_strategic_merge_of_the_restarted_at_annotation() {
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
        .unwrap()
        .to_utc();
    let patch = runbookd::jobs::rollout::restart_patch(at);
    let want = patch.clone();
    scenario(
        vec![
            Expect::new(Method::PATCH, DEPLOYMENT, deployment(4))
                .content_type("application/strategic-merge-patch+json")
                .body(move |b| assert_eq!(b, &want)),
        ],
        |c| async move {
            let d = c
                .patch_deployment("default", "api-deployment", &patch)
                .await
                .unwrap();
            assert_eq!(d.metadata.generation, Some(4));
        },
    )
    .await;
}

#[tokio::test]
async fn a_forbidden_patch_says_which_verb_the_role_lacks() {
    scenario(
        vec![Expect::new(
            Method::PATCH,
            DEPLOYMENT,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "deployments.apps \"api-deployment\" is forbidden: User \"system:serviceaccount:ops:runbookd\" cannot patch resource \"deployments\"",
                   "reason": "Forbidden", "code": 403}),
        )
        .status(StatusCode::FORBIDDEN)],
        |c| async move {
            let e = c
                .patch_deployment("default", "api-deployment", &json!({"spec": {"replicas": 0}}))
                .await
                .unwrap_err();
            assert!(e.0.contains("needs `patch` on `deployments`"), "{e}");
        },
    )
    .await;
}

#[tokio::test]
async fn undo_reads_the_deployments_own_replica_sets() {
    let dep: k8s_openapi::api::apps::v1::Deployment =
        serde_json::from_value(deployment(4)).unwrap();
    let owned = |name: &str, uid: &str| {
        json!({"metadata": {"name": name, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api-deployment", "uid": uid}]},
               "spec": {"selector": {"matchLabels": {"app": "api"}}}})
    };
    scenario(
        vec![
            Expect::new(
                Method::GET,
                "/apis/apps/v1/namespaces/default/replicasets",
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {},
                   "items": [owned("api-deployment-2", "d-1"), owned("other-1", "d-9")]}),
            )
            .query("labelSelector=app%3Dapi"),
        ],
        |c| async move {
            let sets = c.replica_sets("default", &dep).await.unwrap();
            let names: Vec<_> = sets
                .iter()
                .map(|s| s.metadata.name.clone().unwrap())
                .collect();
            assert_eq!(names, ["api-deployment-2"]);
        },
    )
    .await;
}

#[tokio::test]
async fn the_migration_job_is_created_read_and_its_logs_fetched() {
    let dep: k8s_openapi::api::apps::v1::Deployment =
        serde_json::from_value(deployment(4)).unwrap();
    let job = runbookd::jobs::snapshot_migrate::migration_job(
        &dep,
        None,
        "migrate-7",
        &["npm".into(), "run".into(), "migrate".into()],
        Duration::from_secs(1800),
        Default::default(),
    )
    .unwrap();
    let created = serde_json::to_value(&job).unwrap();
    let done = {
        let mut j = created.clone();
        j["status"] =
            json!({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1});
        j
    };
    scenario(
        vec![
            Expect::new(Method::POST, "/apis/batch/v1/namespaces/default/jobs", created.clone()).body(|b| {
                assert_eq!(b["spec"]["backoffLimit"], 0);
                assert_eq!(b["spec"]["activeDeadlineSeconds"], 1800);
                assert_eq!(b["spec"]["template"]["spec"]["restartPolicy"], "Never");
                assert_eq!(b["spec"]["template"]["spec"]["containers"][0]["image"], "api:3");
                assert_eq!(b["spec"]["template"]["spec"]["containers"][0]["command"], json!(["npm", "run", "migrate"]));
            }),
            Expect::new(Method::GET, "/apis/batch/v1/namespaces/default/jobs/migrate-7", done),
            Expect::new(
                Method::GET,
                "/api/v1/namespaces/default/pods",
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [{"metadata": {"name": "migrate-7-abcde"}}]}),
            )
            .query("labelSelector=job-name%3Dmigrate-7"),
            Expect::new(Method::GET, "/api/v1/namespaces/default/pods/migrate-7-abcde/log", json!(null))
                .query("tailLines=500")
                .text("Batch 43 run: 1 migration\n"),
        ],
        |c| async move {
            c.create_job("default", &job).await.unwrap();
            let j = c.job("default", "migrate-7").await.unwrap().unwrap();
            assert!(j.status.unwrap().conditions.unwrap().iter().any(|c| c.type_ == "Complete"));
            let logs = c.job_logs("default", "migrate-7", 500).await.unwrap();
            assert_eq!(logs, "Batch 43 run: 1 migration\n");
        },
    )
    .await;
}

#[tokio::test]
async fn an_external_secret_is_nudged_with_a_merge_patch() {
    scenario(
        vec![
            Expect::new(
                Method::PATCH,
                "/apis/external-secrets.io/v1beta1/namespaces/default/externalsecrets/jwt",
                json!({"metadata": {"name": "jwt"}}),
            )
            .content_type("application/merge-patch+json")
            .body(|b| {
                assert_eq!(
                    b,
                    &json!({"metadata": {"annotations": {"force-sync": "1764493200"}}})
                )
            }),
        ],
        |c| async move {
            c.annotate_external_secret("default", "jwt", "force-sync", "1764493200")
                .await
                .unwrap();
        },
    )
    .await;
}

#[tokio::test]
async fn an_external_secrets_refresh_is_read_from_its_status() {
    scenario(
        vec![Expect::new(
            Method::GET,
            "/apis/external-secrets.io/v1beta1/namespaces/default/externalsecrets/jwt",
            json!({"metadata": {"name": "jwt"},
                   "status": {"refreshTime": "2026-11-30T09:00:05Z",
                              "conditions": [{"type": "Ready", "status": "False",
                                              "reason": "SecretSyncedError",
                                              "message": "could not get secret data from provider"}]}}),
        )],
        |c| async move {
            let s = c.external_secret_sync("default", "jwt").await.unwrap();
            assert_eq!(
                s.refreshed_at.unwrap().to_rfc3339(),
                "2026-11-30T09:00:05+00:00"
            );
            assert_eq!(
                s.ready,
                Some((false, "could not get secret data from provider".to_string()))
            );
        },
    )
    .await;
}
