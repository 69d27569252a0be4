//! Dead man's switch pings behind a narrow trait: tell the watcher this
//! run started, succeeded or failed. The convention healthchecks.io,
//! Cronitor and others share: `GET <url>/start`, `GET <url>` (success),
//! `GET <url>/fail`, each with `?rid=` pairing a run's start and end.

use std::time::Duration;

use async_trait::async_trait;

use crate::secret::CapabilityUrl;

/// What a ping tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PingSignal {
    Start,
    Success,
    Fail,
}

impl PingSignal {
    pub fn as_str(self) -> &'static str {
        match self {
            PingSignal::Start => "start",
            PingSignal::Success => "success",
            PingSignal::Fail => "fail",
        }
    }

    /// What the convention appends to the check's URL.
    fn suffix(self) -> &'static str {
        match self {
            PingSignal::Start => "/start",
            PingSignal::Success => "",
            PingSignal::Fail => "/fail",
        }
    }
}

impl std::fmt::Display for PingSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The URL a ping GETs: the check's URL, the signal's suffix, the run's
/// id. Pure.
pub fn ping_target(base: &str, signal: PingSignal, rid: uuid::Uuid) -> String {
    format!(
        "{}{}?rid={}",
        base.trim_end_matches('/'),
        signal.suffix(),
        rid.hyphenated()
    )
}

#[derive(Debug, thiserror::Error)]
pub enum PingError {
    #[error("ping {signal} to {url}: no answer within {}", humantime::format_duration(*.after))]
    TimedOut {
        url: String,
        signal: PingSignal,
        after: Duration,
    },
    #[error("ping {signal} to {url}: {cause}")]
    Unreachable {
        url: String,
        signal: PingSignal,
        cause: String,
    },
    #[error("ping {signal} to {url}: answered {status}")]
    Refused {
        url: String,
        signal: PingSignal,
        status: u16,
    },
}

impl PingError {
    pub fn timed_out(&self) -> bool {
        matches!(self, PingError::TimedOut { .. })
    }
}

#[async_trait]
pub trait Pinger: Send + Sync + std::fmt::Debug {
    /// Tells the check at `url` `signal` for the run `rid`, giving up after
    /// `timeout`.
    async fn ping(
        &self,
        url: &CapabilityUrl,
        signal: PingSignal,
        rid: uuid::Uuid,
        timeout: Duration,
    ) -> Result<(), PingError>;
}

/// Pings over the shared HTTP client.
#[derive(Debug, Clone)]
pub struct HttpPinger {
    pub http: reqwest::Client,
}

#[async_trait]
impl Pinger for HttpPinger {
    async fn ping(
        &self,
        url: &CapabilityUrl,
        signal: PingSignal,
        rid: uuid::Uuid,
        timeout: Duration,
    ) -> Result<(), PingError> {
        let target = ping_target(url.expose(), signal, rid);
        // The URL is the credential: errors show its host only.
        let shown = url.shown();
        let call = async {
            let resp = self
                .http
                .get(&target)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| match e.is_timeout() {
                    true => PingError::TimedOut {
                        url: shown.clone(),
                        signal,
                        after: timeout,
                    },
                    false => PingError::Unreachable {
                        url: shown.clone(),
                        signal,
                        cause: super::error_chain(&e.without_url()),
                    },
                })?;
            match resp.status() {
                s if s.is_success() => Ok(()),
                s => Err(PingError::Refused {
                    url: shown.clone(),
                    signal,
                    status: s.as_u16(),
                }),
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(PingError::TimedOut {
                url: shown,
                signal,
                after: timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_shared_convention() {
        let rid: uuid::Uuid = "0f0c6a4e-1a57-5d2b-9c1e-7c3f2b9e8a11".parse().unwrap();
        let cases = [
            (
                "https://hc-ping.com/abc",
                PingSignal::Start,
                "https://hc-ping.com/abc/start?rid=0f0c6a4e-1a57-5d2b-9c1e-7c3f2b9e8a11",
            ),
            (
                "https://hc-ping.com/abc/",
                PingSignal::Success,
                "https://hc-ping.com/abc?rid=0f0c6a4e-1a57-5d2b-9c1e-7c3f2b9e8a11",
            ),
            (
                "https://cronitor.link/p/k/m",
                PingSignal::Fail,
                "https://cronitor.link/p/k/m/fail?rid=0f0c6a4e-1a57-5d2b-9c1e-7c3f2b9e8a11",
            ),
        ];
        for (base, signal, want) in cases {
            assert_eq!(ping_target(base, signal, rid), want);
        }
    }
}
