//! The production history store.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};

use super::{
    CONNECT_TIMEOUT, Finish, HistoryStore, NewRun, Result, Run, RunFilter, RunId, STORE_TIMEOUT,
    StoreError, check_from_row, parse_enum, timed,
};
use crate::checks::{CheckResult, Measured};
use crate::runlog::LogSnapshot;
use crate::secret::redact_url;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

fn migrate_on_one_connection(
    pool: PgPool,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), sqlx::migrate::MigrateError>> + Send>,
> {
    Box::pin(async move {
        let mut conn = pool.acquire().await?;
        // `run_direct` is what `run` calls; sqlx keeps it public for this
        // exact "Acquire is not general enough" error with a borrowed
        // connection.
        let r = MIGRATOR.run_direct(None, &mut *conn, false).await;
        conn.return_to_pool().await;
        r
    })
}

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    url: String,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let shown = redact_url(url);
        let connect_err = |source| StoreError::Connect {
            url: shown.clone(),
            source,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(connect_err)?
            .application_name("runbookd");
        // The pool retries a refused connection until its acquire timeout
        // and then reports only "pool timed out". A direct connection raced
        // beside it fails at once with the real cause (refused, DNS, auth);
        // when the server is fine the pool wins and the probe is dropped, so
        // a healthy start pays no extra round trip.
        let pool_connect = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(STORE_TIMEOUT)
            .connect_with(options.clone());
        let probe = async {
            use sqlx::Connection;
            match sqlx::PgConnection::connect_with(&options).await {
                Err(e) => e,
                Ok(_) => std::future::pending().await,
            }
        };
        let pool = tokio::time::timeout(CONNECT_TIMEOUT, async {
            tokio::select! {
                r = pool_connect => r,
                e = probe => Err(e),
            }
        })
        .await
        .map_err(|_| StoreError::Timeout {
            url: shown.clone(),
            op: "connect",
            after: CONNECT_TIMEOUT,
        })?
        .map_err(connect_err)?;
        Ok(PostgresStore { pool, url: shown })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn run_from_row(&self, row: &PgRow, with_log: bool) -> Result<Run> {
        let url = &self.url;
        let get = |e: sqlx::Error| StoreError::Query {
            url: url.clone(),
            op: "decode run",
            source: e,
        };
        let trigger: String = row.try_get("trigger").map_err(get)?;
        let status: String = row.try_get("status").map_err(get)?;
        let attempt: i32 = row.try_get("attempt").map_err(get)?;
        Ok(Run {
            id: row.try_get("id").map_err(get)?,
            job: row.try_get("job").map_err(get)?,
            trigger: parse_enum(url, &trigger)?,
            triggered_by: row.try_get("triggered_by").map_err(get)?,
            scheduled_for: row.try_get("scheduled_for").map_err(get)?,
            started_at: row.try_get("started_at").map_err(get)?,
            finished_at: row.try_get("finished_at").map_err(get)?,
            status: parse_enum(url, &status)?,
            attempt: attempt.max(1) as u32,
            error: row.try_get("error").map_err(get)?,
            dry_run: row.try_get("dry_run").map_err(get)?,
            owner: row.try_get("owner").map_err(get)?,
            heartbeat_at: row.try_get("heartbeat_at").map_err(get)?,
            retry_of: row.try_get("retry_of").map_err(get)?,
            log: if with_log {
                Some(row.try_get("log").map_err(get)?)
            } else {
                None
            },
            log_truncated: row.try_get("log_truncated").map_err(get)?,
            checks: Vec::new(),
        })
    }
}

#[async_trait]
impl HistoryStore for PostgresStore {
    fn url(&self) -> &str {
        &self.url
    }

    async fn migrate(&self) -> Result<()> {
        // On one connection handed back before returning: with the pool's
        // lazy return a CLI command would open a second connection (a second
        // TLS handshake, ~90 ms) for its first query.
        let run = migrate_on_one_connection(self.pool.clone());
        match tokio::time::timeout(STORE_TIMEOUT * 3, run).await {
            Ok(r) => r.map_err(|source| StoreError::Migrate {
                url: self.url.clone(),
                source,
            }),
            Err(_) => Err(StoreError::Timeout {
                url: self.url.clone(),
                op: "migrate",
                after: STORE_TIMEOUT * 3,
            }),
        }
    }

    async fn insert_run(&self, run: &NewRun) -> Result<Option<RunId>> {
        timed(
            &self.url,
            "insert run",
            sqlx::query_scalar::<_, i64>(include_str!("sql/postgres/insert_run.sql"))
                .bind(&run.job)
                .bind(run.trigger.as_str())
                .bind(&run.triggered_by)
                .bind(run.scheduled_for)
                .bind(run.started_at)
                .bind(run.status.as_str())
                .bind(run.attempt as i32)
                .bind(&run.error)
                .bind(run.dry_run)
                .bind(&run.owner)
                .bind(run.retry_of)
                .fetch_optional(&self.pool),
        )
        .await
    }

