//! High availability with the built binary: three `serve` replicas on one
//! Postgres, a per-second job, and one replica SIGKILLed at random every few
//! seconds (and started again) for over a minute. Every second between the
//! first fire and the last runs exactly once (at least two replicas live at
//! all times), a run cut off by a kill is marked `abandoned` by a peer
//! within the heartbeat window, and nothing is left `running`.
#![cfg(feature = "integration")]

use std::time::{Duration, Instant};

use runbookd::store::{RunFilter, RunStatus};
use runbookd::testkit::TestDatabase;
use runbookd::testkit::binary::{Daemon, Workdir};

const BIN: &str = env!("CARGO_BIN_EXE_runbookd");

const JOBS: &str = r#"
daemon: { heartbeat: 200ms, stale_after: 1s, shutdown_grace: 2s }
jobs:
  tick:
    kind: command
    argv: [sh, -c, "sleep 0.4"]
    schedule: "* * * * * *"
    timezone: UTC
    concurrency: allow
"#;

/// A small deterministic generator: the same "random" kills every run, so
/// a failure can be reproduced.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn kill(d: &mut Daemon) {
    let _ = d.child.kill();
    let _ = d.child.wait();
}

#[test]
fn three_replicas_with_kills_run_every_second_once_and_leave_nothing_running() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDatabase::postgres());
    let w = Workdir::new(BIN, JOBS).with_db(&db.url);
    assert!(w.run(&["migrate"]).status.success());
    let mut replicas: Vec<Daemon> = (0..3).map(|_| w.serve()).collect();
    let mut rng = Lcg(0x5eed);
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < Duration::from_secs(70) {
        std::thread::sleep(Duration::from_millis(4000 + 1000 * rng.next(5)));
        let victim = rng.next(3) as usize;
        kill(&mut replicas[victim]);
        kills += 1;
        // Down for a moment, then back: two replicas are always up.
        std::thread::sleep(Duration::from_millis(1000 + 500 * rng.next(4)));
        replicas[victim] = w.serve();
    }
    // The last one restarted has come up: `serve` logs its listen address
    // only once its SIGTERM handler is set (before, a SIGTERM would kill it
    // outright), then all stop.
    for d in &replicas {
        d.addr();
    }
    for d in &replicas {
        d.signal(nix::sys::signal::Signal::SIGTERM);
    }
    for d in &mut replicas {
        assert!(d.wait(Duration::from_secs(30)).success(), "{}", d.log());
    }
    assert!(kills >= 8, "{kills} kills");

    let store = rt.block_on(db.open());
    let runs = rt
        .block_on(store.list_runs(&RunFilter {
            job: Some("tick".into()),
            since: None,
            limit: 100_000,
        }))
        .unwrap();
    let mut seconds: Vec<i64> = runs
        .iter()
        .filter(|r| r.attempt == 1)
        .map(|r| r.scheduled_for.expect("a scheduled run").timestamp())
        .collect();
    seconds.sort();
    let total = seconds.len();
    assert!(total >= 60, "only {total} fires");
    seconds.dedup();
    assert_eq!(seconds.len(), total, "a second ran twice");
    let span = (seconds.last().unwrap() - seconds.first().unwrap() + 1) as usize;
    assert_eq!(
        span, total,
        "a second was lost between the first and the last fire"
    );
    let running: Vec<_> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Running)
        .collect();
    assert!(running.is_empty(), "left running: {running:#?}");
    let abandoned: Vec<_> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Abandoned)
        .collect();
    for r in &abandoned {
        // Marked by a peer once its heartbeat was older than stale_after
        // (1 s), checked every heartbeat (200 ms): well inside 5 s.
        let after = r.finished_at.unwrap() - r.heartbeat_at;
        assert!(after < chrono::Duration::seconds(5), "{r:#?}");
    }
    let others: Vec<_> = runs
        .iter()
        .filter(|r| !matches!(r.status, RunStatus::Succeeded | RunStatus::Abandoned))
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    eprintln!(
        "{total} fires, {kills} kills, {} abandoned by a kill, every second once",
        abandoned.len()
    );
}
