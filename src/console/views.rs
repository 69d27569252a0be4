//! Each page's handler: what it reads (bounded), and the view it hands to
//! `pages.rs` or writes as JSON. The JSON of a run is `runbookd show
//! --json`'s object with more keys beside; a job's holds `runbookd jobs
//! --json`'s row; requests and mail are the store's rows as `runbookd
//! requests --json` prints them.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::rows::{JobRow, RunMark, job_row, steps_table};
use super::{
    Console, Format, KeptReport, PageError, Params, REPORT_CSP, REPORT_KEPT, answer, pages, png,
};
use crate::config::JobConfig;
use crate::jobs::report::{DEFAULT_PERIOD, ReportSpec};
use crate::model::{
    MailStatus, Pause, QueuedMail, Request, RequestFilter, RequestStatus, Run, RunPage, RunStatus,
    Trigger, fmt_age,
};
use crate::report::{self, Settings, Tolerance};

/// Marks per job on the jobs page.
pub const RECENT: u32 = 20;
/// Runs per page of a job, when `limit` is not given, and at most.
pub const PAGE: u32 = 50;
pub const PAGE_MAX: u32 = 200;
/// Days a job page's charts cover.
pub const CHART_DAYS: i64 = 14;
/// Rows of the queue page's lists.
pub const QUEUE_ROWS: u32 = 100;
/// Retries and chained runs linked from a run.
const LINKED: u32 = 20;
/// How long after a run's end its chained runs may start.
const CHAIN_WINDOW: Duration = Duration::minutes(10);
/// How far back `/report?since=` may reach.
const SINCE_MAX_DAYS: i64 = 400;

type Shared = State<Arc<Console>>;

