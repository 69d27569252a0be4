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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::secret::Redactor;
    use crate::store::{NewRun, RunStatus, Trigger};

    const DEADLINE: Duration = Duration::from_secs(10);

    async fn store_with_a_run() -> (tempfile::TempDir, Arc<dyn HistoryStore>, RunId) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("history.db").display());
        let store = crate::store::open(&url)
            .await
            .expect("open the SQLite store");
        let run = NewRun {
            job: "nightly".into(),
            trigger: Trigger::Manual,
            triggered_by: "test".into(),
            scheduled_for: None,
            started_at: SystemClock.now(),
            status: RunStatus::Running,
            attempt: 1,
            error: None,
            dry_run: false,
            owner: "test:1:1".into(),
            retry_of: None,
        };
        let id = store.insert_run(&run).await.unwrap().expect("claimed");
        (dir, store, id)
    }

    fn beat(
        store: &Arc<dyn HistoryStore>,
        id: RunId,
        log: &RunLog,
        stop: &Stop,
        done: &CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(heartbeat_loop(
            store.clone(),
            Arc::new(SystemClock),
            id,
            Duration::from_millis(20),
            log.clone(),
            stop.clone(),
            done.clone(),
        ))
    }

    #[tokio::test]
    async fn a_cancel_asked_through_the_store_stops_the_attempt() {
        let (_dir, store, id) = store_with_a_run().await;
        assert!(
            store.request_cancel(id).await.unwrap(),
            "cancel not recorded"
        );
        let (log, stop, done) = (
            RunLog::new(4096, Redactor::default()),
            Stop::new(),
            CancellationToken::new(),
        );
        let task = beat(&store, id, &log, &stop, &done);
        tokio::time::timeout(DEADLINE, stop.cancelled())
            .await
            .expect("the heartbeat did not stop the attempt within 10 s of a cancel in the store");
        assert_eq!(stop.reason(), CANCEL_ASKED);
        assert!(
            log.snapshot()
                .text
                .contains("cancel requested through the history store"),
            "{}",
            log.snapshot().text
        );
        done.cancel();
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("the heartbeat did not end once done")
            .unwrap();
    }

    #[tokio::test]
    async fn a_beat_saves_the_log_so_far_and_done_ends_the_loop() {
        let (_dir, store, id) = store_with_a_run().await;
        let (log, stop, done) = (
            RunLog::new(4096, Redactor::default()),
            Stop::new(),
            CancellationToken::new(),
        );
        log.info("copied 3 of 9 tables");
        let task = beat(&store, id, &log, &stop, &done);
        // Wait on the row: the log reaches it with the next beat.
        let saved = tokio::time::timeout(DEADLINE, async {
            loop {
                let run = store.get_run(id).await.unwrap().expect("the run");
                if run
                    .log
                    .as_deref()
                    .is_some_and(|l| l.contains("copied 3 of 9 tables"))
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(saved.is_ok(), "no beat saved the log within 10 s");
        assert!(
            !stop.is_cancelled(),
            "a beat with no cancel asked stopped the attempt"
        );
        done.cancel();
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("the heartbeat did not end once done")
            .unwrap();
    }
}
