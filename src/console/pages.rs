//! The console's HTML, written with maud: every value is escaped unless it
//! is markup built here. No inline style or script (the CSP forbids
//! both): classes styled by /static/console.css, and /static/console.js
//! following a running run's log.

use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use maud::{DOCTYPE, Markup, html};

use super::rows::RunMark;
use super::views::{JobPageView, JobView, JobsView, QueueView, RunView};
use crate::config::Config;
use crate::model::{CheckResult, Request, Run, RunStatus};

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn layout(title: &str, script: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · runbookd" }
                link rel="stylesheet" href="/static/console.css";
                @if script {
                    script src="/static/console.js" defer {}
                }
            }
            body {
                header.top {
                    a.brand href="/" { "runbookd" }
                    nav {
                        a href="/" { "Jobs" }
                        a href="/queue" { "Queue" }
                        a href="/report" { "Report" }
                    }
                    span.ro { "read-only" }
                }
                main { (body) }
            }
        }
    }
}

pub fn error(status: StatusCode, message: &str) -> Markup {
    layout(
        status.canonical_reason().unwrap_or("error"),
        false,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p.banner.bad { (message) }
            p { a href="/" { "All jobs" } }
        },
    )
}

fn status_class(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Succeeded => "ok",
        RunStatus::Running => "running",
        RunStatus::Skipped | RunStatus::Cancelled => "muted",
        RunStatus::Failed | RunStatus::TimedOut | RunStatus::Abandoned => "bad",
    }
}

fn mark(m: &RunMark) -> Markup {
    html! {
        a class={ "mark " (status_class(m.status)) } href={ "/runs/" (m.id) }
            title={ "#" (m.id) " " (m.status) " " (utc(m.started_at)) } { (m.status.as_str().chars().next().unwrap_or('?')) }
    }
}

fn badge(s: RunStatus) -> Markup {
    html! { span class={ "badge " (status_class(s)) } { (s) } }
}

fn commands(list: &[String]) -> Markup {
    html! {
        details.commands {
            summary { "Act from a terminal (the console changes nothing)" }
            @for c in list { pre { code { (c) } } }
        }
    }
}

fn check_class(s: crate::model::CheckStatus) -> &'static str {
    use crate::model::CheckStatus as C;
    match s {
        C::Pass => "ok",
        C::Warn => "warn",
        C::Fail | C::Error => "bad",
    }
}

fn checks_table(checks: &[CheckResult]) -> Markup {
    html! {
        table {
            thead { tr { th { "Check" } th { "Status" } th { "Value" } th { "Threshold" } th { "Reason" } th { "Took" } } }
            tbody {
                @for c in checks {
                    tr {
                        td { (c.check) }
                        td { span class={ "badge " (check_class(c.status)) } { (c.status) } }
                        td.num { @if let Some(v) = &c.value { (v) } @else { "-" } }
                        td { (c.threshold.as_ref().map(ToString::to_string).unwrap_or_default()) }
                        td { (c.reason) }
                        td.num { (c.duration_ms) " ms" }
                    }
                }
            }
        }
    }
}

fn job_head(j: &JobView, tz: Tz) -> Markup {
    html! {
        @if let Some(d) = &j.description { p.description { (d) } }
        dl.facts {
            dt { "Kind" } dd { (j.row.kind) }
            dt { "Schedule" }
            dd {
                @match (&j.schedule_words, &j.row.schedule) {
                    (Some(w), Some(cron)) => { (w) " · " code { (cron) } }
                    (None, Some(cron)) => { code { (cron) } }
                    _ => { "manual only" }
                }
            }
            dt { "Timezone" } dd { (j.row.timezone) }
            dt { "Next fire" }
            dd {
                @if j.row.suspended { "suspended in the file" }
                @else if let Some(p) = &j.paused {
                    span.badge.warn { "paused" } " by " (p.paused_by) " at " (utc(p.paused_at))
                    @if let Some(r) = &p.reason { ": " (r) }
                } @else if let Some(at) = j.next_fire_utc {
                    (local(at, tz)) " · " (utc(at))
                } @else { "-" }
            }
            dt { "Last success" }
            dd {
                @match (&j.last_success, &j.since_last_success) {
                    (Some(m), Some(ago)) => { a href={ "/runs/" (m.id) } { "#" (m.id) } " " (ago) " ago" }
                    _ => { "none recorded" }
                }
            }
        }
    }
}

