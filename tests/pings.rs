//! Dead man's switch pings against an HTTP server the test runs: `/start`
//! as a run starts, the URL itself or `/fail` after its last attempt, one
//! v5 UUID `rid` on both; nothing for a dry run or a cancel; a silent
//! endpoint never holds up the job; the CLI sends its pings before it
//! exits.

use std::time::{Duration, Instant};

use runbookd::adapters::Adapters;
use runbookd::adapters::ping::PingSignal;
use runbookd::model::RunStatus;
use runbookd::pings::PING_TIMEOUT;
use runbookd::runner::{CallOutcome, RunEvent, RunRequest, Stop};
use runbookd::testkit::binary::Workdir;
use runbookd::testkit::receiver::{Received, Recorder, Silent};
use runbookd::testkit::world::World;

const BIN: &str = env!("CARGO_BIN_EXE_runbookd");

const WAIT: Duration = Duration::from_secs(30);

fn jobs(ping: &str) -> String {
    format!(
        r#"
jobs:
  ok:
    kind: command
    argv: ["true"]
    ping_url: "{ping}/ok"
  broken:
    kind: command
    argv: ["false"]
    retries: {{ max: 1, backoff: 10ms }}
    ping_url: "{ping}/broken"
  slow:
    kind: command
    argv: [sleep, "30"]
    timeout: 300ms
    ping_url: "{ping}/slow"
  long:
    kind: command
    argv: [sleep, "30"]
    ping_url: "{ping}/long"
  unpinged:
    kind: command
    argv: ["true"]
    ping_url: "${{HC_UNSET:-}}"
"#
    )
}

async fn world(ping: &str) -> World {
    World::builder(&jobs(ping), Adapters::real()).build().await
}

/// The pings of one check, in arrival order: (signal by path, rid).
fn pings_of(all: &[Received], check: &str) -> Vec<(String, String)> {
    let base = format!("/hc/{check}");
    all.iter()
        .filter(|r| r.path.starts_with(&base))
        .map(|r| {
            assert_eq!(r.method, "GET", "{r:?}");
            let signal = match &r.path[base.len()..] {
                "" => "success",
                "/start" => "start",
                "/fail" => "fail",
                other => panic!("unexpected ping path {other} of {r:?}"),
            };
            (signal.to_string(), r.param("rid").unwrap_or_default())
        })
        .collect()
}

/// A canonical lowercase UUID, version 5 (what healthchecks.io pairs by).
fn assert_v5(rid: &str) {
    let u: uuid::Uuid = rid.parse().unwrap_or_else(|e| panic!("{rid}: {e}"));
    assert_eq!(u.hyphenated().to_string(), rid, "canonical lowercase");
    assert_eq!(u.get_version_num(), 5, "{rid}");
}

#[tokio::test]
async fn a_run_pings_start_then_success_with_one_v5_rid() {
    let hc = Recorder::start().await;
    let w = world(&hc.url("/hc")).await;
    let a = w.run("ok").await;
    assert_eq!(a.status, RunStatus::Succeeded);
    let got = hc
        .wait_for(WAIT, "start and success of ok", |r| {
            let p = pings_of(r, "ok");
            (p.len() == 2).then_some(p)
        })
        .await;
    assert_eq!(got[0].0, "start");
    assert_eq!(got[1].0, "success");
    assert_eq!(got[0].1, got[1].1, "the same rid on start and end");
    assert_v5(&got[0].1);
    // Each run its own rid.
    w.run("ok").await;
    let again = hc
        .wait_for(WAIT, "the second run's pings", |r| {
            let p = pings_of(r, "ok");
            (p.len() == 4).then_some(p)
        })
        .await;
    assert_eq!(again[2].1, again[3].1);
    assert_ne!(again[2].1, got[0].1);
}

#[tokio::test]
async fn a_failure_pings_fail_after_its_last_retry_and_a_timeout_fails_too() {
    let hc = Recorder::start().await;
    let w = world(&hc.url("/hc")).await;
    let r = w.run("broken").await;
    assert_eq!((r.status, r.attempt), (RunStatus::Failed, 2));
    let got = hc
        .wait_for(WAIT, "start and fail of broken", |r| {
            let p = pings_of(r, "broken");
            (p.len() == 2).then_some(p)
        })
        .await;
    assert_eq!(
        got.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["start", "fail"],
        "one start for the run, one end after its last attempt"
    );
    assert_eq!(got[0].1, got[1].1);
    let t = w.run("slow").await;
    assert_eq!(t.status, RunStatus::TimedOut);
    let got = hc
        .wait_for(WAIT, "start and fail of slow", |r| {
            let p = pings_of(r, "slow");
            (p.len() == 2).then_some(p)
        })
        .await;
    assert_eq!((got[0].0.as_str(), got[1].0.as_str()), ("start", "fail"));
    // Nothing more once every call has ended: no second end, no ping of
    // a retry.
    assert!(w.runner.settle(WAIT).await);
    assert_eq!(pings_of(&hc.requests(), "broken").len(), 2);
}

