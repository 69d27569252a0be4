//! The scheduler with a manual clock: catch-up, overlap policies, timeouts
//! and retries, against a real store and real child processes. Tests wait on
//! the runner's events, never on sleeps.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbookd::adapters::Adapters;
use runbookd::clock::{Clock, ManualClock};
use runbookd::config::Concurrency;
use runbookd::identity::Identity;
use runbookd::runner::{RunEvent, Runner};
use runbookd::scheduler::Scheduler;
use runbookd::store::{HistoryStore, Run, RunFilter, RunStatus, Trigger};
use runbookd::testkit::{ConfigBuilder, JobBuilder, TestDatabase};
use tokio::sync::broadcast::Receiver;

const WAIT: Duration = Duration::from_secs(30);

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Harness {
    _db: TestDatabase,
    store: Arc<dyn HistoryStore>,
    clock: ManualClock,
    scheduler: Scheduler,
    events: Receiver<RunEvent>,
}

async fn harness(
    config: ConfigBuilder,
    now: &str,
    prepare: impl AsyncFnOnce(&dyn HistoryStore),
) -> Harness {
    harness_on(TestDatabase::sqlite(), config, now, prepare).await
}

async fn harness_on(
    db: TestDatabase,
    config: ConfigBuilder,
    now: &str,
    prepare: impl AsyncFnOnce(&dyn HistoryStore),
) -> Harness {
    let store = db.open().await;
    prepare(store.as_ref()).await;
    let config = Arc::new(config.build());
    let clock = ManualClock::new(t(now));
    let runner = Runner::builder(store.clone(), Arc::new(Adapters::real()))
        .clock(Arc::new(clock.clone()))
        .identity(Identity::current())
        .heartbeat(Duration::from_millis(100))
        .log_max_bytes(64 * 1024)
        .redactor(config.redactor.clone())
        .build();
    let events = runner.subscribe();
    let scheduler = Scheduler::start(config, runner, Arc::new(clock.clone()) as Arc<dyn Clock>)
        .await
        .unwrap();
    Harness {
        _db: db,
        store,
        clock,
        scheduler,
        events,
    }
}

/// A second daemon on the harness's store, with its own clock.
async fn replica(
    store: &Arc<dyn HistoryStore>,
    job: JobBuilder,
    now: &str,
) -> (Scheduler, ManualClock) {
    let clock = ManualClock::new(t(now));
    let runner = Runner::builder(store.clone(), Arc::new(Adapters::real()))
        .clock(Arc::new(clock.clone()))
        .identity(Identity::current())
        .heartbeat(Duration::from_millis(100))
        .log_max_bytes(4096)
        .build();
    let config = Arc::new(ConfigBuilder::new().job(job).build());
    let scheduler = Scheduler::start(config, runner, Arc::new(clock.clone()))
        .await
        .unwrap();
    (scheduler, clock)
}

