//! The daemon's decisions: which fires are due, which are missed and caught
//! up, which are skipped for overlap, and which process runs each.
//!
//! `tick` is called whenever the timer says "look now" (once a second from
//! tokio-cron-scheduler in `serve`; directly, with a manual clock, in tests).
//! It reads the time from the injected clock and evaluates every job's fires
//! since its cursor, so a late or lost timer tick delays fires but never
//! loses them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures::StreamExt;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::{Config, JobConfig};
use crate::model::Pause;
use crate::runner::{Admission, RunRequest, Runner, Stop};
use crate::schedule::{CronExpr, Fire};
use crate::store::{Claimed, MissedFires, RunFilter, RunId, StoreError, Trigger};

/// A fire this late or less is simply late (a slow tick), not missed.
pub const LATE_TOLERANCE: Duration = Duration::from_secs(30);

/// How many fires one evaluation looks at, so a per-second job after a long
/// outage cannot make a tick walk millions of instants.
const SCAN_LIMIT: usize = 100_000;
const COUNT_LIMIT: usize = 10_000;

/// The fires of one job between its cursor and now.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    Nothing,
    /// Fires inside the tolerance: each runs with trigger `schedule`.
    OnTime(Vec<Fire>),
    /// Fires older than the tolerance (downtime, a stalled store): at most
    /// one runs, the newest, if it is inside the catch-up window.
    Backlog {
        run: Option<(Fire, Trigger)>,
        /// Fires that will not run. `more`: there were yet more, uncounted.
        missed: usize,
        more: bool,
        /// The oldest and newest of the missed fires.
        span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    },
}

/// Decides which fires in `(cursor, now]` run. Pure.
pub fn due(
    expr: &CronExpr,
    tz: Tz,
    cursor: DateTime<Utc>,
    now: DateTime<Utc>,
    catch_up: Option<Duration>,
    tolerance: Duration,
) -> Due {
    if now <= cursor {
        return Due::Nothing;
    }
    let reach = catch_up.unwrap_or_default().max(tolerance);
    let reach = chrono::Duration::from_std(reach).unwrap_or(chrono::Duration::MAX);
    let scan_from = cursor.max(now.checked_sub_signed(reach).unwrap_or(cursor));
    // Fires before the window are only counted, for the log.
    let early = if scan_from > cursor {
        expr.fires_between(tz, cursor, scan_from, COUNT_LIMIT)
    } else {
        Vec::new()
    };
    let before_window = early.len();
    let fires = expr.fires_between(tz, scan_from, now, SCAN_LIMIT);
    let more = before_window == COUNT_LIMIT || fires.len() == SCAN_LIMIT;
    let late = |f: &Fire| (now - f.at).to_std().unwrap_or_default() > tolerance;
    if fires.is_empty() && before_window == 0 {
        return Due::Nothing;
    }
    if before_window == 0 && !fires.iter().any(late) {
        return Due::OnTime(fires);
    }
    let Some(newest) = fires.last().copied() else {
        return Due::Backlog {
            run: None,
            missed: before_window,
            more,
            span: early.first().zip(early.last()).map(|(a, b)| (a.at, b.at)),
        };
    };
    let age = (now - newest.at).to_std().unwrap_or_default();
    let run = if age <= tolerance {
        Some((newest, Trigger::Schedule))
    } else if catch_up.is_some_and(|w| age <= w) {
        Some((newest, Trigger::Catchup))
    } else {
        None
    };
    let missed = before_window + fires.len() - usize::from(run.is_some());
    let not_run = &fires[..fires.len() - usize::from(run.is_some())];
    let first = early.first().or(not_run.first()).map(|f| f.at);
    let last = not_run.last().or(early.last()).map(|f| f.at);
    Due::Backlog {
        run,
        missed,
        more,
        span: first.zip(last),
    }
}

/// One tick's work, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickReport {
    pub started: Vec<(String, RunId, Trigger)>,
    pub skipped: Vec<(String, RunId)>,
    /// Fires another replica claimed first.
    pub lost_claims: usize,
    /// Fires that will never run, by job.
    pub missed: Vec<(String, u64)>,
    /// Whether the store took this tick's claims.
    pub store_ok: bool,
}

impl TickReport {
    pub fn missed_total(&self) -> u64 {
        self.missed.iter().map(|(_, n)| n).sum()
    }
}

