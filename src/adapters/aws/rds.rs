//! RDS as runbookd uses it: an instance's state, its snapshots, a manual
//! snapshot made and waited for, a snapshot restored to a throwaway
//! instance, and both deleted again.

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

impl DbSnapshot {
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

fn instance_of(i: &aws_sdk_rds::types::DbInstance, id: &str) -> DbInstance {
    DbInstance {
        id: i.db_instance_identifier().unwrap_or(id).to_string(),
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
        Ok(out)
    }
}

#[async_trait]
impl RdsApi for Aws {
    async fn instance(&self, target: &Target, id: &str) -> Result<DbInstance, AwsError> {
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
        Ok(instance_of(i, id))
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
        let r = self
            .rds(target)
            .await
            .describe_db_snapshots()
            .db_snapshot_identifier(id)
            .send()
            .await
            .map_err(classify);
        match r {
            Ok(out) => Ok(out.db_snapshots().first().map(snapshot_of)),
            Err(e) if e.kind == AwsErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete_snapshot(&self, target: &Target, id: &str) -> Result<(), AwsError> {
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
        out.db_instance()
            .map(|i| instance_of(i, instance))
            .ok_or_else(|| AwsError {
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
            .map(|e| RdsEvent {
                at: time_of(e.date()),
                message: e.message().unwrap_or("").to_string(),
                categories: e.event_categories().to_vec(),
            })
            .collect())
    }

    async fn delete_instance(&self, target: &Target, id: &str) -> Result<(), AwsError> {
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
