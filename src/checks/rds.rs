//! `kind: rds`: the database instance is `available`, its newest automated
//! snapshot is `available` and younger than `max_snapshot_age` (the
//! runbook's "Verify backup completion (last 24h)"), and point-in-time
//! restore is not lagging (`LatestRestorableTime`).
//!
//! The verdict is a pure function of `now` and what AWS said, tested with a
//! fake: moto makes every snapshot `available` at once and pins
//! `LatestRestorableTime` to now, so it cannot show a stale backup.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Check, CheckContext, CheckResult, CheckStatus, Part, fmt_age};
use crate::adapters::aws::{AwsError, DbInstance, DbSnapshot, Target, owned_by, retry_throttled};
use crate::model::Dur;
use crate::yaml::Ident;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdsCheck {
    /// DB instance identifier.
    pub instance: Ident,
    /// AWS region. Default: the standard chain (`AWS_REGION`, profile).
    pub region: Option<Ident>,
    /// Newest automated snapshot older than this fails. Default `24h`.
    pub max_snapshot_age: Option<Dur>,
    /// `LatestRestorableTime` further behind than this fails. Default `15m`.
    pub max_restore_lag: Option<Dur>,
}

pub struct Limits {
    pub max_snapshot_age: Duration,
    pub max_restore_lag: Duration,
}

/// What one rds check reports, each a result of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdsPart {
    Status,
    Backup,
    Restorable,
}

impl Part for RdsPart {
    const ALL: &'static [Self] = &[RdsPart::Status, RdsPart::Backup, RdsPart::Restorable];

    fn word(self) -> Option<&'static str> {
        Some(match self {
            RdsPart::Status => "status",
            RdsPart::Backup => "backup",
            RdsPart::Restorable => "restorable",
        })
    }
}

impl Limits {
    /// The part's threshold as configured.
    fn threshold(&self, part: RdsPart) -> String {
        match part {
            RdsPart::Status => "available".to_string(),
            RdsPart::Backup => format!(
                "newest automated snapshot available, younger than {}",
                fmt_age(self.max_snapshot_age)
            ),
            RdsPart::Restorable => format!(
                "LatestRestorableTime within {}",
                fmt_age(self.max_restore_lag)
            ),
        }
    }
}

#[async_trait]
impl Check for RdsCheck {
    fn target(&self) -> String {
        format!("RDS instance {}", self.instance)
    }

    async fn run(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult> {
        self.check(name, ctx).await
    }
}

impl RdsCheck {
    fn limits(&self) -> Limits {
        Limits {
            max_snapshot_age: self
                .max_snapshot_age
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(24 * 3600)),
            max_restore_lag: self
                .max_restore_lag
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(15 * 60)),
        }
    }

    async fn check(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult> {
        let target = Target {
            region: self.region.as_ref().map(|r| r.to_string()),
        };
        let rds = &ctx.adapters.rds;
        // Throttles retried within the check's own timeout.
        let (instance, snapshots) = tokio::join!(
            retry_throttled(Duration::from_secs(1), None, || rds
                .instance(&target, &self.instance)),
            retry_throttled(Duration::from_secs(1), None, || rds
                .automated_snapshots(&target, &self.instance))
        );
        let instance = match instance.and_then(|i| i.belonging_to(&self.instance)) {
            Ok(i) => i,
            Err(e) => {
                return vec![
                    CheckResult::error(
                        RdsPart::Status.result_name(name),
                        format!("describe DB instance {}: {e}", self.instance),
                    )
                    .threshold(self.limits().threshold(RdsPart::Status)),
                ];
            }
        };
        // Another instance's snapshot must never pass for this one's.
        let snapshots = snapshots
            .map(|list| owned_by(list, &self.instance))
            .map_err(|source| SnapshotsUnread {
                instance: self.instance.to_string(),
                source,
            });
        assess(name, ctx.now, &instance, snapshots, &self.limits())
    }
}

fn age_text(d: chrono::Duration) -> String {
    fmt_age(Duration::from_secs(d.num_seconds().max(0) as u64))
}

/// The automated snapshots could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("describe automated snapshots of {instance}: {source}")]
pub struct SnapshotsUnread {
    pub instance: String,
    pub source: AwsError,
}

