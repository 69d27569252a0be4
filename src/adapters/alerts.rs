//! Alertmanager behind a narrow trait: post these alerts. The body is
//! Alertmanager's API v2 (`POST /api/v2/alerts`, a JSON list), the one
//! Prometheus itself posts.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::secret::SecretUrl;

/// One alert as Alertmanager takes it. `ends_at` in the future: firing
/// until then unless posted again; in the past: resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: DateTime<Utc>,
    #[serde(rename = "endsAt")]
    pub ends_at: DateTime<Utc>,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("POST {url}: no answer within {}", humantime::format_duration(*.after))]
    TimedOut { url: String, after: Duration },
    #[error("POST {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("POST {url}: Alertmanager answered {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

impl AlertError {
    pub fn timed_out(&self) -> bool {
        matches!(self, AlertError::TimedOut { .. })
    }
}

#[async_trait]
pub trait AlertSink: Send + Sync + std::fmt::Debug {
    /// Posts `alerts` to the Alertmanager at `base` (its root URL), giving
    /// up after `timeout`.
    async fn post_alerts(
        &self,
        base: &SecretUrl,
        alerts: &[Alert],
        timeout: Duration,
    ) -> Result<(), AlertError>;
}

/// The real Alertmanager, over the shared HTTP client.
#[derive(Debug, Clone)]
pub struct Alertmanager {
    pub http: reqwest::Client,
}

/// Where alerts are posted under an Alertmanager's root URL.
pub fn alerts_endpoint(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

#[async_trait]
impl AlertSink for Alertmanager {
    async fn post_alerts(
        &self,
        base: &SecretUrl,
        alerts: &[Alert],
        timeout: Duration,
    ) -> Result<(), AlertError> {
        let target = alerts_endpoint(base.expose());
        let shown = alerts_endpoint(&base.shown());
        let unreachable = |e: reqwest::Error| match e.is_timeout() {
            true => AlertError::TimedOut {
                url: shown.clone(),
                after: timeout,
            },
            false => AlertError::Unreachable {
                url: shown.clone(),
                cause: super::error_chain(&e.without_url()),
            },
        };
        let call = async {
            let resp = self
                .http
                .post(&target)
                .json(alerts)
                .timeout(timeout)
                .send()
                .await
                .map_err(unreachable)?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let body = resp.text().await.unwrap_or_default();
            Err(AlertError::Refused {
                url: shown.clone(),
                status: status.as_u16(),
                body: body.trim().chars().take(500).collect(),
            })
        };
        // reqwest's timeout covers the request; this bounds the whole call,
        // body included, whatever the client does.
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(AlertError::TimedOut {
                url: shown,
                after: timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_alertmanagers_v2() {
        let a = Alert {
            labels: [("alertname".to_string(), "RunbookdJobFailed".to_string())].into(),
            annotations: [("summary".to_string(), "x".to_string())].into(),
            starts_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            ends_at: "2026-01-01T00:04:00Z".parse().unwrap(),
            generator_url: Some("https://console/run/1".into()),
        };
        assert_eq!(
            serde_json::to_value([&a]).unwrap(),
            serde_json::json!([{
                "labels": {"alertname": "RunbookdJobFailed"},
                "annotations": {"summary": "x"},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "2026-01-01T00:04:00Z",
                "generatorURL": "https://console/run/1",
            }])
        );
        assert_eq!(
            alerts_endpoint("http://am:9093/"),
            "http://am:9093/api/v2/alerts"
        );
    }
}
