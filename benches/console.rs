//! The console's pages over a big history (issue 16), release build: a
//! Postgres store with 1,010,970 runs (39 jobs every 5 minutes for 90 days,
//! the watch and checklist runs with their check results, as
//! `benches/report.rs` loads it), served by the console's router on
//! loopback. Each page is asked `ROUNDS` times after one warm-up, one page
//! after another in rounds, and timed from request to last byte (server
//! time plus a loopback round trip: an upper bound of the server's).
//! Target: every page under 50 ms at the median. Then the plan Postgres
//! uses for each query the pages make, with the page's arguments
//! (`EXPLAIN (ANALYZE, COSTS OFF)`).
//!
//! Needs Postgres: `scripts/bench.sh console`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use runbookd::clock::SystemClock;
use runbookd::console::{Console, router};
use runbookd::http::DaemonState;
use runbookd::store::StoreHealth;
use runbookd::testkit::{TestDatabase, bulk};
use tokio_util::sync::CancellationToken;

const ROUNDS: usize = 25;

/// The loader's jobs, and the report job that reads them.
fn yaml() -> String {
    bulk::jobs_yaml(39)
        + "  morning-report:
    kind: report
    schedule: \"15 9 * * *\"
    timezone: UTC
    checklist: daily-checklist
    charts:
      - {job: watch, check: error-rate-5m, title: Error rate}
      - {job: watch, check: latency-p99, title: p99 latency}
      - {job: daily-checklist, check: ai-token-budget, title: AI tokens}
"
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The plan of one of the pages' queries, with the page's arguments.
async fn explain(pool: &sqlx::PgPool, what: &str, sql: &str) {
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, COSTS OFF) {sql}"
    )))
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("explain {what}: {e}"));
    println!("\n-- {what}\n{sql}");
    for (line,) in rows {
        println!("  {line}");
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = TestDatabase::postgres().await;
        let store = db.open().await;
        let runs = bulk::load_history(&db.url, 39).await;
        let config = Arc::new(
            runbookd::jobs::load_str(std::path::Path::new("bench.yaml"), &yaml(), &|_| None)
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let health = Arc::new(StoreHealth::default());
        let console = Console::new(
            config.clone(),
            store.clone(),
            health.clone(),
            Arc::new(SystemClock),
            config.redactor.clone(),
        )
        .expect("console");
        let stop = CancellationToken::new();
        let state = DaemonState::new(chrono::Utc::now(), health);
        let (addr, _task) =
            runbookd::http::bind(([127, 0, 0, 1], 0).into(), state, router(console), stop.clone())
                .await
                .expect("bind");
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        let (mid,): (i64,) = sqlx::query_as(
            "SELECT id FROM runs WHERE job = 'watch' ORDER BY id LIMIT 1 OFFSET 13000",
        )
        .fetch_one(&pool)
        .await
        .expect("a run halfway");
        let (failed,): (i64,) = sqlx::query_as(
            "SELECT id FROM runs WHERE job = 'job-07' AND status = 'failed' ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(&pool)
        .await
        .expect("a failed run");
        let pages: Vec<(&str, String)> = vec![
            ("jobs", "/".into()),
            ("jobs, JSON", "/?format=json".into()),
            ("job: newest runs", "/jobs/watch".into()),
            ("job: failed runs", "/jobs/job-07?status=failed".into()),
            ("job: a page halfway back", format!("/jobs/watch?before={mid}")),
            ("job, JSON", "/jobs/watch?format=json".into()),
            ("duration chart (PNG)", "/jobs/watch/charts/duration".into()),
            ("check chart (PNG)", "/jobs/watch/charts/checks/error-rate-5m".into()),
            ("run: a checklist run", format!("/runs/{mid}")),
            ("run: a failed run", format!("/runs/{failed}")),
            ("run, JSON", format!("/runs/{mid}?format=json")),
            ("queue", "/queue".into()),
            ("report (24 h)", "/report".into()),
        ];
        runbookd::adapters::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let get = async |path: &str| {
            let t = Instant::now();
            let r = client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            let status = r.status();
            let body = r.bytes().await.unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(status.is_success(), "{path}: {status}: {}", String::from_utf8_lossy(&body));
            (t.elapsed(), body.len())
        };
        for (_, path) in &pages {
            get(path).await;
        }
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); pages.len()];
        let mut sizes = vec![0; pages.len()];
        for _ in 0..ROUNDS {
            for (i, (_, path)) in pages.iter().enumerate() {
                let (d, n) = get(path).await;
                times[i].push(d);
                sizes[i] = n;
            }
        }
        println!("history: {runs} runs; {ROUNDS} rounds a page after a warm-up");
        println!("| page | path | median | max | bytes |");
        println!("|---|---|---|---|---|");
        for (i, (what, path)) in pages.iter().enumerate() {
            let t = &mut times[i];
            t.sort();
            println!(
                "| {what} | `{path}` | {:.1} ms | {:.1} ms | {} |",
                ms(t[t.len() / 2]),
                ms(*t.last().unwrap()),
                sizes[i]
            );
        }

        let cols = "id, job, \"trigger\", triggered_by, scheduled_for, started_at, finished_at, status, attempt, error, dry_run, owner, heartbeat_at, retry_of, log_truncated";
        explain(&pool, "page_runs: a job's newest runs (jobs page, 20 a job; job page, 50)",
            &format!("SELECT {cols} FROM runs WHERE job = 'watch' ORDER BY id DESC LIMIT 50")).await;
        explain(&pool, "page_runs: a job's newest successes (jobs page)",
            &format!("SELECT {cols} FROM runs WHERE job = 'job-07' AND status = 'succeeded' ORDER BY id DESC LIMIT 5")).await;
        explain(&pool, "page_runs: failed runs, filtered (job page)",
            &format!("SELECT {cols} FROM runs WHERE job = 'job-07' AND status = 'failed' ORDER BY id DESC LIMIT 50")).await;
        explain(&pool, "page_runs: a page halfway back",
            &format!("SELECT {cols} FROM runs WHERE job = 'watch' AND id < {mid} ORDER BY id DESC LIMIT 50")).await;
        explain(&pool, "last_run: the last real run (jobs page)",
            &format!("SELECT {cols} FROM runs WHERE job = 'job-07' AND dry_run = false ORDER BY started_at DESC, id DESC LIMIT 1")).await;
        explain(&pool, "last_dry_run: the last dry run (jobs page; this history has none)",
            &format!("SELECT {cols} FROM runs WHERE job = 'job-07' AND dry_run ORDER BY started_at DESC, id DESC LIMIT 1")).await;
        explain(&pool, "check_history: a job's check values for 7 days (check chart, jobs page's checklist)",
            "SELECT r.id AS run_id, r.started_at, c.check_name, c.status, c.value_number, c.value_text, c.threshold, c.reason, c.duration_ms FROM runs r JOIN check_results c ON c.run_id = r.id WHERE r.job = 'watch' AND r.started_at >= now() - interval '7 days' AND r.status <> 'running' ORDER BY r.started_at, r.id, c.position").await;
        explain(&pool, "retries_of: the attempts that retry a run (run page)",
            &format!("SELECT {cols} FROM runs WHERE job = 'job-07' AND started_at >= (SELECT started_at FROM runs WHERE id = {failed}) AND retry_of = {failed} ORDER BY id LIMIT 20")).await;
        explain(&pool, "chained_from: the runs a failed run chained (run page)",
            &format!("SELECT {cols} FROM runs WHERE started_at >= (SELECT started_at FROM runs WHERE id = {failed}) AND started_at <= (SELECT started_at + interval '10 minutes' FROM runs WHERE id = {failed}) AND \"trigger\" = 'chained' AND triggered_by = 'run {failed} of job-07' ORDER BY id LIMIT 20")).await;
        stop.cancel();
    });
}