/// Whether the store answers, as the daemon sees it.
#[derive(Serialize)]
pub struct StoreView {
    pub up: bool,
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct MailView {
    pub pending: u64,
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

/// A job as the console shows it: its `jobs --json` row and more.
#[derive(Serialize)]
pub struct JobView {
    #[serde(flatten)]
    pub row: JobRow,
    pub description: Option<String>,
    /// The schedule as a person says it.
    pub schedule_words: Option<String>,
    /// The next fire in UTC (`next_fire` is local).
    pub next_fire_utc: Option<DateTime<Utc>>,
    pub paused: Option<Pause>,
    /// Newest first.
    pub recent: Vec<RunMark>,
    pub last_success: Option<RunMark>,
    /// Since the last success, e.g. `6h 12m`.
    pub since_last_success: Option<String>,
    /// Commands to copy: the console changes nothing itself.
    pub commands: Vec<String>,
}

#[derive(Serialize)]
pub struct CheckTable {
    pub job: String,
    pub run: Run,
}

#[derive(Serialize)]
pub struct JobsView {
    pub now: DateTime<Utc>,
    pub store: StoreView,
    pub mail: Option<MailView>,
    pub jobs: Vec<JobView>,
    /// The latest real run of the checklist job (the report's, else the
    /// first checklist), with its check results.
    pub checklist: Option<CheckTable>,
}

/// The schedule in words, in the job's zone: `at 09:15 every day
/// (Asia/Kolkata)`.
fn words(job: &JobConfig) -> Option<String> {
    let expr = job.schedule.as_ref()?;
    Some(format!("{} ({})", expr.describe(), job.timezone.name()))
}

/// What an operator would do next, to copy: a paused job is resumed, any
/// other may be paused.
fn commands(job: &str, paused: bool) -> Vec<String> {
    vec![
        format!("runbookd trigger {job}"),
        format!("runbookd run {job} --dry-run"),
        if paused {
            format!("runbookd resume {job}")
        } else {
            format!("runbookd pause {job} --reason '…'")
        },
        format!("runbookd history --job {job}"),
    ]
}

impl Console {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn store_view(&self) -> StoreView {
        let up = self.health.is_up();
        StoreView {
            up,
            error: (!up).then(|| {
                self.redactor.redact(
                    &self
                        .health
                        .last_error()
                        .unwrap_or_else(|| "unknown error".into()),
                )
            }),
        }
    }

    /// Fails at once while the store is down: a page says so rather than
    /// waiting out the store's timeout.
    fn store_up(&self) -> Result<(), PageError> {
        match self.store_view().error {
            Some(e) => Err(PageError::StoreDown(e)),
            None => Ok(()),
        }
    }

    /// A run as it may be shown: its log and error through the redactor
    /// again (kept scrubbed, but an older runbookd or a secret learned
    /// since may have left one).
    fn shown(&self, mut run: Run) -> Run {
        run.log = run.log.map(|l| self.redactor.redact(&l));
        run.error = run.error.map(|e| self.redactor.redact(&e));
        for c in &mut run.checks {
            c.reason = self.redactor.redact(&c.reason);
        }
        for s in &mut run.steps {
            s.detail = self.redactor.redact(&s.detail);
            s.payload = s.payload.as_ref().map(|p| self.redactor.redact_json(p));
        }
        run
    }

    fn job_config(&self, name: &str) -> Result<&JobConfig, PageError> {
        self.config
            .job(name)
            .map_err(|e| PageError::NotFound(e.to_string()))
    }

    async fn pending(&self, now: DateTime<Utc>) -> Result<Vec<Request>, PageError> {
        let mut list = self
            .store
            .list_requests(&RequestFilter {
                status: Some(RequestStatus::Pending),
                job: None,
                limit: QUEUE_ROWS,
            })
            .await?;
        list.retain(|r| r.expires_at.is_none_or(|at| at > now));
        list.reverse();
        Ok(list)
    }

    async fn job_view(
        &self,
        job: &JobConfig,
        now: DateTime<Utc>,
        paused: &[Pause],
        pending: &[Request],
    ) -> Result<JobView, PageError> {
        let up = self.health.is_up();
        let (recent, last, last_dry, success) = if up {
            let page = |status| RunPage {
                job: job.name.clone(),
                status,
                limit: RECENT,
                ..Default::default()
            };
            let mut ok = page(Some(RunStatus::Succeeded));
            ok.limit = 5;
            let recent_page = page(None);
            let (recent, successes, last, last_dry) = futures::try_join!(
                self.store.page_runs(&recent_page),
                self.store.page_runs(&ok),
                self.store.last_run(&job.name, Some(false)),
                self.store.last_run(&job.name, Some(true)),
            )?;
            // A dry run's success is not the job's.
            let success = successes.into_iter().find(|r| !r.dry_run);
            (recent, last, last_dry, success)
        } else {
            (Vec::new(), None, None, None)
        };
        let row = job_row(job, now, last.as_ref(), last_dry.as_ref(), paused, pending);
        Ok(JobView {
            row,
            description: job.description.as_deref().map(|d| self.redactor.redact(d)),
            schedule_words: words(job),
            next_fire_utc: job
                .schedule
                .as_ref()
                .filter(|_| !job.suspend)
                .and_then(|e| e.next_fire(job.timezone, now))
                .map(|f| f.at),
            paused: paused.iter().find(|p| p.job == job.name).cloned(),
            commands: commands(&job.name, paused.iter().any(|p| p.job == job.name)),
            recent: recent.iter().map(RunMark::of).collect(),
            since_last_success: success
                .as_ref()
                .and_then(|r| (now - r.finished_at.unwrap_or(r.started_at)).to_std().ok())
                .map(fmt_age),
            last_success: success.as_ref().map(RunMark::of),
        })
    }

    async fn mail_view(&self) -> Result<MailView, PageError> {
        let b = self.store.mail_backlog().await?;
        Ok(MailView {
            pending: b.pending,
            oldest_pending_at: b.oldest,
        })
    }

    /// The report's settings: the first `report` job's, else defaults.
    fn report_settings(&self) -> Settings {
        match self
            .config
            .jobs
            .values()
            .find_map(|j| j.spec_as::<ReportSpec>().map(|s| (j, s)))
        {
            Some((j, spec)) => spec.settings(j.timezone),
            None => Settings {
                title: "runbookd".into(),
                period: DEFAULT_PERIOD,
                checklist: None,
                charts: Vec::new(),
                tolerance: Tolerance::default(),
                timezone: self.config.defaults.timezone,
            },
        }
    }

    async fn checklist(&self) -> Result<Option<CheckTable>, PageError> {
        let name = self.report_settings().checklist.or_else(|| {
            self.config
                .jobs
                .values()
                .find(|j| j.kind == "checklist")
                .map(|j| j.name.clone())
        });
        let Some(name) = name else { return Ok(None) };
        let Some(last) = self.store.last_run(&name, Some(false)).await? else {
            return Ok(None);
        };
        Ok(self.store.get_run(last.id).await?.map(|mut r| {
            // The table needs the results, not the log.
            r.log = None;
            CheckTable {
                job: name,
                run: self.shown(r),
            }
        }))
    }
}

pub async fn jobs(State(c): Shared, RawQuery(q): RawQuery) -> Response {
    let p = match Params::parse(q.as_deref(), &[]) {
        Ok(p) => p,
        Err(e) => return e.answer(q.as_deref()),
    };
    let now = c.now();
    let store = c.store_view();
    let mut view = JobsView {
        now,
        store,
        mail: None,
        jobs: Vec::new(),
        checklist: None,
    };
    let read = async {
        let (paused, pending) = if c.health.is_up() {
            (c.store.paused_jobs().await?, c.pending(now).await?)
        } else {
            (Vec::new(), Vec::new())
        };
        // One job at a time, its four reads side by side: the page never
        // holds more than half the daemon's pool, whose other half stays
        // for the scheduler's claims.
        let mut jobs = Vec::new();
        for job in c.config.jobs.values() {
            jobs.push(c.job_view(job, now, &paused, &pending).await?);
        }
        let (mail, checklist) = if c.health.is_up() {
            (Some(c.mail_view().await?), c.checklist().await?)
        } else {
            (None, None)
        };
        Ok::<_, PageError>((jobs, mail, checklist))
    };
    match read.await {
        Ok((jobs, mail, checklist)) => {
            view.jobs = jobs;
            view.mail = mail;
            view.checklist = checklist;
        }
        // The store failed mid-read: the jobs as the file has them, and
        // the banner saying why there is no history.
        Err(e) => {
            view.store = StoreView {
                up: false,
                error: Some(c.redactor.redact(&e.to_string())),
            };
            view.jobs = c
                .config
                .jobs
                .values()
                .map(|j| JobView {
                    row: job_row(j, now, None, None, &[], &[]),
                    description: j.description.as_deref().map(|d| c.redactor.redact(d)),
                    schedule_words: words(j),
                    next_fire_utc: j
                        .schedule
                        .as_ref()
                        .and_then(|e| e.next_fire(j.timezone, now))
                        .map(|f| f.at),
                    paused: None,
                    recent: Vec::new(),
                    last_success: None,
                    since_last_success: None,
                    commands: commands(&j.name, false),
                })
                .collect();
        }
    }
    answer(p.format, &view, |v| pages::jobs(v, &c.config))
}

/// The runs filter of a job page, as given.
#[derive(Serialize, Default, Clone)]
pub struct RunsFilter {
    pub status: Option<RunStatus>,
    pub trigger: Option<Trigger>,
    pub before: Option<i64>,
    pub limit: u32,
}

impl RunsFilter {
    fn parse(p: &Params) -> Result<Self, PageError> {
        let word = |key: &str| -> Result<_, PageError> {
            p.get(key).map(|v| v.to_string()).map(Ok).transpose()
        };
        let status = word("status")?
            .map(|s| s.parse::<RunStatus>())
            .transpose()
            .map_err(|e| PageError::BadRequest(format!("status: {e}")))?;
        let trigger = word("trigger")?
            .map(|s| s.parse::<Trigger>())
            .transpose()
            .map_err(|e| PageError::BadRequest(format!("trigger: {e}")))?;
        let before = p
            .get("before")
            .map(|b| {
                b.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    PageError::BadRequest(format!(
                        "before `{b}`: a run id (a whole number above 0)"
                    ))
                })
            })
            .transpose()?;
        let limit = p
            .get("limit")
            .map(|l| {
                l.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=PAGE_MAX).contains(n))
                    .ok_or_else(|| {
                        PageError::BadRequest(format!("limit `{l}`: from 1 to {PAGE_MAX}"))
                    })
            })
            .transpose()?
            .unwrap_or(PAGE);
        Ok(RunsFilter {
            status,
            trigger,
            before,
            limit,
        })
    }

    /// The query string of this filter, `before` replaced.
    pub fn query(&self, before: Option<i64>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = self.status {
            q.append_pair("status", s.as_str());
        }
        if let Some(t) = self.trigger {
            q.append_pair("trigger", t.as_str());
        }
        if let Some(b) = before {
            q.append_pair("before", &b.to_string());
        }
        if self.limit != PAGE {
            q.append_pair("limit", &self.limit.to_string());
        }
        q.finish()
    }
}