/// Waits for `n` Finished events and returns them.
async fn finished(events: &mut Receiver<RunEvent>, n: usize) -> Vec<(i64, RunStatus)> {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, async {
        while out.len() < n {
            if let RunEvent::Finished { id, status, .. } = events.recv().await.unwrap() {
                out.push((id, status));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited {WAIT:?} for {n} finished runs, saw {out:?}"));
    out
}

async fn started(events: &mut Receiver<RunEvent>) -> i64 {
    tokio::time::timeout(WAIT, async {
        loop {
            if let RunEvent::Started { id, .. } = events.recv().await.unwrap() {
                return id;
            }
        }
    })
    .await
    .expect("a run should start")
}

async fn runs(store: &dyn HistoryStore, job: &str) -> Vec<Run> {
    let mut r = store
        .list_runs(&RunFilter {
            job: Some(job.into()),
            since: None,
            limit: 1000,
        })
        .await
        .unwrap();
    r.sort_by_key(|r| r.id);
    r
}

#[tokio::test]
async fn catch_up_runs_the_newest_missed_fire_once() {
    let job = JobBuilder::command("hourly", &["true"])
        .schedule("0 * * * *")
        .catch_up(Duration::from_secs(2 * 3600));
    // The daemon last evaluated at 03:00:30; it comes back at 07:20.
    let mut h = harness(
        ConfigBuilder::new().job(job),
        "2026-05-01T07:20:00Z",
        async |s| {
            s.advance_cursors(&["hourly"], t("2026-05-01T03:00:30Z"))
                .await
                .unwrap();
        },
    )
    .await;
    let report = h.scheduler.tick().await;
    assert_eq!(report.started.len(), 1, "{report:?}");
    assert_eq!(report.started[0].2, Trigger::Catchup);
    assert_eq!(report.missed_total(), 3, "04:00, 05:00, 06:00 are missed");
    finished(&mut h.events, 1).await;
    // A second tick, and a replica that starts later, do not run it again.
    assert!(h.scheduler.tick().await.started.is_empty());
    let r = runs(h.store.as_ref(), "hourly").await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].trigger, Trigger::Catchup);
    assert_eq!(r[0].scheduled_for, Some(t("2026-05-01T07:00:00Z")));
    assert_eq!(r[0].status, RunStatus::Succeeded);
    // Back on schedule at 08:00.
    h.clock.set(t("2026-05-01T08:00:01Z"));
    let report = h.scheduler.tick().await;
    assert_eq!(report.started.len(), 1);
    assert_eq!(report.started[0].2, Trigger::Schedule);
    finished(&mut h.events, 1).await;
}

#[tokio::test]
async fn a_backlog_outside_the_window_runs_nothing() {
    let job = JobBuilder::command("daily", &["true"])
        .schedule("0 7 * * *")
        .catch_up(Duration::from_secs(3600));
    let h = harness(
        ConfigBuilder::new().job(job),
        "2026-05-01T12:00:00Z",
        async |s| {
            s.advance_cursors(&["daily"], t("2026-05-01T06:00:00Z"))
                .await
                .unwrap();
        },
    )
    .await;
    let report = h.scheduler.tick().await;
    assert!(report.started.is_empty(), "{report:?}");
    assert!(runs(h.store.as_ref(), "daily").await.is_empty());
}

#[tokio::test]
async fn a_new_job_has_nothing_to_catch_up() {
    let job = JobBuilder::command("fresh", &["true"])
        .schedule("0 * * * *")
        .catch_up(Duration::from_secs(3600));
    let h = harness(
        ConfigBuilder::new().job(job),
        "2026-05-01T07:20:00Z",
        async |_| {},
    )
    .await;
    assert!(h.scheduler.tick().await.started.is_empty());
}

#[tokio::test]
async fn two_replicas_catching_up_run_the_backlog_once() {
    let job = JobBuilder::command("hourly", &["true"])
        .schedule("0 * * * *")
        .catch_up(Duration::from_secs(7200));
    let mut a = harness(
        ConfigBuilder::new().job(job.clone()),
        "2026-05-01T07:20:00Z",
        async |s| {
            s.advance_cursors(&["hourly"], t("2026-05-01T03:00:30Z"))
                .await
                .unwrap();
        },
    )
    .await;
    // Replica B shares A's store.
    let (b, _clock_b) = replica(&a.store, job, "2026-05-01T07:20:00Z").await;
    let (ra, rb) = tokio::join!(a.scheduler.tick(), b.tick());
    assert_eq!(ra.started.len() + rb.started.len(), 1, "{ra:?} {rb:?}");
    assert_eq!(ra.lost_claims + rb.lost_claims, 1);
    if !ra.started.is_empty() {
        finished(&mut a.events, 1).await;
    }
    b.shutdown(Duration::from_secs(5)).await;
    a.scheduler.shutdown(Duration::from_secs(5)).await;
    assert_eq!(runs(a.store.as_ref(), "hourly").await.len(), 1);
}

#[tokio::test]
async fn forbid_records_the_overlapping_fire_as_skipped() {
    let job = JobBuilder::command("slow", &["sleep", "30"]).every_second();
    let mut h = harness(
        ConfigBuilder::new().job(job),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    h.clock.set(t("2026-05-01T00:00:01Z"));
    let first = h.scheduler.tick().await;
    assert_eq!(first.started.len(), 1);
    started(&mut h.events).await;
    h.clock.set(t("2026-05-01T00:00:02Z"));
    let second = h.scheduler.tick().await;
    assert_eq!(second.skipped.len(), 1, "{second:?}");
    let skipped = h.store.get_run(second.skipped[0].1).await.unwrap().unwrap();
    assert_eq!(skipped.status, RunStatus::Skipped);
    let reason = skipped.error.unwrap();
    assert!(
        reason.contains(&format!(
            "run #{} is still running (concurrency: forbid)",
            first.started[0].1
        )),
        "{reason}"
    );
    h.scheduler.shutdown(Duration::from_millis(10)).await;
    let r = h.store.get_run(first.started[0].1).await.unwrap().unwrap();
    assert_eq!(
        r.status,
        RunStatus::Cancelled,
        "shutdown after grace cancels"
    );
}

#[tokio::test]
async fn allow_runs_overlapping_fires_side_by_side() {
    // Long enough that neither ends before the second tick is done, however
    // slow the machine.
    let job = JobBuilder::command("par", &["sleep", "5"])
        .every_second()
        .concurrency(Concurrency::Allow);
    let mut h = harness(
        ConfigBuilder::new().job(job),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    h.clock.set(t("2026-05-01T00:00:01Z"));
    assert_eq!(h.scheduler.tick().await.started.len(), 1);
    h.clock.set(t("2026-05-01T00:00:02Z"));
    assert_eq!(h.scheduler.tick().await.started.len(), 1);
    // Each sleeps 5 s and the ticks were immediate: both are running.
    assert_eq!(h.scheduler.active_runs(), 2);
    let done = finished(&mut h.events, 2).await;
    assert!(
        done.iter().all(|(_, s)| *s == RunStatus::Succeeded),
        "{done:?}"
    );
    assert_eq!(runs(h.store.as_ref(), "par").await.len(), 2);
}

#[tokio::test]
async fn replace_cancels_the_running_one_and_starts_anew() {
    let job = JobBuilder::command("rep", &["sleep", "30"])
        .every_second()
        .concurrency(Concurrency::Replace);
    let mut h = harness(
        ConfigBuilder::new().job(job),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    h.clock.set(t("2026-05-01T00:00:01Z"));
    let first = h.scheduler.tick().await.started[0].1;
    started(&mut h.events).await;
    h.clock.set(t("2026-05-01T00:00:02Z"));
    let second = h.scheduler.tick().await.started[0].1;
    let done = finished(&mut h.events, 1).await;
    assert_eq!(done, vec![(first, RunStatus::Cancelled)]);
    let r = h.store.get_run(first).await.unwrap().unwrap();
    let reason = r.error.unwrap();
    assert!(
        reason.contains(&format!("replaced by run #{second}")),
        "{reason}"
    );
    assert_eq!(
        h.store.get_run(second).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    h.scheduler.shutdown(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn timeout_kills_the_process_group_and_records_timed_out() {
    let job = JobBuilder::shell("hang", "sleep 30 & sleep 30; wait")
        .every_second()
        .timeout(Duration::from_millis(500));
    let mut h = harness(
        ConfigBuilder::new().job(job),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    h.clock.set(t("2026-05-01T00:00:01Z"));
    let id = h.scheduler.tick().await.started[0].1;
    let began = std::time::Instant::now();
    let done = finished(&mut h.events, 1).await;
    assert_eq!(done, vec![(id, RunStatus::TimedOut)]);
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "stopped promptly"
    );
    let r = h.store.get_run(id).await.unwrap().unwrap();
    assert!(r.error.unwrap().contains("timed out after 500ms"));
    assert!(r.log.unwrap().contains("SIGTERM"));
}

#[tokio::test]
async fn retries_back_off_and_link_attempts() {
    let job = JobBuilder::shell("flaky", "echo attempt; exit 3")
        .every_second()
        .retries(2, Duration::from_millis(50));
    let mut h = harness(
        ConfigBuilder::new().job(job),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    h.clock.set(t("2026-05-01T00:00:01Z"));
    h.scheduler.tick().await;
    let done = finished(&mut h.events, 3).await;
    assert!(
        done.iter().all(|(_, s)| *s == RunStatus::Failed),
        "{done:?}"
    );
    let r = runs(h.store.as_ref(), "flaky").await;
    assert_eq!(r.len(), 3);
    assert_eq!(
        r.iter().map(|r| (r.attempt, r.trigger)).collect::<Vec<_>>(),
        vec![
            (1, Trigger::Schedule),
            (2, Trigger::Retry),
            (3, Trigger::Retry)
        ]
    );
    assert_eq!(r[1].retry_of, Some(r[0].id));
    assert_eq!(r[2].retry_of, Some(r[1].id));
    assert!(
        r.iter()
            .all(|x| x.scheduled_for == Some(t("2026-05-01T00:00:01Z")))
    );
    assert!(
        r[0].error
            .as_deref()
            .unwrap()
            .contains("exited with status 3")
    );
}

#[tokio::test]
async fn a_retry_that_succeeds_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("seen");
    let script = format!(
        "if [ -e {m} ]; then exit 0; else touch {m}; exit 1; fi",
        m = marker.display()
    );
    let job = JobBuilder::shell("second-time", &script)
        .every_second()
        .retries(3, Duration::from_millis(10));
    let mut h = harness(
        ConfigBuilder::new().job(job),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    h.clock.set(t("2026-05-01T00:00:01Z"));
    h.scheduler.tick().await;
    let done = finished(&mut h.events, 2).await;
    assert_eq!(
        done.iter().map(|d| d.1).collect::<Vec<_>>(),
        vec![RunStatus::Failed, RunStatus::Succeeded]
    );
    assert_eq!(runs(h.store.as_ref(), "second-time").await.len(), 2);
}

#[tokio::test]
async fn suspended_jobs_do_not_fire() {
    let job = JobBuilder::command("off", &["true"])
        .every_second()
        .suspend();
    let h = harness(
        ConfigBuilder::new().job(job),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    h.clock.set(t("2026-05-01T00:00:05Z"));
    assert!(h.scheduler.tick().await.started.is_empty());
    assert!(runs(h.store.as_ref(), "off").await.is_empty());
}

#[tokio::test]
async fn secrets_never_reach_the_history() {
    let secret = "sk-live-9f8e7d6c5b4a";
    let job = JobBuilder::shell(
        "leaky",
        "echo token=$API_TOKEN; echo $API_TOKEN >&2; exit 1",
    )
    .env("API_TOKEN", secret)
    .every_second();
    let mut h = harness(
        ConfigBuilder::new().job(job).secrets(&[secret]),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    h.clock.set(t("2026-05-01T00:00:01Z"));
    let id = h.scheduler.tick().await.started[0].1;
    finished(&mut h.events, 1).await;
    let r = h.store.get_run(id).await.unwrap().unwrap();
    let everything = format!("{r:?} {}", serde_json::to_string(&r).unwrap());
    assert!(everything.contains("token=[REDACTED]"), "{everything}");
    assert!(!everything.contains(secret), "{everything}");
}

/// Two replicas ticking different instants at once leave exactly one run
/// going (the ordering rule itself is `scheduler::blockers`, table-tested).
#[tokio::test]
async fn concurrent_claims_of_different_fires_let_the_earlier_run() {
    let job = JobBuilder::command("slow", &["sleep", "30"]).every_second();
    let a = harness(
        ConfigBuilder::new().job(job.clone()),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    let (b, clock_b) = replica(&a.store, job, "2026-05-01T00:00:00Z").await;
    // A evaluates up to :01, B (ahead) up to :02, at the same moment.
    a.clock.set(t("2026-05-01T00:00:01Z"));
    clock_b.set(t("2026-05-01T00:00:02Z"));
    let (ra, rb) = tokio::join!(a.scheduler.tick(), b.tick());
    // Claims are rows, so once both ticks return the store shows every
    // decision: exactly one run going, the other fire skipped, none twice.
    let running = a.store.running(Some("slow")).await.unwrap();
    assert_eq!(running.len(), 1, "{ra:?} {rb:?}");
    let all = runs(a.store.as_ref(), "slow").await;
    assert_eq!(all.len(), 2, "one row per fire: {all:#?}");
    assert_eq!(
        all.iter()
            .filter(|r| r.status == RunStatus::Skipped)
            .count(),
        1,
        "{all:#?}"
    );
    assert_eq!(running[0].id, all[0].id, "the earlier claim runs");
    b.shutdown(Duration::from_millis(10)).await;
    a.scheduler.shutdown(Duration::from_millis(10)).await;
}

/// A paused job's fire is decided before its claim: the one insert records
/// it `skipped`, so no reader (`history`, another replica's overlap rule)
/// ever sees it `running` for a moment. A trigger in the test database logs
/// every status a run row is written with.
#[tokio::test]
async fn a_paused_fire_is_claimed_skipped_and_never_seen_running() {
    use sqlx::Connection;
    let job = JobBuilder::command("p", &["true"]).every_second();
    let h = harness(
        ConfigBuilder::new().job(job),
        "2026-05-01T00:00:00Z",
        async |s| {
            let pause = runbookd::model::Pause {
                job: "p".into(),
                paused_by: "alice".into(),
                reason: Some("maintenance window".into()),
                paused_at: t("2026-04-30T23:00:00Z"),
            };
            assert!(s.pause_job(&pause).await.unwrap());
        },
    )
    .await;
    let mut db = sqlx::SqliteConnection::connect(&h._db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE seen (status TEXT NOT NULL);
         CREATE TRIGGER seen_insert AFTER INSERT ON runs
           BEGIN INSERT INTO seen VALUES (NEW.status); END;
         CREATE TRIGGER seen_update AFTER UPDATE OF status ON runs
           BEGIN INSERT INTO seen VALUES (NEW.status); END;",
    )
    .execute(&mut db)
    .await
    .unwrap();
    h.clock.set(t("2026-05-01T00:00:01Z"));
    let report = h.scheduler.tick().await;
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(report.started.is_empty(), "{report:?}");
    let seen: Vec<String> = sqlx::query_scalar("SELECT status FROM seen")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(
        seen,
        ["skipped"],
        "every status the run row was written with"
    );
    let run = &runs(h.store.as_ref(), "p").await[0];
    assert!(
        run.error
            .as_deref()
            .unwrap()
            .contains("p paused by alice since 2026-04-30T23:00:00+00:00 (maintenance window)"),
        "{run:?}"
    );
}

/// The store found down after a tick's claims (by a run's write, or by the
/// cursor save of a tick held up on it) and back before the next tick: no
/// tick saw the fires in between, yet they came due while it was down. They
/// follow the outage rule (the newest inside `catch_up` at most, or the
/// fresh ones), never a burst of every second at once; also when a run's
/// own call has already found the store up again before the next tick.
#[cfg(feature = "integration")]
#[tokio::test]
async fn fires_due_while_the_store_was_down_are_the_outages_even_unticked() {
    for up_before_tick in [false, true] {
        unticked_outage(up_before_tick).await;
    }
}

#[cfg(feature = "integration")]
async fn unticked_outage(up_before_tick: bool) {
    use runbookd::testkit::proxy::Proxy;
    let db = TestDatabase::postgres().await;
    let url = url::Url::parse(&db.url).unwrap();
    let upstream: std::net::SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .unwrap();
    let proxy = Proxy::start(upstream);
    let mut via = url.clone();
    via.set_port(Some(proxy.addr.port())).unwrap();
    let store = runbookd::store::open(via.as_str()).await.unwrap();
    let job = JobBuilder::command("m", &["true"])
        .every_second()
        .concurrency(Concurrency::Allow)
        .catch_up(Duration::from_secs(10));
    let config = Arc::new(ConfigBuilder::new().job(job).build());
    let clock = ManualClock::new(t("2026-05-01T00:00:00Z"));
    let runner = Runner::builder(store.clone(), Arc::new(Adapters::real()))
        .clock(Arc::new(clock.clone()))
        .identity(Identity::current())
        .heartbeat(Duration::from_millis(100))
        .build();
    let health = runner.store_health().clone();
    let store = runner.store().clone();
    let scheduler = Scheduler::start(config, runner, Arc::new(clock.clone()))
        .await
        .unwrap();
    clock.set(t("2026-05-01T00:00:01Z"));
    assert_eq!(scheduler.tick().await.started.len(), 1);
    proxy.cut();
    assert!(store.ping().await.is_err(), "the cut store answered");
    assert!(!health.is_up());
    proxy.restore();
    if up_before_tick {
        // A write of a run (here a ping) finds it back first.
        store.ping().await.unwrap();
        assert!(health.is_up());
    }
    clock.set(t("2026-05-01T00:00:07Z"));
    let report = scheduler.tick().await;
    assert!(report.store_ok, "{report:?}");
    // 00:02 to 00:06 came due while the store was down, a second or more
    // ago: missed. 00:07 is fresh: on time.
    let started: Vec<_> = report.started.iter().map(|(_, _, t)| *t).collect();
    assert_eq!(
        started,
        [Trigger::Schedule],
        "up before the tick: {up_before_tick}; {report:?}"
    );
    assert_eq!(report.missed_total(), 5, "{report:?}");
    scheduler.shutdown(Duration::from_secs(5)).await;
}

/// On Postgres, two replicas claiming different fires of one `forbid` job
/// (a scheduled fire on A, a trigger on B) in the same instant: exactly
/// one runs. A's claim is held inside its insert (a database trigger
/// sleeps after its id is drawn, before it commits), which is the window
/// where ids drawn at insert did not give the claim order: B's later id
/// committed first and saw nothing, then A saw only a later id.
#[cfg(feature = "integration")]
#[tokio::test]
async fn forbid_claims_racing_on_postgres_let_exactly_one_run() {
    use sqlx::Connection;
    let job = JobBuilder::command("race", &["sleep", "30"]).every_second();
    let db = TestDatabase::postgres().await;
    let url = db.url.clone();
    let a = harness_on(
        db,
        ConfigBuilder::new().job(job.clone()),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    let (b, _clock_b) = replica(&a.store, job, "2026-05-01T00:00:00Z").await;
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION slow_claim() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF NEW.\"trigger\" = 'schedule' THEN PERFORM pg_sleep(1); END IF;
             RETURN NEW;
           END $$;
         CREATE TRIGGER slow_claim BEFORE INSERT ON runs
           FOR EACH ROW EXECUTE FUNCTION slow_claim();",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    a.store
        .request_run(&runbookd::model::NewRequest {
            job: "race".into(),
            params: Default::default(),
            requested_by: "alice".into(),
            reason: None,
            dry_run: false,
            requested_at: t("2026-05-01T00:00:00Z"),
            expires_at: None,
            confirmed: false,
        })
        .await
        .unwrap();
    a.clock.set(t("2026-05-01T00:00:01Z"));
    let tick_a = tokio::spawn(async move {
        let r = a.scheduler.tick().await;
        (a, r)
    });
    // A is inside its claim's insert: its id is drawn, nothing committed.
    tokio::time::timeout(WAIT, async {
        loop {
            let sleeping: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'",
            )
            .fetch_one(&mut admin)
            .await
            .unwrap();
            if sleeping > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("A's claim should reach the database trigger");
    let rb = b.tick().await;
    let (a, ra) = tick_a.await.unwrap();
    let running = a.store.running(Some("race")).await.unwrap();
    let all = runs(a.store.as_ref(), "race").await;
    assert_eq!(running.len(), 1, "{ra:?} {rb:?} {all:#?}");
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(
        all.iter()
            .filter(|r| r.status == RunStatus::Skipped)
            .count(),
        1,
        "{all:#?}"
    );
    b.shutdown(Duration::from_millis(10)).await;
    a.scheduler.shutdown(Duration::from_millis(10)).await;
}

/// Lines of a file the test's jobs append to, once it has at least `n`.
async fn lines_at_least(path: &std::path::Path, n: usize) -> Vec<String> {
    tokio::time::timeout(WAIT, async {
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} never had {n} lines", path.display()))
}

/// A job that ignores SIGTERM, so a stop takes its whole `kill_grace`
/// (2 s in tests), and writes a line when it starts.
fn stubborn(name: &str, marks: &std::path::Path) -> JobBuilder {
    JobBuilder::shell(
        name,
        &format!(
            "trap '' TERM; echo started >> {}; sleep 30",
            marks.display()
        ),
    )
    .every_second()
    .concurrency(Concurrency::Replace)
}

/// `replace` never runs two copies: the new run's process starts only once
/// the old run has ended (here after its kill grace, since it ignores
/// SIGTERM), and the new run's log says how long it waited.
#[tokio::test]
async fn replace_starts_the_new_run_only_once_the_old_one_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    let mut h = harness(
        ConfigBuilder::new().job(stubborn("rep", &marks)),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    h.clock.set(t("2026-05-01T00:00:01Z"));
    let first = h.scheduler.tick().await.started[0].1;
    lines_at_least(&marks, 1).await;
    h.clock.set(t("2026-05-01T00:00:02Z"));
    let second = h.scheduler.tick().await.started[0].1;
    lines_at_least(&marks, 2).await;
    let old = h.store.get_run(first).await.unwrap().unwrap();
    assert_eq!(
        old.status,
        RunStatus::Cancelled,
        "the old run ended before the new one's process started: {old:?}"
    );
    let done = finished(&mut h.events, 1).await;
    assert_eq!(done, vec![(first, RunStatus::Cancelled)]);
    // Stopped, so its whole log is saved.
    h.scheduler.shutdown(Duration::from_millis(10)).await;
    let new = h.store.get_run(second).await.unwrap().unwrap();
    let log = new.log.unwrap_or_default();
    assert!(
        log.contains(&format!("for run #{first} to end (concurrency: replace)")),
        "{log}"
    );
}

/// The same across replicas: B's fire replaces A's run, which B can only
/// ask to stop through the store (A sees it at its next heartbeat).
#[tokio::test]
async fn replace_across_replicas_starts_once_the_other_replicas_run_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    let job = stubborn("rep", &marks);
    let a = harness(
        ConfigBuilder::new().job(job.clone()),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    let (b, clock_b) = replica(&a.store, job, "2026-05-01T00:00:01Z").await;
    a.clock.set(t("2026-05-01T00:00:01Z"));
    let first = a.scheduler.tick().await.started[0].1;
    lines_at_least(&marks, 1).await;
    clock_b.set(t("2026-05-01T00:00:02Z"));
    let second = b.tick().await.started[0].1;
    lines_at_least(&marks, 2).await;
    let old = a.store.get_run(first).await.unwrap().unwrap();
    assert_ne!(
        old.status,
        RunStatus::Running,
        "the old run ended before the new one's process started: {old:?}"
    );
    b.shutdown(Duration::from_millis(10)).await;
    a.scheduler.shutdown(Duration::from_millis(10)).await;
    let new = a.store.get_run(second).await.unwrap().unwrap();
    let log = new.log.unwrap_or_default();
    assert!(log.contains(&format!("for run #{first} to end")), "{log}");
}

/// On Postgres a queued request and a cancel are pushed (LISTEN/NOTIFY):
/// with no tick at all (the manual clock never moves) and heartbeats an
/// hour apart, only the push can start the request and stop its run. On
/// SQLite nothing is pushed: polling is the way.
#[cfg(feature = "integration")]
#[tokio::test]
async fn a_pushed_request_starts_and_a_pushed_cancel_stops_without_a_tick() {
    let db = TestDatabase::postgres().await;
    let store = db.open().await;
    let job = JobBuilder::command("slow", &["sleep", "30"]);
    let config = Arc::new(ConfigBuilder::new().job(job).build());
    let clock = ManualClock::new(t("2026-05-01T00:00:00Z"));
    let runner = Runner::builder(store.clone(), Arc::new(Adapters::real()))
        .clock(Arc::new(clock.clone()))
        .identity(Identity::current())
        .heartbeat(Duration::from_secs(3600))
        .build();
    let mut events = runner.subscribe();
    let scheduler = Arc::new(
        Scheduler::start(config, runner.clone(), Arc::new(clock.clone()))
            .await
            .unwrap(),
    );
    let wakeups = store
        .wakeups()
        .await
        .unwrap()
        .expect("Postgres pushes requests and cancels");
    let requested = Arc::new(tokio::sync::Notify::new());
    let relay = tokio::spawn(runbookd::daemon::relay(
        wakeups,
        runner.clone(),
        requested.clone(),
    ));
    let taker = {
        let (s, r) = (scheduler.clone(), requested.clone());
        tokio::spawn(async move {
            loop {
                r.notified().await;
                s.take_requests_now().await;
            }
        })
    };
    // Another process (a CLI) queues the request.
    let cli = db.open().await;
    cli.request_run(&runbookd::model::NewRequest {
        job: "slow".into(),
        params: Default::default(),
        requested_by: "alice".into(),
        reason: None,
        dry_run: false,
        requested_at: t("2026-05-01T00:00:00Z"),
        expires_at: None,
        confirmed: false,
    })
    .await
    .unwrap();
    let id = started(&mut events).await;
    assert!(cli.request_cancel(id).await.unwrap());
    let done = finished(&mut events, 1).await;
    assert_eq!(done, vec![(id, RunStatus::Cancelled)]);
    let run = cli.get_run(id).await.unwrap().unwrap();
    assert!(
        run.error
            .unwrap_or_default()
            .contains("cancelled on request"),
        "{:?}",
        run.log
    );
    relay.abort();
    taker.abort();
    scheduler.shutdown(Duration::from_millis(10)).await;
    // SQLite pushes nothing.
    let lite = TestDatabase::sqlite();
    assert!(lite.open().await.wakeups().await.unwrap().is_none());
}

/// A run waiting for the run it replaces, replaced in turn, ends at once:
/// it started nothing. The third starts once both have ended.
#[tokio::test]
async fn a_replace_run_replaced_while_it_waits_ends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    let mut h = harness(
        ConfigBuilder::new().job(stubborn("rep", &marks)),
        "2026-05-01T00:00:00Z",
        async |_| {},
    )
    .await;
    h.clock.set(t("2026-05-01T00:00:01Z"));
    let first = h.scheduler.tick().await.started[0].1;
    lines_at_least(&marks, 1).await;
    h.clock.set(t("2026-05-01T00:00:02Z"));
    let second = h.scheduler.tick().await.started[0].1;
    h.clock.set(t("2026-05-01T00:00:03Z"));
    let third = h.scheduler.tick().await.started[0].1;
    // The waiting one goes first; the stubborn one takes its kill grace.
    let done = finished(&mut h.events, 2).await;
    assert_eq!(
        done,
        vec![
            (second, RunStatus::Cancelled),
            (first, RunStatus::Cancelled)
        ]
    );
    let marks = lines_at_least(&marks, 2).await;
    assert_eq!(marks.len(), 2, "the second never started its process");
    h.scheduler.shutdown(Duration::from_millis(10)).await;
    let log = h.store.get_run(third).await.unwrap().unwrap().log.unwrap();
    assert!(
        log.contains(&format!("run #{first}, #{second} to end")),
        "{log}"
    );
}
