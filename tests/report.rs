//! The morning report from fixed histories: its text and HTML as snapshots
//! (all clear, failures, a missed run), what it counts, and (with
//! `--features integration`) its HTML rendered by headless Chromium.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use runbookd::adapters::Adapters;
use runbookd::clock::ManualClock;
use runbookd::config::Config;
use runbookd::jobs::report::ReportSpec;
use runbookd::model::{CheckResult, CheckStatus, RunStatus, StepStatus};
use runbookd::report::{self, FindingKind, Report};
use runbookd::runner::Runner;
use runbookd::scheduler::Scheduler;
use runbookd::store::HistoryStore;
use runbookd::testkit::TestDatabase;
use runbookd::testkit::history::{RunSpec, Seed};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// 09:20 IST on Monday 30 November 2026.
const NOW: &str = "2026-11-30T03:50:00Z";

const YAML: &str = r#"
defaults:
  timezone: Asia/Kolkata
mail:
  from: runbookd <runbookd@flexoraa.com>
  to: oncall@flexoraa.com
links:
  grafana: https://grafana.example/d/api?var-check={check}
  runbook: https://git.example/ops/RUNBOOK.md
  anchors:
    error-rate-24h: alert-error-rate-5
    db-connections: issue-database-connection-pool-exhausted
    verify-backups: database-migration
jobs:
  daily-checklist:
    kind: checklist
    schedule: "0 9 * * *"
    checks:
      - {name: error-rate-24h, kind: prometheus, url: "http://127.0.0.1:9", query: x, fail_if: ">= 0.01", warn_if: ">= 0.005"}
      - {name: ai-token-budget, kind: prometheus, url: "http://127.0.0.1:9", query: x, fail_if: "> 4500", warn_if: "> 3000"}
      - {name: db-connections, kind: sql, database_url: "postgres://u@127.0.0.1:9/db", query: "SELECT 1", fail_if: "> 0.9", warn_if: "> 0.7"}
      - {name: api-pods, kind: kubernetes, selector: app=api}
  watch:
    kind: checklist
    schedule: "0 */2 * * *"
    timezone: UTC
    checks:
      - {name: error-rate-5m, kind: prometheus, url: "http://127.0.0.1:9", query: x, fail_if: "> 0.05", warn_if: "> 0.01"}
  verify-backups:
    kind: verify_backups
    schedule: "30 8 * * *"
    instance: flexoraa-production-db
  snapshot-before-migrate:
    kind: snapshot_migrate
    instance: flexoraa-production-db
    deployment: api-deployment
  morning-report:
    kind: report
    schedule: "15 9 * * *"
    title: Flexoraa
    checklist: daily-checklist
    charts:
      - {job: watch, check: error-rate-5m, title: Error rate (5xx share)}
      - {job: daily-checklist, check: ai-token-budget, title: AI tokens per day}
"#;