#[derive(Serialize)]
pub struct Chart {
    pub title: String,
    pub url: String,
    /// What the chart shows in numbers (its caption).
    pub caption: String,
}

#[derive(Serialize)]
pub struct JobPageView {
    pub job: JobView,
    pub filter: RunsFilter,
    /// Newest first, without logs.
    pub runs: Vec<Run>,
    /// `before` for the next page, when there may be one.
    pub next_before: Option<i64>,
    pub charts: Vec<Chart>,
    /// The job as written in the file, secrets masked.
    pub config_yaml: String,
}

fn path_part(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub async fn job(State(c): Shared, Path(name): Path<String>, RawQuery(q): RawQuery) -> Response {
    let r = async {
        let p = Params::parse(q.as_deref(), &["status", "trigger", "before", "limit"])?;
        let filter = RunsFilter::parse(&p)?;
        let job = c.job_config(&name)?;
        c.store_up()?;
        let now = c.now();
        let paused = c.store.paused_jobs().await?;
        let pending = c.pending(now).await?;
        let view = c.job_view(job, now, &paused, &pending).await?;
        let runs = c
            .store
            .page_runs(&RunPage {
                job: name.clone(),
                status: filter.status,
                trigger: filter.trigger,
                before: filter.before,
                limit: filter.limit,
            })
            .await?;
        let next_before = (runs.len() as u32 == filter.limit)
            .then(|| runs.last().map(|r| r.id))
            .flatten();
        let runs: Vec<Run> = runs.into_iter().map(|r| c.shown(r)).collect();
        let mut charts = vec![Chart {
            title: "Duration (seconds)".into(),
            url: format!("/jobs/{}/charts/duration", path_part(&name)),
            caption: format!("how long each run took, last {CHART_DAYS} days"),
        }];
        let points = c
            .store
            .check_history(&name, now - Duration::days(CHART_DAYS))
            .await?;
        let mut checks: Vec<&str> = Vec::new();
        for pt in &points {
            if pt.result.value.as_ref().and_then(|v| v.number()).is_some()
                && !checks.contains(&pt.result.check.as_str())
            {
                checks.push(&pt.result.check);
            }
        }
        for check in checks {
            let values: Vec<f64> = points
                .iter()
                .filter(|p| p.result.check == check)
                .filter_map(|p| p.result.value.as_ref()?.number())
                .collect();
            let (lo, hi) = values
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(*v), b.max(*v))
                });
            charts.push(Chart {
                title: check.to_string(),
                url: format!(
                    "/jobs/{}/charts/checks/{}",
                    path_part(&name),
                    path_part(check)
                ),
                caption: format!(
                    "{} values, from {} to {}, last {CHART_DAYS} days",
                    values.len(),
                    crate::model::fmt_number(lo),
                    crate::model::fmt_number(hi)
                ),
            });
        }
        let mut in_key = false;
        let config_yaml = job
            .source
            .lines()
            .map(|l| c.redactor.redact_line(l, &mut in_key))
            .collect::<Vec<_>>()
            .join("\n");
        Ok::<_, PageError>((
            p.format,
            JobPageView {
                job: view,
                filter,
                runs,
                next_before,
                charts,
                config_yaml,
            },
        ))
    };
    match r.await {
        Ok((format, v)) => answer(format, &v, pages::job),
        Err(e) => e.answer(q.as_deref()),
    }
}