/// Fires that could not be claimed because the store was down. When it
/// answers again they follow the downtime rule: the newest runs once if it
/// is inside `catch_up` and no fire is due on time, the rest are missed.
#[derive(Debug, Clone, Default)]
struct Outage {
    count: u64,
    first: Option<DateTime<Utc>>,
    newest: Option<Fire>,
}

impl Outage {
    fn add(&mut self, fires: &[Fire]) {
        if let Some(f) = fires.first() {
            self.first.get_or_insert(f.at);
        }
        self.count += fires.len() as u64;
        if let Some(f) = fires.last() {
            self.newest = Some(*f);
        }
    }
}

/// What to do with an outage's fires once the store answers. Pure.
/// Returns the fire to run (as catch-up) and the missed stretch.
pub fn settle(
    outage_count: u64,
    first: Option<DateTime<Utc>>,
    newest: Option<Fire>,
    on_time_now: bool,
    now: DateTime<Utc>,
    catch_up: Option<Duration>,
) -> (Option<Fire>, u64, Option<(DateTime<Utc>, DateTime<Utc>)>) {
    let Some(newest) = newest else {
        return (None, 0, None);
    };
    let age = (now - newest.at).to_std().unwrap_or_default();
    let run = (!on_time_now && catch_up.is_some_and(|w| age <= w)).then_some(newest);
    let missed = outage_count - u64::from(run.is_some());
    let span = first.map(|f| (f, newest.at));
    (run, missed, span.filter(|_| missed > 0))
}

pub struct Scheduler {
    config: Arc<Config>,
    runner: Runner,
    clock: Arc<dyn Clock>,
    tolerance: Duration,
    cursors: Mutex<HashMap<String, DateTime<Utc>>>,
    outages: Mutex<HashMap<String, Outage>>,
    /// The store's down count when a tick last found it up.
    settled_downs: AtomicU64,
    /// Jobs paused in the store, as last read.
    paused: Mutex<HashMap<String, Pause>>,
    /// Runs this process is executing, to cancel on replace or shutdown.
    active: Arc<Mutex<HashMap<RunId, (String, Stop)>>>,
    tasks: TaskTracker,
    /// How many jobs' fires one tick claims at once.
    claim_concurrency: usize,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("jobs", &self.config.jobs.len())
            .finish()
    }
}

/// How long a probe of a down store may take before the tick moves on.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// After an outage, a fire older than this came due while the store was
/// down: it is the outage's, and follows the catch-up rule. Under a
/// second, so the evaluation that finds the store back runs at most one
/// fire of a per-second job on time: a fire that no tick saw while the
/// store was down (the loop held up by a hung probe) is no longer taken
/// for a fresh one, which let two run at once, then a third on time.
const FRESH: Duration = Duration::from_millis(999);

/// A job's part of a tick once its fires are decided: the fires to claim,
/// or its end of the tick (its report, and its name if its cursor moves).
enum Plan<'a> {
    Done(TickReport, Option<String>),
    Claim {
        job: &'a JobConfig,
        report: TickReport,
        to_run: Vec<(Fire, Trigger)>,
    },
}

/// A job's first fire of a tick, claimed with other jobs' fires.
enum Early {
    Claimed(Option<Claimed>),
    /// The shared claim failed (the error): the fire is the outage's.
    Failed(String),
}

/// Jobs whose fires one tick claims at once: the Postgres pool's size, so
/// claims never queue for a connection behind each other.
pub const CLAIM_CONCURRENCY: usize = 8;

/// Requested runs a replica takes per tick at most: the rest wait a second
/// for the next tick (or another replica).
const REQUESTS_PER_TICK: usize = 10;

