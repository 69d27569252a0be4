//! Maintenance jobs end to end through the runner, against stateful fakes
//! of RDS, Secrets Manager and the cluster (and, with `--features
//! integration`, against moto): whole flows, their failures, their steps in
//! the history, dry runs that change nothing.

use std::sync::Arc;
use std::time::Duration;

use runbookd::adapters::Adapters;
use runbookd::adapters::aws::DbSnapshot;
use runbookd::model::{CheckStatus, Run, RunStatus, StepStatus};
use runbookd::runner::{RunRequest, Stop};
use runbookd::testkit::fakes::{
    FakeCluster, FakeRds, FakeSecrets, RolloutBehaviour, SnapshotBehaviour,
};
use runbookd::testkit::world::World;

/// Short waits, so flows finish in milliseconds.
const FAST: &str = "poll: 10ms";

async fn world(yaml: &str, adapters: Adapters) -> World {
    World::builder(yaml, adapters).build().await
}

fn steps(run: &Run) -> Vec<String> {
    run.steps
        .iter()
        .map(|s| format!("{} {}", s.name, s.status))
        .collect()
}

fn rotate_yaml(extra: &str) -> String {
    format!(
        "jobs:
  rotate:
    kind: rotate_secret
    secret_id: /flexoraa/production/jwt-secret
    deployment: api-deployment
    {FAST}
    rollout_timeout: 5s
{extra}"
    )
}

#[tokio::test]
async fn with_an_external_secret_the_restart_waits_for_the_operator_to_write_it() {
    let extra = "    external_secret: jwt\n    sync_timeout: 1s\n";
    let (a, cluster, _) = rotation(FakeCluster::default(), FakeSecrets::with_current("old-1"));
    let w = world(&rotate_yaml(extra), a).await;
    let run = w.run("rotate").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let names = steps(&run);
    let sync = names
        .iter()
        .position(|s| s == "wait-secret-sync succeeded")
        .expect("a sync step");
    let restart = names.iter().position(|s| s == "restart succeeded").unwrap();
    assert!(sync < restart, "{names:?}");
    assert!(
        cluster
            .calls()
            .iter()
            .any(|c| c == "GET externalsecret default/jwt")
    );

    // An operator that never writes it: no restart onto the old value.
    let (a, cluster, _) = rotation(
        FakeCluster::default().external_secrets_stuck(),
        FakeSecrets::with_current("old-1"),
    );
    let w = world(&rotate_yaml(extra), a).await;
    let run = w.run("rotate").await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.clone().unwrap();
    assert!(
        error.contains("the Secret was not rewritten from jwt"),
        "{error}"
    );
    assert!(
        !cluster.changes().iter().any(|c| c.contains("deployment")),
        "restarted onto the old value: {:?}",
        cluster.changes()
    );
}

fn rotation(
    cluster: FakeCluster,
    secrets: FakeSecrets,
) -> (Adapters, Arc<FakeCluster>, Arc<FakeSecrets>) {
    let (c, s) = (Arc::new(cluster), Arc::new(secrets));
    let a = Adapters::real()
        .with_cluster(c.clone())
        .with_secrets(s.clone());
    (a, c, s)
}

