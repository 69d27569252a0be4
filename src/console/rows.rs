//! A job as one row: the shape `runbookd jobs --json` prints and the
//! console's jobs page carries, built in one place so the two never drift.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::JobConfig;
use crate::model::{Pause, Request, Run, RunStatus, Step};

/// A row of `runbookd jobs`.
#[derive(Serialize)]
pub struct JobRow {
    pub name: String,
    pub kind: &'static str,
    pub schedule: Option<String>,
    pub timezone: String,
    pub concurrency: String,
    pub suspended: bool,
    /// Paused in the store (`runbookd pause`): by whom.
    pub paused_by: Option<String>,
    /// RFC 3339 with the zone's offset.
    pub next_fire: Option<String>,
    /// The latest real run (dry runs never count as a job's last status).
    pub last_status: Option<RunStatus>,
    pub last_run_id: Option<i64>,
    pub last_started_at: Option<DateTime<Utc>>,
    /// The latest dry run, shown apart.
    pub last_dry_run: Option<RunMark>,
    /// Requests for it that no daemon has taken yet.
    pub pending_requests: Vec<PendingRequest>,
}

/// A run in a word: which, how it ended, when.
#[derive(Serialize, Clone)]
pub struct RunMark {
    pub id: i64,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
}

impl RunMark {
    pub fn of(r: &Run) -> Self {
        RunMark {
            id: r.id,
            status: r.status,
            started_at: r.started_at,
        }
    }
}

/// A request waiting for a daemon.
#[derive(Serialize)]
pub struct PendingRequest {
    pub id: i64,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl PendingRequest {
    pub fn of(r: &Request) -> Self {
        PendingRequest {
            id: r.id,
            requested_by: r.requested_by.clone(),
            requested_at: r.requested_at,
            expires_at: r.expires_at,
        }
    }
}

/// The job's row at `now`, from its latest real and dry runs, the pauses
/// and the pending requests (of every job: its own are picked here).
pub fn job_row(
    job: &JobConfig,
    now: DateTime<Utc>,
    last: Option<&Run>,
    last_dry: Option<&Run>,
    paused: &[Pause],
    pending: &[Request],
) -> JobRow {
    let next = job
        .schedule
        .as_ref()
        .and_then(|e| e.next_fire(job.timezone, now))
        .map(|f| {
            f.at.with_timezone(&job.timezone)
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        });
    JobRow {
        name: job.name.clone(),
        kind: job.kind(),
        schedule: job.schedule.as_ref().map(|s| s.to_string()),
        timezone: job.timezone.name().to_string(),
        concurrency: job.concurrency.to_string(),
        suspended: job.suspend,
        paused_by: paused
            .iter()
            .find(|p| p.job == job.name)
            .map(|p| p.paused_by.clone()),
        next_fire: if job.suspend { None } else { next },
        last_status: last.map(|r| r.status),
        last_run_id: last.map(|r| r.id),
        last_started_at: last.map(|r| r.started_at),
        last_dry_run: last_dry.map(RunMark::of),
        pending_requests: pending
            .iter()
            .filter(|r| r.job == job.name)
            .map(PendingRequest::of)
            .collect(),
    }
}

/// The steps of a run as a table, as `runbookd show` prints them.
pub fn steps_table(steps: &[Step]) -> String {
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            vec![
                (s.position + 1).to_string(),
                s.name.clone(),
                s.target.clone(),
                s.status.to_string(),
                s.finished_at
                    .map(|f| {
                        format!(
                            "{:.1}s",
                            (f - s.started_at).num_milliseconds() as f64 / 1000.0
                        )
                    })
                    .unwrap_or_else(|| "-".into()),
                s.detail.clone(),
            ]
        })
        .collect();
    crate::table::render(&["#", "STEP", "TARGET", "STATUS", "TOOK", "DETAIL"], &rows)
}
