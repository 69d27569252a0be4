//! HTML for mail clients, by `maud` templates that escape every text they
//! are given (only a [`Markup`] passes as it is, and only templates make
//! one): every style inline (clients drop `<style>`), tables for layout,
//! no scripts, no external resources; images are `cid:` parts of the
//! message. The components are shared with the failure mails
//! ([`crate::notify`]); [`report`] is the morning report's HTML part.

use maud::{DOCTYPE, Markup, PreEscaped, Render, html};

use super::chart::{self, Window};
use super::render::{self, RunLine};
use super::{Report, Series};
use crate::config::Links;
use crate::model::{CheckStatus, RunStatus, StepStatus};

pub const RED: &str = "#c62828";
pub const AMBER: &str = "#b26a00";
pub const GREEN: &str = "#2e7d32";
pub const GREY: &str = "#616161";
const FONT: &str = "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif";
const MONO: &str = "font-family:Menlo,Consolas,monospace;font-size:12px";
/// Between the parts of one line.
const DOT: PreEscaped<&str> = PreEscaped(" &middot; ");

/// A whole document around `body`.
pub fn page(body: impl Render) -> String {
    html! {
        (DOCTYPE) "\n"
        html {
            head { meta charset="utf-8"; meta name="viewport" content="width=device-width"; }
            "\n"
            body style=(format!("margin:0;padding:16px;background:#f5f5f5;{FONT};color:#212121")) {
                "\n"
                div style="max-width:760px;margin:0 auto;background:#ffffff;padding:20px;border:1px solid #e0e0e0" {
                    "\n" (body)
                }
                "\n"
            }
        }
        "\n"
    }
    .into_string()
}

pub fn banner(text: impl Render, colour: &str) -> Markup {
    html! {
        div style=(format!("background:{colour};color:#ffffff;padding:12px 16px;font-size:20px;font-weight:bold")) {
            (text)
        }
        "\n"
    }
}

pub fn h2(text: impl Render) -> Markup {
    html! {
        h2 style="font-size:16px;margin:24px 0 8px 0;border-bottom:1px solid #e0e0e0;padding-bottom:4px" {
            (text)
        }
        "\n"
    }
}

pub fn p(content: impl Render) -> Markup {
    html! { p style="margin:6px 0;font-size:14px" { (content) } "\n" }
}

pub fn muted(text: impl Render) -> Markup {
    html! { span style=(format!("color:{GREY}")) { (text) } }
}

pub fn pre(text: impl Render) -> Markup {
    html! { pre style=(format!("{MONO};white-space:pre-wrap;margin:12px 0")) { (text) } "\n" }
}

pub fn link(href: &str, text: impl Render) -> Markup {
    html! { a href=(href) style="color:#1565c0" { (text) } }
}

pub fn code(text: impl Render) -> Markup {
    html! { code style=(format!("{MONO};background:#eeeeee;padding:1px 4px")) { (text) } }
}

/// A coloured word: pass, warn, fail…
pub fn badge(word: impl Render, colour: &str) -> Markup {
    html! {
        span style=(format!("display:inline-block;min-width:44px;text-align:center;background:{colour};color:#ffffff;font-size:11px;font-weight:bold;padding:2px 6px;text-transform:uppercase")) {
            (word)
        }
    }
}

/// A table: a header row, then rows of cells, each text or markup.
pub fn table<C: Render>(header: &[&str], rows: &[Vec<C>]) -> Markup {
    let th = "text-align:left;font-size:12px;color:#616161;padding:4px 8px;border-bottom:2px solid #e0e0e0";
    let td = "font-size:13px;padding:4px 8px;border-bottom:1px solid #eeeeee;vertical-align:top";
    html! {
        table cellpadding="0" cellspacing="0" style="border-collapse:collapse;width:100%" {
            "\n"
            tr { @for h in header { th style=(th) { (h) } } }
            "\n"
            @for row in rows {
                tr { @for c in row { td style=(td) { (c) } } }
                "\n"
            }
        }
        "\n"
    }
}

pub fn image(cid: &str, alt: &str, width: u32, height: u32) -> Markup {
    html! {
        img src=(format!("cid:{cid}")) alt=(alt) width=(width) height=(height)
            style="display:block;border:0;margin:4px 0 12px 0";
        "\n"
    }
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

fn step_colour(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Succeeded => GREEN,
        StepStatus::Failed => RED,
        _ => GREY,
    }
}

/// The HTML part of the report and its chart images (content id, PNG).
pub fn report(r: &Report, links: &Links) -> (String, Vec<(String, Vec<u8>)>) {
    let (charts, images) = charts(r);
    let body = html! {
        (headline(r))
        (attention(r))
        (checklist(r, links))
        (charts)
        (ledger(r))
        (activity(r))
        (p(muted(render::FOOTER)))
    };
    (page(body), images)
}

fn headline(r: &Report) -> Markup {
    let colour = if r.attention.is_empty() { GREEN } else { RED };
    html! {
        (banner(format!("{}: {}", r.title, render::verdict(r)), colour))
        (p(muted(format!("Morning report for {} to {}.", render::since(r), render::when(r)))))
        @if r.truncated { (p(render::truncated_note())) }
    }
}

