//! Triggers, cancels and simultaneous fires on Postgres (issue 15), release
//! build, each measured side by side in one run:
//! - trigger to run started, and cancel to run stopped, through a whole
//!   daemon with `daemon.notify: true` (LISTEN/NOTIFY) against one with
//!   `false` (polling: requests each tick, cancels each heartbeat, 5 s);
//!   the two alternate, request by request;
//! - fire delay (a run's start less its instant) with 50 per-second jobs,
//!   the fires of each instant claimed together (one statement), against
//!   one after another, in alternating 15 s blocks (`-- fires`: only
//!   these).
//! Targets: trigger-to-start p50 < 100 ms with notify; 50 simultaneous
//! fires p99 < 20 ms.
//!
//! Needs Postgres: `scripts/bench.sh notify`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use runbookd::adapters::Adapters;
use runbookd::clock::{Clock, SystemClock};
use runbookd::model::NewRequest;
use runbookd::runner::{RunEvent, Runner};
use runbookd::scheduler::Scheduler;
use runbookd::store::HistoryStore;
use runbookd::testkit::TestDatabase;
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

const ROUNDS: usize = 25;

fn jobs(notify: bool) -> String {
    format!(
        r#"
daemon: {{ heartbeat: 5s, stale_after: 30s, shutdown_grace: 1s, notify: {notify} }}
jobs:
  slow:
    kind: command
    argv: [sleep, "30"]
    concurrency: allow
"#
    )
}

struct Daemon {
    _db: TestDatabase,
    cli: Arc<dyn HistoryStore>,
    events: Receiver<RunEvent>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn daemon(notify: bool) -> Daemon {
    let db = TestDatabase::postgres().await;
    let store = db.open().await;
    let cli = db.open().await;
    let config = Arc::new(
        runbookd::jobs::load_str(std::path::Path::new("bench.yaml"), &jobs(notify), &|_| None)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let runner = Runner::builder(store, Arc::new(Adapters::real()))
        .config(&config)
        .build();
    let events = runner.subscribe();
    let shutdown = CancellationToken::new();
    let s = shutdown.clone();
    let task = tokio::spawn(async move {
        runbookd::daemon::serve(config, runner, ([127, 0, 0, 1], 0).into(), s)
            .await
            .expect("daemon");
    });
    Daemon {
        _db: db,
        cli,
        events,
        shutdown,
        task,
    }
}

async fn next_event(events: &mut Receiver<RunEvent>, started: bool) -> i64 {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await.expect("events") {
                RunEvent::Started { id, .. } if started => return id,
                RunEvent::Finished { id, .. } if !started => return id,
                _ => {}
            }
        }
    })
    .await
    .expect("the run should start (or stop) within a minute")
}

/// One trigger and its cancel: (trigger to started, cancel to stopped).
async fn round(d: &mut Daemon) -> (Duration, Duration) {
    let t = Instant::now();
    d.cli
        .request_run(&NewRequest {
            job: "slow".into(),
            params: Default::default(),
            requested_by: "bench".into(),
            reason: None,
            dry_run: false,
            requested_at: SystemClock.now(),
            expires_at: None,
            confirmed: false,
        })
        .await
        .expect("queue a request");
    let id = next_event(&mut d.events, true).await;
    let to_start = t.elapsed();
    let t = Instant::now();
    assert!(d.cli.request_cancel(id).await.expect("cancel"));
    next_event(&mut d.events, false).await;
    (to_start, t.elapsed())
}

