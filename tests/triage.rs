//! Triage end to end through the runner: against the stateful fake cluster
//! and fake RDS (a crash loop with its logs, an OOM kill, a fresh rollout,
//! a slow API server), chained from a failing job with its notification,
//! and (with `--features integration`) against the real Postgres, Redis,
//! Prometheus with its fixture history and Alertmanager that
//! scripts/test.sh starts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbookd::adapters::Adapters;
use runbookd::adapters::aws::RdsEvent;
use runbookd::adapters::mail::Outbox;
use runbookd::clock::ManualClock;
use runbookd::model::{Run, RunStatus, StepStatus, Trigger};
use runbookd::runner::{RunRequest, Runner, Stop};
use runbookd::testkit::TestDatabase;
use runbookd::testkit::fakes::{FakeCluster, FakeRds};
use runbookd::testkit::pods::{PodBuilder, usage, warning};
use runbookd::testkit::world::World;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

const NOW: &str = "2026-11-30T09:00:00Z";

async fn world(yaml: &str, adapters: Adapters, env: &[(&str, &str)]) -> World {
    World::builder(yaml, adapters)
        .env(env)
        .clock(Arc::new(ManualClock::new(t(NOW))))
        .build()
        .await
}

fn all() -> runbookd::model::RunFilter {
    runbookd::model::RunFilter {
        limit: 100,
        ..Default::default()
    }
}

const SECRET: &str = "pw-Zq81-never-print";