pub async fn duration_chart(State(c): Shared, Path(name): Path<String>) -> Response {
    let r = async {
        let tz = c.job_config(&name)?.timezone;
        c.store_up()?;
        let now = c.now();
        let from = now - Duration::days(CHART_DAYS);
        let runs = c
            .store
            .page_runs(&RunPage {
                job: name.clone(),
                limit: PAGE_MAX * 5,
                ..Default::default()
            })
            .await?;
        let mut points: Vec<(DateTime<Utc>, std::time::Duration)> = runs
            .iter()
            .filter(|r| r.started_at >= from && !r.dry_run)
            .filter_map(|r| Some((r.started_at, r.duration()?.to_std().ok()?)))
            .collect();
        points.reverse();
        let window = report::chart::Window {
            from,
            to: now,
            timezone: tz,
        };
        report::chart::duration_png(&points, &window)
            .map_err(|e| PageError::Internal(e.to_string()))
    };
    match r.await {
        Ok(bytes) => png(bytes),
        Err(e) => e.into_response(),
    }
}

pub async fn check_chart(
    State(c): Shared,
    Path((name, check)): Path<(String, String)>,
) -> Response {
    let r = async {
        let tz = c.job_config(&name)?.timezone;
        c.store_up()?;
        let now = c.now();
        let from = now - Duration::days(CHART_DAYS);
        let history = c.store.check_history(&name, from).await?;
        let mine: Vec<_> = history.iter().filter(|p| p.result.check == check).collect();
        if mine.is_empty() {
            return Err(PageError::NotFound(format!(
                "job `{name}` has no check `{check}` results in the last {CHART_DAYS} days"
            )));
        }
        let points: Vec<(DateTime<Utc>, f64)> = mine
            .iter()
            .filter_map(|p| Some((p.started_at, p.result.value.as_ref()?.number()?)))
            .collect();
        let threshold = mine.iter().rev().find_map(|p| p.result.threshold.as_ref());
        let (lines, unit) = report::chart::threshold_lines(threshold);
        let window = report::chart::Window {
            from,
            to: now,
            timezone: tz,
        };
        report::chart::png(&points, &lines, unit, &window)
            .map_err(|e| PageError::Internal(e.to_string()))
    };
    match r.await {
        Ok(bytes) => png(bytes),
        Err(e) => e.into_response(),
    }
}

