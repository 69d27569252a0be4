//! Mail end to end against a real SMTP server (aiosmtpd writing a Maildir,
//! started per test by `scripts/smtp_fixture.py`): the report as it
//! arrives, AUTH (530, 535), STARTTLS and TLS with a test CA, a server that
//! is down and then up (sent exactly once, by the daemon too, across two
//! replicas), and failure notifications. Needs `--features integration`
//! and the services `scripts/test.sh` prepares.
#![cfg(feature = "integration")]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailparse::{MailHeaderMap, ParsedMail};
use runbookd::adapters::Adapters;
use runbookd::adapters::mail::{self, Draft, Email, Mailer, Smtp};
use runbookd::clock::ManualClock;
use runbookd::config::Config;
use runbookd::delivery::{Delivered, Postman};
use runbookd::model::{CheckResult, CheckStatus, MailStatus, QueuedMail, RunStatus};
use runbookd::runner::{RunRequest, Runner, Stop};
use runbookd::store::HistoryStore;
use runbookd::testkit::TestDatabase;
use runbookd::testkit::binary::{Workdir, eventually, free_port, get, metric};
use runbookd::testkit::history::{RunSpec, Seed};
use runbookd::testkit::smtp::{SmtpOptions, SmtpServer, test_ca};

const BIN: &str = env!("CARGO_BIN_EXE_runbookd");

