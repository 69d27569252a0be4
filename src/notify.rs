//! Failure notifications: which runs are mailed, and what the mail says.
//!
//! A job with `notify: on_failure` mails its first failure, not the
//! repeats (the store's `notify_state` says whether the job was already
//! failing, atomically, so two replicas never both mail it), and one
//! "recovered" mail at its next success. `always` mails every final
//! outcome. Only a run's last attempt counts: the runner calls this after
//! its retries. Dry runs, cancelled and skipped runs mail nothing. A job
//! whose notifications go to Alertmanager only (no recipients) is mailed
//! nothing; its alert follows the same state ([`crate::alerting`]).

use std::fmt::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::adapters::mail::Draft;
use crate::config::{JobConfig, Links, MailConfig, Notify};
use crate::model::{CheckStatus, Run, RunId, RunStatus, StepStatus};
use crate::report::html;
use crate::store::{HistoryStore, Result};

/// What a mail says about a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Failed,
    Recovered,
    Succeeded,
}

impl Notice {
    pub fn word(self) -> &'static str {
        match self {
            Notice::Failed => "failed",
            Notice::Recovered => "recovered",
            Notice::Succeeded => "succeeded",
        }
    }
}

/// Whether a run's status is a verdict on the job: `Some(true)` failing,
/// `Some(false)` healthy, `None` neither (cancelled by someone, skipped,
/// still running).
pub fn failing(status: RunStatus) -> Option<bool> {
    match status {
        RunStatus::Failed | RunStatus::TimedOut | RunStatus::Abandoned => Some(true),
        RunStatus::Succeeded => Some(false),
        RunStatus::Cancelled | RunStatus::Skipped | RunStatus::Running => None,
    }
}

/// The mail a run's final outcome deserves. `changed` is whether the
/// job's failing state flipped with this run (it was not failing and now
/// is, or the reverse). Pure.
pub fn decide(notify: Notify, failing: Option<bool>, changed: bool) -> Option<Notice> {
    match (notify, failing, changed) {
        (Notify::Never, _, _) | (_, None, _) => None,
        (_, Some(true), true) => Some(Notice::Failed),
        (Notify::Always, Some(true), false) => Some(Notice::Failed),
        (Notify::OnFailure, Some(true), false) => None,
        (_, Some(false), true) => Some(Notice::Recovered),
        (Notify::Always, Some(false), false) => Some(Notice::Succeeded),
        (Notify::OnFailure, Some(false), false) => None,
    }
}

/// A run's verdict on its job, as recorded in the job's notify state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// `Some(true)` failing, `Some(false)` healthy, `None` neither.
    pub failing: Option<bool>,
    /// Whether the job's failing state flipped with this run: what its
    /// alert follows.
    pub changed: bool,
}

impl Verdict {
    /// The mail it deserves under the job's rule.
    pub fn notice(self, notify: Notify) -> Option<Notice> {
        decide(notify, self.failing, self.changed)
    }
}

/// Records the run's verdict in the job's notify state. `None` for a job
/// that never notifies: it has no state.
pub async fn record(
    store: &dyn HistoryStore,
    job: &JobConfig,
    run: RunId,
    status: RunStatus,
    now: DateTime<Utc>,
) -> Result<Option<Verdict>> {
    if job.notify == Notify::Never {
        return Ok(None);
    }
    let verdict = failing(status);
    let changed = match verdict {
        Some(true) => store.notify_failing(&job.name, run, now).await?,
        Some(false) => store.notify_recovered(&job.name, run, now).await?,
        None => false,
    };
    Ok(Some(Verdict {
        failing: verdict,
        changed,
    }))
}

/// The Message-ID of a run's notice: the same for the same run and
/// notice, so it can never be sent twice.
pub fn message_id(job: &str, run: RunId, notice: Notice, host: &str) -> String {
    format!("<runbookd.{job}.{run}.{}@{host}>", notice.word())
}

