//! Core benchmarks, run with `cargo bench --bench core` (Postgres from
//! RUNBOOKD_TEST_PG_URL, as for the tests). Results go to BENCHMARKS.md.
//!
//! 1. fire latency: scheduled instant to run start, through the real daemon
//!    loop and its tokio-cron-scheduler timer;
//! 2. overhead of a `command` job running `true`, history included, against
//!    spawning `true` directly, on SQLite and Postgres;
//! 3. idle RSS of `runbookd serve` with the shipped jobs.yaml;
//! 4. `history --since 24h` on Postgres holding 1,000,000 runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use runbookd::adapters::Adapters;
use runbookd::clock::{Clock, SystemClock};
use runbookd::identity::Identity;
use runbookd::runner::{RunRequest, Runner, Stop};
use runbookd::store::{HistoryStore, RunFilter, Trigger};
use runbookd::testkit::{ConfigBuilder, JobBuilder, TestDatabase};
use tokio_util::sync::CancellationToken;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    percentile(v, 0.5)
}

async fn fire_latency(seconds: u64) {
    let db = TestDatabase::sqlite();
    let store = db.open().await;
    let config = Arc::new(
        ConfigBuilder::new()
            .job(JobBuilder::command("tick", &["true"]).every_second())
            .build(),
    );
    let stop = CancellationToken::new();
    let s2 = stop.clone();
    let runner = Runner::builder(store.clone(), Arc::new(Adapters::real()))
        .config(&config)
        .build();
    let daemon = tokio::spawn(async move {
        runbookd::daemon::serve(config, runner, ([127, 0, 0, 1], 0).into(), s2).await
    });
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.cancel();
    daemon.await.unwrap().unwrap();
    let runs = store
        .list_runs(&RunFilter {
            job: Some("tick".into()),
            since: None,
            limit: 100_000,
        })
        .await
        .unwrap();
    let mut lat: Vec<f64> = runs
        .iter()
        .filter_map(|r| {
            r.scheduled_for
                .map(|s| (r.started_at - s).num_microseconds().unwrap() as f64 / 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "fire latency (ms), {} fires: p50 {:.1}  p99 {:.1}  max {:.1}",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().unwrap()
    );
}

async fn command_overhead(label: &str, store: Arc<dyn HistoryStore>, n: usize) {
    let job = JobBuilder::command("true", &["true"]).build();
    let runner = Runner::builder(store, Arc::new(Adapters::real()))
        .clock(Arc::new(SystemClock) as Arc<dyn Clock>)
        .identity(Identity::current())
        .heartbeat(Duration::from_secs(5))
        .log_max_bytes(64 * 1024)
        .build();
    let req = RunRequest {
        trigger: Trigger::Manual,
        triggered_by: "bench".into(),
        scheduled_for: None,
        dry_run: false,
        ..Default::default()
    };
    let mut bare = Vec::new();
    let mut full = Vec::new();
    // Interleaved, so machine noise hits both sides alike.
    for _ in 0..n {
        let t = Instant::now();
        tokio::process::Command::new("true").status().await.unwrap();
        bare.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let mut req = req.clone();
        let id = runner
            .admit(&job, &mut req)
            .await
            .unwrap()
            .started()
            .unwrap();
        runner.execute(&job, &req, id, &Stop::new()).await;
        full.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (b, f) = (median(&mut bare), median(&mut full));
    println!(
        "command `true` on {label}, {n} runs: bare spawn median {b:.2} ms, runbookd run median {f:.2} ms, overhead {:.2} ms (ratio {:.2})",
        f - b,
        f / b
    );
}

/// Output capture against the pipe itself: the same `sh` writing `mb` MB
/// of ordinary lines, read by a loop that keeps nothing (the pipe's speed)
/// and by a `command` run (redacted, bounded, stored).
async fn capture(mb: usize, rounds: usize) {
    let script = format!(
        "yes 'an ordinary line of job output, about sixty bytes, repeated' | head -c {}",
        mb * 1_000_000
    );
    let db = TestDatabase::sqlite();
    let job = JobBuilder::command("flood", &["sh", "-c", &script]).build();
    let runner = Runner::builder(db.open().await, Arc::new(Adapters::real()))
        .redactor(runbookd::secret::Redactor::new([
            "s3cret-token-value".to_string()
        ]))
        .build();
    let req = RunRequest {
        triggered_by: "bench".into(),
        ..Default::default()
    };
    let (mut bare, mut full) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let mut c = tokio::process::Command::new("sh")
            .args(["-c", &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = c.stdout.take().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        while tokio::io::AsyncReadExt::read(&mut out, &mut buf)
            .await
            .unwrap()
            > 0
        {}
        c.wait().await.unwrap();
        bare.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut req = req.clone();
        let id = runner
            .admit(&job, &mut req)
            .await
            .unwrap()
            .started()
            .unwrap();
        let ended = runner.execute(&job, &req, id, &Stop::new()).await;
        assert_eq!(ended.status, runbookd::store::RunStatus::Succeeded);
        full.push(t.elapsed().as_secs_f64());
    }
    let (b, f) = (median(&mut bare), median(&mut full));
    println!(
        "capture of {mb} MB of ordinary lines, {rounds} rounds: pipe alone median {b:.2} s ({:.0} MB/s), runbookd `command` run median {f:.2} s ({:.0} MB/s), ratio {:.2}",
        mb as f64 / b,
        mb as f64 / f,
        f / b
    );
}

fn idle_rss() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = concat!(env!("CARGO_MANIFEST_DIR"), "/jobs.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runbookd"))
        .args([
            "-c",
            jobs,
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env(
            "RUNBOOKD_DATABASE_URL",
            format!("sqlite://{}/h.db", dir.path().display()),
        )
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut samples = Vec::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_secs(1));
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap();
        samples.push(kb / 1024.0);
    }
    let _ = child.kill();
    let _ = child.wait();
    let last = *samples.last().unwrap();
    println!(
        "idle RSS of serve with the shipped jobs.yaml after 10 s: {last:.1} MiB (max over run {:.1})",
        samples.iter().cloned().fold(0.0, f64::max)
    );
}

async fn history_on_a_million(n: i64) {
    let db = TestDatabase::postgres().await;
    let store = db.open().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let t = Instant::now();
    // 1,000,000 finished runs of 8 jobs, spread over the last 90 days.
    sqlx::query(
        "INSERT INTO runs (job, \"trigger\", triggered_by, scheduled_for, started_at, finished_at, status, attempt, owner, heartbeat_at, log)
         SELECT 'job-' || (g % 8), 'schedule', 'runbookd@bench', ts, ts, ts + interval '2 seconds',
                CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END, 1, 'bench:1:x', ts, 'a log line'
         FROM (SELECT g, now() - (g * interval '90 days' / $1) AS ts FROM generate_series(1, $1) AS g) s",
    )
    .bind(n)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE runs").execute(&pool).await.unwrap();
    println!("loaded {n} runs in {:.1}s", t.elapsed().as_secs_f64());
    let since = chrono::Utc::now() - chrono::Duration::hours(24);
    let mut store_ms = Vec::new();
    let mut cli_ms = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let rows = store
            .list_runs(&RunFilter {
                job: None,
                since: Some(since),
                limit: 50,
            })
            .await
            .unwrap();
        store_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(rows.len(), 50);
        let t = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_runbookd"))
            .args([
                "-c",
                concat!(env!("CARGO_MANIFEST_DIR"), "/jobs.yaml"),
                "history",
                "--since",
                "24h",
                "--json",
            ])
            .env("RUNBOOKD_DATABASE_URL", &db.url)
            .output()
            .unwrap();
        cli_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!(
        "history --since 24h over {n} runs: query median {:.2} ms; whole `runbookd history` process median {:.1} ms",
        median(&mut store_ms),
        median(&mut cli_ms)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; a name filter selects one benchmark.
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
    if want("fire_latency") {
        rt.block_on(fire_latency(60));
    }
    if want("command_overhead") {
        rt.block_on(async {
            let sqlite = TestDatabase::sqlite();
            command_overhead("SQLite", sqlite.open().await, 200).await;
            let pg = TestDatabase::postgres().await;
            command_overhead("Postgres", pg.open().await, 200).await;
        });
    }
    if want("capture") {
        rt.block_on(capture(200, 3));
    }
    if want("idle_rss") {
        idle_rss();
    }
    if want("history") {
        rt.block_on(history_on_a_million(1_000_000));
    }
}
