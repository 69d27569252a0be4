//! The report as one message: plain text that reads on its own
//! ([`super::text`]), and HTML with the same content, styled inline, with
//! the charts as `cid:` images ([`super::html`]).
//!
//! Both parts are laid out from the same [`Report`] and say what they say
//! in the words worded here once (headings, cells, captions, lines), so
//! the text and the HTML cannot drift apart: they differ only in layout.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{Activity, CheckRow, Checklist, LedgerRow, Report, Series};
use crate::adapters::mail::Draft;
use crate::config::{Links, MailConfig};
use crate::model::{fmt_age, fmt_number};

/// The text and HTML of a report, and its chart images.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Content id and PNG.
    pub images: Vec<(String, Vec<u8>)>,
}

impl Rendered {
    /// The HTML with its `cid:` images as data URLs, so a browser shows it
    /// as a mail client would.
    pub fn preview_html(&self) -> String {
        use base64::Engine;
        let mut html = self.html.clone();
        for (cid, png) in &self.images {
            let data = base64::engine::general_purpose::STANDARD.encode(png);
            html = html.replace(
                &format!("src=\"cid:{cid}\""),
                &format!("src=\"data:image/png;base64,{data}\""),
            );
        }
        html
    }

    pub fn draft(self, mail: &MailConfig, to: &[String], cc: &[String]) -> Draft {
        Draft {
            from: mail.from.clone(),
            to: to.to_vec(),
            cc: cc.to_vec(),
            subject: self.subject,
            text: self.text,
            html: Some(self.html),
            images: self.images,
        }
    }
}

/// Renders the report. `links` give each failure somewhere to go.
pub fn render(r: &Report, links: &Links) -> Rendered {
    let (html, images) = super::html::report(r, links);
    Rendered {
        subject: r.subject(),
        text: super::text::report(r),
        html,
        images,
    }
}

pub(super) const ATTENTION: &str = "Needs attention";
pub(super) const CHECKLIST: &str = "Checklist";
pub(super) const NO_CHECKLIST: &str = "No checklist run in the last two days.";
pub(super) const MAINTENANCE: &str = "Maintenance and manual runs";
pub(super) const FOOTER: &str =
    "Any run in full: runbookd show RUN_ID. This report: runbookd report --since 24h.";

pub(super) fn local(t: DateTime<Utc>, tz: Tz, f: &str) -> String {
    t.with_timezone(&tz).format(f).to_string()
}

/// The end of the period, in full.
pub(super) fn when(r: &Report) -> String {
    local(r.until, r.timezone, "%a %-d %b %Y, %H:%M %Z")
}

/// The start of the period.
pub(super) fn since(r: &Report) -> String {
    local(r.since, r.timezone, "%a %-d %b %H:%M")
}

/// "All clear", "2 need attention".
pub(super) fn verdict(r: &Report) -> String {
    capital(&r.verdict())
}

pub(super) fn truncated_note() -> String {
    format!(
        "The period held more than {} runs; only the newest were read.",
        super::MAX_RUNS
    )
}

pub(super) fn checklist_title(c: &Checklist, tz: Tz) -> String {
    format!(
        "Checklist: {}, run {} at {} ({})",
        c.job,
        c.run,
        local(c.started_at, tz, "%a %H:%M %Z"),
        c.status
    )
}

/// A checklist row's value, threshold and change since yesterday.
pub(super) fn check_cells(row: &CheckRow) -> [String; 3] {
    [
        crate::table::cell(row.value.as_ref()),
        crate::table::cell(row.threshold.as_ref()),
        row.change(),
    ]
}

pub(super) fn charts_heading() -> String {
    format!("Last {} days", super::CHART_DAYS)
}

/// "error-rate-5m of watch".
pub(super) fn chart_source(s: &Series) -> String {
    format!("{} of {}", s.spec.check, s.spec.job)
}

/// The numbers of a chart: latest, median, range and threshold.
pub(super) fn caption(s: &Series) -> String {
    match (s.summary(), s.points.last()) {
        (Some((lo, med, hi)), Some((_, last))) => format!(
            "latest {}, median {}, range {} to {}{}",
            fmt_number(*last),
            fmt_number(med),
            fmt_number(lo),
            fmt_number(hi),
            s.threshold
                .as_ref()
                .map(|t| format!("; {t}"))
                .unwrap_or_default()
        ),
        _ => "no values recorded".into(),
    }
}

pub(super) fn ledger_heading(r: &Report) -> String {
    format!("Scheduled jobs since {}", since(r))
}

/// A ledger row's cells: job, ran/due, ok, failed, missed, other, median;
/// `None` for a suspended job (its name and "suspended" only).
pub(super) fn ledger_cells(l: &LedgerRow, r: &Report) -> Option<[String; 7]> {
    if l.suspended {
        return None;
    }
    let mut other = [
        (l.late, "late"),
        (l.duplicate, "duplicate"),
        (l.skipped, "skipped"),
        (l.slow, "slow"),
        (l.fast, "fast"),
        (l.running, "running"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, w)| format!("{n} {w}"))
    .collect::<Vec<_>>();
    // Its fires before runbookd knew it are not missed: say why they are
    // not counted.
    match l.first_seen {
        None => other.push("not seen by runbookd yet".into()),
        Some(seen) if seen > r.since => other.push(format!(
            "first day, from {}",
            local(seen, r.timezone, "%a %H:%M")
        )),
        Some(_) => {}
    }
    let other = other.join(", ");
    Some([
        l.job.clone(),
        format!("{}/{}", l.ran, l.expected),
        l.succeeded.to_string(),
        l.failed.to_string(),
        l.missed.to_string(),
        if other.is_empty() { "-".into() } else { other },
        l.median.map(fmt_age).unwrap_or_else(|| "-".into()),
    ])
}

/// The words of a maintenance or manual run's line.
pub(super) struct RunLine {
    /// "manual by alice".
    pub by: String,
    /// " (dry run)" or nothing.
    pub dry: &'static str,
    /// When it started.
    pub at: String,
    /// How long it took, or "still running".
    pub took: String,
}

pub(super) fn run_line(a: &Activity, tz: Tz) -> RunLine {
    RunLine {
        by: format!("{} by {}", a.run.trigger, a.run.triggered_by),
        dry: if a.run.dry_run { " (dry run)" } else { "" },
        at: local(a.run.started_at, tz, "%a %H:%M %Z"),
        took: a
            .run
            .finished_at
            .and_then(|f| (f - a.run.started_at).to_std().ok())
            .map(fmt_age)
            .unwrap_or_else(|| "still running".into()),
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
