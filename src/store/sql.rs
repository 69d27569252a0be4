//! The history store's behaviour, written once for both backends.
//!
//! Every method is here, over a small per-backend part ([`Backend`]):
//! binding and reading values (timestamps are `TIMESTAMPTZ` in Postgres and
//! integer microseconds in SQLite), the two statements whose SQL differs,
//! connecting and migrating. SQL lives in `sql/*.sql`, shared; the dialect's
//! own statements in `sql/<backend>/`.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Claimed, Finish, HistoryStore, MissedFires, NewRun, Result, Run, RunFilter, RunId, RunPage,
    STORE_TIMEOUT, StoreError,
};
use crate::model::{
    CheckPoint, CheckResult, CheckStatus, LogSnapshot, MailBacklog, Measured, NewRequest,
    NotifyState, Params, Pause, ProcessGroup, QueuedMail, Request, RequestFilter, RequestId, Step,
    StepStatus, Threshold,
};

/// A value bound to a statement parameter.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(Some(v))
    }
}

impl From<DateTime<Utc>> for Arg<'_> {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Time(Some(v))
    }
}

impl From<Option<DateTime<Utc>>> for Arg<'_> {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Arg::Time(v)
    }
}

/// Reads a column of a result row, whatever the backend's encoding.
pub trait RowRead {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn opt_float(&self, col: &str) -> Result<Option<f64>, sqlx::Error>;
    fn boolean(&self, col: &str) -> Result<bool, sqlx::Error>;
    fn time(&self, col: &str) -> Result<DateTime<Utc>, sqlx::Error>;
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error>;
}

/// The statements whose SQL differs between backends.
pub struct Dialect {
    pub abandon_stale: &'static str,
    pub advance_cursor: &'static str,
    pub take_request: &'static str,
    /// A claim in one statement (the run's insert parameters): the job's
    /// running runs after a per-job lock, with `mine` on the new one; no
    /// rows if the fire is another's. `None`: the insert and the read in
    /// one transaction, where the backend serialises writers.
    pub claim: Option<&'static str>,
    /// Several claims in one statement (a JSON array of the runs' insert
    /// fields), each as `claim` does, with `n`, the run's position from 1.
    /// `None`: one claim after another.
    pub claim_many: Option<&'static str>,
}

/// What differs between Postgres and SQLite, and nothing else.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    type Row: RowRead + Send + Sync;

    const DIALECT: Dialect;

    async fn migrate(&self, url: &str) -> Result<()>;
    async fn execute(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error>;
    async fn fetch_all(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<Self::Row>, sqlx::Error>;
    /// Runs the statements in one transaction; the rows of each.
    async fn transaction(
        &self,
        stmts: &[(&'static str, Vec<Arg<'_>>)],
    ) -> Result<Vec<Vec<Self::Row>>, sqlx::Error>;

    /// What the database pushes (LISTEN/NOTIFY), if it can.
    async fn wakeups(&self) -> Result<Option<Box<dyn super::Wakeups>>, sqlx::Error> {
        Ok(None)
    }

    /// Why a write now would not be kept, if it would not: the database
    /// file was deleted or replaced since it was opened.
    fn lost(&self) -> Option<String> {
        None
    }
}

macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!("sql/", $name, ".sql"))
    };
}

/// A history store over a backend.
#[derive(Debug)]
pub struct SqlStore<B> {
    backend: B,
    /// The URL with its password masked, for errors.
    url: String,
}

impl<B: Backend> SqlStore<B> {
    pub(super) fn new(backend: B, url: String) -> Self {
        SqlStore { backend, url }
    }

    pub(super) fn backend(&self) -> &B {
        &self.backend
    }

