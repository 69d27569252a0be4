//! Runs through the daemons, with the built binary: `trigger` (taken by
//! one replica, followed with `--wait`, refused with a reason, cancelled on
//! whichever replica runs it), and `pause`/`resume` obeyed by every
//! replica. SQLite here; two replicas on Postgres with `--features
//! integration`.

use std::time::Duration;

#[cfg(feature = "integration")]
use runbookd::testkit::TestDatabase;
use runbookd::testkit::binary::{Workdir, eventually, get, metric, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_runbookd");

const JOBS: &str = r#"
daemon: { heartbeat: 200ms, stale_after: 2s, shutdown_grace: 1s }
jobs:
  hello:
    kind: command
    argv: [sh, -c, "echo hello from the job; echo second line"]
  broken:
    kind: command
    argv: [sh, -c, "echo about to fail; exit 3"]
    retries: {max: 1, backoff: 100ms}
  slow:
    kind: command
    argv: [sleep, "30"]
  quick:
    kind: command
    argv: ["true"]
    concurrency: allow
  tick:
    kind: command
    argv: ["true"]
    schedule: "* * * * * *"
    timezone: UTC
"#;

fn runs(w: &Workdir, job: &str) -> Vec<serde_json::Value> {
    w.json(&["history", "--job", job, "--json"])
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_triggered_run_is_followed_to_its_end_and_says_who_asked_and_why() {
    let w = Workdir::new(BIN, JOBS);
    let _d = w.serve();
    let out = w.run(&[
        "trigger",
        "hello",
        "--wait",
        "--as",
        "alice",
        "--reason",
        "checking after deploy",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("request #1: `hello` queued"), "{err}");
    assert!(
        err.contains("hello from the job"),
        "the log is followed: {err}"
    );
    assert!(
        stdout(&out).contains("of `hello` succeeded"),
        "{}",
        stdout(&out)
    );
    let r = runs(&w, "hello");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["trigger"], "manual");
    assert_eq!(r[0]["triggered_by"], "alice");
    let shown = w.json(&["show", &r[0]["id"].to_string(), "--json"]);
    assert!(
        shown["log"]
            .as_str()
            .unwrap()
            .contains("requested through the daemon (request #1) by alice: checking after deploy"),
        "{}",
        shown["log"]
    );

    // A failure, through its retry: exit 1, both attempts followed.
    let out = w.run(&["trigger", "broken", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("retrying as run"), "{err}");
    assert_eq!(err.matches("stdout about to fail").count(), 2, "{err}");
    assert!(stdout(&out).contains("failed"), "{}", stdout(&out));

    // Without --wait: the request id, at once.
    let out = w.run(&["trigger", "hello"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), "3");
    eventually(Duration::from_secs(20), "the third request's run", || {
        (runs(&w, "hello").len() == 2).then_some(())
    });
}

#[test]
fn bad_requests_are_refused_with_the_reason() {
    let w = Workdir::new(BIN, JOBS);
    // The CLI knows a job the daemon does not.
    std::fs::write(
        w.path().join("cli.yaml"),
        format!("{JOBS}  only-here:\n    kind: command\n    argv: [\"true\"]\n"),
    )
    .unwrap();
    let _d = w.serve();
    let out = w.run(&["-c", "cli.yaml", "trigger", "only-here", "--wait"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("refused by")
            && stderr(&out).contains("no job named `only-here` in this daemon's jobs file"),
        "{}",
        stderr(&out)
    );
    // Caught before anything is queued.
    let out = w.run(&["trigger", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no job named `nope`"),
        "{}",
        stderr(&out)
    );
    let out = w.run(&["trigger", "hello", "--param", "only=x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("takes no `only` parameter"),
        "{}",
        stderr(&out)
    );
    let out = w.run(&["trigger", "hello", "--param", "junk"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("KEY=VALUE"), "{}", stderr(&out));
}

#[test]
fn a_triggered_run_is_cancelled_on_the_replica_that_runs_it() {
    let w = Workdir::new(BIN, JOBS);
    let _d = w.serve();
    let mut follower = w
        .cmd(&["trigger", "slow", "--wait"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = eventually(Duration::from_secs(20), "the slow run to start", || {
        let r = runs(&w, "slow");
        (r.first()?["status"] == "running").then(|| r[0]["id"].to_string())
    });
    let out = w.run(&["cancel", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = follower.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    assert_eq!(runs(&w, "slow")[0]["status"], "cancelled");
}

#[test]
fn a_paused_job_skips_its_fires_with_the_reason_until_resumed() {
    let w = Workdir::new(BIN, JOBS);
    let out = w.run(&["pause", "tick", "--reason", "maintenance window"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = w.run(&["pause", "tick"]);
    assert!(
        stdout(&out).contains("already paused by"),
        "{}",
        stdout(&out)
    );
    let out = w.run(&["pause", "hello"]);
    assert_eq!(out.status.code(), Some(2), "no schedule, nothing to pause");
    let out = w.run(&["jobs"]);
    assert!(stdout(&out).contains("(paused by "), "{}", stdout(&out));
    let _d = w.serve();
    let skipped = eventually(Duration::from_secs(20), "two skipped fires", || {
        let r = runs(&w, "tick");
        (r.len() >= 2).then_some(r)
    });
    for r in &skipped {
        assert_eq!(r["status"], "skipped", "{r}");
        let e = r["error"].as_str().unwrap();
        assert!(
            e.contains("tick paused by") && e.contains("(maintenance window)"),
            "{e}"
        );
    }
    let out = w.run(&["resume", "tick"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(Duration::from_secs(20), "a fire that runs", || {
        runs(&w, "tick")
            .iter()
            .any(|r| r["status"] == "succeeded")
            .then_some(())
    });
    let out = w.run(&["resume", "tick"]);
    assert_eq!(out.status.code(), Some(2));
}

#[cfg(feature = "integration")]
#[test]
fn each_request_runs_once_across_two_replicas() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDatabase::postgres());
    let w = Workdir::new(BIN, JOBS).with_db(&db.url);
    let a = w.serve();
    let b = w.serve();
    for _ in 0..12 {
        let out = w.run(&["trigger", "quick"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let r = eventually(Duration::from_secs(40), "12 requested runs to end", || {
        let r = runs(&w, "quick");
        (r.len() >= 12 && r.iter().all(|r| r["status"] == "succeeded")).then_some(r)
    });
    // Each replica looks for requests at every tick: two more ticks of
    // each, and a request taken twice would have run by now.
    for d in [&a, &b] {
        let ticks = || {
            let m = get(d.addr(), "/metrics").map(|r| r.1).unwrap_or_default();
            metric(&m, "runbookd_ticks_total")
        };
        let from = ticks();
        eventually(Duration::from_secs(30), "two more ticks", || {
            (ticks() >= from + 2.0).then_some(())
        });
    }
    assert_eq!(runs(&w, "quick").len(), 12, "no request ran twice");
    let owners: std::collections::BTreeSet<String> = r
        .iter()
        .map(|r| r["owner"].as_str().unwrap().to_string())
        .collect();
    assert!(!owners.is_empty());
}

fn requests(w: &Workdir) -> Vec<serde_json::Value> {
    w.json(&["requests", "--json"]).as_array().unwrap().clone()
}

fn request(w: &Workdir, id: i64) -> serde_json::Value {
    requests(w)
        .into_iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("request #{id} is listed"))
}

/// A request nobody took within its lifetime is recorded expired and
/// never runs, even when a daemon starts later: the operator who triggered
/// a rollback and then did it by hand gets no second one.
#[test]
fn a_request_past_its_lifetime_is_expired_and_never_runs() {
    let w = Workdir::new(BIN, JOBS);
    let out = w.run(&["trigger", "hello", "--expires-in", "1s", "--as", "alice"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id: i64 = stdout(&out).trim().parse().unwrap();
    let pending = request(&w, id);
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(pending["requested_by"], "alice");
    assert!(pending["expires_at"].is_string(), "{pending}");
    // `requests` records what is past its lifetime.
    let expired = eventually(Duration::from_secs(20), "the request to expire", || {
        let r = request(&w, id);
        (r["status"] == "expired").then_some(r)
    });
    assert!(
        expired["why"]
            .as_str()
            .unwrap()
            .contains("no daemon took it"),
        "{expired}"
    );
    // A daemon that starts now runs a fresh request, never the expired one.
    let _d = w.serve();
    let out = w.run(&["trigger", "quick", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(runs(&w, "hello").is_empty(), "{:?}", runs(&w, "hello"));
    assert_eq!(request(&w, id)["status"], "expired");
}

/// `--wait` that gives up on a daemon withdraws the request, atomically:
/// it says so, the request is listed withdrawn with who and why, and a
/// daemon started afterwards never runs it.
#[test]
fn wait_that_gives_up_withdraws_the_request_so_it_never_runs() {
    let w = Workdir::new(BIN, JOBS);
    let out = w.run(&[
        "trigger",
        "hello",
        "--wait",
        "--expires-in",
        "2s",
        "--as",
        "bob",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no daemon took request #1") && err.contains("withdrawn: it will never run"),
        "{err}"
    );
    let r = request(&w, 1);
    assert_eq!(r["status"], "withdrawn", "{r}");
    assert_eq!(r["closed_by"], "bob", "{r}");
    let _d = w.serve();
    let out = w.run(&["trigger", "quick", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(runs(&w, "hello").is_empty());
}

/// A pending request can be withdrawn by hand; one already started cannot,
/// and says which run it became; an unknown one is no such request.
#[test]
fn a_pending_request_is_withdrawn_by_hand_and_listed_with_who_and_why() {
    let w = Workdir::new(BIN, JOBS);
    let out = w.run(&[
        "trigger",
        "hello",
        "--as",
        "carol",
        "--reason",
        "deploy check",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Shown where an operator looks: `jobs` and `history`.
    let jobs = stdout(&w.run(&["jobs"]));
    assert!(jobs.contains("request #1 pending"), "{jobs}");
    let history = stderr(&w.run(&["history"]));
    assert!(history.contains("request #1"), "{history}");
    let out = w.run(&["withdraw", "1", "--reason", "did it by hand"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = request(&w, 1);
    assert_eq!(r["status"], "withdrawn");
    assert_eq!(r["requested_by"], "carol");
    assert_eq!(r["reason"], "deploy check");
    assert!(r["why"].as_str().unwrap().contains("did it by hand"), "{r}");
    // Not pending any more.
    let out = w.run(&["withdraw", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already withdrawn"),
        "{}",
        stderr(&out)
    );
    let out = w.run(&["withdraw", "99"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no request #99"), "{}", stderr(&out));
    // Started requests are listed with their run.
    let _d = w.serve();
    let out = w.run(&["trigger", "quick", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = request(&w, 2);
    assert_eq!(r["status"], "started", "{r}");
    assert!(r["run_id"].is_i64(), "{r}");
    let out = w.run(&["withdraw", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already started as run"),
        "{}",
        stderr(&out)
    );
    let text = stdout(&w.run(&["requests"]));
    assert!(
        text.contains("withdrawn") && text.contains("started"),
        "{text}"
    );
    assert!(runs(&w, "hello").is_empty());
}