#[tokio::test]
async fn a_rotation_moves_the_stages_restarts_and_never_writes_the_value_down() {
    let (a, cluster, secrets) = rotation(
        FakeCluster::default(),
        FakeSecrets::with_current("old-value-1"),
    );
    let w = world(&rotate_yaml(""), a).await;
    let run = w.run("rotate").await;
    assert_eq!(
        run.status,
        RunStatus::Succeeded,
        "{}",
        run.log.as_deref().unwrap_or("")
    );
    assert_eq!(
        steps(&run),
        [
            "inspect-secret succeeded",
            "check-deployment succeeded",
            "create-secret succeeded",
            "finish-secret succeeded",
            "clear-pending succeeded",
            "restart succeeded",
            "wait-rollout succeeded",
        ]
    );
    let new = secrets.value("AWSCURRENT").unwrap();
    assert_eq!(new.len(), 64, "32 random bytes, hex");
    assert_eq!(secrets.value("AWSPREVIOUS").as_deref(), Some("old-value-1"));
    assert_eq!(secrets.version("AWSPENDING"), None);
    assert!(
        cluster
            .changes()
            .iter()
            .any(|c| c.contains("kubectl.kubernetes.io/restartedAt")),
        "{:?}",
        cluster.changes()
    );
    // The new value is nowhere in the history: steps, log, error.
    let all = serde_json::to_string(&run).unwrap();
    assert!(
        !all.contains(&new),
        "the new secret value leaked into the history"
    );
    let token = run.steps[2].payload.as_ref().unwrap()["client_request_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(token.len(), 36);
}

#[tokio::test]
async fn a_stalled_rollout_rolls_the_secret_back_and_restarts_again() {
    let (a, cluster, secrets) = rotation(
        FakeCluster::default().rollouts(
            RolloutBehaviour::Stalls,
            RolloutBehaviour::Succeeds { polls: 1 },
        ),
        FakeSecrets::with_current("old-value-1"),
    );
    let w = world(&rotate_yaml(""), a).await;
    let run = w.run("rotate").await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.clone().unwrap();
    assert!(error.contains("rotation rolled back"), "{error}");
    assert!(error.contains("ProgressDeadlineExceeded"), "{error}");
    assert_eq!(secrets.value("AWSCURRENT").as_deref(), Some("old-value-1"));
    let restarts = cluster
        .changes()
        .iter()
        .filter(|c| c.contains("restartedAt"))
        .count();
    assert_eq!(restarts, 2, "{:?}", cluster.changes());
    assert!(steps(&run).contains(&"wait-rollout failed".to_string()));
    assert!(steps(&run).contains(&"rollback-secret succeeded".to_string()));
}

#[tokio::test]
async fn a_rerun_after_a_crash_finishes_or_cleans_up_the_rotation() {
    // Crashed before finishSecret: the pending version never became current.
    let secrets = FakeSecrets::with_current("old-value-1");
    secrets.add_version("v-crashed", "half-done-value", &["AWSPENDING"]);
    let (a, _, secrets) = rotation(FakeCluster::default(), secrets);
    let w = world(&rotate_yaml(""), a).await;
    let run = w.run("rotate").await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(steps(&run).contains(&"remove-abandoned succeeded".to_string()));
    assert_ne!(
        secrets.value("AWSCURRENT").as_deref(),
        Some("half-done-value")
    );
    assert_eq!(secrets.value("AWSPREVIOUS").as_deref(), Some("old-value-1"));

    // Crashed after finishSecret: finish it, no new value.
    let secrets = FakeSecrets::with_current("old-value-1");
    secrets.add_version("v2", "new-value-2", &["AWSCURRENT", "AWSPENDING"]);
    let (a, cluster, secrets) = rotation(FakeCluster::default(), secrets);
    let w = world(&rotate_yaml(""), a).await;
    let run = w.run("rotate").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert!(
        !steps(&run).iter().any(|s| s.starts_with("create-secret")),
        "{:?}",
        steps(&run)
    );
    assert_eq!(secrets.value("AWSCURRENT").as_deref(), Some("new-value-2"));
    assert_eq!(secrets.version("AWSPENDING"), None);
    assert!(cluster.changes().iter().any(|c| c.contains("restartedAt")));
}

#[tokio::test]
async fn a_paused_deployment_is_refused_before_the_secret_changes() {
    let (a, cluster, secrets) = rotation(FakeCluster::default(), FakeSecrets::with_current("v"));
    cluster.pause();
    let w = world(&rotate_yaml(""), a).await;
    let run = w.run("rotate").await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error.as_deref().unwrap().contains("paused"),
        "{:?}",
        run.error
    );
    assert!(secrets.changes().is_empty(), "{:?}", secrets.changes());
}

fn migrate_yaml(extra: &str) -> String {
    format!(
        "jobs:
  migrate:
    kind: snapshot_migrate
    instance: flexoraa-production-db
    deployment: api-deployment
    keep: 2
    {FAST}
    snapshot_timeout: 5s
    migration_timeout: 5s
{extra}"
    )
}

fn ours(id: &str, job: &str, created: &str) -> DbSnapshot {
    DbSnapshot {
        id: id.into(),
        status: "available".into(),
        created: Some(
            chrono::DateTime::parse_from_rfc3339(created)
                .unwrap()
                .to_utc(),
        ),
        instance: "flexoraa-production-db".into(),
        manual: true,
        tags: runbookd::jobs::snapshot_migrate::ownership(job),
        ..Default::default()
    }
}

fn migration(cluster: FakeCluster, rds: FakeRds) -> (Adapters, Arc<FakeCluster>, Arc<FakeRds>) {
    let (c, r) = (Arc::new(cluster), Arc::new(rds));
    (
        Adapters::real().with_cluster(c.clone()).with_rds(r.clone()),
        c,
        r,
    )
}

