//! One behaviour, two stores: every case runs on SQLite (always) and on
//! Postgres (with `--features integration`, started by scripts/test.sh).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbookd::model::{
    CheckResult, CheckStatus, LogSnapshot, MailBacklog, MailStatus, Measured, NewRequest, Pause,
    QueuedMail, RequestFilter, RequestStatus, Step, StepStatus,
};
use runbookd::store::{Finish, HistoryStore, NewRun, RunFilter, RunPage, RunStatus, Trigger};
use runbookd::testkit::TestDatabase;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A run row for tests, adjusted with struct update syntax.
fn new_run(job: &str, scheduled_for: Option<&str>) -> NewRun {
    NewRun {
        job: job.to_string(),
        trigger: if scheduled_for.is_some() {
            Trigger::Schedule
        } else {
            Trigger::Manual
        },
        triggered_by: "tester".into(),
        scheduled_for: scheduled_for.map(t),
        started_at: scheduled_for
            .map(t)
            .unwrap_or_else(|| t("2026-01-01T00:00:00Z")),
        status: RunStatus::Running,
        attempt: 1,
        error: None,
        dry_run: false,
        owner: "host:1:abcd".into(),
        retry_of: None,
    }
}

fn finish(status: RunStatus, at: &str, log: &str) -> Finish {
    Finish {
        status,
        finished_at: t(at),
        error: (status != RunStatus::Succeeded).then(|| format!("ended {status}")),
        log: LogSnapshot {
            text: log.to_string(),
            truncated: false,
        },
    }
}

async fn claim_is_exclusive_per_fire_and_attempt(s: Arc<dyn HistoryStore>) {
    let r = new_run("j", Some("2026-01-01T10:00:00Z"));
    let first = s.insert_run(&r).await.unwrap();
    assert!(first.is_some());
    assert_eq!(
        s.insert_run(&r).await.unwrap(),
        None,
        "second claim of one fire"
    );
    let retry = NewRun {
        attempt: 2,
        trigger: Trigger::Retry,
        retry_of: first,
        ..r.clone()
    };
    assert!(
        s.insert_run(&retry).await.unwrap().is_some(),
        "attempt 2 is its own claim"
    );
    let other_job = NewRun {
        job: "k".into(),
        ..r.clone()
    };
    assert!(s.insert_run(&other_job).await.unwrap().is_some());
    // Manual runs have no fire and never collide.
    let m = new_run("j", None);
    assert!(s.insert_run(&m).await.unwrap().is_some());
    assert!(s.insert_run(&m).await.unwrap().is_some());
}

async fn concurrent_claims_have_one_winner(s: Arc<dyn HistoryStore>) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let r = NewRun {
                owner: format!("host:{i}:x"),
                ..new_run("race", Some("2026-01-01T10:00:00Z"))
            };
            s.insert_run(&r).await.unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

/// A tick's fires claimed together: each as alone (lost if another has
/// it, with the job's running runs if not), in the order given.
async fn claims_together_as_one_by_one(s: Arc<dyn HistoryStore>) {
    assert!(s.claim_runs(&[]).await.unwrap().is_empty());
    let at = "2026-01-01T10:00:00Z";
    let theirs = s.claim_run(&new_run("a", Some(at))).await.unwrap().unwrap();
    assert!(theirs.earlier.is_empty());
    let before = s.claim_run(&new_run("c", None)).await.unwrap().unwrap();
    let runs = [
        new_run("a", Some(at)),
        NewRun {
            started_at: t("2026-01-01T10:00:00.123456789Z"),
            triggered_by: "scheduler@host \"q\"".into(),
            ..new_run("b", Some(at))
        },
        new_run("c", Some(at)),
    ];
    let claims = s.claim_runs(&runs).await.unwrap();
    assert_eq!(claims.len(), 3);
    assert!(
        claims[0].is_none(),
        "a's fire was already claimed: {:?}",
        claims[0]
    );
    let b = claims[1].as_ref().expect("b claimed");
    assert!(b.earlier.is_empty(), "{:?}", b.earlier);
    let c = claims[2].as_ref().expect("c claimed");
    assert_eq!(
        c.earlier.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![before.id],
        "c's running run"
    );
    let row = s.get_run(b.id).await.unwrap().unwrap();
    assert_eq!(row.job, "b");
    assert_eq!(row.triggered_by, "scheduler@host \"q\"");
    assert_eq!(row.scheduled_for, Some(t(at)));
    assert_eq!(
        row.started_at,
        t("2026-01-01T10:00:00.123456Z"),
        "microseconds, truncated"
    );
    assert_eq!(row.status, RunStatus::Running);
    // Claimed alone afterwards: the same key, so lost.
    assert!(
        s.claim_run(&new_run("b", Some(at)))
            .await
            .unwrap()
            .is_none()
    );
}

