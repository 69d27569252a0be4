//! The shipped daily checklist against local servers, against the same
//! checks run one after another as the runbook's shell commands would (curl,
//! psql, redis-cli, AWS-style HTTP calls). Run with `scripts/bench.sh
//! checklist`, which starts the services. Results go to BENCHMARKS.md.
//!
//! Targets: the shipped jobs.yaml with every variable pointed at loopback:
//! an API stub answering /health after 20 ms, the test Prometheus (queried at
//! the fixture's time), Alertmanager, Redis, a Postgres database with
//! consent_log, moto for RDS and Secrets Manager, and a stub Kubernetes API
//! server reached through a generated KUBECONFIG.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use runbookd::adapters::Adapters;
use runbookd::checks::{self, CheckContext, CheckStatus};
use runbookd::jobs::checklist::ChecklistSpec;
use runbookd::testkit::{TestDatabase, service};
use serde_json::json;

const RUNS: usize = 11;
const T0: &str = "2026-01-08T09:00:00Z";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn api_stub() -> std::net::SocketAddr {
    serve(axum::Router::new().route(
        "/health",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            ([("content-type", "application/json")], r#"{"status":"ok"}"#)
        }),
    ))
    .await
}

async fn kube_stub() -> std::net::SocketAddr {
    let pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "labels": {"app": "api"}},
               "spec": {"containers": [{"name": "api", "image": "flexoraa/api", "resources": {"limits": {"memory": "1Gi"}}}]},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                          "containerStatuses": [{"name": "api", "ready": true, "restartCount": 0, "image": "x", "imageID": "",
                                                 "state": {"running": {"startedAt": "2026-01-07T00:00:00Z"}}}]}})
    };
    let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod("api-1"), pod("api-2")]});
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api-deployment", "namespace": "default"},
                     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                              "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "x"}]}}},
                     "status": {"replicas": 2, "availableReplicas": 2, "updatedReplicas": 2}});
    let metrics = json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": [
        {"metadata": {"name": "api-1"}, "containers": [{"name": "api", "usage": {"memory": "400Mi"}}]},
        {"metadata": {"name": "api-2"}, "containers": [{"name": "api", "usage": {"memory": "420Mi"}}]}]});
    let json_route = |v: serde_json::Value| {
        let body = v.to_string();
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        })
    };
    serve(
        axum::Router::new()
            .route("/api/v1/namespaces/default/pods", json_route(pods))
            .route(
                "/apis/apps/v1/namespaces/default/deployments/api-deployment",
                json_route(dep),
            )
            .route(
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
                json_route(metrics),
            ),
    )
    .await
}

