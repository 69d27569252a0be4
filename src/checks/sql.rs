//! `kind: sql`: a scalar query on the application's Postgres (not the
//! history store), compared with thresholds. Covers the opt-out spike
//! (`consent_log`) and connection-pool pressure (`pg_stat_activity` against
//! `max_connections`).
//!
//! The query runs in a READ ONLY transaction with a statement timeout and is
//! rolled back: a checklist must never change the database it checks.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use sqlx::Connection;

use super::compare::{Condition, Thresholds};
use super::{Check, CheckContext, CheckResult};
use crate::config::urls::{self, UrlKind};
use crate::model::Dur;
use crate::secret::{SecretUrl, redact_url};
use crate::yaml::{Diags, Pos, Required};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlCheck {
    /// `postgres://…` of the database to query. A secret.
    pub database_url: SecretUrl,
    /// Returns one row with one numeric column.
    pub query: Required,
    pub fail_if: Option<Condition>,
    pub warn_if: Option<Condition>,
    /// Postgres `statement_timeout`. Default: the check's timeout less 1 s.
    pub statement_timeout: Option<Dur>,
}

#[async_trait]
impl Check for SqlCheck {
    fn threshold(&self) -> Option<String> {
        Some(
            Thresholds {
                fail_if: self.fail_if,
                warn_if: self.warn_if,
            }
            .describe(),
        )
    }

    fn target(&self) -> String {
        redact_url(self.database_url.expose())
    }

    fn validate(&self, at: Pos, diags: &mut Diags) {
        if self.fail_if.is_none() && self.warn_if.is_none() {
            diags.at(
                if self.query.at().is_known() {
                    self.query.at()
                } else {
                    at
                },
                "a sql check needs `fail_if` or `warn_if`",
            );
        }
        // A restore check's `{endpoint}` becomes the restored instance's
        // host:port; any host:port stands for it here.
        let mut url = self.database_url.clone();
        if url.expose().contains("{endpoint}") {
            let at = url.at;
            url = SecretUrl::new(url.expose().replace("{endpoint}", "restored.invalid:5432"));
            url.at = at;
        }
        urls::check(&url, "database_url", UrlKind::Postgres, at, diags);
    }

    async fn run(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult> {
        vec![self.check(name, ctx).await]
    }
}

/// Why the check's query gave no one number.
#[derive(Debug, thiserror::Error)]
enum MeasureError {
    /// The database refused or failed, said for the operator.
    #[error("{0}")]
    Query(String),
    #[error("the query returned no rows; it must return exactly one number")]
    NoRows,
    #[error("the query returned NULL")]
    Null,
    #[error("the query returned more than one row; it must return exactly one number")]
    ManyRows,
}

impl SqlCheck {
    async fn check(&self, name: &str, ctx: &CheckContext) -> CheckResult {
        let t = Thresholds {
            fail_if: self.fail_if,
            warn_if: self.warn_if,
        };
        let target = redact_url(self.database_url.expose());
        match self.measure(ctx.timeout).await {
            Ok(v) => {
                let (status, reason) = t.reason("value", v);
                CheckResult::new(name, status, reason)
                    .number(v)
                    .threshold(t.describe())
            }
            Err(e) => CheckResult::error(name, format!("{target}: {e}")).threshold(t.describe()),
        }
    }

    async fn measure(&self, check_timeout: Duration) -> Result<f64, MeasureError> {
        let statement_timeout = self.statement_timeout.map(|d| d.0).unwrap_or_else(|| {
            check_timeout
                .saturating_sub(Duration::from_secs(1))
                .max(Duration::from_millis(100))
        });
        let mut conn = sqlx::PgConnection::connect(self.database_url.expose())
            .await
            .map_err(|e| MeasureError::Query(describe(&e)))?;
        let mut tx = conn
            .begin()
            .await
            .map_err(|e| MeasureError::Query(describe(&e)))?;
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(|e| MeasureError::Query(describe(&e)))?;
        // SET cannot take a bind parameter; the value is our own integer.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET LOCAL statement_timeout = {}",
            statement_timeout.as_millis()
        )))
        .execute(&mut *tx)
        .await
        .map_err(|e| MeasureError::Query(describe(&e)))?;
        // Wrapping casts any numeric type to float8 and lets us see a second
        // row without fetching the whole result.
        let wrapped = format!(
            "SELECT (q.v)::float8 FROM ({}) AS q(v) LIMIT 2",
            self.query.trim().trim_end_matches(';')
        );
        let rows: Vec<Option<f64>> = sqlx::query_scalar(sqlx::AssertSqlSafe(wrapped))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| MeasureError::Query(describe(&e)))?;
        let _ = tx.rollback().await;
        let _ = conn.close().await;
        match rows.as_slice() {
            [] => Err(MeasureError::NoRows),
            [Some(v)] => Ok(*v),
            [None] => Err(MeasureError::Null),
            _ => Err(MeasureError::ManyRows),
        }
    }
}

/// Names the failure class: refused, DNS, TLS, auth, timeout, or the
/// database's own message.
fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            let class = match code.as_ref() {
                "57014" => "timeout (statement_timeout)",
                "28P01" | "28000" => "auth",
                "25006" => "read-only transaction refused a write",
                "3D000" => "no such database",
                _ => "query",
            };
            format!("{class}: {} (SQLSTATE {code})", d.message())
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("refused: {io}")
        }
        sqlx::Error::Io(io) if io.to_string().contains("failed to lookup") => format!("DNS: {io}"),
        sqlx::Error::Io(io) => format!("connect: {io}"),
        sqlx::Error::Tls(t) => format!("TLS: {t}"),
        sqlx::Error::PoolTimedOut => "timeout: connecting".into(),
        other => {
            let s = other.to_string();
            if s.contains("failed to lookup address") {
                format!("DNS: {s}")
            } else {
                s
            }
        }
    }
}
