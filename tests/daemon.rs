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
