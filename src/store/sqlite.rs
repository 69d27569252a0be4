//! The embedded history store's backend: no server, one file. Timestamps
//! are stored as integer microseconds so they compare exactly (sqlx would
//! write RFC 3339 text whose varying fraction length breaks ordering).
//! Everything but connecting, migrating, binding and reading is `sql.rs`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};

use super::sql::{Arg, Backend, Dialect, RowRead, SqlStore};
use super::{CONNECT_TIMEOUT, Result, STORE_TIMEOUT, StoreError};
use crate::retry::{self, Backoff};
use crate::secret::redact_url;

/// The waits between tries of a connect or migration that met another
/// process's lock: short, as the other holds it for one transaction.
const LOCK_RACE: Backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(500));

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

pub type SqliteStore = SqlStore<Sqlite>;

#[derive(Debug, Clone)]
pub struct Sqlite {
    pool: SqlitePool,
    /// The database file and its identity when opened: a file deleted or
    /// replaced under the daemon would swallow writes no one can read.
    file: Option<(std::path::PathBuf, FileId)>,
}

/// Device and inode.
type FileId = (u64, u64);

fn file_id(path: &std::path::Path) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
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
            // A claim is a promise that the fire is ours; FULL syncs the WAL
            // at each commit so a crash or power loss cannot take it back.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(STORE_TIMEOUT)
            .foreign_keys(true);
        // Opening a file another process is creating (the daemon and a CLI
        // command started together) can meet a lock the busy timeout does
        // not cover (switching to WAL); such a lock is retried until the
        // connect deadline.
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        let mut tries = 0;
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
            tries += 1;
            let wait = LOCK_RACE.delay(tries);
            match attempt {
                Ok(pool) => break pool,
                Err(e) if is_locked(&e) && tokio::time::Instant::now() + wait < deadline => {
                    let _ = retry::wait(wait, None).await;
                }
                Err(e) => return Err(connect_err(e)),
            }
        };
        let path = options.get_filename().to_path_buf();
        let file = file_id(&path).ok().map(|id| (path, id));
        Ok(SqlStore::new(Sqlite { pool, file }, shown))
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.backend().pool
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn bind<'q>(
    q: Query<'q, sqlx::Sqlite, SqliteArguments>,
    a: &Arg<'q>,
) -> Query<'q, sqlx::Sqlite, SqliteArguments> {
    match *a {
        Arg::Text(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::Float(v) => q.bind(v),
        Arg::Bool(v) => q.bind(v),
        Arg::Time(v) => q.bind(v.map(micros)),
    }
}

fn query<'q>(sql: &'static str, args: &[Arg<'q>]) -> Query<'q, sqlx::Sqlite, SqliteArguments> {
    args.iter().fold(sqlx::query(sql), bind)
}

#[async_trait]
impl Backend for Sqlite {
    type Row = SqliteRow;

    const DIALECT: Dialect = Dialect {
        abandon_stale: include_str!("sql/sqlite/abandon_stale.sql"),
        advance_cursor: include_str!("sql/sqlite/advance_cursor.sql"),
        take_request: include_str!("sql/sqlite/take_request.sql"),
        // SQLite has one writer at a time: the claim's insert, first in its
        // transaction, takes the write lock until the commit.
        claim: None,
        claim_many: None,
    };

    async fn migrate(&self, url: &str) -> Result<()> {
        // sqlx takes no lock for SQLite migrations, so two processes opening
        // a new file at once (the daemon and a CLI command) can both try to
        // apply the first one. Each migration is one transaction: the loser
        // rolls back, and on a retry finds it applied.
        let deadline = tokio::time::Instant::now() + STORE_TIMEOUT;
        let mut tries = 0;
        // On a connection of its own that is closed after: a migration that
        // edits the stored schema (0007 widens a CHECK) leaves the
        // connection that ran it with the old schema in memory, while every
        // other connection rereads it.
        let once = || async {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(sqlx::migrate::MigrateError::Execute)?
                .detach();
            // `run` with `&mut conn` trips the compiler's "Acquire is not
            // general enough" inside async_trait; this is what `run` calls.
            let mut r = MIGRATOR.run_direct(None, &mut conn, false).await;
            // 0007 edits the stored schema by text: prove it took, or a
            // chained run would fail its CHECK at the worst moment.
            if r.is_ok() {
                let stored: Result<(String,), sqlx::Error> = sqlx::query_as(
                    "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'runs'",
                )
                .fetch_one(&mut conn)
                .await;
                r = match stored {
                    Ok((sql,)) if sql.contains("'chained'") => Ok(()),
                    Ok(_) => Err(sqlx::migrate::MigrateError::Execute(sqlx::Error::Protocol(
                        "migration 0007 did not widen the runs.trigger CHECK to 'chained' (the stored schema differs from the one runbookd created)".into(),
                    ))),
                    Err(e) => Err(sqlx::migrate::MigrateError::Execute(e)),
                };
            }
            let _ = sqlx::Connection::close(conn).await;
            r
        };
        loop {
            let run = tokio::time::timeout_at(deadline, once())
                .await
                .map_err(|_| StoreError::Timeout {
                    url: url.to_string(),
                    op: "migrate",
                    after: STORE_TIMEOUT,
                })?;
            tries += 1;
            let wait = LOCK_RACE.delay(tries);
            match run {
                Ok(()) => return Ok(()),
                Err(source) if tokio::time::Instant::now() + wait >= deadline => {
                    return Err(StoreError::Migrate {
                        url: url.to_string(),
                        source,
                    });
                }
                Err(_) => {
                    let _ = retry::wait(wait, None).await;
                }
            }
        }
    }

    async fn execute(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        Ok(query(sql, args).execute(&self.pool).await?.rows_affected())
    }

    async fn fetch_all(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        query(sql, args).fetch_all(&self.pool).await
    }

    async fn transaction(
        &self,
        stmts: &[(&'static str, Vec<Arg<'_>>)],
    ) -> Result<Vec<Vec<SqliteRow>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut rows = Vec::with_capacity(stmts.len());
        for (sql, args) in stmts {
            rows.push(query(sql, args).fetch_all(&mut *tx).await?);
        }
        tx.commit().await?;
        Ok(rows)
    }

    fn lost(&self) -> Option<String> {
        let (path, opened) = self.file.as_ref()?;
        match file_id(path) {
            Ok(id) if id == *opened => None,
            Ok(_) => Some(format!(
                "the database file {} was replaced since it was opened; restart runbookd to use the new one",
                path.display()
            )),
            Err(e) => Some(format!(
                "the database file {} is gone ({e}); writes would be lost",
                path.display()
            )),
        }
    }
}

impl RowRead for SqliteRow {
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(col)
    }
    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_float(&self, col: &str) -> Result<Option<f64>, sqlx::Error> {
        self.try_get(col)
    }
    fn boolean(&self, col: &str) -> Result<bool, sqlx::Error> {
        self.try_get(col)
    }
    fn time(&self, col: &str) -> Result<DateTime<Utc>, sqlx::Error> {
        self.try_get::<i64, _>(col).map(time)
    }
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        self.try_get::<Option<i64>, _>(col).map(|v| v.map(time))
    }
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
