//! RDS as runbookd uses it: an instance's state, its snapshots, a manual
//! snapshot made and waited for, a snapshot restored to a throwaway
//! instance, and both deleted again.
//!
//! Every call names its instance or snapshot exactly: an empty identifier
//! is refused before any request (RDS, and moto, read an empty filter as
//! "every one", and would answer for another instance), and what comes back
//! must belong to what was asked: snapshots of another instance are dropped,
//! an instance answered under another name is an error.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Aws, AwsError, AwsErrorKind, Target, classify, time_of};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DbInstance {
    pub id: String,
    pub status: String,
    pub latest_restorable_time: Option<DateTime<Utc>>,
    pub backup_retention_days: Option<i32>,
    /// `host:port`, once the instance has one.
    pub endpoint: Option<String>,
    pub storage_encrypted: bool,
}

/// One RDS event about an instance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RdsEvent {
    pub at: Option<DateTime<Utc>>,
    pub message: String,
    /// `availability`, `failover`, `maintenance`, `low storage`, …
    pub categories: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DbSnapshot {
    pub id: String,
    /// `creating`, `available`, `failed`, …
    pub status: String,
    pub created: Option<DateTime<Utc>>,
    pub instance: String,
    /// Made by hand (or by runbookd), not by RDS's backup window.
    pub manual: bool,
    pub encrypted: bool,
    pub tags: Vec<(String, String)>,
}

impl DbInstance {
    /// Whether this is the instance `id` (RDS identifiers are
    /// case-insensitive; an empty one names nothing).
    pub fn is(&self, id: &str) -> bool {
        !id.is_empty() && self.id.eq_ignore_ascii_case(id)
    }

    /// The instance if it is `id`, else an error naming both.
    pub fn belonging_to(self, id: &str) -> Result<DbInstance, AwsError> {
        if self.is(id) {
            return Ok(self);
        }
        Err(AwsError {
            kind: AwsErrorKind::Other,
            message: format!(
                "asked for DB instance `{id}`, AWS answered with `{}`; nothing is judged from it",
                self.id
            ),
        })
    }
}

/// The snapshots of `instance` among `snapshots`: an answer that holds
/// another instance's must never be judged as this one's.
pub fn owned_by(snapshots: Vec<DbSnapshot>, instance: &str) -> Vec<DbSnapshot> {
    snapshots
        .into_iter()
        .filter(|s| s.is_of(instance))
        .collect()
}

/// Refuses an empty or blank identifier before any call. `what` names it
/// ("DB instance").
pub fn exact(what: &str, id: &str) -> Result<(), AwsError> {
    if id.trim().is_empty() {
        return Err(AwsError {
            kind: AwsErrorKind::Other,
            message: format!(
                "an empty {what} identifier names no {what} (AWS would answer with every one); nothing was asked"
            ),
        });
    }
    Ok(())
}