impl Scheduler {
    /// Loads each scheduled job's cursor from the store. A job the store has
    /// never seen starts at `now`: a new job has no missed fires. Records
    /// `now` as every job's first-seen instant (kept if earlier), so the
    /// morning report judges only fires from here on.
    pub async fn start(
        config: Arc<Config>,
        runner: Runner,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let now = clock.now();
        let names: Vec<&str> = config.jobs.keys().map(String::as_str).collect();
        runner.store().see_jobs(&names, now).await?;
        let mut cursors = HashMap::new();
        for job in config.jobs.values().filter(|j| j.schedule.is_some()) {
            let c = runner.store().cursor(&job.name).await?;
            cursors.insert(job.name.clone(), c.unwrap_or(now));
        }
        let settled_downs = runner.store_health().downs();
        Ok(Scheduler {
            config,
            runner,
            clock,
            tolerance: LATE_TOLERANCE,
            cursors: Mutex::new(cursors),
            outages: Mutex::default(),
            settled_downs: AtomicU64::new(settled_downs),
            paused: Mutex::default(),
            active: Arc::new(Mutex::new(HashMap::new())),
            tasks: TaskTracker::new(),
            claim_concurrency: CLAIM_CONCURRENCY,
        })
    }

    /// How many jobs' fires a tick claims at once (default
    /// [`CLAIM_CONCURRENCY`]; 1 claims them one after another, each alone,
    /// as before fires were claimed together).
    pub fn with_claim_concurrency(mut self, n: usize) -> Self {
        self.claim_concurrency = n.max(1);
        self
    }

    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    pub fn active_runs(&self) -> usize {
        self.active.lock().expect("active lock").len()
    }

