//! The morning report: what the on-call engineer reads at 8 a.m. instead of
//! doing the runbook's "Morning Checklist" by hand. Everything comes from
//! the history store (nothing the runs measured is measured again):
//! [`gather`] reads it into a [`Report`], [`render`] turns that into the
//! plain text ([`text`]) and the inline-styled HTML ([`html`], maud
//! templates) of one message, with a chart per key metric as an inline
//! PNG ([`chart`]).

pub mod chart;
pub mod html;
pub mod ledger;
pub mod render;
pub mod text;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::config::{Config, UnknownJob};
use crate::model::{
    CheckPoint, CheckStatus, Measured, Run, RunFilter, RunId, RunStatus, Step, Threshold,
};
use crate::store::{HistoryStore, StoreError};

pub use ledger::{Finding, FindingKind, Group, LedgerRow, Tolerance};

/// Rows read for the period at most; a period with more runs says so.
pub const MAX_RUNS: u32 = 20_000;
/// Fires looked at per job at most (a job every second would have 86,400
/// a day: its ledger says it was cut).
pub const MAX_FIRES: usize = 5_000;
/// How far back the charts go.
pub const CHART_DAYS: i64 = 7;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("morning report: {0}")]
    Store(#[from] StoreError),
    #[error("morning report: {0}")]
    UnknownJob(#[from] UnknownJob),
    #[error("morning report: `{name}` is a {kind} job, not a checklist")]
    NotAChecklist { name: String, kind: &'static str },
}

/// What a report covers and how, from the `report` job (or the CLI).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// "Flexoraa": in the subject and the headline.
    pub title: String,
    /// The period ends at the report's time and goes back this far.
    pub period: Duration,
    /// The checklist job whose latest results make the table.
    pub checklist: Option<String>,
    /// Key metrics charted over the last [`CHART_DAYS`] days.
    pub charts: Vec<ChartSpec>,
    pub tolerance: Tolerance,
    /// The timezone times are written in.
    pub timezone: Tz,
}

/// One chart: a check of a checklist job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartSpec {
    pub job: String,
    pub check: String,
    pub title: String,
}

/// A check's latest result, with yesterday's beside it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckRow {
    pub check: String,
    pub status: CheckStatus,
    pub value: Option<Measured>,
    pub threshold: Option<Threshold>,
    pub reason: String,
    /// The same check in the checklist's run about a day earlier.
    pub previous: Option<Measured>,
    pub previous_status: Option<CheckStatus>,
}

impl CheckRow {
    /// "+0.004", "was 2/3", "new": the change since yesterday's run.
    pub fn change(&self) -> String {
        match (&self.value, &self.previous) {
            (Some(Measured::Number(a)), Some(Measured::Number(b))) => {
                let d = a - b;
                if d == 0.0 {
                    "same".into()
                } else {
                    let sign = if d > 0.0 { "+" } else { "-" };
                    let pct = if *b != 0.0 {
                        format!(" ({sign}{:.0}%)", (d / b).abs() * 100.0)
                    } else {
                        String::new()
                    };
                    format!("{sign}{}{pct}", crate::model::fmt_number(d.abs()))
                }
            }
            (Some(a), Some(b)) if a == b => "same".into(),
            (_, Some(b)) => format!("was {b}"),
            (_, None) => "no run a day ago".into(),
        }
    }
}

/// The checklist part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checklist {
    pub job: String,
    pub run: RunId,
    pub started_at: DateTime<Utc>,
    pub status: RunStatus,
    pub rows: Vec<CheckRow>,
    /// The run the changes are against.
    pub previous_run: Option<RunId>,
}

/// A key metric over the chart period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub spec: ChartSpec,
    pub points: Vec<(DateTime<Utc>, f64)>,
    /// The newest threshold seen, for the lines and the caption.
    pub threshold: Option<Threshold>,
}

impl Series {
    /// min, median, max of the values.
    pub fn summary(&self) -> Option<(f64, f64, f64)> {
        let mut v: Vec<f64> = self
            .points
            .iter()
            .map(|p| p.1)
            .filter(|v| v.is_finite())
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some((v[0], v[v.len() / 2], v[v.len() - 1]))
    }
}

/// A run not on a schedule (by hand), or of a kind that changes
/// production, with its steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    pub run: Run,
    pub kind: String,
    pub steps: Vec<Step>,
}

impl Activity {
    /// Snapshot identifiers the steps made.
    pub fn snapshots(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter_map(|s| {
                s.payload
                    .as_ref()?
                    .get("snapshot")?
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    }
}

/// One thing that needs a person, with where to look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attention {
    pub what: String,
    pub run: Option<RunId>,
    pub grafana: Option<String>,
    pub runbook: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub title: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    #[serde(skip)]
    pub timezone: Tz,
    pub attention: Vec<Attention>,
    pub checklist: Option<Checklist>,
    pub series: Vec<Series>,
    pub ledger: Vec<LedgerRow>,
    pub findings: Vec<Finding>,
    pub activity: Vec<Activity>,
    /// Said when the period held more runs than were read.
    pub truncated: bool,
}

impl Report {
    /// "all clear" or "N need attention", for the subject and headline.
    pub fn verdict(&self) -> String {
        match self.attention.len() {
            0 => "all clear".into(),
            n => format!("{n} need{} attention", if n == 1 { "s" } else { "" }),
        }
    }

