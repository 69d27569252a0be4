//! Fire delay while the daemon prunes a big history (issue 14), release
//! build: a Postgres store with 1,010,970 runs (39 jobs every 5 minutes for
//! 90 days, as `benches/report.rs` loads it) and `retention: 30d`, so the
//! daemon's first prune deletes about two thirds of them, while a
//! per-second job fires. Beside it, in the same run, the same daemon on a
//! store with nothing to prune. Fire delay is a run's start less its
//! scheduled instant. Target: p99 < 50 ms during the prune.
//!
//! Needs Postgres: `scripts/bench.sh prune`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use runbookd::adapters::Adapters;
use runbookd::runner::Runner;
use runbookd::testkit::{TestDatabase, bulk};
use tokio_util::sync::CancellationToken;

const JOBS: &str = r#"
daemon: { heartbeat: 1s, stale_after: 10s, shutdown_grace: 2s }
history: { retention: 30d }
jobs:
  tick:
    kind: command
    argv: ["true"]
    schedule: "* * * * * *"
    timezone: UTC
    concurrency: allow
"#;

/// Runs a daemon on `db` until `done` says so; the fire delays of the runs
/// it started inside the window `done` reports (from, to).
async fn delays(
    db: &TestDatabase,
    done: impl AsyncFnOnce(&sqlx::PgPool) -> (DateTime<Utc>, DateTime<Utc>),
) -> Vec<Duration> {
    let store = db.open().await;
    let config = Arc::new(
        runbookd::jobs::load_str(std::path::Path::new("bench.yaml"), JOBS, &|_| None)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let runner = Runner::builder(store.clone(), Arc::new(Adapters::real()))
        .config(&config)
        .build();
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(runbookd::daemon::serve(
        config,
        runner,
        ([127, 0, 0, 1], 0).into(),
        shutdown.clone(),
    ));
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let (from, to) = done(&pool).await;
    shutdown.cancel();
    daemon.await.expect("daemon task").expect("daemon");
    let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT scheduled_for, started_at FROM runs
         WHERE job = 'tick' AND scheduled_for > $1 AND scheduled_for <= $2 ORDER BY id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&pool)
    .await
    .expect("read the fires");
    let mut d: Vec<Duration> = rows
        .iter()
        .map(|(at, started)| (*started - *at).to_std().unwrap_or_default())
        .collect();
    d.sort();
    d
}

/// Runs older than the retention as of `at` (the prune's own cutoff is a
/// little later, so these all go).
async fn expired(pool: &sqlx::PgPool, at: DateTime<Utc>) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM runs WHERE started_at < $1 - interval '30 days'")
        .bind(at)
        .fetch_one(pool)
        .await
        .expect("count expired runs")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, d: &[Duration]) {
    let q = |p: f64| d[((d.len() - 1) as f64 * p).round() as usize];
    println!(
        "{what}: {} fires, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        d.len(),
        ms(q(0.5)),
        ms(q(0.99)),
        ms(*d.last().unwrap())
    );
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let big = TestDatabase::postgres().await;
        big.open().await;
        let runs = bulk::load_history(&big.url, 39).await;
        let quiet = TestDatabase::postgres().await;
        quiet.open().await;

        // The same daemon with nothing to prune, for as long as the prune
        // below took (measured first, so the big store is idle meanwhile).
        let mut pruned = (0, Duration::ZERO);
        let during = delays(&big, async |pool| {
            // The first maintenance pass (one heartbeat in) starts it.
            let start = Utc::now();
            let before = expired(pool, start).await;
            let t = Instant::now();
            while expired(pool, start).await > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            pruned = (before, t.elapsed());
            (start, Utc::now())
        })
        .await;
        let window = pruned.1;
        let calm = delays(&quiet, async |_| {
            let start = Utc::now();
            tokio::time::sleep(window).await;
            (start, Utc::now())
        })
        .await;
        println!(
            "history: {runs} runs; pruned {} older than 30 days in {:.1} s",
            pruned.0,
            window.as_secs_f64()
        );
        report("fires during the prune", &during);
        report("fires with nothing to prune", &calm);
        let p99 = |d: &[Duration]| ms(d[((d.len() - 1) as f64 * 0.99).round() as usize]);
        println!("ratio p99 during/without: {:.2}", p99(&during) / p99(&calm));
    });
}