    /// The next instant any job is due, so the daemon can wake exactly then
    /// instead of at its timer's next poll.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let cursors = self.cursors.lock().expect("cursor lock");
        self.config
            .jobs
            .values()
            .filter(|j| !j.suspend)
            .filter_map(|j| {
                let expr = j.schedule.as_ref()?;
                let cursor = cursors.get(&j.name)?;
                expr.next_fire(j.timezone, *cursor).map(|f| f.at)
            })
            .min()
    }

    /// Each unsuspended scheduled job's next fire after its cursor.
    pub fn next_fires(&self) -> Vec<(String, DateTime<Utc>)> {
        let cursors = self.cursors.lock().expect("cursor lock");
        self.config
            .jobs
            .values()
            .filter(|j| !j.suspend)
            .filter_map(|j| {
                let at = j
                    .schedule
                    .as_ref()?
                    .next_fire(j.timezone, *cursors.get(&j.name)?)?
                    .at;
                Some((j.name.clone(), at))
            })
            .collect()
    }

    /// Whether claims can be tried now: the store is up, or it is down and
    /// this tick's probe (at most one per `PROBE_EVERY`) finds it back.
    async fn store_reachable(&self) -> bool {
        let health = self.runner.store_health();
        if health.is_up() {
            return true;
        }
        if !health.probe_due() {
            return false;
        }
        matches!(
            tokio::time::timeout(PROBE_TIMEOUT, self.runner.store().ping()).await,
            Ok(Ok(()))
        )
    }

    /// Evaluates every scheduled job at the clock's now. A fire is looked at
    /// by one tick only: one that cannot be claimed (the store is down) is
    /// never replayed; it waits in the job's outage for the catch-up rule.
    pub async fn tick(&self) -> TickReport {
        // The probe can take a while: the tick's now is after it.
        let store_ok = self.store_reachable().await;
        let now = self.clock.now();
        let mut report = TickReport {
            store_ok,
            ..Default::default()
        };
        // The first tick to find the store up after it has been down (even
        // down and up again between ticks, by a run's own calls) settles
        // every job as after an outage: fires that came due meanwhile are
        // the outage's even when no tick saw them (the loop was held up by
        // the store's timeouts), so they follow the catch-up rule instead
        // of running as a burst.
        let downs = self.runner.store_health().downs();
        if store_ok && self.settled_downs.swap(downs, Ordering::SeqCst) != downs {
            let mut outages = self.outages.lock().expect("outage lock");
            for job in self.config.jobs.values().filter(|j| j.schedule.is_some()) {
                outages.entry(job.name.clone()).or_default();
            }
        }
        // Pauses are read once a tick; a replica that cannot read them
        // keeps the last it knew.
        if store_ok {
            match self.runner.store().paused_jobs().await {
                Ok(p) => {
                    *self.paused.lock().expect("pause lock") =
                        p.into_iter().map(|p| (p.job.clone(), p)).collect()
                }
                Err(e) => tracing::warn!("cannot read paused jobs: {e}"),
            }
        }
        // Each job's fires are claimed in order (an earlier fire yields to
        // nothing later), and the jobs concurrently: with fifty fires due at
        // one instant, the last no longer waits for forty-nine claims.
        let shared_ok = AtomicBool::new(report.store_ok);
        let jobs: Vec<&JobConfig> = self
            .config
            .jobs
            .values()
            .filter(|j| j.schedule.is_some())
            .collect();
        let planning: Vec<_> = jobs
            .into_iter()
            .map(|job| self.plan_job(job, now, &shared_ok))
            .collect();
        let plans: Vec<Plan<'_>> = futures::stream::iter(planning)
            .buffer_unordered(self.claim_concurrency)
            .collect()
            .await;
        let mut early = self.claim_early(&plans).await;
        let each: Vec<_> = plans
            .into_iter()
            .map(|plan| {
                let first = match &plan {
                    Plan::Claim { job, .. } => early.remove(&job.name),
                    Plan::Done(..) => None,
                };
                self.claim_job(plan, first, &shared_ok)
            })
            .collect();
        let parts: Vec<(TickReport, Option<String>)> = futures::stream::iter(each)
            .buffer_unordered(self.claim_concurrency)
            .collect()
            .await;
        report.store_ok = shared_ok.load(Ordering::SeqCst);
        // A store found down meanwhile is not waited on again.
        let settled: Vec<&str> = parts.iter().filter_map(|(_, j)| j.as_deref()).collect();
        if report.store_ok
            && self.runner.store_health().is_up()
            && let Err(e) = self.runner.store().advance_cursors(&settled, now).await
        {
            tracing::warn!("cannot save the schedule cursors: {e}");
        }
        for (p, _) in parts {
            report.started.extend(p.started);
            report.skipped.extend(p.skipped);
            report.lost_claims += p.lost_claims;
            report.missed.extend(p.missed);
        }
        if report.store_ok && self.runner.store_health().is_up() {
            self.take_requests(&mut report).await;
        }
        report
    }

    /// The first fire each job will claim this tick (not a paused or
    /// suspended job's), claimed together in one round trip where the
    /// store can: with fifty fires due at one instant, the last does not
    /// wait for the others' claims. Sorted by job, so replicas take the
    /// per-job locks in one order.
    async fn claim_early(&self, plans: &[Plan<'_>]) -> HashMap<String, Early> {
        let paused = self.paused.lock().expect("pause lock").clone();
        let mut asked: Vec<(&JobConfig, RunRequest)> = plans
            .iter()
            .filter_map(|p| match p {
                Plan::Claim { job, to_run, .. }
                    if !job.suspend && !paused.contains_key(&job.name) =>
                {
                    to_run
                        .first()
                        .map(|(f, t)| (*job, self.fire_request(*f, *t)))
                }
                _ => None,
            })
            .collect();
        if asked.len() < 2 || self.claim_concurrency == 1 || !self.runner.store_health().is_up() {
            return HashMap::new();
        }
        asked.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let pairs: Vec<(&JobConfig, &RunRequest)> = asked.iter().map(|(j, r)| (*j, r)).collect();
        match self.runner.claim_first(&pairs).await {
            Ok(claims) => asked
                .iter()
                .zip(claims)
                .map(|((job, _), c)| (job.name.clone(), Early::Claimed(c)))
                .collect(),
            Err(e) => {
                tracing::error!("cannot claim the {} fires due now: {e}", asked.len());
                let e = e.to_string();
                asked
                    .iter()
                    .map(|(job, _)| (job.name.clone(), Early::Failed(e.clone())))
                    .collect()
            }
        }
    }

    /// One job's part of a tick, before any claim: which fires are due.
    async fn plan_job<'a>(
        &self,
        job: &'a JobConfig,
        now: DateTime<Utc>,
        shared_ok: &AtomicBool,
    ) -> Plan<'a> {
        let mut report = TickReport {
            store_ok: shared_ok.load(Ordering::SeqCst),
            ..Default::default()
        };
        let Some(expr) = &job.schedule else {
            return Plan::Done(report, None);
        };
        let cursor = self
            .cursors
            .lock()
            .expect("cursor lock")
            .get(&job.name)
            .copied()
            .unwrap_or(now);
        let decision = due(
            expr,
            job.timezone,
            cursor,
            now,
            job.catch_up,
            self.tolerance,
        );
        let mut to_run: Vec<(Fire, Trigger)> = match decision {
            Due::Nothing => Vec::new(),
            Due::OnTime(fires) => fires.into_iter().map(|f| (f, Trigger::Schedule)).collect(),
            Due::Backlog {
                run,
                missed,
                more,
                span,
            } => {
                tracing::warn!(
                    job = %job.name,
                    "{missed}{} fire(s) missed while runbookd was not evaluating {} (cursor {}); {}",
                    if more { "+" } else { "" },
                    job.name,
                    cursor.to_rfc3339(),
                    match &run {
                        Some((f, t)) => format!("running the newest, {} ({t})", f.at.to_rfc3339()),
                        None => match job.catch_up {
                            Some(w) => format!("none inside the catch_up window of {}", humantime::format_duration(w)),
                            None => "the job has no catch_up window".to_string(),
                        },
                    }
                );
                if let Some((first, last)) = span {
                    self.missed(
                        job,
                        missed as u64,
                        first,
                        last,
                        "runbookd was not evaluating schedules (stopped, or its loop stalled)",
                        &mut report,
                    )
                    .await;
                }
                run.into_iter().collect()
            }
        };
        self.cursors
            .lock()
            .expect("cursor lock")
            .insert(job.name.clone(), now);
        // A call earlier in this tick (the pauses, another job's claim)
        // may have found the store gone after the tick began: its fires
        // are the outage's, never replayed as on time once it is back.
        if !self.runner.store_health().is_up() {
            report.store_ok = false;
        }
        if !report.store_ok {
            let fires: Vec<Fire> = to_run.iter().map(|(f, _)| *f).collect();
            if !fires.is_empty() {
                tracing::warn!(job = %job.name, "history store down: {} fire(s) not claimed", fires.len());
            }
            self.add_outage(&job.name, &fires);
            shared_ok.store(false, Ordering::SeqCst);
            return Plan::Done(report, None);
        }
        // The store answers: settle fires an outage left behind. A fire
        // that came due while the store was still down (a slow tick
        // waiting on it) belongs to the outage, not to now.
        let outage = self.outages.lock().expect("outage lock").remove(&job.name);
        if let Some(mut o) = outage {
            let fresh_after = now - chrono::Duration::from_std(FRESH).unwrap_or_default();
            let (stale, fresh): (Vec<_>, Vec<_>) =
                to_run.into_iter().partition(|(f, _)| f.at <= fresh_after);
            o.add(&stale.iter().map(|(f, _)| *f).collect::<Vec<_>>());
            to_run = fresh;
            let (run, missed, span) = settle(
                o.count,
                o.first,
                o.newest,
                !to_run.is_empty(),
                now,
                job.catch_up,
            );
            if let Some((first, last)) = span {
                tracing::warn!(job = %job.name, "{missed} fire(s) missed while the history store was down");
                self.missed(
                    job,
                    missed,
                    first,
                    last,
                    "the history store was unreachable, so the fire could not be claimed",
                    &mut report,
                )
                .await;
            }
            if let Some(f) = run {
                to_run.insert(0, (f, Trigger::Catchup));
            }
        }
        Plan::Claim {
            job,
            report,
            to_run,
        }
    }

    /// One job's part of a tick: its due fires, claimed in order (the
    /// first may have been claimed already, with other jobs').
    async fn claim_job(
        &self,
        plan: Plan<'_>,
        mut first: Option<Early>,
        shared_ok: &AtomicBool,
    ) -> (TickReport, Option<String>) {
        let (job, mut report, to_run) = match plan {
            Plan::Done(report, settled) => return (report, settled),
            Plan::Claim {
                job,
                report,
                to_run,
            } => (job, report, to_run),
        };
        // A failure is this job's: other jobs' fires in this tick are
        // still tried (a down store fails them fast through its health).
        let mut job_ok = true;
        for (i, (fire, trigger)) in to_run.iter().enumerate() {
            let started = match first.take() {
                Some(Early::Failed(e)) => Err(e),
                Some(Early::Claimed(c)) => self
                    .fire(job, *fire, *trigger, Some(c), &mut report)
                    .await
                    .map_err(|e| e.to_string()),
                None => self
                    .fire(job, *fire, *trigger, None, &mut report)
                    .await
                    .map_err(|e| e.to_string()),
            };
            if let Err(e) = started {
                tracing::error!(job = %job.name, "cannot start the fire at {}: {e}", fire.at.to_rfc3339());
                job_ok = false;
                let rest: Vec<Fire> = to_run[i..].iter().map(|(f, _)| *f).collect();
                self.add_outage(&job.name, &rest);
                break;
            }
        }
        if !report.store_ok {
            shared_ok.store(false, Ordering::SeqCst);
        }
        // Its cursor is saved with the others', after every claim.
        let settled = report.store_ok && job_ok;
        (report, settled.then(|| job.name.clone()))
    }

    fn add_outage(&self, job: &str, fires: &[Fire]) {
        self.outages
            .lock()
            .expect("outage lock")
            .entry(job.to_string())
            .or_default()
            .add(fires);
    }

    /// Records fires that will never run, for the metrics and the morning
    /// report. The record is best effort: the log has them too.
    async fn missed(
        &self,
        job: &JobConfig,
        count: u64,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
        reason: &str,
        report: &mut TickReport,
    ) {
        if !report.store_ok || !self.runner.store_health().is_up() {
            // Do not wait on a store known to be down: the log has them.
            report.missed.push((job.name.clone(), count));
            return;
        }
        // Another replica may have run some of them while this one could
        // not reach the store: those were not missed.
        let ran = match self
            .runner
            .store()
            .list_runs(&RunFilter {
                job: Some(job.name.clone()),
                since: Some(first - chrono::Duration::hours(1)),
                limit: 10_000,
            })
            .await
        {
            Ok(runs) => runs
                .iter()
                .filter(|r| r.attempt == 1)
                .filter(|r| r.scheduled_for.is_some_and(|at| first <= at && at <= last))
                .count() as u64,
            Err(_) => 0,
        };
        let count = count.saturating_sub(ran);
        if count == 0 {
            return;
        }
        report.missed.push((job.name.clone(), count));
        let m = MissedFires {
            job: job.name.clone(),
            first,
            last,
            count,
            reason: reason.to_string(),
            recorded_at: self.clock.now(),
        };
        if let Err(e) = self.runner.store().record_missed(&m).await {
            tracing::warn!(job = %job.name, "cannot record {count} missed fire(s): {e}");
        }
    }

    /// What the scheduler asks for a fire.
    fn fire_request(&self, fire: Fire, trigger: Trigger) -> RunRequest {
        RunRequest {
            trigger,
            triggered_by: self.runner.identity().scheduler(),
            scheduled_for: Some(fire.at),
            dry_run: false,
            ..Default::default()
        }
    }

    /// Starts a fire under the job's pause and overlap rules; `claimed`:
    /// its claim, if made already (with other jobs' fires).
    async fn fire(
        &self,
        job: &JobConfig,
        fire: Fire,
        trigger: Trigger,
        claimed: Option<Option<Claimed>>,
        report: &mut TickReport,
    ) -> Result<(), StoreError> {
        if job.suspend {
            tracing::info!(job = %job.name, "suspended: not running the fire at {}", fire.at.to_rfc3339());
            return Ok(());
        }
        let req = self.fire_request(fire, trigger);
        let pause = self
            .paused
            .lock()
            .expect("pause lock")
            .get(&job.name)
            .cloned();
        if let Some(p) = pause {
            // Claimed as skipped in one insert, so the history and the
            // morning report say why the fire did not run, and it is never
            // seen running in between.
            let reason = format!(
                "skipped: {} paused by {} since {}{}",
                job.name,
                p.paused_by,
                p.paused_at.to_rfc3339(),
                p.reason.map(|r| format!(" ({r})")).unwrap_or_default()
            );
            match self.runner.claim_skipped(job, &req, &reason).await? {
                Some(id) => report.skipped.push((job.name.clone(), id)),
                None => report.lost_claims += 1,
            }
            return Ok(());
        }
        let mut req = req;
        self.admitted(job, trigger, &mut req, claimed, report)
            .await?;
        Ok(())
    }

    /// Claims `req` under the job's overlap rule and starts it if the rule
    /// lets it; the run id, whatever became of it (`None`: another process
    /// claimed this fire).
    async fn admitted(
        &self,
        job: &JobConfig,
        trigger: Trigger,
        req: &mut RunRequest,
        claimed: Option<Option<Claimed>>,
        report: &mut TickReport,
    ) -> Result<Option<RunId>, StoreError> {
        let admission = match claimed {
            Some(c) => self.runner.admit_claimed(job, req, c).await?,
            None => self.runner.admit(job, req).await?,
        };
        match admission {
            Admission::Lost => {
                report.lost_claims += 1;
                Ok(None)
            }
            Admission::Skipped { id, .. } => {
                report.skipped.push((job.name.clone(), id));
                Ok(Some(id))
            }
            Admission::Start { id } => {
                report.started.push((job.name.clone(), id, trigger));
                self.spawn(job.clone(), req.clone(), id);
                Ok(Some(id))
            }
        }
    }

    /// Takes the requests waiting now, outside a tick: a request the store
    /// pushed (Postgres NOTIFY) starts within milliseconds, not at the
    /// next tick.
    pub async fn take_requests_now(&self) -> TickReport {
        let mut report = TickReport {
            store_ok: self.runner.store_health().is_up(),
            ..Default::default()
        };
        if report.store_ok {
            self.take_requests(&mut report).await;
        }
        report
    }

    /// Runs requested through the store (`runbookd trigger`): this replica
    /// takes each at most once, and overlap rules apply as to fires.
    async fn take_requests(&self, report: &mut TickReport) {
        for _ in 0..REQUESTS_PER_TICK {
            let owner = self.runner.identity().owner();
            let r = match self
                .runner
                .store()
                .take_request(&owner, self.clock.now())
                .await
            {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("cannot take requested runs: {e}");
                    return;
                }
            };
            let refuse = |why: String| async move {
                tracing::warn!(request = r.id, "refused: {why}");
                if let Err(e) = self.runner.store().refuse_request(r.id, &why).await {
                    tracing::warn!(request = r.id, "cannot record the refusal: {e}");
                }
            };
            let Some(job) = self.config.jobs.get(&r.job) else {
                refuse(format!(
                    "no job named `{}` in this daemon's jobs file ({})",
                    r.job,
                    self.config.file.display()
                ))
                .await;
                continue;
            };
            if let Err(e) = job
                .spec
                .accepts(&r.params)
                .and_then(|()| job.check_confirmed(r.confirmed, r.dry_run))
            {
                refuse(e.to_string()).await;
                continue;
            }
            let mut notes = vec![format!(
                "requested through the daemon (request #{}) by {}{}",
                r.id,
                r.requested_by,
                r.reason
                    .as_ref()
                    .map(|why| format!(": {why}"))
                    .unwrap_or_default()
            )];
            if self
                .paused
                .lock()
                .expect("pause lock")
                .contains_key(&job.name)
            {
                notes.push("the job's schedule is paused; a requested run still runs".into());
            }
            let mut req = RunRequest {
                trigger: Trigger::Manual,
                triggered_by: r.requested_by.clone(),
                scheduled_for: None,
                dry_run: r.dry_run,
                params: r.params.clone(),
                notes,
                confirmed: r.confirmed,
                ..Default::default()
            };
            match self
                .admitted(job, Trigger::Manual, &mut req, None, report)
                .await
            {
                Ok(Some(id)) => {
                    if let Err(e) = self.runner.store().request_started(r.id, id).await {
                        tracing::warn!(
                            request = r.id,
                            run = id,
                            "cannot record the request's run: {e}"
                        );
                    }
                }
                Ok(None) => refuse("the history store refused the run".into()).await,
                Err(e) => refuse(format!("cannot record the run: {e}")).await,
            }
        }
    }

    fn spawn(&self, job: JobConfig, req: RunRequest, id: RunId) {
        let stop = Stop::new();
        self.active
            .lock()
            .expect("active lock")
            .insert(id, (job.name.clone(), stop.clone()));
        let runner = self.runner.clone();
        let active = self.active.clone();
        self.tasks.spawn(async move {
            let ended = runner.execute(&job, &req, id, &stop).await;
            tracing::info!(job = %job.name, run = ended.id, attempt = ended.attempt, "run ended: {}", ended.status);
            active.lock().expect("active lock").remove(&id);
        });
    }

    /// Waits up to `grace` for running jobs, then cancels the rest and waits
    /// for them to record `cancelled`.
    pub async fn shutdown(&self, grace: Duration) {
        self.tasks.close();
        let running = self.active_runs();
        if running > 0 {
            tracing::info!(
                "waiting up to {} for {running} running job(s)",
                humantime::format_duration(grace)
            );
        }
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            let reason = format!(
                "runbookd was stopped (SIGTERM) and the shutdown grace of {} ran out",
                humantime::format_duration(grace)
            );
            for (_, (job, stop)) in self.active.lock().expect("active lock").iter() {
                tracing::warn!(job = %job, "cancelling: {reason}");
                stop.cancel(reason.clone());
            }
            self.tasks.wait().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn describe(d: &Due) -> String {
        match d {
            Due::Nothing => "nothing".into(),
            Due::OnTime(f) => format!(
                "on-time {}",
                f.iter()
                    .map(|f| f.at.format("%H:%M:%S").to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Due::Backlog {
                run, missed, more, ..
            } => format!(
                "backlog run={} missed={missed}{}",
                run.map(|(f, t)| format!("{}/{t}", f.at.format("%H:%M:%S")))
                    .unwrap_or_else(|| "none".into()),
                if *more { "+" } else { "" }
            ),
        }
    }

    #[test]
    fn due_table() {
        let h = Some(Duration::from_secs(3600));
        // (expr, cursor, now, catch_up, expected)
        let cases: &[(&str, &str, &str, Option<Duration>, &str)] = &[
            (
                "*/5 * * * *",
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:04:59Z",
                None,
                "nothing",
            ),
            (
                "*/5 * * * *",
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:05:00Z",
                None,
                "on-time 10:05:00",
            ),
            (
                "*/5 * * * *",
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:05:20Z",
                None,
                "on-time 10:05:00",
            ),
            // Two per-second fires in one slow tick both run on time.
            (
                "* * * * * *",
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:00:02Z",
                None,
                "on-time 10:00:01,10:00:02",
            ),
            // Down from 10:00 to 12:00: the newest fire inside the hour runs
            // once as catch-up; the rest are missed.
            (
                "*/5 * * * *",
                "2026-01-01T10:00:00Z",
                "2026-01-01T12:02:00Z",
                h,
                "backlog run=12:00:00/catchup missed=23",
            ),
            // Without a window nothing runs.
            (
                "*/5 * * * *",
                "2026-01-01T10:00:00Z",
                "2026-01-01T12:02:00Z",
                None,
                "backlog run=none missed=24",
            ),
            // A daily job down for 3 h across its fire, window 6 h: runs once.
            (
                "0 7 * * *",
                "2026-01-01T05:00:00Z",
                "2026-01-01T08:00:00Z",
                Some(Duration::from_secs(6 * 3600)),
                "backlog run=07:00:00/catchup missed=0",
            ),
            // Same, but the fire is older than the window.
            (
                "0 7 * * *",
                "2026-01-01T05:00:00Z",
                "2026-01-01T14:00:00Z",
                Some(Duration::from_secs(6 * 3600)),
                "backlog run=none missed=1",
            ),
            // Backlog whose newest fire is only late: it runs on schedule and
            // the older ones are missed, still one run in all.
            (
                "* * * * *",
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:05:10Z",
                h,
                "backlog run=10:05:00/schedule missed=4",
            ),
        ];
        for (expr, cursor, now, catch_up, want) in cases {
            let e: CronExpr = expr.parse().unwrap();
            let got = due(
                &e,
                Tz::UTC,
                utc(cursor),
                utc(now),
                *catch_up,
                LATE_TOLERANCE,
            );
            assert_eq!(describe(&got), *want, "{expr} cursor {cursor} now {now}");
        }
    }

    #[test]
    fn a_long_outage_of_a_per_second_job_is_bounded() {
        let e: CronExpr = "* * * * * *".parse().unwrap();
        let started = std::time::Instant::now();
        let got = due(
            &e,
            Tz::UTC,
            utc("2025-01-01T00:00:00Z"),
            utc("2026-01-01T00:00:00Z"),
            Some(Duration::from_secs(3600)),
            LATE_TOLERANCE,
        );
        assert!(
            matches!(
                got,
                Due::Backlog {
                    run: Some((_, Trigger::Schedule)),
                    more: true,
                    ..
                }
            ),
            "{got:?}"
        );
        // Bounded work, not a year of seconds; generous for slow machines.
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