/// Fire delays of 50 per-second jobs for `secs` seconds, each instant's
/// fires claimed `concurrency` at a time.
/// Fire delays with 50 per-second jobs: as recorded (the run's
/// `started_at`, stamped when its claim is made), and as seen (the runner's
/// `Started` event received, after the claim's round trip and the spawn).
async fn fires(concurrency: usize, secs: u64) -> (Vec<Duration>, Vec<Duration>) {
    let db = TestDatabase::postgres().await;
    let store = db.open().await;
    let mut yaml = String::from("jobs:\n");
    for i in 0..50 {
        yaml.push_str(&format!(
            "  tick-{i:02}:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"* * * * * *\"\n    timezone: UTC\n    concurrency: allow\n"
        ));
    }
    let config = Arc::new(
        runbookd::jobs::load_str(std::path::Path::new("bench.yaml"), &yaml, &|_| None)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let runner = Runner::builder(store.clone(), Arc::new(Adapters::real()))
        .config(&config)
        .build();
    let mut events = runner.subscribe();
    let stop = CancellationToken::new();
    let seen = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut seen = Vec::new();
            loop {
                let event = tokio::select! {
                    _ = stop.cancelled() => return seen,
                    e = events.recv() => e,
                };
                match event {
                    Ok(RunEvent::Started {
                        scheduled_for: Some(at),
                        ..
                    }) => seen.push((Utc::now() - at).to_std().unwrap_or_default()),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return seen,
                }
            }
        }
    });
    let scheduler = Scheduler::start(config, runner, Arc::new(SystemClock))
        .await
        .expect("start")
        .with_claim_concurrency(concurrency);
    let began = Utc::now();
    // As the daemon does: wake at each whole second and evaluate.
    for _ in 0..secs {
        let now = Utc::now();
        let next = (now + chrono::Duration::seconds(1))
            .timestamp_millis()
            .div_euclid(1000)
            * 1000;
        let wait = (next - now.timestamp_millis()).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        scheduler.tick().await;
    }
    scheduler.shutdown(Duration::from_secs(5)).await;
    stop.cancel();
    let seen = seen.await.expect("event collector");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT scheduled_for, started_at FROM runs WHERE scheduled_for > $1 ORDER BY id",
    )
    .bind(began)
    .fetch_all(&pool)
    .await
    .expect("read fires");
    let recorded = rows
        .iter()
        .map(|(at, s)| (*s - *at).to_std().unwrap_or_default())
        .collect();
    (recorded, seen)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(what: &str, mut d: Vec<Duration>) -> (f64, f64) {
    d.sort();
    let q = |p: f64| d[((d.len() - 1) as f64 * p).round() as usize];
    println!(
        "{what}: n={} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        d.len(),
        ms(q(0.5)),
        ms(q(0.99)),
        ms(*d.last().unwrap())
    );
    (ms(q(0.5)), ms(q(0.99)))
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // `cargo bench --bench notify -- fires`: only the simultaneous fires.
    let only_fires = std::env::args().any(|a| a == "fires");
    rt.block_on(async {
        if !only_fires {
            triggers_and_cancels().await;
        }
        fires_together().await;
    });
}

async fn triggers_and_cancels() {
    {
        let mut pushed = daemon(true).await;
        let mut polled = daemon(false).await;
        // Both daemons have started their schedulers (which record the
        // jobs first seen) before the rounds.
        for d in [&pushed, &polled] {
            let began = Instant::now();
            while d.cli.first_seen().await.expect("first seen").is_empty() {
                assert!(
                    began.elapsed() < Duration::from_secs(30),
                    "a daemon never started"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // One round each, not counted: a cancel sent before a daemon's
        // listener is up is seen at its next heartbeat (the fallback), which
        // a rerun without this round caught as a 5 s p99.
        round(&mut pushed).await;
        round(&mut polled).await;
        let (mut ps, mut pc, mut qs, mut qc) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let (s, c) = round(&mut pushed).await;
            ps.push(s);
            pc.push(c);
            let (s, c) = round(&mut polled).await;
            qs.push(s);
            qc.push(c);
        }
        let (a, _) = summary("trigger to start, notify", ps);
        let (b, _) = summary("trigger to start, polling", qs);
        println!("  ratio polling/notify (p50): {:.1}", b / a);
        let (a, _) = summary("cancel to stopped, notify", pc);
        let (b, _) = summary("cancel to stopped, polling", qc);
        println!("  ratio polling/notify (p50): {:.1}", b / a);
        for d in [pushed, polled] {
            d.shutdown.cancel();
            let _ = d.task.await;
        }
    }
}

async fn fires_together() {
    {
        let (mut together, mut one_by_one) = ((vec![], vec![]), (vec![], vec![]));
        for _ in 0..2 {
            let (r, s) = fires(runbookd::scheduler::CLAIM_CONCURRENCY, 15).await;
            together.0.extend(r);
            together.1.extend(s);
            let (r, s) = fires(1, 15).await;
            one_by_one.0.extend(r);
            one_by_one.1.extend(s);
        }
        let (_, a) = summary(
            "50 per-second jobs, fire delay as recorded, claimed together",
            together.0,
        );
        let (_, b) = summary(
            "50 per-second jobs, fire delay as recorded, claimed one by one",
            one_by_one.0,
        );
        println!("  ratio one-by-one/together (p99): {:.1}", b / a);
        let (_, a) = summary(
            "50 per-second jobs, fire to Started event, claimed together",
            together.1,
        );
        let (_, b) = summary(
            "50 per-second jobs, fire to Started event, claimed one by one",
            one_by_one.1,
        );
        println!("  ratio one-by-one/together (p99): {:.1}", b / a);
    }
}
