//! Building the morning report from a big history (issue 9), release build:
//! a Postgres store with about 1,000,000 runs (39 jobs every 5 minutes for
//! 90 days, the retention; the watch and checklist runs with their check
//! results), and beside it, in the same run, a store with 90 days of one
//! job, to give the ratio. Measured: `gather` (every query) plus `render`
//! (text, HTML and the PNG charts), the whole of what the job does before
//! sending. Target: < 200 ms at 1M runs.
//!
//! Needs Postgres: `scripts/bench.sh report`.

use std::time::{Duration, Instant};

use runbookd::report::{self, ChartSpec, Settings, Tolerance};
use runbookd::testkit::TestDatabase;

const ROUNDS: usize = 15;

fn yaml(jobs: usize) -> String {
    let mut y = String::from(
        "jobs:
  watch:
    kind: checklist
    schedule: \"*/5 * * * *\"
    timezone: UTC
    checks:
      - {name: error-rate-5m, kind: prometheus, url: \"http://127.0.0.1:9\", query: x, fail_if: \"> 0.05\"}
      - {name: latency-p99, kind: prometheus, url: \"http://127.0.0.1:9\", query: x, fail_if: \"> 2\"}
  daily-checklist:
    kind: checklist
    schedule: \"0 9 * * *\"
    timezone: UTC
    checks:
      - {name: ai-token-budget, kind: prometheus, url: \"http://127.0.0.1:9\", query: x, fail_if: \"> 4500\"}
",
    );
    for i in 1..jobs {
        y.push_str(&format!(
            "  job-{i:02}:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"*/5 * * * *\"\n    timezone: UTC\n"
        ));
    }
    y
}

async fn load(url: &str, jobs: usize) -> u64 {
    let pool = sqlx::PgPool::connect(url)
        .await
        .expect("connect to the bench database");
    let mut names = vec!["watch".to_string()];
    names.extend((1..jobs).map(|i| format!("job-{i:02}")));
    for name in &names {
        sqlx::query(
            "INSERT INTO runs (job, \"trigger\", triggered_by, scheduled_for, started_at, finished_at,
                               status, attempt, owner, heartbeat_at)
             SELECT $1, 'schedule', 'scheduler', t, t + interval '1 second',
                    t + interval '1 second' * (2 + (extract(epoch from t)::bigint % 5)),
                    CASE WHEN extract(epoch from t)::bigint % 86400 = 3600 THEN 'failed' ELSE 'succeeded' END,
                    1, 'bench:1:x', t + interval '3 seconds'
             FROM generate_series(to_timestamp(floor(extract(epoch from now()) / 300) * 300) - interval '90 days',
                                  now() - interval '5 minutes', interval '5 minutes') AS t",
        )
        .bind(name)
        .execute(&pool)
        .await
        .expect("bulk insert runs");
    }
    sqlx::query(
        "INSERT INTO runs (job, \"trigger\", triggered_by, scheduled_for, started_at, finished_at,
                           status, attempt, owner, heartbeat_at)
         SELECT 'daily-checklist', 'schedule', 'scheduler', t, t, t + interval '4 seconds', 'succeeded', 1,
                'bench:1:x', t
         FROM generate_series(date_trunc('day', now()) - interval '90 days' + interval '9 hours',
                              now() - interval '1 minute', interval '1 day') AS t",
    )
    .execute(&pool)
    .await
    .expect("insert checklist runs");
    for (pos, (job, check, scale)) in [
        ("watch", "error-rate-5m", 0.01),
        ("watch", "latency-p99", 1.5),
        ("daily-checklist", "ai-token-budget", 3000.0),
    ]
    .iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO check_results (run_id, position, check_name, status, value_number, threshold, reason, duration_ms)
             SELECT id, $1, $2, 'pass', random() * $3, 'fail if > 1', 'ok', 3 FROM runs WHERE job = $4",
        )
        .bind(pos as i32 % 2)
        .bind(*check)
        .bind(*scale)
        .bind(*job)
        .execute(&pool)
        .await
        .expect("insert check results");
    }
    sqlx::query("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM runs")
        .fetch_one(&pool)
        .await
        .expect("count runs");
    n as u64
}

fn settings() -> Settings {
    Settings {
        title: "Flexoraa".into(),
        period: Duration::from_secs(86400),
        checklist: Some("daily-checklist".into()),
        charts: vec![
            ChartSpec {
                job: "watch".into(),
                check: "error-rate-5m".into(),
                title: "Error rate".into(),
            },
            ChartSpec {
                job: "watch".into(),
                check: "latency-p99".into(),
                title: "p99 latency".into(),
            },
            ChartSpec {
                job: "daily-checklist".into(),
                check: "ai-token-budget".into(),
                title: "AI tokens".into(),
            },
        ],
        tolerance: Tolerance::default(),
        timezone: chrono_tz::Asia::Kolkata,
    }
}

async fn measure(jobs: usize) -> (u64, Vec<Duration>, usize) {
    let db = TestDatabase::postgres().await;
    let store = db.open().await;
    let runs = load(&db.url, jobs).await;
    let config =
        runbookd::jobs::load_str(std::path::Path::new("bench.yaml"), &yaml(jobs), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
    let settings = settings();
    let mut times = Vec::new();
    let mut attention = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let r = report::gather(store.as_ref(), &config, &settings, chrono::Utc::now())
            .await
            .expect("gather the report");
        let out = report::render::render(&r, &config.links);
        times.push(t.elapsed());
        assert_eq!(out.images.len(), 3);
        attention = r.attention.len();
    }
    times.sort();
    (runs, times, attention)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (small_runs, small, _) = measure(1).await;
        let (big_runs, big, attention) = measure(39).await;
        let median = |v: &[Duration]| v[v.len() / 2];
        println!("report from {small_runs} runs: median {:.1} ms, max {:.1} ms ({ROUNDS} rounds)", ms(median(&small)), ms(*small.last().unwrap()));
        println!("report from {big_runs} runs: median {:.1} ms, max {:.1} ms ({ROUNDS} rounds; {attention} attention item(s))", ms(median(&big)), ms(*big.last().unwrap()));
        println!(
            "ratio big/small (median): {:.2}",
            ms(median(&big)) / ms(median(&small))
        );
    });
}
