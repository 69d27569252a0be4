//! What each command prints: tables, one run, fire lists, JSON. Data goes
//! to stdout; nothing here decides anything.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::Result;
use crate::model::Run;
use crate::schedule::Shift;
use crate::scrub::escape_controls;

/// A line of data on stdout. A closed stdout is an error the caller ends
/// on quietly (`| head`), never a panic.
pub fn say(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// A line for the operator on stderr; if no one reads stderr any more, the
/// line is dropped and the command goes on.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// A foreground run's log line on stderr, as text or as one JSON object
/// carrying the job and run.
pub fn tee(format: super::LogFormat, l: &crate::runlog::TeeLine<'_>) {
    let line = match format {
        super::LogFormat::Text => format!("{} {} {}", l.at, l.stream.label(), l.text),
        super::LogFormat::Json => serde_json::json!({
            "timestamp": l.at,
            "level": "INFO",
            "target": "runbookd::run",
            "job": l.job,
            "run": l.run,
            "stream": l.stream.label(),
            "message": l.text,
        })
        .to_string(),
    };
    note(&line);
}

pub fn print_json(value: &impl Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| match e.io_error_kind() {
        // Keep the kind: a closed stdout ends the command quietly.
        Some(kind) => std::io::Error::from(kind),
        None => std::io::Error::other(e),
    })?;
    writeln!(out)?;
    Ok(())
}

pub fn print_table(header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    write!(out, "{}", crate::table::render(header, rows))?;
    Ok(())
}

pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn short(s: &str, n: usize) -> String {
    let one_line = s.lines().next().unwrap_or("");
    if one_line.chars().count() > n {
        format!("{}…", one_line.chars().take(n - 1).collect::<String>())
    } else {
        one_line.to_string()
    }
}

fn took(run: &Run) -> Option<String> {
    run.duration()
        .map(|d| format!("{:.1}s", d.num_milliseconds() as f64 / 1000.0))
}

pub use crate::console::rows::{JobRow, PendingRequest, steps_table};

impl PendingRequest {
    fn note(&self) -> String {
        format!(
            "request #{} pending (by {}{})",
            self.id,
            self.requested_by,
            self.expires_at
                .map(|at| format!(", expires {}", fmt_time(at)))
                .unwrap_or_default()
        )
    }
}

pub fn jobs(rows: &[JobRow]) -> Result<()> {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.kind.to_string(),
                r.schedule.clone().unwrap_or_else(|| "(manual)".into()),
                r.timezone.clone(),
                if r.suspended {
                    "(suspended)".into()
                } else if let Some(by) = &r.paused_by {
                    format!("(paused by {by})")
                } else {
                    r.next_fire
                        .as_deref()
                        .and_then(|n| DateTime::parse_from_rfc3339(n).ok())
                        .and_then(|d| {
                            r.timezone.parse::<Tz>().ok().map(|tz| {
                                d.with_timezone(&tz)
                                    .format("%Y-%m-%d %H:%M:%S %Z")
                                    .to_string()
                            })
                        })
                        .unwrap_or_else(|| "-".into())
                },
                match (r.last_status, r.last_run_id) {
                    (Some(s), Some(id)) => format!("{s} (#{id})"),
                    _ => "-".into(),
                },
                r.last_dry_run
                    .iter()
                    .map(|d| format!("dry run {} (#{})", d.status, d.id))
                    .chain(r.pending_requests.iter().map(PendingRequest::note))
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    print_table(
        &[
            "JOB", "KIND", "SCHEDULE", "TIMEZONE", "NEXT", "LAST", "NOTE",
        ],
        &table,
    )
}

/// One fire of `runbookd next`.
#[derive(Serialize)]
pub struct NextFire {
    pub utc: String,
    pub local: String,
    pub offset: String,
    /// The wall-clock time the cron expression named.
    pub nominal: String,
    pub shift: Shift,
    pub note: Option<String>,
}

pub fn next(name: &str, expr: &str, tz: Tz, fires: &[NextFire]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{name}: `{expr}` in {}", tz.name())?;
    for f in fires {
        let local = DateTime::parse_from_rfc3339(&f.local)
            .map(|d| {
                d.with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string()
            })
            .unwrap_or_else(|_| f.local.clone());
        match &f.note {
            Some(note) => writeln!(out, "{local}  ({})  {}  [{note}]", f.offset, f.utc)?,
            None => writeln!(out, "{local}  ({})  {}", f.offset, f.utc)?,
        }
    }
    Ok(())
}

pub fn history(runs: &[Run]) -> Result<()> {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.job.clone(),
                format!("{}{}", r.trigger, if r.dry_run { " (dry)" } else { "" }),
                r.status.to_string(),
                r.attempt.to_string(),
                fmt_time(r.started_at),
                took(r).unwrap_or_else(|| "-".into()),
                r.error.as_deref().map(|e| short(e, 60)).unwrap_or_default(),
            ]
        })
        .collect();
    print_table(
        &[
            "ID", "JOB", "TRIGGER", "STATUS", "ATTEMPT", "STARTED", "TOOK", "ERROR",
        ],
        &rows,
    )
}