#[tokio::test]
async fn a_migration_snapshots_runs_the_job_and_prunes_only_its_own() {
    let rds = FakeRds::new("flexoraa-production-db")
        .snapshots_go(SnapshotBehaviour::Available { polls: 2 });
    rds.add_snapshot(ours(
        "runbookd-premigrate-20261101-000000",
        "migrate",
        "2026-11-01T00:00:00Z",
    ));
    rds.add_snapshot(ours(
        "runbookd-premigrate-20261102-000000",
        "migrate",
        "2026-11-02T00:00:00Z",
    ));
    rds.add_snapshot(ours("someone-elses", "other", "2026-10-01T00:00:00Z"));
    rds.add_snapshot(DbSnapshot {
        manual: false,
        ..ours("rds:auto-1", "migrate", "2026-09-01T00:00:00Z")
    });
    let (a, cluster, rds) = migration(FakeCluster::default(), rds);
    let w = world(&migrate_yaml(""), a).await;
    let run = w.run("migrate").await;
    assert_eq!(
        run.status,
        RunStatus::Succeeded,
        "{:?} {}",
        run.error,
        run.log.as_deref().unwrap_or("")
    );
    let snapshot = run.steps[1].payload.as_ref().unwrap()["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(snapshot.starts_with("runbookd-premigrate-"), "{snapshot}");
    // keep: 2 → the new one and the newest older one stay.
    let left = rds.snapshot_ids();
    assert!(left.contains(&snapshot));
    assert!(left.contains(&"runbookd-premigrate-20261102-000000".to_string()));
    assert!(
        !left.contains(&"runbookd-premigrate-20261101-000000".to_string()),
        "{left:?}"
    );
    assert!(left.contains(&"someone-elses".to_string()));
    assert!(left.contains(&"rds:auto-1".to_string()));
    let job = &cluster.created_jobs()[0];
    let v = serde_json::to_value(job).unwrap();
    assert_eq!(v["spec"]["backoffLimit"], 0);
    assert_eq!(v["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(
        v["spec"]["template"]["spec"]["containers"][0]["image"],
        "flexoraa/api:3"
    );
    assert!(
        run.log
            .as_deref()
            .unwrap()
            .contains("migration | Batch 42 run")
    );
}

#[tokio::test]
async fn a_failed_migration_prunes_nothing_and_names_the_snapshot_to_restore() {
    let rds = FakeRds::new("flexoraa-production-db");
    rds.add_snapshot(ours(
        "runbookd-premigrate-20261101-000000",
        "migrate",
        "2026-11-01T00:00:00Z",
    ));
    rds.add_snapshot(ours(
        "runbookd-premigrate-20261102-000000",
        "migrate",
        "2026-11-02T00:00:00Z",
    ));
    let (a, _, rds) = migration(
        FakeCluster::default().jobs_fail("BackoffLimitExceeded"),
        rds,
    );
    let w = world(&migrate_yaml(""), a).await;
    let run = w.run("migrate").await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap();
    let snapshot = run.steps[1].payload.as_ref().unwrap()["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("BackoffLimitExceeded"), "{error}");
    assert!(
        error.contains(&format!("--db-snapshot-identifier {snapshot}")),
        "{error}"
    );
    assert_eq!(rds.snapshot_ids().len(), 3, "nothing pruned");
    assert!(
        !rds.calls()
            .iter()
            .any(|c| c.starts_with("DeleteDBSnapshot"))
    );
}

#[tokio::test]
async fn a_prune_that_fails_does_not_read_as_a_failed_migration() {
    let rds = FakeRds::new("flexoraa-production-db").deny_deletes();
    rds.add_snapshot(ours(
        "runbookd-premigrate-20261101-000000",
        "migrate",
        "2026-11-01T00:00:00Z",
    ));
    rds.add_snapshot(ours(
        "runbookd-premigrate-20261102-000000",
        "migrate",
        "2026-11-02T00:00:00Z",
    ));
    let (a, cluster, _) = migration(FakeCluster::default(), rds);
    let w = world(&migrate_yaml(""), a).await;
    let run = w.run("migrate").await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.clone().unwrap();
    assert!(
        error.contains("only pruning old snapshots failed"),
        "{error}"
    );
    assert!(error.contains("AccessDenied"), "{error}");
    assert!(error.contains("do not restore"), "{error}");
    assert!(!error.contains("restore-db-instance"), "{error}");
    assert_eq!(cluster.created_jobs().len(), 1);
    let verdicts: Vec<_> = steps(&run);
    assert!(
        verdicts.contains(&"wait-migration succeeded".to_string()),
        "{verdicts:?}"
    );
}

#[tokio::test]
async fn a_cancel_during_the_migration_says_the_cluster_job_goes_on() {
    let (a, cluster, _) = migration(
        FakeCluster::default().jobs_hang(),
        FakeRds::new("flexoraa-production-db"),
    );
    let w = world(&migrate_yaml(""), a).await;
    let stop = Stop::new();
    let canceller = {
        let stop = stop.clone();
        let cluster = cluster.clone();
        tokio::spawn(async move {
            while cluster.created_jobs().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            stop.cancel("SIGINT");
        })
    };
    let run = w.run_with("migrate", RunRequest::default(), stop).await;
    canceller.await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    let log = run.log.unwrap();
    let job = cluster.created_jobs()[0].metadata.name.clone().unwrap();
    assert!(
        log.contains(&format!(
            "Job {job} in default is still running in the cluster"
        )),
        "{log}"
    );
    assert!(log.contains("Snapshot runbookd-premigrate-"), "{log}");
}

#[tokio::test]
async fn no_snapshot_means_no_migration() {
    let (a, cluster, _) = migration(
        FakeCluster::default(),
        FakeRds::new("flexoraa-production-db").snapshots_go(SnapshotBehaviour::Fails),
    );
    let w = world(&migrate_yaml(""), a).await;
    let run = w.run("migrate").await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .unwrap()
            .contains("failed: no snapshot, no migration"),
        "{:?}",
        run.error
    );
    assert!(cluster.created_jobs().is_empty());
    assert_eq!(steps(&run).last().unwrap(), "wait-snapshot failed");
}

#[tokio::test]
async fn bad_targets_and_faults_each_give_a_clear_failed_run() {
    // (what, rds, cluster, yaml change, expected status, expected in error)
    type Case = (
        &'static str,
        FakeRds,
        FakeCluster,
        &'static str,
        RunStatus,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "unknown instance",
            FakeRds::new("another-db"),
            FakeCluster::default(),
            "",
            RunStatus::Failed,
            "DBInstanceNotFound: flexoraa-production-db",
        ),
        (
            "snapshot quota exceeded",
            FakeRds::new("flexoraa-production-db").quota_exceeded(),
            FakeCluster::default(),
            "",
            RunStatus::Failed,
            "quota exceeded: SnapshotQuotaExceeded",
        ),
        (
            "throttled twice, then fine",
            FakeRds::new("flexoraa-production-db").throttle(2),
            FakeCluster::default(),
            "",
            RunStatus::Succeeded,
            "",
        ),
        (
            "a 403 from the cluster",
            FakeRds::new("flexoraa-production-db"),
            FakeCluster::default(),
            "    deployment: nosuch\n",
            RunStatus::Failed,
            "no deployment `nosuch`",
        ),
        (
            "a migration that never ends",
            FakeRds::new("flexoraa-production-db"),
            FakeCluster::default().jobs_hang(),
            "",
            RunStatus::Failed,
            "did not happen within",
        ),
    ];
    for (what, rds, cluster, change, status, says) in cases {
        let (a, _, _) = migration(cluster, rds);
        let yaml = migrate_yaml("")
            .replace(
                "    deployment: api-deployment\n",
                if change.is_empty() {
                    "    deployment: api-deployment\n"
                } else {
                    change
                },
            )
            .replace("migration_timeout: 5s", "migration_timeout: 100ms");
        let w = world(&yaml, a).await;
        let run = w.run("migrate").await;
        assert_eq!(run.status, status, "{what}: {:?}", run.error);
        assert!(
            run.error.as_deref().unwrap_or("").contains(says),
            "{what}: {:?}",
            run.error
        );
        if status == RunStatus::Failed {
            assert!(
                run.steps.iter().any(|s| s.status == StepStatus::Failed),
                "{what}: the failed step is recorded"
            );
        }
    }
}

#[tokio::test]
async fn a_forbidden_patch_names_the_missing_rbac_verb() {
    let cluster = Arc::new(FakeCluster::default().forbid_patches());
    let w = world(
        &format!("jobs:\n  restart:\n    kind: rollout\n    action: restart\n    deployment: api-deployment\n    {FAST}\n"),
        Adapters::real().with_cluster(cluster),
    )
    .await;
    let run = w.run("restart").await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .unwrap()
            .contains("needs `patch` on `deployments`"),
        "{:?}",
        run.error
    );
}