fn config() -> Config {
    runbookd::jobs::load_str(std::path::Path::new("jobs.yaml"), YAML, &|_| None)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// What a day's checklist measured.
#[derive(Clone, Copy)]
struct Day {
    error_rate: f64,
    tokens: f64,
    connections: f64,
}

const CALM: Day = Day {
    error_rate: 0.002,
    tokens: 2400.0,
    connections: 0.31,
};

fn checklist_run(at: DateTime<Utc>, d: Day) -> RunSpec {
    let judge = |v: f64, warn: f64, fail: f64| {
        if v >= fail {
            CheckStatus::Fail
        } else if v >= warn {
            CheckStatus::Warn
        } else {
            CheckStatus::Pass
        }
    };
    let e = judge(d.error_rate, 0.005, 0.01);
    let k = judge(d.tokens, 3000.0, 4500.0);
    let c = judge(d.connections, 0.7, 0.9);
    let failed = [e, k, c].contains(&CheckStatus::Fail);
    let mut r = RunSpec::scheduled("daily-checklist", at)
        .took(Duration::seconds(4))
        .check(
            CheckResult::new(
                "error-rate-24h",
                e,
                format!("{} of requests failed", d.error_rate),
            )
            .number(d.error_rate)
            .threshold("fail if >= 0.01; warn if >= 0.005"),
        )
        .check(
            CheckResult::new("ai-token-budget", k, format!("{} tokens", d.tokens))
                .number(d.tokens)
                .threshold("fail if > 4500; warn if > 3000"),
        )
        .check(
            CheckResult::new(
                "db-connections",
                c,
                format!("{:.0}% of max_connections", d.connections * 100.0),
            )
            .number(d.connections)
            .threshold("fail if > 0.9; warn if > 0.7"),
        )
        .check(
            CheckResult::new("api-pods", CheckStatus::Pass, "3/3 ready, 0 restarts").text("3/3"),
        );
    if failed {
        r = r.failed(RunStatus::Failed, "1 of 4 checks failed: error-rate-24h");
    }
    r
}

/// Seven days of calm: the checklist at 09:00 IST, watch every 2 h (UTC),
/// the backup check at 08:30 IST. `today` replaces this morning's
/// checklist; `skip_backup_today` leaves this morning's backup check out.
async fn seven_days(seed: &Seed, today: Day, skip_backup_today: bool) {
    let now = t(NOW);
    for day in (0..8).rev() {
        let base = t("2026-11-30T03:30:00Z") - Duration::days(day);
        let d = if day == 0 {
            today
        } else {
            Day {
                error_rate: CALM.error_rate + 0.0002 * (day % 3) as f64,
                tokens: CALM.tokens + 50.0 * day as f64,
                ..CALM
            }
        };
        seed.add(checklist_run(base, d)).await;
        // The report itself at 09:15 IST; this morning's is the one
        // reading (still running).
        let report = RunSpec::scheduled("morning-report", base + Duration::minutes(15))
            .took(Duration::seconds(2));
        seed.add(if day == 0 { report.running() } else { report })
            .await;
        let backup = base - Duration::minutes(30);
        if !(day == 0 && skip_backup_today) {
            seed.add(
                RunSpec::scheduled("verify-backups", backup).took(Duration::seconds(40 + day)),
            )
            .await;
        }
    }
    let mut at = t("2026-11-23T00:00:00Z");
    while at <= now {
        let rate = 0.003 + 0.001 * ((at.timestamp() / 7200) % 5) as f64;
        seed.add(
            RunSpec::scheduled("watch", at)
                .took(Duration::seconds(2))
                .check(
                    CheckResult::new("error-rate-5m", CheckStatus::Pass, "ok")
                        .number(rate)
                        .threshold("fail if > 0.05; warn if > 0.01"),
                ),
        )
        .await;
        at += Duration::hours(2);
    }
}

struct World {
    _db: TestDatabase,
    store: Arc<dyn HistoryStore>,
    config: Config,
}

impl World {
    async fn new() -> Self {
        let db = TestDatabase::sqlite();
        let store = db.open().await;
        World {
            _db: db,
            store,
            config: config(),
        }
    }

    fn seed(&self) -> Seed {
        Seed::new(self.store.clone())
    }

    async fn report(&self) -> Report {
        let job = self.config.job("morning-report").unwrap();
        let settings = job.spec_as::<ReportSpec>().unwrap().settings(job.timezone);
        report::gather(self.store.as_ref(), &self.config, &settings, t(NOW))
            .await
            .unwrap()
    }
}

async fn all_clear() -> World {
    let w = World::new().await;
    seven_days(&w.seed(), CALM, false).await;
    w
}

async fn failures() -> World {
    let w = World::new().await;
    let s = w.seed();
    seven_days(
        &s,
        Day {
            error_rate: 0.014,
            tokens: 3350.0,
            connections: 0.74,
        },
        false,
    )
    .await;
    // Overnight, a watch run whose retry timed out too.
    s.add(
        RunSpec::scheduled("watch", t("2026-11-29T22:00:00Z"))
            .retry(2, Duration::seconds(30))
            .failed(RunStatus::TimedOut, "timed out after 2m"),
    )
    .await;
    s.add(
        RunSpec::manual(
            "snapshot-before-migrate",
            t("2026-11-29T12:40:00Z"),
            "alice",
        )
        .took(Duration::seconds(412))
        .step(
            "create-snapshot",
            "rds:flexoraa-production-db",
            StepStatus::Succeeded,
            "snapshot runbookd-premigrate-20261129-124000 creating",
            Some(serde_json::json!({"snapshot": "runbookd-premigrate-20261129-124000"})),
        )
        .step(
            "wait-snapshot",
            "rds:runbookd-premigrate-20261129-124000",
            StepStatus::Succeeded,
            "available",
            None,
        )
        .step(
            "create-migration-job",
            "job/snapshot-before-migrate-migrate-901 in default",
            StepStatus::Succeeded,
            "Job created from flexoraa/api:3",
            None,
        )
        .step(
            "wait-migration",
            "job/snapshot-before-migrate-migrate-901 in default",
            StepStatus::Succeeded,
            "Complete",
            None,
        )
        .step(
            "verify",
            "2 check(s)",
            StepStatus::Succeeded,
            "2 passed",
            None,
        ),
    )
    .await;
    s.add(
        RunSpec::manual("snapshot-before-migrate", t("2026-11-29T12:30:00Z"), "bob")
            .dry_run()
            .took(Duration::seconds(1)),
    )
    .await;
    w
}

async fn missed_run() -> World {
    let w = World::new().await;
    let s = w.seed();
    seven_days(&s, CALM, true).await;
    s.missed(
        "verify-backups",
        t("2026-11-30T03:00:00Z"),
        t("2026-11-30T03:00:00Z"),
        1,
        "the history store was unreachable at its time (no catch_up window reached it)",
    )
    .await;
    w
}

fn render(r: &Report, config: &Config) -> report::render::Rendered {
    report::render::render(r, &config.links)
}

#[tokio::test]
async fn all_clear_says_so_and_counts_every_run() {
    let w = all_clear().await;
    let r = w.report().await;
    assert!(r.attention.is_empty(), "{:#?}", r.attention);
    assert_eq!(r.subject(), "[runbookd] Flexoraa morning report: all clear");
    let watch = r.ledger.iter().find(|l| l.job == "watch").unwrap();
    assert_eq!((watch.expected, watch.ran, watch.succeeded), (12, 12, 12));
    let out = render(&r, &w.config);
    assert_eq!(out.images.len(), 2, "one chart per key metric");
    insta::assert_snapshot!("all_clear_text", out.text);
    insta::assert_snapshot!("all_clear_html", out.html);
}

#[tokio::test]
async fn failures_are_listed_with_values_thresholds_changes_and_links() {
    let w = failures().await;
    let r = w.report().await;
    let c = r.checklist.as_ref().unwrap();
    let rate = c.rows.iter().find(|r| r.check == "error-rate-24h").unwrap();
    assert_eq!(rate.status, CheckStatus::Fail);
    assert_eq!(
        rate.change(),
        "+0.0118 (+536%)",
        "against 0.0022 a day earlier"
    );
    let what: Vec<&str> = r.attention.iter().map(|a| a.what.as_str()).collect();
    assert_eq!(r.attention.len(), 4, "{what:#?}");
    assert!(
        what[0].starts_with("error-rate-24h FAIL: 0.014"),
        "{what:?}"
    );
    assert_eq!(
        r.attention[0].grafana.as_deref(),
        Some("https://grafana.example/d/api?var-check=error-rate-24h")
    );
    assert_eq!(
        r.attention[0].runbook.as_deref(),
        Some("https://git.example/ops/RUNBOOK.md#alert-error-rate-5")
    );
    // The failed checklist run is also a failed fire of the ledger.
    assert!(
        r.findings
            .iter()
            .any(|f| f.kind == FindingKind::Failed && f.job == "daily-checklist")
    );
    // Maintenance, oldest first, with its snapshot; the dry run is listed
    // as one; this morning's backup verification too.
    let listed: Vec<(&str, &str, bool)> = r
        .activity
        .iter()
        .map(|a| {
            (
                a.run.job.as_str(),
                a.run.triggered_by.as_str(),
                a.run.dry_run,
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("snapshot-before-migrate", "bob", true),
            ("snapshot-before-migrate", "alice", false),
            ("verify-backups", "scheduler", false),
        ]
    );
    assert_eq!(
        r.activity[1].snapshots(),
        vec!["runbookd-premigrate-20261129-124000"]
    );
    assert_eq!(r.activity[1].steps.len(), 5);
    assert_eq!(
        r.subject(),
        "[runbookd] Flexoraa morning report: 4 need attention"
    );
    let out = render(&r, &w.config);
    insta::assert_snapshot!("failures_text", out.text);
    insta::assert_snapshot!("failures_html", out.html);
}

#[tokio::test]
async fn a_missed_run_is_a_dead_mans_switch_with_the_daemons_reason() {
    let w = missed_run().await;
    let r = w.report().await;
    let backups = r.ledger.iter().find(|l| l.job == "verify-backups").unwrap();
    assert_eq!((backups.expected, backups.ran, backups.missed), (1, 0, 1));
    assert_eq!(r.attention.len(), 1);
    assert!(
        r.attention[0].what.contains("verify-backups missed its Mon 08:30 IST run: not run: the history store was unreachable"),
        "{}",
        r.attention[0].what
    );
    let out = render(&r, &w.config);
    insta::assert_snapshot!("missed_run_text", out.text);
    insta::assert_snapshot!("missed_run_html", out.html);
}

/// Consecutive daily reports judge every fire exactly once: a fire in the
/// minutes before a report (still inside its lateness tolerance) is the
/// next report's, not lost between the two.
#[tokio::test]
async fn consecutive_reports_judge_every_fire_once() {
    let w = World::new().await;
    w.seed().seen("watch", t("2026-11-01T00:00:00Z")).await;
    let job = w.config.job("morning-report").unwrap();
    let settings = job.spec_as::<ReportSpec>().unwrap().settings(job.timezone);
    // `watch` fires every 2 h (UTC): 12 a day, 36 in three daily reports.
    let cases = [
        ("2026-11-30T04:02:00Z", "a fire 2 minutes before the report"),
        ("2026-11-30T04:00:00Z", "the report at a fire's instant"),
        ("2026-11-30T04:05:00Z", "a fire exactly late_after before"),
        ("2026-11-30T03:50:00Z", "no fire near the report"),
    ];
    for (at, why) in cases {
        let mut judged = 0;
        for day in 0..3 {
            let now = t(at) + Duration::days(day);
            let r = report::gather(w.store.as_ref(), &w.config, &settings, now)
                .await
                .unwrap();
            let watch = r.ledger.iter().find(|l| l.job == "watch").unwrap();
            judged += watch.expected;
        }
        assert_eq!(judged, 36, "{why}: reports at {at} and the two days after");
    }
}

/// A fresh install: the daemon first started at 04:30 IST, five hours
/// before its first report. The fires before that are not missed (nothing
/// knew the job), so the report is all clear and says it is the jobs'
/// first day; a job no daemon has loaded is not judged at all.
#[tokio::test]
async fn a_fresh_install_judges_only_fires_after_runbookd_first_saw_each_job() {
    let w = World::new().await;
    let started = t("2026-11-29T23:00:00Z");
    // The daemon's file has every job but verify-backups (added since).
    let daemons = runbookd::jobs::load_str(
        std::path::Path::new("jobs.yaml"),
        &YAML.replace(
            "  verify-backups:\n    kind: verify_backups\n    schedule: \"30 8 * * *\"\n    instance: flexoraa-production-db\n",
            "",
        ),
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(daemons.job("verify-backups").is_err());
    let clock = ManualClock::new(started);
    let runner = Runner::builder(w.store.clone(), Arc::new(Adapters::real()))
        .clock(Arc::new(clock.clone()))
        .build();
    Scheduler::start(Arc::new(daemons), runner, Arc::new(clock))
        .await
        .unwrap();
    // What it ran since: watch at 00:00 and 02:00 UTC, the checklist at
    // 09:00 IST; the report (09:15) is the one reading.
    let s = w.seed();
    for at in ["2026-11-30T00:00:00Z", "2026-11-30T02:00:00Z"] {
        s.add(RunSpec::scheduled("watch", t(at))).await;
    }
    s.add(checklist_run(t("2026-11-30T03:30:00Z"), CALM)).await;
    s.add(RunSpec::scheduled("morning-report", t("2026-11-30T03:45:00Z")).running())
        .await;

    let r = w.report().await;
    assert_eq!(r.attention, vec![], "nothing was missed");
    let row = |job: &str| r.ledger.iter().find(|l| l.job == job).unwrap().clone();
    let watch = row("watch");
    assert_eq!(watch.first_seen, Some(started));
    // 04:00 to 22:00 UTC yesterday were before runbookd knew the job.
    assert_eq!((watch.expected, watch.ran, watch.unseen), (2, 2, 10));
    let backups = row("verify-backups");
    assert_eq!(backups.first_seen, None);
    assert_eq!((backups.expected, backups.missed), (0, 0));
    let out = render(&r, &w.config);
    assert!(
        out.text.starts_with("Flexoraa morning report"),
        "{}",
        out.text
    );
    assert!(out.text.contains("All clear."), "{}", out.text);
    assert!(
        out.text.contains("first day, from Mon 04:30"),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("not seen by runbookd yet"),
        "{}",
        out.text
    );
    assert!(out.html.contains("first day, from Mon 04:30"));
    // A second start later keeps the first instant.
    let later = ManualClock::new(t("2026-11-30T03:00:00Z"));
    let runner = Runner::builder(w.store.clone(), Arc::new(Adapters::real()))
        .clock(Arc::new(later.clone()))
        .build();
    Scheduler::start(Arc::new(config()), runner, Arc::new(later))
        .await
        .unwrap();
    let seen = w.store.first_seen().await.unwrap();
    assert_eq!(seen["watch"], started);
    assert_eq!(seen["verify-backups"], t("2026-11-30T03:00:00Z"));
}

/// A chart with no values is no empty frame: text and HTML say so.
#[tokio::test]
async fn a_chart_with_no_values_says_so_instead_of_drawing_an_empty_frame() {
    let w = World::new().await;
    let s = w.seed();
    // The token check measured nothing (its run errored); watch has values.
    s.add(
        RunSpec::scheduled("daily-checklist", t("2026-11-30T03:30:00Z")).check(CheckResult::new(
            "ai-token-budget",
            CheckStatus::Error,
            "prometheus unreachable",
        )),
    )
    .await;
    s.add(
        RunSpec::scheduled("watch", t("2026-11-30T02:00:00Z"))
            .check(CheckResult::new("error-rate-5m", CheckStatus::Pass, "ok").number(0.004)),
    )
    .await;
    let r = w.report().await;
    let out = render(&r, &w.config);
    assert!(
        out.text
            .contains("AI tokens per day (ai-token-budget of daily-checklist): no values recorded"),
        "{}",
        out.text
    );
    assert_eq!(
        out.images.iter().map(|i| i.0.as_str()).collect::<Vec<_>>(),
        ["chart-1"],
        "only the chart with values is drawn"
    );
    assert!(out.html.contains("cid:chart-1"));
    assert!(!out.html.contains("cid:chart-2"), "{}", out.html);
    let tokens = out.html.split("AI tokens per day").nth(1).unwrap();
    assert!(tokens.contains("no values recorded"), "{tokens}");
}

#[tokio::test]
async fn late_slow_and_duplicate_runs_are_told_apart() {
    let w = World::new().await;
    let s = w.seed();
    seven_days(&s, CALM, true).await;
    // This morning's backup check: caught up 40 minutes late, and slow
    // (its median is about 44 s).
    s.add(
        RunSpec::scheduled("verify-backups", t("2026-11-30T03:00:00Z"))
            .catchup()
            .late(Duration::minutes(40))
            .took(Duration::seconds(600)),
    )
    .await;
    let r = w.report().await;
    let kinds: Vec<(String, FindingKind)> =
        r.findings.iter().map(|f| (f.job.clone(), f.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("verify-backups".to_string(), FindingKind::Late),
            ("verify-backups".to_string(), FindingKind::Slow),
        ]
    );
}

#[cfg(feature = "integration")]
#[tokio::test]
async fn the_html_renders_in_headless_chromium() {
    let chromium = std::env::var("RUNBOOKD_TEST_CHROMIUM").unwrap_or_else(|_| {
        panic!("RUNBOOKD_TEST_CHROMIUM is not set: run the tests with scripts/test.sh, which installs Debian's chromium")
    });
    let w = failures().await;
    let r = w.report().await;
    let out = render(&r, &w.config);
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    std::fs::write(&html, out.preview_html()).unwrap();
    let png = dir.path().join("report.png");
    let status = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=820,2200",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "chromium failed: {status}");
    let bytes = std::fs::read(&png).unwrap();
    let dec = png::Decoder::new(&bytes[..]);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (820, 2200));
    // The red banner (attention) and the charts' blue line are on screen.
    let px: Vec<&[u8]> = buf.chunks(info.line_size / info.width as usize).collect();
    let near = |p: &[u8], c: [u8; 3]| p.iter().zip(c).all(|(a, b)| a.abs_diff(b) < 12);
    assert!(
        px.iter().any(|p| near(p, [198, 40, 40])),
        "no red banner rendered"
    );
    assert!(
        px.iter().any(|p| near(p, [21, 101, 192])),
        "no chart rendered"
    );
    if let Ok(to) = std::env::var("RUNBOOKD_SCREENSHOT_TO") {
        std::fs::copy(&png, &to).unwrap();
    }
}
