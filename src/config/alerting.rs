//! `alertmanager:` (job failures as alerts) and the per-job `severity` and
//! `ping_url`, read and checked without I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Dur;
use crate::secret::{CapabilityUrl, SecretUrl};
use crate::yaml::{At, Diags, Text};

/// `alertmanager:`, where a job's failure goes as an alert, besides mail.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlertmanager {
    /// Alertmanager's base URL, e.g. `http://alertmanager:9093`; alerts
    /// are posted to its `/api/v2/alerts`. Its password, if any, is a
    /// secret. Empty or absent: no alerts. Default none.
    url: Option<super::mail::MaybeUrl>,
    /// Labels added to every alert, e.g. `team: backend`. Names as
    /// Prometheus's (`[a-zA-Z_][a-zA-Z0-9_]*`), values not empty; none may
    /// be `alertname`, `job` or `severity`, which runbookd sets. Default
    /// none.
    #[serde(default)]
    labels: BTreeMap<String, Text>,
    /// How often the alert of a job still failing is posted again, each
    /// time ending 4 × `resend` ahead. At least `1s` and at least
    /// `daemon.heartbeat`. Default `1m`.
    resend: Option<At<Dur>>,
    /// Per post. Default `10s`.
    timeout: Option<At<Dur>>,
    /// The alerts' `generatorURL`, with `{job}` and `{run}` replaced by the
    /// job's name and the failed run's id, e.g. a log search. Default: the
    /// job's runbook link (`links`), else none.
    generator_url: Option<Text>,
}

/// Where job failures go as alerts. See [`RawAlertmanager`] for each field.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerConfig {
    pub url: SecretUrl,
    pub labels: BTreeMap<String, String>,
    pub resend: Duration,
    pub timeout: Duration,
    pub generator_url: Option<String>,
}

impl AlertmanagerConfig {
    pub const DEFAULT_RESEND: Duration = Duration::from_secs(60);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Settings with defaults, for `url`.
    pub fn new(url: SecretUrl) -> Self {
        AlertmanagerConfig {
            url,
            labels: BTreeMap::new(),
            resend: Self::DEFAULT_RESEND,
            timeout: Self::DEFAULT_TIMEOUT,
            generator_url: None,
        }
    }
}

/// The labels runbookd sets on each alert itself.
pub const OWN_LABELS: [&str; 3] = ["alertname", "job", "severity"];

/// `heartbeat` is the daemon's: its maintenance pass, which re-posts,
/// comes round that often, so `resend` cannot be shorter.
pub(super) fn alertmanager(
    raw: Option<&RawAlertmanager>,
    heartbeat: Duration,
    diags: &mut Diags,
) -> Option<AlertmanagerConfig> {
    let raw = raw?;
    let url = raw.url.as_ref().and_then(|u| u.0.as_ref());
    if let Some(u) = url
        && let Some(p) = http_url_problem(u.expose())
    {
        diags.at(u.at, format!("alertmanager.url {}: {p}", u.shown()));
    }
    for (name, value) in &raw.labels {
        if OWN_LABELS.contains(&name.as_str()) {
            diags.at(
                value.at,
                format!("alertmanager.labels: `{name}` is set by runbookd on every alert"),
            );
        } else if !is_label_name(name) {
            diags.at(
                value.at,
                format!(
                    "alertmanager.labels: `{name}` is not a label name (letters, digits and `_`, not starting with a digit)"
                ),
            );
        }
        if value.trim().is_empty() {
            diags.at(
                value.at,
                format!("alertmanager.labels.{name} is empty (Alertmanager drops empty labels)"),
            );
        }
    }
    let resend = raw.resend.map(|r| r.value.0);
    if let Some(r) = raw.resend {
        if r.value.0 < Duration::from_secs(1) {
            diags.at(r.at, "alertmanager.resend must be at least 1s");
        } else if r.value.0 < heartbeat {
            diags.at(
                r.at,
                format!(
                    "alertmanager.resend ({}) must be at least daemon.heartbeat ({}): the daemon re-posts alerts on its maintenance pass, which comes round that often",
                    humantime::format_duration(r.value.0),
                    humantime::format_duration(heartbeat)
                ),
            );
        }
    }
    if let Some(t) = raw.timeout
        && t.value.0.is_zero()
    {
        diags.at(t.at, "alertmanager.timeout must be more than 0s");
    }
    let generator_url = raw
        .generator_url
        .as_ref()
        .filter(|g| !g.trim().is_empty())
        .and_then(|g| {
            let probe = g.trim().replace("{job}", "j").replace("{run}", "1");
            match http_url_problem(&probe) {
                None => Some(g.trim().to_string()),
                Some(p) => {
                    diags.at(g.at, format!("alertmanager.generator_url: {p}"));
                    None
                }
            }
        });
    // The rest configures nothing without a URL: a section whose
    // `url: "${AM_URL:-}"` is left empty turns alerts off on purpose.
    let url = url?.clone();
    Some(AlertmanagerConfig {
        url,
        labels: raw
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.trim().to_string()))
            .collect(),
        resend: resend.unwrap_or(AlertmanagerConfig::DEFAULT_RESEND),
        timeout: raw
            .timeout
            .map(|t| t.value.0)
            .unwrap_or(AlertmanagerConfig::DEFAULT_TIMEOUT),
        generator_url,
    })
}

/// Prometheus's label name rule.
fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What is wrong with an http(s) URL something is posted or pinged to.
fn http_url_problem(url: &str) -> Option<String> {
    match url::Url::parse(url) {
        Err(e) => Some(format!("not a URL ({e})")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            Some(format!("scheme `{}`: use http:// or https://", u.scheme()))
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("no host".into()),
        Ok(_) => None,
    }
}

/// How bad a job's failure is, as its alert's `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's `ping_url`: `None` when absent or empty (so
/// `"${HC_PING_URL:-}"` left unset means no pings), else the URL, which
/// must be http(s) with no query or fragment (the signal is appended to
/// its path, the run's id as `?rid=`).
pub(super) fn ping_url(raw: Option<&Text>, diags: &mut Diags) -> Option<CapabilityUrl> {
    let t = raw.filter(|t| !t.trim().is_empty())?;
    let url = CapabilityUrl::from_text(t);
    let problem = http_url_problem(t.trim()).or_else(|| {
        let u = url::Url::parse(t.trim()).ok()?;
        (u.query().is_some() || u.fragment().is_some()).then(|| {
            "it has a query or fragment; give the check's base URL (runbookd appends /start, /fail and ?rid=)".to_string()
        })
    });
    match problem {
        Some(p) => {
            diags.at(t.at, format!("ping_url {url}: {p}"));
            None
        }
        None => Some(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_table() {
        for (name, ok) in [
            ("team", true),
            ("_x", true),
            ("env_2", true),
            ("2env", false),
            ("team-name", false),
            ("", false),
            ("é", false),
        ] {
            assert_eq!(is_label_name(name), ok, "{name:?}");
        }
    }
}