fn config(yaml: &str) -> Config {
    runbookd::jobs::load_str(std::path::Path::new("jobs.yaml"), yaml, &|_| None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn runner(store: Arc<dyn HistoryStore>, config: &Config) -> Runner {
    let m = &config.mail;
    let mailer = mail::mailer(
        m.smtp_url.as_ref().map(|u| u.expose()),
        m.ca_file.as_deref(),
        &m.outbox,
        Duration::from_secs(10),
    )
    .unwrap();
    Runner::builder(store, Arc::new(Adapters::real().with_mail(mailer)))
        .config(config)
        .build()
}

async fn run(runner: &Runner, config: &Config, job: &str) -> runbookd::model::Run {
    let job = config.job(job).unwrap().clone();
    let mut req = RunRequest {
        triggered_by: "sre".into(),
        ..Default::default()
    };
    let id = runner
        .admit(&job, &mut req)
        .await
        .unwrap()
        .started()
        .unwrap();
    let ended = tokio::time::timeout(
        Duration::from_secs(90),
        runner.execute(&job, &req, id, &Stop::new()),
    )
    .await
    .expect("the run ends within 90 s");
    runner.store().get_run(ended.id).await.unwrap().unwrap()
}

fn parse(raw: &[u8]) -> ParsedMail<'_> {
    mailparse::parse_mail(raw).expect("a parseable message")
}

fn header(m: &ParsedMail<'_>, name: &str) -> String {
    m.headers.get_first_value(name).unwrap_or_default()
}

fn draft(subject: &str) -> Draft {
    Draft {
        from: "runbookd <runbookd@flexoraa.com>".into(),
        to: vec!["oncall@flexoraa.com".into()],
        cc: Vec::new(),
        subject: subject.into(),
        text: "All clear.\n".into(),
        html: None,
        images: Vec::new(),
    }
}

fn email(subject: &str) -> Email {
    draft(subject).compose(&mail::new_message_id()).unwrap()
}

async fn postman(mailer: Arc<dyn Mailer>, clock: ManualClock) -> (TestDatabase, Postman) {
    let db = TestDatabase::sqlite();
    let store = db.open().await;
    let p = Postman::new(store, mailer, Arc::new(clock)).backoff(Duration::from_millis(10));
    (db, p)
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

#[tokio::test]
async fn the_report_arrives_with_headers_both_parts_its_charts_and_every_recipient() {
    let server = SmtpServer::start(SmtpOptions::default());
    let yaml = format!(
        r#"
mail:
  smtp_url: "smtp://127.0.0.1:{}?tls=none"
  from: "runbookd <runbookd@flexoraa.com>"
  to: "oncall@flexoraa.com, sre-lead@flexoraa.com"
  cc: cto@flexoraa.com
jobs:
  daily-checklist:
    kind: checklist
    checks:
      - {{name: error-rate-24h, kind: prometheus, url: "http://127.0.0.1:9", query: x, fail_if: ">= 0.01"}}
  morning-report:
    kind: report
    title: Flexoraa
    checklist: daily-checklist
    charts:
      - {{job: daily-checklist, check: error-rate-24h, title: Error rate}}
"#,
        server.port
    );
    let config = config(&yaml);
    let db = TestDatabase::sqlite();
    let store = db.open().await;
    let seed = Seed::new(store.clone());
    let now = Utc::now();
    for day in (0..7).rev() {
        seed.add(
            RunSpec::manual(
                "daily-checklist",
                now - chrono::Duration::days(day) - chrono::Duration::minutes(5),
                "sre",
            )
            .check(
                CheckResult::new("error-rate-24h", CheckStatus::Pass, "ok")
                    .number(0.001 * day as f64)
                    .threshold("fail if >= 0.01"),
            ),
        )
        .await;
    }
    let runner = runner(store.clone(), &config);
    let r = run(&runner, &config, "morning-report").await;
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.error);
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    let m = parse(&msgs[0]);
    assert_eq!(
        header(&m, "Subject"),
        "[runbookd] Flexoraa morning report: all clear"
    );
    assert_eq!(header(&m, "From"), "runbookd <runbookd@flexoraa.com>");
    assert_eq!(
        header(&m, "To"),
        "oncall@flexoraa.com, sre-lead@flexoraa.com"
    );
    assert_eq!(header(&m, "Cc"), "cto@flexoraa.com");
    assert_eq!(
        header(&m, "X-Envelope-To"),
        "oncall@flexoraa.com, sre-lead@flexoraa.com, cto@flexoraa.com"
    );
    // The Message-ID is the one the run recorded as sent.
    let sent = r.steps.iter().find(|s| s.name == "send-report").unwrap();
    let id = sent.payload.as_ref().unwrap()["message_id"]
        .as_str()
        .unwrap();
    assert_eq!(header(&m, "Message-ID"), id);
    assert_eq!(
        runner.store().mail(id).await.unwrap().unwrap().status,
        MailStatus::Sent
    );
    // multipart/alternative: the text first, then the HTML with its images.
    assert_eq!(m.ctype.mimetype, "multipart/alternative");
    assert_eq!(m.subparts.len(), 2);
    let text = m.subparts[0].get_body().unwrap();
    assert_eq!(m.subparts[0].ctype.mimetype, "text/plain");
    assert!(text.contains("Flexoraa morning report"), "{text}");
    assert!(text.contains("error-rate-24h"), "{text}");
    assert!(!text.contains("<td"), "the text part is not HTML");
    let related = &m.subparts[1];
    assert_eq!(related.ctype.mimetype, "multipart/related");
    let html = related.subparts[0].get_body().unwrap();
    assert_eq!(related.subparts[0].ctype.mimetype, "text/html");
    assert!(html.contains("style=\""), "styled inline");
    assert!(!html.contains("<style"), "no style sheet: clients drop it");
    let image = &related.subparts[1];
    assert_eq!(image.ctype.mimetype, "image/png");
    let cid = header(image, "Content-ID");
    assert_eq!(cid, "<chart-1>");
    assert!(html.contains("src=\"cid:chart-1\""));
    assert_eq!(&image.get_body_raw().unwrap()[..4], b"\x89PNG");
}

#[tokio::test]
async fn auth_required_is_530_a_wrong_password_535_and_neither_is_printed() {
    let server = SmtpServer::start(SmtpOptions::default().auth("runbookd", "s3cret-Pa55"));
    let clock = ManualClock::new(t("2026-11-30T03:45:00Z"));
    let timeout = Duration::from_secs(10);

    let none = Smtp::new(
        &format!("smtp://127.0.0.1:{}?tls=none", server.port),
        None,
        timeout,
    )
    .unwrap();
    let (_db, p) = postman(Arc::new(none), clock.clone()).await;
    let e = email("no auth");
    match p.deliver(&e, None, None).await.unwrap() {
        Delivered::Pending { error, .. } => assert!(error.contains("530"), "{error}"),
        other => panic!("sent without auth: {other:?}"),
    }

    let wrong = Smtp::new(
        &format!(
            "smtp://runbookd:not-the-Pa55@127.0.0.1:{}?tls=none",
            server.port
        ),
        None,
        timeout,
    )
    .unwrap();
    let (db, p) = postman(Arc::new(wrong), clock.clone()).await;
    let e = email("wrong password");
    match p.deliver(&e, None, None).await.unwrap() {
        Delivered::Pending { error, .. } => {
            assert!(error.contains("535"), "{error}");
            assert!(!error.contains("not-the-Pa55"), "{error}");
        }
        other => panic!("sent with a wrong password: {other:?}"),
    }
    let kept = db.open().await.mail(&e.message_id).await.unwrap().unwrap();
    assert_eq!(kept.attempts, 3, "tried three times");
    assert!(!format!("{kept:?}").contains("not-the-Pa55"));

    let right = Smtp::new(
        &format!(
            "smtp://runbookd:s3cret-Pa55@127.0.0.1:{}?tls=none",
            server.port
        ),
        None,
        timeout,
    )
    .unwrap();
    assert!(
        !right.describe().contains("s3cret-Pa55"),
        "{}",
        right.describe()
    );
    let (_db, p) = postman(Arc::new(right), clock).await;
    assert!(matches!(
        p.deliver(&email("right"), None, None).await.unwrap(),
        Delivered::Sent(_)
    ));
    let got = server.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(header(&parse(&got[0]), "Subject"), "right");
}

/// `runbookd run morning-report` whose mail the server refuses for good
/// (535): the run succeeded (the report is made and kept), and its last
/// line says the mail is pending, why, and how it will go, since no daemon
/// may be running to resend it.
#[test]
fn a_report_run_by_hand_whose_mail_is_pending_says_so_on_its_last_line() {
    let server = SmtpServer::start(SmtpOptions::default().auth("runbookd", "s3cret-Pa55"));
    let yaml = format!(
        "mail:\n  smtp_url: \"smtp://runbookd:not-the-Pa55@127.0.0.1:{}?tls=none\"\n  to: oncall@flexoraa.com\njobs:\n  morning-report:\n    kind: report\n    title: Flexoraa\n",
        server.port
    );
    let w = Workdir::new(BIN, &yaml);
    let out = w.run(&["run", "morning-report"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the run succeeded: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        last.starts_with("run 1 of `morning-report` succeeded"),
        "{last}"
    );
    for want in [
        "its mail is pending, not sent",
        "535",
        "a running daemon (`runbookd serve`) resends it from ",
        "`runbookd report --send`",
    ] {
        assert!(last.contains(want), "`{want}` in: {last}");
    }
    assert!(!last.contains("not-the-Pa55"), "{last}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn starttls_and_tls_trust_a_private_ca_and_only_it() {
    let timeout = Duration::from_secs(10);
    let clock = ManualClock::new(Utc::now());
    let ca = test_ca();

    let server = SmtpServer::start(SmtpOptions::default().starttls().auth("runbookd", "pw"));
    let url = format!("smtp://runbookd:pw@127.0.0.1:{}", server.port);
    let trusted = Smtp::new(&url, Some(&ca), timeout).unwrap();
    let (_db, p) = postman(Arc::new(trusted), clock.clone()).await;
    assert!(matches!(
        p.deliver(&email("over STARTTLS"), None, None)
            .await
            .unwrap(),
        Delivered::Sent(_)
    ));
    assert_eq!(server.messages().len(), 1);
    // The same server without the CA: the certificate is refused, loudly.
    let untrusted = Smtp::new(&url, None, timeout).unwrap();
    let err = untrusted
        .send(&email("refused"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // And a required STARTTLS is never skipped for a server that wants it
    // but is reached in plain text: tls=none is refused by the server.
    let plain = Smtp::new(&format!("{url}?tls=none"), None, timeout).unwrap();
    assert!(plain.send(&email("plain")).await.is_err());
    assert_eq!(server.messages().len(), 1);

    let tls = SmtpServer::start(SmtpOptions::default().smtps());
    let smtps = Smtp::new(
        &format!("smtps://127.0.0.1:{}", tls.port),
        Some(&ca),
        timeout,
    )
    .unwrap();
    let (_db, p) = postman(Arc::new(smtps), clock).await;
    assert!(matches!(
        p.deliver(&email("over TLS"), None, None).await.unwrap(),
        Delivered::Sent(_)
    ));
    assert_eq!(header(&parse(&tls.messages()[0]), "Subject"), "over TLS");
}

#[tokio::test]
async fn a_server_down_then_up_gets_the_message_exactly_once() {
    let port = free_port();
    let clock = ManualClock::new(t("2026-11-30T03:45:00Z"));
    let smtp = Smtp::new(
        &format!("smtp://127.0.0.1:{port}?tls=none"),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    let (_db, p) = postman(Arc::new(smtp), clock.clone()).await;
    let e = email("while the server was down");
    let Delivered::Pending { retry_at, error } = p
        .deliver(&e, Some("morning-report"), Some(7))
        .await
        .unwrap()
    else {
        panic!("no server, yet sent");
    };
    assert!(
        error.contains(&port.to_string()),
        "the error names the server: {error}"
    );
    assert_eq!(retry_at, t("2026-11-30T03:46:00Z"));

    let server = SmtpServer::start_on(port, SmtpOptions::default());
    // Not due yet: nothing sent.
    assert_eq!(p.resend_due(10).await.unwrap().sent, 0);
    assert!(server.messages().is_empty());
    clock.advance(chrono::Duration::minutes(2));
    assert_eq!(p.resend_due(10).await.unwrap().sent, 1);
    // Again, and again delivering the same message: nothing more.
    assert_eq!(p.resend_due(10).await.unwrap().sent, 0);
    assert_eq!(
        p.deliver(&e, None, None).await.unwrap(),
        Delivered::AlreadySent
    );
    let got = server.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(header(&parse(&got[0]), "Message-ID"), e.message_id);
}

#[test]
fn two_daemons_send_a_pending_report_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDatabase::postgres());
    let store = rt.block_on(db.open());
    let server = SmtpServer::start(SmtpOptions::default());
    let yaml = format!(
        "mail:\n  smtp_url: \"smtp://127.0.0.1:{}?tls=none\"\n  to: oncall@flexoraa.com\njobs:\n  idle:\n    kind: command\n    argv: [\"true\"]\n",
        server.port
    );
    let e = email("kept while the server was down");
    let past = Utc::now() - chrono::Duration::minutes(5);
    rt.block_on(store.queue_mail(&QueuedMail {
        message_id: e.message_id.clone(),
        subject: e.subject.clone(),
        recipients: e.recipients.clone(),
        raw: String::from_utf8(e.raw.clone()).unwrap(),
        job: Some("morning-report".into()),
        run_id: None,
        status: MailStatus::Pending,
        attempts: 3,
        last_error: Some("connection refused".into()),
        created_at: past,
        next_attempt_at: past,
        sent_at: None,
    }))
    .unwrap();
    let w = Workdir::new(BIN, &yaml).with_db(&db.url);
    let a = w.serve();
    let b = w.serve();
    eventually(
        Duration::from_secs(30),
        "the pending report to arrive",
        || (!server.messages().is_empty()).then_some(()),
    );
    // Two messages kept for later, queued now: a replica that counts them
    // both pending has made a resend pass since the report was sent (each
    // pass sends, then counts), and with both replicas past one, a second
    // copy of the report would be at the server by now.
    for n in 0..2 {
        let later = email(&format!("kept for later {n}"));
        let future = Utc::now() + chrono::Duration::hours(1);
        rt.block_on(store.queue_mail(&QueuedMail {
            message_id: later.message_id.clone(),
            subject: later.subject.clone(),
            recipients: later.recipients.clone(),
            raw: String::from_utf8(later.raw.clone()).unwrap(),
            job: None,
            run_id: None,
            status: MailStatus::Pending,
            attempts: 3,
            last_error: Some("connection refused".into()),
            created_at: Utc::now(),
            next_attempt_at: future,
            sent_at: None,
        }))
        .unwrap();
    }
    for d in [&a, &b] {
        eventually(
            Duration::from_secs(30),
            "a resend pass of each replica",
            || {
                let m = get(d.addr(), "/metrics").map(|r| r.1).unwrap_or_default();
                (metric(&m, "runbookd_mail_pending") == 2.0).then_some(())
            },
        );
    }
    assert_eq!(server.messages().len(), 1);
    let kept = rt.block_on(store.mail(&e.message_id)).unwrap().unwrap();
    assert_eq!(kept.status, MailStatus::Sent);
}

const FLAKY: &str = r#"
mail:
  smtp_url: "smtp://127.0.0.1:PORT?tls=none"
  to: oncall@flexoraa.com
jobs:
  flaky:
    kind: command
    argv: [sh, -c, "echo the token is $TOKEN; test -e ok"]
    env: {TOKEN: !secret hunter2-token}
    workdir: DIR
    retries: {max: 1, backoff: 10ms}
    notify: on_failure
  chatty:
    kind: command
    argv: ["true"]
    notify: always
    notify_to: lead@flexoraa.com
  quiet:
    kind: command
    argv: ["false"]
"#;

#[tokio::test]
async fn a_failure_is_mailed_once_after_the_last_attempt_then_one_recovery() {
    let server = SmtpServer::start(SmtpOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let yaml = FLAKY
        .replace("PORT", &server.port.to_string())
        .replace("DIR", &dir.path().display().to_string());
    let config = config(&yaml);
    let db = TestDatabase::sqlite();
    let runner = runner(db.open().await, &config);
    let subjects = || -> Vec<String> {
        server
            .messages()
            .iter()
            .map(|m| header(&parse(m), "Subject"))
            .collect()
    };

    // Two attempts, one mail, about the last.
    let first = run(&runner, &config, "flaky").await;
    assert_eq!((first.status, first.attempt), (RunStatus::Failed, 2));
    assert_eq!(
        subjects(),
        vec![format!("[runbookd] flaky failed (run {})", first.id)]
    );
    let m = &server.messages()[0];
    let body = parse(m).subparts[0].get_body().unwrap();
    assert!(
        body.contains(&format!("runbookd show {}", first.id)),
        "{body}"
    );
    assert!(
        body.contains("Repeats of this failure are not mailed"),
        "{body}"
    );
    assert!(
        body.contains("the token is"),
        "the log tail is in it: {body}"
    );
    assert!(
        !String::from_utf8_lossy(m).contains("hunter2-token"),
        "a secret in the mail"
    );

    // Still failing: no repeat.
    run(&runner, &config, "flaky").await;
    assert_eq!(subjects().len(), 1);

    // Recovered: one mail; healthy again: none.
    std::fs::write(dir.path().join("ok"), "").unwrap();
    let back = run(&runner, &config, "flaky").await;
    assert_eq!(back.status, RunStatus::Succeeded);
    run(&runner, &config, "flaky").await;
    assert_eq!(
        subjects()[1..],
        [format!("[runbookd] flaky recovered (run {})", back.id)]
    );

    // `always` mails every outcome to its own recipients; `never` nothing.
    run(&runner, &config, "chatty").await;
    run(&runner, &config, "quiet").await;
    let last = server.messages().pop().unwrap();
    let last = parse(&last);
    assert_eq!(header(&last, "To"), "lead@flexoraa.com");
    assert!(header(&last, "Subject").starts_with("[runbookd] chatty succeeded"));
    assert_eq!(subjects().len(), 3);
}

/// `mode: cronjobs` has no daemon to resend mail: the next `runbookd run`
/// of any job sends what an earlier run left pending, once, and says so.
#[test]
fn mail_left_pending_by_a_run_is_sent_by_the_next_run_of_any_job() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_port();
    let yaml = format!(
        r#"
mail:
  smtp_url: "smtp://127.0.0.1:{port}?tls=none"
  to: oncall@flexoraa.com
  timeout: 5s
jobs:
  broken:
    kind: command
    argv: ["false"]
    notify: on_failure
  idle:
    kind: command
    argv: ["true"]
"#
    );
    let w = Workdir::new(BIN, &yaml);
    // The server is down: the failure's mail is kept, pending.
    let out = w.run(&["run", "broken"]);
    assert!(!out.status.success());
    let store = rt.block_on(runbookd::store::open(w.db_url())).unwrap();
    let pending = rt
        .block_on(store.due_mail(Utc::now() + chrono::Duration::hours(2), 10))
        .unwrap();
    assert_eq!(pending.len(), 1, "the failure's mail is pending");
    let id = pending[0].message_id.clone();
    // Due now rather than in a minute, as if the wait were over.
    rt.block_on(store.mail_failed(
        &id,
        "connection refused",
        0,
        Utc::now() - chrono::Duration::seconds(1),
    ))
    .unwrap();

    let server = SmtpServer::start_on(port, SmtpOptions::default());
    let out = w.run(&["run", "idle"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(&id) && log.contains("sent"),
        "the run says what it sent: {log}"
    );
    assert_eq!(server.messages().len(), 1);
    assert_eq!(header(&parse(&server.messages()[0]), "Message-ID"), id);
    assert_eq!(
        rt.block_on(store.mail(&id)).unwrap().unwrap().status,
        MailStatus::Sent
    );
    // The run after sends nothing again.
    let out = w.run(&["run", "idle"]);
    assert!(out.status.success());
    assert_eq!(server.messages().len(), 1);
}
