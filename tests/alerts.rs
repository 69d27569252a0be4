//! Job failures into a real Alertmanager (Debian's
//! `prometheus-alertmanager`, one per test, routing to a webhook the test
//! runs): the alert arrives once, grouped, with its labels and
//! annotations, is re-posted while the job fails and resolves when it
//! succeeds; nothing is posted for a dry run, a cancel or a skip; an
//! Alertmanager that hangs or is down never fails or delays the job. Needs
//! `--features integration`.
#![cfg(feature = "integration")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use runbookd::adapters::Adapters;
use runbookd::model::{Pause, RunStatus};
use runbookd::runner::{Admission, CallOutcome, RunEvent, RunRequest, Stop};
use runbookd::testkit::alertmanager::Alertmanager;
use runbookd::testkit::receiver::{Received, Recorder, Silent};
use runbookd::testkit::world::World;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

fn jobs(am_url: &str, flag: &std::path::Path, outbox: &std::path::Path) -> String {
    format!(
        r#"
daemon: {{ heartbeat: 200ms, stale_after: 2s, shutdown_grace: 2s }}
mail:
  to: oncall@flexoraa.com
  outbox: "{outbox}"
links:
  runbook: https://git.flexoraa.com/ops/RUNBOOK.md
  anchors: {{ nightly: nightly-fails }}
alertmanager:
  url: "{am_url}"
  labels: {{ team: backend }}
  resend: 1s
  timeout: 2s
jobs:
  nightly:
    kind: command
    argv: [sh, -c, "test -e {flag} || {{ echo 'backup bucket unreachable' >&2; exit 3; }}"]
    notify: on_failure
    alert_severity: critical
  long:
    kind: command
    argv: [sleep, "30"]
    notify: on_failure
  quiet:
    kind: command
    argv: ["false"]
"#,
        flag = flag.display(),
        outbox = outbox.display(),
    )
}

