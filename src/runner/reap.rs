//! Reaping: the runs whose owning process is gone marked `abandoned`, and
//! what a dead owner left running on this host stopped first.

use std::time::Duration;

use crate::store::{RunId, StoreError};

use super::Runner;

impl Runner {
    /// Marks `abandoned` the runs whose process is gone: on this host at
    /// once, elsewhere once their heartbeat is older than `stale_after`. A
    /// dead owner's job processes on this host are stopped first, so a
    /// `forbid` job never runs beside its orphan.
    pub async fn reap(&self, stale_after: Duration) -> Result<Vec<RunId>, StoreError> {
        let store = self.store.as_ref();
        let now = self.clock.now();
        let mut reaped = Vec::new();
        for run in store.running(None).await? {
            if self
                .identity
                .owner_is_dead(&run.owner, std::path::Path::new("/proc"))
            {
                let stopped = self.stop_orphans(&run).await;
                let reason = format!(
                    "abandoned: its process {} is gone (found by {} at start-up){}",
                    run.owner,
                    self.identity.owner(),
                    if stopped > 0 {
                        format!("; stopped {stopped} process(es) it left running")
                    } else {
                        String::new()
                    }
                );
                if store.abandon(run.id, now, &reason).await? {
                    reaped.push(run.id);
                }
            }
        }
        let stale_before = now - chrono::Duration::from_std(stale_after).unwrap_or_default();
        reaped.extend(store.abandon_stale(stale_before, now).await?);
        for id in &reaped {
            tracing::warn!(run = id, "marked run {id} abandoned: its process stopped");
        }
        Ok(reaped)
    }

    /// Stops what a dead owner's run left running on this host: members of
    /// its recorded process groups started while the owner still lived.
    async fn stop_orphans(&self, run: &crate::model::Run) -> usize {
        let groups = match self.store.processes(run.id).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(
                    run = run.id,
                    "cannot read the process groups of run {}: {e}",
                    run.id
                );
                return 0;
            }
        };
        // The owner lived until its last heartbeat, give or take one beat.
        let since_alive = (self.clock.now() - run.heartbeat_at).num_milliseconds() as f64 / 1000.0
            - 2.0 * self.heartbeat.as_secs_f64();
        let bound = crate::process::ticks_now().map(|t| {
            t.saturating_sub(
                (since_alive.max(0.0) * crate::process::ticks_per_second() as f64) as u64,
            )
        });
        // First by the tag, which names exactly this run's processes, also
        // those started before the group was recorded (the owner died in
        // between); then what is left in the recorded groups (a child
        // started with a cleared environment).
        let mut stopped = crate::process::stop_tagged(
            &crate::process::run_tag(&run.owner, run.id),
            Duration::from_secs(2),
        )
        .await;
        for (host, group) in groups {
            if host == self.identity.host {
                stopped += crate::process::stop_group(group, bound, Duration::from_secs(2)).await;
            }
        }
        if stopped > 0 {
            tracing::warn!(
                run = run.id,
                "stopped {stopped} process(es) of run {} left by {}",
                run.id,
                run.owner
            );
        }
        stopped
    }
}
