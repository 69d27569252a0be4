//! A whole daemon (`daemon::serve`: timer, scheduler, runner, HTTP) in
//! process, against fakes of the outside systems, on a throwaway store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use runbookd::adapters::Adapters;
use runbookd::adapters::aws::{AwsError, SecretInfo, SecretsApi, Target};
use runbookd::model::CheckStatus;
use runbookd::runner::{RunEvent, Runner};
use runbookd::store::RunStatus;
use runbookd::testkit::TestDatabase;
use tokio_util::sync::CancellationToken;

/// Secrets Manager as a fake: one secret, rotated ten days (and half an
/// hour) ago.
#[derive(Debug, Default)]
struct FakeSecrets {
    calls: AtomicUsize,
}

#[async_trait]
impl SecretsApi for FakeSecrets {
    async fn describe(&self, _: &Target, id: &str) -> Result<SecretInfo, AwsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(SecretInfo {
            name: id.to_string(),
            last_rotated: Some(
                Utc::now() - chrono::Duration::days(10) - chrono::Duration::minutes(30),
            ),
            last_changed: None,
            rotation_enabled: false,
            versions: Vec::new(),
        })
    }
}

const JOBS: &str = r#"
daemon: { heartbeat: 1s, stale_after: 5s, shutdown_grace: 2s }
jobs:
  jwt-age:
    kind: checklist
    schedule: "* * * * * *"
    timezone: UTC
    checks:
      - name: jwt-secret-age
        kind: secret_age
        secret_id: /flexoraa/production/jwt-secret
        max_age: 90d
"#;

#[tokio::test]
async fn a_whole_daemon_runs_a_scheduled_checklist_against_fakes() {
    let db = TestDatabase::sqlite();
    let store = db.open().await;
    let config = Arc::new(
        runbookd::jobs::load_str(std::path::Path::new("jobs.yaml"), JOBS, &|_| None).unwrap(),
    );
    let secrets = Arc::new(FakeSecrets::default());
    let adapters = Arc::new(Adapters::real().with_secrets(secrets.clone()));
    let runner = Runner::builder(store.clone(), adapters)
        .config(&config)
        .build();
    let mut events = runner.subscribe();
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(runbookd::daemon::serve(
        config,
        runner,
        ([127, 0, 0, 1], 0).into(),
        shutdown.clone(),
    ));
    let (id, status) = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            // A fire that came while the first run was still going is
            // recorded skipped (`forbid`); the run it yielded to is the one.
            if let RunEvent::Finished { id, status, .. } = events.recv().await.unwrap()
                && status != RunStatus::Skipped
            {
                return (id, status);
            }
        }
    })
    .await
    .expect("the daemon should run the per-second checklist within 30 s");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), daemon)
        .await
        .expect("the daemon should stop when told")
        .unwrap()
        .unwrap();

    assert_eq!(status, RunStatus::Succeeded);
    assert!(secrets.calls.load(Ordering::SeqCst) >= 1);
    let run = store.get_run(id).await.unwrap().unwrap();
    assert_eq!(run.checks.len(), 1, "{run:?}");
    assert_eq!(run.checks[0].status, CheckStatus::Pass, "{run:?}");
    assert!(run.checks[0].reason.contains("10d"), "{:?}", run.checks[0]);
}

/// Names with a newline, a quote and a backslash (a check named so passed
/// `validate` once) must leave the scrape valid: one bad label used to make
/// Prometheus drop every metric of the target. Built from events, as the
/// daemon builds it, so names `validate` now refuses still get here.
#[cfg(feature = "integration")]
#[test]
fn a_scrape_with_hostile_names_passes_promtool() {
    use runbookd::http::DaemonState;
    use runbookd::scheduler::TickReport;
    use runbookd::store::Trigger;

    let t = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
    };
    let state = DaemonState::new(t("2026-01-01T00:00:00Z"), Arc::default());
    let job = "bad\njob \"quoted\" back\\slash\r\ttab";
    let check = "line1\nline2 \"q\" \\ end";
    state.observe(&RunEvent::Started {
        id: 1,
        job: job.into(),
        trigger: Trigger::Schedule,
        scheduled_for: Some(t("2026-01-01T00:00:00Z")),
        started_at: t("2026-01-01T00:00:00.100Z"),
    });
    state.observe(&RunEvent::Finished {
        id: 1,
        job: job.into(),
        trigger: Trigger::Schedule,
        status: RunStatus::Failed,
        attempt: 1,
        at: t("2026-01-01T00:00:02Z"),
        took: Duration::from_secs(2),
        checks: vec![(check.into(), CheckStatus::Fail, Some(3.5))],
    });
    state.observe(&RunEvent::Ended {
        id: 1,
        job: job.into(),
        status: RunStatus::Failed,
        dry_run: false,
        at: t("2026-01-01T00:00:02Z"),
    });
    state.observe(&RunEvent::Started {
        id: 2,
        job: job.into(),
        trigger: Trigger::Manual,
        scheduled_for: None,
        started_at: t("2026-01-01T00:00:02Z"),
    });
    state.describe_job(
        job,
        Duration::from_secs(60),
        Some(("* * * * *".parse().unwrap(), chrono_tz::UTC)),
    );
    state.next_fires([(job.to_string(), t("2026-01-01T00:01:00Z"))]);
    state.ticked(
        t("2026-01-01T00:00:03Z"),
        1,
        &TickReport {
            missed: vec![(job.to_string(), 2)],
            ..Default::default()
        },
    );
    let scrape = state.render_metrics();
    for family in [
        "runbookd_check_value{",
        "runbookd_job_period_seconds{",
        "runbookd_job_last_status{",
        "runbookd_running_longest_seconds{",
    ] {
        assert!(scrape.contains(family), "no {family} in\n{scrape}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scrape.prom");
    std::fs::write(&file, &scrape).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): install Debian's `prometheus` package, as scripts/services.sh does")
        });
    assert!(
        out.status.success(),
        "promtool rejects the scrape:\n{}{}\n--- scrape ---\n{scrape}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
