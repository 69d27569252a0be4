//! The web console over a real HTTP server on 127.0.0.1:0 and a SQLite
//! history: pages and their JSON twins, the headers of every response,
//! read-only (every other method is 405 and the store is unchanged),
//! strict query parameters, escaping, auth; and, with `integration`, every
//! page in headless Chromium with no console error and no blocked resource.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbookd::clock::ManualClock;
use runbookd::config::Config;
use runbookd::console::{CSP, Console, REPORT_CSP, router};
use runbookd::http::DaemonState;
use runbookd::model::{
    CheckResult, CheckStatus, Finish, LogSnapshot, NewRequest, NewRun, RequestFilter, RunFilter,
    StepStatus,
};
use runbookd::store::{HistoryStore, RunStatus, StoreHealth, Trigger};
use runbookd::testkit::TestDatabase;
use runbookd::testkit::history::{RunSpec, Seed};
use tokio_util::sync::CancellationToken;

const NOW: &str = "2026-12-05T12:00:00Z";
const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(2)>";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn yaml(extra_console: &str) -> String {
    format!(
        r#"
history:
  database_url: "postgres://runbookd:hunter2-db-pass@db.internal:5432/runbookd"
{extra_console}
jobs:
  daily-checklist:
    kind: checklist
    description: "Morning checks {desc}"
    schedule: "0 9 * * *"
    timezone: Europe/London
    checks:
      - {{name: error-rate, kind: prometheus, url: "http://127.0.0.1:9", query: x, fail_if: "> 0.05", warn_if: "> 0.01"}}
  rotate:
    kind: command
    description: "Rotates things; token: abc-literal-secret-123"
    schedule: "*/30 * * * *"
    argv: ["true"]
    env:
      API_PASSWORD: "pw-in-env-9876"
  triage:
    kind: command
    argv: ["true"]
"#,
        desc = format!("{SCRIPT} {IMG}").replace('"', "\\\"")
    )
}

