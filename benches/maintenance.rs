//! Maintenance jobs' own cost (issue 8), release build:
//!
//! - `overhead`: a whole snapshot-before-migrate flow against moto (RDS) and
//!   an in-process cluster, against the time its calls themselves took:
//!   what runbookd adds (steps recorded, logs, decisions).
//! - `waiting_rss`: the process's RSS with 10 such flows waiting on their
//!   snapshots at once.
//! - `triage`: a whole triage (issue 11) against the real Postgres, Redis,
//!   Prometheus and Alertmanager of the test services and a cluster and RDS
//!   that answer after a set delay: the whole run against its slowest part.
//!
//! Needs moto: run under the environment scripts/test.sh sets up
//! (`RUNBOOKD_TEST_AWS_ENDPOINT`), e.g. `scripts/bench.sh maintenance`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use runbookd::adapters::Adapters;
use runbookd::adapters::aws::{Aws, AwsError, DbInstance, DbSnapshot, RdsApi, Target};
use runbookd::model::RunStatus;
use runbookd::runner::{RunRequest, Runner, Stop};
use runbookd::testkit::TestDatabase;
use runbookd::testkit::fakes::{FakeCluster, FakeRds, SnapshotBehaviour};

/// RDS through another client, adding up the time spent in each call.
#[derive(Debug)]
struct Timed {
    inner: Arc<dyn RdsApi>,
    micros: AtomicU64,
}

impl Timed {
    async fn time<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        let t = Instant::now();
        let r = f.await;
        self.micros
            .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        r
    }
}

