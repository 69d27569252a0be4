//! `runbookd report`: the morning report by hand, to look at or to send.

use std::path::Path;
use std::sync::Arc;

use super::commands::{adapters, load, open_store, parse_since};
use super::render;
use super::{Cli, CliError, Result};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::delivery::{Delivered, Postman};
use crate::jobs::report::{DEFAULT_PERIOD, ReportSpec};
use crate::report::{self, Settings, Tolerance};

/// The settings of the `report` job named (or the first), else defaults.
fn settings(config: &Config, job: Option<&str>) -> Result<(Settings, Option<ReportSpec>)> {
    let pick = match job {
        Some(name) => {
            let j = config.job(name).map_err(CliError::Usage)?;
            Some(j.spec_as::<ReportSpec>().ok_or_else(|| {
                CliError::Usage(format!("`{name}` is a {} job, not a report", j.kind()))
            })?)
            .map(|s| (j, s))
        }
        None => config
            .jobs
            .values()
            .find_map(|j| j.spec_as::<ReportSpec>().map(|s| (j, s))),
    };
    Ok(match pick {
        Some((j, spec)) => (spec.settings(j.timezone), Some(spec.clone())),
        None => (
            Settings {
                title: "runbookd".into(),
                period: DEFAULT_PERIOD,
                checklist: None,
                charts: Vec::new(),
                tolerance: Tolerance::default(),
                timezone: config.defaults.timezone,
            },
            None,
        ),
    })
}

pub async fn report(
    cli: &Cli,
    since: Option<&str>,
    out: Option<&Path>,
    send: bool,
    job: Option<&str>,
) -> Result<()> {
    let config = load(cli)?;
    let (mut settings, spec) = settings(&config, job)?;
    let now = SystemClock.now();
    if let Some(s) = since {
        let from = parse_since(s, now)?;
        settings.period = (now - from)
            .to_std()
            .map_err(|_| CliError::Usage(format!("--since `{s}` is in the future")))?;
    }
    let store = open_store(cli, &config).await?;
    let report = report::gather(store.as_ref(), &config, &settings, now).await?;
    let rendered = report::render::render(&report, &config.links);
    let redact = |s: &str| config.redactor.redact(s);
    if send {
        let (to, cc) = match &spec {
            Some(s) => s.recipients(&config),
            None => (config.mail.to.clone(), config.mail.cc.clone()),
        };
        if to.is_empty() && cc.is_empty() {
            return Err(CliError::Usage(
                "no recipients: set mail.to in the jobs file (or the report job's `to`)".into(),
            ));
        }
        let mut draft = rendered.clone().draft(&config.mail, &to, &cc);
        draft.text = redact(&draft.text);
        draft.html = draft.html.map(|h| redact(&h));
        let email = draft.compose(&crate::adapters::mail::new_message_id())?;
        let adapters = adapters(&config)?;
        let postman = Postman::new(store.clone(), adapters.mail.clone(), Arc::new(SystemClock));
        match postman.deliver(&email, None, None).await? {
            Delivered::Sent(to) => render::note(&format!(
                "{}: sent to {} through {to}",
                report.subject(),
                email.recipients.join(", ")
            )),
            Delivered::Pending { error, retry_at } => render::note(&format!(
                "{}: not sent ({error}); kept as pending, and `runbookd serve` resends it from {retry_at}",
                report.subject()
            )),
            Delivered::AlreadySent => {}
        }
    }
    match out {
        Some(path) => {
            let bytes = match path.extension().and_then(|e| e.to_str()) {
                Some("html" | "htm") => redact(&rendered.preview_html()).into_bytes(),
                Some("eml") => {
                    let (to, cc) = match &spec {
                        Some(s) => s.recipients(&config),
                        None => (config.mail.to.clone(), config.mail.cc.clone()),
                    };
                    let to = if to.is_empty() && cc.is_empty() {
                        vec!["oncall@localhost".to_string()]
                    } else {
                        to
                    };
                    let mut draft = rendered.clone().draft(&config.mail, &to, &cc);
                    draft.text = redact(&draft.text);
                    draft.html = draft.html.map(|h| redact(&h));
                    draft.compose(&crate::adapters::mail::new_message_id())?.raw
                }
                _ => redact(&rendered.text).into_bytes(),
            };
            std::fs::write(path, bytes)
                .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?;
            render::note(&format!(
                "{}: written to {}",
                report.subject(),
                path.display()
            ));
        }
        None if !send => {
            render::say(&format!("Subject: {}\n", report.subject()))?;
            render::say(redact(&rendered.text).trim_end())?;
        }
        None => {}
    }
    Ok(())
}