    async fn heartbeat(
        &self,
        id: RunId,
        at: DateTime<Utc>,
        log: Option<&LogSnapshot>,
    ) -> Result<bool> {
        let cancel = timed(
            &self.url,
            "heartbeat",
            sqlx::query_scalar::<_, bool>(include_str!("sql/postgres/heartbeat.sql"))
                .bind(id)
                .bind(at)
                .bind(log.map(|l| l.text.as_str()))
                .bind(log.map(|l| l.truncated))
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(cancel.unwrap_or(false))
    }

    async fn finish_run(&self, id: RunId, f: &Finish) -> Result<()> {
        timed(
            &self.url,
            "finish run",
            sqlx::query(include_str!("sql/postgres/finish_run.sql"))
                .bind(id)
                .bind(f.status.as_str())
                .bind(f.finished_at)
                .bind(&f.error)
                .bind(&f.log.text)
                .bind(f.log.truncated)
                .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    async fn request_cancel(&self, id: RunId) -> Result<bool> {
        let r = timed(
            &self.url,
            "request cancel",
            sqlx::query_scalar::<_, i64>(include_str!("sql/postgres/request_cancel.sql"))
                .bind(id)
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(r.is_some())
    }

    async fn running(&self, job: Option<&str>) -> Result<Vec<Run>> {
        let rows = timed(
            &self.url,
            "list running runs",
            sqlx::query(include_str!("sql/postgres/running.sql"))
                .bind(job)
                .fetch_all(&self.pool),
        )
        .await?;
        rows.iter().map(|r| self.run_from_row(r, false)).collect()
    }

    async fn abandon_stale(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<RunId>> {
        timed(
            &self.url,
            "abandon stale runs",
            sqlx::query_scalar::<_, i64>(include_str!("sql/postgres/abandon_stale.sql"))
                .bind(stale_before)
                .bind(now)
                .fetch_all(&self.pool),
        )
        .await
    }

    async fn abandon(&self, id: RunId, now: DateTime<Utc>, reason: &str) -> Result<bool> {
        let r = timed(
            &self.url,
            "abandon run",
            sqlx::query_scalar::<_, i64>(include_str!("sql/postgres/abandon.sql"))
                .bind(id)
                .bind(now)
                .bind(reason)
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(r.is_some())
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        let rows = timed(
            &self.url,
            "list runs",
            sqlx::query(include_str!("sql/postgres/list_runs.sql"))
                .bind(filter.job.as_deref())
                .bind(filter.since)
                .bind(i64::from(filter.limit))
                .fetch_all(&self.pool),
        )
        .await?;
        rows.iter().map(|r| self.run_from_row(r, false)).collect()
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        let row = timed(
            &self.url,
            "get run",
            sqlx::query(include_str!("sql/postgres/get_run.sql"))
                .bind(id)
                .fetch_optional(&self.pool),
        )
        .await?;
        let Some(mut run) = row.map(|r| self.run_from_row(&r, true)).transpose()? else {
            return Ok(None);
        };
        run.checks = self.checks(id).await?;
        Ok(Some(run))
    }

    async fn last_run(&self, job: &str) -> Result<Option<Run>> {
        let row = timed(
            &self.url,
            "last run",
            sqlx::query(include_str!("sql/postgres/last_run.sql"))
                .bind(job)
                .fetch_optional(&self.pool),
        )
        .await?;
        row.map(|r| self.run_from_row(&r, false)).transpose()
    }

    async fn cursor(&self, job: &str) -> Result<Option<DateTime<Utc>>> {
        timed(
            &self.url,
            "read cursor",
            sqlx::query_scalar::<_, DateTime<Utc>>(include_str!("sql/postgres/cursor.sql"))
                .bind(job)
                .fetch_optional(&self.pool),
        )
        .await
    }

    async fn advance_cursor(&self, job: &str, to: DateTime<Utc>) -> Result<()> {
        timed(
            &self.url,
            "advance cursor",
            sqlx::query(include_str!("sql/postgres/advance_cursor.sql"))
                .bind(job)
                .bind(to)
                .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    async fn record_checks(&self, run: RunId, checks: &[CheckResult]) -> Result<()> {
        let write = async {
            let mut tx = self.pool.begin().await?;
            for (i, c) in checks.iter().enumerate() {
                sqlx::query(include_str!("sql/postgres/insert_check.sql"))
                    .bind(run)
                    .bind(i as i32)
                    .bind(&c.check)
                    .bind(c.status.as_str())
                    .bind(c.value.as_ref().and_then(|v| v.number()))
                    .bind(c.value.as_ref().and_then(|v| match v {
                        Measured::Text(t) => Some(t.as_str()),
                        Measured::Number(_) => None,
                    }))
                    .bind(c.threshold.as_deref())
                    .bind(&c.reason)
                    .bind(c.duration_ms as i64)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        };
        timed(&self.url, "record check results", write).await
    }

    async fn checks(&self, run: RunId) -> Result<Vec<CheckResult>> {
        let rows = timed(
            &self.url,
            "read check results",
            sqlx::query(include_str!("sql/postgres/checks.sql"))
                .bind(run)
                .fetch_all(&self.pool),
        )
        .await?;
        rows.iter().map(|r| check_from_row(&self.url, r)).collect()
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = timed(
                &self.url,
                "prune",
                sqlx::query(include_str!("sql/postgres/prune.sql"))
                    .bind(before)
                    .execute(&self.pool),
            )
            .await?
            .rows_affected();
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }
}