#[async_trait]
impl RdsApi for Timed {
    async fn instance(&self, t: &Target, id: &str) -> Result<DbInstance, AwsError> {
        self.time(self.inner.instance(t, id)).await
    }
    async fn automated_snapshots(&self, t: &Target, id: &str) -> Result<Vec<DbSnapshot>, AwsError> {
        self.time(self.inner.automated_snapshots(t, id)).await
    }
    async fn manual_snapshots(
        &self,
        t: &Target,
        i: Option<&str>,
    ) -> Result<Vec<DbSnapshot>, AwsError> {
        self.time(self.inner.manual_snapshots(t, i)).await
    }
    async fn create_snapshot(
        &self,
        t: &Target,
        i: &str,
        s: &str,
        tags: &[(String, String)],
    ) -> Result<DbSnapshot, AwsError> {
        self.time(self.inner.create_snapshot(t, i, s, tags)).await
    }
    async fn snapshot(&self, t: &Target, id: &str) -> Result<Option<DbSnapshot>, AwsError> {
        self.time(self.inner.snapshot(t, id)).await
    }
    async fn delete_snapshot(&self, t: &Target, id: &str) -> Result<(), AwsError> {
        self.time(self.inner.delete_snapshot(t, id)).await
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn yaml(instance: &str, poll: &str) -> String {
    format!(
        "jobs:\n  migrate:\n    kind: snapshot_migrate\n    instance: {instance}\n    deployment: api-deployment\n    poll: {poll}\n    snapshot_timeout: 1h\n    keep: 1\n"
    )
}

async fn overhead(endpoint: &str, flows: usize) {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(runbookd::adapters::aws::https_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_rds::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .load()
        .await;
    let instance = format!("bench-db-{}", chrono::Utc::now().timestamp());
    aws_sdk_rds::Client::new(&conf)
        .create_db_instance()
        .db_instance_identifier(&instance)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("bench")
        .master_user_password("not-a-real-password")
        .allocated_storage(20)
        .send()
        .await
        .unwrap();
    let db = TestDatabase::sqlite();
    let store = db.open().await;
    let config = runbookd::jobs::load_str(
        std::path::Path::new("jobs.yaml"),
        &yaml(&instance, "10ms"),
        &|_| None,
    )
    .unwrap();
    let job = config.job("migrate").unwrap().clone();
    let (mut whole, mut calls, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..flows + 1 {
        let rds = Arc::new(Timed {
            inner: Arc::new(Aws::local(endpoint)),
            micros: AtomicU64::new(0),
        });
        let adapters = Adapters::real()
            .with_rds(rds.clone())
            .with_cluster(Arc::new(FakeCluster::default()));
        let runner = Runner::builder(store.clone(), Arc::new(adapters))
            .config(&config)
            .build();
        let req = RunRequest {
            triggered_by: "bench".into(),
            ..Default::default()
        };
        // Snapshot names have a one-second grain.
        tokio::time::sleep(Duration::from_millis(1010)).await;
        let t = Instant::now();
        let mut req = req.clone();
        let id = runner
            .admit(&job, &mut req)
            .await
            .unwrap()
            .started()
            .unwrap();
        let ended = runner.execute(&job, &req, id, &Stop::new()).await;
        let total = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
        if i == 0 {
            continue; // warm-up: the first call pays for the SDK's set-up
        }
        let in_calls = rds.micros.load(Ordering::Relaxed) as f64 / 1000.0;
        whole.push(total);
        calls.push(in_calls);
        ours.push(total - in_calls);
    }
    println!(
        "snapshot-before-migrate against moto and an in-process cluster, {flows} flows: whole flow median {:.1} ms, in RDS calls median {:.1} ms, runbookd's own median {:.1} ms",
        median(&mut whole),
        median(&mut calls),
        median(&mut ours)
    );
}

async fn waiting_rss(flows: usize) {
    let db = TestDatabase::sqlite();
    let store = db.open().await;
    let config = runbookd::jobs::load_str(
        std::path::Path::new("jobs.yaml"),
        &yaml("flexoraa-production-db", "1s"),
        &|_| None,
    )
    .unwrap();
    let job = config.job("migrate").unwrap().clone();
    let before = rss_mib();
    let mut tasks = Vec::new();
    let stops: Vec<Stop> = (0..flows).map(|_| Stop::new()).collect();
    for stop in &stops {
        // A snapshot that stays `creating`: the flow waits on it.
        let rds = Arc::new(
            FakeRds::new("flexoraa-production-db")
                .snapshots_go(SnapshotBehaviour::Available { polls: u32::MAX }),
        );
        let adapters = Adapters::real()
            .with_rds(rds)
            .with_cluster(Arc::new(FakeCluster::default()));
        let runner = Runner::builder(store.clone(), Arc::new(adapters))
            .config(&config)
            .build();
        let (job, stop) = (job.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let req = RunRequest {
                triggered_by: "bench".into(),
                ..Default::default()
            };
            let mut req = req.clone();
            let id = runner
                .admit(&job, &mut req)
                .await
                .unwrap()
                .started()
                .unwrap();
            runner.execute(&job, &req, id, &stop).await
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = rss_mib();
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0);
    for s in &stops {
        s.cancel("benchmark over");
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "{flows} flows waiting on their snapshots: process RSS {before:.1} MiB before, {during:.1} MiB while waiting (+{:.2} MiB, {:.2} MiB a flow); {threads} threads in the process",
        during - before,
        (during - before) / flows as f64
    );
}

/// The shipped triage's parts against real servers and slow fakes; the
/// cluster answers every call after `latency`.
async fn triage(rounds: usize, latency: Duration) {
    let var =
        |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k}: run under scripts/bench.sh"));
    let app = TestDatabase::postgres().await;
    let yaml = format!(
        "jobs:\n  triage:\n    kind: triage\n    part_timeout: 8s\n    database_url: {}\n    redis_url: {}\n    alertmanager_url: {}\n    rds: {{instance: flexoraa-production-db}}\n    prometheus:\n      url: {}\n      error_rate: 'sum(rate(http_requests_total{{scenario=\"bad\",status=~\"5..\"}}[5m])) / sum(rate(http_requests_total{{scenario=\"bad\"}}[5m]))'\n      latency_p99: 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{scenario=\"slow\"}}[5m])))'\n",
        app.url,
        var("RUNBOOKD_TEST_REDIS_URL"),
        var("RUNBOOKD_TEST_ALERTMANAGER_URL"),
        var("RUNBOOKD_TEST_PROMETHEUS_URL"),
    );
    let config =
        runbookd::jobs::load_str(std::path::Path::new("jobs.yaml"), &yaml, &|_| None).unwrap();
    let job = config.job("triage").unwrap().clone();
    let db = TestDatabase::sqlite();
    let store = db.open().await;
    let (mut whole, mut slowest, mut sum) = (Vec::new(), Vec::new(), Vec::new());
    let mut slowest_name = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..rounds + 1 {
        let now = chrono::Utc::now();
        let cluster = FakeCluster::default()
            .with_pods(vec![
                runbookd::testkit::pods::PodBuilder::new("api-a")
                    .ready()
                    .build(),
                runbookd::testkit::pods::PodBuilder::new("api-b")
                    .crash_looping()
                    .restarts(5)
                    .last_end("Error", 1, now - chrono::Duration::minutes(1))
                    .build(),
            ])
            .with_log("api-b", true, "Error: sorry, too many clients already")
            .rolled_out_at(now - chrono::Duration::minutes(30))
            .slow(latency);
        let adapters = Adapters::real()
            .with_cluster(Arc::new(cluster))
            .with_rds(Arc::new(FakeRds::new("flexoraa-production-db")));
        let runner = Runner::builder(store.clone(), Arc::new(adapters))
            .config(&config)
            .build();
        let req = RunRequest::default();
        let t = Instant::now();
        let mut req = req.clone();
        let id = runner
            .admit(&job, &mut req)
            .await
            .unwrap()
            .started()
            .unwrap();
        let ended = runner.execute(&job, &req, id, &Stop::new()).await;
        let total = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
        if i == 0 {
            continue; // warm-up: connections, the first Prometheus query
        }
        let run = store.get_run(id).await.unwrap().unwrap();
        let parts: Vec<(String, f64)> = run
            .steps
            .iter()
            .filter(|s| s.name != "diagnosis")
            .map(|s| {
                assert_eq!(
                    s.status,
                    runbookd::model::StepStatus::Succeeded,
                    "{}: {}",
                    s.name,
                    s.detail
                );
                let took = (s.finished_at.unwrap() - s.started_at)
                    .num_microseconds()
                    .unwrap() as f64
                    / 1000.0;
                (s.name.clone(), took)
            })
            .collect();
        let (name, max) = parts
            .iter()
            .cloned()
            .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap())
            .unwrap();
        *slowest_name.entry(name).or_default() += 1;
        whole.push(total);
        slowest.push(max);
        sum.push(parts.iter().map(|(_, t)| t).sum::<f64>());
    }
    let (w, s, a) = (median(&mut whole), median(&mut slowest), median(&mut sum));
    println!(
        "triage, 8 parts (real Postgres, Redis, Prometheus, Alertmanager; cluster answering after {} ms a call; fake RDS), {rounds} rounds: whole run median {w:.1} ms, its slowest part median {s:.1} ms ({slowest_name:?}), the parts one after another would take {a:.1} ms; whole / slowest = {:.2}, whole - slowest = {:.1} ms",
        latency.as_millis(),
        w / s,
        w - s
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let only = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned();
    let want = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "machine: {} cores; {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        chrono::Utc::now().format("%Y-%m-%d")
    );
    if want("overhead") {
        let endpoint = std::env::var("RUNBOOKD_TEST_AWS_ENDPOINT")
            .expect("RUNBOOKD_TEST_AWS_ENDPOINT: run under scripts/bench.sh, which starts moto");
        rt.block_on(overhead(&endpoint, 10));
    }
    if want("waiting_rss") {
        rt.block_on(waiting_rss(10));
    }
    if want("triage") {
        rt.block_on(triage(15, Duration::ZERO));
        rt.block_on(triage(15, Duration::from_millis(300)));
    }
}