#[derive(Serialize)]
pub struct RunView {
    /// `runbookd show --json`'s object.
    #[serde(flatten)]
    pub run: Run,
    /// The attempts that retried this one.
    pub retries: Vec<RunMark>,
    /// The run whose failure started this one (`on_failure`).
    pub chained_by: Option<i64>,
    /// The runs this one's failure started.
    pub chained: Vec<ChainedMark>,
    /// The steps and checks as `runbookd show` prints them (a triage's
    /// diagnosis is its last step).
    pub show_text: String,
    pub commands: Vec<String>,
}

#[derive(Serialize)]
pub struct ChainedMark {
    pub job: String,
    #[serde(flatten)]
    pub mark: RunMark,
}

/// `run 12 of db-failover` → 12: the run a chained run names.
fn chained_by(run: &Run) -> Option<i64> {
    if run.trigger != Trigger::Chained {
        return None;
    }
    let rest = run.triggered_by.strip_prefix("run ")?;
    let (id, _) = rest.split_once(" of ")?;
    id.parse().ok()
}

pub async fn run(State(c): Shared, Path(id): Path<String>, RawQuery(q): RawQuery) -> Response {
    let r = async {
        let p = Params::parse(q.as_deref(), &[])?;
        let id: i64 = id
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| PageError::NotFound(format!("`{id}` is not a run id")))?;
        c.store_up()?;
        let run = c
            .store
            .get_run(id)
            .await?
            .ok_or_else(|| PageError::NotFound(format!("no run {id} in the history")))?;
        let retries = c.store.retries_of(&run, LINKED).await?;
        let until = run.finished_at.unwrap_or_else(|| c.now()) + CHAIN_WINDOW;
        let chained = c.store.chained_from(&run, until, LINKED).await?;
        let run = c.shown(run);
        let mut show_text = String::new();
        if !run.steps.is_empty() {
            show_text.push_str("steps:\n");
            show_text.push_str(&steps_table(&run.steps));
        }
        if !run.checks.is_empty() {
            show_text.push_str("checks:\n");
            show_text.push_str(&crate::checks::render_table(&run.checks));
        }
        let mut commands = vec![format!("runbookd show {id}")];
        if run.status == RunStatus::Running {
            commands.push(format!("runbookd cancel {id}"));
        } else {
            commands.push(format!("runbookd trigger {}", run.job));
        }
        Ok::<_, PageError>((
            p.format,
            RunView {
                chained_by: chained_by(&run),
                retries: retries.iter().map(RunMark::of).collect(),
                chained: chained
                    .iter()
                    .map(|r| ChainedMark {
                        job: r.job.clone(),
                        mark: RunMark::of(r),
                    })
                    .collect(),
                show_text: c.redactor.redact(&show_text),
                commands,
                run,
            },
        ))
    };
    match r.await {
        Ok((format, v)) => answer(format, &v, pages::run),
        Err(e) => e.answer(q.as_deref()),
    }
}

