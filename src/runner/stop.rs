//! Stopping a run: a cancellation that keeps the first reason given, the
//! child an attempt stops by, and the push of a cancel to a run this
//! process owns.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::RunId;

use super::Runner;

/// How long a job may take to stop after it is cancelled before it is
/// dropped (which kills a command's process group).
pub const STOP_WAIT: Duration = Duration::from_secs(60);

/// Why a run stopped when someone asked through the store.
pub const CANCEL_ASKED: &str =
    "cancelled on request (runbookd cancel, or concurrency: replace on another replica)";

/// A cancellation with the reason recorded on the run.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    pub(super) token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Stop {
    pub fn new() -> Self {
        Stop::default()
    }

    /// The first reason wins: it is what actually stopped the run.
    pub fn cancel(&self, reason: impl Into<String>) {
        let mut r = self.reason.lock().expect("stop reason lock");
        if r.is_none() {
            *r = Some(reason.into());
        }
        drop(r);
        self.token.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    pub(super) fn reason(&self) -> String {
        self.reason
            .lock()
            .expect("stop reason lock")
            .clone()
            .unwrap_or_else(|| "cancelled".to_string())
    }

    pub(super) fn child(&self) -> Stop {
        Stop {
            token: self.token.child_token(),
            reason: Arc::new(Mutex::new(None)),
        }
    }
}

impl Stop {
    /// The outer reason if the outer token stopped us, else our own.
    pub(super) fn reason_or(&self, inner: &Stop) -> String {
        if self.is_cancelled() {
            self.reason()
        } else {
            inner.reason()
        }
    }
}

impl Runner {
    /// Stops a run at once if this process runs it (a cancel the store
    /// pushed); false if it is not here. Runs elsewhere, or a push that was
    /// lost, see the request at their next heartbeat.
    pub fn cancel_local(&self, id: RunId, reason: &str) -> bool {
        let stop = self
            .local
            .lock()
            .expect("local runs lock")
            .get(&id)
            .cloned();
        match stop {
            Some(stop) => {
                tracing::info!(
                    run = id,
                    "cancel requested through the history store (pushed)"
                );
                stop.cancel(reason);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins() {
        let stop = Stop::new();
        assert!(!stop.is_cancelled());
        stop.cancel("timed out after 5s");
        stop.cancel(CANCEL_ASKED);
        assert!(stop.is_cancelled());
        assert_eq!(stop.reason(), "timed out after 5s");
    }

    #[test]
    fn a_stop_with_no_reason_says_cancelled() {
        let stop = Stop::new();
        assert_eq!(stop.reason(), "cancelled");
        // A clone is the same stop: cancelling one cancels the other.
        stop.clone().cancel("by a clone");
        assert!(stop.is_cancelled());
        assert_eq!(stop.reason(), "by a clone");
    }

    #[test]
    fn a_child_stops_with_its_parent_never_the_other_way() {
        let parent = Stop::new();
        let child = parent.child();
        child.cancel("timed out");
        assert!(child.is_cancelled());
        assert!(!parent.is_cancelled(), "a child's stop reached its parent");

        let child = parent.child();
        parent.cancel("replaced");
        assert!(
            child.is_cancelled(),
            "the parent's stop did not reach its child"
        );
        // The child keeps no reason of its own: the parent's is asked for.
        assert_eq!(child.reason(), "cancelled");
        assert_eq!(parent.reason_or(&child), "replaced");
    }

    #[test]
    fn reason_or_names_whoever_stopped_the_attempt() {
        let outer = Stop::new();
        let inner = outer.child();
        inner.cancel("timed out after 1s");
        assert_eq!(outer.reason_or(&inner), "timed out after 1s");
        outer.cancel(CANCEL_ASKED);
        assert_eq!(outer.reason_or(&inner), CANCEL_ASKED);
    }

    #[tokio::test]
    async fn cancelled_returns_once_cancelled() {
        let stop = Stop::new();
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
        assert!(!waiter.is_finished());
        stop.cancel("now");
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("cancelled() did not return within 5 s of the cancel")
            .expect("waiter panicked");
    }
}
