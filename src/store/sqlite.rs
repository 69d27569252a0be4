//! The embedded history store: no server, one file. Timestamps are stored as
//! integer microseconds so they compare exactly (sqlx would write RFC 3339
//! text whose varying fraction length breaks ordering).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{
    CONNECT_TIMEOUT, Finish, HistoryStore, NewRun, Result, Run, RunFilter, RunId, STORE_TIMEOUT,
    StoreError, check_from_row, parse_enum, timed,
};
use crate::checks::{CheckResult, Measured};
use crate::runlog::LogSnapshot;
use crate::secret::redact_url;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    url: String,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let shown = redact_url(url);
        let connect_err = |source| StoreError::Connect {
            url: shown.clone(),
            source,
        };
        // WAL lets `runbookd history` read while the daemon writes; the busy
        // timeout makes concurrent writers (two daemons, a CLI run) queue
        // instead of failing.
        let options = SqliteConnectOptions::from_str(url)
            .map_err(connect_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(STORE_TIMEOUT)
            .foreign_keys(true);
        // Opening a file another process is creating (the daemon and a CLI
        // command started together) can meet a lock the busy timeout does
        // not cover (switching to WAL); such a lock is retried until the
        // connect deadline.
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        let mut wait = Duration::from_millis(20);
        let pool = loop {
            let attempt = tokio::time::timeout_at(
                deadline,
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(STORE_TIMEOUT)
                    .connect_with(options.clone()),
            )
            .await
            .map_err(|_| StoreError::Timeout {
                url: shown.clone(),
                op: "connect",
                after: CONNECT_TIMEOUT,
            })?;
            match attempt {
                Ok(pool) => break pool,
                Err(e) if is_locked(&e) && tokio::time::Instant::now() + wait < deadline => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(connect_err(e)),
            }
        };
        Ok(SqliteStore { pool, url: shown })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn run_from_row(&self, row: &SqliteRow, with_log: bool) -> Result<Run> {
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
            scheduled_for: opt_time(row.try_get("scheduled_for").map_err(get)?),
            started_at: time(row.try_get("started_at").map_err(get)?),
            finished_at: opt_time(row.try_get("finished_at").map_err(get)?),
            status: parse_enum(url, &status)?,
            attempt: attempt.max(1) as u32,
            error: row.try_get("error").map_err(get)?,
            dry_run: row.try_get("dry_run").map_err(get)?,
            owner: row.try_get("owner").map_err(get)?,
            heartbeat_at: time(row.try_get("heartbeat_at").map_err(get)?),
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
impl HistoryStore for SqliteStore {
    fn url(&self) -> &str {
        &self.url
    }

    async fn migrate(&self) -> Result<()> {
        // sqlx takes no lock for SQLite migrations, so two processes opening
        // a new file at once (the daemon and a CLI command) can both try to
        // apply the first one. Each migration is one transaction: the loser
        // rolls back, and on a retry finds it applied.
        let deadline = tokio::time::Instant::now() + STORE_TIMEOUT;
        let mut wait = Duration::from_millis(20);
        loop {
            let run = tokio::time::timeout_at(deadline, MIGRATOR.run(&self.pool))
                .await
                .map_err(|_| StoreError::Timeout {
                    url: self.url.clone(),
                    op: "migrate",
                    after: STORE_TIMEOUT,
                })?;
            match run {
                Ok(()) => return Ok(()),
                Err(source) if tokio::time::Instant::now() + wait >= deadline => {
                    return Err(StoreError::Migrate {
                        url: self.url.clone(),
                        source,
                    });
                }
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    async fn insert_run(&self, run: &NewRun) -> Result<Option<RunId>> {
        timed(
            &self.url,
            "insert run",
            sqlx::query_scalar::<_, i64>(include_str!("sql/sqlite/insert_run.sql"))
                .bind(&run.job)
                .bind(run.trigger.as_str())
                .bind(&run.triggered_by)
                .bind(run.scheduled_for.map(micros))
                .bind(micros(run.started_at))
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
            sqlx::query_scalar::<_, bool>(include_str!("sql/sqlite/heartbeat.sql"))
                .bind(id)
                .bind(micros(at))
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
            sqlx::query(include_str!("sql/sqlite/finish_run.sql"))
                .bind(id)
                .bind(f.status.as_str())
                .bind(micros(f.finished_at))
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
            sqlx::query_scalar::<_, i64>(include_str!("sql/sqlite/request_cancel.sql"))
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
            sqlx::query(include_str!("sql/sqlite/running.sql"))
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
            sqlx::query_scalar::<_, i64>(include_str!("sql/sqlite/abandon_stale.sql"))
                .bind(micros(stale_before))
                .bind(micros(now))
                .fetch_all(&self.pool),
        )
        .await
    }

    async fn abandon(&self, id: RunId, now: DateTime<Utc>, reason: &str) -> Result<bool> {
        let r = timed(
            &self.url,
            "abandon run",
            sqlx::query_scalar::<_, i64>(include_str!("sql/sqlite/abandon.sql"))
                .bind(id)
                .bind(micros(now))
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
            sqlx::query(include_str!("sql/sqlite/list_runs.sql"))
                .bind(filter.job.as_deref())
                .bind(filter.since.map(micros))
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
            sqlx::query(include_str!("sql/sqlite/get_run.sql"))
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
            sqlx::query(include_str!("sql/sqlite/last_run.sql"))
                .bind(job)
                .fetch_optional(&self.pool),
        )
        .await?;
        row.map(|r| self.run_from_row(&r, false)).transpose()
    }

    async fn cursor(&self, job: &str) -> Result<Option<DateTime<Utc>>> {
        let v = timed(
            &self.url,
            "read cursor",
            sqlx::query_scalar::<_, i64>(include_str!("sql/sqlite/cursor.sql"))
                .bind(job)
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(v.map(time))
    }

    async fn advance_cursor(&self, job: &str, to: DateTime<Utc>) -> Result<()> {
        timed(
            &self.url,
            "advance cursor",
            sqlx::query(include_str!("sql/sqlite/advance_cursor.sql"))
                .bind(job)
                .bind(micros(to))
                .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    async fn record_checks(&self, run: RunId, checks: &[CheckResult]) -> Result<()> {
        let write = async {
            let mut tx = self.pool.begin().await?;
            for (i, c) in checks.iter().enumerate() {
                sqlx::query(include_str!("sql/sqlite/insert_check.sql"))
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
            sqlx::query(include_str!("sql/sqlite/checks.sql"))
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
                sqlx::query(include_str!("sql/sqlite/prune.sql"))
                    .bind(micros(before))
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

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn opt_time(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.map(time)
}

/// SQLITE_BUSY or SQLITE_LOCKED, in any of their extended forms.
fn is_locked(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}
