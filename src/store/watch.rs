//! The store as a daemon sees it: every call's failure counted by
//! operation, and whether the store answers. While it does not, the
//! scheduler fails fast instead of waiting out a timeout per call, probing
//! the store at most every [`PROBE_EVERY`], so the daemon's loop keeps
//! turning and `/healthz` stays true to the process; `/readyz` and the
//! `runbookd_store_up` gauge carry the store's state.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Claimed, HistoryStore, MissedFires, Result, StoreError};
use crate::model::{
    CheckPoint, CheckResult, Finish, LogSnapshot, MailBacklog, NewRequest, NewRun, NotifyState,
    Pause, ProcessGroup, QueuedMail, Request, RequestFilter, RequestId, Run, RunFilter, RunId,
    RunPage, Step,
};

/// How often a down store is tried again by the scheduler.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Whether the store answers, and what failed.
#[derive(Debug)]
pub struct StoreHealth {
    up: AtomicBool,
    /// Times the store went from up to down: a reader that saw it up can
    /// tell it has been down since, even if it is up again.
    downs: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    last_error: Mutex<Option<String>>,
    last_probe: Mutex<Option<Instant>>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        StoreHealth {
            up: AtomicBool::new(true),
            downs: AtomicU64::new(0),
            errors: Mutex::default(),
            last_error: Mutex::default(),
            last_probe: Mutex::default(),
        }
    }
}

impl StoreHealth {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// How many times the store has gone down so far.
    pub fn downs(&self) -> u64 {
        self.downs.load(Ordering::SeqCst)
    }

    /// Failed calls, by operation.
    pub fn errors(&self) -> BTreeMap<&'static str, u64> {
        self.errors.lock().expect("store health lock").clone()
    }

    pub fn errors_total(&self) -> u64 {
        self.errors().values().sum()
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("store health lock").clone()
    }

    /// While the store is down: true at most once per [`PROBE_EVERY`], for
    /// the one call that finds out whether it is back.
    pub fn probe_due(&self) -> bool {
        let mut last = self.last_probe.lock().expect("store health lock");
        if last.is_some_and(|t| t.elapsed() < PROBE_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    fn ok(&self) {
        if !self.up.swap(true, Ordering::SeqCst) {
            tracing::info!("history store answers again");
        }
    }

    fn failed(&self, op: &'static str, e: &StoreError) {
        *self
            .errors
            .lock()
            .expect("store health lock")
            .entry(op)
            .or_default() += 1;
        *self.last_error.lock().expect("store health lock") = Some(e.to_string());
        if self.up.swap(false, Ordering::SeqCst) {
            self.downs.fetch_add(1, Ordering::SeqCst);
            tracing::error!("history store is down: {e}");
        }
    }
}

/// A store whose every call reports to a [`StoreHealth`].
#[derive(Debug)]
pub struct WatchedStore {
    inner: Arc<dyn HistoryStore>,
    health: Arc<StoreHealth>,
}

impl WatchedStore {
    pub fn new(inner: Arc<dyn HistoryStore>) -> Self {
        WatchedStore {
            inner,
            health: Arc::default(),
        }
    }

    pub fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    /// A call that must persist something: its success shows the store
    /// takes writes again.
    async fn watch<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let r = fut.await;
        match &r {
            Ok(_) => self.health.ok(),
            Err(e) => self.health.failed(op, e),
        }
        r
    }

    /// A call that persists nothing: its failure marks the store down, but
    /// its success does not mark it up, since a full disk still answers
    /// reads while every claim fails.
    async fn watch_read<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let r = fut.await;
        if let Err(e) = &r {
            self.health.failed(op, e);
        }
        r
    }
}

#[async_trait]
impl HistoryStore for WatchedStore {
    fn url(&self) -> &str {
        self.inner.url()
    }

    async fn wakeups(&self) -> Result<Option<Box<dyn super::Wakeups>>> {
        self.inner.wakeups().await
    }

    fn health(&self) -> Option<Arc<StoreHealth>> {
        Some(self.health.clone())
    }

    async fn migrate(&self) -> Result<()> {
        self.watch("migrate", self.inner.migrate()).await
    }

    async fn ping(&self) -> Result<()> {
        self.watch("ping", self.inner.ping()).await
    }

    async fn insert_run(&self, run: &NewRun) -> Result<Option<RunId>> {
        self.watch("insert run", self.inner.insert_run(run)).await
    }

    async fn claim_run(&self, run: &NewRun) -> Result<Option<Claimed>> {
        self.watch("claim run", self.inner.claim_run(run)).await
    }

    async fn claim_runs(&self, runs: &[NewRun]) -> Result<Vec<Option<Claimed>>> {
        self.watch("claim runs", self.inner.claim_runs(runs)).await
    }