/// The mail about a run: readable as plain text, with an HTML part.
pub fn compose(
    notice: Notice,
    job: &JobConfig,
    run: &Run,
    mail: &MailConfig,
    links: &Links,
    tz: Tz,
    chained: &[crate::model::ChainedRun],
) -> Draft {
    let subject = format!("[runbookd] {} {} (run {})", job.name, notice.word(), run.id);
    let mut t = String::new();
    let when = run
        .finished_at
        .unwrap_or(run.started_at)
        .with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %Z");
    let _ = writeln!(
        t,
        "{} {}: run {}, attempt {}, {} ({}), triggered by {} ({}), ended {when}.",
        job.name,
        notice.word(),
        run.id,
        run.attempt,
        run.status,
        run.finished_at
            .and_then(|f| (f - run.started_at).to_std().ok())
            .map(crate::model::fmt_age)
            .unwrap_or_default(),
        run.triggered_by,
        run.trigger,
    );
    // What this failure started (a triage) comes first: its diagnosis is
    // what the reader needs before the details.
    for c in chained {
        let summary = c.summary.as_deref().unwrap_or("no summary");
        let _ = match c.id {
            Some(id) => writeln!(
                t,
                "\n{} (run {id}, {}): {summary}\n  runbookd show {id}",
                c.job, c.status
            ),
            None => writeln!(t, "\n{} (not started): {summary}", c.job),
        };
    }
    // Nothing measured is no verdict on production: say so before the
    // error, so "all checks failed" is not read as an outage.
    let unreached = notice == Notice::Failed && crate::checks::none_reached(&run.checks);
    if unreached {
        let _ = writeln!(
            t,
            "\nNo check reached its target: all {} ended `error`, so nothing was measured. \
             Production was not judged; this is more likely the network, DNS or credentials \
             from where runbookd runs than production failing. Each check's error says what \
             stopped it.",
            run.checks.len()
        );
    }
    if let Some(e) = &run.error {
        let _ = writeln!(t, "\nError: {e}");
    }
    let failed_checks: Vec<_> = run
        .checks
        .iter()
        .filter(|c| c.status != CheckStatus::Pass)
        .collect();
    if !failed_checks.is_empty() {
        let _ = writeln!(t, "\nChecks that did not pass:");
        for c in &failed_checks {
            let _ = writeln!(
                t,
                "  {:<5} {}: {}{}",
                c.status,
                c.check,
                c.reason,
                c.threshold
                    .as_ref()
                    .map(|th| format!(" ({th})"))
                    .unwrap_or_default()
            );
        }
    }
    if !run.steps.is_empty() {
        let _ = writeln!(t, "\nSteps:");
        for s in &run.steps {
            let mark = match s.status {
                StepStatus::Succeeded => "ok",
                StepStatus::Failed => "FAILED",
                StepStatus::Skipped => "skipped",
                _ => s.status.as_str(),
            };
            let _ = writeln!(t, "  {mark:<7} {} on {}: {}", s.name, s.target, s.detail);
        }
    }
    if notice == Notice::Failed
        && let Some(log) = &run.log
    {
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        if !tail.is_empty() {
            let _ = writeln!(t, "\nLast log lines:");
            for l in tail.iter().rev() {
                let _ = writeln!(t, "  {l}");
            }
        }
    }
    let _ = writeln!(t, "\nDetails: runbookd show {}", run.id);
    // A check's runbook section is for its target failing (the health
    // check's is the complete outage); unreached, only the job's applies.
    let names: Vec<&str> = failed_checks
        .iter()
        .filter(|_| !unreached)
        .map(|c| c.check.as_str())
        .chain([job.name.as_str()])
        .collect();
    if let Some(r) = links.runbook(&names) {
        let _ = writeln!(t, "Runbook: {r}");
    }
    for c in &failed_checks {
        if let Some(g) = links.grafana(&c.check) {
            let _ = writeln!(t, "Dashboard for {}: {g}", c.check);
        }
    }
    match (notice, job.notify) {
        (Notice::Failed, Notify::OnFailure) => {
            let _ = writeln!(
                t,
                "\nRepeats of this failure are not mailed; one mail follows when {} succeeds again.",
                job.name
            );
        }
        (Notice::Recovered, _) => {
            let _ = writeln!(t, "\n{} is healthy again.", job.name);
        }
        _ => {}
    }
    let colour = match notice {
        Notice::Failed => html::RED,
        _ => html::GREEN,
    };
    let body = maud::html! {
        (html::banner(format!("{} {}", job.name, notice.word()), colour))
        (html::pre(&t))
    };
    Draft {
        from: mail.from.clone(),
        to: job.notify_to.clone(),
        cc: Vec::new(),
        subject,
        text: t,
        html: Some(html::page(body)),
        images: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_table() {
        use Notice::*;
        use Notify::*;
        // (notify, failing, changed, mail)
        let cases = [
            (Never, Some(true), true, None),
            (OnFailure, Some(true), true, Some(Failed)),
            (OnFailure, Some(true), false, None),
            (OnFailure, Some(false), true, Some(Recovered)),
            (OnFailure, Some(false), false, None),
            (OnFailure, None, false, None),
            (Always, Some(true), false, Some(Failed)),
            (Always, Some(false), false, Some(Succeeded)),
            (Always, Some(false), true, Some(Recovered)),
            (Always, None, false, None),
        ];
        for (n, f, c, want) in cases {
            assert_eq!(decide(n, f, c), want, "{n:?} {f:?} {c}");
        }
    }

    /// A checklist whose every check failed to reach its target measured
    /// nothing: its mail says production was not judged, and links no
    /// check's runbook section (the health check's is the complete-outage
    /// one). One measured failure keeps the link.
    #[test]
    fn a_run_whose_checks_reached_nothing_says_so_and_links_no_outage() {
        let yaml = "mail:\n  to: oncall@flexoraa.com\nlinks:\n  runbook: https://git.example/RUNBOOK.md\n  anchors:\n    api-health: p0-complete-outage\njobs:\n  daily:\n    kind: checklist\n    checks:\n      - {name: api-health, kind: http, url: \"http://127.0.0.1:9/\"}\n      - {name: redis, kind: redis, url: \"redis://127.0.0.1:9\"}\n";
        let config = crate::jobs::load_str(std::path::Path::new("jobs.yaml"), yaml, &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        let at = DateTime::parse_from_rfc3339("2026-11-30T03:30:00Z")
            .unwrap()
            .to_utc();
        let run = |checks: Vec<crate::model::CheckResult>| Run {
            id: 1,
            job: "daily".into(),
            trigger: crate::model::Trigger::Manual,
            triggered_by: "sre".into(),
            scheduled_for: None,
            started_at: at,
            finished_at: Some(at),
            status: RunStatus::Failed,
            attempt: 1,
            error: Some("2 checks: 0 pass, 0 warn, 0 fail, 2 error".into()),
            dry_run: false,
            owner: "h:1:x".into(),
            heartbeat_at: at,
            retry_of: None,
            log: None,
            log_truncated: false,
            checks,
            steps: Vec::new(),
        };
        let error = |name: &str| {
            crate::model::CheckResult::new(name, CheckStatus::Error, "refused: 127.0.0.1:9")
        };
        let job = config.job("daily").unwrap();
        let mail = |r: &Run| {
            compose(
                Notice::Failed,
                job,
                r,
                &config.mail,
                &config.links,
                chrono_tz::UTC,
                &[],
            )
            .text
        };
        let text = mail(&run(vec![error("api-health"), error("redis")]));
        assert!(
            text.contains(
                "No check reached its target: all 2 ended `error`, so nothing was measured"
            ),
            "{text}"
        );
        assert!(!text.contains("p0-complete-outage"), "{text}");
        let measured = crate::model::CheckResult::new("api-health", CheckStatus::Fail, "HTTP 503");
        let text = mail(&run(vec![measured, error("redis")]));
        assert!(!text.contains("No check reached"), "{text}");
        assert!(text.contains("#p0-complete-outage"), "{text}");
    }

    #[test]
    fn verdicts() {
        assert_eq!(failing(RunStatus::TimedOut), Some(true));
        assert_eq!(failing(RunStatus::Succeeded), Some(false));
        assert_eq!(failing(RunStatus::Cancelled), None);
        assert_eq!(failing(RunStatus::Skipped), None);
    }
}