fn config(extra_console: &str) -> Config {
    runbookd::jobs::load_str(
        std::path::Path::new("jobs.yaml"),
        &yaml(extra_console),
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

struct Server {
    clock: Arc<ManualClock>,
    addr: SocketAddr,
    stop: CancellationToken,
    store: Arc<dyn HistoryStore>,
    ids: Ids,
    _db: TestDatabase,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Clone, Copy)]
struct Ids {
    checklist: i64,
    failed: i64,
    retry: i64,
    chained: i64,
    running: i64,
}

/// A history with a checklist run, a failed run retried and chained to a
/// triage, a running run with a log, a pending request and pending mail;
/// text of every kind holds markup.
async fn seed(store: &Arc<dyn HistoryStore>) -> Ids {
    let s = Seed::new(store.clone());
    let mut first = 0;
    for d in 1..=5 {
        let at = t(&format!("2026-12-0{d}T09:00:00Z"));
        let id = s
            .add(
                RunSpec::scheduled("daily-checklist", at)
                    .took(chrono::Duration::seconds(3 + d))
                    .check(
                        CheckResult::new("error-rate", CheckStatus::Pass, "below 0.01")
                            .number(0.001 * d as f64)
                            .threshold("> 0.05"),
                    )
                    .check(
                        CheckResult::new(
                            format!("evil {SCRIPT}"),
                            CheckStatus::Fail,
                            format!("reason {IMG}"),
                        )
                        .text(format!("value {SCRIPT}")),
                    ),
            )
            .await;
        if d == 1 {
            first = id;
        }
    }
    let _ = first;
    let checklist = store
        .last_run("daily-checklist", Some(false))
        .await
        .unwrap()
        .unwrap()
        .id;
    for h in 0..6 {
        s.add(RunSpec::scheduled(
            "rotate",
            t(&format!("2026-12-05T0{h}:00:00Z")),
        ))
        .await;
    }
    let failed = s
        .add(
            RunSpec::scheduled("rotate", t("2026-12-05T07:00:00Z"))
                .failed(RunStatus::Failed, &format!("boom {SCRIPT} {IMG}"))
                .step(
                    "create-snapshot",
                    "rds:prod-db",
                    StepStatus::Succeeded,
                    &format!("made {IMG}"),
                    Some(serde_json::json!({"snapshot": format!("snap-1 {SCRIPT}")})),
                ),
        )
        .await;
    let retry = store
        .insert_run(&NewRun {
            job: "rotate".into(),
            trigger: Trigger::Retry,
            triggered_by: "scheduler".into(),
            scheduled_for: Some(t("2026-12-05T07:00:00Z")),
            started_at: t("2026-12-05T07:05:00Z"),
            status: RunStatus::Running,
            attempt: 2,
            error: None,
            dry_run: false,
            owner: "seed:1:test".into(),
            retry_of: Some(failed),
        })
        .await
        .unwrap()
        .unwrap();
    store
        .finish_run(
            retry,
            &Finish {
                status: RunStatus::Succeeded,
                finished_at: t("2026-12-05T07:06:00Z"),
                error: None,
                log: LogSnapshot {
                    text: format!("line one\n{SCRIPT}\n{IMG}\n"),
                    truncated: false,
                },
            },
        )
        .await
        .unwrap();
    let chained = store
        .insert_run(&NewRun {
            job: "triage".into(),
            trigger: Trigger::Chained,
            triggered_by: runbookd::model::chained_by(failed, "rotate"),
            scheduled_for: None,
            started_at: t("2026-12-05T07:00:02Z"),
            status: RunStatus::Running,
            attempt: 1,
            error: None,
            dry_run: false,
            owner: "seed:1:test".into(),
            retry_of: None,
        })
        .await
        .unwrap()
        .unwrap();
    store
        .record_step(
            chained,
            &runbookd::model::Step {
                position: 0,
                name: "diagnosis".into(),
                target: "rules of this job".into(),
                status: StepStatus::Succeeded,
                started_at: t("2026-12-05T07:00:03Z"),
                finished_at: Some(t("2026-12-05T07:00:04Z")),
                detail: "P1: snapshot slow".into(),
                payload: Some(serde_json::json!({"severity": "P1"})),
            },
        )
        .await
        .unwrap();
    store
        .finish_run(
            chained,
            &Finish {
                status: RunStatus::Succeeded,
                finished_at: t("2026-12-05T07:00:05Z"),
                error: None,
                log: LogSnapshot::default(),
            },
        )
        .await
        .unwrap();
    let running = s
        .add(RunSpec::manual("rotate", t("2026-12-05T11:59:00Z"), "alice").running())
        .await;
    store
        .heartbeat(
            running,
            t("2026-12-05T11:59:30Z"),
            Some(&LogSnapshot {
                text: "rotating…\n".into(),
                truncated: false,
            }),
        )
        .await
        .unwrap();
    store
        .request_run(&NewRequest {
            job: "rotate".into(),
            params: Default::default(),
            requested_by: "bob".into(),
            reason: Some(format!("because {SCRIPT}")),
            dry_run: false,
            requested_at: t("2026-12-05T11:58:00Z"),
            expires_at: Some(t("2026-12-05T13:00:00Z")),
            confirmed: false,
        })
        .await
        .unwrap();
    store
        .pause_job(&runbookd::model::Pause {
            job: "triage".into(),
            paused_by: "carol".into(),
            reason: Some(format!("noisy {IMG}")),
            paused_at: t("2026-12-05T10:00:00Z"),
        })
        .await
        .unwrap();
    store
        .queue_mail(&runbookd::model::QueuedMail {
            message_id: "<m1@runbookd>".into(),
            subject: format!("rotate failed {SCRIPT}"),
            recipients: vec!["ops@example.com".into()],
            raw: "Subject: x\r\n\r\nbody".into(),
            job: Some("rotate".into()),
            run_id: Some(failed),
            status: runbookd::model::MailStatus::Pending,
            attempts: 2,
            last_error: Some("connection refused".into()),
            created_at: t("2026-12-05T07:01:00Z"),
            next_attempt_at: t("2026-12-05T12:10:00Z"),
            sent_at: None,
        })
        .await
        .unwrap();
    Ids {
        checklist,
        failed,
        retry,
        chained,
        running,
    }
}

async fn start(extra_console: &str) -> Server {
    let db = TestDatabase::sqlite();
    let store = db.open().await;
    let ids = seed(&store).await;
    let config = Arc::new(config(extra_console));
    let clock = Arc::new(ManualClock::new(t(NOW)));
    let health = Arc::new(StoreHealth::default());
    let console = Console::new(
        config.clone(),
        store.clone(),
        health.clone(),
        clock.clone(),
        config.redactor.clone(),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let state = DaemonState::new(t(NOW), health);
    let (addr, _task) = runbookd::http::bind(
        ([127, 0, 0, 1], 0).into(),
        state,
        router(console),
        stop.clone(),
    )
    .await
    .unwrap();
    Server {
        addr,
        stop,
        store,
        ids,
        clock,
        _db: db,
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn send(srv: &Server, method: &str, path: &str, auth: Option<&str>) -> Got {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client().request(m, format!("http://{}{path}", srv.addr));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    Got {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap_or_default(),
    }
}

async fn get(srv: &Server, path: &str) -> Got {
    send(srv, "GET", path, None).await
}

/// Every console route, with real ids and names.
fn routes(ids: Ids) -> Vec<String> {
    vec![
        "/".into(),
        "/jobs/rotate".into(),
        "/jobs/daily-checklist".into(),
        "/jobs/daily-checklist/charts/duration".into(),
        "/jobs/daily-checklist/charts/checks/error-rate".into(),
        format!("/runs/{}", ids.failed),
        format!("/runs/{}", ids.running),
        format!("/runs/{}", ids.chained),
        "/queue".into(),
        "/report".into(),
        "/report?since=7d".into(),
        "/static/console.css".into(),
        "/static/console.js".into(),
    ]
}

#[tokio::test]
async fn every_page_answers_with_strict_headers_and_a_json_twin() {
    let srv = start("").await;
    for path in routes(srv.ids) {
        let g = get(&srv, &path).await;
        assert_eq!(g.status, 200, "{path}: {}", g.body);
        let csp = g.headers["content-security-policy"].to_str().unwrap();
        let want = if path.starts_with("/report") {
            REPORT_CSP
        } else {
            CSP
        };
        assert_eq!(csp, want, "{path}");
        assert!(!csp.contains("unsafe-eval") && !csp.contains("script-src 'unsafe-inline'"));
        assert_eq!(g.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(g.headers["referrer-policy"], "no-referrer", "{path}");
        if g.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
        {
            assert!(!g.body.contains("<script>"), "{path}: an inline script");
            assert!(
                !g.body.contains("http://")
                    || path.starts_with("/report")
                    || path.starts_with("/jobs/daily"),
                "{path}: an external reference"
            );
            if !path.starts_with("/report") {
                assert!(
                    !g.body.contains(" style="),
                    "{path}: inline style (the CSP refuses it)"
                );
            }
        }
    }
    for path in ["/", "/jobs/rotate", "/queue", "/report"] {
        let g = get(&srv, &format!("{path}?format=json")).await;
        assert_eq!(g.status, 200, "{path}");
        assert_eq!(g.headers["content-type"], "application/json");
        let _: serde_json::Value = serde_json::from_str(&g.body).unwrap();
    }
    // The run's JSON is `runbookd show --json`'s object, more keys beside.
    let g = get(&srv, &format!("/runs/{}?format=json", srv.ids.failed)).await;
    let v: serde_json::Value = serde_json::from_str(&g.body).unwrap();
    let run = srv.store.get_run(srv.ids.failed).await.unwrap().unwrap();
    let show = serde_json::to_value(&run).unwrap();
    for (k, want) in show.as_object().unwrap() {
        assert_eq!(&v[k], want, "key {k} of show --json");
    }
    assert_eq!(v["retries"][0]["id"], srv.ids.retry);
    assert_eq!(v["chained"][0]["id"], srv.ids.chained);
    assert_eq!(v["chained"][0]["job"], "triage");
    // And back: the chained run and the retry name this one.
    let c: serde_json::Value = serde_json::from_str(
        &get(&srv, &format!("/runs/{}?format=json", srv.ids.chained))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(c["chained_by"], srv.ids.failed);
    assert!(
        c["show_text"]
            .as_str()
            .unwrap()
            .contains("P1: snapshot slow")
    );
    let html = get(&srv, &format!("/runs/{}", srv.ids.retry)).await.body;
    assert!(
        html.contains(&format!("href=\"/runs/{}\"", srv.ids.failed)),
        "retry links its first attempt"
    );
    // A job's JSON holds its `jobs --json` row.
    let jobs: serde_json::Value =
        serde_json::from_str(&get(&srv, "/?format=json").await.body).unwrap();
    let rotate = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "rotate")
        .unwrap();
    for key in [
        "name",
        "kind",
        "schedule",
        "timezone",
        "concurrency",
        "suspended",
        "paused_by",
        "next_fire",
        "last_status",
        "last_run_id",
        "last_started_at",
        "last_dry_run",
        "pending_requests",
    ] {
        assert!(rotate.get(key).is_some(), "jobs --json key {key}");
    }
    assert_eq!(rotate["recent"].as_array().unwrap().len(), 9);
    assert_eq!(rotate["recent"][0]["id"], srv.ids.running, "newest first");
    assert_eq!(rotate["pending_requests"][0]["requested_by"], "bob");
    assert_eq!(jobs["checklist"]["run"]["id"], srv.ids.checklist);
    let triage = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "triage")
        .unwrap();
    assert_eq!(triage["paused_by"], "carol", "jobs --json's key");
    assert!(
        triage["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "runbookd resume triage")
    );
    assert!(
        triage["paused"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("noisy")
    );
    assert_eq!(jobs["mail"]["pending"], 1);
    let home = get(&srv, "/").await.body;
    assert!(
        home.contains("1 message(s) pending, not sent"),
        "the mail banner"
    );
    assert!(home.contains("paused</span> by carol"), "who paused it");
    // Each schedule in words (its zone's) beside its cron.
    assert!(
        home.contains("at 09:00 every day (Europe/London)"),
        "schedule in words"
    );
    assert!(home.contains("every 30 minutes (UTC)"), "schedule in words");
    assert!(home.contains("0 9 * * *"), "the cron beside the words");
    let queue: serde_json::Value =
        serde_json::from_str(&get(&srv, "/queue?format=json").await.body).unwrap();
    assert_eq!(queue["pending_mail"][0]["message_id"], "<m1@runbookd>");
    assert!(
        queue["pending_mail"][0].get("raw").is_none(),
        "the message itself is not shown"
    );
    assert_eq!(queue["pending_requests"][0]["requested_by"], "bob");
    assert_eq!(jobs["checklist"]["run"]["checks"][0]["check"], "error-rate");
    // The charts are PNGs.
    let r = client()
        .get(format!(
            "http://{}/jobs/daily-checklist/charts/checks/error-rate",
            srv.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");
    assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG"));
}

#[tokio::test]
async fn a_running_run_is_followed_by_the_served_script() {
    let srv = start("").await;
    let html = get(&srv, &format!("/runs/{}", srv.ids.running)).await.body;
    assert!(
        html.contains("<script src=\"/static/console.js\" defer></script>"),
        "{html}"
    );
    assert!(html.contains("data-follow=\"true\""));
    assert!(
        html.contains("runbookd cancel"),
        "the command to copy, not a button"
    );
    assert!(
        !html.contains("<form method=\"post\"") && !html.contains("<button")
            || html.contains("type=\"submit\">Filter")
    );
    let done = get(&srv, &format!("/runs/{}", srv.ids.failed)).await.body;
    assert!(!done.contains("console.js"), "an ended run needs no script");
}

#[tokio::test]
async fn only_get_and_head_are_answered_and_nothing_changes() {
    let srv = start("").await;
    let before = snapshot(srv.store.as_ref()).await;
    for path in routes(srv.ids) {
        for m in [
            "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND",
        ] {
            let g = send(&srv, m, &path, None).await;
            assert_eq!(g.status, 405, "{m} {path}");
            assert!(
                g.headers.contains_key("content-security-policy"),
                "{m} {path}"
            );
        }
        let h = send(&srv, "HEAD", &path, None).await;
        assert_eq!(h.status, 200, "HEAD {path}");
        assert!(h.body.is_empty());
    }
    // Crafted URLs: unknown pages are 404 for every method, never a write.
    for path in [
        "/runs/1/cancel",
        "/jobs/rotate/trigger",
        "/api/runs",
        "/jobs/rotate/pause",
    ] {
        for m in ["GET", "POST"] {
            let g = send(&srv, m, path, None).await;
            assert_eq!(g.status, 404, "{m} {path}");
        }
    }
    assert_eq!(
        snapshot(srv.store.as_ref()).await,
        before,
        "the history changed"
    );
}

/// Everything the history holds that a write could change.
async fn snapshot(s: &dyn HistoryStore) -> String {
    let runs = s
        .list_runs(&RunFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut whole = Vec::new();
    for r in &runs {
        whole.push(s.get_run(r.id).await.unwrap());
    }
    let requests = s
        .list_requests(&RequestFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    format!(
        "{}\n{}\n{:?}\n{:?}\n{:?}",
        serde_json::to_string(&whole).unwrap(),
        serde_json::to_string(&requests).unwrap(),
        s.paused_jobs().await.unwrap(),
        s.mail_backlog().await.unwrap(),
        s.notify_states().await.unwrap(),
    )
}

#[tokio::test]
async fn bad_input_is_a_clear_400_and_unknown_things_404() {
    let srv = start("").await;
    for (path, status, says) in [
        ("/jobs/rotate?status=nope", 400, "unknown RunStatus `nope`"),
        ("/jobs/rotate?trigger=cron", 400, "unknown Trigger `cron`"),
        ("/jobs/rotate?limit=0", 400, "limit `0`: from 1 to 200"),
        ("/jobs/rotate?limit=99999999999999", 400, "from 1 to 200"),
        ("/jobs/rotate?before=abc", 400, "before `abc`"),
        ("/jobs/rotate?before=-1", 400, "before `-1`"),
        ("/jobs/rotate?sort=asc", 400, "unknown parameter `sort`"),
        (
            "/jobs/rotate?status=failed&status=running",
            400,
            "given twice",
        ),
        ("/?format=xml", 400, "format `xml`"),
        ("/report?since=soon", 400, "neither a duration"),
        ("/report?since=99999d", 400, "at most 400 days"),
        ("/jobs/nope", 404, "no job named `nope`"),
        ("/jobs/nope/charts/duration", 404, "no job named"),
        ("/jobs/rotate/charts/checks/none", 404, "no check `none`"),
        ("/runs/abc", 404, "not a run id"),
        ("/runs/99999", 404, "no run 99999"),
        ("/nowhere", 404, "no page at /nowhere"),
    ] {
        let g = get(&srv, path).await;
        assert_eq!(g.status, status, "{path}: {}", g.body);
        let text = g.body.replace("&#96;", "`");
        assert!(text.contains(says), "{path}: {}", g.body);
        assert_eq!(g.headers["content-security-policy"], CSP);
    }
}

#[tokio::test]
async fn a_json_twins_errors_are_json() {
    let srv = start("").await;
    for (path, status) in [
        ("/jobs/rotate?limit=0&format=json", 400),
        ("/jobs/nope?format=json", 404),
        ("/runs/99999?format=json", 404),
        ("/report?since=soon&format=json", 400),
    ] {
        let g = get(&srv, path).await;
        assert_eq!(g.status, status, "{path}");
        assert_eq!(g.headers["content-type"], "application/json", "{path}");
        let v: serde_json::Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(v["status"], status);
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn runs_page_by_id_and_filter() {
    let srv = start("").await;
    let page: serde_json::Value =
        serde_json::from_str(&get(&srv, "/jobs/rotate?limit=3&format=json").await.body).unwrap();
    let ids: Vec<i64> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let next = page["next_before"].as_i64().unwrap();
    assert_eq!(next, ids[2]);
    let page2: serde_json::Value = serde_json::from_str(
        &get(
            &srv,
            &format!("/jobs/rotate?limit=3&before={next}&format=json"),
        )
        .await
        .body,
    )
    .unwrap();
    assert!(
        page2["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"].as_i64().unwrap() < next)
    );
    let failed: serde_json::Value = serde_json::from_str(
        &get(&srv, "/jobs/rotate?status=failed&format=json")
            .await
            .body,
    )
    .unwrap();
    let f = failed["runs"].as_array().unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["id"], srv.ids.failed);
    let html = get(&srv, "/jobs/rotate?limit=3").await.body;
    assert!(
        html.contains(&format!("before={next}")),
        "a link to the next page"
    );
}

#[tokio::test]
async fn markup_in_the_history_and_the_file_is_shown_as_text() {
    let srv = start("").await;
    let mut pages = vec![
        get(&srv, "/").await.body,
        get(&srv, "/jobs/daily-checklist").await.body,
        get(&srv, "/jobs/rotate").await.body,
        get(&srv, &format!("/runs/{}", srv.ids.checklist))
            .await
            .body,
        get(&srv, &format!("/runs/{}", srv.ids.failed)).await.body,
        get(&srv, &format!("/runs/{}", srv.ids.retry)).await.body,
        get(&srv, "/queue").await.body,
    ];
    pages.push(get(&srv, "/report?since=7d").await.body);
    for (i, html) in pages.iter().enumerate() {
        assert!(!html.contains(SCRIPT), "page {i}: raw <script>");
        assert!(!html.contains("<img src=x"), "page {i}: raw <img>");
        assert!(
            !html.contains("onerror=alert(2)>"),
            "page {i}: an attribute broken out of"
        );
    }
    // Shown, escaped: the description, check name, value, reason, error,
    // step detail, payload, log, request reason.
    let esc_script = "&lt;script&gt;alert(1)&lt;/script&gt;";
    let esc_img = "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;";
    assert!(
        pages[0].contains(esc_script) && pages[0].contains(esc_img),
        "jobs page"
    );
    assert!(
        pages[3].contains(&format!("evil {esc_script}")),
        "check name"
    );
    assert!(
        pages[3].contains(&format!("reason {esc_img}")),
        "check reason"
    );
    assert!(pages[4].contains(&format!("boom {esc_script}")), "error");
    assert!(pages[4].contains(&format!("made {esc_img}")), "step detail");
    assert!(pages[5].contains(esc_script), "log");
    assert!(
        pages[6].contains(&format!("because {esc_script}")),
        "request reason"
    );
}

#[tokio::test]
async fn a_jobs_config_is_shown_with_its_secrets_masked() {
    let srv = start("").await;
    let html = get(&srv, "/jobs/rotate").await.body;
    assert!(
        html.contains("API_PASSWORD: &quot;[REDACTED]&quot;"),
        "{html}"
    );
    assert!(!html.contains("pw-in-env-9876"));
    assert!(!html.contains("abc-literal-secret-123"));
    assert!(
        html.contains("schedule: &quot;*/30 * * * *&quot;"),
        "the file's own text"
    );
    for path in ["/", "/queue", "/report", "/?format=json"] {
        assert!(
            !get(&srv, path).await.body.contains("hunter2-db-pass"),
            "{path}"
        );
    }
}

fn secret_file(dir: &tempfile::TempDir, name: &str, body: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[tokio::test]
async fn a_bearer_token_guards_the_console_not_the_probes() {
    let dir = tempfile::tempdir().unwrap();
    let f = secret_file(&dir, "token", "s3cr3t-console-token\n");
    let srv = start(&format!("console:\n  bearer_token_file: {f}\n")).await;
    for (auth, want) in [
        (None, 401),
        (Some("Bearer wrong"), 401),
        (Some("Bearer s3cr3t-console-token-and-more"), 401),
        (Some("Basic czNjcjN0LWNvbnNvbGUtdG9rZW4="), 401),
        (Some("Bearer s3cr3t-console-token"), 200),
    ] {
        for path in ["/", "/runs/1", "/static/console.css", "/nowhere"] {
            let g = send(&srv, "GET", path, auth).await;
            let want = if want == 200 && path == "/nowhere" {
                404
            } else {
                want
            };
            assert_eq!(g.status, want, "{auth:?} {path}");
            if want == 401 {
                assert_eq!(g.headers["www-authenticate"], "Bearer realm=\"runbookd\"");
                assert!(g.headers.contains_key("content-security-policy"));
            }
            assert!(
                !g.body.contains("s3cr3t-console-token"),
                "the token in a response"
            );
        }
    }
    // kubelet and Prometheus ask without it.
    for path in ["/healthz", "/metrics"] {
        let g = get(&srv, path).await;
        assert_ne!(g.status, 401, "{path}");
    }
}

#[tokio::test]
async fn basic_auth_guards_the_console_and_never_shows_the_password() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let f = secret_file(&dir, "basic", "ops:correct-horse-battery\n");
    let srv = start(&format!("console:\n  basic_auth_file: {f}\n")).await;
    let b = |s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    for (auth, want) in [
        (None, 401),
        (Some(b("ops:wrong")), 401),
        (Some(b("other:correct-horse-battery")), 401),
        (Some("Bearer correct-horse-battery".to_string()), 401),
        (Some(b("ops:correct-horse-battery")), 200),
    ] {
        let g = send(&srv, "GET", "/queue", auth.as_deref()).await;
        assert_eq!(g.status, want, "{auth:?}");
        if want == 401 {
            assert_eq!(
                g.headers["www-authenticate"],
                "Basic realm=\"runbookd\", charset=\"UTF-8\""
            );
        }
        assert!(!g.body.contains("correct-horse-battery"));
    }
    assert_eq!(
        get(&srv, "/healthz").await.status,
        503,
        "a probe is answered, not refused (no tick yet: 503, never 401)"
    );
}

#[tokio::test]
async fn the_credential_is_known_to_the_redactor() {
    let dir = tempfile::tempdir().unwrap();
    let f = secret_file(&dir, "token", "tok-0123456789-abcdef\n");
    let config = Arc::new(config(&format!("console:\n  bearer_token_file: {f}\n")));
    let redactor = config.redactor.clone();
    let db = TestDatabase::sqlite();
    Console::new(
        config,
        db.open().await,
        Arc::default(),
        Arc::new(ManualClock::new(t(NOW))),
        redactor.clone(),
    )
    .unwrap();
    let line = redactor.redact("auth header was tok-0123456789-abcdef");
    assert!(!line.contains("tok-0123456789-abcdef"), "{line}");
}

#[tokio::test]
async fn console_config_is_strict() {
    let both = "console:\n  bearer_token_file: /a\n  basic_auth_file: /b\n";
    let e = runbookd::jobs::load_str(std::path::Path::new("jobs.yaml"), &yaml(both), &|_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not both"), "{e}");
    let typo = "console:\n  bearer_file: /a\n";
    let e = runbookd::jobs::load_str(std::path::Path::new("jobs.yaml"), &yaml(typo), &|_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bearer_file"), "{e}");
    // A file that cannot be read fails at start, naming it.
    let c = Arc::new(config(
        "console:\n  basic_auth_file: /nonexistent/console-basic\n",
    ));
    let db = TestDatabase::sqlite();
    let e = Console::new(
        c.clone(),
        db.open().await,
        Arc::default(),
        Arc::new(ManualClock::new(t(NOW))),
        c.redactor.clone(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/nonexistent/console-basic"), "{e}");
    let off = config("console:\n  enabled: false\n");
    assert!(!off.console.enabled);
    assert!(config("").console.enabled, "on by default");
}

/// Postgres behind a proxy the test cuts: the jobs page still answers,
/// from the file, with the banner; a page that needs the history says the
/// store is down at once (no store call while it is down).
#[cfg(feature = "integration")]
#[tokio::test]
async fn a_down_store_is_a_banner_not_a_hang() {
    let db = TestDatabase::postgres().await;
    let url = url::Url::parse(&db.url).unwrap();
    let upstream: SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .unwrap();
    let proxy = runbookd::testkit::proxy::Proxy::start(upstream);
    let mut via = url.clone();
    via.set_port(Some(proxy.addr.port())).unwrap();
    let inner = runbookd::store::open(via.as_str()).await.unwrap();
    let watched = runbookd::store::WatchedStore::new(inner);
    let health = watched.health().clone();
    let store: Arc<dyn HistoryStore> = Arc::new(watched);
    let config = Arc::new(config(""));
    let clock = Arc::new(ManualClock::new(t(NOW)));
    let console = Console::new(
        config.clone(),
        store.clone(),
        health.clone(),
        clock.clone(),
        config.redactor.clone(),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let (addr, _task) = runbookd::http::bind(
        ([127, 0, 0, 1], 0).into(),
        DaemonState::new(t(NOW), health.clone()),
        router(console),
        stop.clone(),
    )
    .await
    .unwrap();
    let srv = Server {
        clock,
        addr,
        stop,
        store: store.clone(),
        ids: Ids {
            checklist: 0,
            failed: 0,
            retry: 0,
            chained: 0,
            running: 0,
        },
        _db: TestDatabase::sqlite(),
    };
    assert_eq!(get(&srv, "/").await.status, 200);
    proxy.cut();
    // The daemon's own calls find it down; one is enough.
    let _ = store.ping().await;
    assert!(!health.is_up(), "the cut store still answers");
    let began = std::time::Instant::now();
    let g = get(&srv, "/").await;
    assert_eq!(g.status, 200);
    assert!(g.body.contains("The history store is down"), "{}", g.body);
    assert!(g.body.contains("rotate"), "the jobs from the file");
    assert!(
        !g.body
            .contains(&url.password().unwrap_or("\u{0}").to_string())
            || url.password().is_none()
    );
    let j: serde_json::Value =
        serde_json::from_str(&get(&srv, "/?format=json").await.body).unwrap();
    assert_eq!(j["store"]["up"], false);
    let g = get(&srv, "/jobs/rotate").await;
    assert_eq!(g.status, 503, "{}", g.body);
    assert!(g.body.contains("history store is down"));
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "pages waited on the store: {:?}",
        began.elapsed()
    );
    proxy.restore();
    drop(db);
}

/// What headless Chromium said while loading `url`: every console line
/// (errors, CSP violations, blocked or failed loads all land there), and
/// the screenshot it took. Timers run (virtual time), so a running run's
/// script polls too.
#[cfg(feature = "integration")]
fn chromium(url: &str, png: &std::path::Path, height: u32) -> Vec<String> {
    let chromium = std::env::var("RUNBOOKD_TEST_CHROMIUM").unwrap_or_else(|_| {
        panic!("RUNBOOKD_TEST_CHROMIUM is not set: run the tests with scripts/test.sh, which installs Debian's chromium")
    });
    let profile = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--window-size=1280,{height}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("chromium did not finish {url} within 90s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let err = reader.join().unwrap();
    assert!(
        status.success(),
        "chromium failed on {url}: {status}\n{err}"
    );
    assert!(png.exists(), "no screenshot of {url}\n{err}");
    err.lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

/// The check itself can fail: a page with an inline script and an inline
/// style under the console's CSP is reported.
#[cfg(feature = "integration")]
#[tokio::test(flavor = "multi_thread")]
async fn the_browser_check_sees_a_blocked_inline_script() {
    use axum::http::header;
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            (
                [
                    (header::CONTENT_SECURITY_POLICY, CSP),
                    (header::CONTENT_TYPE, "text/html"),
                ],
                "<!DOCTYPE html><html><body><p style=\"color:red\">x</p><script>document.title='ran'</script></body></html>",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("bad.png");
    let url = format!("http://{addr}/");
    let said = tokio::task::spawn_blocking(move || chromium(&url, &png, 400))
        .await
        .unwrap();
    server.abort();
    assert!(
        said.iter().any(|l| l.contains("inline script")),
        "the blocked inline script went unseen: {said:?}"
    );
    assert!(
        said.iter().any(|l| l.contains("inline style")),
        "the blocked inline style went unseen: {said:?}"
    );
}

/// Every page in headless Chromium: no console line at all (no error, no
/// CSP violation, no failed load), and a screenshot; with
/// RUNBOOKD_SCREENSHOT_DIR set, the screenshots are kept there as
/// console-*.png (the README shows them).
#[cfg(feature = "integration")]
#[tokio::test(flavor = "multi_thread")]
async fn every_page_loads_in_chromium_with_nothing_blocked() {
    let srv = start("").await;
    let ids = srv.ids;
    let pages = [
        ("jobs", "/".to_string(), 1000),
        ("job", "/jobs/daily-checklist".to_string(), 1900),
        (
            "job-filtered",
            "/jobs/rotate?status=failed".to_string(),
            1400,
        ),
        ("run", format!("/runs/{}", ids.failed), 1200),
        ("run-running", format!("/runs/{}", ids.running), 900),
        ("run-triage", format!("/runs/{}", ids.chained), 1100),
        ("queue", "/queue".to_string(), 900),
        ("report", "/report?since=7d".to_string(), 2000),
        ("not-found", "/runs/99999".to_string(), 500),
    ];
    let dir = tempfile::tempdir().unwrap();
    let keep = std::env::var("RUNBOOKD_SCREENSHOT_DIR").ok();
    for (name, path, height) in pages {
        let want = if name == "not-found" { 404 } else { 200 };
        assert_eq!(get(&srv, &path).await.status, want, "{path}");
        let png = dir.path().join(format!("console-{name}.png"));
        let url = format!("http://{}{path}", srv.addr);
        let p = png.clone();
        let said = tokio::task::spawn_blocking(move || chromium(&url, &p, height))
            .await
            .unwrap();
        assert!(said.is_empty(), "{path}: the browser said {said:#?}");
        if let Some(d) = &keep {
            std::fs::copy(
                &png,
                std::path::Path::new(d).join(format!("console-{name}.png")),
            )
            .unwrap();
        }
    }
}

/// The shipped binary: `serve` puts the console beside the probes, asks
/// for the credential on the console only, and refuses to start on a
/// credential file it cannot read, naming it.
#[test]
fn runbookd_serve_serves_the_console_beside_the_probes() {
    use runbookd::testkit::binary::{Workdir, eventually, get as raw_get};
    let dir = tempfile::tempdir().unwrap();
    let f = secret_file(&dir, "basic", "ops:pw-0f9e8d\n");
    let jobs = format!(
        "console:\n  basic_auth_file: {f}\njobs:\n  hello:\n    kind: command\n    argv: [\"true\"]\n"
    );
    let w = Workdir::new(env!("CARGO_BIN_EXE_runbookd"), &jobs);
    let d = w.serve();
    let addr = d.addr();
    eventually(Duration::from_secs(20), "healthz answers", || {
        (raw_get(addr, "/healthz")?.0 == 200).then_some(())
    });
    assert_eq!(raw_get(addr, "/").unwrap().0, 401, "the console asks");
    assert_eq!(
        raw_get(addr, "/metrics").unwrap().0,
        200,
        "Prometheus does not"
    );
    assert!(!d.log().contains("pw-0f9e8d"));
    drop(d);
    let missing = dir.path().join("gone");
    let bad = format!(
        "console:\n  bearer_token_file: {}\njobs:\n  hello:\n    kind: command\n    argv: [\"true\"]\n",
        missing.display()
    );
    let w = Workdir::new(env!("CARGO_BIN_EXE_runbookd"), &bad);
    let out = w.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

/// The DOM headless Chromium ends with after `url` loaded and its timers
/// ran (virtual time), and its console lines.
#[cfg(feature = "integration")]
fn chromium_dom(url: &str) -> (String, Vec<String>) {
    let chromium = std::env::var("RUNBOOKD_TEST_CHROMIUM").unwrap_or_else(|_| {
        panic!("RUNBOOKD_TEST_CHROMIUM is not set: run the tests with scripts/test.sh, which installs Debian's chromium")
    });
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=6000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed on {url}");
    let err = String::from_utf8_lossy(&out.stderr);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err.lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_string)
            .collect(),
    )
}

/// A running run's page follows its log: the served script, under the
/// console's CSP, polls the run's JSON and puts the new log in the page.
/// The page is the console's own, its JSON source pointed at a route that
/// answers a log the page was not rendered with.
#[cfg(feature = "integration")]
#[tokio::test(flavor = "multi_thread")]
async fn the_served_script_follows_a_running_log_in_chromium() {
    use axum::http::header;
    let srv = start("").await;
    let page = get(&srv, &format!("/runs/{}", srv.ids.running)).await.body;
    let src = format!("data-src=\"/runs/{}?format=json\"", srv.ids.running);
    assert!(page.contains(&src), "{page}");
    let page = page.replace(&src, "data-src=\"/follow.json\"");
    let upstream = srv.addr;
    let app = axum::Router::new()
        .route(
            "/page",
            axum::routing::get(move || {
                let page = page.clone();
                async move {
                    (
                        [
                            (header::CONTENT_SECURITY_POLICY, CSP),
                            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        ],
                        page,
                    )
                }
            }),
        )
        .route(
            "/follow.json",
            axum::routing::get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"status":"running","log":"rotating…\nsaved at the next heartbeat\n"}"#,
                )
            }),
        )
        .route(
            "/static/{file}",
            axum::routing::get(
                move |axum::extract::Path(file): axum::extract::Path<String>| async move {
                    let r = client()
                        .get(format!("http://{upstream}/static/{file}"))
                        .send()
                        .await
                        .unwrap();
                    let kind = r.headers()["content-type"].clone();
                    ([(header::CONTENT_TYPE, kind)], r.text().await.unwrap())
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}/page");
    let (dom, said) = tokio::task::spawn_blocking(move || chromium_dom(&url))
        .await
        .unwrap();
    server.abort();
    assert!(said.is_empty(), "the browser said {said:#?}");
    assert!(
        dom.contains("saved at the next heartbeat"),
        "the log was not followed:\n{dom}"
    );
}

/// `/report` answers from the report it built for 30 s (saying its `Age`),
/// then builds it again: a run added meanwhile shows only after.
#[tokio::test]
async fn the_report_page_is_kept_thirty_seconds() {
    let srv = start("").await;
    let first = client()
        .get(format!("http://{}/report", srv.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["age"], "0");
    let first = first.text().await.unwrap();
    Seed::new(srv.store.clone())
        .add(
            RunSpec::scheduled("rotate", t("2026-12-05T11:30:00Z"))
                .failed(RunStatus::Failed, "kept-report-marker failure"),
        )
        .await;
    srv.clock.advance(chrono::Duration::seconds(29));
    let kept = client()
        .get(format!("http://{}/report", srv.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["age"], "29");
    assert_eq!(kept.text().await.unwrap(), first, "the kept report");
    // JSON is its own report.
    let json = get(&srv, "/report?format=json").await;
    assert!(json.body.contains("kept-report-marker"), "{}", json.body);
    srv.clock.advance(chrono::Duration::seconds(2));
    let fresh = get(&srv, "/report").await;
    assert!(
        fresh.body.contains("kept-report-marker"),
        "a new report after 30 s"
    );
}