#[tokio::test]
async fn a_dry_run_pings_nothing_a_cancel_sends_no_end_and_an_empty_url_is_off() {
    let hc = Recorder::start().await;
    let w = world(&hc.url("/hc")).await;
    let dry = w.dry("ok").await;
    assert!(dry.dry_run);
    w.run("unpinged").await;
    // A cancelled run: its start is told, no end (the switch's grace time
    // says whether a later run made up for it).
    let stop = Stop::new();
    let mut events = w.runner.subscribe();
    let canceller = {
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(RunEvent::Started { job, .. }) = events.recv().await
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
    assert!(w.runner.settle(WAIT).await, "every ping ended");
    let all = hc.requests();
    assert!(pings_of(&all, "ok").is_empty(), "a dry run pinged: {all:?}");
    assert_eq!(
        pings_of(&all, "long")
            .iter()
            .map(|p| p.0.as_str())
            .collect::<Vec<_>>(),
        ["start"]
    );
    assert_eq!(
        all.len(),
        1,
        "only the cancelled run's start, nothing for the empty URL: {all:?}"
    );
}

#[tokio::test]
async fn a_silent_endpoint_never_holds_up_the_run_and_is_counted_timed_out() {
    let silent = Silent::start().await;
    let w = world(&silent.url("/hc")).await;
    let mut events = w.runner.subscribe();
    let began = Instant::now();
    let r = w.run("ok").await;
    let ran_for = began.elapsed();
    assert_eq!(r.status, RunStatus::Succeeded);
    // The run ended and was recorded while its start ping still hung: no
    // ping had ended when the run did.
    let mut pinged = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let RunEvent::Pinged { .. } = ev {
            pinged.push(ev);
        }
    }
    assert!(pinged.is_empty(), "a ping ended before the run: {pinged:?}");
    assert!(
        ran_for < PING_TIMEOUT,
        "the run took {ran_for:?}, as long as a ping's timeout"
    );
    let took = (r.finished_at.unwrap() - r.started_at).to_std().unwrap();
    assert!(took < PING_TIMEOUT, "recorded {took:?}");
    // Then each ping gives up at its timeout, and says so.
    let outcomes = tokio::time::timeout(WAIT, async {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            if let RunEvent::Pinged {
                signal, outcome, ..
            } = events.recv().await.unwrap()
            {
                seen.push((signal, outcome, began.elapsed()));
            }
        }
        seen
    })
    .await
    .expect("both pings end");
    assert_eq!(
        outcomes.iter().map(|o| (o.0, o.1)).collect::<Vec<_>>(),
        [
            (PingSignal::Start, CallOutcome::TimedOut),
            (PingSignal::Success, CallOutcome::TimedOut)
        ]
    );
    assert!(outcomes[0].2 >= PING_TIMEOUT, "{outcomes:?}");
    assert!(silent.accepted() >= 1);
}

#[test]
fn the_cli_sends_its_pings_before_it_exits() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Slow to answer: the end waits for the start's answer, so a process
    // that did not wait for its pings would exit before sending the end.
    let hc = rt.block_on(Recorder::answering_after(Duration::from_secs(1)));
    let dir = Workdir::new(BIN, &jobs(&hc.url("/hc")));
    let out = dir.run(&["run", "ok"]);
    assert!(out.status.success(), "{out:?}");
    // Received by the time the process ended: nothing to wait for.
    let got = pings_of(&hc.requests(), "ok");
    assert_eq!(
        got.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["start", "success"],
        "{out:?}"
    );
    assert_v5(&got[0].1);
    // The ping URL is a secret: never in the output or the history.
    let shown = dir.run(&["show", "ok"]);
    let text = format!("{out:?}{shown:?}");
    assert!(!text.contains(&hc.url("/hc")), "{text}");
}