#[tokio::test]
async fn dry_runs_change_nothing_and_list_every_call() {
    let yaml = format!(
        "{}  restart:\n    kind: rollout\n    action: restart\n    deployment: api-deployment\n  verify:\n    kind: verify_backups\n    instance: flexoraa-production-db\n    restore_test: true\n",
        migrate_yaml("").replace("jobs:\n", "jobs:\n") + &rotate_yaml("").replace("jobs:\n", "")
    );
    let cluster = Arc::new(FakeCluster::default());
    let rds = Arc::new(FakeRds::new("flexoraa-production-db"));
    let secrets = Arc::new(FakeSecrets::with_current("v"));
    let w = world(
        &yaml,
        Adapters::real()
            .with_cluster(cluster.clone())
            .with_rds(rds.clone())
            .with_secrets(secrets.clone()),
    )
    .await;
    for job in ["migrate", "rotate", "restart", "verify"] {
        let run = w.dry(job).await;
        assert_eq!(run.status, RunStatus::Succeeded, "{job}: {:?}", run.error);
        assert!(!run.steps.is_empty(), "{job}");
        for s in &run.steps {
            assert_eq!(s.status, StepStatus::Skipped, "{job}: {s:?}");
            assert!(s.detail.starts_with("dry run: would call "), "{job}: {s:?}");
        }
    }
    assert!(cluster.calls().is_empty(), "{:?}", cluster.calls());
    assert!(rds.calls().is_empty(), "{:?}", rds.calls());
    assert!(secrets.calls().is_empty(), "{:?}", secrets.calls());
}

