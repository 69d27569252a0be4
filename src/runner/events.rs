//! What a runner tells as runs go: [`RunEvent`]s on a broadcast channel
//! the daemon's metrics and the tests read.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::adapters::ping::PingSignal;
use crate::config::JobConfig;
use crate::model::{CheckStatus, Record};
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
    /// A call that did not go: timed out, or refused or not reached.
    pub(super) fn failed(timed_out: bool) -> Self {
        if timed_out {
            CallOutcome::TimedOut
        } else {
            CallOutcome::Failed
        }
    }

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
        let _ = self.events.send(skipped(&job.name, trigger, id, at));
    }
}

/// A fire recorded `skipped`: one `Finished`, its first attempt, started
/// and ended in the same instant.
fn skipped(job: &str, trigger: Trigger, id: RunId, at: DateTime<Utc>) -> RunEvent {
    RunEvent::Finished {
        id,
        job: job.to_string(),
        trigger,
        status: RunStatus::Skipped,
        attempt: 1,
        at,
        took: Duration::ZERO,
        checks: Vec::new(),
    }
}

/// What a `Finished` event tells of an attempt's checks: name, status and
/// the number measured; steps are not told.
pub(super) fn checks_of(records: &[Record]) -> Vec<(String, CheckStatus, Option<f64>)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Check(c) => Some((
                c.check.clone(),
                c.status,
                c.value.as_ref().and_then(|v| v.number()),
            )),
            Record::Step(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CheckResult, Measured, Step, StepStatus};

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_skipped_fire_is_one_instant_finished_first_attempt() {
        let e = skipped("backup", Trigger::Catchup, 12, at());
        assert_eq!(
            e,
            RunEvent::Finished {
                id: 12,
                job: "backup".into(),
                trigger: Trigger::Catchup,
                status: RunStatus::Skipped,
                attempt: 1,
                at: at(),
                took: Duration::ZERO,
                checks: Vec::new(),
            }
        );
    }

    #[test]
    fn finished_tells_checks_with_their_numbers_and_no_steps() {
        let check = |name: &str, status, value| CheckResult {
            value,
            ..CheckResult::new(name, status, "why")
        };
        let records = vec![
            Record::Check(check(
                "disk",
                CheckStatus::Warn,
                Some(Measured::Number(91.5)),
            )),
            Record::Step(Step {
                position: 0,
                name: "create-snapshot".into(),
                target: "rds:db".into(),
                status: StepStatus::Succeeded,
                started_at: at(),
                finished_at: Some(at()),
                detail: "done".into(),
                payload: None,
            }),
            Record::Check(check(
                "version",
                CheckStatus::Pass,
                Some(Measured::Text("16.2".into())),
            )),
            Record::Check(check("reachable", CheckStatus::Error, None)),
        ];
        assert_eq!(
            checks_of(&records),
            vec![
                ("disk".to_string(), CheckStatus::Warn, Some(91.5)),
                ("version".to_string(), CheckStatus::Pass, None),
                ("reachable".to_string(), CheckStatus::Error, None),
            ]
        );
    }

    #[test]
    fn call_outcomes_name_themselves_and_failures_say_how() {
        let all = [
            CallOutcome::Sent,
            CallOutcome::Failed,
            CallOutcome::TimedOut,
        ];
        let words: Vec<&str> = all.iter().map(|o| o.as_str()).collect();
        assert_eq!(words, ["sent", "failed", "timed_out"]);
        assert_eq!(CallOutcome::failed(true), CallOutcome::TimedOut);
        assert_eq!(CallOutcome::failed(false), CallOutcome::Failed);
    }
}
