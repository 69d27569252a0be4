//! The report as one message: plain text that reads on its own, and HTML
//! with the same content, styled inline, with the charts as `cid:` images.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::chart::{self, threshold_lines};
use super::html::{self, AMBER, GREEN, GREY, RED, esc};
use super::{Activity, Report};
use crate::adapters::mail::Draft;
use crate::config::{Links, MailConfig};
use crate::model::{CheckStatus, RunStatus, StepStatus, fmt_age, fmt_number};
use crate::table;

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

fn local(t: DateTime<Utc>, tz: Tz, f: &str) -> String {
    t.with_timezone(&tz).format(f).to_string()
}

fn status_colour(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Pass => GREEN,
        CheckStatus::Warn => AMBER,
        CheckStatus::Fail | CheckStatus::Error => RED,
    }
}

fn run_colour(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Succeeded => GREEN,
        RunStatus::Running | RunStatus::Skipped | RunStatus::Cancelled => GREY,
        _ => RED,
    }
}

fn dur(a: &Activity) -> String {
    a.run
        .finished_at
        .and_then(|f| (f - a.run.started_at).to_std().ok())
        .map(fmt_age)
        .unwrap_or_else(|| "still running".into())
}

/// Renders the report. `links` give each failure somewhere to go.
pub fn render(r: &Report, links: &Links) -> Rendered {
    let tz = r.timezone;
    let mut t = String::new();
    let mut h = String::new();
    let when = local(r.until, tz, "%a %-d %b %Y, %H:%M %Z");
    let since = local(r.since, tz, "%a %-d %b %H:%M");

    // Headline.
    let _ = writeln!(t, "{} morning report, {when}", r.title);
    let _ = writeln!(t, "{}.", capital(&r.verdict()));
    let colour = if r.attention.is_empty() { GREEN } else { RED };
    h.push_str(&html::banner(
        &format!("{}: {}", r.title, capital(&r.verdict())),
        colour,
    ));
    h.push_str(&html::p(&html::muted(&format!(
        "Morning report for {since} to {when}."
    ))));
    if r.truncated {
        let note = format!(
            "The period held more than {} runs; only the newest were read.",
            super::MAX_RUNS
        );
        let _ = writeln!(t, "{note}");
        h.push_str(&html::p(&esc(&note)));
    }

    // Needs attention.
    if !r.attention.is_empty() {
        let _ = writeln!(t, "\nNEEDS ATTENTION");
        h.push_str(&html::h2("Needs attention"));
        h.push_str("<ol style=\"margin:0;padding-left:20px;font-size:14px\">\n");
        for (i, a) in r.attention.iter().enumerate() {
            let _ = writeln!(t, "{:>3}. {}", i + 1, a.what);
            let mut more = Vec::new();
            let mut more_html = Vec::new();
            if let Some(id) = a.run {
                more.push(format!("runbookd show {id}"));
                more_html.push(html::code(&format!("runbookd show {id}")));
            }
            if let Some(g) = &a.grafana {
                more.push(format!("Grafana: {g}"));
                more_html.push(html::link(g, "Grafana"));
            }
            if let Some(rb) = &a.runbook {
                more.push(format!("Runbook: {rb}"));
                more_html.push(html::link(rb, "Runbook"));
            }
            for m in &more {
                let _ = writeln!(t, "       {m}");
            }
            let _ = writeln!(
                h,
                "<li style=\"margin:0 0 8px 0\">{}<br>{}</li>",
                esc(&a.what),
                more_html.join(" &middot; ")
            );
        }
        h.push_str("</ol>\n");
    }

    // The checklist.
    match &r.checklist {
        Some(c) => {
            let title = format!(
                "Checklist: {}, run {} at {} ({})",
                c.job,
                c.run,
                local(c.started_at, tz, "%a %H:%M %Z"),
                c.status
            );
            let _ = writeln!(t, "\n{}", title.to_uppercase());
            h.push_str(&html::h2(&title));
            let rows: Vec<Vec<String>> = c
                .rows
                .iter()
                .map(|row| {
                    vec![
                        row.status.to_string(),
                        row.check.clone(),
                        row.value
                            .as_ref()
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "-".into()),
                        row.threshold.clone().unwrap_or_else(|| "-".into()),
                        row.change(),
                    ]
                })
                .collect();
            t.push_str(&indent(&table::render(
                &["STATUS", "CHECK", "VALUE", "THRESHOLD", "SINCE YESTERDAY"],
                &rows,
            )));
            let hrows: Vec<Vec<String>> = c
                .rows
                .iter()
                .map(|row| {
                    let name = match links.grafana(&row.check) {
                        Some(g) if row.status != CheckStatus::Pass => html::link(&g, &row.check),
                        _ => esc(&row.check),
                    };
                    vec![
                        html::badge(row.status.as_str(), status_colour(row.status)),
                        format!("{name}<br>{}", html::muted(&row.reason)),
                        esc(&row
                            .value
                            .as_ref()
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "-".into())),
                        esc(row.threshold.as_deref().unwrap_or("-")),
                        esc(&row.change()),
                    ]
                })
                .collect();
            h.push_str(&html::table(
                &["Status", "Check", "Value", "Threshold", "Since yesterday"],
                &hrows,
            ));
        }
        None => {
            let _ = writeln!(t, "\nCHECKLIST\n   No checklist run in the last two days.");
            h.push_str(&html::h2("Checklist"));
            h.push_str(&html::p("No checklist run in the last two days."));
        }
    }

    // Key metrics.
    let mut images = Vec::new();
    if !r.series.is_empty() {
        let _ = writeln!(
            t,
            "\nLAST {} DAYS (charts in the HTML part)",
            super::CHART_DAYS
        );
        h.push_str(&html::h2(&format!("Last {} days", super::CHART_DAYS)));
        let from = r.until - chrono::Duration::days(super::CHART_DAYS);
        for (i, s) in r.series.iter().enumerate() {
            let caption = match (s.summary(), s.points.last()) {
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
            };
            let _ = writeln!(
                t,
                "   {} ({} of {}): {caption}",
                s.spec.title, s.spec.check, s.spec.job
            );
            let cid = format!("chart-{}", i + 1);
            let lines = s
                .threshold
                .as_deref()
                .map(threshold_lines)
                .unwrap_or_default();
            h.push_str(&html::p(&format!(
                "<b>{}</b> {}<br>{}",
                esc(&s.spec.title),
                html::muted(&format!("{} of {}", s.spec.check, s.spec.job)),
                esc(&caption)
            )));
            // No values: the caption says so; an empty frame would say
            // nothing, or look like a flat line.
            if s.summary().is_none() {
                continue;
            }
            match chart::png(&s.points, &lines, from, r.until) {
                Ok(png) => {
                    h.push_str(&html::image(
                        &cid,
                        &format!("{}: {caption}", s.spec.title),
                        chart::WIDTH,
                        chart::HEIGHT,
                    ));
                    images.push((cid, png));
                }
                Err(e) => h.push_str(&html::p(&html::muted(&e.to_string()))),
            }
        }
    }

    // The ledger.
    if !r.ledger.is_empty() {
        let _ = writeln!(t, "\nSCHEDULED JOBS SINCE {}", since.to_uppercase());
        h.push_str(&html::h2(&format!("Scheduled jobs since {since}")));
        let mut rows = Vec::new();
        let mut hrows = Vec::new();
        for l in &r.ledger {
            let median = l.median.map(fmt_age).unwrap_or_else(|| "-".into());
            if l.suspended {
                rows.push(vec![
                    l.job.clone(),
                    "suspended".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
                hrows.push(vec![
                    esc(&l.job),
                    html::muted("suspended"),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
                continue;
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
            // Its fires before runbookd knew it are not missed: say why
            // they are not counted.
            match l.first_seen {
                None => other.push("not seen by runbookd yet".into()),
                Some(seen) if seen > r.since => {
                    other.push(format!("first day, from {}", local(seen, tz, "%a %H:%M")))
                }
                Some(_) => {}
            }
            let other = other.join(", ");
            let cells = vec![
                l.job.clone(),
                format!("{}/{}", l.ran, l.expected),
                l.succeeded.to_string(),
                l.failed.to_string(),
                l.missed.to_string(),
                if other.is_empty() { "-".into() } else { other },
                median,
            ];
            let bad = l.failed > 0 || l.missed > 0;
            let mut hcells: Vec<String> = cells.iter().map(|c| esc(c)).collect();
            for i in [3, 4] {
                if cells[i] != "0" {
                    hcells[i] = format!("<b style=\"color:{RED}\">{}</b>", esc(&cells[i]));
                }
            }
            if bad {
                hcells[0] = format!("<b>{}</b>", esc(&l.job));
            }
            rows.push(cells);
            hrows.push(hcells);
        }
        let header = ["JOB", "RAN", "OK", "FAILED", "MISSED", "OTHER", "MEDIAN"];
        t.push_str(&indent(&table::render(&header, &rows)));
        h.push_str(&html::table(
            &[
                "Job",
                "Ran / due",
                "OK",
                "Failed",
                "Missed",
                "Other",
                "Median",
            ],
            &hrows,
        ));
        let _ = writeln!(
            t,
            "   (each missed, failed, late or unusual run is under NEEDS ATTENTION)"
        );
    }

    // Maintenance and manual runs.
    if !r.activity.is_empty() {
        let _ = writeln!(t, "\nMAINTENANCE AND MANUAL RUNS");
        h.push_str(&html::h2("Maintenance and manual runs"));
        for a in &r.activity {
            let by = format!("{} by {}", a.run.trigger, a.run.triggered_by);
            let dry = if a.run.dry_run { " (dry run)" } else { "" };
            let head = format!(
                "run {} {}{dry}: {} {}, {by}, at {}, took {}",
                a.run.id,
                a.run.job,
                a.kind,
                a.run.status,
                local(a.run.started_at, tz, "%a %H:%M %Z"),
                dur(a)
            );
            let _ = writeln!(t, "   {head}");
            let mut detail = String::new();
            if let Some(e) = &a.run.error {
                let _ = writeln!(t, "      error: {e}");
                let _ = write!(detail, "<br>{}", esc(e));
            }
            for s in &a.steps {
                let mark = match s.status {
                    StepStatus::Succeeded => "ok",
                    StepStatus::Failed => "FAILED",
                    other => other.as_str(),
                };
                let _ = writeln!(t, "      {mark:<7} {} {}: {}", s.name, s.target, s.detail);
            }
            for snap in a.snapshots() {
                let _ = writeln!(t, "      snapshot: {snap}");
                let _ = write!(detail, "<br>snapshot {}", html::code(&snap));
            }
            let steps_html = if a.steps.is_empty() {
                String::new()
            } else {
                let rows: Vec<Vec<String>> = a
                    .steps
                    .iter()
                    .map(|s| {
                        vec![
                            html::badge(
                                s.status.as_str(),
                                match s.status {
                                    StepStatus::Succeeded => GREEN,
                                    StepStatus::Failed => RED,
                                    _ => GREY,
                                },
                            ),
                            esc(&s.name),
                            esc(&s.target),
                            esc(&s.detail),
                        ]
                    })
                    .collect();
                html::table(&["", "Step", "On", "Result"], &rows)
            };
            let _ = writeln!(
                h,
                "<div style=\"margin:8px 0 16px 0;font-size:13px\">{} <b>{}</b> run {}{} &middot; {} &middot; {} &middot; took {}{detail}</div>\n{steps_html}",
                html::badge(a.run.status.as_str(), run_colour(a.run.status)),
                esc(&a.run.job),
                a.run.id,
                esc(dry),
                esc(&by),
                esc(&local(a.run.started_at, tz, "%a %H:%M %Z")),
                esc(&dur(a)),
            );
        }
    }

    let footer = "Any run in full: runbookd show RUN_ID. This report: runbookd report --since 24h.";
    let _ = writeln!(t, "\n{footer}");
    h.push_str(&html::p(&html::muted(footer)));
    Rendered {
        subject: r.subject(),
        text: t,
        html: html::page(&h),
        images,
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("   {l}\n")).collect()
}