fn attention(r: &Report) -> Markup {
    if r.attention.is_empty() {
        return html! {};
    }
    html! {
        (h2(render::ATTENTION))
        ol style="margin:0;padding-left:20px;font-size:14px" {
            "\n"
            @for a in &r.attention {
                @let more: Vec<Markup> = [
                    a.run.map(|id| code(format!("runbookd show {id}"))),
                    a.grafana.as_deref().map(|g| link(g, "Grafana")),
                    a.runbook.as_deref().map(|rb| link(rb, "Runbook")),
                ].into_iter().flatten().collect();
                li style="margin:0 0 8px 0" {
                    (a.what) br;
                    @for (i, m) in more.iter().enumerate() { @if i > 0 { (DOT) } (m) }
                }
                "\n"
            }
        }
        "\n"
    }
}

fn checklist(r: &Report, links: &Links) -> Markup {
    let Some(c) = &r.checklist else {
        return html! { (h2(render::CHECKLIST)) (p(render::NO_CHECKLIST)) };
    };
    let rows: Vec<Vec<Markup>> = c
        .rows
        .iter()
        .map(|row| {
            let name = match links.grafana(&row.check) {
                Some(g) if row.status != CheckStatus::Pass => link(&g, &row.check),
                _ => html! { (row.check) },
            };
            let [value, threshold, change] = render::check_cells(row);
            vec![
                badge(row.status.as_str(), status_colour(row.status)),
                html! { (name) br; (muted(&row.reason)) },
                html! { (value) },
                html! { (threshold) },
                html! { (change) },
            ]
        })
        .collect();
    html! {
        (h2(render::checklist_title(c, r.timezone)))
        (table(&["Status", "Check", "Value", "Threshold", "Since yesterday"], &rows))
    }
}

/// Each key metric's caption and chart; the images go in the message
/// beside the HTML.
fn charts(r: &Report) -> (Markup, Vec<(String, Vec<u8>)>) {
    let mut images = Vec::new();
    if r.series.is_empty() {
        return (html! {}, images);
    }
    let window = Window {
        from: r.until - chrono::Duration::days(super::CHART_DAYS),
        to: r.until,
        timezone: r.timezone,
    };
    let mut parts = vec![h2(render::charts_heading())];
    for (i, s) in r.series.iter().enumerate() {
        let caption = render::caption(s);
        parts.push(p(html! {
            b { (s.spec.title) } " " (muted(render::chart_source(s))) br; (caption)
        }));
        // No values: the caption says so; an empty frame would say
        // nothing, or look like a flat line.
        if s.summary().is_none() {
            continue;
        }
        match series_png(s, &window) {
            Ok(png) => {
                let cid = format!("chart-{}", i + 1);
                parts.push(image(
                    &cid,
                    &format!("{}: {caption}", s.spec.title),
                    chart::WIDTH,
                    chart::HEIGHT,
                ));
                images.push((cid, png));
            }
            Err(e) => parts.push(p(muted(e.to_string()))),
        }
    }
    (html! { @for part in &parts { (part) } }, images)
}

fn series_png(s: &Series, window: &Window) -> Result<Vec<u8>, chart::ChartError> {
    let (lines, unit) = chart::threshold_lines(s.threshold.as_ref());
    chart::png(&s.points, &lines, unit, window)
}

fn ledger(r: &Report) -> Markup {
    if r.ledger.is_empty() {
        return html! {};
    }
    let rows: Vec<Vec<Markup>> = r
        .ledger
        .iter()
        .map(|l| {
            let Some(cells) = render::ledger_cells(l, r) else {
                let mut row = vec![html! {}; 7];
                row[0] = html! { (l.job) };
                row[1] = muted("suspended");
                return row;
            };
            let bad = l.failed > 0 || l.missed > 0;
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| match i {
                    0 if bad => html! { b { (c) } },
                    3 | 4 if c != "0" => html! { b style=(format!("color:{RED}")) { (c) } },
                    _ => html! { (c) },
                })
                .collect()
        })
        .collect();
    html! {
        (h2(render::ledger_heading(r)))
        (table(&["Job", "Ran / due", "OK", "Failed", "Missed", "Other", "Median"], &rows))
    }
}

fn activity(r: &Report) -> Markup {
    if r.activity.is_empty() {
        return html! {};
    }
    html! {
        (h2(render::MAINTENANCE))
        @for a in &r.activity {
            @let RunLine { by, dry, at, took } = render::run_line(a, r.timezone);
            div style="margin:8px 0 16px 0;font-size:13px" {
                (badge(a.run.status.as_str(), run_colour(a.run.status)))
                " " b { (a.run.job) } " run " (a.run.id) (dry)
                (DOT) (by) (DOT) (at) (DOT) "took " (took)
                @if let Some(e) = &a.run.error { br; (e) }
                @for snap in a.snapshots() { br; "snapshot " (code(snap)) }
            }
            "\n"
            @if !a.steps.is_empty() {
                (table(&["", "Step", "On", "Result"], &a.steps.iter().map(|s| vec![
                    badge(s.status.as_str(), step_colour(s.status)),
                    html! { (s.name) },
                    html! { (s.target) },
                    html! { (s.detail) },
                ]).collect::<Vec<_>>()))
            }
            "\n"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere() {
        let evil = "<script>alert('x')</script> & \"q\"";
        for out in [
            banner(evil, RED),
            h2(evil),
            pre(evil),
            p(evil),
            link(evil, evil),
            code(evil),
            badge(evil, RED),
            muted(evil),
            table(&[evil], &[vec![evil]]),
            image(evil, evil, 1, 1),
        ]
        .into_iter()
        .map(Markup::into_string)
        .chain([page(evil)])
        {
            assert!(!out.contains("<script>"), "{out}");
            assert!(!out.contains("\"q\""), "{out}");
            assert!(out.contains("&lt;script&gt;"), "{out}");
        }
    }
}
