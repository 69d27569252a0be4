//! Calls to outside watchers in the background: a run's dead man's switch
//! pings and the Alertmanager posts, and the wait for them before exit.

use std::time::Duration;

use crate::adapters::ping::PingSignal;
use crate::alerting::Which;
use crate::config::JobConfig;
use crate::store::RunId;

use super::{CallOutcome, RunEvent, RunRequest, Runner};

/// How long a process about to exit waits for its pings and alert posts
/// (each has its own, shorter timeout: an end ping waits for its start,
/// 2 × 5 s).
pub const SETTLE_WAIT: Duration = Duration::from_secs(30);

impl Runner {
    /// Waits, at most `within`, for the alert posts and pings still going
    /// on in the background (each bounded by its own timeout). True if
    /// none is left. A process calls this before it exits
    /// ([`SETTLE_WAIT`]), so a run's end ping is sent.
    pub async fn settle(&self, within: Duration) -> bool {
        self.outbound.close();
        let done = tokio::time::timeout(within, self.outbound.wait())
            .await
            .is_ok();
        self.outbound.reopen();
        if !done {
            tracing::warn!(
                "{} ping(s) or alert post(s) still going after {}; left unfinished",
                self.outbound.len(),
                humantime::format_duration(within)
            );
        }
        done
    }

    /// Pings the job's dead man's switch, if it has one and the run is
    /// real, in the background ([`crate::pings`]); after `after` (the
    /// run's start ping) has ended, so the service sees them in order.
    pub(super) fn ping(
        &self,
        job: &JobConfig,
        req: &RunRequest,
        first: RunId,
        signal: Option<PingSignal>,
        after: Option<tokio::task::JoinHandle<()>>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let (Some(url), Some(signal)) = (job.ping_url.clone(), signal) else {
            return None;
        };
        if req.dry_run {
            return None;
        }
        let rid = crate::pings::rid(self.store.url(), first);
        let pings = self.env.adapters.pings.clone();
        let (events, clock, redactor) = (
            self.events.clone(),
            self.clock.clone(),
            self.redactor.clone(),
        );
        let name = job.name.clone();
        Some(self.outbound.spawn(async move {
            if let Some(start) = after {
                let _ = start.await;
            }
            let result = pings
                .ping(&url, signal, rid, crate::pings::PING_TIMEOUT)
                .await;
            let outcome = match &result {
                Ok(()) => {
                    tracing::debug!(job = %name, run = first, "pinged {signal} ({url}, rid {rid})");
                    CallOutcome::Sent
                }
                Err(e) => {
                    tracing::warn!(job = %name, run = first, "{}; the run goes on regardless", redactor.redact(&e.to_string()));
                    CallOutcome::failed(e.timed_out())
                }
            };
            let _ = events.send(RunEvent::Pinged {
                id: first,
                job: name,
                signal,
                outcome,
                at: clock.now(),
            });
        }))
    }

    /// Posts the alert of `job`'s state now, in the background.
    pub(super) fn alert_in_background(&self, job: &str) {
        if self
            .env
            .config
            .as_ref()
            .is_none_or(|c| c.alertmanager.is_none())
        {
            return;
        }
        let (this, job) = (self.clone(), job.to_string());
        self.outbound.spawn(async move {
            this.post_alerts(Which::Job(&job)).await;
        });
    }

    /// Posts the alerts the jobs' states call for ([`crate::alerting`]):
    /// one job's after its run changed it, or every due one (the daemon's
    /// pass, every `alertmanager.resend`). Logged and told as an event;
    /// never fails anything.
    pub async fn post_alerts(&self, which: Which<'_>) {
        let Some(config) = self.env.config.as_deref() else {
            return;
        };
        let posted = crate::alerting::post(
            self.store.as_ref(),
            self.env.adapters.alerts.as_ref(),
            config,
            &self.redactor,
            which,
            self.clock.now(),
        )
        .await;
        let posted = match posted {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("{e}");
                return;
            }
        };
        let what = describe_post(&posted.firing, &posted.resolved);
        let outcome = match &posted.result {
            Ok(()) => {
                tracing::debug!("posted {what} to Alertmanager");
                CallOutcome::Sent
            }
            Err(e) => {
                tracing::warn!(
                    "cannot post {what}: {}",
                    self.redactor.redact(&e.to_string())
                );
                CallOutcome::failed(e.timed_out())
            }
        };
        let _ = self.events.send(RunEvent::AlertsPosted {
            firing: posted.firing,
            resolved: posted.resolved,
            outcome,
            at: self.clock.now(),
        });
    }
}

/// "the alerts of a, b (firing) and c (resolved)", for logs.
fn describe_post(firing: &[String], resolved: &[String]) -> String {
    let mut parts = Vec::new();
    if !firing.is_empty() {
        parts.push(format!("{} (firing)", firing.join(", ")));
    }
    if !resolved.is_empty() {
        parts.push(format!("{} (resolved)", resolved.join(", ")));
    }
    format!("the alerts of {}", parts.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_post_is_described_by_what_it_carried() {
        let cases = [
            (names(&["a"]), names(&[]), "the alerts of a (firing)"),
            (names(&[]), names(&["c"]), "the alerts of c (resolved)"),
            (
                names(&["a", "b"]),
                names(&["c"]),
                "the alerts of a, b (firing) and c (resolved)",
            ),
        ];
        for (firing, resolved, want) in cases {
            assert_eq!(describe_post(&firing, &resolved), want);
        }
    }
}
