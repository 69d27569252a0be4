//! What a runner tells as runs go: [`RunEvent`]s on a broadcast channel
//! the daemon's metrics and the tests read.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::adapters::ping::PingSignal;
use crate::config::JobConfig;
use crate::model::CheckStatus;
use crate::store::{RunId, RunStatus, Trigger};

use super::Runner;

/// Published as runs start and end: the daemon's metrics count them and
/// tests wait on them instead of sleeping.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    Started {
        id: RunId,
        job: String,
        trigger: Trigger,
        scheduled_for: Option<DateTime<Utc>>,
        started_at: DateTime<Utc>,
    },
    /// An attempt ended, or a fire was recorded skipped (then with no
    /// `Started` before it: it started and ended in the same instant).
    Finished {
        id: RunId,
        job: String,
        /// As in the attempt's `Started`; a skipped fire's own.
        trigger: Trigger,
        status: RunStatus,
        attempt: u32,
        /// When it ended, and how long the attempt took.
        at: DateTime<Utc>,
        took: Duration,
        /// Its check results: name, status, number measured.
        checks: Vec<(String, CheckStatus, Option<f64>)>,
    },
    /// A run is over: its last attempt ended, no retry follows. Retries and
    /// chained runs are their own.
    Ended {
        id: RunId,
        job: String,
        status: RunStatus,
        dry_run: bool,
        at: DateTime<Utc>,
    },
    /// A run's dead man's switch was pinged (in the background: never part
    /// of the run's outcome). `id` is the run's first attempt.
    Pinged {
        id: RunId,
        job: String,
        signal: PingSignal,
        outcome: CallOutcome,
        at: DateTime<Utc>,
    },
    /// Alerts were posted to Alertmanager (in the background): the jobs
    /// the post carried firing and resolved.
    AlertsPosted {
        firing: Vec<String>,
        resolved: Vec<String>,
        outcome: CallOutcome,
        at: DateTime<Utc>,
    },
}

/// How a call to an outside watcher (Alertmanager, a dead man's switch)
/// went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    Sent,
    /// Refused, or not reached.
    Failed,
    TimedOut,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Sent => "sent",
            CallOutcome::Failed => "failed",
            CallOutcome::TimedOut => "timed_out",
        }
    }
}

impl Runner {
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }

    pub(super) fn skipped(&self, job: &JobConfig, trigger: Trigger, id: RunId, at: DateTime<Utc>) {
        let _ = self.events.send(RunEvent::Finished {
            id,
            job: job.name.clone(),
            trigger,
            status: RunStatus::Skipped,
            attempt: 1,
            at,
            took: Duration::ZERO,
            checks: Vec::new(),
        });
    }
}
