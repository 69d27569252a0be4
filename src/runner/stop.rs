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