/// Replicas claiming the same instant's fires together, while triggers
/// claim some of those jobs alone: every fire has one winner, and no
/// claim waits on another forever (the per-job locks are taken in one
/// order).
async fn concurrent_batches_claim_each_fire_once(s: Arc<dyn HistoryStore>) {
    let at = "2026-01-01T10:00:00Z";
    let jobs: Vec<String> = (0..20).map(|i| format!("job-{i:02}")).collect();
    let mut tasks = Vec::new();
    for replica in 0..4 {
        let s = s.clone();
        let jobs = jobs.clone();
        tasks.push(tokio::spawn(async move {
            let runs: Vec<NewRun> = jobs
                .iter()
                .map(|j| NewRun {
                    owner: format!("host:{replica}:x"),
                    ..new_run(j, Some(at))
                })
                .collect();
            s.claim_runs(&runs)
                .await
                .unwrap()
                .into_iter()
                .filter(Option::is_some)
                .count()
        }));
    }
    for j in [3, 11, 19] {
        let s = s.clone();
        let job = jobs[j].clone();
        tasks.push(tokio::spawn(async move {
            usize::from(
                s.claim_run(&new_run(&job, Some(at)))
                    .await
                    .unwrap()
                    .is_some(),
            )
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += t.await.unwrap();
    }
    assert_eq!(won, jobs.len(), "each fire claimed once");
}

async fn finish_and_read_back(s: Arc<dyn HistoryStore>) {
    let id = s
        .insert_run(&new_run("j", Some("2026-01-01T10:00:00.123456Z")))
        .await
        .unwrap()
        .unwrap();
    let r = s.get_run(id).await.unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Running);
    assert_eq!(r.finished_at, None);
    assert_eq!(
        r.scheduled_for,
        Some(t("2026-01-01T10:00:00.123456Z")),
        "microseconds survive"
    );
    s.finish_run(
        id,
        &finish(
            RunStatus::Failed,
            "2026-01-01T10:00:05Z",
            "line 1\nline 2\n",
        ),
    )
    .await
    .unwrap();
    let r = s.get_run(id).await.unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.finished_at, Some(t("2026-01-01T10:00:05Z")));
    assert_eq!(r.error.as_deref(), Some("ended failed"));
    assert_eq!(r.log.as_deref(), Some("line 1\nline 2\n"));
    assert_eq!(r.trigger, Trigger::Schedule);
    assert_eq!(r.triggered_by, "tester");
    assert_eq!(r.attempt, 1);
    assert!(s.get_run(id + 1000).await.unwrap().is_none());
}

async fn skipped_rows_are_born_finished(s: Arc<dyn HistoryStore>) {
    let r = NewRun {
        status: RunStatus::Skipped,
        error: Some("skipped: run #1 is still running".into()),
        ..new_run("j", Some("2026-01-01T10:00:00Z"))
    };
    let id = s.insert_run(&r).await.unwrap().unwrap();
    let got = s.get_run(id).await.unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Skipped);
    assert_eq!(got.finished_at, Some(t("2026-01-01T10:00:00Z")));
    assert!(s.running(Some("j")).await.unwrap().is_empty());
}

async fn heartbeat_saves_log_and_carries_cancel_requests(s: Arc<dyn HistoryStore>) {
    let id = s.insert_run(&new_run("j", None)).await.unwrap().unwrap();
    let snap = LogSnapshot {
        text: "so far\n".into(),
        truncated: true,
    };
    assert!(
        !s.heartbeat(id, t("2026-01-01T00:00:05Z"), Some(&snap))
            .await
            .unwrap()
    );
    let r = s.get_run(id).await.unwrap().unwrap();
    assert_eq!(r.heartbeat_at, t("2026-01-01T00:00:05Z"));
    assert_eq!(r.log.as_deref(), Some("so far\n"));
    assert!(r.log_truncated);
    // A heartbeat without a log keeps the saved one.
    s.heartbeat(id, t("2026-01-01T00:00:10Z"), None)
        .await
        .unwrap();
    assert_eq!(
        s.get_run(id).await.unwrap().unwrap().log.as_deref(),
        Some("so far\n")
    );
    assert!(s.request_cancel(id).await.unwrap());
    assert!(
        s.heartbeat(id, t("2026-01-01T00:00:15Z"), None)
            .await
            .unwrap()
    );
    s.finish_run(
        id,
        &finish(RunStatus::Cancelled, "2026-01-01T00:00:16Z", ""),
    )
    .await
    .unwrap();
    assert!(
        !s.request_cancel(id).await.unwrap(),
        "an ended run cannot be cancelled"
    );
}

