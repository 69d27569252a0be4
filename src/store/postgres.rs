//! The production history store's backend: connecting, migrating, binding
//! and reading Postgres values. Everything else is `sql.rs`.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::query::Query;

use super::sql::{Arg, Backend, Dialect, RowRead, SqlStore};
use super::{CONNECT_TIMEOUT, Result, STORE_TIMEOUT, StoreError};
use crate::secret::redact_url;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How long a call waits for a connection from the pool.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

pub type PostgresStore = SqlStore<Postgres>;

#[derive(Debug, Clone)]
pub struct Postgres {
    pool: PgPool,
}

impl Postgres {
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
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
        // A refused connection is retried by the pool until this runs out:
        // short, so a store that went away is known as down in seconds,
        // not after the 10 s statement timeout.
        let pool_connect = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
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
        Ok(SqlStore::new(Postgres { pool }, shown))
    }

    pub fn pool(&self) -> &PgPool {
        self.backend().pool()
    }
}

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

fn bind<'q>(
    q: Query<'q, sqlx::Postgres, PgArguments>,
    a: &Arg<'q>,
) -> Query<'q, sqlx::Postgres, PgArguments> {
    match *a {
        Arg::Text(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::Float(v) => q.bind(v),
        Arg::Bool(v) => q.bind(v),
        Arg::Time(v) => q.bind(v),
    }
}

fn query<'q>(sql: &'static str, args: &[Arg<'q>]) -> Query<'q, sqlx::Postgres, PgArguments> {
    args.iter().fold(sqlx::query(sql), bind)
}

#[async_trait]
impl Backend for Postgres {
    type Row = PgRow;

    const DIALECT: Dialect = Dialect {
        abandon_stale: include_str!("sql/postgres/abandon_stale.sql"),
        advance_cursor: include_str!("sql/postgres/advance_cursor.sql"),
        take_request: include_str!("sql/postgres/take_request.sql"),
        claim: Some(include_str!("sql/postgres/claim.sql")),
        claim_many: Some(include_str!("sql/postgres/claim_many.sql")),
    };

    async fn migrate(&self, url: &str) -> Result<()> {
        // On one connection handed back before returning: with the pool's
        // lazy return a CLI command would open a second connection (a second
        // TLS handshake, ~90 ms) for its first query.
        let run = migrate_on_one_connection(self.pool.clone());
        match tokio::time::timeout(STORE_TIMEOUT * 3, run).await {
            Ok(r) => r.map_err(|source| StoreError::Migrate {
                url: url.to_string(),
                source,
            }),
            Err(_) => Err(StoreError::Timeout {
                url: url.to_string(),
                op: "migrate",
                after: STORE_TIMEOUT * 3,
            }),
        }
    }

    async fn wakeups(&self) -> Result<Option<Box<dyn super::Wakeups>>, sqlx::Error> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen_all([REQUESTS, CANCELS]).await?;
        Ok(Some(Box::new(PgWakeups { listener })))
    }

    async fn execute(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        Ok(query(sql, args).execute(&self.pool).await?.rows_affected())
    }

    async fn fetch_all(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        query(sql, args).fetch_all(&self.pool).await
    }

    async fn transaction(
        &self,
        stmts: &[(&'static str, Vec<Arg<'_>>)],
    ) -> Result<Vec<Vec<PgRow>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut rows = Vec::with_capacity(stmts.len());
        for (sql, args) in stmts {
            rows.push(query(sql, args).fetch_all(&mut *tx).await?);
        }
        tx.commit().await?;
        Ok(rows)
    }
}

/// The daemons' channels (migration 0010 notifies on them).
const REQUESTS: &str = "runbookd_requests";
const CANCELS: &str = "runbookd_cancels";

/// After a failed reconnect, how long before the next try.
const RELISTEN_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// LISTEN on a connection of its own, remade when lost.
struct PgWakeups {
    listener: sqlx::postgres::PgListener,
}

#[async_trait]
impl super::Wakeups for PgWakeups {
    async fn next(&mut self) -> super::Wakeup {
        loop {
            match self.listener.try_recv().await {
                Ok(Some(n)) if n.channel() == REQUESTS => return super::Wakeup::Request,
                Ok(Some(n)) if n.channel() == CANCELS => {
                    if let Ok(id) = n.payload().parse() {
                        return super::Wakeup::Cancel(id);
                    }
                }
                Ok(Some(_)) => {}
                // Lost: the next call reconnects (and LISTENs again).
                Ok(None) => return super::Wakeup::Resync,
                Err(e) => {
                    tracing::warn!(
                        "cannot listen for requests and cancels ({e}); polling meanwhile, trying again in {}s",
                        RELISTEN_EVERY.as_secs()
                    );
                    tokio::time::sleep(RELISTEN_EVERY).await;
                }
            }
        }
    }
}

impl RowRead for PgRow {
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(col)
    }
    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        // INTEGER columns decode only as i32, BIGINT only as i64.
        self.try_get::<i64, _>(col)
            .or_else(|_| self.try_get::<i32, _>(col).map(i64::from))
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get::<Option<i64>, _>(col).or_else(|_| {
            self.try_get::<Option<i32>, _>(col)
                .map(|v| v.map(i64::from))
        })
    }
    fn opt_float(&self, col: &str) -> Result<Option<f64>, sqlx::Error> {
        self.try_get(col)
    }
    fn boolean(&self, col: &str) -> Result<bool, sqlx::Error> {
        self.try_get(col)
    }
    fn time(&self, col: &str) -> Result<DateTime<Utc>, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        self.try_get(col)
    }
}