#[derive(Serialize)]
pub struct QueueView {
    pub now: DateTime<Utc>,
    /// Waiting for a daemon, oldest first.
    pub pending_requests: Vec<Request>,
    /// The newest requests, whatever became of them.
    pub recent_requests: Vec<Request>,
    /// Mail kept until it can be sent, oldest first.
    pub pending_mail: Vec<QueuedMail>,
}

pub async fn queue(State(c): Shared, RawQuery(q): RawQuery) -> Response {
    let r = async {
        let p = Params::parse(q.as_deref(), &[])?;
        c.store_up()?;
        let now = c.now();
        let pending_requests = c.pending(now).await?;
        let recent_requests = c
            .store
            .list_requests(&RequestFilter {
                status: None,
                job: None,
                limit: QUEUE_ROWS,
            })
            .await?;
        // Every pending message, due or not: `due_mail` by an instant no
        // retry reaches.
        let mut pending_mail = c
            .store
            .due_mail(now + Duration::days(3650), QUEUE_ROWS)
            .await?;
        pending_mail.retain(|m| m.status == MailStatus::Pending);
        for m in &mut pending_mail {
            m.last_error = m.last_error.as_ref().map(|e| c.redactor.redact(e));
        }
        Ok::<_, PageError>((
            p.format,
            QueueView {
                now,
                pending_requests,
                recent_requests,
                pending_mail,
            },
        ))
    };
    match r.await {
        Ok((format, v)) => answer(format, &v, pages::queue),
        Err(e) => e.answer(q.as_deref()),
    }
}

/// `since`: a duration back from now (`24h`, `7d`) or an RFC 3339 instant,
/// within [`SINCE_MAX_DAYS`].
fn since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, PageError> {
    let at = match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => {
            let d = humantime::parse_duration(s).map_err(|e| {
                PageError::BadRequest(format!(
                    "since `{s}` is neither a duration (24h, 7d) nor an RFC 3339 instant (2026-03-08T00:00:00Z): {e}"
                ))
            })?;
            chrono::Duration::from_std(d)
                .ok()
                .filter(|d| *d <= Duration::days(SINCE_MAX_DAYS))
                .map(|d| now - d)
                .ok_or_else(|| {
                    PageError::BadRequest(format!(
                        "since `{s}`: at most {SINCE_MAX_DAYS} days back"
                    ))
                })?
        }
    };
    if at > now {
        return Err(PageError::BadRequest(format!(
            "since `{s}` is in the future"
        )));
    }
    if now - at > Duration::days(SINCE_MAX_DAYS) {
        return Err(PageError::BadRequest(format!(
            "since `{s}`: at most {SINCE_MAX_DAYS} days back"
        )));
    }
    Ok(at)
}