/// The runbook's commands for the same checks, one after another.
fn shell_commands(env: &Env) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let t0 = DateTime::parse_from_rfc3339(T0)
        .unwrap()
        .timestamp()
        .to_string();
    let mut cmds = vec![s(&[
        "curl",
        "-sf",
        "-o",
        "/dev/null",
        &format!("{}/health", env.api),
    ])];
    let prom_query = |q: &str, at: &str| {
        s(&[
            "curl",
            "-sf",
            "-o",
            "/dev/null",
            "--get",
            &format!("{}/api/v1/query", env.prometheus),
            "--data-urlencode",
            &format!("query={q}"),
            "--data-urlencode",
            &format!("time={at}"),
        ])
    };
    cmds.push(prom_query(r#"sum(rate(http_requests_total{job="api",status=~"5.."}[24h])) / sum(rate(http_requests_total{job="api"}[24h]))"#, &t0));
    for day in 0..=7i64 {
        let at = (DateTime::parse_from_rfc3339(T0).unwrap().timestamp() - day * 86400).to_string();
        cmds.push(prom_query(
            r#"sum(increase(http_requests_total{job="api",status=~"5.."}[12h]))"#,
            &at,
        ));
    }
    cmds.push(prom_query("sum(increase(ai_tokens_total[24h]))", &t0));
    let aws = |action: &str, extra: &str| {
        s(&[
            "curl",
            "-sf",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            &env.aws,
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260108/ap-south-1/rds/aws4_request, SignedHeaders=host, Signature=x",
            "--data",
            &format!(
                "Action={action}&Version=2014-10-31&DBInstanceIdentifier={}{extra}",
                env.rds_instance
            ),
        ])
    };
    cmds.push(aws("DescribeDBInstances", ""));
    cmds.push(aws("DescribeDBSnapshots", "&SnapshotType=automated"));
    cmds.push(s(&[
        "curl",
        "-sf",
        "-o",
        "/dev/null",
        &format!(
            "{}/api/v2/alerts?active=true&silenced=false&inhibited=false",
            env.alertmanager
        ),
    ]));
    for path in [
        "/api/v1/namespaces/default/pods?labelSelector=app%3Dapi",
        "/apis/apps/v1/namespaces/default/deployments/api-deployment",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dapi",
    ] {
        cmds.push(s(&[
            "curl",
            "-sf",
            "-o",
            "/dev/null",
            &format!("{}{path}", env.kube),
        ]));
    }
    cmds.push(s(&["redis-cli", "-u", &env.redis, "PING"]));
    cmds.push(s(&["psql", &env.app_db, "-Atc", "SELECT count(*)::float8 / current_setting('max_connections')::float8 FROM pg_stat_activity"]));
    cmds.push(s(&["curl", "-sf", "-o", "/dev/null", "-X", "POST", &env.aws, "-H", "Content-Type: application/x-amz-json-1.1",
        "-H", "X-Amz-Target: secretsmanager.DescribeSecret",
        "-H", "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260108/ap-south-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=x",
        "--data", &format!("{{\"SecretId\": \"{}\"}}", env.secret_id)]));
    cmds
}

struct Env {
    api: String,
    prometheus: String,
    alertmanager: String,
    redis: String,
    app_db: String,
    aws: String,
    kube: String,
    rds_instance: String,
    secret_id: String,
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (env, _db) = rt.block_on(async {
        let api = api_stub().await;
        let kube = kube_stub().await;
        let db = TestDatabase::postgres().await;
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query("CREATE TABLE consent_log (id bigserial PRIMARY KEY, action text, created_at timestamptz DEFAULT now())")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let aws = service("RUNBOOKD_TEST_AWS_ENDPOINT", "moto");
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(runbookd::adapters::aws::https_client())
            .endpoint_url(&aws)
            .region(aws_config::Region::new("ap-south-1"))
            .credentials_provider(aws_sdk_rds::config::Credentials::new("testing", "testing", None, None, "bench"))
            .load()
            .await;
        let suffix = Utc::now().timestamp_nanos_opt().unwrap();
        let rds_instance = format!("bench-db-{suffix}");
        aws_sdk_rds::Client::new(&conf)
            .create_db_instance()
            .db_instance_identifier(&rds_instance)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .master_username("u")
            .master_user_password("bench-password")
            .allocated_storage(20)
            .backup_retention_period(7)
            .send()
            .await
            .unwrap();
        let secret_id = format!("/flexoraa/bench/jwt-{suffix}");
        aws_sdk_secretsmanager::Client::new(&conf).create_secret().name(&secret_id).secret_string("x").send().await.unwrap();
        (
            Env {
                api: format!("http://{api}"),
                prometheus: service("RUNBOOKD_TEST_PROMETHEUS_URL", "Prometheus"),
                alertmanager: service("RUNBOOKD_TEST_ALERTMANAGER_URL", "Alertmanager"),
                redis: service("RUNBOOKD_TEST_REDIS_URL", "Redis"),
                app_db: db.url.clone(),
                aws,
                kube: format!("http://{kube}"),
                rds_instance,
                secret_id,
            },
            db,
        )
    });
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stub\n  cluster:\n    server: {}\nusers:\n- name: bench\n  user:\n    token: bench\ncontexts:\n- name: stub\n  context:\n    cluster: stub\n    user: bench\n    namespace: default\ncurrent-context: stub\n",
            env.kube
        ),
    )
    .unwrap();
    // The shipped jobs.yaml reads its targets from the environment; set
    // before any other thread reads it.
    let vars = [
        ("FLEXORAA_API_URL", env.api.clone()),
        ("PROMETHEUS_URL", env.prometheus.clone()),
        ("ALERTMANAGER_URL", env.alertmanager.clone()),
        ("REDIS_URL", env.redis.clone()),
        ("APP_DATABASE_URL", env.app_db.clone()),
        ("AWS_ENDPOINT_URL", env.aws.clone()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "ap-south-1".into()),
        ("RDS_INSTANCE_ID", env.rds_instance.clone()),
        ("JWT_SECRET_ID", env.secret_id.clone()),
        ("KUBECONFIG", kubeconfig.display().to_string()),
    ];
    let lookup = |k: &str| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(k).ok())
    };
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/jobs.yaml")).unwrap();
    let config =
        runbookd::jobs::load_str(std::path::Path::new("jobs.yaml"), &text, &lookup).unwrap();
    for (k, v) in &vars {
        // SAFETY: single-threaded apart from the runtime's workers, which
        // read no environment yet (aws-config and kube read it on first use).
        unsafe { std::env::set_var(k, v) };
    }
    let daily = config.jobs["daily-checklist"]
        .spec_as::<ChecklistSpec>()
        .expect("daily-checklist is a checklist");
    let now = DateTime::parse_from_rfc3339(T0)
        .unwrap()
        .with_timezone(&Utc);
    let ctx = || CheckContext {
        now,
        adapters: Arc::new(Adapters::real()),
        timeout: checks::DEFAULT_CHECK_TIMEOUT,
        redactor: Default::default(),
    };

    // Warm-up, and a look at the verdicts so a broken target is noticed.
    let results = rt.block_on(checks::run_all(
        &daily.checks.value,
        &ctx(),
        daily.max_concurrency(),
    ));
    for r in &results {
        println!(
            "  {:<28} {:<5} {}",
            r.check,
            r.status,
            r.reason.chars().take(90).collect::<String>()
        );
    }
    let errors = results
        .iter()
        .filter(|r| r.status == CheckStatus::Error)
        .count();
    println!("warm-up: {} results, {errors} in error", results.len());

    let mut single = Vec::new();
    for c in &daily.checks.value {
        let times: Vec<f64> = (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                rt.block_on(c.execute(&ctx()));
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        single.push((c.name.clone(), median(times)));
    }
    let mut whole = Vec::new();
    let mut shell = Vec::new();
    let cmds = shell_commands(&env);
    for _ in 0..RUNS {
        let t = Instant::now();
        rt.block_on(checks::run_all(
            &daily.checks.value,
            &ctx(),
            daily.max_concurrency(),
        ));
        whole.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        for c in &cmds {
            let out = Command::new(&c[0]).args(&c[1..]).output().unwrap();
            assert!(
                out.status.success(),
                "{c:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        shell.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!("single checks, median of {RUNS} (ms):");
    for (name, ms) in &single {
        println!("  {name:<20} {ms:8.1}");
    }
    let (slowest_name, slowest) = single
        .iter()
        .cloned()
        .fold(("".to_string(), 0.0), |a, b| if b.1 > a.1 { b } else { a });
    let sum: f64 = single.iter().map(|(_, ms)| ms).sum();
    let whole = median(whole);
    let shell = median(shell);
    println!("sum of single checks: {sum:.1} ms; slowest: {slowest_name} {slowest:.1} ms");
    println!(
        "checklist (concurrent, bound {}), median of {RUNS}: {whole:.1} ms = {:.2} x the slowest check",
        daily.max_concurrency(),
        whole / slowest
    );
    println!(
        "runbook shell commands one after another ({} commands), median of {RUNS}: {shell:.1} ms = {:.2} x the checklist",
        cmds.len(),
        shell / whole
    );
}
