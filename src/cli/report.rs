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
            let j = config.job(name)?;
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

/// What `--out FILE` writes, from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    /// `.html`, `.htm`: the HTML with its charts inline, for a browser.
    Html,
    /// `.eml`: the whole message.
    Eml,
    /// `.txt`, or no extension: the text, with its Subject line.
    Text,
}

impl OutFormat {
    /// The format a file's extension names. Case does not matter: on the
    /// systems runbookd runs on, `X.HTML` is an HTML file to whoever opens
    /// it (macOS and Windows file systems do not even tell the two apart).
    /// An extension runbookd cannot write is refused, not written as text.
    pub fn of(path: &Path) -> Result<Self> {
        let Some(ext) = path.extension() else {
            return Ok(OutFormat::Text);
        };
        match ext.to_string_lossy().to_ascii_lowercase().as_str() {
            "html" | "htm" => Ok(OutFormat::Html),
            "eml" => Ok(OutFormat::Eml),
            "txt" => Ok(OutFormat::Text),
            other => Err(CliError::Usage(format!(
                "--out {}: cannot write a `.{other}` file; name it .html, .htm, .eml or .txt (or no extension, for text)",
                path.display()
            ))),
        }
    }
}

pub async fn report(
    cli: &Cli,
    since: Option<&str>,
    out: Option<&Path>,
    send: bool,
    job: Option<&str>,
) -> Result<()> {
    // Before anything is read or sent: a file it cannot write is a typo.
    let format = out.map(OutFormat::of).transpose()?;
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
    match out.zip(format) {
        Some((path, format)) => {
            let bytes = match format {
                OutFormat::Html => redact(&rendered.preview_html()).into_bytes(),
                OutFormat::Eml => {
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
                // As printed on stdout: the subject first.
                OutFormat::Text => format!(
                    "Subject: {}\n\n{}",
                    report.subject(),
                    redact(&rendered.text)
                )
                .into_bytes(),
            };
            std::fs::write(path, bytes).map_err(|source| CliError::WriteFile {
                path: path.to_path_buf(),
                source,
            })?;
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
