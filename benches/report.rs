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
use runbookd::testkit::{TestDatabase, bulk};

const ROUNDS: usize = 15;

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
    let runs = bulk::load_history(&db.url, jobs).await;
    let config = runbookd::jobs::load_str(
        std::path::Path::new("bench.yaml"),
        &bulk::jobs_yaml(jobs),
        &|_| None,
    )
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
