//! The built binary, as an operator uses it: validate, next, run, history,
//! show, serve with signals, a crash and a restart.

use std::time::{Duration, Instant};

use runbookd::testkit::binary::{Workdir, eventually, free_port, stderr, stdout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_runbookd");

fn workdir(jobs_yaml: &str) -> Workdir {
    Workdir::new(BIN, jobs_yaml)
}

const DAEMON: &str = "daemon:\n  heartbeat: 200ms\n  stale_after: 2s\n  shutdown_grace: 1s\n";

#[test]
fn validate_reports_every_error_with_its_position_and_exits_2() {
    let w = workdir(
        "jobs:
  a:
    kind: command
    argv: [true]
    schedule: \"0 7 * * * * *\"
  b:
    kind: command
    argv: [true]
    timezone: Europe/Londn
    retries: { max: 2, backof: 5s }
  c:
    kind: command
    argv: [\"${RUNBOOKD_TEST_UNSET_VAR}\"]
",
    );
    let out = w.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("jobs.yaml:5:16: job `a`: invalid schedule"),
        "{text}"
    );
    assert!(lines[1].starts_with("jobs.yaml:9:15: job `b`: unknown timezone `Europe/Londn` (did you mean `Europe/London`?)"), "{text}");
    assert!(
        lines[2].starts_with(
            "jobs.yaml:10:24: job `b`: unknown field `backof` (did you mean `backoff`?)"
        ),
        "{text}"
    );
    assert!(
        lines[3].starts_with(
            "jobs.yaml:13:13: job `c`: environment variable `RUNBOOKD_TEST_UNSET_VAR` is not set"
        ),
        "{text}"
    );

    let json = w.run(&["validate", "--json"]);
    assert_eq!(json.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"].as_array().unwrap().len(), 4);
    assert_eq!(v["errors"][0]["line"], 5);
}

/// `validate` refuses what would act on something else: an identifier left
/// empty by a variable that is set but empty, a check name with a newline,
/// a history URL whose port is not a number, a chained scale to 0.
#[test]
fn validate_refuses_empty_identifiers_broken_names_and_urls() {
    let w = workdir(
        "history:
  database_url: \"postgres://runbookd@db:notaport/runbookd\"
jobs:
  verify:
    kind: verify_backups
    instance: \"${RUNBOOKD_TEST_EMPTY_VAR}\"
  morning:
    kind: checklist
    on_failure: [maintenance]
    checks:
      - name: \"api\\nhealth\"
        kind: http
        url: http://api/health
  maintenance:
    kind: rollout
    action: scale
    replicas: 0
    deployment: api
",
    );
    let out = w
        .cmd(&["validate"])
        .env("RUNBOOKD_TEST_EMPTY_VAR", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("jobs.yaml:2:17: history.database_url postgres://[REDACTED] is not a Postgres URL: invalid port number"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("jobs.yaml:6:15: job `verify`: `instance` must not be empty: `${RUNBOOKD_TEST_EMPTY_VAR}` gives an empty value"),
        "{text}"
    );
    assert!(
        lines[2].starts_with(
            "jobs.yaml:9:18: job `morning`: on_failure: `maintenance` cannot run chained"
        ),
        "{text}"
    );
    assert!(
        lines[3]
            .starts_with("jobs.yaml:11:15: job `morning`: `name` \"api\\nhealth\" holds a newline"),
        "{text}"
    );
}

#[test]
fn the_shipped_jobs_file_validates() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/jobs.yaml")).unwrap();
    let w = workdir(&shipped);
    let out = w.run(&["validate"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("ok"), "{}", stdout(&out));
}

#[test]
fn missing_config_and_unknown_job_are_usage_errors() {
    let w = workdir("jobs:\n  real:\n    kind: command\n    argv: [\"true\"]\n");
    let out = w.run(&["-c", "nope.yaml", "jobs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read config file nope.yaml"),
        "{}",
        stderr(&out)
    );
    let out = w.run(&["run", "ghost"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no job named `ghost`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn jobs_lists_schedule_next_fire_and_last_status() {
    let w = workdir(
        "jobs:\n  nightly:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"30 2 * * *\"\n    timezone: Europe/London\n  adhoc:\n    kind: command\n    argv: [\"false\"]\n",
    );
    assert!(w.run(&["migrate"]).status.success());
    assert_eq!(w.run(&["run", "adhoc"]).status.code(), Some(1));
    let v = w.json(&["jobs", "--json"]);
    let jobs = v.as_array().unwrap();
    assert_eq!(jobs[0]["name"], "nightly");
    assert_eq!(jobs[0]["schedule"], "30 2 * * *");
    assert_eq!(jobs[0]["timezone"], "Europe/London");
    assert!(
        jobs[0]["next_fire"].as_str().unwrap().contains("02:30:00"),
        "{}",
        jobs[0]
    );
    assert_eq!(jobs[0]["last_status"], Value::Null);
    assert_eq!(jobs[1]["schedule"], Value::Null);
    assert_eq!(jobs[1]["last_status"], "failed");
    let text = stdout(&w.run(&["jobs"]));
    assert!(text.lines().next().unwrap().starts_with("JOB"), "{text}");
    assert!(
        text.contains("(manual)") && text.contains("failed (#1)"),
        "{text}"
    );
}

#[test]
fn next_prints_local_and_utc_and_flags_dst() {
    let w = workdir(
        "jobs:\n  nightly:\n    kind: command\n    argv: [true]\n    schedule: \"30 2 * * *\"\n    timezone: America/New_York\n",
    );
    let out = w.run(&[
        "next",
        "nightly",
        "-n",
        "3",
        "--after",
        "2026-03-07T00:00:00Z",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("2026-03-07 02:30:00 EST  (-05:00)  2026-03-07T07:30:00Z"),
        "{text}"
    );
    assert!(text.contains("2026-03-08 03:00:00 EDT  (-04:00)  2026-03-08T07:00:00Z  [DST: 2026-03-08 02:30:00 does not exist"), "{text}");
    let v = w.json(&[
        "next",
        "nightly",
        "-n",
        "2",
        "--after",
        "2026-10-31T12:00:00Z",
        "--json",
    ]);
    assert_eq!(v[0]["utc"], "2026-11-01T07:30:00Z");
    assert_eq!(v[0]["local"], "2026-11-01T02:30:00-05:00");
    assert!(
        v[0]["note"]
            .as_str()
            .unwrap()
            .contains("UTC offset is now -05:00"),
        "{v}"
    );
    let v = w.json(&[
        "next",
        "nightly",
        "-n",
        "1",
        "--after",
        "2026-03-07T12:00:00Z",
        "--json",
    ]);
    assert_eq!(v[0]["shift"], "gap");
    assert_eq!(v[0]["local"], "2026-03-08T03:00:00-04:00");
}

#[test]
fn run_records_history_and_exit_codes_follow_the_job() {
    let w = workdir(
        "jobs:
  hello:
    kind: command
    argv: [echo, hello]
  broken:
    kind: command
    argv: [sh, -c, \"echo about to fail >&2; exit 7\"]
",
    );
    let ok = w.run(&["run", "hello"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("succeeded"), "{}", stdout(&ok));
    assert!(
        stderr(&ok).contains("stdout hello"),
        "progress goes to stderr: {}",
        stderr(&ok)
    );
    let bad = w.run(&["run", "broken"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stdout(&bad).contains("exited with status 7"),
        "{}",
        stdout(&bad)
    );

    let h = w.json(&["history", "--json", "--since", "24h"]);
    let runs = h.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    for key in [
        "id",
        "job",
        "trigger",
        "triggered_by",
        "scheduled_for",
        "started_at",
        "finished_at",
        "status",
        "attempt",
        "error",
    ] {
        assert!(
            runs[0].get(key).is_some(),
            "history --json lacks `{key}`: {}",
            runs[0]
        );
    }
    assert_eq!(runs[0]["job"], "broken");
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["trigger"], "manual");
    assert_eq!(runs[0]["triggered_by"], user.as_str());
    assert_eq!(runs[0]["scheduled_for"], Value::Null);
    assert_eq!(runs[1]["status"], "succeeded");

    let one = w.json(&["history", "--json", "--job", "hello"]);
    assert_eq!(one.as_array().unwrap().len(), 1);

    let id = runs[0]["id"].as_i64().unwrap().to_string();
    let show = w.json(&["show", &id, "--json"]);
    let log = show["log"].as_str().unwrap();
    assert!(log.contains("stderr about to fail"), "{log}");
    let text = stdout(&w.run(&["show", &id]));
    assert!(
        text.contains("error         `sh` exited with status 7"),
        "{text}"
    );
    let missing = w.run(&["show", "999999"]);
    assert_eq!(
        missing.status.code(),
        Some(1),
        "no such run: a no, not misuse"
    );
}

#[test]
fn dry_run_executes_nothing_and_is_recorded() {
    let w = workdir("jobs:\n  touchy:\n    kind: command\n    argv: [touch, made-by-run]\n");
    let out = w.run(&["run", "touchy", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !w.path().join("made-by-run").exists(),
        "dry run must not execute"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    assert!(
        v["log"]
            .as_str()
            .unwrap()
            .contains("dry run: would execute [\"touch\", \"made-by-run\"]")
    );
}

#[test]
fn secrets_never_appear_in_output_logs_or_history() {
    let secret = "pw-Zq8r7t6y5u4i";
    let w = workdir(
        "jobs:
  leaky:
    kind: command
    argv: [sh, -c, \"echo the password is $DB_PASSWORD; echo $DB_PASSWORD >&2; exit 1\"]
    env:
      DB_PASSWORD: !secret \"${RUNBOOKD_TEST_SECRET}\"
",
    );
    let out = w
        .cmd(&["run", "leaky"])
        .env("RUNBOOKD_TEST_SECRET", secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let h = w
        .cmd(&["history", "--json"])
        .env("RUNBOOKD_TEST_SECRET", secret)
        .output()
        .unwrap();
    let id = serde_json::from_slice::<Value>(&h.stdout).unwrap()[0]["id"].to_string();
    let show = w
        .cmd(&["show", &id, "--json"])
        .env("RUNBOOKD_TEST_SECRET", secret)
        .output()
        .unwrap();
    let everything = format!(
        "{}{}{}{}",
        stdout(&out),
        stderr(&out),
        stdout(&show),
        stderr(&show)
    );
    assert!(
        everything.contains("the password is [REDACTED]"),
        "{everything}"
    );
    assert!(!everything.contains(secret), "{everything}");
    // And not in the database file itself.
    let db = std::fs::read(w.path().join("history.db")).unwrap();
    let wal = std::fs::read(w.path().join("history.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret found in the SQLite files"
        );
    }
}

/// A job's output with credentials of every common shape (each value
/// unique, to be looked for) and terminal escapes.
const LEAK_SCRIPT: &str = r#"printf '%s\n' '{"password":"pw-json-1111","api_key":"ak-json-2222","token": "tk-json-3333"}'
echo 'AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
echo 'DB_PASSWORD=pw-env-4444' >&2
echo 'GET https://u:pw-url-6666@api.example.com/x Authorization: Bearer bt-5555-abcdefgh'
echo 'POST /login password=pw-form-7777&user=x Authorization: Basic dTpwdy1iYXNpYy05OTk5'
echo '-----BEGIN PRIVATE KEY-----'
echo 'MIIEpk-8888-body'
echo '-----END PRIVATE KEY-----'
printf '\033]0;pwned\007\033[2Jcleared the screen\n'
echo 'api_token: tk-colon-0000' >&2
exit 1
"#;

const LEAKED: &[&str] = &[
    "pw-json-1111",
    "ak-json-2222",
    "tk-json-3333",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "pw-env-4444",
    "bt-5555-abcdefgh",
    "pw-url-6666",
    "pw-form-7777",
    "MIIEpk-8888-body",
    "dTpwdy1iYXNpYy05OTk5",
    "tk-colon-0000",
];

#[test]
fn outside_credentials_and_escapes_never_reach_the_terminal_the_history_or_mail() {
    let w = workdir("jobs: {}\n");
    let script = w.path().join("leak.sh");
    std::fs::write(&script, LEAK_SCRIPT).unwrap();
    std::fs::write(
        w.path().join("jobs.yaml"),
        format!(
            "mail:\n  to: oncall@example.com\njobs:\n  leaky:\n    kind: command\n    argv: [sh, \"{}\"]\n    notify: on_failure\n",
            script.display()
        ),
    )
    .unwrap();
    let run = w.run(&["run", "leaky"]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let show = w.run(&["show", "1"]);
    assert!(show.status.success(), "{}", stderr(&show));
    let json = w.json(&["show", "1", "--json"]);
    let mut mail = String::new();
    for m in std::fs::read_dir(w.path().join("outbox")).unwrap() {
        let raw = std::fs::read(m.unwrap().path()).unwrap();
        let parsed = mailparse::parse_mail(&raw).unwrap();
        for p in std::iter::once(&parsed).chain(parsed.subparts.iter()) {
            mail.push_str(&p.get_body().unwrap());
        }
    }
    assert!(!mail.is_empty(), "the failure was mailed");
    let shown = stdout(&show);
    let log = json["log"].as_str().unwrap();
    // What the job said is kept, masked; the escape shown, not obeyed.
    for want in [
        r#"stdout {"password":"[REDACTED]","api_key":"[REDACTED]","token": "[REDACTED]"}"#,
        "stdout AWS_SECRET_ACCESS_KEY=[REDACTED]",
        "stderr DB_PASSWORD=[REDACTED]",
        "stdout GET https://u:[REDACTED]@api.example.com/x Authorization: Bearer [REDACTED]",
        "stdout POST /login password=[REDACTED]&user=x Authorization: Basic [REDACTED]",
        "stdout [REDACTED]\n",
        "stdout \\x1b]0;pwned\\x07\\x1b[2Jcleared the screen",
        "stderr api_token: [REDACTED]",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
        assert!(shown.contains(want), "missing {want:?} in:\n{shown}");
    }
    let everything = format!(
        "{}{}{}{}{}{json}{mail}",
        stdout(&run),
        stderr(&run),
        shown,
        stderr(&show),
        log
    );
    for leaked in LEAKED {
        assert!(!everything.contains(leaked), "{leaked} in:\n{everything}");
    }
    assert!(!everything.contains('\x1b'), "a raw ESC:\n{everything}");
    assert!(!everything.contains('\x07'), "a raw BEL:\n{everything}");
    let db = std::fs::read(w.path().join("history.db")).unwrap();
    let wal = std::fs::read(w.path().join("history.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        for leaked in LEAKED {
            assert!(
                !bytes.windows(leaked.len()).any(|w| w == leaked.as_bytes()),
                "{leaked} found in the SQLite files"
            );
        }
    }
}

#[test]
fn unreachable_store_is_a_clear_error() {
    let w = workdir("jobs:\n  a:\n    kind: command\n    argv: [true]\n")
        .with_db("postgres://runbookd:topsecret@127.0.0.1:1/runbookd");
    let out = w.run(&["history"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "cannot connect to history store postgres://runbookd:[REDACTED]@127.0.0.1:1/runbookd"
        ),
        "{err}"
    );
    assert!(!err.contains("topsecret"), "{err}");
}

#[test]
fn sigterm_mid_run_cancels_after_the_grace_and_leaves_nothing_running() {
    let w = workdir(&format!(
        "{DAEMON}jobs:\n  slow:\n    kind: command\n    argv: [sleep, \"60\"]\n    schedule: \"* * * * * *\"\n    timezone: UTC\n"
    ));
    let mut d = w.serve();
    eventually(Duration::from_secs(20), "a running run", || {
        let v = w.json(&["history", "--json"]);
        v.as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "running")
            .then_some(())
    });
    let sent = Instant::now();
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let status = d.wait(Duration::from_secs(20));
    assert!(status.success(), "exit {status:?}; log:\n{}", d.log());
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "waited the shutdown grace"
    );
    let runs = w.json(&["history", "--json", "--limit", "1000"]);
    let runs = runs.as_array().unwrap();
    assert!(runs.iter().all(|r| r["status"] != "running"), "{runs:#?}");
    let cancelled: Vec<_> = runs.iter().filter(|r| r["status"] == "cancelled").collect();
    assert_eq!(cancelled.len(), 1, "{runs:#?}");
    assert!(
        cancelled[0]["error"]
            .as_str()
            .unwrap()
            .contains("shutdown grace of 1s ran out")
    );
}

#[test]
fn sigterm_lets_a_short_run_finish_inside_the_grace() {
    let w = workdir(
        "daemon:\n  heartbeat: 200ms\n  stale_after: 2s\n  shutdown_grace: 10s\njobs:\n  short:\n    kind: command\n    argv: [sleep, \"2\"]\n    schedule: \"* * * * * *\"\n    timezone: UTC\n",
    );
    let mut d = w.serve();
    eventually(Duration::from_secs(20), "a running run", || {
        let v = w.json(&["history", "--json"]);
        v.as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "running")
            .then_some(())
    });
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(20)).success(), "{}", d.log());
    let runs = w.json(&["history", "--json", "--limit", "1000"]);
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"succeeded"), "{statuses:?}");
    assert!(
        !statuses.contains(&"running") && !statuses.contains(&"cancelled"),
        "{statuses:?}"
    );
}

#[test]
fn kill_9_mid_run_then_restart_marks_the_run_abandoned() {
    let w = workdir(&format!(
        "{DAEMON}jobs:\n  slow:\n    kind: command\n    argv: [sleep, \"60\"]\n    schedule: \"* * * * * *\"\n    timezone: UTC\n  other:\n    kind: command\n    argv: [\"true\"]\n"
    ));
    let mut d = w.serve();
    let id = eventually(Duration::from_secs(20), "a running run", || {
        let v = w.json(&["history", "--json"]);
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["status"] == "running")
            .map(|r| r["id"].as_i64().unwrap())
    });
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait(Duration::from_secs(10));
    let before = w.json(&["show", &id.to_string(), "--json"]);
    assert_eq!(before["status"], "running", "nothing has noticed yet");
    // The next start (here a manual run) reaps at once.
    let out = w.run(&["run", "other"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = w.json(&["show", &id.to_string(), "--json"]);
    assert_eq!(after["status"], "abandoned");
    assert!(
        after["error"].as_str().unwrap().contains("is gone"),
        "{after}"
    );
    assert!(after["finished_at"].is_string());
}

#[test]
fn serve_answers_healthz_and_metrics() {
    let w = workdir(&format!(
        "{DAEMON}jobs:\n  tick:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"* * * * * *\"\n    timezone: UTC\n    concurrency: allow\n"
    ));
    let mut d = w.serve();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = d.addr();
    let (code, body) = eventually(Duration::from_secs(20), "/healthz", || {
        rt.block_on(runbookd::testkit::http_get(addr, "/healthz"))
            .ok()
    });
    assert_eq!(code, 200, "{body}");
    let metrics = eventually(
        Duration::from_secs(20),
        "a finished run in /metrics",
        || {
            let (_, body) = rt
                .block_on(runbookd::testkit::http_get(addr, "/metrics"))
                .ok()?;
            body.contains("runbookd_runs_finished_total{job=\"tick\",status=\"succeeded\"}")
                .then_some(body)
        },
    );
    assert!(
        metrics.contains("runbookd_last_tick_timestamp_seconds"),
        "{metrics}"
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(20)).success());
}

/// The daemon's own lines only: the timer crate's start-up chatter is not
/// news at INFO, and the signal that stopped the daemon is said before it
/// says it stopped.
#[test]
fn serve_logs_the_signal_before_stopped_and_no_timer_chatter() {
    let w = workdir(&format!(
        "{DAEMON}jobs:\n  tick:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"0 0 1 1 *\"\n    timezone: UTC\n"
    ));
    let mut d = w.serve();
    d.addr();
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(20)).success(), "{}", d.log());
    let log = d.log();
    for chatter in ["Uninited", "Job creator created"] {
        assert!(!log.contains(chatter), "`{chatter}` logged:\n{log}");
    }
    let lines: Vec<&str> = log.lines().collect();
    let at = |what: &str| {
        lines
            .iter()
            .position(|l| l.trim_end().ends_with(what))
            .unwrap_or_else(|| panic!("no line ending `{what}` in:\n{log}"))
    };
    assert!(
        at("SIGTERM received") < at(": stopped"),
        "the signal is said after `stopped`:\n{log}"
    );
}

/// Every run this process records starts and finishes once, fires recorded
/// skipped (here: a paused job) included, so started − finished is what is
/// running.
#[test]
fn runs_started_and_finished_agree_when_fires_are_skipped() {
    let w = workdir(&format!(
        "{DAEMON}jobs:\n  tick:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"* * * * * *\"\n    timezone: UTC\n"
    ));
    let out = w.run(&["pause", "tick", "--reason", "test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let d = w.serve();
    let addr = d.addr();
    let skipped = "runbookd_runs_finished_total{job=\"tick\",status=\"skipped\"}";
    let (started, finished) = eventually(
        Duration::from_secs(20),
        "two skipped fires, counted as started as often as finished",
        || {
            let (_, m) = runbookd::testkit::binary::get(addr, "/metrics")?;
            let counts = (
                runbookd::testkit::binary::metric(&m, "runbookd_runs_started_total"),
                runbookd::testkit::binary::metric(&m, "runbookd_runs_finished_total"),
            );
            (m.contains(skipped) && runbookd::testkit::binary::metric(&m, skipped) >= 2.0)
                .then_some(counts)
                .filter(|(s, f)| s == f)
        },
    );
    assert!(
        started >= 2.0 && started == finished,
        "{started} {finished}"
    );
}

/// What the alerts read, end to end: a run that failed before the daemon
/// started is its job's last status (from the history), its failure mail
/// (the mail server down) is pending, a scheduled job has its period, and
/// every job its timeout; a job whose last run failed still has its last
/// success, read from the history.
#[test]
fn serve_exposes_last_status_pending_mail_period_and_timeout() {
    let down = free_port();
    let w = workdir(&format!(
        "{DAEMON}mail:\n  smtp_url: \"smtp://127.0.0.1:{down}?tls=none\"\n  to: oncall@example.com\njobs:\n  broken:\n    kind: command\n    argv: [\"false\"]\n    timeout: 90s\n    notify: on_failure\n  every5:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"*/5 * * * *\"\n    timezone: UTC\n  flip:\n    kind: command\n    argv: [sh, -c, \"test ! -e fail\"]\n"
    ));
    let out = w.run(&["run", "broken"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(w.run(&["run", "flip"]).status.success());
    let succeeded = w.json(&["history", "--job", "flip", "--json"]);
    std::fs::write(w.path().join("fail"), "").unwrap();
    assert_eq!(w.run(&["run", "flip"]).status.code(), Some(1));
    let d = w.serve();
    let addr = d.addr();
    let value = |m: &str, series: &str| {
        m.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
    };
    let m = eventually(
        Duration::from_secs(20),
        "the last status and the pending mail in /metrics",
        || {
            let (_, m) = runbookd::testkit::binary::get(addr, "/metrics")?;
            (value(
                &m,
                "runbookd_job_last_status{job=\"broken\",status=\"failed\"}",
            ) == Some(1.0)
                && value(&m, "runbookd_mail_pending") == Some(1.0)
                && value(&m, "runbookd_last_success_timestamp_seconds{job=\"flip\"}").is_some())
            .then_some(m)
        },
    );
    for (series, want) in [
        (
            "runbookd_job_last_status{job=\"broken\",status=\"succeeded\"}",
            0.0,
        ),
        ("runbookd_job_period_seconds{job=\"every5\"}", 300.0),
        ("runbookd_job_timeout_seconds{job=\"broken\"}", 90.0),
        ("runbookd_job_timeout_seconds{job=\"every5\"}", 3600.0),
    ] {
        assert_eq!(value(&m, series), Some(want), "{series} in\n{m}");
    }
    assert!(
        value(&m, "runbookd_mail_oldest_pending_seconds").is_some_and(|a| a > 0.0),
        "{m}"
    );
    assert!(
        !m.contains("runbookd_job_period_seconds{job=\"broken\"}"),
        "{m}"
    );
    let ended = chrono::DateTime::parse_from_rfc3339(succeeded[0]["finished_at"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        value(&m, "runbookd_last_success_timestamp_seconds{job=\"flip\"}"),
        Some(ended.timestamp() as f64),
        "{m}"
    );
}

#[test]
fn a_taken_port_fails_serve_with_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let w = workdir("jobs:\n  a:\n    kind: command\n    argv: [\"true\"]\n");
    let mut d = w.serve_on(port);
    let status = d.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1));
    assert!(
        d.log()
            .contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        d.log()
    );
}

/// Two daemons on one Postgres, a per-second job: every second is claimed by
/// exactly one of them, for at least 20 fires.
#[cfg(feature = "integration")]
#[test]
fn two_daemons_on_one_postgres_fire_each_second_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(runbookd::testkit::TestDatabase::postgres());
    let w = workdir(&format!(
        "{DAEMON}jobs:\n  tick:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"* * * * * *\"\n    timezone: UTC\n    concurrency: allow\n"
    ))
    .with_db(&db.url);
    // Migrate once up front so both daemons start on a ready schema.
    assert!(w.run(&["migrate"]).status.success());
    let mut a = w.serve();
    let mut b = w.serve();
    let store = rt.block_on(db.open());
    let count = || {
        rt.block_on(store.list_runs(&runbookd::store::RunFilter {
            job: Some("tick".into()),
            since: None,
            limit: 100_000,
        }))
        .unwrap()
    };
    eventually(Duration::from_secs(60), "25 fires", || {
        (count().len() >= 25).then_some(())
    });
    a.signal(nix::sys::signal::Signal::SIGTERM);
    b.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(a.wait(Duration::from_secs(20)).success(), "{}", a.log());
    assert!(b.wait(Duration::from_secs(20)).success(), "{}", b.log());
    let runs = count();
    let mut seconds: Vec<i64> = runs
        .iter()
        .map(|r| r.scheduled_for.unwrap().timestamp())
        .collect();
    seconds.sort();
    let total = seconds.len();
    seconds.dedup();
    assert_eq!(seconds.len(), total, "a second was run twice");
    let span = seconds.last().unwrap() - seconds.first().unwrap() + 1;
    assert_eq!(
        span as usize, total,
        "a second was lost between the first and last fire"
    );
    assert!(
        runs.iter()
            .all(|r| r.status == runbookd::store::RunStatus::Succeeded),
        "{runs:#?}"
    );
}

#[test]
fn a_checklist_run_prints_a_table_and_stores_every_check() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = rt.block_on(async {
        let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    });
    let refused = free_port();
    let w = workdir(&format!(
        "jobs:
  morning:
    kind: checklist
    checks:
      - {{name: api, kind: http, url: 'http://{addr}/health', fail_latency: 5s}}
      - {{name: gone, kind: http, url: 'http://127.0.0.1:{refused}/health'}}
"
    ));
    let out = w.run(&["run", "morning"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a check in error fails the job: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("CHECK  STATUS  VALUE"), "{text}");
    assert!(
        lines[0].contains("THRESHOLD") && lines[0].contains("REASON"),
        "{text}"
    );
    assert!(lines[1].starts_with("api    pass"), "{text}");
    assert!(lines[1].contains("fail if > 5000 ms"), "{text}");
    assert!(
        lines[2].starts_with("gone   error") && lines[2].contains("refused:"),
        "{text}"
    );
    assert!(
        text.contains("2 checks: 1 pass, 0 warn, 0 fail, 1 error: gone (error)"),
        "{text}"
    );

    let json = w.run(&["run", "morning", "--json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    for key in ["check", "status", "value", "threshold", "reason"] {
        assert!(
            checks[0].get(key).is_some(),
            "checks lack `{key}`: {}",
            checks[0]
        );
    }
    assert_eq!(checks[0]["check"], "api");
    assert_eq!(checks[0]["status"], "pass");
    assert!(
        checks[0]["value"].is_number(),
        "latency in ms: {}",
        checks[0]
    );
    assert_eq!(checks[1]["status"], "error");
    assert_eq!(v["status"], "failed");

    // Stored with the run: `show` has them too.
    let id = v["id"].as_i64().unwrap().to_string();
    let shown = w.json(&["show", &id, "--json"]);
    assert_eq!(shown["checks"], v["checks"]);
    // Once: as the checks table, not again inside the log.
    let text = stdout(&w.run(&["show", &id]));
    assert_eq!(text.matches("CHECK  STATUS").count(), 1, "{text}");

    // A dry run contacts nothing and lists the checks.
    let dry = w.run(&["run", "morning", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        stderr(&dry).contains(&format!(
            "dry run: would check api (http): GET http://{addr}/health"
        )),
        "{}",
        stderr(&dry)
    );
}

/// The real kube client, configured from KUBECONFIG, against a stub API
/// server: proves the client can be built (TLS provider and all) and talks.
#[test]
fn kubernetes_check_through_kubeconfig() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = rt.block_on(async {
        let pods = r#"{"apiVersion":"v1","kind":"PodList","metadata":{},"items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"api-1","namespace":"ops"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}],"containerStatuses":[{"name":"api","ready":true,"restartCount":0,"image":"x","imageID":""}]}}]}"#;
        let app = axum::Router::new()
            .route(
                "/api/v1/namespaces/ops/pods",
                axum::routing::get(move || async move { ([("content-type", "application/json")], pods) }),
            )
            .fallback(|| async {
                (
                    axum::http::StatusCode::NOT_FOUND,
                    [("content-type", "application/json")],
                    r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"NotFound","code":404}"#,
                )
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    });
    let w = workdir(
        "jobs:\n  pods:\n    kind: checklist\n    checks:\n      - {name: api, kind: kubernetes, namespace: ops, selector: app=api}\n",
    );
    let kubeconfig = w.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stub\n  cluster:\n    server: http://{addr}\nusers:\n- name: t\n  user:\n    token: t\ncontexts:\n- name: stub\n  context:\n    cluster: stub\n    user: t\ncurrent-context: stub\n"
        ),
    )
    .unwrap();
    let out = w
        .cmd(&["run", "pods", "--json"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks[0]["check"], "api/ready");
    assert_eq!(checks[0]["status"], "pass", "{v}");
    assert_eq!(checks[0]["reason"], "1/1 pods Ready");
    // The stub serves no metrics.k8s.io: memory is a warning, the run passes.
    assert_eq!(checks.last().unwrap()["check"], "api/memory");
    assert_eq!(checks.last().unwrap()["status"], "warn");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Many finished runs, inserted straight into the work dir's history.
fn seed_runs(w: &Workdir, n: usize) {
    let url = format!("sqlite://{}", w.path().join("history.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = runbookd::store::open(&url).await.unwrap();
        for i in 0..n {
            let t = chrono::Utc::now() - chrono::Duration::seconds(i as i64);
            let id = store
                .insert_run(&runbookd::model::NewRun {
                    job: "real".into(),
                    trigger: runbookd::model::Trigger::Manual,
                    triggered_by: "seed".into(),
                    scheduled_for: None,
                    started_at: t,
                    status: runbookd::model::RunStatus::Running,
                    attempt: 1,
                    error: None,
                    dry_run: false,
                    owner: "h:1:a".into(),
                    retry_of: None,
                })
                .await
                .unwrap()
                .unwrap();
            store
                .finish_run(
                    id,
                    &runbookd::model::Finish {
                        status: runbookd::model::RunStatus::Succeeded,
                        finished_at: t,
                        error: None,
                        log: Default::default(),
                    },
                )
                .await
                .unwrap();
        }
    });
}

const REAL: &str = "jobs:\n  real:\n    kind: command\n    argv: [\"true\"]\n";

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let w = workdir(REAL);
    seed_runs(&w, 1500);
    let mut child = w
        .cmd(&["history", "--limit", "10000", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    drop(out); // `| head -c 64`
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("Broken pipe"), "{}", stderr(&o));
}

#[test]
fn bad_numbers_and_urls_are_usage_errors() {
    let w = workdir(
        "jobs:\n  tick:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"* * * * *\"\n",
    );
    for (args, says) in [
        (vec!["next", "tick", "-n", "100000000"], "100000000"),
        (vec!["history", "--limit", "0"], "0"),
        (
            vec!["--database-url", "mysql://u:p@db/x", "history"],
            "unsupported history store URL",
        ),
    ] {
        let out = w.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let out = w.run(&["next", "tick", "-n", "1000", "--json"]);
    assert!(out.status.success());
}

#[test]
fn jobs_json_gives_next_fire_in_rfc3339() {
    let w = workdir(
        "jobs:\n  tick:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"0 9 * * *\"\n    timezone: Asia/Kolkata\n",
    );
    let v = w.json(&["jobs", "--json"]);
    let next = v[0]["next_fire"].as_str().unwrap();
    let t = chrono::DateTime::parse_from_rfc3339(next).unwrap();
    assert_eq!(t.offset().local_minus_utc(), 5 * 3600 + 1800, "{next}");
    assert!(next.ends_with("T09:00:00+05:30"), "{next}");
}

#[test]
fn show_takes_a_job_name_for_its_latest_run() {
    let w = workdir(REAL);
    assert!(w.run(&["run", "real"]).status.success());
    assert!(w.run(&["run", "real"]).status.success());
    let v = w.json(&["show", "real", "--json"]);
    assert_eq!(v["id"], 2);
    let out = w.run(&["show", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("neither a run id nor a job"),
        "{}",
        stderr(&out)
    );
    // A run that does not exist is a "no", not a usage error.
    let out = w.run(&["show", "99"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no run 99"), "{}", stderr(&out));
}

/// No argument reaches a panic: every command driven with extreme values
/// ends with a usage error (2), a "no" (1) or success, and says why.
#[test]
fn extreme_arguments_never_panic() {
    let w = workdir(&format!(
        "{REAL}  tick:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"0 9 * * *\"\n"
    ));
    assert!(w.run(&["run", "real"]).status.success());
    let big = "99999999999d";
    let long = "x".repeat(100_000);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["history", "--since", big], 2, "--since"),
        (&["history", "--since", "300000y"], 2, "--since"),
        (
            &["history", "--since", "18446744073709551615s"],
            2,
            "--since",
        ),
        (&["history", "--since", "0s"], 0, ""),
        (&["history", "--since", "-5s"], 2, "unexpected argument"),
        (&["history", "--since", "9999-12-31T23:59:59Z"], 0, ""),
        (&["history", "--since", "0001-01-01T00:00:00Z"], 0, ""),
        (&["history", "--limit", "4294967295"], 2, "--limit"),
        (&["history", "--job", "nosuch"], 2, "no job named `nosuch`"),
        (&["history", "--job", "rael"], 2, "did you mean `real`"),
        (&["report", "--since", big], 2, "--since"),
        (&["report", "--since", "300000y"], 2, "--since"),
        (&["show", "9223372036854775807"], 1, "no run"),
        (&["show", "-1"], 2, ""),
        (
            &["show", "99999999999999999999999"],
            2,
            "neither a run id nor a job",
        ),
        (
            &["cancel", "9223372036854775807"],
            1,
            "no run 9223372036854775807",
        ),
        (&["cancel", "999999"], 1, "no run 999999"),
        (&["cancel", "1"], 1, "is not running: it ended succeeded"),
        (&["cancel", "99999999999999999999999"], 2, ""),
        (&["withdraw", "9223372036854775807"], 1, "no request"),
        (&["trigger", "real", "--expires-in", big], 2, "--expires-in"),
        (
            &["trigger", "real", "--expires-in", "0s"],
            2,
            "--expires-in",
        ),
        (
            &["trigger", "real", "--expires-in", "8d"],
            2,
            "--expires-in",
        ),
        (&["requests", "--limit", "0"], 2, "--limit"),
        (&["requests", "--limit", "99999999999"], 2, "--limit"),
        (&["next", "tick", "-n", "18446744073709551616"], 2, ""),
        (
            &["next", "tick", "--after", "+262143-12-31T23:59:59Z"],
            2,
            "--after",
        ),
        (&["next", "tick", "--after", "9999-12-31T23:59:59Z"], 0, ""),
        (&["next", "tick", "--after", "0001-01-01T00:00:00Z"], 0, ""),
        (
            &[
                "next",
                "tick",
                "-n",
                "1000",
                "--after",
                "9999-12-31T00:00:00Z",
            ],
            0,
            "",
        ),
        (&["pause", "tick", "--reason", &long], 2, "--reason"),
        (&["trigger", "real", "--reason", &long], 2, "--reason"),
        (&["trigger", "real", "--as", &long], 2, "--as"),
    ];
    let mut wrong = Vec::new();
    for (args, code, says) in cases {
        let out = w.run(args);
        let err = stderr(&out);
        let shown: Vec<String> = args.iter().map(|a| a.chars().take(40).collect()).collect();
        if err.contains("panicked") || out.status.code() != Some(*code) || !err.contains(says) {
            let err: String = err.chars().take(300).collect();
            wrong.push(format!("{shown:?}: exit {:?}: {err}", out.status.code()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const CHECKS: &str = "jobs:
  morning:
    kind: checklist
    checks:
      - {name: one, kind: http, url: 'http://127.0.0.1:1/a', timeout: 2s}
      - {name: two, kind: http, url: 'http://127.0.0.1:1/b', timeout: 2s}
      - {name: three, kind: http, url: 'http://127.0.0.1:1/c', timeout: 2s}
";

#[test]
fn run_only_and_skip_choose_the_checks_of_a_checklist() {
    let w = workdir(CHECKS);
    let v = w.run(&["run", "morning", "--only", "one,three", "--json"]);
    let run: Value = serde_json::from_slice(&v.stdout).unwrap();
    let names: Vec<&str> = run["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "three"]);
    let v = w.run(&["run", "morning", "--skip", "one", "--json"]);
    let run: Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(run["checks"].as_array().unwrap().len(), 2);
    assert!(
        run["log"]
            .as_str()
            .unwrap()
            .contains("parameters: skip=one")
    );
    for (args, says) in [
        (
            vec!["run", "morning", "--only", "nope"],
            "no check named `nope`",
        ),
        (
            vec!["run", "morning", "--skip", "one,two,three"],
            "leave no check",
        ),
    ] {
        let out = w.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    let w = workdir(REAL);
    let out = w.run(&["run", "real", "--only", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("takes no `only` parameter"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_checklist_run_says_each_thing_once_and_logs_json_on_request() {
    let w = workdir(CHECKS);
    let out = w.run(&["run", "morning"]);
    assert_eq!(out.status.code(), Some(1));
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(o.matches("CHECK  STATUS").count(), 1, "{o}");
    assert!(
        !e.contains("CHECK  STATUS"),
        "the table on stderr too:\n{e}"
    );
    let summary = "3 checks: 0 pass, 0 warn, 0 fail, 3 error";
    assert_eq!(
        format!("{o}{e}").matches(summary).count(),
        1,
        "{o}\n---\n{e}"
    );
    // Every check result has its threshold, errors included.
    let run = w.json(&["show", "morning", "--json"]);
    for c in run["checks"].as_array().unwrap() {
        assert!(c["threshold"].is_string(), "{c}");
    }

    let out = w.run(&["--log-format", "json", "run", "morning"]);
    let e = stderr(&out);
    assert!(e.lines().count() >= 2, "{e}");
    for line in e.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["job"].is_string() {
            assert_eq!(v["job"], "morning");
            assert!(v["run"].is_number(), "{line}");
        }
    }
}

#[test]
fn the_daemon_logs_flat_json_lines_naming_job_and_run() {
    let w = workdir(&format!(
        "{DAEMON}jobs:\n  flaky:\n    kind: command\n    argv: [sh, -c, \"exit 3\"]\n    schedule: \"* * * * * *\"\n    retries: {{ max: 1, backoff: 100ms }}\n"
    ));
    let log = w.path().join("serve.json.log");
    let mut child = w
        .cmd(&["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let text = eventually(Duration::from_secs(20), "two ended runs in the log", || {
        let t = std::fs::read_to_string(&log).ok()?;
        (t.matches("run ended").count() >= 2).then_some(t)
    });
    let _ = child.kill();
    let _ = child.wait();
    let mut ended = 0;
    let mut retried = 0;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        let msg = v["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {line}"));
        if msg.starts_with("run ended") || msg.starts_with("retrying") {
            assert_eq!(v["job"], "flaky", "{line}");
            assert!(v["run"].is_u64(), "no run id at the top: {line}");
            ended += usize::from(msg.starts_with("run ended"));
            retried += usize::from(msg.starts_with("retrying"));
        }
    }
    assert!(ended >= 2 && retried >= 1, "{text}");
}

#[test]
fn run_triage_shows_each_part_as_it_ends_then_the_triage_and_show_keeps_it() {
    let closed = free_port();
    // The API answers its health check with 503: a finding, the runbook's P0.
    let api = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api_port = api.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut c in api.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    let w = workdir(&format!(
        "jobs:
  triage:
    kind: triage
    part_timeout: 2s
    health_url: http://127.0.0.1:{api_port}/health
    alertmanager_url: http://127.0.0.1:{closed}
"
    ));
    let out = w
        .cmd(&["run", "triage"])
        .env("KUBECONFIG", w.path().join("no-such-kubeconfig"))
        .output()
        .unwrap();
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{o}\n{e}");
    // A line per part as it ends, every one before the triage itself.
    let verdict = e
        .find("TRIAGE: P0 (complete outage)")
        .unwrap_or_else(|| panic!("{e}"));
    for (part, how) in [
        ("pods", "failed: no Kubernetes config"),
        ("deployment", "failed: no Kubernetes config"),
        ("events", "failed: no Kubernetes config"),
        ("alerts", "failed: refused: GET"),
        ("health", "succeeded: 503 Service Unavailable"),
    ] {
        let line = e
            .lines()
            .position(|l| l.contains(&format!(" {part} {how}")))
            .unwrap_or_else(|| panic!("no progress line for {part}:\n{e}"));
        let at: usize = e.lines().take(line).map(|l| l.len() + 1).sum();
        assert!(at < verdict, "{part} after the verdict:\n{e}");
    }
    assert!(e.contains("  - the health check fails"), "{e}");
    assert!(
        e.contains("  - not read, so not judged: pods, deployment, alerts, events"),
        "{e}"
    );
    assert!(o.contains("diagnosis"), "the steps table: {o}");
    assert!(o.contains("run 1 of `triage` succeeded"), "{o}");
    // The history keeps it: readable in `show`, data in `show --json`.
    let shown = stdout(&w.run(&["show", "1"]));
    assert!(shown.contains("TRIAGE: P0 (complete outage)"), "{shown}");
    let v = w.json(&["show", "1", "--json"]);
    let steps = v["steps"].as_array().unwrap();
    let diagnosis = steps.last().unwrap();
    assert_eq!(diagnosis["name"], "diagnosis");
    assert_eq!(diagnosis["payload"]["severity"], "P0");
    assert_eq!(diagnosis["payload"]["facts"]["api.health_ok"], 0.0);
    let health = steps.iter().find(|s| s["name"] == "health").unwrap();
    assert_eq!(health["status"], "succeeded");
    assert_eq!(health["payload"]["data"]["status"], 503, "{health}");
    let alerts = steps.iter().find(|s| s["name"] == "alerts").unwrap();
    assert_eq!(alerts["status"], "failed");
    assert!(
        alerts["payload"]["error"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{alerts}"
    );

    // With every part down, runbookd may be the one cut off: no verdict,
    // and the run fails saying so.
    let w = workdir(&format!(
        "jobs:\n  triage:\n    kind: triage\n    part_timeout: 2s\n    health_url: http://127.0.0.1:{closed}/health\n"
    ));
    let out = w
        .cmd(&["run", "triage"])
        .env("KUBECONFIG", w.path().join("no-such-kubeconfig"))
        .output()
        .unwrap();
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{o}\n{e}");
    assert!(e.contains("TRIAGE: unknown: nothing could be read"), "{e}");
    assert!(
        o.contains("nothing could be read: every part failed"),
        "{o}"
    );
}

/// Credentials written into a triage's service URLs never reach the
/// terminal or the history, whether the service answers or not.
#[test]
fn triage_url_credentials_are_never_printed_or_stored() {
    let closed = free_port();
    let w = workdir(&format!(
        "jobs:
  triage:
    kind: triage
    part_timeout: 2s
    health_url: http://ops:Hp-Secret-11@127.0.0.1:{closed}/health
    alertmanager_url: http://am:Am-Secret-22@127.0.0.1:{closed}
    prometheus:
      url: http://pr:Pr-Secret-33@127.0.0.1:{closed}
      error_rate: up
      latency_p99: up
"
    ));
    let out = w
        .cmd(&["run", "triage"])
        .env("KUBECONFIG", w.path().join("no-such-kubeconfig"))
        .output()
        .unwrap();
    let shown = w.run(&["show", "1", "--json"]);
    let all = format!(
        "{}{}{}",
        stdout(&out),
        stderr(&out),
        String::from_utf8_lossy(&shown.stdout)
    );
    assert!(all.contains("step"), "{all}");
    for secret in ["Hp-Secret-11", "Am-Secret-22", "Pr-Secret-33"] {
        assert!(!all.contains(secret), "{secret} printed or stored:\n{all}");
    }
}

/// The same for the checks that call HTTP services.
#[test]
fn check_url_credentials_are_never_printed_or_stored() {
    let closed = free_port();
    let w = workdir(&format!(
        "jobs:
  c:
    kind: checklist
    checks:
      - {{name: h, kind: http, url: \"http://ops:Hc-Secret-44@127.0.0.1:{closed}/health\"}}
      - {{name: p, kind: prometheus, url: \"http://pr:Pc-Secret-55@127.0.0.1:{closed}\", query: up, fail_if: \"> 1\"}}
      - {{name: a, kind: alertmanager, url: \"http://am:Ac-Secret-66@127.0.0.1:{closed}\"}}
"
    ));
    let out = w.run(&["run", "c"]);
    let shown = w.run(&["show", "1", "--json"]);
    let listed = w.run(&["jobs"]);
    let all = format!(
        "{}{}{}{}",
        stdout(&out),
        stderr(&out),
        String::from_utf8_lossy(&shown.stdout),
        stdout(&listed)
    );
    assert!(all.contains("127.0.0.1"), "{all}");
    for secret in ["Hc-Secret-44", "Pc-Secret-55", "Ac-Secret-66"] {
        assert!(!all.contains(secret), "{secret} printed or stored:\n{all}");
    }
}

#[test]
fn every_option_and_argument_has_help() {
    let w = workdir(REAL);
    for cmd in [
        "validate", "jobs", "next", "run", "history", "show", "cancel", "serve", "trigger",
        "requests", "withdraw", "pause", "resume", "report", "migrate",
    ] {
        let out = w.run(&[cmd, "--help"]);
        let text = stdout(&out);
        // An unset variable is named, not shown as `NAME=`.
        assert!(!text.contains("=]"), "`runbookd {cmd} --help`: {text}");
        // The global options stand apart from the command's own.
        let (own, global) = text
            .split_once("Global options:")
            .unwrap_or_else(|| panic!("`runbookd {cmd} --help` has a global section: {text}"));
        assert!(!own.contains("--database-url"), "{cmd}: {text}");
        assert!(global.contains("--database-url"), "{cmd}: {text}");
        for line in text.lines() {
            let t = line.trim_start();
            let is_item = t.starts_with('-') || (t.starts_with('<') && line.starts_with("  "));
            if is_item && !t.starts_with("-h,") && !t.starts_with("-V,") {
                let described = t.split("  ").filter(|s| !s.trim().is_empty()).count() >= 2;
                assert!(described, "`runbookd {cmd}`: no help for `{t}`\n{text}");
            }
        }
    }
}

#[test]
fn a_manual_run_obeys_forbid_unless_forced() {
    let w = workdir(
        "jobs:\n  slow:\n    kind: command\n    argv: [sleep, \"4\"]\n    concurrency: forbid\n",
    );
    let mut first = w
        .cmd(&["run", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), "the first run to start", || {
        let v = w.json(&["history", "--json"]);
        v.as_array()?
            .iter()
            .any(|r| r["status"] == "running")
            .then_some(())
    });
    let out = w.run(&["run", "slow"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("still running"), "{}", stderr(&out));
    let out = w.run(&["run", "slow", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(first.wait().unwrap().success());
    let runs = w.json(&["history", "--json"]);
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "skipped", "succeeded"]);
    let forced = w.json(&["show", "3", "--json"]);
    assert!(
        forced["log"]
            .as_str()
            .unwrap()
            .contains("forced with --force"),
        "{}",
        forced["log"]
    );
}

#[test]
fn with_no_smtp_mail_goes_to_the_outbox_and_its_path_is_printed() {
    let w = workdir(
        "mail:\n  to: oncall@flexoraa.com\njobs:\n  broken:\n    kind: command\n    argv: [\"false\"]\n    notify: on_failure\n    schedule: \"0 9 * * *\"\n  daily:\n    kind: checklist\n    checks:\n      - {name: up, kind: http, url: \"http://127.0.0.1:9/\"}\n  morning-report:\n    kind: report\n    title: Flexoraa\n    checklist: daily\n",
    );
    let out = w.run(&["run", "broken"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("failed notification of run 1 sent to oncall@flexoraa.com: outbox/"),
        "{err}"
    );
    let outbox: Vec<_> = std::fs::read_dir(w.path().join("outbox"))
        .unwrap()
        .collect();
    assert_eq!(outbox.len(), 1);
    // Failing again: no second mail.
    w.run(&["run", "broken"]);
    assert_eq!(
        std::fs::read_dir(w.path().join("outbox")).unwrap().count(),
        1
    );

    // The report by hand: printed, written as HTML with its charts inline,
    // and sent to the outbox.
    let out = w.run(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // The two failed runs by hand. Its 09:00 fire was before runbookd
    // first saw the job (the first `run`): not missed, and the ledger
    // says it is the job's first day.
    assert!(
        text.starts_with("Subject: [runbookd] Flexoraa morning report: 2 need attention"),
        "{text}"
    );
    assert!(!text.contains("broken missed its"), "{text}");
    assert!(text.contains("broken (by hand, by "), "{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("broken "))
        .unwrap_or_else(|| panic!("a ledger row for broken: {text}"));
    assert!(row.contains("first day, from "), "{row}");
    let out = w.run(&["report", "--out", "report.html", "--since", "7d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(w.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    let out = w.run(&["report", "--send"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sent to oncall@flexoraa.com through outbox/"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(w.path().join("outbox")).unwrap().count(),
        2
    );
    let out = w.run(&["report", "--since", "tomorrow"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--since `tomorrow`"),
        "{}",
        stderr(&out)
    );
}

/// A checklist none of whose checks reached its target measured nothing:
/// the last line says production was not judged, rather than only that
/// every check failed.
#[test]
fn a_checklist_that_reached_nothing_says_so_on_its_last_line() {
    let w = workdir(
        "jobs:\n  daily:\n    kind: checklist\n    checks:\n      - {name: api-health, kind: http, url: \"http://127.0.0.1:9/\"}\n      - {name: api-ready, kind: http, url: \"http://127.0.0.1:9/ready\"}\n",
    );
    let out = w.run(&["run", "daily"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("run 1 of `daily` failed"), "{last}");
    assert!(
        last.contains("no check reached its target (all 2 ended `error`, nothing measured)"),
        "{last}"
    );
    assert!(last.contains("production was not judged"), "{last}");
}

/// `report --out` writes what its extension names, in any case; an
/// extension it cannot write is a usage error (2) naming the ones it can,
/// and a file it cannot write is a failure (1). The text has its Subject
/// line, as on stdout.
#[test]
fn report_out_writes_what_its_extension_names_and_refuses_the_rest() {
    let w = workdir(
        "mail:\n  to: oncall@flexoraa.com\njobs:\n  morning-report:\n    kind: report\n    title: Flexoraa\n",
    );
    for name in ["x.pdf", "x.html.bak", "report.md"] {
        let out = w.run(&["report", "--out", name]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(".html, .htm, .eml or .txt"),
            "{name}: {}",
            stderr(&out)
        );
        assert!(!w.path().join(name).exists(), "{name} was written");
    }
    let out = w.run(&["report", "--out", "X.HTML"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(w.path().join("X.HTML")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    let out = w.run(&["report", "--out", "Report.Eml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let eml = std::fs::read_to_string(w.path().join("Report.Eml")).unwrap();
    assert!(eml.contains("MIME-Version: 1.0"), "{eml}");
    for name in ["x.txt", "x"] {
        let out = w.run(&["report", "--out", name]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let text = std::fs::read_to_string(w.path().join(name)).unwrap();
        assert!(
            text.starts_with("Subject: [runbookd] Flexoraa morning report: all clear\n\n"),
            "{name}: {text}"
        );
        assert!(text.contains("Flexoraa morning report, "), "{name}: {text}");
    }
    let out = w.run(&["report", "--out", "no/such/dir/x.txt"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot write no/such/dir/x.txt"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_dry_run_never_replaces_a_real_run() {
    let w = workdir(
        "jobs:\n  slow:\n    kind: command\n    argv: [sleep, \"3\"]\n    concurrency: replace\n",
    );
    let mut first = w
        .cmd(&["run", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), "the first run to start", || {
        let v = w.json(&["history", "--json"]);
        v.as_array()?
            .iter()
            .any(|r| r["status"] == "running")
            .then_some(())
    });
    let out = w.run(&["run", "slow", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        first.wait().unwrap().success(),
        "the real run was not cancelled"
    );
    let real = w.json(&["show", "1", "--json"]);
    assert_eq!(real["status"], "succeeded", "{real}");
    assert!(
        !real["log"].as_str().unwrap().contains("cancel"),
        "{}",
        real["log"]
    );
}

#[test]
fn validate_reports_every_error_inside_a_checklist_once() {
    let w = workdir(
        "jobs:
  morning:
    kind: checklist
    checks:
      - {name: a, kind: http, url: 'not a url'}
      - {name: b, kind: prometheus, url: 'http://p', query: up}
      - {name: c, kind: http, url: 'http://x', bogus: 1}
      - {name: c, kind: ping}
    timeout: 5m
    timeout: 6m
",
    );
    let out = w.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    for (at, says) in [
        ("jobs.yaml:5:", "is not a URL"),
        ("jobs.yaml:6:", "needs `fail_if`, `warn_if` or `anomaly`"),
        ("jobs.yaml:7:", "unknown field `bogus`"),
        ("jobs.yaml:8:", "unknown check kind `ping`"),
        (
            "jobs.yaml:10:5:",
            "duplicate key `timeout` (first defined at line 9, column 5)",
        ),
    ] {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with(at) && l.contains(says))
                .count(),
            1,
            "{at} {says}:\n{text}"
        );
    }
    assert_eq!(text.matches("duplicate key").count(), 1, "{text}");
}

#[test]
fn missing_aws_credentials_are_named_as_such() {
    let w = workdir(
        "jobs:\n  db:\n    kind: checklist\n    checks:\n      - {name: rds, kind: rds, instance: x, region: ap-south-1, timeout: 20s}\n",
    );
    let mut c = w.cmd(&["run", "db", "--json"]);
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        c.env_remove(k);
    }
    c.env("HOME", w.path())
        .env("AWS_CONFIG_FILE", w.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", w.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let out = c.output().unwrap();
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = run["checks"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("no AWS credentials found"), "{reason}");
}

/// Scaling to 0 needs `--confirm`, by every way in, but a dry run changes
/// nothing and needs none; `confirm` is a flag, not a parameter.
#[test]
fn a_dry_run_of_maintenance_mode_needs_no_confirm() {
    let w = workdir(
        "jobs:
  maintenance-mode:
    kind: rollout
    action: scale
    replicas: 0
    deployment: api-deployment
",
    );
    let out = w.run(&["run", "maintenance-mode", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = w.run(&["run", "maintenance-mode"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--confirm"), "{}", stderr(&out));
    let out = w.run(&["trigger", "maintenance-mode"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--confirm"), "{}", stderr(&out));
    let out = w.run(&["trigger", "maintenance-mode", "--param", "confirm=yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = w.run(&["trigger", "maintenance-mode", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = w.run(&["trigger", "maintenance-mode", "--confirm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = w.json(&["requests", "--json"]);
    assert_eq!(listed[0]["confirmed"], true, "{listed}");
}

/// A dry run is never a job's last status: after a failed run and a dry
/// run that "succeeded", `jobs` shows the failure, and the dry run apart.
#[test]
fn jobs_never_lets_a_dry_run_hide_a_real_failure() {
    let w = workdir("jobs:\n  flaky:\n    kind: command\n    argv: [sh, -c, \"exit 1\"]\n");
    assert_eq!(w.run(&["run", "flaky"]).status.code(), Some(1));
    assert!(w.run(&["run", "flaky", "--dry-run"]).status.success());
    let text = stdout(&w.run(&["jobs"]));
    let row = text.lines().find(|l| l.starts_with("flaky")).unwrap();
    assert!(row.contains("failed (#1)"), "{text}");
    assert!(row.contains("dry run succeeded (#2)"), "{text}");
    let v = w.json(&["jobs", "--json"]);
    assert_eq!(v[0]["last_status"], "failed", "{v}");
    assert_eq!(v[0]["last_run_id"], 1, "{v}");
    assert_eq!(v[0]["last_dry_run"]["id"], 2, "{v}");
}