/// The three verdicts. Pure.
pub fn assess(
    name: &str,
    now: DateTime<Utc>,
    instance: &DbInstance,
    snapshots: Result<Vec<DbSnapshot>, SnapshotsUnread>,
    limits: &Limits,
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let status_ok = instance.status == "available";
    out.push(
        CheckResult::new(
            RdsPart::Status.result_name(name),
            if status_ok {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            },
            format!("instance {} is {}", instance.id, instance.status),
        )
        .text(instance.status.clone())
        .threshold(limits.threshold(RdsPart::Status)),
    );

    let max_age =
        chrono::Duration::from_std(limits.max_snapshot_age).unwrap_or(chrono::Duration::MAX);
    let backup = RdsPart::Backup.result_name(name);
    let backup_threshold = limits.threshold(RdsPart::Backup);
    out.push(match snapshots {
        Err(e) => CheckResult::error(backup, e.to_string()).threshold(backup_threshold),
        Ok(list) => {
            let newest = list
                .iter()
                .filter(|s| s.created.is_some())
                .max_by_key(|s| s.created);
            match newest {
                None => CheckResult::new(
                    backup,
                    CheckStatus::Fail,
                    format!("no automated snapshots of {}", instance.id),
                )
                .threshold(backup_threshold),
                Some(s) => {
                    let created = s.created.expect("filtered");
                    let age = now - created;
                    let hours = age.num_seconds() as f64 / 3600.0;
                    let (status, reason) = if s.status != "available" {
                        (
                            CheckStatus::Fail,
                            format!(
                                "newest snapshot {} is {} (taken {} ago)",
                                s.id,
                                s.status,
                                age_text(age)
                            ),
                        )
                    } else if age > max_age {
                        (
                            CheckStatus::Fail,
                            format!("newest snapshot {} is {} old", s.id, age_text(age)),
                        )
                    } else {
                        (
                            CheckStatus::Pass,
                            format!("newest snapshot {} taken {} ago", s.id, age_text(age)),
                        )
                    };
                    CheckResult::new(backup, status, reason)
                        .number((hours * 100.0).round() / 100.0)
                        .threshold(backup_threshold)
                }
            }
        }
    });

    let restore = RdsPart::Restorable.result_name(name);
    let lag_max =
        chrono::Duration::from_std(limits.max_restore_lag).unwrap_or(chrono::Duration::MAX);
    let restore_threshold = limits.threshold(RdsPart::Restorable);
    out.push(match instance.latest_restorable_time {
        None => CheckResult::new(
            restore,
            CheckStatus::Fail,
            format!(
                "instance {} reports no LatestRestorableTime (backup retention {} days)",
                instance.id,
                instance.backup_retention_days.unwrap_or(0)
            ),
        )
        .threshold(restore_threshold),
        Some(t) => {
            let lag = now - t;
            let status = if lag > lag_max {
                CheckStatus::Fail
            } else {
                CheckStatus::Pass
            };
            CheckResult::new(
                restore,
                status,
                format!(
                    "restorable to {} ({} behind)",
                    t.to_rfc3339(),
                    age_text(lag)
                ),
            )
            .number(lag.num_seconds().max(0) as f64)
            .threshold(restore_threshold)
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// History stores results under these names: they never change.
    #[test]
    fn parts_are_named_as_history_knows_them() {
        let names: Vec<String> = RdsPart::ALL.iter().map(|p| p.result_name("db")).collect();
        assert_eq!(names, ["db/status", "db/backup", "db/restorable"]);
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn instance(status: &str, restorable: Option<&str>) -> DbInstance {
        DbInstance {
            id: "flexoraa-production-db".into(),
            status: status.into(),
            latest_restorable_time: restorable.map(t),
            backup_retention_days: Some(7),
            ..Default::default()
        }
    }

    fn snap(id: &str, status: &str, created: &str) -> DbSnapshot {
        DbSnapshot {
            id: id.into(),
            status: status.into(),
            created: Some(t(created)),
            instance: "flexoraa-production-db".into(),
            ..Default::default()
        }
    }

    /// (case, instance, snapshots, expected statuses of status/backup/restorable, reason fragment)
    #[test]
    fn backup_verdict_table() {
        let now = t("2026-11-29T09:00:00Z");
        let limits = Limits {
            max_snapshot_age: Duration::from_secs(24 * 3600),
            max_restore_lag: Duration::from_secs(900),
        };
        let ok = instance("available", Some("2026-11-29T08:55:00Z"));
        let cases: Vec<(
            &str,
            DbInstance,
            Result<Vec<DbSnapshot>, SnapshotsUnread>,
            [CheckStatus; 3],
            &str,
        )> = vec![
            (
                "fresh backup",
                ok.clone(),
                Ok(vec![
                    snap("old", "available", "2026-11-27T03:00:00Z"),
                    snap("new", "available", "2026-11-29T03:00:00Z"),
                ]),
                [CheckStatus::Pass, CheckStatus::Pass, CheckStatus::Pass],
                "newest snapshot new taken 6h ago",
            ),
            (
                "stale backup",
                ok.clone(),
                Ok(vec![snap("old", "available", "2026-11-27T03:00:00Z")]),
                [CheckStatus::Pass, CheckStatus::Fail, CheckStatus::Pass],
                "is 2d 6h old",
            ),
            (
                "newest still creating",
                ok.clone(),
                Ok(vec![snap("new", "creating", "2026-11-29T08:30:00Z")]),
                [CheckStatus::Pass, CheckStatus::Fail, CheckStatus::Pass],
                "is creating",
            ),
            (
                "no snapshots",
                ok.clone(),
                Ok(vec![]),
                [CheckStatus::Pass, CheckStatus::Fail, CheckStatus::Pass],
                "no automated snapshots",
            ),
            (
                "snapshot listing failed",
                ok.clone(),
                Err(SnapshotsUnread {
                    instance: "flexoraa-production-db".into(),
                    source: AwsError {
                        kind: crate::adapters::aws::AwsErrorKind::Auth,
                        message: "denied".into(),
                    },
                }),
                [CheckStatus::Pass, CheckStatus::Error, CheckStatus::Pass],
                "describe automated snapshots of flexoraa-production-db: auth: denied",
            ),
            (
                "instance rebooting, restore lagging",
                instance("rebooting", Some("2026-11-29T07:00:00Z")),
                Ok(vec![snap("new", "available", "2026-11-29T03:00:00Z")]),
                [CheckStatus::Fail, CheckStatus::Pass, CheckStatus::Fail],
                "is rebooting",
            ),
            (
                "no point-in-time restore",
                instance("available", None),
                Ok(vec![snap("new", "available", "2026-11-29T03:00:00Z")]),
                [CheckStatus::Pass, CheckStatus::Pass, CheckStatus::Fail],
                "no LatestRestorableTime",
            ),
        ];
        for (case, inst, snaps, want, fragment) in cases {
            let got = assess("db", now, &inst, snaps, &limits);
            let statuses: Vec<CheckStatus> = got.iter().map(|r| r.status).collect();
            assert_eq!(statuses, want, "{case}: {got:#?}");
            assert!(
                got.iter().any(|r| r.reason.contains(fragment)),
                "{case}: {got:#?}"
            );
            assert_eq!(got[0].check, "db/status");
        }
    }

    /// The check through its seam with a fake RDS and an injected clock:
    /// the same snapshot is fresh at 09:00 and stale a day later, which
    /// moto (snapshots always fresh) cannot show.
    #[derive(Debug)]
    struct FakeRds {
        instance: DbInstance,
        snapshots: Vec<DbSnapshot>,
    }

    #[async_trait::async_trait]
    impl crate::adapters::aws::RdsApi for FakeRds {
        async fn instance(
            &self,
            _: &Target,
            id: &str,
        ) -> Result<DbInstance, crate::adapters::aws::AwsError> {
            assert_eq!(id, self.instance.id);
            Ok(self.instance.clone())
        }
        async fn automated_snapshots(
            &self,
            _: &Target,
            _: &str,
        ) -> Result<Vec<DbSnapshot>, crate::adapters::aws::AwsError> {
            Ok(self.snapshots.clone())
        }
    }

    #[tokio::test]
    async fn through_the_seam_with_an_injected_clock() {
        let fake = FakeRds {
            instance: instance("available", Some("2026-11-29T08:58:00Z")),
            snapshots: vec![snap("rds:nightly", "available", "2026-11-29T03:00:00Z")],
        };
        let adapters = std::sync::Arc::new(
            crate::adapters::Adapters::real().with_rds(std::sync::Arc::new(fake)),
        );
        let check = RdsCheck {
            instance: crate::yaml::Ident::new("flexoraa-production-db"),
            region: None,
            max_snapshot_age: None,
            max_restore_lag: None,
        };
        let at = |now: &str| CheckContext {
            now: t(now),
            adapters: adapters.clone(),
            timeout: Duration::from_secs(5),
            redactor: Default::default(),
        };
        let fresh = check.run("db", &at("2026-11-29T09:00:00Z")).await;
        assert_eq!(fresh[1].status, CheckStatus::Pass, "{fresh:#?}");
        let stale = check.run("db", &at("2026-11-30T09:00:00Z")).await;
        assert_eq!(stale[1].status, CheckStatus::Fail, "{stale:#?}");
        assert!(
            stale[1].reason.contains("is 30h old"),
            "{}",
            stale[1].reason
        );
        assert_eq!(
            stale[2].status,
            CheckStatus::Fail,
            "restore lag of a day: {stale:#?}"
        );
    }
}
