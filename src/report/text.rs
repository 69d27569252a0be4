//! The report's text/plain part: reads on its own in any mail client or
//! terminal; headings in capitals, tables in columns, the charts'
//! numbers in one line each.

use std::fmt::Write;

use super::Report;
use super::render::{self, RunLine};
use crate::model::StepStatus;
use crate::table;

/// The text of the report.
pub fn report(r: &Report) -> String {
    let mut t = String::new();
    headline(&mut t, r);
    attention(&mut t, r);
    checklist(&mut t, r);
    charts(&mut t, r);
    ledger(&mut t, r);
    activity(&mut t, r);
    let _ = writeln!(t, "\n{}", render::FOOTER);
    t
}

fn heading(t: &mut String, title: &str) {
    let _ = writeln!(t, "\n{}", title.to_uppercase());
}

fn headline(t: &mut String, r: &Report) {
    let _ = writeln!(t, "{} morning report, {}", r.title, render::when(r));
    let _ = writeln!(t, "{}.", render::verdict(r));
    if r.truncated {
        let _ = writeln!(t, "{}", render::truncated_note());
    }
}

fn attention(t: &mut String, r: &Report) {
    if r.attention.is_empty() {
        return;
    }
    heading(t, render::ATTENTION);
    for (i, a) in r.attention.iter().enumerate() {
        let _ = writeln!(t, "{:>3}. {}", i + 1, a.what);
        if let Some(id) = a.run {
            let _ = writeln!(t, "       runbookd show {id}");
        }
        if let Some(g) = &a.grafana {
            let _ = writeln!(t, "       Grafana: {g}");
        }
        if let Some(rb) = &a.runbook {
            let _ = writeln!(t, "       Runbook: {rb}");
        }
    }
}

fn checklist(t: &mut String, r: &Report) {
    let Some(c) = &r.checklist else {
        heading(t, render::CHECKLIST);
        let _ = writeln!(t, "   {}", render::NO_CHECKLIST);
        return;
    };
    heading(t, &render::checklist_title(c, r.timezone));
    let rows: Vec<Vec<String>> = c
        .rows
        .iter()
        .map(|row| {
            let [value, threshold, change] = render::check_cells(row);
            vec![
                row.status.to_string(),
                row.check.clone(),
                value,
                threshold,
                change,
            ]
        })
        .collect();
    t.push_str(&indent(&table::render(
        &["STATUS", "CHECK", "VALUE", "THRESHOLD", "SINCE YESTERDAY"],
        &rows,
    )));
}

fn charts(t: &mut String, r: &Report) {
    if r.series.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "\n{} (charts in the HTML part)",
        render::charts_heading().to_uppercase()
    );
    for s in &r.series {
        let _ = writeln!(
            t,
            "   {} ({}): {}",
            s.spec.title,
            render::chart_source(s),
            render::caption(s)
        );
    }
}

fn ledger(t: &mut String, r: &Report) {
    if r.ledger.is_empty() {
        return;
    }
    heading(t, &render::ledger_heading(r));
    let rows: Vec<Vec<String>> = r
        .ledger
        .iter()
        .map(|l| match render::ledger_cells(l, r) {
            Some(cells) => cells.to_vec(),
            None => {
                let mut row = vec![String::new(); 7];
                row[0] = l.job.clone();
                row[1] = "suspended".into();
                row
            }
        })
        .collect();
    let header = ["JOB", "RAN", "OK", "FAILED", "MISSED", "OTHER", "MEDIAN"];
    t.push_str(&indent(&table::render(&header, &rows)));
    let _ = writeln!(
        t,
        "   (each missed, failed, late or unusual run is under NEEDS ATTENTION)"
    );
}

fn activity(t: &mut String, r: &Report) {
    if r.activity.is_empty() {
        return;
    }
    heading(t, render::MAINTENANCE);
    for a in &r.activity {
        let RunLine { by, dry, at, took } = render::run_line(a, r.timezone);
        let _ = writeln!(
            t,
            "   run {} {}{dry}: {} {}, {by}, at {at}, took {took}",
            a.run.id, a.run.job, a.kind, a.run.status
        );
        if let Some(e) = &a.run.error {
            let _ = writeln!(t, "      error: {e}");
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
        }
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("   {l}\n")).collect()
}