/// A triage of the fake cluster only (the other parts unconfigured).
fn cluster_only(part_timeout: &str) -> String {
    format!(
        "jobs:
  triage:
    kind: triage
    part_timeout: {part_timeout}
    rds:
      instance: flexoraa-production-db
    database_url: postgres://app:{SECRET}@127.0.0.1:1/app
    log_patterns:
      pool: [\"too many clients already\"]
    rules:
      - name: crash-loop
        issue: Pods crash looping
        when: {{api.crashlooping: \">= 1\"}}
        remedy: read the previous log
      - name: out-of-memory
        issue: High memory usage
        when_any: {{api.oomkilled: \">= 1\", api.memory_ratio: \"> 0.9\"}}
        remedy: raise the limit
      - name: pool-exhausted
        issue: Database connection pool exhausted
        when: {{logs.pool: \">= 1\"}}
        remedy: restart the pods
        suggest: rollout-restart
  rollout-restart:
    kind: rollout
    action: restart
    deployment: api-deployment
"
    )
}

fn troubled_cluster() -> FakeCluster {
    let now = t(NOW);
    FakeCluster::default()
        .with_pods(vec![
            PodBuilder::new("api-a").ready().memory_limit("1Gi").build(),
            PodBuilder::new("api-b")
                .crash_looping()
                .restarts(9)
                .last_end("Error", 1, now - chrono::Duration::seconds(40))
                .memory_limit("1Gi")
                .build(),
            PodBuilder::new("api-c")
                .ready()
                .restarts(1)
                .last_end("OOMKilled", 137, now - chrono::Duration::minutes(20))
                .memory_limit("1Gi")
                .build(),
        ])
        .with_log(
            "api-b",
            true,
            &format!(
                "server listening\nconnecting to postgres://app:{SECRET}@db/app\nError: sorry, too many clients already\n    at Pool.connect\nprocess exited with code 1"
            ),
        )
        .with_log("api-c", true, "heap out of memory\n<--- Last few GCs --->")
        .with_log("api-a", false, "GET /health 200 3ms")
        .with_events(vec![warning(
            "pod/api-b",
            "BackOff",
            14,
            now - chrono::Duration::minutes(1),
            "Back-off restarting failed container api in pod api-b",
        )])
        .with_metrics(vec![usage("api-a", "400Mi"), usage("api-c", "700Mi")])
        .rolled_out_at(now - chrono::Duration::minutes(25))
}

#[tokio::test]
async fn a_crash_loop_an_oom_kill_and_a_fresh_rollout_are_named_with_their_evidence() {
    let rds = FakeRds::new("flexoraa-production-db").instance_is(
        "available",
        vec![RdsEvent {
            at: Some(t("2026-11-30T08:31:00Z")),
            message: "DB instance restarted".into(),
            categories: vec!["availability".into()],
        }],
    );
    let cluster = Arc::new(troubled_cluster());
    let w = world(
        &cluster_only("2s"),
        Adapters::real()
            .with_cluster(cluster.clone())
            .with_rds(Arc::new(rds)),
        &[],
    )
    .await;
    let run = w.run("triage").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let log = run.log.clone().unwrap();
    // The verdict and the known issues lead, with the runbookd job to try.
    // The application database does not answer: the runbook's P0.
    let verdict = log.find("TRIAGE: P0 (complete outage)\n").expect(&log);
    let why = log.find("  - the database is unreachable\n").expect(&log);
    assert!(verdict < why, "{log}");
    let issues = log.find("KNOWN ISSUES").expect(&log);
    let pods = log
        .find("PODS: 2/3 Ready, 1 CrashLoopBackOff, 1 OOMKilled")
        .expect(&log);
    assert!(verdict < issues && issues < pods, "{log}");
    for want in [
        "Pods crash looping [crash-loop]",
        "evidence: api.crashlooping = 1 (>= 1)",
        "High memory usage [out-of-memory]",
        "evidence: api.oomkilled = 1 (>= 1)",
        "Database connection pool exhausted [pool-exhausted]",
        "try:      runbookd run rollout-restart --dry-run  (a dry run; triage changes nothing)",
        "api-b Running NOT Ready, 9 restart(s), waiting: CrashLoopBackOff, last ended Error (exit 1) 40s ago",
        "log: pool: api-b: Error: sorry, too many clients already",
        "revision 3 (flexoraa/api:3), rolled out 25m ago",
        "previous revision 2 (flexoraa/api:2)",
        "14× BackOff pod/api-b: Back-off restarting failed container api in pod api-b",
        "29m ago: DB instance restarted [availability]",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
    }
    // The unreachable database is itself evidence, and never fatal.
    assert!(
        log.contains("DATABASE: failed: connect to postgres://app:[REDACTED]@127.0.0.1:1/app"),
        "{log}"
    );
    // Read the crash-looping and OOM-killed pods' previous containers, and
    // one healthy pod; nothing changed.
    let calls = cluster.calls();
    for want in [
        "GET logs default/api-b container=api tail=100 previous=true",
        "GET logs default/api-c container=api tail=100 previous=true",
        "GET logs default/api-a container=api tail=100 previous=false",
    ] {
        assert!(calls.contains(&want.to_string()), "{calls:?}");
    }
    assert!(
        cluster.changes().is_empty(),
        "triage changed the cluster: {:?}",
        cluster.changes()
    );
    // Each part is a step with its data; the last is the diagnosis.
    let names: Vec<(&str, StepStatus)> = run
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    for part in ["pods", "deployment", "events", "database", "rds"] {
        assert!(
            names.contains(&(
                part,
                if part == "database" {
                    StepStatus::Failed
                } else {
                    StepStatus::Succeeded
                }
            )),
            "{names:?}"
        );
    }
    let diagnosis = run.steps.last().unwrap();
    assert_eq!(diagnosis.name, "diagnosis");
    assert_eq!(
        diagnosis.detail,
        "P0: the database is unreachable; known issues: Pods crash looping; High memory usage; Database connection pool exhausted"
    );
    let payload = diagnosis.payload.as_ref().unwrap();
    assert_eq!(payload["severity"], "P0");
    assert_eq!(
        payload["matches"][2]["suggest"],
        "runbookd run rollout-restart --dry-run"
    );
    assert_eq!(payload["failed_parts"][0], "database");
    let pods_step = run.steps.iter().find(|s| s.name == "pods").unwrap();
    let data = &pods_step.payload.as_ref().unwrap()["data"];
    assert_eq!(data["logs"][0]["pod"], "api-b");
    // The secret in a pod's log and in the database URL is never stored.
    let everything = format!("{log}{}", serde_json::to_string(&run.steps).unwrap());
    assert!(!everything.contains(SECRET), "a secret was stored");
    assert!(
        everything.contains("connecting to postgres://app:[REDACTED]@db/app"),
        "{everything}"
    );
}

#[tokio::test]
async fn a_part_that_does_not_answer_in_time_is_reported_and_the_rest_go_on() {
    let cluster = Arc::new(troubled_cluster().slow(Duration::from_secs(30)));
    let w = world(
        &cluster_only("300ms"),
        Adapters::real()
            .with_cluster(cluster)
            .with_rds(Arc::new(FakeRds::new("flexoraa-production-db"))),
        &[],
    )
    .await;
    let started = std::time::Instant::now();
    let run = w.run("triage").await;
    // Every part under its own 300 ms: the whole well under the cluster's 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        run.status,
        RunStatus::Succeeded,
        "rds still answered: {:?}",
        run.error
    );
    let log = run.log.unwrap();
    for part in ["PODS", "DEPLOYMENT", "EVENTS"] {
        assert!(
            log.contains(&format!("{part}: failed: no answer within 300ms")),
            "{part}:\n{log}"
        );
    }
    assert!(
        log.contains("RDS: flexoraa-production-db available"),
        "{log}"
    );
}

#[tokio::test]
async fn a_cancelled_triage_closes_every_step() {
    let cluster = Arc::new(troubled_cluster().slow(Duration::from_secs(30)));
    let w = world(
        &cluster_only("20s"),
        Adapters::real()
            .with_cluster(cluster)
            .with_rds(Arc::new(FakeRds::new("flexoraa-production-db"))),
        &[],
    )
    .await;
    let job = w.config.job("triage").unwrap().clone();
    let mut req = RunRequest::default();
    let id = w
        .runner
        .admit(&job, &mut req)
        .await
        .unwrap()
        .started()
        .unwrap();
    let stop = Stop::new();
    // Cancelled once the pods step is recorded running (the cluster
    // answers in 30 s): the cancel has a step to close.
    let canceller = {
        let (stop, store) = (stop.clone(), w.store.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let run = store.get_run(id).await.unwrap().unwrap();
                if run
                    .steps
                    .iter()
                    .any(|s| s.name == "pods" && s.status == StepStatus::Running)
                {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the pods step never started: {:?}",
                    run.steps
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            stop.cancel("cancelled by sre");
        })
    };
    let ended = tokio::time::timeout(
        Duration::from_secs(20),
        w.runner.execute(&job, &req, id, &stop),
    )
    .await
    .expect("a cancel ends the triage at once");
    canceller.await.unwrap();
    assert_eq!(ended.status, RunStatus::Cancelled);
    let run = w.store.get_run(id).await.unwrap().unwrap();
    let open: Vec<&str> = run
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Running)
        .map(|s| s.name.as_str())
        .collect();
    assert!(open.is_empty(), "steps left running: {open:?}");
    let pods = run.steps.iter().find(|s| s.name == "pods").unwrap();
    assert_eq!(pods.status, StepStatus::Failed);
    assert_eq!(pods.detail, "cancelled: the run was stopped");
}

#[tokio::test]
async fn a_dry_run_lists_the_parts_and_reads_nothing() {
    let cluster = Arc::new(troubled_cluster());
    let rds = Arc::new(FakeRds::new("flexoraa-production-db"));
    let w = world(
        &cluster_only("2s"),
        Adapters::real()
            .with_cluster(cluster.clone())
            .with_rds(rds.clone()),
        &[],
    )
    .await;
    let job = w.config.job("triage").unwrap().clone();
    let mut req = RunRequest {
        dry_run: true,
        ..Default::default()
    };
    let id = w
        .runner
        .admit(&job, &mut req)
        .await
        .unwrap()
        .started()
        .unwrap();
    w.runner.execute(&job, &req, id, &Stop::new()).await;
    let run = w.store.get_run(id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(
        run.steps.iter().all(|s| s.status == StepStatus::Skipped),
        "{:?}",
        run.steps
    );
    assert_eq!(run.steps.len(), 5, "{:?}", run.steps);
    assert!(cluster.calls().is_empty(), "{:?}", cluster.calls());
    assert!(rds.calls().is_empty(), "{:?}", rds.calls());
}

#[tokio::test]
async fn a_failing_job_chains_its_triage_and_its_notification_carries_the_diagnosis() {
    let outbox = tempfile::tempdir().unwrap();
    let yaml = format!(
        "mail:
  to: oncall@example.com
  outbox: {}
jobs:
  watch:
    kind: command
    argv: [sh, -c, \"exit 3\"]
    notify: on_failure
    retries: {{max: 1, backoff: 10ms}}
    on_failure: [triage]
{}",
        outbox.path().display(),
        cluster_only("2s").trim_start_matches("jobs:\n").replace(
            "  triage:\n    kind: triage\n",
            "  triage:\n    kind: triage\n    on_failure: [watch]\n"
        )
    );
    let w = world(
        &yaml,
        Adapters::real()
            .with_cluster(Arc::new(troubled_cluster()))
            .with_rds(Arc::new(FakeRds::new("flexoraa-production-db")))
            .with_mail(Arc::new(Outbox::new(outbox.path()))),
        &[],
    )
    .await;
    let watch = w.run("watch").await;
    assert_eq!(watch.status, RunStatus::Failed);
    assert_eq!(watch.attempt, 2, "retries first, then the chain");
    let runs = w.store.list_runs(&all()).await.unwrap();
    let triages: Vec<&Run> = runs.iter().filter(|r| r.job == "triage").collect();
    assert_eq!(
        triages.len(),
        1,
        "one triage, after the last attempt only: {runs:#?}"
    );
    let triage = triages[0];
    assert_eq!(triage.trigger, Trigger::Chained);
    assert_eq!(triage.triggered_by, format!("run {} of watch", watch.id));
    assert_eq!(triage.status, RunStatus::Succeeded);
    // A chained run never chains (triage names watch in its on_failure).
    assert_eq!(
        runs.iter().filter(|r| r.job == "watch").count(),
        2,
        "{runs:#?}"
    );
    // The page carries the diagnosis and says how to see the triage.
    let mails: Vec<_> = std::fs::read_dir(outbox.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let raw = std::fs::read(&mails[0]).unwrap();
    let parsed = mailparse::parse_mail(&raw).unwrap();
    let text = parsed
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == "text/plain")
        .map(|p| p.get_body().unwrap())
        .unwrap_or_else(|| parsed.get_body().unwrap())
        .replace("\r\n", "\n");
    let head = format!(
        "triage (run {}, succeeded): P0: the database is unreachable; known issues: Pods crash looping; High memory usage; Database connection pool exhausted\n  runbookd show {}",
        triage.id, triage.id
    );
    let at = text
        .find(&head)
        .unwrap_or_else(|| panic!("no {head:?} in:\n{text}"));
    assert!(
        at < text.find("Error:").unwrap_or(usize::MAX),
        "the diagnosis comes before the details:\n{text}"
    );
}

#[tokio::test]
async fn a_chained_run_never_chains() {
    let yaml = "jobs:
  a:
    kind: command
    argv: [sh, -c, \"exit 1\"]
    on_failure: [b]
  b:
    kind: command
    argv: [sh, -c, \"exit 2\"]
    on_failure: [a]
";
    let w = world(yaml, Adapters::real(), &[]).await;
    let a = w.run("a").await;
    assert_eq!(a.status, RunStatus::Failed);
    let runs = w.store.list_runs(&all()).await.unwrap();
    let seen: Vec<(String, Trigger, String)> = runs
        .iter()
        .rev()
        .map(|r| (r.job.clone(), r.trigger, r.triggered_by.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("a".to_string(), Trigger::Manual, "sre".to_string()),
            (
                "b".to_string(),
                Trigger::Chained,
                format!("run {} of a", a.id)
            ),
        ]
    );
}

#[tokio::test]
async fn a_long_chained_job_does_not_hold_the_page_and_a_running_one_is_not_doubled() {
    let outbox = tempfile::tempdir().unwrap();
    let yaml = "mail:
  to: oncall@example.com
jobs:
  watch:
    kind: command
    argv: [sh, -c, \"exit 3\"]
    notify: on_failure
    on_failure: [slow, gone]
  slow:
    kind: command
    argv: [sleep, \"2\"]
  gone:
    kind: command
    argv: [\"true\"]
";
    let db = TestDatabase::sqlite();
    let store = db.open().await;
    let config =
        runbookd::jobs::load_str(std::path::Path::new("jobs.yaml"), yaml, &|_| None).unwrap();
    let runner = Runner::builder(
        store.clone(),
        Arc::new(Adapters::real().with_mail(Arc::new(Outbox::new(outbox.path())))),
    )
    .config(&config)
    .chain_wait(Duration::from_millis(300))
    .build();
    // `gone` is already running elsewhere: its chained run is skipped.
    let other = store
        .insert_run(&runbookd::store::NewRun {
            job: "gone".into(),
            trigger: Trigger::Manual,
            triggered_by: "someone".into(),
            scheduled_for: None,
            started_at: Utc::now(),
            status: RunStatus::Running,
            attempt: 1,
            error: None,
            dry_run: false,
            owner: "elsewhere:1:a".into(),
            retry_of: None,
        })
        .await
        .unwrap()
        .unwrap();
    let job = config.job("watch").unwrap().clone();
    let mut req = RunRequest::default();
    let id = runner
        .admit(&job, &mut req)
        .await
        .unwrap()
        .started()
        .unwrap();
    let started = std::time::Instant::now();
    let ended = runner.execute(&job, &req, id, &Stop::new()).await;
    // The page went out before the 2 s job ended; execute waited for it.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ended.chained.len(), 2, "{:?}", ended.chained);
    assert_eq!(ended.chained[0].job, "slow");
    assert_eq!(ended.chained[0].status, RunStatus::Running);
    assert_eq!(
        ended.chained[0].summary.as_deref(),
        Some("still running after 300ms")
    );
    assert_eq!(ended.chained[1].id, Some(other));
    let mail = std::fs::read_dir(outbox.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let sent_at = std::fs::metadata(&mail).unwrap().modified().unwrap();
    let slow_id = ended.chained[0].id.unwrap();
    let slow = store.get_run(slow_id).await.unwrap().unwrap();
    assert_eq!(
        slow.status,
        RunStatus::Succeeded,
        "the chained run finished after the page"
    );
    let slow_end = std::time::SystemTime::from(slow.finished_at.unwrap());
    assert!(sent_at < slow_end, "the page waited for the slow job");
    let raw = std::fs::read(&mail).unwrap();
    let text = String::from_utf8_lossy(&raw)
        .replace("=\r\n", "")
        .replace("\r\n", "\n");
    assert!(
        text.contains(&format!(
            "slow (run {slow_id}, running): still running after 300ms"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("gone (run {other}, running): already running")),
        "{text}"
    );
    let runs = store.list_runs(&all()).await.unwrap();
    let skipped: Vec<&Run> = runs
        .iter()
        .filter(|r| r.job == "gone" && r.status == RunStatus::Skipped)
        .collect();
    assert_eq!(skipped.len(), 1, "{runs:#?}");
    assert_eq!(skipped[0].trigger, Trigger::Chained);
}

/// Credentials of every common shape, as an application logs them: each
/// value is unique, to be looked for in everything kept.
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
    "ev-pw-1234",
];

const LEAKY_LOG: &str = "starting
{\"password\":\"pw-json-1111\",\"api_key\":\"ak-json-2222\",\"token\": \"tk-json-3333\"}
AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
DB_PASSWORD=pw-env-4444
GET https://u:pw-url-6666@api.example.com/x Authorization: Bearer bt-5555-abcdefgh
POST /login password=pw-form-7777&user=x Authorization: Basic dTpwdy1iYXNpYy05OTk5
-----BEGIN PRIVATE KEY-----
MIIEpk-8888-body
-----END PRIVATE KEY-----
\x1b]0;pwned\x07\x1b[2Jcleared the screen";

/// No leaked value and no raw escape in `everything`; the escape is shown.
fn assert_scrubbed(everything: &str) {
    for leaked in LEAKED {
        assert!(
            !everything.contains(leaked),
            "{leaked} was kept:\n{everything}"
        );
    }
    assert!(!everything.contains('\x1b'), "a raw ESC:\n{everything}");
    assert!(!everything.contains('\x07'), "a raw BEL:\n{everything}");
    assert!(
        !everything.contains("\\u001b"),
        "a raw ESC, JSON-escaped:\n{everything}"
    );
}

#[tokio::test]
async fn credentials_and_escapes_in_pod_logs_and_events_are_never_kept_shown_or_mailed() {
    let outbox = tempfile::tempdir().unwrap();
    let yaml = format!(
        "mail:\n  to: oncall@example.com\n  outbox: {}\n{}",
        outbox.path().display(),
        cluster_only("2s").replace(
            "  triage:\n    kind: triage\n",
            "  triage:\n    kind: triage\n    notify: always\n"
        )
    );
    let now = t(NOW);
    let cluster = troubled_cluster()
        .with_log("api-b", true, LEAKY_LOG)
        .with_events(vec![warning(
            "pod/api-b",
            "Failed",
            3,
            now - chrono::Duration::minutes(1),
            "Error: container env DB_PASSWORD=ev-pw-1234 rejected \x1b[31mred",
        )]);
    let w = world(
        &yaml,
        Adapters::real()
            .with_cluster(Arc::new(cluster))
            .with_rds(Arc::new(FakeRds::new("flexoraa-production-db")))
            .with_mail(Arc::new(Outbox::new(outbox.path()))),
        &[],
    )
    .await;
    let run = w.run("triage").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let log = run.log.clone().unwrap();
    // What was read is still there, masked.
    for want in [
        "DB_PASSWORD=[REDACTED] rejected \\x1b[31mred",
        "  | \\x1b]0;pwned\\x07\\x1b[2Jcleared the screen",
        "  | -----END PRIVATE KEY-----",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
    }
    // `show --json` prints the run as stored.
    let shown = serde_json::to_string(&run).unwrap();
    assert!(
        shown.contains(r#"DB_PASSWORD=[REDACTED]"#),
        "the event in the events step: {shown}"
    );
    let mails: Vec<_> = std::fs::read_dir(outbox.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let raw = std::fs::read(&mails[0]).unwrap();
    let parsed = mailparse::parse_mail(&raw).unwrap();
    let mut mail = String::new();
    for p in std::iter::once(&parsed).chain(parsed.subparts.iter()) {
        mail.push_str(&p.get_body().unwrap());
    }
    assert_scrubbed(&format!("{log}\n{shown}\n{mail}"));
}

#[tokio::test]
async fn a_pod_whose_log_never_answers_costs_that_log_not_the_pods_facts() {
    let yaml = cluster_only("1s").replace(
        "  triage:\n    kind: triage\n",
        "  triage:\n    kind: triage\n    health_url: http://127.0.0.1:1/health\n",
    );
    // api-b's node is dying: neither its previous nor its current log
    // ever comes.
    let cluster = troubled_cluster().log_never_answers("api-b");
    let w = world(
        &yaml,
        Adapters::real()
            .with_cluster(Arc::new(cluster))
            .with_rds(Arc::new(FakeRds::new("flexoraa-production-db"))),
        &[],
    )
    .await;
    let run = w.run("triage").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let log = run.log.clone().unwrap();
    let pods = run.steps.iter().find(|s| s.name == "pods").unwrap();
    assert_eq!(pods.status, StepStatus::Succeeded, "{log}");
    assert!(
        log.contains("PODS: 2/3 Ready, 1 CrashLoopBackOff, 1 OOMKilled"),
        "{log}"
    );
    assert!(log.contains("logs of api-b: "), "{log}");
    let diagnosis = run.steps.last().unwrap();
    assert!(
        diagnosis.detail.contains("Pods crash looping")
            && diagnosis.detail.contains("High memory usage"),
        "{}",
        diagnosis.detail
    );
    // The health URL that failed is the verdict's reason, said once.
    let said: Vec<&str> = log
        .lines()
        .map(|l| l.split_once(" runbookd ").map(|(_, r)| r).unwrap_or(l))
        .skip_while(|l| !l.starts_with("TRIAGE: "))
        .take_while(|l| l.starts_with("TRIAGE: ") || l.starts_with("  - "))
        .collect();
    assert_eq!(
        said,
        [
            "TRIAGE: P0 (complete outage)",
            "  - the health check fails",
            "  - the database is unreachable",
        ],
        "{log}"
    );
}

#[cfg(feature = "integration")]
mod live {
    //! The parts that read real servers: Postgres (connections by state,
    //! the longest query), Redis (PING, INFO), Prometheus (now, an hour
    //! and a day ago, at the fixture's instant) and Alertmanager.

    use super::*;
    use runbookd::testkit::service;

    /// The fixture's reference instant (scripts/prometheus_fixture.py).
    const T0: &str = "2026-01-08T09:00:00Z";

    #[tokio::test]
    async fn the_live_parts_read_real_servers() {
        let db = TestDatabase::postgres().await;
        let app_url = db.url.clone();
        let redis_url = service("RUNBOOKD_TEST_REDIS_URL", "Redis");
        let prom = service(
            "RUNBOOKD_TEST_PROMETHEUS_URL",
            "Prometheus with the fixture history",
        );
        let am = service("RUNBOOKD_TEST_ALERTMANAGER_URL", "Alertmanager");
        // A query that runs until it is cancelled below: the longest one
        // triage reports, whatever a slow machine's run takes.
        use sqlx::Connection;
        const SLEEPER: &str = "SELECT pg_sleep(60)";
        let sleeper = {
            let url = app_url.clone();
            tokio::spawn(async move {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                let _ = sqlx::query(SLEEPER).execute(&mut c).await;
            })
        };
        let mut watcher = sqlx::PgConnection::connect(&app_url).await.unwrap();
        let age = "SELECT EXTRACT(EPOCH FROM clock_timestamp() - query_start)::float8
            FROM pg_stat_activity WHERE query = $1 AND state = 'active'";
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let a: Option<f64> = sqlx::query_scalar(age)
                    .bind(SLEEPER)
                    .fetch_optional(&mut watcher)
                    .await
                    .unwrap();
                if a.is_some_and(|a| a >= 0.6) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the sleeping query is active within 20 s");
        let yaml = format!(
            "jobs:
  triage:
    kind: triage
    part_timeout: 5s
    database_url: {app_url}
    show_query_text: true
    redis_url: {redis_url}
    alertmanager_url: {am}
    prometheus:
      url: {prom}
      error_rate: 'sum(rate(http_requests_total{{scenario=\"spike\"}}[1h]))'
      latency_p99: 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{scenario=\"slow\"}}[1h])))'
"
        );
        let store_db = TestDatabase::sqlite();
        let store = store_db.open().await;
        let config = runbookd::jobs::load_str(std::path::Path::new("jobs.yaml"), &yaml, &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        let runner = Runner::builder(
            store.clone(),
            Arc::new(Adapters::real().with_cluster(Arc::new(FakeCluster::default()))),
        )
        .config(&config)
        .clock(Arc::new(ManualClock::new(t(T0))))
        .build();
        let job = config.job("triage").unwrap().clone();
        let mut req = RunRequest::default();
        let id = runner
            .admit(&job, &mut req)
            .await
            .unwrap()
            .started()
            .unwrap();
        runner.execute(&job, &req, id, &Stop::new()).await;
        sqlx::query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = $1")
            .bind(SLEEPER)
            .execute(&mut watcher)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(20), sleeper)
            .await
            .expect("the sleeping query ends when cancelled")
            .unwrap();
        drop(watcher);
        let run = store.get_run(id).await.unwrap().unwrap();
        let log = run.log.clone().unwrap();
        let step = |name: &str| {
            run.steps
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no step {name}: {log}"))
        };
        let facts = |name: &str| step(name).payload.as_ref().unwrap()["facts"].clone();
        // Postgres: this test's connections, and the sleeping query's age.
        let db_facts = facts("database");
        assert_eq!(step("database").status, StepStatus::Succeeded, "{log}");
        assert!(
            db_facts["db.connections"].as_f64().unwrap() >= 1.0,
            "{db_facts}"
        );
        assert!(
            db_facts["db.max_connections"].as_f64().unwrap() >= 10.0,
            "{db_facts}"
        );
        let longest = db_facts["db.longest_query_seconds"].as_f64().unwrap();
        assert!(longest >= 0.5, "{db_facts}");
        assert!(log.contains(SLEEPER), "query text shown when asked:\n{log}");
        // Redis answers PING and INFO.
        let r = facts("redis");
        assert_eq!(r["redis.reachable"], 1.0, "{log}");
        assert!(r["redis.clients"].as_f64().unwrap() >= 1.0, "{r}");
        // Prometheus at T0, an hour and a day before: the spike scenario
        // is ten times its usual rate in the last 12 hours.
        let m = facts("metrics");
        assert_eq!(step("metrics").status, StepStatus::Succeeded, "{log}");
        let now = m["errors.rate"].as_f64().unwrap();
        let day = m["errors.rate_1d_ago"].as_f64().unwrap();
        assert!(now / day > 5.0, "now {now}, a day ago {day}");
        assert!(
            (m["errors.rate_1h_ago"].as_f64().unwrap() / now - 1.0).abs() < 0.1,
            "{m}"
        );
        assert!(m["latency.p99"].as_f64().unwrap() > 2.0, "{m}");
        // Alertmanager answers (with whatever is firing there).
        assert_eq!(step("alerts").status, StepStatus::Succeeded, "{log}");
        assert!(facts("alerts")["alerts.firing"].is_number());
    }

    /// The RDS part through moto: the instance's status and its events.
    #[tokio::test]
    async fn the_rds_part_reads_moto() {
        let endpoint = service("RUNBOOKD_TEST_AWS_ENDPOINT", "moto (AWS)");
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(runbookd::adapters::aws::https_client())
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_rds::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await;
        let instance = format!(
            "triage-db-{}",
            Utc::now().timestamp_nanos_opt().unwrap() % 1_000_000_000_000
        );
        aws_sdk_rds::Client::new(&conf)
            .create_db_instance()
            .db_instance_identifier(&instance)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .master_username("flexoraa")
            .master_user_password("not-a-real-password")
            .allocated_storage(20)
            .send()
            .await
            .unwrap();
        let yaml = format!(
            "jobs:\n  triage:\n    kind: triage\n    part_timeout: 5s\n    rds: {{instance: {instance}, region: us-east-1}}\n"
        );
        let w = world(
            &yaml,
            Adapters::real()
                .with_cluster(Arc::new(FakeCluster::default()))
                .with_rds(Arc::new(runbookd::adapters::aws::Aws::local(&endpoint))),
            &[],
        )
        .await;
        let run = w.run("triage").await;
        let rds = run.steps.iter().find(|s| s.name == "rds").unwrap();
        assert_eq!(rds.status, StepStatus::Succeeded, "{}", rds.detail);
        let p = rds.payload.as_ref().unwrap();
        assert_eq!(p["facts"]["rds.available"], 1.0, "{p}");
        assert!(
            p["facts"]["rds.events"].is_number(),
            "DescribeEvents answered: {p}"
        );
        assert!(
            rds.detail.starts_with(&format!("{instance} available")),
            "{}",
            rds.detail
        );
    }

    #[tokio::test]
    async fn unreachable_redis_and_database_are_facts_the_rules_see() {
        let yaml = "jobs:
  triage:
    kind: triage
    part_timeout: 2s
    database_url: postgres://nobody@127.0.0.1:1/none
    redis_url: redis://127.0.0.1:1
    rules:
      - name: redis-unreachable
        issue: Redis connection failures
        when: {redis.reachable: \"== 0\"}
        remedy: reboot the node
";
        let w = world(
            yaml,
            Adapters::real().with_cluster(Arc::new(FakeCluster::default())),
            &[],
        )
        .await;
        let run = w.run("triage").await;
        let log = run.log.unwrap();
        assert!(log.contains("TRIAGE: P0 (complete outage)"), "{log}");
        assert!(log.contains("the database is unreachable"), "{log}");
        assert!(
            log.contains("Redis connection failures [redis-unreachable]"),
            "{log}"
        );
    }
}