    async fn heartbeat(
        &self,
        id: RunId,
        at: DateTime<Utc>,
        log: Option<&LogSnapshot>,
    ) -> Result<bool> {
        self.watch("heartbeat", self.inner.heartbeat(id, at, log))
            .await
    }

    async fn finish_run(&self, id: RunId, finish: &Finish) -> Result<()> {
        self.watch("finish run", self.inner.finish_run(id, finish))
            .await
    }

    async fn request_cancel(&self, id: RunId) -> Result<bool> {
        self.watch("request cancel", self.inner.request_cancel(id))
            .await
    }

    async fn running(&self, job: Option<&str>) -> Result<Vec<Run>> {
        self.watch_read("list running runs", self.inner.running(job))
            .await
    }

    async fn abandon_stale(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<RunId>> {
        self.watch(
            "abandon stale runs",
            self.inner.abandon_stale(stale_before, now),
        )
        .await
    }

    async fn abandon(&self, id: RunId, now: DateTime<Utc>, reason: &str) -> Result<bool> {
        self.watch("abandon run", self.inner.abandon(id, now, reason))
            .await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        self.watch_read("list runs", self.inner.list_runs(filter))
            .await
    }

    async fn page_runs(&self, page: &RunPage) -> Result<Vec<Run>> {
        self.watch_read("page runs", self.inner.page_runs(page))
            .await
    }

    async fn retries_of(&self, run: &Run, limit: u32) -> Result<Vec<Run>> {
        self.watch_read("read retries", self.inner.retries_of(run, limit))
            .await
    }

    async fn chained_from(&self, run: &Run, until: DateTime<Utc>, limit: u32) -> Result<Vec<Run>> {
        self.watch_read(
            "read chained runs",
            self.inner.chained_from(run, until, limit),
        )
        .await
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        self.watch_read("get run", self.inner.get_run(id)).await
    }

    async fn last_run(&self, job: &str, dry_run: Option<bool>) -> Result<Option<Run>> {
        self.watch_read("last run", self.inner.last_run(job, dry_run))
            .await
    }

    async fn cursor(&self, job: &str) -> Result<Option<DateTime<Utc>>> {
        self.watch_read("read cursor", self.inner.cursor(job)).await
    }

    async fn advance_cursors(&self, jobs: &[&str], to: DateTime<Utc>) -> Result<()> {
        self.watch("advance cursors", self.inner.advance_cursors(jobs, to))
            .await
    }

    async fn see_jobs(&self, jobs: &[&str], at: DateTime<Utc>) -> Result<()> {
        self.watch("record first-seen jobs", self.inner.see_jobs(jobs, at))
            .await
    }

    async fn first_seen(&self) -> Result<BTreeMap<String, DateTime<Utc>>> {
        self.watch_read("read first-seen jobs", self.inner.first_seen())
            .await
    }

    async fn record_checks(&self, run: RunId, checks: &[CheckResult]) -> Result<()> {
        self.watch(
            "record check results",
            self.inner.record_checks(run, checks),
        )
        .await
    }

    async fn checks(&self, run: RunId) -> Result<Vec<CheckResult>> {
        self.watch_read("read check results", self.inner.checks(run))
            .await
    }

    async fn record_step(&self, run: RunId, step: &Step) -> Result<()> {
        self.watch("record step", self.inner.record_step(run, step))
            .await
    }

    async fn steps(&self, run: RunId) -> Result<Vec<Step>> {
        self.watch_read("read steps", self.inner.steps(run)).await
    }

    async fn record_process(&self, run: RunId, host: &str, group: ProcessGroup) -> Result<()> {
        self.watch(
            "record process",
            self.inner.record_process(run, host, group),
        )
        .await
    }

    async fn processes(&self, run: RunId) -> Result<Vec<(String, ProcessGroup)>> {
        self.watch_read("read processes", self.inner.processes(run))
            .await
    }

    async fn record_missed(&self, missed: &MissedFires) -> Result<()> {
        self.watch("record missed fires", self.inner.record_missed(missed))
            .await
    }

    async fn missed(&self, since: DateTime<Utc>) -> Result<Vec<MissedFires>> {
        self.watch_read("read missed fires", self.inner.missed(since))
            .await
    }

    async fn check_history(&self, job: &str, since: DateTime<Utc>) -> Result<Vec<CheckPoint>> {
        self.watch_read("read check history", self.inner.check_history(job, since))
            .await
    }

    async fn queue_mail(&self, mail: &QueuedMail) -> Result<bool> {
        self.watch("queue mail", self.inner.queue_mail(mail)).await
    }

    async fn claim_mail(
        &self,
        message_id: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool> {
        self.watch(
            "claim mail",
            self.inner.claim_mail(message_id, now, lease_until),
        )
        .await
    }

    async fn due_mail(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<QueuedMail>> {
        self.watch_read("read due mail", self.inner.due_mail(now, limit))
            .await
    }

    async fn mail_sent(&self, message_id: &str, at: DateTime<Utc>) -> Result<()> {
        self.watch("mark mail sent", self.inner.mail_sent(message_id, at))
            .await
    }

    async fn mail_failed(
        &self,
        message_id: &str,
        error: &str,
        tries: u32,
        next_at: DateTime<Utc>,
    ) -> Result<()> {
        self.watch(
            "mark mail failed",
            self.inner.mail_failed(message_id, error, tries, next_at),
        )
        .await
    }

    async fn mail(&self, message_id: &str) -> Result<Option<QueuedMail>> {
        self.watch_read("read mail", self.inner.mail(message_id))
            .await
    }

    async fn mail_backlog(&self) -> Result<MailBacklog> {
        self.watch_read("count pending mail", self.inner.mail_backlog())
            .await
    }

    async fn notify_failing(&self, job: &str, run: RunId, at: DateTime<Utc>) -> Result<bool> {
        self.watch("mark job failing", self.inner.notify_failing(job, run, at))
            .await
    }

    async fn notify_recovered(&self, job: &str, run: RunId, at: DateTime<Utc>) -> Result<bool> {
        self.watch(
            "mark job recovered",
            self.inner.notify_recovered(job, run, at),
        )
        .await
    }

    async fn notify_states(&self) -> Result<Vec<NotifyState>> {
        self.watch_read("read notify states", self.inner.notify_states())
            .await
    }

    async fn request_run(&self, req: &NewRequest) -> Result<RequestId> {
        self.watch("request a run", self.inner.request_run(req))
            .await
    }

    async fn take_request(&self, owner: &str, now: DateTime<Utc>) -> Result<Option<Request>> {
        self.watch_read("take a requested run", self.inner.take_request(owner, now))
            .await
    }

    async fn request_started(&self, id: RequestId, run: RunId) -> Result<()> {
        self.watch(
            "record a request's run",
            self.inner.request_started(id, run),
        )
        .await
    }

    async fn refuse_request(&self, id: RequestId, error: &str) -> Result<()> {
        self.watch("refuse a request", self.inner.refuse_request(id, error))
            .await
    }

    async fn get_request(&self, id: RequestId) -> Result<Option<Request>> {
        self.watch_read("read a request", self.inner.get_request(id))
            .await
    }

    async fn expire_requests(&self, now: DateTime<Utc>) -> Result<Vec<Request>> {
        self.watch("expire requests", self.inner.expire_requests(now))
            .await
    }

    async fn withdraw_request(
        &self,
        id: RequestId,
        by: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Request>> {
        self.watch(
            "withdraw a request",
            self.inner.withdraw_request(id, by, why, now),
        )
        .await
    }

    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<Request>> {
        self.watch_read("list requests", self.inner.list_requests(filter))
            .await
    }

    async fn pause_job(&self, pause: &Pause) -> Result<bool> {
        self.watch("pause a job", self.inner.pause_job(pause)).await
    }

    async fn resume_job(&self, job: &str) -> Result<bool> {
        self.watch("resume a job", self.inner.resume_job(job)).await
    }

    async fn paused_jobs(&self) -> Result<Vec<Pause>> {
        self.watch_read("read paused jobs", self.inner.paused_jobs())
            .await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        self.watch("prune", self.inner.prune(before)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_spaced() {
        let h = StoreHealth::default();
        assert!(h.probe_due());
        assert!(!h.probe_due());
    }

    #[test]
    fn failures_are_counted_by_operation_and_mark_down() {
        let h = StoreHealth::default();
        let e = StoreError::UnsupportedUrl { url: "x".into() };
        h.failed("insert run", &e);
        h.failed("insert run", &e);
        h.failed("heartbeat", &e);
        assert!(!h.is_up());
        assert_eq!(h.errors_total(), 3);
        assert_eq!(h.errors()["insert run"], 2);
        h.ok();
        assert!(h.is_up());
        assert!(h.last_error().unwrap().contains("unsupported"));
    }

    // A full disk still answers reads: only a write may call the store back.
    #[tokio::test]
    async fn a_read_never_marks_a_down_store_up_and_a_write_does() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        let store = WatchedStore::new(super::super::open(&url).await.unwrap());
        let e = StoreError::UnsupportedUrl { url: "x".into() };
        store.health().failed("insert run", &e);
        store.paused_jobs().await.unwrap();
        store.take_request("me", Utc::now()).await.unwrap();
        store.cursor("j").await.unwrap();
        assert!(!store.health().is_up(), "a read marked the store up");
        store.advance_cursors(&["j"], Utc::now()).await.unwrap();
        assert!(store.health().is_up(), "a write did not mark the store up");
    }
}