    /// Bounds a store call with [`STORE_TIMEOUT`] and names it in errors.
    async fn timed<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(STORE_TIMEOUT, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(StoreError::Query {
                url: self.url.clone(),
                op,
                source,
            }),
            Err(_) => Err(StoreError::Timeout {
                url: self.url.clone(),
                op,
                after: STORE_TIMEOUT,
            }),
        }
    }

    async fn rows(
        &self,
        op: &'static str,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<B::Row>> {
        self.timed(op, self.backend.fetch_all(sql, args)).await
    }

    async fn row(
        &self,
        op: &'static str,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<B::Row>> {
        Ok(self.rows(op, sql, args).await?.into_iter().next())
    }

    async fn exec(&self, op: &'static str, sql: &'static str, args: &[Arg<'_>]) -> Result<u64> {
        self.timed(op, self.backend.execute(sql, args)).await
    }

    fn decode<T>(&self, r: Result<T, sqlx::Error>) -> Result<T> {
        r.map_err(|source| StoreError::Query {
            url: self.url.clone(),
            op: "decode row",
            source,
        })
    }

    fn word<T: std::str::FromStr<Err = String>>(&self, text: String) -> Result<T> {
        text.parse().map_err(|what| StoreError::Corrupt {
            url: self.url.clone(),
            what,
        })
    }

    fn run_from_row(&self, row: &B::Row, with_log: bool) -> Result<Run> {
        let d = |r| self.decode(r);
        Ok(Run {
            id: self.decode(row.int("id"))?,
            job: d(row.text("job"))?,
            trigger: self.word(d(row.text("trigger"))?)?,
            triggered_by: d(row.text("triggered_by"))?,
            scheduled_for: self.decode(row.opt_time("scheduled_for"))?,
            started_at: self.decode(row.time("started_at"))?,
            finished_at: self.decode(row.opt_time("finished_at"))?,
            status: self.word(d(row.text("status"))?)?,
            attempt: self.decode(row.int("attempt"))?.max(1) as u32,
            error: self.decode(row.opt_text("error"))?,
            dry_run: self.decode(row.boolean("dry_run"))?,
            owner: d(row.text("owner"))?,
            heartbeat_at: self.decode(row.time("heartbeat_at"))?,
            retry_of: self.decode(row.opt_int("retry_of"))?,
            log: if with_log {
                Some(d(row.text("log"))?)
            } else {
                None
            },
            log_truncated: self.decode(row.boolean("log_truncated"))?,
            checks: Vec::new(),
            steps: Vec::new(),
        })
    }

    fn check_from_row(&self, row: &B::Row) -> Result<CheckResult> {
        let status: CheckStatus = self.word(self.decode(row.text("status"))?)?;
        let number = self.decode(row.opt_float("value_number"))?;
        let text = self.decode(row.opt_text("value_text"))?;
        Ok(CheckResult {
            check: self.decode(row.text("check_name"))?,
            status,
            value: match (number, text) {
                (Some(n), _) => Some(Measured::Number(n)),
                (None, Some(t)) => Some(Measured::Text(t)),
                (None, None) => None,
            },
            threshold: self.decode(row.opt_text("threshold"))?.map(Threshold::from),
            reason: self.decode(row.text("reason"))?,
            duration_ms: self.decode(row.int("duration_ms"))?.max(0) as u64,
        })
    }

    fn mail_from_row(&self, row: &B::Row) -> Result<QueuedMail> {
        let d = |r| self.decode(r);
        let recipients: String = d(row.text("recipients"))?;
        Ok(QueuedMail {
            message_id: d(row.text("message_id"))?,
            subject: d(row.text("subject"))?,
            recipients: recipients
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect(),
            raw: d(row.text("raw"))?,
            job: self.decode(row.opt_text("job"))?,
            run_id: self.decode(row.opt_int("run_id"))?,
            status: self.word(d(row.text("status"))?)?,
            attempts: self.decode(row.int("attempts"))?.max(0) as u32,
            last_error: self.decode(row.opt_text("last_error"))?,
            created_at: self.decode(row.time("created_at"))?,
            next_attempt_at: self.decode(row.time("next_attempt_at"))?,
            sent_at: self.decode(row.opt_time("sent_at"))?,
        })
    }

    fn request_from_row(&self, row: &B::Row) -> Result<Request> {
        let d = |r| self.decode(r);
        let params: String = d(row.text("params"))?;
        let params: Params = serde_json::from_str(&params).map_err(|e| StoreError::Corrupt {
            url: self.url.clone(),
            what: format!("request parameters are not a JSON object: {e}"),
        })?;
        Ok(Request {
            id: self.decode(row.int("id"))?,
            job: d(row.text("job"))?,
            params,
            requested_by: d(row.text("requested_by"))?,
            reason: self.decode(row.opt_text("reason"))?,
            dry_run: self.decode(row.boolean("dry_run"))?,
            requested_at: self.decode(row.time("requested_at"))?,
            status: self.word(d(row.text("status"))?)?,
            taken_by: self.decode(row.opt_text("taken_by"))?,
            taken_at: self.decode(row.opt_time("taken_at"))?,
            run_id: self.decode(row.opt_int("run_id"))?,
            error: self.decode(row.opt_text("error"))?,
            expires_at: self.decode(row.opt_time("expires_at"))?,
            closed_by: self.decode(row.opt_text("closed_by"))?,
            closed_at: self.decode(row.opt_time("closed_at"))?,
            confirmed: self.decode(row.boolean("confirmed"))?,
        })
    }

    fn requests(&self, rows: Vec<B::Row>) -> Result<Vec<Request>> {
        rows.iter().map(|r| self.request_from_row(r)).collect()
    }

    fn step_from_row(&self, row: &B::Row) -> Result<Step> {
        let status: StepStatus = self.word(self.decode(row.text("status"))?)?;
        let payload = self
            .decode(row.opt_text("payload"))?
            .map(|p| serde_json::from_str(&p).unwrap_or(serde_json::Value::String(p)));
        Ok(Step {
            position: self.decode(row.int("position"))?.max(0) as u32,
            name: self.decode(row.text("name"))?,
            target: self.decode(row.text("target"))?,
            status,
            started_at: self.decode(row.time("started_at"))?,
            finished_at: self.decode(row.opt_time("finished_at"))?,
            detail: self.decode(row.text("detail"))?,
            payload,
        })
    }

    fn durable(&self) -> Result<()> {
        match self.backend.lost() {
            Some(why) => Err(StoreError::Lost {
                url: self.url.clone(),
                why,
            }),
            None => Ok(()),
        }
    }

    fn run_args(run: &NewRun) -> Vec<Arg<'_>> {
        vec![
            (&run.job).into(),
            run.trigger.as_str().into(),
            (&run.triggered_by).into(),
            run.scheduled_for.into(),
            run.started_at.into(),
            run.status.as_str().into(),
            i64::from(run.attempt).into(),
            run.error.as_deref().into(),
            run.dry_run.into(),
            (&run.owner).into(),
            run.retry_of.into(),
        ]
    }

    fn runs(&self, rows: Vec<B::Row>) -> Result<Vec<Run>> {
        rows.iter().map(|r| self.run_from_row(r, false)).collect()
    }
}