pub fn jobs(v: &JobsView, config: &Config) -> Markup {
    layout(
        "Jobs",
        false,
        html! {
            @if let Some(e) = &v.store.error {
                p.banner.bad { "The history store is down: " (e) ". Run history is not shown; the jobs are as the file has them." }
            }
            @if let Some(m) = &v.mail {
                @if m.pending > 0 {
                    p.banner.warn {
                        (m.pending) " message(s) pending, not sent"
                        @if let Some(at) = m.oldest_pending_at { " (oldest queued " (utc(at)) ")" }
                        ". " a href="/queue" { "See the queue" }
                    }
                }
            }
            h1 { "Jobs" }
            p.muted { "As of " (utc(v.now)) ". Marks: the last 20 runs, newest first." }
            table.jobs {
                thead { tr { th { "Job" } th { "Kind" } th { "Schedule" } th { "Next fire" } th { "Last 20 runs" } th { "Last success" } } }
                tbody {
                    @for j in &v.jobs {
                        @let tz = j.row.timezone.parse::<Tz>().unwrap_or(Tz::UTC);
                        tr {
                            td {
                                a href={ "/jobs/" (j.row.name) } { (j.row.name) }
                                @if let Some(d) = &j.description { div.muted.small { (d) } }
                            }
                            td { (j.row.kind) }
                            td {
                                @if let Some(w) = &j.schedule_words { (w) br; }
                                @if let Some(c) = &j.row.schedule { code { (c) } } @else { span.muted { "manual" } }
                            }
                            td {
                                @if j.row.suspended { span.badge.muted { "suspended" } }
                                @else if let Some(p) = &j.paused {
                                    span.badge.warn { "paused" } " by " (p.paused_by)
                                    @if let Some(r) = &p.reason { div.small { (r) } }
                                } @else if let Some(at) = j.next_fire_utc {
                                    (local(at, tz)) div.muted.small { (utc(at)) }
                                } @else { "-" }
                            }
                            td.marks { @for m in &j.recent { (mark(m)) } }
                            td {
                                @match (&j.last_success, &j.since_last_success) {
                                    (Some(m), Some(ago)) => { a href={ "/runs/" (m.id) } { (ago) " ago" } }
                                    _ => { span.muted { "none" } }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = &v.checklist {
                h2 { "Latest checklist: " a href={ "/runs/" (c.run.id) } { (c.job) " #" (c.run.id) } " " (badge(c.run.status)) }
                p.muted { "Started " (local(c.run.started_at, config.defaults.timezone)) }
                (checks_table(&c.run.checks))
            }
        },
    )
}

fn runs_table(runs: &[Run]) -> Markup {
    html! {
        table {
            thead { tr { th { "Run" } th { "Trigger" } th { "By" } th { "Status" } th { "Attempt" } th { "Started" } th { "Took" } th { "Error" } } }
            tbody {
                @for r in runs {
                    tr {
                        td { a href={ "/runs/" (r.id) } { "#" (r.id) } }
                        td { (r.trigger) @if r.dry_run { " (dry)" } }
                        td { (r.triggered_by) }
                        td { (badge(r.status)) }
                        td.num { (r.attempt) }
                        td { (utc(r.started_at)) }
                        td.num { @if let Some(d) = r.duration() { (format!("{:.1}s", d.num_milliseconds() as f64 / 1000.0)) } @else { "-" } }
                        td.error { (r.error.as_deref().and_then(|e| e.lines().next()).unwrap_or("")) }
                    }
                }
            }
        }
    }
}

pub fn job(v: &JobPageView) -> Markup {
    let j = &v.job;
    let tz = j.row.timezone.parse::<Tz>().unwrap_or(Tz::UTC);
    let name = &j.row.name;
    layout(
        name,
        false,
        html! {
            h1 { "Job " (name) }
            (job_head(j, tz))
            div.marks.big { @for m in &j.recent { (mark(m)) } }
            (commands(&j.commands))
            h2 { "Runs" }
            form.filter method="get" action={ "/jobs/" (name) } {
                label { "Status "
                    select name="status" {
                        option value="" selected[v.filter.status.is_none()] { "any" }
                        @for s in RunStatus::ALL {
                            option value=(s) selected[v.filter.status == Some(*s)] { (s) }
                        }
                    }
                }
                label { " Trigger "
                    select name="trigger" {
                        option value="" selected[v.filter.trigger.is_none()] { "any" }
                        @for t in crate::model::Trigger::ALL {
                            option value=(t) selected[v.filter.trigger == Some(*t)] { (t) }
                        }
                    }
                }
                " " button type="submit" { "Filter" }
            }
            @if v.runs.is_empty() { p.muted { "No runs match." } } @else { (runs_table(&v.runs)) }
            p.pager {
                @if v.filter.before.is_some() { a href={ "/jobs/" (name) "?" (v.filter.query(None)) } { "« newest" } " " }
                @if let Some(b) = v.next_before { a href={ "/jobs/" (name) "?" (v.filter.query(Some(b))) } { "older »" } }
            }
            h2 { "Charts" }
            @for c in &v.charts {
                figure {
                    img src=(c.url) alt={ (c.title) " chart" } width="720" height="180";
                    figcaption { strong { (c.title) } ": " (c.caption) }
                }
            }
            h2 { "Config" }
            p.muted { "As written in the file; secrets and credentials masked." }
            pre.yaml { (v.config_yaml) }
        },
    )
}

pub fn run(v: &RunView) -> Markup {
    let r = &v.run;
    let running = r.status == RunStatus::Running;
    layout(
        &format!("Run {}", r.id),
        running,
        html! {
            h1 { "Run #" (r.id) " of " a href={ "/jobs/" (r.job) } { (r.job) } " " span #status class={ "badge " (status_class(r.status)) } { (r.status) } }
            dl.facts {
                dt { "How" } dd { (r.trigger) @if r.dry_run { " (dry run)" } }
                dt { "Who" } dd { (r.triggered_by) }
                @if let Some(by) = v.chained_by {
                    dt { "Why" } dd { "chained by the failure of " a href={ "/runs/" (by) } { "#" (by) } }
                }
                @if let Some(s) = r.scheduled_for { dt { "Scheduled for" } dd { (utc(s)) } }
                dt { "Started" } dd { (utc(r.started_at)) }
                dt { "Finished" } dd { @if let Some(f) = r.finished_at { (utc(f)) } @else { "-" } }
                dt { "Attempt" }
                dd {
                    (r.attempt)
                    @if let Some(of) = r.retry_of { " (retry of " a href={ "/runs/" (of) } { "#" (of) } ")" }
                    @if !v.retries.is_empty() {
                        " · retried by "
                        @for m in &v.retries { a href={ "/runs/" (m.id) } { "#" (m.id) } " " (badge(m.status)) " " }
                    }
                }
                @if !v.chained.is_empty() {
                    dt { "Chained" }
                    dd { @for c in &v.chained { a href={ "/runs/" (c.mark.id) } { (c.job) " #" (c.mark.id) } " " (badge(c.mark.status)) " " } }
                }
                dt { "Owner" } dd { (r.owner) }
                @if let Some(e) = &r.error { dt { "Error" } dd.error { (e) } }
            }
            (commands(&v.commands))
            @if !r.steps.is_empty() {
                h2 { "Steps" }
                ol.timeline {
                    @for s in &r.steps {
                        li class=(status_class_step(s.status)) {
                            div {
                                strong { (s.name) } " on " code { (s.target) } " " span class={ "badge " (status_class_step(s.status)) } { (s.status) }
                            }
                            div.muted.small {
                                (utc(s.started_at))
                                @if let Some(f) = s.finished_at { " → " (utc(f)) " (" (format!("{:.1}s", (f - s.started_at).num_milliseconds() as f64 / 1000.0)) ")" }
                            }
                            @if !s.detail.is_empty() { div { (s.detail) } }
                            @if let Some(p) = &s.payload {
                                details open { summary { "payload" } pre { (serde_json::to_string_pretty(p).unwrap_or_default()) } }
                            }
                        }
                    }
                }
            }
            @if !r.checks.is_empty() {
                h2 { "Checks" }
                (checks_table(&r.checks))
            }
            @if !v.show_text.is_empty() {
                h2 { "As " code { "runbookd show" } " prints it" }
                pre.show { (v.show_text) }
            }
            h2 { "Log" @if r.log_truncated { " (truncated)" } }
            pre #log data-follow=(if running { "true" } else { "false" }) data-src={ "/runs/" (r.id) "?format=json" } { (r.log.as_deref().unwrap_or("")) }
            @if running { p.muted { "Running: the log follows as the run saves it (every heartbeat)." } }
        },
    )
}

fn status_class_step(s: crate::model::StepStatus) -> &'static str {
    use crate::model::StepStatus as S;
    match s {
        S::Succeeded => "ok",
        S::Running => "running",
        S::Skipped => "muted",
        S::Failed => "bad",
    }
}

fn requests_table(list: &[Request]) -> Markup {
    html! {
        table {
            thead { tr { th { "#" } th { "Job" } th { "Status" } th { "By" } th { "Asked" } th { "Reason" } th { "Outcome" } } }
            tbody {
                @for r in list {
                    tr {
                        td { (r.id) }
                        td { a href={ "/jobs/" (r.job) } { (r.job) } @if r.dry_run { " (dry)" } }
                        td { (r.status) }
                        td { (r.requested_by) }
                        td { (utc(r.requested_at)) }
                        td { (r.reason.as_deref().unwrap_or("")) }
                        td {
                            @if let Some(run) = r.run_id { a href={ "/runs/" (run) } { "run #" (run) } }
                            @if let Some(e) = &r.error { " " (e) }
                            @if let Some(x) = r.expires_at { @if r.status == crate::model::RequestStatus::Pending { "expires " (utc(x)) } }
                        }
                    }
                }
            }
        }
    }
}

pub fn queue(v: &QueueView) -> Markup {
    layout(
        "Queue",
        false,
        html! {
            h1 { "Queue" }
            h2 { "Pending run requests" }
            @if v.pending_requests.is_empty() { p.muted { "None: every request has been taken." } }
            @else {
                (requests_table(&v.pending_requests))
                (commands(&v.pending_requests.iter().map(|r| format!("runbookd withdraw {}", r.id)).collect::<Vec<_>>()))
            }
            h2 { "Pending mail" }
            @if v.pending_mail.is_empty() { p.muted { "None: all mail is sent." } }
            @else {
                table {
                    thead { tr { th { "Subject" } th { "To" } th { "Queued" } th { "Tries" } th { "Next try" } th { "Last error" } } }
                    tbody {
                        @for m in &v.pending_mail {
                            tr {
                                td { (m.subject) @if let Some(run) = m.run_id { " " a href={ "/runs/" (run) } { "#" (run) } } }
                                td { (m.recipients.join(", ")) }
                                td { (utc(m.created_at)) }
                                td.num { (m.attempts) }
                                td { (utc(m.next_attempt_at)) }
                                td.error { (m.last_error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            h2 { "Recent requests" }
            @if v.recent_requests.is_empty() { p.muted { "None." } } @else { (requests_table(&v.recent_requests)) }
        },
    )
}
