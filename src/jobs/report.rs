//! `kind: report`: the morning report, read from the history store and
//! mailed (or written to the outbox). Sending is its one step: kept in the
//! store first, so a mail server that is down delays the report (the
//! daemon resends it) but never loses it, and a retry never sends it twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::procedure::{self, Done, StepError};
use super::{ExecEnv, Job, JobError, JobKind, Outcome, RunContext};
use crate::adapters::mail::Mailer;
use crate::clock::Clock;
use crate::config::{Config, JobSpec, addresses};
use crate::delivery::{Delivered, Postman};
use crate::model::{Dur, Run};
use crate::report::{self, ChartSpec, Settings, Tolerance};
use crate::store::HistoryStore;
use crate::yaml::{At, Diags, Text};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// The name in the subject and headline. Default `runbookd`.
    pub title: Option<Text>,
    /// How far back the report looks. Default `24h`.
    pub period: Option<At<Dur>>,
    /// The checklist job whose latest results are the report's table.
    /// Default none (no table).
    pub checklist: Option<Text>,
    /// Key metrics drawn over the last 7 days. Default none.
    #[serde(default)]
    pub charts: Vec<ChartEntry>,
    /// Recipients, comma-separated. Default `mail.to`.
    pub to: Option<Text>,
    /// Copied, comma-separated. Default `mail.cc`.
    pub cc: Option<Text>,
    /// A scheduled run that starts later than this after its time is
    /// late. Default `5m`.
    pub late_after: Option<Dur>,
    /// A run slower than this many times its job's median is slow.
    /// Default 2.
    pub slow_factor: Option<At<f64>>,
    /// A run faster than this fraction of its job's median is unusually
    /// fast. Default 0.25.
    pub fast_factor: Option<At<f64>>,
}

/// One chart: a numeric check of a checklist job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartEntry {
    /// The checklist job. Required.
    pub job: Text,
    /// The check's name in it. Required.
    pub check: Text,
    /// Default the check's name.
    pub title: Option<Text>,
}

impl ReportSpec {
    /// The report's settings, with `config`'s mail defaults.
    pub fn settings(&self, tz: chrono_tz::Tz) -> Settings {
        let d = Tolerance::default();
        Settings {
            title: self
                .title
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| "runbookd".into()),
            period: self.period.map(|p| p.value.0).unwrap_or(DEFAULT_PERIOD),
            checklist: self.checklist.as_ref().map(|c| c.to_string()),
            charts: self
                .charts
                .iter()
                .map(|c| ChartSpec {
                    job: c.job.to_string(),
                    check: c.check.to_string(),
                    title: c
                        .title
                        .as_ref()
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| c.check.to_string()),
                })
                .collect(),
            tolerance: Tolerance {
                late_after: self.late_after.map(|l| l.0).unwrap_or(d.late_after),
                slow: self.slow_factor.map(|f| f.value).unwrap_or(d.slow),
                fast: self.fast_factor.map(|f| f.value).unwrap_or(d.fast),
                min_difference: d.min_difference,
            },
            timezone: tz,
        }
    }

    /// To and cc: this job's, else `mail:`'s.
    pub fn recipients(&self, config: &Config) -> (Vec<String>, Vec<String>) {
        let mut ignore = Diags::default();
        let to = match &self.to {
            Some(t) => addresses(t, "to", &mut ignore),
            None => config.mail.to.clone(),
        };
        let cc = match &self.cc {
            Some(c) => addresses(c, "cc", &mut ignore),
            None => config.mail.cc.clone(),
        };
        (to, cc)
    }
}

pub const DEFAULT_PERIOD: Duration = Duration::from_secs(86400);

/// The `send-report` step's payload when the report could not be sent yet:
/// kept in the store, resent by a daemon. A run by hand says so on its
/// last line, since no daemon may be running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingMail {
    pub message_id: String,
    /// Always true: tells this payload from a sent one's.
    pub pending: bool,
    /// Why the last try failed.
    pub error: String,
    /// When a daemon tries again.
    pub retry_at: DateTime<Utc>,
}

impl PendingMail {
    /// The pending report of a run of a `report` job, if its mail is.
    pub fn of(run: &Run) -> Option<Self> {
        let step = run.steps.iter().find(|s| s.name == SEND_STEP)?;
        serde_json::from_value::<PendingMail>(step.payload.clone()?)
            .ok()
            .filter(|p| p.pending)
    }
}

/// The name of the report's one step.
const SEND_STEP: &str = "send-report";