#[async_trait]
impl<B: Backend> HistoryStore for SqlStore<B> {
    fn url(&self) -> &str {
        &self.url
    }

    async fn migrate(&self) -> Result<()> {
        self.backend.migrate(&self.url).await
    }

    async fn wakeups(&self) -> Result<Option<Box<dyn super::Wakeups>>> {
        self.timed("listen for requests and cancels", self.backend.wakeups())
            .await
    }

    async fn ping(&self) -> Result<()> {
        self.durable()?;
        self.rows("ping", sql!("ping"), &[]).await?;
        Ok(())
    }

    async fn insert_run(&self, run: &NewRun) -> Result<Option<RunId>> {
        // A claim that would not be kept is no claim.
        self.durable()?;
        let row = self
            .row("insert run", sql!("insert_run"), &Self::run_args(run))
            .await?;
        row.map(|r| self.decode(r.int("id"))).transpose()
    }

    async fn claim_run(&self, run: &NewRun) -> Result<Option<Claimed>> {
        self.durable()?;
        if let Some(claim) = B::DIALECT.claim {
            let rows = self.rows("claim run", claim, &Self::run_args(run)).await?;
            let mut id = None;
            let mut earlier = Vec::new();
            for r in &rows {
                if self.decode(r.boolean("mine"))? {
                    id = Some(self.decode(r.int("id"))?);
                } else {
                    earlier.push(self.run_from_row(r, false)?);
                }
            }
            return Ok(id.map(|id| Claimed { id, earlier }));
        }
        let job: Arg<'_> = (&run.job).into();
        let stmts = [
            (sql!("insert_run"), Self::run_args(run)),
            (sql!("running_of_job"), vec![job]),
        ];
        let mut rows = self
            .timed("claim run", self.backend.transaction(&stmts))
            .await?;
        let running = rows.pop().unwrap_or_default();
        let Some(inserted) = rows.pop().and_then(|r| r.into_iter().next()) else {
            return Ok(None);
        };
        let id = self.decode(inserted.int("id"))?;
        let earlier = self
            .runs(running)?
            .into_iter()
            .filter(|r| r.id != id)
            .collect();
        Ok(Some(Claimed { id, earlier }))
    }