struct Setup {
    world: World,
    flag: std::path::PathBuf,
    outbox: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(am_url: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("healthy");
    let outbox = dir.path().join("outbox");
    let mail = Arc::new(runbookd::adapters::mail::Outbox::new(&outbox));
    let world = World::builder(
        &jobs(am_url, &flag, &outbox),
        Adapters::real().with_mail(mail),
    )
    .build()
    .await;
    Setup {
        world,
        flag,
        outbox,
        _dir: dir,
    }
}

/// Alertmanager's webhook notifications so far: (status, alerts).
fn notifications(all: &[Received]) -> Vec<(String, Vec<Value>)> {
    all.iter()
        .map(|r| {
            let v = r.json();
            (
                v["status"].as_str().unwrap_or_default().to_string(),
                v["alerts"].as_array().cloned().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_failure_fires_once_grouped_is_reposted_and_resolves_when_the_job_succeeds() {
    let hook = Recorder::start().await;
    let am = Alertmanager::start(&hook.url("/hook")).await;
    let s = setup(&am.url).await;
    let w = &s.world;
    let mut events = w.runner.subscribe();
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(runbookd::daemon::serve(
        Arc::new(w.config.clone()),
        w.runner.clone(),
        ([127, 0, 0, 1], 0).into(),
        shutdown.clone(),
    ));

    let failed = w.run("nightly").await;
    assert_eq!(failed.status, RunStatus::Failed);
    let (status, alerts) = hook
        .wait_for(WAIT, "the firing notification", |r| {
            notifications(r).into_iter().find(|n| n.0 == "firing")
        })
        .await;
    assert_eq!(status, "firing");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(
        a["labels"],
        serde_json::json!({
            "alertname": "RunbookdJobFailed",
            "job": "nightly",
            "severity": "critical",
            "team": "backend",
        })
    );
    let ann = &a["annotations"];
    assert_eq!(
        ann["summary"],
        format!("runbookd job nightly failed: run {} failed", failed.id)
    );
    let description = ann["description"].as_str().unwrap();
    assert!(
        description.contains("exit") || description.contains("backup bucket unreachable"),
        "{description}"
    );
    assert_eq!(failed.error.as_deref(), Some(description));
    assert_eq!(ann["details"], format!("runbookd show {}", failed.id));
    assert_eq!(
        ann["runbook_url"],
        "https://git.flexoraa.com/ops/RUNBOOK.md#nightly-fails"
    );
    assert_eq!(
        a["generatorURL"],
        "https://git.flexoraa.com/ops/RUNBOOK.md#nightly-fails"
    );

    // While it fails the daemon posts it again every `resend`, each time
    // ending ahead; Alertmanager tells it once.
    tokio::time::timeout(WAIT, async {
        let mut reposts = 0;
        while reposts < 3 {
            if let RunEvent::AlertsPosted {
                firing, outcome, ..
            } = events.recv().await.unwrap()
                && firing == ["nightly"]
            {
                assert_eq!(outcome, CallOutcome::Sent);
                reposts += 1;
            }
        }
    })
    .await
    .expect("the alert is re-posted while the job fails");
    let held = am.alerts().await;
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(held[0]["status"]["state"], "active");

    // A repeat of the failure is not news: mailed once, alerted once.
    w.run("nightly").await;
    std::fs::write(&s.flag, "").unwrap();
    let ok = w.run("nightly").await;
    assert_eq!(ok.status, RunStatus::Succeeded);
    let (_, resolved) = hook
        .wait_for(WAIT, "the resolved notification", |r| {
            notifications(r).into_iter().find(|n| n.0 == "resolved")
        })
        .await;
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["labels"], a["labels"]);
    assert_eq!(resolved[0]["status"], "resolved");
    let all = notifications(&hook.requests());
    assert_eq!(
        all.iter().filter(|n| n.0 == "firing").count(),
        1,
        "one firing notification: {all:#?}"
    );

    // Mail stays as it was: the failure and the recovery, once each.
    let mails = std::fs::read_dir(&s.outbox).unwrap().count();
    assert_eq!(mails, 2, "failed and recovered mails in the outbox");

    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_dry_run_a_cancel_and_a_skip_post_nothing() {
    let hook = Recorder::start().await;
    let am = Alertmanager::start(&hook.url("/hook")).await;
    let s = setup(&am.url).await;
    let w = &s.world;
    let mut events = w.runner.subscribe();

    let dry = w.dry("nightly").await;
    assert!(dry.dry_run);
    // A cancelled run of a job that notifies.
    let stop = Stop::new();
    let canceller = {
        let stop = stop.clone();
        let mut ev = w.runner.subscribe();
        tokio::spawn(async move {
            loop {
                if let Ok(RunEvent::Started { job, .. }) = ev.recv().await
                    && job == "long"
                {
                    stop.cancel("test cancels");
                    return;
                }
            }
        })
    };
    let c = w.run_with("long", RunRequest::default(), stop).await;
    canceller.await.unwrap();
    assert_eq!(c.status, RunStatus::Cancelled);
    // A skipped fire of a paused job.
    let job = w.config.job("nightly").unwrap().clone();
    w.store
        .pause_job(&Pause {
            job: "nightly".into(),
            paused_by: "sre".into(),
            reason: Some("maintenance".into()),
            paused_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    let skipped = w
        .runner
        .claim_skipped(&job, &RunRequest::default(), "paused by sre")
        .await
        .unwrap();
    assert!(skipped.is_some());
    // A failure of a job that does not notify: no alert either.
    let q = w.run("quiet").await;
    assert_eq!(q.status, RunStatus::Failed);

    assert!(w.runner.settle(WAIT).await, "every call ended");
    while let Ok(ev) = events.try_recv() {
        assert!(
            !matches!(ev, RunEvent::AlertsPosted { .. }),
            "posted: {ev:?}"
        );
    }
    assert!(am.alerts().await.is_empty());

    // The same setup does post a real failure: the silence above is not
    // a broken setup's.
    let mut req = RunRequest {
        triggered_by: "sre".into(),
        ..Default::default()
    };
    let Admission::Start { id } = w.runner.admit(&job, &mut req).await.unwrap() else {
        panic!("a manual run starts");
    };
    let ended = w.runner.execute(&job, &req, id, &Stop::new()).await;
    assert_eq!(ended.status, RunStatus::Failed);
    assert!(w.runner.settle(WAIT).await);
    let held = am.alerts().await;
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(held[0]["labels"]["job"], "nightly");
}

#[tokio::test]
async fn an_alertmanager_that_hangs_or_is_down_never_fails_or_delays_the_job() {
    let silent = Silent::start().await;
    let s = setup(&silent.url("")).await;
    let w = &s.world;
    let mut events = w.runner.subscribe();
    let began = Instant::now();
    let r = w.run("nightly").await;
    let ran_for = began.elapsed();
    assert_eq!(r.status, RunStatus::Failed, "the job's own outcome");
    // The run ended while the post still hung.
    while let Ok(ev) = events.try_recv() {
        assert!(
            !matches!(ev, RunEvent::AlertsPosted { .. }),
            "a post ended before the run: {ev:?}"
        );
    }
    let timeout = w.config.alertmanager.as_ref().unwrap().timeout;
    assert!(ran_for < timeout, "the run took {ran_for:?}");
    let outcome = tokio::time::timeout(WAIT, async {
        loop {
            if let RunEvent::AlertsPosted { outcome, .. } = events.recv().await.unwrap() {
                return (outcome, began.elapsed());
            }
        }
    })
    .await
    .expect("the post gives up");
    assert_eq!(outcome.0, CallOutcome::TimedOut);
    assert!(outcome.1 >= timeout, "{outcome:?}");
    assert!(silent.accepted() >= 1);

    // Down (refused): failed at once, the job untouched.
    let port = runbookd::testkit::binary::free_port();
    let down = setup(&format!("http://127.0.0.1:{port}")).await;
    let mut events = down.world.runner.subscribe();
    let r = down.world.run("nightly").await;
    assert_eq!(r.status, RunStatus::Failed);
    let outcome = tokio::time::timeout(WAIT, async {
        loop {
            if let RunEvent::AlertsPosted { outcome, .. } = events.recv().await.unwrap() {
                return outcome;
            }
        }
    })
    .await
    .expect("the post fails");
    assert_eq!(outcome, CallOutcome::Failed);
}

/// Resolved wins: a firing post that read the state before the recovery
/// and reached Alertmanager after the resolved one (another replica's,
/// slow) is overruled by the daemon's next pass, long before it would
/// have expired.
#[tokio::test]
async fn a_stale_firing_post_after_the_recovery_is_overruled_by_the_next_pass() {
    use runbookd::adapters::alerts::{AlertSink, Alertmanager as Sink};
    let hook = Recorder::start().await;
    let am = Alertmanager::start(&hook.url("/hook")).await;
    let s = setup(&am.url).await;
    let w = &s.world;
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(runbookd::daemon::serve(
        Arc::new(w.config.clone()),
        w.runner.clone(),
        ([127, 0, 0, 1], 0).into(),
        shutdown.clone(),
    ));
    let failed = w.run("nightly").await;
    let failing = w
        .store
        .notify_states()
        .await
        .unwrap()
        .into_iter()
        .find(|st| st.job == "nightly")
        .unwrap();
    assert!(failing.failing);
    hook.wait_for(WAIT, "the firing notification", |r| {
        notifications(r).into_iter().find(|n| n.0 == "firing")
    })
    .await;
    std::fs::write(&s.flag, "").unwrap();
    w.run("nightly").await;
    hook.wait_for(WAIT, "the resolved notification", |r| {
        notifications(r).into_iter().find(|n| n.0 == "resolved")
    })
    .await;

    // The late post, as built from the state it read, ending an hour
    // ahead so only a resolved post could end it within the test.
    let am_config = w.config.alertmanager.as_ref().unwrap();
    let job = w.config.job("nightly").unwrap();
    let now = chrono::Utc::now();
    let mut stale = runbookd::alerting::alert(
        &w.config,
        am_config,
        job,
        &failing,
        w.store.get_run(failed.id).await.unwrap().as_ref(),
        &w.config.redactor,
        now,
    );
    stale.ends_at = now + chrono::Duration::hours(1);
    Sink {
        http: runbookd::adapters::http_client(),
    }
    .post_alerts(&am_config.url, &[stale], Duration::from_secs(5))
    .await
    .unwrap();
    assert_eq!(am.alerts().await.len(), 1, "the stale post reopened it");
    let deadline = Instant::now() + WAIT;
    while !am.alerts().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the stale firing alert still stands after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

/// Two replicas on one Postgres history: the one that never ran the job
/// posts its alert too (the state is the store's), both post the same
/// alert, and once the job recovers on the other replica, each one's last
/// word is the same resolved alert.
#[tokio::test]
async fn replicas_post_the_same_alert_from_the_store_and_end_resolved() {
    use runbookd::adapters::alerts::Alert;
    use runbookd::testkit::TestDatabase;
    use runbookd::testkit::fakes::FakeAlertSink;
    let db = TestDatabase::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("healthy");
    let yaml = jobs(
        "http://alertmanager.invalid:9093",
        &flag,
        &dir.path().join("outbox"),
    );
    let config =
        runbookd::jobs::load_str(std::path::Path::new("jobs.yaml"), &yaml, &|_| None).unwrap();
    let replica = |sink: Arc<FakeAlertSink>, n: u32| {
        let config = config.clone();
        let url = db.url.clone();
        async move {
            let store = runbookd::store::open(&url).await.unwrap();
            let mail = Arc::new(runbookd::adapters::mail::Outbox::new(&config.mail.outbox));
            let runner = runbookd::runner::Runner::builder(
                store,
                Arc::new(Adapters::real().with_alerts(sink).with_mail(mail)),
            )
            .config(&config)
            .identity(runbookd::identity::Identity {
                instance: format!("replica-{n}"),
                ..runbookd::identity::Identity::current()
            })
            .build();
            let shutdown = CancellationToken::new();
            let daemon = tokio::spawn(runbookd::daemon::serve(
                Arc::new(config.clone()),
                runner.clone(),
                ([127, 0, 0, 1], 0).into(),
                shutdown.clone(),
            ));
            (runner, shutdown, daemon)
        }
    };
    let (sink_a, sink_b) = (
        Arc::new(FakeAlertSink::default()),
        Arc::new(FakeAlertSink::default()),
    );
    let (a, stop_a, daemon_a) = replica(sink_a.clone(), 1).await;
    let (b, stop_b, daemon_b) = replica(sink_b.clone(), 2).await;
    let run_on = |r: &runbookd::runner::Runner| {
        let job = config.job("nightly").unwrap().clone();
        let r = r.clone();
        async move {
            let mut req = RunRequest {
                triggered_by: "sre".into(),
                ..Default::default()
            };
            let id = r.admit(&job, &mut req).await.unwrap().started().unwrap();
            r.execute(&job, &req, id, &Stop::new()).await
        }
    };
    let of_nightly =
        |post: &Vec<Alert>| post.iter().find(|a| a.labels["job"] == "nightly").cloned();
    let firing = |a: &Alert| a.ends_at > chrono::Utc::now();

    assert_eq!(run_on(&a).await.status, RunStatus::Failed);
    sink_b
        .wait_for(WAIT, "replica b posting the failure a recorded", |p| {
            p.iter().filter_map(of_nightly).any(|a| firing(&a))
        })
        .await;
    let fa = sink_a
        .posts()
        .iter()
        .filter_map(of_nightly)
        .find(firing)
        .unwrap();
    let fb = sink_b
        .posts()
        .iter()
        .filter_map(of_nightly)
        .find(firing)
        .unwrap();
    assert_eq!((&fa.labels, fa.starts_at), (&fb.labels, fb.starts_at));
    assert_eq!(fa.annotations, fb.annotations);

    std::fs::write(&flag, "").unwrap();
    assert_eq!(run_on(&b).await.status, RunStatus::Succeeded);
    // Each replica's passes post the resolved alert again; wait for two
    // passes of each after the recovery, then their last words.
    for (name, sink) in [("a", &sink_a), ("b", &sink_b)] {
        sink.wait_for(
            WAIT,
            &format!("replica {name} re-posting the resolved alert"),
            |p| {
                p.iter()
                    .filter_map(of_nightly)
                    .filter(|a| !firing(a))
                    .count()
                    >= 2
            },
        )
        .await;
    }
    let last = |s: &FakeAlertSink| s.posts().iter().filter_map(of_nightly).last().unwrap();
    let (la, lb) = (last(&sink_a), last(&sink_b));
    assert!(!firing(&la) && !firing(&lb), "{la:#?} {lb:#?}");
    assert_eq!(la, lb, "the same resolved alert from both replicas");
    assert_eq!(la.labels, fa.labels);

    stop_a.cancel();
    stop_b.cancel();
    daemon_a.await.unwrap().unwrap();
    daemon_b.await.unwrap().unwrap();
}