impl DbSnapshot {
    /// Whether this is a snapshot of `instance`.
    pub fn is_of(&self, instance: &str) -> bool {
        !instance.is_empty() && self.instance.eq_ignore_ascii_case(instance)
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[async_trait]
pub trait RdsApi: Send + Sync + std::fmt::Debug {
    async fn instance(&self, target: &Target, id: &str) -> Result<DbInstance, AwsError>;

    /// `SnapshotType=automated` snapshots of the instance.
    async fn automated_snapshots(
        &self,
        target: &Target,
        id: &str,
    ) -> Result<Vec<DbSnapshot>, AwsError>;

    /// Manual snapshots of one instance, or of the whole region (`None`:
    /// they count against one quota).
    async fn manual_snapshots(
        &self,
        target: &Target,
        instance: Option<&str>,
    ) -> Result<Vec<DbSnapshot>, AwsError> {
        let _ = (target, instance);
        Err(unsupported("list manual snapshots"))
    }

    /// `CreateDBSnapshot`, tagged.
    async fn create_snapshot(
        &self,
        target: &Target,
        instance: &str,
        snapshot: &str,
        tags: &[(String, String)],
    ) -> Result<DbSnapshot, AwsError> {
        let _ = (target, instance, snapshot, tags);
        Err(unsupported("create a snapshot"))
    }

    /// One snapshot by its identifier; `None` when it does not exist.
    async fn snapshot(&self, target: &Target, id: &str) -> Result<Option<DbSnapshot>, AwsError> {
        let _ = (target, id);
        Err(unsupported("describe a snapshot"))
    }

    async fn delete_snapshot(&self, target: &Target, id: &str) -> Result<(), AwsError> {
        let _ = (target, id);
        Err(unsupported("delete a snapshot"))
    }

    /// `RestoreDBInstanceFromDBSnapshot` into a new instance of `class`,
    /// tagged.
    async fn restore_instance(
        &self,
        target: &Target,
        snapshot: &str,
        instance: &str,
        class: &str,
        tags: &[(String, String)],
    ) -> Result<DbInstance, AwsError> {
        let _ = (target, snapshot, instance, class, tags);
        Err(unsupported("restore a snapshot"))
    }

    /// The instance's events of the last `minutes` (`DescribeEvents`:
    /// reboots, failovers, maintenance, storage full), oldest first.
    async fn events(
        &self,
        target: &Target,
        id: &str,
        minutes: i32,
    ) -> Result<Vec<RdsEvent>, AwsError> {
        let _ = (target, id, minutes);
        Err(unsupported("describe events"))
    }

    /// `DeleteDBInstance` without a final snapshot (it is a throwaway).
    async fn delete_instance(&self, target: &Target, id: &str) -> Result<(), AwsError> {
        let _ = (target, id);
        Err(unsupported("delete an instance"))
    }
}

fn unsupported(what: &str) -> AwsError {
    AwsError {
        kind: AwsErrorKind::Other,
        message: format!("this RDS client cannot {what}"),
    }
}

fn tags_of(list: &[aws_sdk_rds::types::Tag]) -> Vec<(String, String)> {
    list.iter()
        .map(|t| {
            (
                t.key().unwrap_or("").to_string(),
                t.value().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn sdk_tags(tags: &[(String, String)]) -> Vec<aws_sdk_rds::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect()
}

fn snapshot_of(s: &aws_sdk_rds::types::DbSnapshot) -> DbSnapshot {
    DbSnapshot {
        id: s.db_snapshot_identifier().unwrap_or("").to_string(),
        status: s.status().unwrap_or("unknown").to_string(),
        created: time_of(s.snapshot_create_time()),
        instance: s.db_instance_identifier().unwrap_or("").to_string(),
        manual: s.snapshot_type() == Some("manual"),
        encrypted: s.encrypted().unwrap_or(false),
        tags: tags_of(s.tag_list()),
    }
}

fn instance_of(i: &aws_sdk_rds::types::DbInstance) -> DbInstance {
    DbInstance {
        id: i.db_instance_identifier().unwrap_or("").to_string(),
        status: i.db_instance_status().unwrap_or("unknown").to_string(),
        latest_restorable_time: time_of(i.latest_restorable_time()),
        backup_retention_days: i.backup_retention_period(),
        endpoint: i
            .endpoint()
            .and_then(|e| Some(format!("{}:{}", e.address()?, e.port().unwrap_or(5432)))),
        storage_encrypted: i.storage_encrypted().unwrap_or(false),
    }
}

impl Aws {
    async fn rds(&self, target: &Target) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::new(&self.config(target).await)
    }

    async fn snapshots(
        &self,
        target: &Target,
        instance: Option<&str>,
        kind: &str,
    ) -> Result<Vec<DbSnapshot>, AwsError> {
        if let Some(i) = instance {
            exact("DB instance", i)?;
        }
        let mut out = Vec::new();
        let mut pages = self
            .rds(target)
            .await
            .describe_db_snapshots()
            .set_db_instance_identifier(instance.map(str::to_string))
            .snapshot_type(kind)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            out.extend(page.db_snapshots().iter().map(snapshot_of));
        }
        Ok(match instance {
            Some(i) => owned_by(out, i),
            None => out,
        })
    }
}

#[async_trait]
impl RdsApi for Aws {
    async fn instance(&self, target: &Target, id: &str) -> Result<DbInstance, AwsError> {
        exact("DB instance", id)?;
        let out = self
            .rds(target)
            .await
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(classify)?;
        let i = out.db_instances().first().ok_or_else(|| AwsError {
            kind: AwsErrorKind::NotFound,
            message: format!("no DB instance `{id}`"),
        })?;
        instance_of(i).belonging_to(id)
    }

    async fn automated_snapshots(
        &self,
        target: &Target,
        id: &str,
    ) -> Result<Vec<DbSnapshot>, AwsError> {
        self.snapshots(target, Some(id), "automated").await
    }

    async fn manual_snapshots(
        &self,
        target: &Target,
        instance: Option<&str>,
    ) -> Result<Vec<DbSnapshot>, AwsError> {
        self.snapshots(target, instance, "manual").await
    }

    async fn create_snapshot(
        &self,
        target: &Target,
        instance: &str,
        snapshot: &str,
        tags: &[(String, String)],
    ) -> Result<DbSnapshot, AwsError> {
        exact("DB instance", instance)?;
        exact("DB snapshot", snapshot)?;
        let out = self
            .rds(target)
            .await
            .create_db_snapshot()
            .db_instance_identifier(instance)
            .db_snapshot_identifier(snapshot)
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(classify)?;
        out.db_snapshot().map(snapshot_of).ok_or_else(|| AwsError {
            kind: AwsErrorKind::Other,
            message: format!("CreateDBSnapshot of {instance} returned no snapshot"),
        })
    }

    async fn snapshot(&self, target: &Target, id: &str) -> Result<Option<DbSnapshot>, AwsError> {
        exact("DB snapshot", id)?;
        let r = self
            .rds(target)
            .await
            .describe_db_snapshots()
            .db_snapshot_identifier(id)
            .send()
            .await
            .map_err(classify);
        match r {
            Ok(out) => Ok(out
                .db_snapshots()
                .iter()
                .map(snapshot_of)
                .find(|s| s.id == id)),
            Err(e) if e.kind == AwsErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete_snapshot(&self, target: &Target, id: &str) -> Result<(), AwsError> {
        exact("DB snapshot", id)?;
        self.rds(target)
            .await
            .delete_db_snapshot()
            .db_snapshot_identifier(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn restore_instance(
        &self,
        target: &Target,
        snapshot: &str,
        instance: &str,
        class: &str,
        tags: &[(String, String)],
    ) -> Result<DbInstance, AwsError> {
        exact("DB snapshot", snapshot)?;
        exact("DB instance", instance)?;
        let out = self
            .rds(target)
            .await
            .restore_db_instance_from_db_snapshot()
            .db_snapshot_identifier(snapshot)
            .db_instance_identifier(instance)
            .db_instance_class(class)
            .publicly_accessible(false)
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(classify)?;
        out.db_instance().map(instance_of).ok_or_else(|| AwsError {
            kind: AwsErrorKind::Other,
            message: format!("restoring {snapshot} returned no instance"),
        })
    }

    async fn events(
        &self,
        target: &Target,
        id: &str,
        minutes: i32,
    ) -> Result<Vec<RdsEvent>, AwsError> {
        exact("DB instance", id)?;
        let out = self
            .rds(target)
            .await
            .describe_events()
            .source_type(aws_sdk_rds::types::SourceType::DbInstance)
            .source_identifier(id)
            .duration(minutes)
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .events()
            .iter()
            .filter(|e| {
                e.source_identifier()
                    .is_none_or(|s| s.eq_ignore_ascii_case(id))
            })
            .map(|e| RdsEvent {
                at: time_of(e.date()),
                message: e.message().unwrap_or("").to_string(),
                categories: e.event_categories().to_vec(),
            })
            .collect())
    }

    async fn delete_instance(&self, target: &Target, id: &str) -> Result<(), AwsError> {
        exact("DB instance", id)?;
        self.rds(target)
            .await
            .delete_db_instance()
            .db_instance_identifier(id)
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, instance: &str) -> DbSnapshot {
        DbSnapshot {
            id: id.into(),
            instance: instance.into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_named_instances_snapshots_are_kept() {
        let all = vec![snap("a1", "db-a"), snap("b1", "db-b"), snap("a2", "DB-A")];
        let ids = |l: Vec<DbSnapshot>| l.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(owned_by(all.clone(), "db-a")), ["a1", "a2"]);
        assert_eq!(ids(owned_by(all.clone(), "db-c")), Vec::<String>::new());
        assert_eq!(ids(owned_by(all, "")), Vec::<String>::new());
    }

    #[test]
    fn an_instance_answered_under_another_name_is_an_error() {
        let b = DbInstance {
            id: "db-b".into(),
            ..Default::default()
        };
        assert!(b.clone().belonging_to("DB-B").is_ok());
        let e = b.clone().belonging_to("db-a").unwrap_err();
        assert!(e.message.contains("answered with `db-b`"), "{e}");
        assert!(b.belonging_to("").is_err());
        for id in ["", "  "] {
            assert!(exact("DB instance", id).is_err(), "{id:?}");
        }
        assert!(exact("DB instance", "db-a").is_ok());
    }
}
