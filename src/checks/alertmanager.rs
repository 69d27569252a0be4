//! `kind: alertmanager`: alerts firing now (active, not silenced, not
//! inhibited), listed by name and severity; fails on any at or above a
//! severity. The runbook's "Review Slack alerts", answered at the source.

use async_trait::async_trait;
use serde::Deserialize;

use super::{Check, CheckContext, CheckResult, CheckStatus};
use crate::config::urls::{self, UrlKind};
use crate::secret::SecretUrl;
use crate::yaml::{Diags, Ident, Pos, Required};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerCheck {
    /// Alertmanager base URL, e.g. `http://alertmanager:9093`. Its
    /// password, if any, is a secret.
    pub url: SecretUrl,
    /// Label matchers that select the alerts this check cares about, e.g.
    /// `env="production"`. Default: all alerts.
    #[serde(default)]
    pub matchers: Vec<Required>,
    /// Severities from least to most severe. Default `[info, warning, critical]`.
    pub severities: Option<Vec<Ident>>,
    /// Fail on any firing alert at or above this severity; alerts below it
    /// (or with an unknown severity) warn. Default `critical`.
    pub fail_at: Option<Ident>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct Alert {
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(rename = "startsAt", default)]
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[async_trait]
impl Check for AlertmanagerCheck {
    fn threshold(&self) -> Option<String> {
        Some(format!(
            "fail on severity >= {}",
            self.fail_at.as_deref().unwrap_or("critical")
        ))
    }

    fn target(&self) -> String {
        self.url.to_string()
    }

    fn validate(&self, at: Pos, diags: &mut Diags) {
        urls::check(&self.url, "url", UrlKind::Http, at, diags);
    }

    async fn run(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult> {
        vec![self.check(name, ctx).await]
    }
}

/// Why the firing alerts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// The request failed, said with its method and URL.
    #[error("{0}")]
    Request(String),
    #[error("alertmanager answered {code}: {body}")]
    Status {
        code: reqwest::StatusCode,
        body: String,
    },
    #[error("unexpected answer from {url}: {source}")]
    Answer {
        url: String,
        source: serde_json::Error,
    },
}

impl AlertmanagerCheck {
    fn severities(&self) -> Vec<String> {
        match &self.severities {
            Some(s) => s.iter().map(|t| t.to_string()).collect(),
            None => vec!["info".into(), "warning".into(), "critical".into()],
        }
    }

    async fn check(&self, name: &str, ctx: &CheckContext) -> CheckResult {
        match self.firing(ctx).await {
            Ok(alerts) => self.assess(name, &alerts),
            Err(e) => CheckResult::error(name, e.to_string()),
        }
    }

    /// The alerts firing now (active, not silenced, not inhibited) that
    /// match `matchers`. Triage reads them through this too.
    pub async fn firing(&self, ctx: &CheckContext) -> Result<Vec<Alert>, AlertsError> {
        let url = format!("{}/api/v2/alerts", self.url.expose().trim_end_matches('/'));
        let mut query: Vec<(&str, &str)> = vec![
            ("active", "true"),
            ("silenced", "false"),
            ("inhibited", "false"),
        ];
        for m in &self.matchers {
            query.push(("filter", m.as_str()));
        }
        let resp = ctx
            .adapters
            .http
            .get(&url)
            .query(&query)
            .timeout(ctx.timeout)
            .send()
            .await
            .map_err(|e| AlertsError::Request(super::http::describe_error("GET", &url, &e)))?;
        let code = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| AlertsError::Request(super::http::describe_error("GET", &url, &e)))?;
        if !code.is_success() {
            return Err(AlertsError::Status {
                code,
                body: text.trim().to_string(),
            });
        }
        serde_json::from_str::<Vec<Alert>>(&text)
            .map_err(|source| AlertsError::Answer { url, source })
    }

    /// Pure: the verdict on a list of firing alerts.
    pub fn assess(&self, name: &str, alerts: &[Alert]) -> CheckResult {
        let order = self.severities();
        let fail_at = self
            .fail_at
            .as_ref()
            .map(|f| f.to_string())
            .unwrap_or_else(|| "critical".into());
        let fail_rank = order
            .iter()
            .position(|s| *s == fail_at)
            .unwrap_or(order.len());
        let threshold = format!("fail on severity >= {fail_at}");
        if alerts.is_empty() {
            return CheckResult::new(name, CheckStatus::Pass, "no firing alerts")
                .number(0.0)
                .threshold(threshold);
        }
        let mut listed: Vec<(usize, String)> = alerts
            .iter()
            .map(|a| {
                let sev = a
                    .labels
                    .get("severity")
                    .cloned()
                    .unwrap_or_else(|| "none".into());
                let rank = order.iter().position(|s| *s == sev);
                let alertname = a
                    .labels
                    .get("alertname")
                    .cloned()
                    .unwrap_or_else(|| "(unnamed)".into());
                (
                    rank.map(|r| r + 1).unwrap_or(0),
                    format!("{alertname} ({sev})"),
                )
            })
            .collect();
        listed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let worst = listed[0].0;
        let status = if worst > fail_rank {
            CheckStatus::Fail
        } else {
            CheckStatus::Warn
        };
        let names: Vec<String> = listed.into_iter().map(|(_, n)| n).collect();
        CheckResult::new(
            name,
            status,
            format!("{} firing: {}", names.len(), names.join(", ")),
        )
        .number(alerts.len() as f64)
        .threshold(threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, sev: Option<&str>) -> Alert {
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("alertname".to_string(), name.to_string());
        if let Some(s) = sev {
            labels.insert("severity".to_string(), s.to_string());
        }
        Alert {
            labels,
            annotations: Default::default(),
            starts_at: None,
        }
    }

    #[test]
    fn severity_table() {
        let check = AlertmanagerCheck {
            url: SecretUrl::new("http://am"),
            matchers: vec![],
            severities: None,
            fail_at: None,
        };
        let cases = [
            (vec![], CheckStatus::Pass, "no firing alerts"),
            (
                vec![alert("DiskFilling", Some("warning"))],
                CheckStatus::Warn,
                "1 firing: DiskFilling (warning)",
            ),
            (
                vec![
                    alert("DiskFilling", Some("warning")),
                    alert("ApiDown", Some("critical")),
                ],
                CheckStatus::Fail,
                "2 firing: ApiDown (critical), DiskFilling (warning)",
            ),
            (vec![alert("Odd", None)], CheckStatus::Warn, "Odd (none)"),
        ];
        for (alerts, status, reason) in cases {
            let r = check.assess("alerts", &alerts);
            assert_eq!(r.status, status, "{alerts:?}");
            assert!(r.reason.contains(reason), "{}", r.reason);
        }
        let strict = AlertmanagerCheck {
            fail_at: Some("warning".into()),
            ..check
        };
        assert_eq!(
            strict.assess("a", &[alert("X", Some("warning"))]).status,
            CheckStatus::Fail
        );
    }
}