    pub fn subject(&self) -> String {
        format!(
            "[runbookd] {} morning report: {}",
            self.title,
            self.verdict()
        )
    }
}

fn is_change_kind(kind: &str) -> bool {
    matches!(
        kind,
        "rollout" | "rotate_secret" | "snapshot_migrate" | "verify_backups"
    )
}

/// Reads the report for the period ending `now` from the store.
pub async fn gather(
    store: &dyn HistoryStore,
    config: &Config,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Report, ReportError> {
    let since = now - chrono::Duration::from_std(settings.period).unwrap_or_default();
    // The ledger judges the fires whose lateness tolerance has passed: the
    // period shifted back by `late_after`, not cut short by it, so that
    // one report's window starts where the previous one's ended and a fire
    // in the minutes before a report is judged by the next one.
    let late = chrono::Duration::from_std(settings.tolerance.late_after).unwrap_or_default();
    let (fires_since, fires_until) = (since - late, now - late);
    // Runs of the period, and runs for fires in it that started later.
    let runs = store
        .list_runs(&RunFilter {
            job: None,
            since: Some(fires_since),
            limit: MAX_RUNS,
        })
        .await?;
    let truncated = runs.len() as u32 >= MAX_RUNS;
    let mut by_job: BTreeMap<&str, Vec<Run>> = BTreeMap::new();
    for r in &runs {
        by_job.entry(r.job.as_str()).or_default().push(r.clone());
    }
    let missed = store.missed(fires_since).await?;
    let first_seen = store.first_seen().await?;

    let mut ledger_rows = Vec::new();
    let mut findings = Vec::new();
    for job in config.jobs.values() {
        let Some(schedule) = &job.schedule else {
            continue;
        };
        let mut row = LedgerRow {
            job: job.name.clone(),
            schedule: schedule.source().to_string(),
            suspended: job.suspend,
            first_seen: first_seen.get(&job.name).copied(),
            ..Default::default()
        };
        if job.suspend {
            ledger_rows.push(row);
            continue;
        }
        let recent = store
            .list_runs(&RunFilter {
                job: Some(job.name.clone()),
                since: None,
                limit: 50,
            })
            .await?;
        row.median = ledger::median(&recent);
        let fires: Vec<DateTime<Utc>> = schedule
            .fires_between(job.timezone, fires_since, fires_until, MAX_FIRES)
            .into_iter()
            .map(|f| f.at)
            .collect();
        let empty = Vec::new();
        let runs = by_job.get(job.name.as_str()).unwrap_or(&empty);
        let (row, found) = ledger::ledger(row, &fires, runs, &missed, settings.tolerance);
        ledger_rows.push(row);
        findings.extend(found);
    }
    findings.sort_by_key(|a| (a.kind, a.fire));

    let mut activity = Vec::new();
    for r in runs.iter().rev().filter(|r| r.started_at >= since) {
        let Some(job) = config.jobs.get(&r.job) else {
            continue;
        };
        let manual = r.trigger == crate::model::Trigger::Manual;
        // The report's own runs are the report.
        if (manual && job.kind() != "report") || is_change_kind(job.kind()) {
            let steps = if is_change_kind(job.kind()) {
                store.steps(r.id).await?
            } else {
                Vec::new()
            };
            activity.push(Activity {
                run: r.clone(),
                kind: job.kind().to_string(),
                steps,
            });
        }
    }

    let checklist = match &settings.checklist {
        Some(name) => checklist(store, config, name, now).await?,
        None => None,
    };

    let chart_since = now - chrono::Duration::days(CHART_DAYS);
    let mut series = Vec::new();
    let mut history: BTreeMap<String, Vec<CheckPoint>> = BTreeMap::new();
    for spec in &settings.charts {
        if !history.contains_key(&spec.job) {
            let points = store.check_history(&spec.job, chart_since).await?;
            history.insert(spec.job.clone(), points);
        }
        let points = &history[&spec.job];
        let mine: Vec<&CheckPoint> = points
            .iter()
            .filter(|p| p.result.check == spec.check)
            .collect();
        series.push(Series {
            spec: spec.clone(),
            points: mine
                .iter()
                .filter_map(|p| Some((p.started_at, p.result.value.as_ref()?.number()?)))
                .collect(),
            threshold: mine.iter().rev().find_map(|p| p.result.threshold.clone()),
        });
    }

    let attention = attention(
        config,
        settings.timezone,
        checklist.as_ref(),
        &findings,
        &activity,
    );
    Ok(Report {
        title: settings.title.clone(),
        since,
        until: now,
        timezone: settings.timezone,
        attention,
        checklist,
        series,
        ledger: ledger_rows,
        findings,
        activity,
        truncated,
    })
}

/// The latest finished run of a checklist job, and the one about a day
/// before it.
async fn checklist(
    store: &dyn HistoryStore,
    config: &Config,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<Checklist>, ReportError> {
    let job = config.job(name)?;
    if job.kind() != "checklist" {
        return Err(ReportError::NotAChecklist {
            name: name.to_string(),
            kind: job.kind(),
        });
    }
    // Two days back finds yesterday's run even if today's is late.
    let points = store
        .check_history(name, now - chrono::Duration::hours(50))
        .await?;
    let Some(latest) = points.last().map(|p| (p.run_id, p.started_at)) else {
        return Ok(None);
    };
    let run = store.get_run(latest.0).await?;
    let status = run.map(|r| r.status).unwrap_or(RunStatus::Succeeded);
    // Yesterday's: the newest run at least 20 hours older.
    let previous = points
        .iter()
        .rev()
        .find(|p| latest.1 - p.started_at >= chrono::Duration::hours(20))
        .map(|p| p.run_id);
    let rows = points
        .iter()
        .filter(|p| p.run_id == latest.0)
        .map(|p| {
            let before = previous.and_then(|prev| {
                points
                    .iter()
                    .find(|q| q.run_id == prev && q.result.check == p.result.check)
            });
            CheckRow {
                check: p.result.check.clone(),
                status: p.result.status,
                value: p.result.value.clone(),
                threshold: p.result.threshold.clone(),
                reason: p.result.reason.clone(),
                previous: before.and_then(|b| b.result.value.clone()),
                previous_status: before.map(|b| b.result.status),
            }
        })
        .collect();
    Ok(Some(Checklist {
        job: name.to_string(),
        run: latest.0,
        started_at: latest.1,
        status,
        rows,
        previous_run: previous,
    }))
}

fn attention(
    config: &Config,
    tz: Tz,
    checklist: Option<&Checklist>,
    findings: &[Finding],
    activity: &[Activity],
) -> Vec<Attention> {
    let links = &config.links;
    let mut out = Vec::new();
    if let Some(c) = checklist {
        for r in c.rows.iter().filter(|r| r.status != CheckStatus::Pass) {
            let value = r
                .value
                .as_ref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default();
            let threshold = r
                .threshold
                .as_ref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            out.push(Attention {
                what: format!(
                    "{} {}:{value}{threshold}: {}",
                    r.check,
                    r.status.as_str().to_uppercase(),
                    r.reason
                ),
                run: Some(c.run),
                grafana: links.grafana(&r.check),
                runbook: links.runbook(&[&r.check, &c.job]),
            });
        }
    }
    for g in ledger::group(findings) {
        // A failed checklist run's failures are the checks above.
        if g.kind == FindingKind::Failed && checklist.is_some_and(|c| c.job == g.job) {
            continue;
        }
        out.push(Attention {
            what: describe(&g, tz),
            run: g.runs.last().copied(),
            grafana: None,
            runbook: links.runbook(&[&g.job]),
        });
    }
    for a in activity
        .iter()
        .filter(|a| a.run.trigger == crate::model::Trigger::Manual && ledger_failure(a.run.status))
    {
        out.push(Attention {
            what: format!(
                "{} (by hand, by {}) {}: {}",
                a.run.job,
                a.run.triggered_by,
                a.run.status,
                a.run.error.as_deref().unwrap_or("no error recorded")
            ),
            run: Some(a.run.id),
            grafana: None,
            runbook: links.runbook(&[&a.run.job]),
        });
    }
    out
}

fn ledger_failure(s: RunStatus) -> bool {
    matches!(
        s,
        RunStatus::Failed | RunStatus::TimedOut | RunStatus::Abandoned
    )
}

/// "watch missed 96 runs, Sun 22:00 to Mon 05:55 IST: …", or for one
/// fire "verify-backups missed its Mon 08:30 IST run: …".
pub fn describe(g: &Group, tz: Tz) -> String {
    let at = |t: DateTime<Utc>| t.with_timezone(&tz).format("%a %H:%M %Z").to_string();
    if g.count == 1 {
        format!(
            "{} {} its {} run: {}",
            g.job,
            verb(g.kind),
            at(g.first),
            g.detail
        )
    } else {
        let what = match g.kind {
            FindingKind::Duplicate => "ran twice",
            FindingKind::Fast => "unusually fast",
            k => k.as_str(),
        };
        format!(
            "{}: {} runs {what}, {} to {}: {}{}",
            g.job,
            g.count,
            at(g.first),
            at(g.last),
            g.detail,
            if g.kind == FindingKind::Missed {
                ""
            } else {
                " (the first)"
            }
        )
    }
}

fn verb(k: FindingKind) -> &'static str {
    match k {
        FindingKind::Missed => "missed",
        FindingKind::Failed => "failed",
        FindingKind::Skipped => "skipped",
        FindingKind::Duplicate => "ran twice for",
        FindingKind::Late => "was late for",
        FindingKind::Slow => "was slow in",
        FindingKind::Fast => "was unusually fast in",
    }
}