/// Requests, newest first: who asked, when, and what became of each.
pub fn requests(list: &[crate::model::Request], now: DateTime<Utc>) -> Result<()> {
    use crate::model::RequestStatus as S;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            let outcome = match r.status {
                S::Pending => match r.expires_at {
                    Some(at) => format!(
                        "expires in {}",
                        humantime::format_duration(std::time::Duration::from_secs(
                            (at - now).num_seconds().max(0) as u64
                        ))
                    ),
                    None => String::new(),
                },
                S::Started => match r.run_id {
                    Some(run) => format!(
                        "run {run} on {}",
                        r.taken_by.as_deref().unwrap_or("a daemon")
                    ),
                    None => format!(
                        "being started by {}",
                        r.taken_by.as_deref().unwrap_or("a daemon")
                    ),
                },
                S::Withdrawn => format!(
                    "by {}: {}",
                    r.closed_by.as_deref().unwrap_or("?"),
                    r.error.as_deref().unwrap_or("")
                ),
                S::Refused | S::Expired => r.error.clone().unwrap_or_default(),
            };
            vec![
                r.id.to_string(),
                format!("{}{}", r.job, if r.dry_run { " (dry)" } else { "" }),
                r.status.to_string(),
                r.requested_by.clone(),
                fmt_time(r.requested_at),
                r.reason.clone().unwrap_or_default(),
                outcome,
            ]
        })
        .collect();
    print_table(
        &["ID", "JOB", "STATUS", "BY", "ASKED", "REASON", "OUTCOME"],
        &rows,
    )
}

pub fn show(run: &Run) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let opt = |t: Option<DateTime<Utc>>| t.map(fmt_time).unwrap_or_else(|| "-".into());
    writeln!(out, "run {}  {}  {}", run.id, run.job, run.status)?;
    writeln!(
        out,
        "trigger       {}{}",
        run.trigger,
        if run.dry_run { " (dry run)" } else { "" }
    )?;
    writeln!(out, "triggered_by  {}", run.triggered_by)?;
    writeln!(out, "scheduled_for {}", opt(run.scheduled_for))?;
    writeln!(out, "started_at    {}", fmt_time(run.started_at))?;
    writeln!(out, "finished_at   {}", opt(run.finished_at))?;
    writeln!(
        out,
        "attempt       {}{}",
        run.attempt,
        run.retry_of
            .map(|r| format!(" (retry of #{r})"))
            .unwrap_or_default()
    )?;
    writeln!(out, "owner         {}", run.owner)?;
    // Stored text is escaped as it is kept; escaped again here for rows
    // an older runbookd wrote, so none reaches the terminal raw.
    if let Some(e) = &run.error {
        writeln!(out, "error         {}", escape_controls(e))?;
    }
    if !run.steps.is_empty() {
        writeln!(out, "steps:")?;
        write!(out, "{}", steps_table(&run.steps))?;
    }
    if !run.checks.is_empty() {
        writeln!(out, "checks:")?;
        write!(out, "{}", crate::checks::render_table(&run.checks))?;
    }
    writeln!(
        out,
        "log{}:",
        if run.log_truncated {
            " (truncated)"
        } else {
            ""
        }
    )?;
    write!(out, "{}", escape_controls(run.log.as_deref().unwrap_or("")))?;
    Ok(())
}

/// The end of a foreground run: its results, then one summary line. A
/// report whose mail is pending says so there, with why and how it will
/// go: no daemon may be running to resend it.
pub fn run_end(
    run: Option<&Run>,
    id: i64,
    job: &str,
    status: crate::model::RunStatus,
    attempt: u32,
    error: Option<&str>,
) -> Result<()> {
    let pending = run
        .and_then(crate::jobs::report::PendingMail::of)
        .map(|p| {
            format!(
                "; its mail is pending, not sent: {}. It is kept: a running daemon (`runbookd serve`) resends it from {}; with none running, `runbookd report --send` sends a new copy now",
                p.error.trim_end_matches('.'),
                fmt_time(p.retry_at)
            )
        })
        .unwrap_or_default();
    let unreached = match run {
        Some(r) if crate::checks::none_reached(&r.checks) => format!(
            "; no check reached its target (all {} ended `error`, nothing measured): production was not judged, check this host's network, DNS and credentials first",
            r.checks.len()
        ),
        _ => String::new(),
    };
    let mut out = std::io::stdout().lock();
    if let Some(r) = run {
        if !r.steps.is_empty() {
            write!(out, "{}", steps_table(&r.steps))?;
        }
        if !r.checks.is_empty() {
            write!(out, "{}", crate::checks::render_table(&r.checks))?;
        }
    }
    let took = run
        .and_then(|r| r.duration())
        .map(|d| format!(" in {:.2}s", d.num_milliseconds() as f64 / 1000.0))
        .unwrap_or_default();
    writeln!(
        out,
        "run {id} of `{job}` {status}{took}{}{}{unreached}{pending}",
        if attempt > 1 {
            format!(" (attempt {attempt})")
        } else {
            String::new()
        },
        error
            .map(|e| format!(": {}", escape_controls(e)))
            .unwrap_or_default()
    )?;
    Ok(())
}