async fn stale_runs_are_abandoned_and_live_ones_kept(s: Arc<dyn HistoryStore>) {
    let stale = s.insert_run(&new_run("a", None)).await.unwrap().unwrap();
    let live = s.insert_run(&new_run("b", None)).await.unwrap().unwrap();
    let done = s.insert_run(&new_run("c", None)).await.unwrap().unwrap();
    s.heartbeat(live, t("2026-01-01T00:01:00Z"), None)
        .await
        .unwrap();
    s.finish_run(
        done,
        &finish(RunStatus::Succeeded, "2026-01-01T00:00:01Z", ""),
    )
    .await
    .unwrap();
    let ids = s
        .abandon_stale(t("2026-01-01T00:00:30Z"), t("2026-01-01T00:01:05Z"))
        .await
        .unwrap();
    assert_eq!(ids, vec![stale]);
    let r = s.get_run(stale).await.unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Abandoned);
    assert_eq!(r.finished_at, Some(t("2026-01-01T00:01:05Z")));
    let err = r.error.unwrap();
    assert!(
        err.contains("no heartbeat from host:1:abcd since 2026-01-01T00:00:00Z"),
        "{err}"
    );
    assert_eq!(
        s.get_run(live).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    assert_eq!(
        s.get_run(done).await.unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    let running: Vec<_> = s
        .running(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(running, vec![live]);
    assert!(
        s.abandon(live, t("2026-01-01T00:02:00Z"), "gone")
            .await
            .unwrap()
    );
    assert!(
        !s.abandon(live, t("2026-01-01T00:02:00Z"), "gone")
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_run(live).await.unwrap().unwrap().error.as_deref(),
        Some("gone")
    );
}

async fn listing_filters_and_orders(s: Arc<dyn HistoryStore>) {
    for (job, at) in [
        ("a", "2026-01-01T00:00:00Z"),
        ("b", "2026-01-02T00:00:00Z"),
        ("a", "2026-01-03T00:00:00Z"),
        ("a", "2026-01-04T00:00:00Z"),
    ] {
        s.insert_run(&new_run(job, Some(at)))
            .await
            .unwrap()
            .unwrap();
    }
    let all = s
        .list_runs(&RunFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let starts: Vec<String> = all
        .iter()
        .map(|r| r.started_at.format("%d").to_string())
        .collect();
    assert_eq!(starts, ["04", "03", "02", "01"], "newest first");
    assert!(
        all.iter().all(|r| r.log.is_none()),
        "listings carry no logs"
    );
    let a_since = s
        .list_runs(&RunFilter {
            job: Some("a".into()),
            since: Some(t("2026-01-02T12:00:00Z")),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(a_since.len(), 2);
    let limited = s
        .list_runs(&RunFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    let last = s.last_run("a", None).await.unwrap().unwrap();
    assert_eq!(last.started_at, t("2026-01-04T00:00:00Z"));
    assert!(s.last_run("zzz", None).await.unwrap().is_none());
    // Dry runs apart: the latest real run is older than a dry run after it.
    let dry = s
        .insert_run(&NewRun {
            dry_run: true,
            started_at: t("2026-01-05T00:00:00Z"),
            ..new_run("a", None)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.last_run("a", None).await.unwrap().unwrap().id, dry);
    assert_eq!(s.last_run("a", Some(true)).await.unwrap().unwrap().id, dry);
    assert_eq!(
        s.last_run("a", Some(false)).await.unwrap().unwrap().id,
        last.id
    );
}

async fn a_jobs_runs_page_by_id_with_filters(s: Arc<dyn HistoryStore>) {
    let mut ids = Vec::new();
    for (i, job) in ["a", "b", "a", "a", "a"].iter().enumerate() {
        let at = format!("2026-01-0{}T00:00:00Z", i + 1);
        let id = s
            .insert_run(&new_run(job, Some(&at)))
            .await
            .unwrap()
            .unwrap();
        ids.push(id);
    }
    // a: ids[0], ids[2], ids[3], ids[4]; the newest fails, one is manual.
    s.finish_run(
        ids[4],
        &finish(RunStatus::Failed, "2026-01-05T00:01:00Z", ""),
    )
    .await
    .unwrap();
    let manual = s
        .insert_run(&NewRun {
            started_at: t("2026-01-06T00:00:00Z"),
            ..new_run("a", None)
        })
        .await
        .unwrap()
        .unwrap();
    let page = |status, trigger, before, limit| RunPage {
        job: "a".into(),
        status,
        trigger,
        before,
        limit,
    };
    let got = |v: Vec<runbookd::store::Run>| v.iter().map(|r| r.id).collect::<Vec<_>>();
    let first = s.page_runs(&page(None, None, None, 2)).await.unwrap();
    assert_eq!(
        got(first.clone()),
        [manual, ids[4]],
        "newest first, limited"
    );
    assert!(first.iter().all(|r| r.log.is_none()));
    let next = s
        .page_runs(&page(None, None, Some(ids[4]), 2))
        .await
        .unwrap();
    assert_eq!(got(next), [ids[3], ids[2]], "the page after the last id");
    let failed = s
        .page_runs(&page(Some(RunStatus::Failed), None, None, 10))
        .await
        .unwrap();
    assert_eq!(got(failed), [ids[4]]);
    let by_hand = s
        .page_runs(&page(None, Some(Trigger::Manual), None, 10))
        .await
        .unwrap();
    assert_eq!(got(by_hand), [manual]);
    let none = s
        .page_runs(&page(
            Some(RunStatus::Running),
            Some(Trigger::Manual),
            Some(manual),
            10,
        ))
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn retries_and_chained_runs_are_found_both_ways(s: Arc<dyn HistoryStore>) {
    let first = s
        .insert_run(&new_run("a", Some("2026-01-01T00:00:00Z")))
        .await
        .unwrap()
        .unwrap();
    s.finish_run(
        first,
        &finish(RunStatus::Failed, "2026-01-01T00:01:00Z", ""),
    )
    .await
    .unwrap();
    let retry = s
        .insert_run(&NewRun {
            trigger: Trigger::Retry,
            attempt: 2,
            retry_of: Some(first),
            started_at: t("2026-01-01T00:02:00Z"),
            ..new_run("a", Some("2026-01-01T00:00:00Z"))
        })
        .await
        .unwrap()
        .unwrap();
    let run = s.get_run(first).await.unwrap().unwrap();
    let retries = s.retries_of(&run, 10).await.unwrap();
    assert_eq!(retries.iter().map(|r| r.id).collect::<Vec<_>>(), [retry]);
    let triage = s
        .insert_run(&NewRun {
            trigger: Trigger::Chained,
            triggered_by: runbookd::model::chained_by(first, "a"),
            started_at: t("2026-01-01T00:01:01Z"),
            ..new_run("triage", None)
        })
        .await
        .unwrap()
        .unwrap();
    // Another run's chained run is not this one's.
    s.insert_run(&NewRun {
        trigger: Trigger::Chained,
        triggered_by: runbookd::model::chained_by(retry, "a"),
        started_at: t("2026-01-01T00:03:00Z"),
        ..new_run("triage", None)
    })
    .await
    .unwrap()
    .unwrap();
    let chained = s
        .chained_from(&run, t("2026-01-02T00:00:00Z"), 10)
        .await
        .unwrap();
    assert_eq!(chained.iter().map(|r| r.id).collect::<Vec<_>>(), [triage]);
    let before = s
        .chained_from(&run, t("2026-01-01T00:01:00Z"), 10)
        .await
        .unwrap();
    assert!(before.is_empty(), "outside the window");
}

async fn cursor_only_moves_forward(s: Arc<dyn HistoryStore>) {
    assert_eq!(s.cursor("j").await.unwrap(), None);
    s.advance_cursors(&["j"], t("2026-01-01T10:00:00Z"))
        .await
        .unwrap();
    s.advance_cursors(&["j"], t("2026-01-01T09:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        s.cursor("j").await.unwrap(),
        Some(t("2026-01-01T10:00:00Z"))
    );
    s.advance_cursors(&["j"], t("2026-01-01T11:00:00.5Z"))
        .await
        .unwrap();
    assert_eq!(
        s.cursor("j").await.unwrap(),
        Some(t("2026-01-01T11:00:00.5Z"))
    );
    assert_eq!(s.cursor("other").await.unwrap(), None);
    // One statement moves several (one ahead, one new, one not listed).
    s.advance_cursors(&["j", "k", "it's \"odd\""], t("2026-01-01T12:00:00Z"))
        .await
        .unwrap();
    for job in ["j", "k", "it's \"odd\""] {
        assert_eq!(
            s.cursor(job).await.unwrap(),
            Some(t("2026-01-01T12:00:00Z")),
            "{job}"
        );
    }
    assert_eq!(s.cursor("other").await.unwrap(), None);
    s.advance_cursors(&[], t("2026-01-02T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        s.cursor("k").await.unwrap(),
        Some(t("2026-01-01T12:00:00Z"))
    );
}

async fn first_seen_is_kept_and_only_moves_earlier(s: Arc<dyn HistoryStore>) {
    assert!(s.first_seen().await.unwrap().is_empty());
    s.see_jobs(&["watch", "daily"], t("2026-01-01T10:00:00.25Z"))
        .await
        .unwrap();
    // Seen again later (a restart, a run by hand): kept as it was.
    s.see_jobs(&["watch", "new"], t("2026-01-02T10:00:00Z"))
        .await
        .unwrap();
    // Seen earlier (a replica whose clock is behind): moved back.
    s.see_jobs(&["daily"], t("2026-01-01T09:00:00Z"))
        .await
        .unwrap();
    s.see_jobs(&[], t("2026-01-03T00:00:00Z")).await.unwrap();
    let seen: Vec<(String, DateTime<Utc>)> = s.first_seen().await.unwrap().into_iter().collect();
    assert_eq!(
        seen,
        [
            ("daily".to_string(), t("2026-01-01T09:00:00Z")),
            ("new".to_string(), t("2026-01-02T10:00:00Z")),
            ("watch".to_string(), t("2026-01-01T10:00:00.25Z")),
        ]
    );
    // Pruning the history keeps what was seen.
    s.prune(t("2027-01-01T00:00:00Z")).await.unwrap();
    assert_eq!(s.first_seen().await.unwrap().len(), 3);
}

async fn prune_keeps_recent_and_running(s: Arc<dyn HistoryStore>) {
    let old_done = s
        .insert_run(&new_run("j", Some("2025-01-01T00:00:00Z")))
        .await
        .unwrap()
        .unwrap();
    s.finish_run(
        old_done,
        &finish(RunStatus::Succeeded, "2025-01-01T00:00:01Z", ""),
    )
    .await
    .unwrap();
    let old_running = s
        .insert_run(&new_run("j", Some("2025-01-02T00:00:00Z")))
        .await
        .unwrap()
        .unwrap();
    let recent = s
        .insert_run(&new_run("j", Some("2026-01-01T00:00:00Z")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.prune(t("2025-06-01T00:00:00Z")).await.unwrap(), 1);
    assert!(s.get_run(old_done).await.unwrap().is_none());
    assert!(s.get_run(old_running).await.unwrap().is_some());
    assert!(s.get_run(recent).await.unwrap().is_some());
}

async fn check_results_keep_order_and_values(s: Arc<dyn HistoryStore>) {
    let id = s.insert_run(&new_run("c", None)).await.unwrap().unwrap();
    let results = vec![
        CheckResult::new("api", CheckStatus::Pass, "200 in 12 ms")
            .number(12.0)
            .threshold("fail if > 5000 ms"),
        CheckResult::new("pods/ready", CheckStatus::Fail, "1 of 3 not ready").text("2/3"),
        CheckResult::error("redis", "refused: redis://cache:6379"),
    ];
    s.record_checks(id, &results).await.unwrap();
    let got = s.checks(id).await.unwrap();
    assert_eq!(got, results);
    assert_eq!(got[0].value, Some(Measured::Number(12.0)));
    assert_eq!(s.get_run(id).await.unwrap().unwrap().checks, results);
}

async fn steps_are_saved_as_they_start_and_end(s: Arc<dyn HistoryStore>) {
    let id = s.insert_run(&new_run("m", None)).await.unwrap().unwrap();
    let started = Step {
        position: 0,
        name: "create-snapshot".into(),
        target: "rds:flexoraa-production-db".into(),
        status: StepStatus::Running,
        started_at: t("2026-01-01T00:00:01Z"),
        finished_at: None,
        detail: "CreateDBSnapshot".into(),
        payload: None,
    };
    s.record_step(id, &started).await.unwrap();
    // A crash here leaves the step, running, in the history.
    assert_eq!(s.steps(id).await.unwrap(), vec![started.clone()]);
    let done = Step {
        status: StepStatus::Succeeded,
        finished_at: Some(t("2026-01-01T00:03:00Z")),
        detail: "snapshot available".into(),
        payload: Some(serde_json::json!({"snapshot": "runbookd-20260101-000001"})),
        ..started.clone()
    };
    s.record_step(id, &done).await.unwrap();
    let second = Step {
        position: 1,
        name: "run-migration".into(),
        status: StepStatus::Failed,
        ..started
    };
    s.record_step(id, &second).await.unwrap();
    let got = s.get_run(id).await.unwrap().unwrap().steps;
    assert_eq!(got, vec![done, second]);
    // Steps go with their run.
    s.finish_run(id, &finish(RunStatus::Failed, "2026-01-01T00:04:00Z", ""))
        .await
        .unwrap();
    assert_eq!(s.prune(t("2026-06-01T00:00:00Z")).await.unwrap(), 1);
    assert!(s.steps(id).await.unwrap().is_empty());
}

async fn check_history_reads_a_jobs_points_oldest_first(s: Arc<dyn HistoryStore>) {
    let mut ids = Vec::new();
    for (day, ms) in [
        ("2026-01-01", 10.0),
        ("2026-01-02", 20.0),
        ("2026-01-03", 30.0),
    ] {
        let at = format!("{day}T08:00:00Z");
        let id = s
            .insert_run(&new_run("daily", Some(&at)))
            .await
            .unwrap()
            .unwrap();
        s.record_checks(
            id,
            &[
                CheckResult::new("p99", CheckStatus::Pass, "ok").number(ms),
                CheckResult::new("pods", CheckStatus::Pass, "ok").text("3/3"),
            ],
        )
        .await
        .unwrap();
        s.finish_run(id, &finish(RunStatus::Succeeded, &at, ""))
            .await
            .unwrap();
        ids.push(id);
    }
    // Another job's results and a run still going are not history.
    let other = s
        .insert_run(&new_run("watch", None))
        .await
        .unwrap()
        .unwrap();
    s.record_checks(
        other,
        &[CheckResult::new("p99", CheckStatus::Fail, "x").number(1.0)],
    )
    .await
    .unwrap();
    let going = s
        .insert_run(&new_run("daily", Some("2026-01-04T08:00:00Z")))
        .await
        .unwrap()
        .unwrap();
    s.record_checks(
        going,
        &[CheckResult::new("p99", CheckStatus::Pass, "x").number(1.0)],
    )
    .await
    .unwrap();

    let got = s
        .check_history("daily", t("2026-01-02T00:00:00Z"))
        .await
        .unwrap();
    let seen: Vec<_> = got
        .iter()
        .map(|p| (p.run_id, p.result.check.as_str(), p.result.value.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (ids[1], "p99", Some(Measured::Number(20.0))),
            (ids[1], "pods", Some(Measured::Text("3/3".into()))),
            (ids[2], "p99", Some(Measured::Number(30.0))),
            (ids[2], "pods", Some(Measured::Text("3/3".into()))),
        ]
    );
    assert_eq!(got[0].started_at, t("2026-01-02T08:00:00Z"));
}

fn queued(id: &str, at: &str) -> QueuedMail {
    QueuedMail {
        message_id: id.into(),
        subject: "[runbookd] report".into(),
        recipients: vec!["oncall@example.com".into(), "lead@example.com".into()],
        raw: "Subject: x\r\n\r\nbody".into(),
        job: Some("morning-report".into()),
        run_id: Some(7),
        status: MailStatus::Pending,
        attempts: 0,
        last_error: None,
        created_at: t(at),
        next_attempt_at: t(at),
        sent_at: None,
    }
}

async fn mail_is_kept_until_sent_and_sent_once(s: Arc<dyn HistoryStore>) {
    let m = queued("<a@runbookd>", "2026-01-01T08:00:00Z");
    assert!(s.queue_mail(&m).await.unwrap());
    // Queuing the same message again keeps one.
    assert!(!s.queue_mail(&m).await.unwrap());
    assert_eq!(s.mail("<a@runbookd>").await.unwrap(), Some(m.clone()));
    assert!(s.mail("<none@runbookd>").await.unwrap().is_none());

    // Not due before its time.
    assert!(
        s.due_mail(t("2026-01-01T07:59:59Z"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = s.due_mail(t("2026-01-01T08:00:00Z"), 10).await.unwrap();
    assert_eq!(due, vec![m.clone()]);

    // Two senders: one takes it, and the lease hides it from later reads.
    let now = t("2026-01-01T08:00:01Z");
    let lease = t("2026-01-01T08:05:00Z");
    let (a, b) = tokio::join!(
        s.claim_mail("<a@runbookd>", now, lease),
        s.claim_mail("<a@runbookd>", now, lease)
    );
    assert!(
        a.unwrap() ^ b.unwrap(),
        "exactly one sender takes a message"
    );
    assert!(s.due_mail(now, 10).await.unwrap().is_empty());

    s.mail_failed(
        "<a@runbookd>",
        "smtp://mail:587: connection refused",
        3,
        t("2026-01-01T08:10:00Z"),
    )
    .await
    .unwrap();
    let failed = s.mail("<a@runbookd>").await.unwrap().unwrap();
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.status, MailStatus::Pending);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("smtp://mail:587: connection refused")
    );
    assert_eq!(failed.next_attempt_at, t("2026-01-01T08:10:00Z"));

    let later = t("2026-01-01T08:10:00Z");
    assert!(
        s.claim_mail("<a@runbookd>", later, t("2026-01-01T08:15:00Z"))
            .await
            .unwrap()
    );
    s.mail_sent("<a@runbookd>", later).await.unwrap();
    let sent = s.mail("<a@runbookd>").await.unwrap().unwrap();
    assert_eq!(sent.status, MailStatus::Sent);
    assert_eq!(sent.sent_at, Some(later));
    assert!(sent.last_error.is_none());
    // Sent is final: never due, never claimed, a late failure changes nothing.
    let far = t("2027-01-01T00:00:00Z");
    assert!(s.due_mail(far, 10).await.unwrap().is_empty());
    assert!(!s.claim_mail("<a@runbookd>", far, far).await.unwrap());
    s.mail_failed("<a@runbookd>", "late", 1, far).await.unwrap();
    assert_eq!(
        s.mail("<a@runbookd>").await.unwrap().unwrap().status,
        MailStatus::Sent
    );

    // Sent mail is pruned with old runs; pending mail is kept.
    let pending = queued("<b@runbookd>", "2026-01-01T08:00:00Z");
    s.queue_mail(&pending).await.unwrap();
    s.prune(t("2026-06-01T00:00:00Z")).await.unwrap();
    assert!(s.mail("<a@runbookd>").await.unwrap().is_none());
    assert!(s.mail("<b@runbookd>").await.unwrap().is_some());
}

async fn mail_backlog_counts_pending_mail_and_its_oldest(s: Arc<dyn HistoryStore>) {
    assert_eq!(s.mail_backlog().await.unwrap(), MailBacklog::default());
    for (id, at) in [
        ("<b@runbookd>", "2026-01-01T09:00:00Z"),
        ("<a@runbookd>", "2026-01-01T08:00:00Z"),
        ("<c@runbookd>", "2026-01-01T10:00:00Z"),
    ] {
        s.queue_mail(&queued(id, at)).await.unwrap();
    }
    s.mail_sent("<a@runbookd>", t("2026-01-01T10:30:00Z"))
        .await
        .unwrap();
    assert_eq!(
        s.mail_backlog().await.unwrap(),
        MailBacklog {
            pending: 2,
            oldest: Some(t("2026-01-01T09:00:00Z")),
        }
    );
}

async fn failures_are_news_once_and_recovery_once(s: Arc<dyn HistoryStore>) {
    let at = t("2026-01-01T08:00:00Z");
    // A success with nothing told before is not a recovery.
    assert!(!s.notify_recovered("j", 1, at).await.unwrap());
    assert!(s.notify_failing("j", 2, at).await.unwrap());
    assert!(!s.notify_failing("j", 3, at).await.unwrap());
    assert!(!s.notify_failing("j", 4, at).await.unwrap());
    // Jobs are apart.
    assert!(s.notify_failing("k", 4, at).await.unwrap());
    assert!(s.notify_recovered("j", 5, at).await.unwrap());
    assert!(!s.notify_recovered("j", 6, at).await.unwrap());
    assert!(s.notify_failing("j", 7, at).await.unwrap());
    // Two replicas finishing at once: one tells it.
    let (a, b) = tokio::join!(
        s.notify_recovered("k", 8, at),
        s.notify_recovered("k", 9, at)
    );
    assert!(a.unwrap() ^ b.unwrap());
    // Each job's state as the last change left it: what an alert is
    // re-posted from.
    let later = t("2026-01-01T09:00:00Z");
    assert!(s.notify_failing("m", 10, later).await.unwrap());
    let states = s.notify_states().await.unwrap();
    let brief: Vec<(&str, bool, i64)> = states
        .iter()
        .map(|st| (st.job.as_str(), st.failing, st.run_id))
        .collect();
    assert_eq!(brief[..2], [("j", true, 7), ("k", false, brief[1].2)]);
    assert!(matches!(brief[1].2, 8 | 9), "{brief:?}");
    assert_eq!(brief[2], ("m", true, 10));
    assert_eq!(states[0].since, at);
    assert_eq!(states[2].since, later);
}

fn ask(job: &str, by: &str) -> NewRequest {
    NewRequest {
        job: job.into(),
        params: [("only".to_string(), "redis".to_string())].into(),
        requested_by: by.into(),
        reason: Some("incident 42".into()),
        dry_run: false,
        requested_at: t("2026-01-01T00:00:00Z"),
        expires_at: Some(t("2026-01-01T00:05:00Z")),
        confirmed: false,
    }
}

/// A request's lifetime and its withdrawal: expired and withdrawn requests
/// are never taken, a withdrawal and a take racing have one winner, and the
/// listing shows every state with who and why.
async fn requests_expire_and_are_withdrawn_atomically(s: Arc<dyn HistoryStore>) {
    let short = NewRequest {
        expires_at: Some(t("2026-01-01T00:00:01Z")),
        ..ask("rollout-undo", "alice")
    };
    let a = s.request_run(&short).await.unwrap();
    let b = s.request_run(&ask("daily", "bob")).await.unwrap();
    let now = t("2026-01-01T00:00:02Z");
    // Past its lifetime: never taken, even before it is marked expired.
    let got = s.take_request("r1", now).await.unwrap().unwrap();
    assert_eq!(got.id, b);
    let expired = s.expire_requests(now).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, a);
    assert_eq!(expired[0].status, RequestStatus::Expired);
    assert_eq!(expired[0].closed_at, Some(now));
    assert!(
        expired[0]
            .error
            .as_deref()
            .unwrap()
            .contains("no daemon took it")
    );
    assert!(s.expire_requests(now).await.unwrap().is_empty(), "once");

    let c = s.request_run(&ask("daily", "carol")).await.unwrap();
    let w = s
        .withdraw_request(c, "dave", "did it by hand", now)
        .await
        .unwrap()
        .expect("a pending request is withdrawn");
    assert_eq!(w.status, RequestStatus::Withdrawn);
    assert_eq!(w.closed_by.as_deref(), Some("dave"));
    assert_eq!(w.error.as_deref(), Some("did it by hand"));
    assert!(
        s.withdraw_request(c, "dave", "again", now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.take_request("r1", now).await.unwrap().is_none(),
        "withdrawn is never taken"
    );
    // Taken first: it cannot be withdrawn.
    let d = s.request_run(&ask("daily", "erin")).await.unwrap();
    assert_eq!(s.take_request("r1", now).await.unwrap().unwrap().id, d);
    assert!(
        s.withdraw_request(d, "erin", "too late", now)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.get_request(d).await.unwrap().unwrap().status,
        RequestStatus::Started
    );
    // A take and a withdrawal at once: exactly one wins.
    for _ in 0..10 {
        let e = s.request_run(&ask("daily", "frank")).await.unwrap();
        let (taken, withdrawn) = tokio::join!(
            s.take_request("r2", now),
            s.withdraw_request(e, "frank", "gave up", now)
        );
        let taken = taken.unwrap().is_some_and(|r| r.id == e);
        let withdrawn = withdrawn.unwrap().is_some();
        assert!(taken ^ withdrawn, "taken {taken}, withdrawn {withdrawn}");
    }
    // Listed newest first, by state.
    let all = s
        .list_requests(&RequestFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 14);
    assert!(all.windows(2).all(|p| p[0].id > p[1].id));
    let by = |st| {
        let s = s.clone();
        async move {
            s.list_requests(&RequestFilter {
                status: Some(st),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(by(RequestStatus::Expired).await.len(), 1);
    assert_eq!(
        by(RequestStatus::Withdrawn).await[0]
            .closed_by
            .as_deref()
            .is_some(),
        true
    );
    let mine = s
        .list_requests(&RequestFilter {
            job: Some("rollout-undo".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
}

async fn each_request_is_taken_once_oldest_first(s: Arc<dyn HistoryStore>) {
    let a = s.request_run(&ask("daily", "alice")).await.unwrap();
    let b = s.request_run(&ask("watch", "bob")).await.unwrap();
    assert!(b > a);
    let got = s.get_request(a).await.unwrap().unwrap();
    assert_eq!(got.status, RequestStatus::Pending);
    assert!(!got.confirmed);
    let confirmed = s
        .request_run(&NewRequest {
            confirmed: true,
            ..ask("maintenance-mode", "alice")
        })
        .await
        .unwrap();
    assert!(s.get_request(confirmed).await.unwrap().unwrap().confirmed);
    assert!(
        s.withdraw_request(confirmed, "alice", "test", t("2026-01-01T00:00:00Z"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(got.params["only"], "redis");
    assert_eq!(got.reason.as_deref(), Some("incident 42"));

    // Three takers at once: two get one each, oldest first; one gets none.
    let now = t("2026-01-01T00:00:01Z");
    let (x, y, z) = tokio::join!(
        s.take_request("r1", now),
        s.take_request("r2", now),
        s.take_request("r3", now)
    );
    let mut taken: Vec<_> = [x, y, z]
        .into_iter()
        .filter_map(|r| r.unwrap())
        .map(|r| (r.id, r.status))
        .collect();
    taken.sort();
    assert_eq!(
        taken,
        vec![(a, RequestStatus::Started), (b, RequestStatus::Started)]
    );
    assert!(s.take_request("r4", now).await.unwrap().is_none());

    s.request_started(a, 77).await.unwrap();
    let got = s.get_request(a).await.unwrap().unwrap();
    assert_eq!(got.run_id, Some(77));
    assert!(got.taken_by.is_some());
    assert_eq!(got.taken_at, Some(now));
    s.refuse_request(b, "no job named `watch` in this daemon's jobs file")
        .await
        .unwrap();
    let got = s.get_request(b).await.unwrap().unwrap();
    assert_eq!(got.status, RequestStatus::Refused);
    assert!(got.error.unwrap().contains("no job named"));
    assert!(s.get_request(999).await.unwrap().is_none());
    // Ended requests go with old runs; pending ones stay.
    let c = s.request_run(&ask("daily", "carol")).await.unwrap();
    s.prune(t("2026-06-01T00:00:00Z")).await.unwrap();
    assert!(s.get_request(a).await.unwrap().is_none());
    assert!(s.get_request(c).await.unwrap().is_some());
}

async fn pauses_are_kept_until_resumed(s: Arc<dyn HistoryStore>) {
    let p = Pause {
        job: "watch".into(),
        paused_by: "alice".into(),
        reason: Some("maintenance window".into()),
        paused_at: t("2026-01-01T00:00:00Z"),
    };
    assert!(s.pause_job(&p).await.unwrap());
    assert!(
        !s.pause_job(&Pause {
            paused_by: "bob".into(),
            ..p.clone()
        })
        .await
        .unwrap()
    );
    assert_eq!(
        s.paused_jobs().await.unwrap(),
        vec![p.clone()],
        "the first pause stands"
    );
    assert!(s.resume_job("watch").await.unwrap());
    assert!(!s.resume_job("watch").await.unwrap());
    assert!(s.paused_jobs().await.unwrap().is_empty());
}

/// Every trigger, `chained` included (migration 0007), on whichever pooled
/// connection takes the insert.
async fn every_trigger_is_kept_on_every_connection(s: Arc<dyn HistoryStore>) {
    let inserts = (0..24).map(|i| {
        let s = s.clone();
        async move {
            let trigger = Trigger::ALL[i % Trigger::ALL.len()];
            let r = NewRun {
                trigger,
                ..new_run(&format!("j{i}"), None)
            };
            (trigger, s.insert_run(&r).await)
        }
    });
    for (trigger, r) in futures::future::join_all(inserts).await {
        let id = r
            .unwrap_or_else(|e| panic!("{trigger}: {e}"))
            .expect("a manual run always claims");
        assert_eq!(s.get_run(id).await.unwrap().unwrap().trigger, trigger);
    }
}

async fn migrate_is_idempotent(s: Arc<dyn HistoryStore>) {
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
}

macro_rules! conformance {
    ($backend:ident, $db:expr) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let db = $db;
                        let store = db.open().await;
                        tokio::time::timeout(Duration::from_secs(60), super::$name(store))
                            .await
                            .expect("conformance case timed out");
                    }
                };
            }

            case!(claim_is_exclusive_per_fire_and_attempt);
            case!(concurrent_claims_have_one_winner);
            case!(claims_together_as_one_by_one);
            case!(concurrent_batches_claim_each_fire_once);
            case!(finish_and_read_back);
            case!(skipped_rows_are_born_finished);
            case!(heartbeat_saves_log_and_carries_cancel_requests);
            case!(stale_runs_are_abandoned_and_live_ones_kept);
            case!(listing_filters_and_orders);
            case!(a_jobs_runs_page_by_id_with_filters);
            case!(retries_and_chained_runs_are_found_both_ways);
            case!(cursor_only_moves_forward);
            case!(first_seen_is_kept_and_only_moves_earlier);
            case!(prune_keeps_recent_and_running);
            case!(check_results_keep_order_and_values);
            case!(steps_are_saved_as_they_start_and_end);
            case!(check_history_reads_a_jobs_points_oldest_first);
            case!(mail_is_kept_until_sent_and_sent_once);
            case!(mail_backlog_counts_pending_mail_and_its_oldest);
            case!(failures_are_news_once_and_recovery_once);
            case!(each_request_is_taken_once_oldest_first);
            case!(requests_expire_and_are_withdrawn_atomically);
            case!(pauses_are_kept_until_resumed);
            case!(every_trigger_is_kept_on_every_connection);
            case!(migrate_is_idempotent);
        }
    };
}

conformance!(sqlite, TestDatabase::sqlite());
#[cfg(feature = "integration")]
conformance!(postgres, TestDatabase::postgres().await);

#[tokio::test]
async fn unreachable_postgres_names_the_url_without_its_password() {
    // Port 1 on loopback: nothing listens, the refusal is immediate.
    let err = runbookd::store::open("postgres://app:hunter2@127.0.0.1:1/app")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("postgres://app:[REDACTED]@127.0.0.1:1/app"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

#[tokio::test]
async fn unsupported_url_is_a_clear_error() {
    let err = runbookd::store::open("mysql://root:pw@localhost/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unsupported history store URL mysql://root:[REDACTED]@localhost/db"),
        "{err}"
    );
}

/// A SQLite history made before migration 0007 widened the trigger CHECK
/// in place: its rows stay (a table rebuild would have cascaded into their
/// steps), and chained runs are accepted at once.
#[tokio::test]
async fn a_sqlite_history_from_before_chained_runs_upgrades_in_place() {
    use std::str::FromStr;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    let m = sqlx::migrate::Migrator::new(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite"
    )))
    .await
    .unwrap();
    m.run_to(6, &pool).await.unwrap();
    sqlx::query(
        "INSERT INTO runs (job, \"trigger\", triggered_by, started_at, status, attempt, owner, heartbeat_at) \
         VALUES ('old', 'manual', 'sre', 0, 'succeeded', 1, 'h:1:a', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO run_steps (run_id, position, name, target, status, started_at, detail) \
         VALUES (1, 0, 'snapshot', 'db', 'succeeded', 0, 'made')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let refused = sqlx::query(
        "INSERT INTO runs (job, \"trigger\", triggered_by, started_at, status, attempt, owner, heartbeat_at) \
         VALUES ('new', 'chained', 'run 1', 0, 'running', 1, 'h:1:a', 0)",
    )
    .execute(&pool)
    .await;
    assert!(refused.is_err(), "before 0007 the CHECK refuses `chained`");
    pool.close().await;

    let s = runbookd::store::open(&url).await.unwrap();
    let old = s.get_run(1).await.unwrap().unwrap();
    assert_eq!(old.job, "old");
    assert_eq!(old.steps.len(), 1, "the old run keeps its steps");
    every_trigger_is_kept_on_every_connection(s).await;
}

/// A SQLite history from before request lifetimes: a request left pending
/// gets the default lifetime from when it was asked (so a stale one never
/// runs after the upgrade), and the new states are accepted.
#[tokio::test]
async fn a_sqlite_history_from_before_request_lifetimes_upgrades_in_place() {
    use std::str::FromStr;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    let m = sqlx::migrate::Migrator::new(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite"
    )))
    .await
    .unwrap();
    m.run_to(7, &pool).await.unwrap();
    // Asked at 2026-01-01T00:00:00Z (microseconds), never taken.
    sqlx::query(
        "INSERT INTO run_requests (job, requested_by, requested_at, status) \
         VALUES ('rollout-undo', 'alice', 1767225600000000, 'pending')",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let s = runbookd::store::open(&url).await.unwrap();
    let old = s.get_request(1).await.unwrap().unwrap();
    assert_eq!(old.expires_at, Some(t("2026-01-01T00:05:00Z")));
    assert!(
        s.take_request("r", t("2026-06-01T00:00:00Z"))
            .await
            .unwrap()
            .is_none(),
        "a request from before the upgrade is past its lifetime"
    );
    let expired = s.expire_requests(t("2026-06-01T00:00:00Z")).await.unwrap();
    assert_eq!(expired[0].status, RequestStatus::Expired);
    let id = s.request_run(&ask("daily", "bob")).await.unwrap();
    let w = s
        .withdraw_request(id, "bob", "not needed", t("2026-01-01T00:00:01Z"))
        .await;
    assert_eq!(w.unwrap().unwrap().status, RequestStatus::Withdrawn);
}

/// A history from before first-seen instants were kept (0009): each job
/// gets the earliest instant the history shows it known, so an upgrade
/// judges the fires it judged before.
#[tokio::test]
async fn a_sqlite_history_from_before_first_seen_gets_it_from_its_runs() {
    use std::str::FromStr;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    let m = sqlx::migrate::Migrator::new(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite"
    )))
    .await
    .unwrap();
    m.run_to(7, &pool).await.unwrap();
    let micros = |s: &str| t(s).timestamp_micros();
    // A catch-up run started after its fire; a job known only by its cursor.
    sqlx::query(
        "INSERT INTO runs (job, \"trigger\", triggered_by, scheduled_for, started_at, status, attempt, owner, heartbeat_at) \
         VALUES ('watch', 'catchup', 'scheduler', $1, $2, 'succeeded', 1, 'h:1:a', $2)",
    )
    .bind(micros("2026-01-01T10:00:00Z"))
    .bind(micros("2026-01-01T10:30:00Z"))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO job_cursors (job, evaluated_until) VALUES ('watch', $1), ('idle', $1)",
    )
    .bind(micros("2026-01-05T00:00:00Z"))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let s = runbookd::store::open(&url).await.unwrap();
    let seen: Vec<(String, DateTime<Utc>)> = s.first_seen().await.unwrap().into_iter().collect();
    assert_eq!(
        seen,
        [
            ("idle".to_string(), t("2026-01-05T00:00:00Z")),
            ("watch".to_string(), t("2026-01-01T10:00:00Z")),
        ]
    );
}