pub async fn report(State(c): Shared, RawQuery(q): RawQuery) -> Response {
    let r = async {
        let p = Params::parse(q.as_deref(), &["since"])?;
        let now = c.now();
        let mut settings = c.report_settings();
        if let Some(s) = p.get("since") {
            settings.period = (now - since(s, now)?)
                .to_std()
                .map_err(|_| PageError::BadRequest(format!("since `{s}` is in the future")))?;
        }
        c.store_up()?;
        if let Some(kept) = c.kept_report(p.format, settings.period, now) {
            return Ok(kept);
        }
        let report = report::gather(c.store.as_ref(), &c.config, &settings, now)
            .await
            .map_err(|e| PageError::Internal(c.redactor.redact(&e.to_string())))?;
        let body = match p.format {
            Format::Json => {
                let v = serde_json::to_value(&report).unwrap_or_default();
                serde_json::to_string_pretty(&c.redactor.redact_json(&v)).unwrap_or_default() + "\n"
            }
            Format::Html => {
                let rendered = report::render::render(&report, &c.config.links);
                c.redactor.redact(&rendered.preview_html())
            }
        };
        let kept = KeptReport {
            format: p.format,
            period: settings.period,
            at: now,
            body,
        };
        *c.report_kept.lock().expect("report lock") = Some(kept.clone());
        Ok::<_, PageError>(kept)
    };
    match r.await {
        Ok(kept) => {
            let age = (c.now() - kept.at).num_seconds().max(0).to_string();
            let mut resp = match kept.format {
                Format::Json => {
                    ([(header::CONTENT_TYPE, "application/json")], kept.body).into_response()
                }
                Format::Html => {
                    let mut resp = (
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        kept.body,
                    )
                        .into_response();
                    resp.headers_mut().insert(
                        header::CONTENT_SECURITY_POLICY,
                        HeaderValue::from_static(REPORT_CSP),
                    );
                    resp
                }
            };
            if let Ok(v) = HeaderValue::from_str(&age) {
                resp.headers_mut().insert(header::AGE, v);
            }
            resp
        }
        Err(e) => e.answer(q.as_deref()),
    }
}

impl Console {
    /// The report built for this format and period less than
    /// [`REPORT_KEPT`] ago, if there is one.
    fn kept_report(
        &self,
        format: Format,
        period: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Option<KeptReport> {
        let kept = self.report_kept.lock().expect("report lock");
        kept.as_ref()
            .filter(|k| k.format == format && k.period == period)
            .filter(|k| (now - k.at).to_std().is_ok_and(|age| age < REPORT_KEPT))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn since_is_bounded_and_explained() {
        let now = t("2026-12-05T12:00:00Z");
        assert_eq!(since("24h", now).unwrap(), t("2026-12-04T12:00:00Z"));
        assert_eq!(
            since("2026-12-01T00:00:00Z", now).unwrap(),
            t("2026-12-01T00:00:00Z")
        );
        for (s, want) in [
            ("soon", "neither a duration"),
            ("9999d", "at most 400 days"),
            ("2027-01-01T00:00:00Z", "in the future"),
            ("2000-01-01T00:00:00Z", "at most 400 days"),
        ] {
            let e = since(s, now).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn a_chained_run_names_its_cause() {
        let mut r = Run {
            id: 43,
            job: "triage".into(),
            trigger: Trigger::Manual,
            triggered_by: String::new(),
            scheduled_for: None,
            started_at: t("2026-12-05T12:00:00Z"),
            finished_at: None,
            status: RunStatus::Running,
            attempt: 1,
            error: None,
            dry_run: false,
            owner: String::new(),
            heartbeat_at: t("2026-12-05T12:00:00Z"),
            retry_of: None,
            log: None,
            log_truncated: false,
            checks: Vec::new(),
            steps: Vec::new(),
        };
        r.trigger = Trigger::Chained;
        r.triggered_by = crate::model::chained_by(42, "db");
        assert_eq!(chained_by(&r), Some(42));
        r.trigger = Trigger::Manual;
        assert_eq!(chained_by(&r), None);
    }
}
