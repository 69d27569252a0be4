//! A running attempt's heartbeat: proof of life with the log so far, and
//! the cancel a peer asked for through the store.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::runlog::RunLog;
use crate::store::{HistoryStore, RunId};

use super::{CANCEL_ASKED, Stop};

pub(super) async fn heartbeat_loop(
    store: Arc<dyn HistoryStore>,
    clock: Arc<dyn Clock>,
    id: RunId,
    every: Duration,
    log: RunLog,
    stop: Stop,
    done: CancellationToken,
) {
    let mut saved_version = u64::MAX;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = done.cancelled() => return,
        }
        let version = log.version();
        let snapshot = (version != saved_version).then(|| log.snapshot());
        match store.heartbeat(id, clock.now(), snapshot.as_ref()).await {
            Ok(cancel_requested) => {
                saved_version = version;
                if cancel_requested && !stop.is_cancelled() {
                    log.info("cancel requested through the history store");
                    stop.cancel(CANCEL_ASKED);
                }
            }
            Err(e) => tracing::warn!(run = id, "heartbeat failed: {e}"),
        }
    }
}
