//! Reaping: the runs whose owning process is gone marked `abandoned`, and
//! what a dead owner left running on this host stopped first.

use std::time::Duration;

use chrono::{DateTime, Utc};

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
                let reason = abandoned_reason(&run.owner, &self.identity.owner(), stopped);
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
        let since_alive = since_alive(self.clock.now(), run.heartbeat_at, self.heartbeat);
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

/// Why a run whose process is gone was marked `abandoned`, and what of it
/// was stopped.
fn abandoned_reason(owner: &str, by: &str, stopped: usize) -> String {
    format!(
        "abandoned: its process {owner} is gone (found by {by} at start-up){}",
        if stopped > 0 {
            format!("; stopped {stopped} process(es) it left running")
        } else {
            String::new()
        }
    )
}

/// Seconds since the owner was surely alive: its last heartbeat, less two
/// beats of slack. Negative when that is in the future.
fn since_alive(now: DateTime<Utc>, heartbeat_at: DateTime<Utc>, beat: Duration) -> f64 {
    (now - heartbeat_at).num_milliseconds() as f64 / 1000.0 - 2.0 * beat.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_says_whose_process_went_and_what_was_stopped() {
        assert_eq!(
            abandoned_reason("web-1:100:7", "web-1:200:9", 0),
            "abandoned: its process web-1:100:7 is gone (found by web-1:200:9 at start-up)"
        );
        assert_eq!(
            abandoned_reason("web-1:100:7", "web-1:200:9", 3),
            "abandoned: its process web-1:100:7 is gone (found by web-1:200:9 at start-up); \
             stopped 3 process(es) it left running"
        );
    }

    #[test]
    fn the_owner_was_alive_until_two_beats_before_its_last_heartbeat() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let beat = Duration::from_secs(5);
        let cases = [
            ("2026-01-01T09:01:00Z", 50.0),
            ("2026-01-01T09:00:10Z", 0.0),
            ("2026-01-01T09:00:02.500Z", -7.5),
        ];
        for (now, want) in cases {
            let got = since_alive(at(now), at("2026-01-01T09:00:00Z"), beat);
            assert!((got - want).abs() < 1e-9, "{now}: {got} want {want}");
        }
    }
}