impl JobSpec for ReportSpec {
    fn validate(&self, _job: &str, diags: &mut Diags) {
        if let Some(p) = self.period
            && p.value.0 < Duration::from_secs(3600)
        {
            diags.at(p.at, "period must be at least 1h");
        }
        if let Some(t) = &self.to {
            addresses(t, "to", diags);
        }
        if let Some(c) = &self.cc {
            addresses(c, "cc", diags);
        }
        if let Some(f) = self.slow_factor
            && !(f.value > 1.0)
        {
            diags.at(f.at, "slow_factor must be more than 1");
        }
        if let Some(f) = self.fast_factor
            && !(f.value > 0.0 && f.value < 1.0)
        {
            diags.at(f.at, "fast_factor must be between 0 and 1");
        }
    }

    fn references(&self) -> Vec<(&Text, &'static str)> {
        self.checklist
            .iter()
            .map(|c| (c, "checklist"))
            .chain(self.charts.iter().map(|c| (&c.job, "checklist")))
            .collect()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl JobKind for ReportSpec {
    fn executor(&self, env: &ExecEnv) -> Arc<dyn Job> {
        Arc::new(ReportJob {
            spec: self.clone(),
            store: env.store.clone(),
            config: env.config.clone(),
            mailer: env.adapters.mail.clone(),
            clock: env.clock.clone(),
        })
    }
}

#[derive(Debug)]
struct ReportJob {
    spec: ReportSpec,
    store: Arc<dyn HistoryStore>,
    config: Option<Arc<Config>>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
}

#[async_trait]
impl Job for ReportJob {
    async fn run(&self, ctx: &RunContext) -> Result<Outcome, JobError> {
        let config = self
            .config
            .as_ref()
            .ok_or_else(|| JobError::Failed("the report needs the jobs file's settings".into()))?;
        let tz = config
            .jobs
            .get(&ctx.job)
            .map(|j| j.timezone)
            .unwrap_or(config.defaults.timezone);
        let settings = self.spec.settings(tz);
        let report = report::gather(self.store.as_ref(), config, &settings, self.clock.now())
            .await
            .map_err(|e| JobError::Failed(e.to_string()))?;
        let verdict = report.verdict();
        let rendered = report::render::render(&report, &config.links);
        for line in rendered.text.lines() {
            ctx.log.info(&format!("report | {line}"));
        }
        let (to, cc) = self.spec.recipients(config);
        if to.is_empty() && cc.is_empty() {
            return Err(JobError::Failed(
                "no recipients: set mail.to (or this job's `to`)".into(),
            ));
        }
        let draft = rendered.draft(&config.mail, &to, &cc);
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        let message_id = format!("<runbookd.{}.{}@{host}>", ctx.job, ctx.run_id);
        let email = draft
            .compose(&message_id)
            .map_err(|e| JobError::Failed(e.to_string()))?;
        let postman = Postman::new(self.store.clone(), self.mailer.clone(), self.clock.clone());
        let recipients = email.recipients.join(", ");
        let sent = procedure::step(
            ctx,
            SEND_STEP,
            &recipients,
            &format!(
                "send {} ({} bytes, {} chart(s)) through {}",
                message_id,
                email.raw.len(),
                draft.images.len(),
                self.mailer.describe()
            ),
            || async {
                match postman
                    .deliver(&email, Some(&ctx.job), Some(ctx.run_id))
                    .await
                {
                    Ok(Delivered::Sent(to)) => Ok(Done::new(
                        format!("sent to {recipients} through {to}"),
                        format!("sent: {to}"),
                    )
                    .payload(serde_json::json!({"message_id": message_id, "to": to}))),
                    Ok(Delivered::AlreadySent) => Ok(Done::new(
                        "already sent".to_string(),
                        "already sent".to_string(),
                    )),
                    // Kept: the daemon sends it when the server is back.
                    Ok(Delivered::Pending { error, retry_at }) => {
                        let pending = PendingMail {
                            message_id: message_id.clone(),
                            pending: true,
                            error: error.clone(),
                            retry_at,
                        };
                        Ok(Done::new(
                            format!(
                                "not sent yet ({error}); kept, and resent by the daemon from {retry_at}"
                            ),
                            format!("pending: {error}"),
                        )
                        .payload(serde_json::to_value(&pending).unwrap_or_default()))
                    }
                    Err(e) => Err(StepError::found(e.to_string())),
                }
            },
        )
        .await?;
        Ok(Outcome {
            summary: Some(match sent {
                Some(how) => format!("{}: {how}", capitalised(&verdict)),
                None => format!(
                    "dry run: {} report not sent (would go to {recipients})",
                    verdict
                ),
            }),
            ..Default::default()
        })
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