#[tokio::test]
async fn a_cancel_mid_wait_ends_the_run_cancelled_with_the_step_recorded() {
    let (a, _, _) = migration(
        FakeCluster::default().jobs_hang(),
        FakeRds::new("flexoraa-production-db"),
    );
    let w = world(
        &migrate_yaml("").replace("migration_timeout: 5s", "migration_timeout: 1h"),
        a,
    )
    .await;
    let stop = Stop::new();
    let s2 = stop.clone();
    let store = w.store.clone();
    // Cancel once the wait has begun (a fixed delay could land in an
    // earlier step on a slow disk).
    tokio::spawn(async move {
        loop {
            for run in store.running(Some("migrate")).await.unwrap() {
                let steps = store.steps(run.id).await.unwrap();
                if steps
                    .iter()
                    .any(|s| s.name == "wait-migration" && s.status == StepStatus::Running)
                {
                    s2.cancel("interrupted by SIGTERM");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let run = tokio::time::timeout(
        Duration::from_secs(60),
        w.run_with("migrate", RunRequest::default(), stop),
    )
    .await
    .expect("the run ends within 60 s of its cancel");
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(run.error.as_deref().unwrap().contains("SIGTERM"));
    let last = run.steps.last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.status),
        ("wait-migration", StepStatus::Failed),
        "{last:?}"
    );
}

#[tokio::test]
async fn rollout_undo_goes_back_one_revision_and_scale_to_zero_needs_confirm() {
    let cluster = Arc::new(FakeCluster::default());
    let w = world(
        &format!(
            "jobs:
  undo:
    kind: rollout
    action: undo
    deployment: api-deployment
    {FAST}
  maintenance:
    kind: rollout
    action: scale
    replicas: 0
    deployment: api-deployment
    {FAST}
"
        ),
        Adapters::real().with_cluster(cluster.clone()),
    )
    .await;
    let run = w.run("undo").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let patch = cluster
        .changes()
        .into_iter()
        .find(|c| c.starts_with("PATCH"))
        .unwrap();
    assert!(patch.contains("flexoraa/api:2"), "{patch}");
    assert!(!patch.contains("pod-template-hash"), "{patch}");

    let job = w.config.job("maintenance").unwrap();
    assert!(
        job.check_confirmed(false, false)
            .unwrap_err()
            .to_string()
            .contains("--confirm")
    );
    // A dry run changes nothing: it needs no confirmation.
    assert!(job.check_confirmed(false, true).is_ok());
    let run = w.run("maintenance").await;
    assert_eq!(run.status, RunStatus::Failed, "refused without --confirm");
    let dry = w.dry("maintenance").await;
    assert_eq!(dry.status, RunStatus::Succeeded, "{:?}", dry.error);
    let confirmed = RunRequest {
        confirmed: true,
        ..Default::default()
    };
    let run = w.run_with("maintenance", confirmed, Stop::new()).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
}

#[tokio::test]
async fn undo_is_the_way_out_of_a_failed_rollout_that_restart_refuses() {
    let cluster = Arc::new(FakeCluster::default().stalled());
    let w = world(
        &format!(
            "jobs:
  undo:
    kind: rollout
    action: undo
    deployment: api-deployment
    {FAST}
  restart:
    kind: rollout
    action: restart
    deployment: api-deployment
    {FAST}
"
        ),
        Adapters::real().with_cluster(cluster.clone()),
    )
    .await;
    let run = w.run("restart").await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .unwrap()
            .contains("the last rollout failed"),
        "{:?}",
        run.error
    );
    let run = w.run("undo").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert!(
        cluster
            .changes()
            .iter()
            .any(|c| c.starts_with("PATCH") && c.contains("flexoraa/api:2")),
        "{:?}",
        cluster.changes()
    );
    // Paused is still refused, as kubectl does.
    cluster.pause();
    let run = w.run("undo").await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error.as_deref().unwrap().contains("paused"),
        "{:?}",
        run.error
    );
}

#[tokio::test]
async fn verify_backups_judges_age_encryption_quota_and_always_deletes_the_restore() {
    let rds = Arc::new(FakeRds::new("flexoraa-production-db"));
    rds.add_snapshot(DbSnapshot {
        id: "rds:nightly".into(),
        status: "available".into(),
        created: Some(chrono::Utc::now() - chrono::Duration::hours(3)),
        instance: "flexoraa-production-db".into(),
        manual: false,
        encrypted: true,
        ..Default::default()
    });
    let w = world(
        &format!(
            "jobs:
  verify:
    kind: verify_backups
    instance: flexoraa-production-db
    restore_test: true
    {FAST}
    restore_checks:
      - name: users
        kind: sql
        database_url: postgres://u@{{endpoint}}/app
        query: SELECT 1
        fail_if: \"< 1\"
        timeout: 2s
"
        ),
        Adapters::real().with_rds(rds.clone()),
    )
    .await;
    let run = w.run("verify").await;
    let by = |n: &str| run.checks.iter().find(|c| c.check == n).map(|c| c.status);
    assert_eq!(by("backup/latest"), Some(CheckStatus::Pass));
    assert_eq!(by("backup/encrypted"), Some(CheckStatus::Pass));
    assert_eq!(by("backup/quota"), Some(CheckStatus::Pass));
    assert_eq!(by("restore/duration"), Some(CheckStatus::Pass));
    // The fake's endpoint is no database: the restore check errors, the
    // run fails, and the throwaway instance is deleted all the same.
    assert_eq!(by("restore/users"), Some(CheckStatus::Error));
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(rds.instance_ids(), ["flexoraa-production-db"]);
    assert_eq!(
        run.steps.last().map(|s| (s.name.as_str(), s.status)),
        Some(("delete-restored", StepStatus::Succeeded))
    );
}

/// AWS answers an empty (or ignored) filter with every instance's
/// snapshots: moto made `verify_backups` judge another instance's backup
/// as this one's. Whatever comes back, only the named instance's snapshots
/// are judged or pruned, and an instance answered under another name is
/// judged as nothing.
#[tokio::test]
async fn another_instances_snapshots_are_never_judged_or_pruned() {
    let rds = Arc::new(
        FakeRds::new("db-a")
            .with_instance("db-b")
            .ignoring_filters(),
    );
    rds.add_snapshot(DbSnapshot {
        id: "rds:db-b-nightly".into(),
        status: "available".into(),
        created: Some(chrono::Utc::now() - chrono::Duration::hours(3)),
        instance: "db-b".into(),
        manual: false,
        encrypted: true,
        ..Default::default()
    });
    let b_manual = DbSnapshot {
        instance: "db-b".into(),
        ..ours(
            "runbookd-premigrate-20200101-000000",
            "migrate",
            "2020-01-01T00:00:00Z",
        )
    };
    rds.add_snapshot(b_manual);
    let yaml = format!(
        "jobs:
  verify:
    kind: verify_backups
    instance: db-a
  morning:
    kind: checklist
    checks:
      - {{name: db, kind: rds, instance: db-a}}
  migrate:
    kind: snapshot_migrate
    instance: db-a
    deployment: api-deployment
    keep: 1
    {FAST}
    snapshot_timeout: 5s
    migration_timeout: 5s
"
    );
    let w = world(
        &yaml,
        Adapters::real()
            .with_rds(rds.clone())
            .with_cluster(Arc::new(FakeCluster::default())),
    )
    .await;
    let run = w.run("verify").await;
    let latest = run
        .checks
        .iter()
        .find(|c| c.check == "backup/latest")
        .unwrap();
    assert_eq!(latest.status, CheckStatus::Fail, "{latest:?}");
    assert!(
        latest.reason.contains("no automated snapshots"),
        "{latest:?}"
    );
    assert_eq!(run.status, RunStatus::Failed);

    let run = w.run("morning").await;
    let backup = run.checks.iter().find(|c| c.check == "db/backup").unwrap();
    assert_eq!(backup.status, CheckStatus::Fail, "{backup:?}");
    assert!(
        backup.reason.contains("no automated snapshots of db-a"),
        "{backup:?}"
    );

    let run = w.run("migrate").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert!(
        rds.snapshot_ids()
            .contains(&"runbookd-premigrate-20200101-000000".to_string()),
        "db-b's snapshot was pruned by a job of db-a: {:?}",
        rds.snapshot_ids()
    );

    // Only db-b exists: asked for db-a, the fake answers with db-b.
    let rds = Arc::new(FakeRds::new("db-b").ignoring_filters());
    let w = world(
        &yaml,
        Adapters::real()
            .with_rds(rds.clone())
            .with_cluster(Arc::new(FakeCluster::default())),
    )
    .await;
    let run = w.run("migrate").await;
    assert_eq!(run.status, RunStatus::Failed);
    let err = run.error.clone().unwrap_or_default();
    assert!(err.contains("answered with `db-b`"), "{err}");
    assert!(
        !rds.calls()
            .iter()
            .any(|c| c.starts_with("CreateDBSnapshot")),
        "{:?}",
        rds.calls()
    );
    let run = w.run("morning").await;
    let status = run.checks.iter().find(|c| c.check == "db/status").unwrap();
    assert_eq!(status.status, CheckStatus::Error, "{status:?}");
}

#[cfg(feature = "integration")]
mod moto {
    //! The same flows against moto in server mode (RDS and Secrets
    //! Manager), with the cluster faked.
    use super::*;
    use runbookd::adapters::aws::Aws;

    fn endpoint() -> String {
        runbookd::testkit::service("RUNBOOKD_TEST_AWS_ENDPOINT", "moto (AWS)")
    }

    fn unique(prefix: &str) -> String {
        format!(
            "{prefix}-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap() % 1_000_000_000_000
        )
    }

    async fn sdk() -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(runbookd::adapters::aws::https_client())
            .endpoint_url(endpoint())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_rds::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await
    }

    #[tokio::test]
    async fn a_rotation_through_moto_stages_versions_and_leaks_nothing() {
        let name = unique("/flexoraa/test/jwt");
        let sm = aws_sdk_secretsmanager::Client::new(&sdk().await);
        sm.create_secret()
            .name(&name)
            .secret_string("first-value-abc")
            .send()
            .await
            .unwrap();
        let cluster = Arc::new(FakeCluster::default());
        let w = world(
            &rotate_yaml("").replace("/flexoraa/production/jwt-secret", &name),
            Adapters::real()
                .with_secrets(Arc::new(Aws::local(&endpoint())))
                .with_cluster(cluster),
        )
        .await;
        let run = w.run("rotate").await;
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
        // moto answers an unstaged GetSecretValue with the version it
        // created first, not AWSCURRENT: ask for the stage.
        let current = sm
            .get_secret_value()
            .secret_id(&name)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .unwrap();
        let new = current.secret_string().unwrap().to_string();
        assert_ne!(new, "first-value-abc");
        let previous = sm
            .get_secret_value()
            .secret_id(&name)
            .version_stage("AWSPREVIOUS")
            .send()
            .await
            .unwrap();
        assert_eq!(previous.secret_string(), Some("first-value-abc"));
        let d = sm.describe_secret().secret_id(&name).send().await.unwrap();
        let pending = d
            .version_ids_to_stages()
            .unwrap()
            .values()
            .filter(|s| s.iter().any(|x| x == "AWSPENDING"))
            .count();
        assert_eq!(pending, 0);
        // The value is nowhere in the history store's file.
        let all = serde_json::to_string(&w.store.list_runs(&Default::default()).await.unwrap())
            .unwrap()
            + &serde_json::to_string(&run).unwrap();
        assert!(!all.contains(&new));
    }

    #[tokio::test]
    async fn a_migration_through_moto_snapshots_with_tags_and_prunes() {
        let instance = unique("flexoraa-db");
        let rds = aws_sdk_rds::Client::new(&sdk().await);
        rds.create_db_instance()
            .db_instance_identifier(&instance)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .master_username("flexoraa")
            .master_user_password("not-a-real-password")
            .allocated_storage(20)
            .send()
            .await
            .unwrap();
        for old in [
            "runbookd-premigrate-20200101-000000",
            "runbookd-premigrate-20200102-000000",
        ] {
            rds.create_db_snapshot()
                .db_instance_identifier(&instance)
                .db_snapshot_identifier(format!("{old}-{}", &instance[12..]))
                .tags(
                    aws_sdk_rds::types::Tag::builder()
                        .key("created-by")
                        .value("runbookd")
                        .build(),
                )
                .tags(
                    aws_sdk_rds::types::Tag::builder()
                        .key("runbookd-job")
                        .value("migrate")
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        let cluster = Arc::new(FakeCluster::default());
        let w = world(
            &migrate_yaml("")
                .replace("flexoraa-production-db", &instance)
                .replace("keep: 2", "keep: 1"),
            Adapters::real()
                .with_rds(Arc::new(Aws::local(&endpoint())))
                .with_cluster(cluster),
        )
        .await;
        let run = w.run("migrate").await;
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
        let snapshot = run.steps[1].payload.as_ref().unwrap()["snapshot"]
            .as_str()
            .unwrap()
            .to_string();
        let left = rds
            .describe_db_snapshots()
            .db_instance_identifier(&instance)
            .snapshot_type("manual")
            .send()
            .await
            .unwrap();
        let ids: Vec<&str> = left
            .db_snapshots()
            .iter()
            .filter_map(|s| s.db_snapshot_identifier())
            .collect();
        assert_eq!(
            ids,
            [snapshot.as_str()],
            "keep: 1 leaves only the new snapshot"
        );
        let tags = left.db_snapshots()[0].tag_list();
        assert!(
            tags.iter()
                .any(|t| t.key() == Some("created-by") && t.value() == Some("runbookd"))
        );
    }

    /// moto, like AWS, answers an empty filter with every instance's
    /// snapshots. The adapter asks nothing with an empty identifier, keeps
    /// only the named instance's snapshots, and a job on an instance with
    /// no backup fails however many other instances have one.
    #[tokio::test]
    async fn through_moto_an_instance_is_judged_by_its_own_snapshots_only() {
        use runbookd::adapters::aws::{RdsApi, SecretsApi, Target};
        let (a, b) = (unique("db-a"), unique("db-b"));
        let rds = aws_sdk_rds::Client::new(&sdk().await);
        for id in [&a, &b] {
            rds.create_db_instance()
                .db_instance_identifier(id)
                .db_instance_class("db.t3.micro")
                .engine("postgres")
                .master_username("flexoraa")
                .master_user_password("not-a-real-password")
                .allocated_storage(20)
                .send()
                .await
                .unwrap();
        }
        // moto gives every new instance an automated snapshot; A loses its.
        let of_a = rds
            .describe_db_snapshots()
            .db_instance_identifier(&a)
            .snapshot_type("automated")
            .send()
            .await
            .unwrap();
        for snap in of_a.db_snapshots() {
            rds.delete_db_snapshot()
                .db_snapshot_identifier(snap.db_snapshot_identifier().unwrap())
                .send()
                .await
                .unwrap();
        }
        let aws = Aws::local(&endpoint());
        let t = Target::default();
        for e in [
            aws.automated_snapshots(&t, "").await.unwrap_err(),
            aws.manual_snapshots(&t, Some("")).await.unwrap_err(),
            aws.instance(&t, "").await.unwrap_err(),
            aws.describe(&t, "").await.unwrap_err(),
        ] {
            assert!(e.message.contains("identifier names no"), "{e}");
        }
        assert_eq!(aws.automated_snapshots(&t, &a).await.unwrap(), vec![]);
        let of_b = aws.automated_snapshots(&t, &b).await.unwrap();
        assert!(!of_b.is_empty());
        assert!(of_b.iter().all(|s| s.instance == b), "{of_b:?}");
        assert_eq!(aws.instance(&t, &a).await.unwrap().id, a);

        let yaml = format!(
            "jobs:
  verify:
    kind: verify_backups
    instance: {a}
  morning:
    kind: checklist
    checks:
      - {{name: db, kind: rds, instance: {a}}}
"
        );
        let w = world(&yaml, Adapters::real().with_rds(Arc::new(aws))).await;
        let run = w.run("verify").await;
        let latest = run
            .checks
            .iter()
            .find(|c| c.check == "backup/latest")
            .unwrap();
        assert_eq!(latest.status, CheckStatus::Fail, "{latest:?}");
        assert!(
            latest.reason.contains("no automated snapshots"),
            "{latest:?}"
        );
        let run = w.run("morning").await;
        let backup = run.checks.iter().find(|c| c.check == "db/backup").unwrap();
        assert_eq!(backup.status, CheckStatus::Fail, "{backup:?}");
        // With the instance left empty, nothing loads, so nothing is asked.
        let empty = yaml.replace(&a, "\"\"");
        let err = runbookd::jobs::load_str(std::path::Path::new("jobs.yaml"), &empty, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`instance` must not be empty"), "{err}");
    }
}
