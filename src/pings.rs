//! Dead man's switch pings: what a run tells the check its job's
//! `ping_url` names, and the `rid` that pairs a run's start and end.
//!
//! - A real run pings `/start` as it starts (its first attempt) and, after
//!   its last attempt, the URL itself when it succeeded or `/fail` when it
//!   failed or timed out.
//! - A cancelled run sends no end: a cancel is an operator's (or a
//!   `replace`'s) decision, not a verdict on the job, as for mail. The
//!   switch goes down if nothing succeeds within its grace time, which is
//!   what it is for. An abandoned run's process is gone and sends nothing
//!   either: the switch sees a start without an end.
//! - Dry runs and skipped fires ping nothing.
//! - Every ping has [`PING_TIMEOUT`] and goes in the background: a slow or
//!   down endpoint never fails or delays the job. A run's end is sent
//!   after its start has been answered or has timed out, so the service
//!   never sees them out of order.

use std::time::Duration;

use uuid::Uuid;

use crate::adapters::ping::PingSignal;
use crate::model::{RunId, RunStatus};

/// Per ping.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The namespace of runbookd's run UUIDs (itself a random UUID, fixed).
const RID_NAMESPACE: Uuid = Uuid::from_u128(0x9d5bb539_38c2_47e0_b895_b909f239a50e);

/// The `rid` of a run's pings: a v5 UUID (canonical lowercase, as
/// healthchecks.io requires) of the history store and the run's first
/// attempt, the same at its start and end and different for every run.
pub fn rid(store: &str, first: RunId) -> Uuid {
    v5(&RID_NAMESPACE, format!("{store}#run-{first}").as_bytes())
}

/// RFC 4122 §4.3 name-based UUID, SHA-1.
fn v5(namespace: &Uuid, name: &[u8]) -> Uuid {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(namespace.as_bytes());
    ctx.update(name);
    let digest = ctx.finish();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// The ping a run's final status sends, if any. Pure.
pub fn end_signal(status: RunStatus) -> Option<PingSignal> {
    match status {
        RunStatus::Succeeded => Some(PingSignal::Success),
        RunStatus::Failed | RunStatus::TimedOut => Some(PingSignal::Fail),
        RunStatus::Cancelled | RunStatus::Abandoned | RunStatus::Skipped | RunStatus::Running => {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v5_matches_the_rfc_reference() {
        // Python: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org").
        assert_eq!(
            v5(&Uuid::NAMESPACE_DNS, b"python.org").to_string(),
            "886313e1-3b8a-5372-9b90-0c9aee199e5d"
        );
    }

    #[test]
    fn a_runs_rid_is_a_canonical_v5_uuid_of_its_store_and_run() {
        let a = rid("postgres://app:[REDACTED]@db/runbookd", 42);
        let s = a.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(s, s.to_lowercase());
        assert_eq!(a.get_version_num(), 5);
        assert_eq!(a, rid("postgres://app:[REDACTED]@db/runbookd", 42));
        assert_ne!(a, rid("postgres://app:[REDACTED]@db/runbookd", 43));
        assert_ne!(a, rid("sqlite://runbookd.db", 42));
    }

    #[test]
    fn end_signals_table() {
        use RunStatus::*;
        let cases = [
            (Succeeded, Some(PingSignal::Success)),
            (Failed, Some(PingSignal::Fail)),
            (TimedOut, Some(PingSignal::Fail)),
            (Cancelled, None),
            (Abandoned, None),
            (Skipped, None),
        ];
        for (status, want) in cases {
            assert_eq!(end_signal(status), want, "{status}");
        }
    }
}