    async fn claim_runs(&self, runs: &[NewRun]) -> Result<Vec<Option<Claimed>>> {
        let Some(claim_many) = B::DIALECT.claim_many.filter(|_| runs.len() > 1) else {
            let mut out = Vec::with_capacity(runs.len());
            for run in runs {
                out.push(self.claim_run(run).await?);
            }
            return Ok(out);
        };
        self.durable()?;
        // Instants at the microsecond, truncated as a bound parameter is,
        // so a fire claimed here and one claimed alone are the same key.
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let batch: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "job": r.job,
                    "trigger": r.trigger.as_str(),
                    "triggered_by": r.triggered_by,
                    "scheduled_for": r.scheduled_for.map(at),
                    "started_at": at(r.started_at),
                    "status": r.status.as_str(),
                    "attempt": r.attempt,
                    "error": r.error,
                    "dry_run": r.dry_run,
                    "owner": r.owner,
                    "retry_of": r.retry_of,
                })
            })
            .collect();
        let batch = serde_json::Value::Array(batch).to_string();
        let rows = self
            .rows("claim runs", claim_many, &[(&batch).into()])
            .await?;
        let mut ids: Vec<Option<RunId>> = vec![None; runs.len()];
        let mut earlier: Vec<Vec<Run>> = runs.iter().map(|_| Vec::new()).collect();
        for r in &rows {
            let n = self.decode(r.int("n"))?;
            let Some(i) = usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .filter(|i| *i < runs.len())
            else {
                return Err(StoreError::Corrupt {
                    url: self.url.clone(),
                    what: format!("claim runs answered for run {n} of {}", runs.len()),
                });
            };
            if self.decode(r.boolean("mine"))? {
                ids[i] = Some(self.decode(r.int("id"))?);
            } else {
                earlier[i].push(self.run_from_row(r, false)?);
            }
        }
        Ok(ids
            .into_iter()
            .zip(earlier)
            .map(|(id, earlier)| id.map(|id| Claimed { id, earlier }))
            .collect())
    }

    async fn heartbeat(
        &self,
        id: RunId,
        at: DateTime<Utc>,
        log: Option<&LogSnapshot>,
    ) -> Result<bool> {
        let row = self
            .row(
                "heartbeat",
                sql!("heartbeat"),
                &[
                    id.into(),
                    at.into(),
                    log.map(|l| l.text.as_str()).into(),
                    Arg::Bool(log.map(|l| l.truncated)),
                ],
            )
            .await?;
        match row {
            Some(r) => self.decode(r.boolean("cancel_requested")),
            None => Ok(false),
        }
    }

    async fn finish_run(&self, id: RunId, f: &Finish) -> Result<()> {
        self.exec(
            "finish run",
            sql!("finish_run"),
            &[
                id.into(),
                f.status.as_str().into(),
                f.finished_at.into(),
                f.error.as_deref().into(),
                (&f.log.text).into(),
                f.log.truncated.into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn request_cancel(&self, id: RunId) -> Result<bool> {
        let rows = self
            .rows("request cancel", sql!("request_cancel"), &[id.into()])
            .await?;
        Ok(!rows.is_empty())
    }

    async fn running(&self, job: Option<&str>) -> Result<Vec<Run>> {
        let rows = self
            .rows("list running runs", sql!("running"), &[job.into()])
            .await?;
        self.runs(rows)
    }

    async fn abandon_stale(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<RunId>> {
        let rows = self
            .rows(
                "abandon stale runs",
                B::DIALECT.abandon_stale,
                &[stale_before.into(), now.into()],
            )
            .await?;
        rows.iter().map(|r| self.decode(r.int("id"))).collect()
    }

    async fn abandon(&self, id: RunId, now: DateTime<Utc>, reason: &str) -> Result<bool> {
        let rows = self
            .rows(
                "abandon run",
                sql!("abandon"),
                &[id.into(), now.into(), reason.into()],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        let rows = self
            .rows(
                "list runs",
                sql!("list_runs"),
                &[
                    filter.job.as_deref().into(),
                    filter.since.into(),
                    i64::from(filter.limit).into(),
                ],
            )
            .await?;
        self.runs(rows)
    }

    async fn page_runs(&self, page: &RunPage) -> Result<Vec<Run>> {
        let rows = self
            .rows(
                "page runs",
                sql!("page_runs"),
                &[
                    page.job.as_str().into(),
                    page.status.map(|s| s.as_str()).into(),
                    page.trigger.map(|t| t.as_str()).into(),
                    page.before.into(),
                    i64::from(page.limit).into(),
                ],
            )
            .await?;
        self.runs(rows)
    }

    async fn retries_of(&self, run: &Run, limit: u32) -> Result<Vec<Run>> {
        let rows = self
            .rows(
                "read retries",
                sql!("retries_of"),
                &[
                    run.job.as_str().into(),
                    run.started_at.into(),
                    run.id.into(),
                    i64::from(limit).into(),
                ],
            )
            .await?;
        self.runs(rows)
    }

    async fn chained_from(&self, run: &Run, until: DateTime<Utc>, limit: u32) -> Result<Vec<Run>> {
        let by = crate::model::chained_by(run.id, &run.job);
        let rows = self
            .rows(
                "read chained runs",
                sql!("chained_from"),
                &[
                    by.as_str().into(),
                    run.started_at.into(),
                    until.into(),
                    i64::from(limit).into(),
                ],
            )
            .await?;
        self.runs(rows)
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        let Some(row) = self.row("get run", sql!("get_run"), &[id.into()]).await? else {
            return Ok(None);
        };
        let mut run = self.run_from_row(&row, true)?;
        run.checks = self.checks(id).await?;
        run.steps = self.steps(id).await?;
        Ok(Some(run))
    }

    async fn last_run(&self, job: &str, dry_run: Option<bool>) -> Result<Option<Run>> {
        let row = match dry_run {
            Some(true) => {
                self.row("last dry run", sql!("last_dry_run"), &[job.into()])
                    .await?
            }
            _ => {
                self.row(
                    "last run",
                    sql!("last_run"),
                    &[job.into(), Arg::Bool(dry_run)],
                )
                .await?
            }
        };
        row.map(|r| self.run_from_row(&r, false)).transpose()
    }

    async fn cursor(&self, job: &str) -> Result<Option<DateTime<Utc>>> {
        let row = self
            .row("read cursor", sql!("cursor"), &[job.into()])
            .await?;
        row.map(|r| self.decode(r.time("evaluated_until")))
            .transpose()
    }

    async fn advance_cursors(&self, jobs: &[&str], to: DateTime<Utc>) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let names = serde_json::to_string(jobs).unwrap_or_else(|_| "[]".into());
        self.exec(
            "advance cursors",
            B::DIALECT.advance_cursor,
            &[(&names).into(), to.into()],
        )
        .await?;
        Ok(())
    }

    async fn see_jobs(&self, jobs: &[&str], at: DateTime<Utc>) -> Result<()> {
        let stmts: Vec<(&'static str, Vec<Arg<'_>>)> = jobs
            .iter()
            .map(|job| (sql!("see_jobs"), vec![(*job).into(), at.into()]))
            .collect();
        self.timed("record first-seen jobs", self.backend.transaction(&stmts))
            .await?;
        Ok(())
    }

    async fn first_seen(&self) -> Result<BTreeMap<String, DateTime<Utc>>> {
        let rows = self
            .rows("read first-seen jobs", sql!("first_seen"), &[])
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    self.decode(r.text("job"))?,
                    self.decode(r.time("first_seen"))?,
                ))
            })
            .collect()
    }

    async fn record_checks(&self, run: RunId, checks: &[CheckResult]) -> Result<()> {
        let thresholds: Vec<Option<String>> = checks
            .iter()
            .map(|c| c.threshold.as_ref().map(|t| t.to_string()))
            .collect();
        let stmts: Vec<(&'static str, Vec<Arg<'_>>)> = checks
            .iter()
            .zip(&thresholds)
            .enumerate()
            .map(|(i, (c, threshold))| {
                (
                    sql!("insert_check"),
                    vec![
                        run.into(),
                        (i as i64).into(),
                        (&c.check).into(),
                        c.status.as_str().into(),
                        Arg::Float(c.value.as_ref().and_then(|v| v.number())),
                        match &c.value {
                            Some(Measured::Text(t)) => Arg::Text(Some(t)),
                            _ => Arg::Text(None),
                        },
                        threshold.as_deref().into(),
                        (&c.reason).into(),
                        (c.duration_ms as i64).into(),
                    ],
                )
            })
            .collect();
        self.timed("record check results", self.backend.transaction(&stmts))
            .await?;
        Ok(())
    }

    async fn checks(&self, run: RunId) -> Result<Vec<CheckResult>> {
        let rows = self
            .rows("read check results", sql!("checks"), &[run.into()])
            .await?;
        rows.iter().map(|r| self.check_from_row(r)).collect()
    }

    async fn record_step(&self, run: RunId, step: &Step) -> Result<()> {
        let payload = step.payload.as_ref().map(|p| p.to_string());
        self.exec(
            "record step",
            sql!("record_step"),
            &[
                run.into(),
                i64::from(step.position).into(),
                (&step.name).into(),
                (&step.target).into(),
                step.status.as_str().into(),
                step.started_at.into(),
                step.finished_at.into(),
                (&step.detail).into(),
                payload.as_deref().into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn steps(&self, run: RunId) -> Result<Vec<Step>> {
        let rows = self
            .rows("read steps", sql!("steps"), &[run.into()])
            .await?;
        rows.iter().map(|r| self.step_from_row(r)).collect()
    }

    async fn record_process(&self, run: RunId, host: &str, g: ProcessGroup) -> Result<()> {
        self.exec(
            "record process",
            sql!("insert_process"),
            &[
                run.into(),
                host.into(),
                i64::from(g.pgid).into(),
                (g.leader_start.min(i64::MAX as u64) as i64).into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn processes(&self, run: RunId) -> Result<Vec<(String, ProcessGroup)>> {
        let rows = self
            .rows("read processes", sql!("processes"), &[run.into()])
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    self.decode(r.text("host"))?,
                    ProcessGroup {
                        pgid: self.decode(r.int("pgid"))? as i32,
                        leader_start: self.decode(r.int("leader_start"))?.max(0) as u64,
                    },
                ))
            })
            .collect()
    }

    async fn record_missed(&self, m: &MissedFires) -> Result<()> {
        self.exec(
            "record missed fires",
            sql!("insert_missed"),
            &[
                (&m.job).into(),
                m.first.into(),
                m.last.into(),
                (m.count.min(i64::MAX as u64) as i64).into(),
                (&m.reason).into(),
                m.recorded_at.into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn missed(&self, since: DateTime<Utc>) -> Result<Vec<MissedFires>> {
        let rows = self
            .rows("read missed fires", sql!("missed"), &[since.into()])
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MissedFires {
                    job: self.decode(r.text("job"))?,
                    first: self.decode(r.time("first_fire"))?,
                    last: self.decode(r.time("last_fire"))?,
                    count: self.decode(r.int("count"))?.max(0) as u64,
                    reason: self.decode(r.text("reason"))?,
                    recorded_at: self.decode(r.time("recorded_at"))?,
                })
            })
            .collect()
    }

    async fn check_history(&self, job: &str, since: DateTime<Utc>) -> Result<Vec<CheckPoint>> {
        let rows = self
            .rows(
                "read check history",
                sql!("check_history"),
                &[job.into(), since.into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CheckPoint {
                    run_id: self.decode(r.int("run_id"))?,
                    started_at: self.decode(r.time("started_at"))?,
                    result: self.check_from_row(r)?,
                })
            })
            .collect()
    }

    async fn queue_mail(&self, m: &QueuedMail) -> Result<bool> {
        self.durable()?;
        let recipients = m.recipients.join(",");
        let n = self
            .exec(
                "queue mail",
                sql!("queue_mail"),
                &[
                    (&m.message_id).into(),
                    (&m.subject).into(),
                    (&recipients).into(),
                    (&m.raw).into(),
                    m.job.as_deref().into(),
                    m.run_id.into(),
                    m.created_at.into(),
                    m.next_attempt_at.into(),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn claim_mail(
        &self,
        message_id: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool> {
        self.durable()?;
        let row = self
            .row(
                "claim mail",
                sql!("claim_mail"),
                &[message_id.into(), now.into(), lease_until.into()],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn due_mail(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<QueuedMail>> {
        let rows = self
            .rows(
                "read due mail",
                sql!("due_mail"),
                &[now.into(), i64::from(limit).into()],
            )
            .await?;
        rows.iter().map(|r| self.mail_from_row(r)).collect()
    }

    async fn mail_sent(&self, message_id: &str, at: DateTime<Utc>) -> Result<()> {
        self.exec(
            "mark mail sent",
            sql!("mail_sent"),
            &[message_id.into(), at.into()],
        )
        .await?;
        Ok(())
    }

    async fn mail_failed(
        &self,
        message_id: &str,
        error: &str,
        tries: u32,
        next_at: DateTime<Utc>,
    ) -> Result<()> {
        self.exec(
            "mark mail failed",
            sql!("mail_failed"),
            &[
                message_id.into(),
                error.into(),
                next_at.into(),
                i64::from(tries).into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn mail(&self, message_id: &str) -> Result<Option<QueuedMail>> {
        self.row("read mail", sql!("mail"), &[message_id.into()])
            .await?
            .map(|r| self.mail_from_row(&r))
            .transpose()
    }

    async fn mail_backlog(&self) -> Result<MailBacklog> {
        let Some(row) = self
            .row("count pending mail", sql!("mail_backlog"), &[])
            .await?
        else {
            return Ok(MailBacklog::default());
        };
        Ok(MailBacklog {
            pending: self.decode(row.int("pending"))?.max(0) as u64,
            oldest: self.decode(row.opt_time("oldest"))?,
        })
    }

    async fn notify_failing(&self, job: &str, run: RunId, at: DateTime<Utc>) -> Result<bool> {
        let row = self
            .row(
                "mark job failing",
                sql!("notify_failing"),
                &[job.into(), run.into(), at.into()],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn notify_recovered(&self, job: &str, run: RunId, at: DateTime<Utc>) -> Result<bool> {
        let row = self
            .row(
                "mark job recovered",
                sql!("notify_recovered"),
                &[job.into(), run.into(), at.into()],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn notify_states(&self) -> Result<Vec<NotifyState>> {
        let rows = self
            .rows("read notify states", sql!("notify_states"), &[])
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NotifyState {
                    job: self.decode(r.text("job"))?,
                    failing: self.decode(r.boolean("failing"))?,
                    run_id: self.decode(r.int("run_id"))?,
                    since: self.decode(r.time("since"))?,
                })
            })
            .collect()
    }

    async fn request_run(&self, r: &NewRequest) -> Result<RequestId> {
        self.durable()?;
        let params = serde_json::to_string(&r.params).unwrap_or_else(|_| "{}".into());
        let row = self
            .row(
                "request a run",
                sql!("insert_request"),
                &[
                    (&r.job).into(),
                    (&params).into(),
                    (&r.requested_by).into(),
                    r.reason.as_deref().into(),
                    r.dry_run.into(),
                    r.requested_at.into(),
                    r.expires_at.into(),
                    r.confirmed.into(),
                ],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                url: self.url.clone(),
                what: "the request insert returned no id".into(),
            })?;
        self.decode(row.int("id"))
    }

    async fn take_request(&self, owner: &str, now: DateTime<Utc>) -> Result<Option<Request>> {
        self.durable()?;
        self.row(
            "take a requested run",
            B::DIALECT.take_request,
            &[owner.into(), now.into()],
        )
        .await?
        .map(|r| self.request_from_row(&r))
        .transpose()
    }

    async fn request_started(&self, id: RequestId, run: RunId) -> Result<()> {
        self.exec(
            "record a request's run",
            sql!("request_run_id"),
            &[id.into(), run.into()],
        )
        .await?;
        Ok(())
    }

    async fn refuse_request(&self, id: RequestId, error: &str) -> Result<()> {
        self.exec(
            "refuse a request",
            sql!("refuse_request"),
            &[id.into(), error.into()],
        )
        .await?;
        Ok(())
    }

    async fn get_request(&self, id: RequestId) -> Result<Option<Request>> {
        self.row("read a request", sql!("get_request"), &[id.into()])
            .await?
            .map(|r| self.request_from_row(&r))
            .transpose()
    }

    async fn expire_requests(&self, now: DateTime<Utc>) -> Result<Vec<Request>> {
        self.durable()?;
        let rows = self
            .rows(
                "expire requests",
                sql!("expire_requests"),
                &[
                    now.into(),
                    "expired: no daemon took it within its lifetime (`trigger --expires-in`)"
                        .into(),
                ],
            )
            .await?;
        self.requests(rows)
    }

    async fn withdraw_request(
        &self,
        id: RequestId,
        by: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Request>> {
        self.durable()?;
        self.row(
            "withdraw a request",
            sql!("withdraw_request"),
            &[id.into(), by.into(), now.into(), why.into()],
        )
        .await?
        .map(|r| self.request_from_row(&r))
        .transpose()
    }

    async fn list_requests(&self, f: &RequestFilter) -> Result<Vec<Request>> {
        let rows = self
            .rows(
                "list requests",
                sql!("list_requests"),
                &[
                    f.status.map(|s| s.as_str()).into(),
                    f.job.as_deref().into(),
                    i64::from(f.limit).into(),
                ],
            )
            .await?;
        self.requests(rows)
    }

    async fn pause_job(&self, p: &Pause) -> Result<bool> {
        self.durable()?;
        let n = self
            .exec(
                "pause a job",
                sql!("pause_job"),
                &[
                    (&p.job).into(),
                    (&p.paused_by).into(),
                    p.reason.as_deref().into(),
                    p.paused_at.into(),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn resume_job(&self, job: &str) -> Result<bool> {
        self.durable()?;
        Ok(self
            .exec("resume a job", sql!("resume_job"), &[job.into()])
            .await?
            > 0)
    }

    async fn paused_jobs(&self) -> Result<Vec<Pause>> {
        let rows = self
            .rows("read paused jobs", sql!("paused_jobs"), &[])
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Pause {
                    job: self.decode(r.text("job"))?,
                    paused_by: self.decode(r.text("paused_by"))?,
                    reason: self.decode(r.opt_text("reason"))?,
                    paused_at: self.decode(r.time("paused_at"))?,
                })
            })
            .collect()
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        self.exec("prune missed fires", sql!("prune_missed"), &[before.into()])
            .await?;
        self.exec("prune sent mail", sql!("prune_mail"), &[before.into()])
            .await?;
        self.exec("prune requests", sql!("prune_requests"), &[before.into()])
            .await?;
        let mut total = 0;
        loop {
            let n = self.exec("prune", sql!("prune"), &[before.into()]).await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
            // Between batches, claims and heartbeats waiting on the store
            // (the SQLite write lock, a pooled connection) go first.
            tokio::task::yield_now().await;
        }
    }
}
