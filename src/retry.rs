//! How runbookd waits between tries of something that failed: one backoff
//! (doubling from a first wait up to a cap, each wait jittered) and one wait
//! that a cancel ends at once. Every retry loop waits through here (a job's
//! retries, a procedure's throttled AWS call, a mail's tries, the SQLite
//! store's lock races, recording a run's end), so none retries in lockstep
//! with a peer that failed at the same instant, and none outlives a cancel.
//!
//! Jitter only shortens a wait, by up to a quarter: the configured waits
//! stay ceilings ("never more than `max_backoff`"), and tries that failed
//! together (a throttle, a lock race between two processes) come back
//! spread over that quarter instead of together.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The largest part of a wait that jitter takes off.
const JITTER: f64 = 0.25;

/// Waits that double from `first`, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Backoff { first, max }
    }

    /// Doubling without a cap, for loops whose number of tries bounds it.
    pub const fn doubling(first: Duration) -> Self {
        Backoff {
            first,
            max: Duration::MAX,
        }
    }

    /// The longest wait before retry `retry` (1 is the first retry):
    /// `first` doubled `retry - 1` times, never more than `max`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(30);
        self.first.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// The wait before retry `retry`: its [`ceiling`](Self::ceiling) less
    /// a random part of up to a quarter of it.
    pub fn delay(&self, retry: u32) -> Duration {
        jittered(self.ceiling(retry), random_fraction())
    }
}

/// `ceiling` less `fraction` (0 to 1) of the jitter's share of it.
fn jittered(ceiling: Duration, fraction: f64) -> Duration {
    ceiling.saturating_sub(ceiling.mul_f64(JITTER * fraction.clamp(0.0, 1.0)))
}

/// A uniform number in 0..=1 from ring's CSPRNG (already the process's
/// randomness for secrets; a retry needs no more than spread, but this
/// costs no new crate).
fn random_fraction() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // The OS source failing is not worth failing a retry over: the
        // clock's nanoseconds spread tries well enough.
        b = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            .to_le_bytes();
    }
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
}

/// A wait ended by a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled while waiting to retry")]
pub struct Cancelled;

/// Waits `d`, or until `cancel` fires: a cancelled wait (or one begun
/// already cancelled) returns at once.
pub async fn wait(d: Duration, cancel: Option<&CancellationToken>) -> Result<(), Cancelled> {
    match cancel {
        None => {
            tokio::time::sleep(d).await;
            Ok(())
        }
        Some(c) => tokio::select! {
            biased;
            _ = c.cancelled() => Err(Cancelled),
            _ = tokio::time::sleep(d) => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn ceilings_double_from_the_first_wait_up_to_the_cap() {
        let cases = [
            (Backoff::new(S(1), S(10)), 0, S(1)),
            (Backoff::new(S(1), S(10)), 1, S(1)),
            (Backoff::new(S(1), S(10)), 2, S(2)),
            (Backoff::new(S(1), S(10)), 3, S(4)),
            (Backoff::new(S(1), S(10)), 4, S(8)),
            (Backoff::new(S(1), S(10)), 5, S(10)),
            (Backoff::new(S(1), S(10)), 400, S(10)),
            (Backoff::new(MS(20), MS(500)), 5, MS(320)),
            (Backoff::new(MS(20), MS(500)), 6, MS(500)),
            (Backoff::doubling(S(2)), 3, S(8)),
            // Never overflows, however long it runs.
            (Backoff::doubling(S(2)), u32::MAX, S(2) * (1 << 30)),
        ];
        for (b, retry, want) in cases {
            assert_eq!(b.ceiling(retry), want, "{b:?} retry {retry}");
        }
    }

    #[test]
    fn jitter_takes_at_most_a_quarter_off() {
        let cases = [
            (S(4), 0.0, S(4)),
            (S(4), 0.5, MS(3500)),
            (S(4), 1.0, S(3)),
            (S(4), 7.0, S(3)),
            (S(4), -1.0, S(4)),
            (Duration::ZERO, 0.5, Duration::ZERO),
        ];
        for (ceiling, fraction, want) in cases {
            assert_eq!(jittered(ceiling, fraction), want, "{ceiling:?} {fraction}");
        }
    }

    #[test]
    fn delays_stay_within_their_bounds_grow_and_vary() {
        let b = Backoff::new(S(1), S(60));
        let mut before: Option<Duration> = None;
        for retry in 1..=9 {
            let ceiling = b.ceiling(retry);
            let samples: Vec<Duration> = (0..200).map(|_| b.delay(retry)).collect();
            for d in &samples {
                assert!(
                    *d <= ceiling && *d >= ceiling.mul_f64(1.0 - JITTER),
                    "retry {retry}: {d:?} outside {ceiling:?} less a quarter"
                );
            }
            let (low, high) = (
                *samples.iter().min().unwrap(),
                *samples.iter().max().unwrap(),
            );
            // Below the cap, every wait is longer than any wait before it.
            if let Some(longest) = before
                && ceiling < b.max
            {
                assert!(
                    low > longest,
                    "retry {retry}: {low:?} not above {longest:?}"
                );
            }
            before = Some(high);
            let mut distinct = samples.clone();
            distinct.sort();
            distinct.dedup();
            assert!(
                distinct.len() > 100,
                "retry {retry}: no jitter: {distinct:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_without_cancel_lasts_its_time() {
        let start = tokio::time::Instant::now();
        assert_eq!(wait(S(30), None).await, Ok(()));
        assert_eq!(start.elapsed(), S(30));
        let token = CancellationToken::new();
        assert_eq!(wait(S(5), Some(&token)).await, Ok(()));
        assert_eq!(start.elapsed(), S(35));
    }

    // With time paused, a wait that ignored its cancel would run the clock
    // on to its hour and return Ok.
    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_returns_at_once() {
        let token = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let waiting = tokio::spawn({
            let token = token.clone();
            async move { wait(S(3600), Some(&token)).await }
        });
        tokio::task::yield_now().await;
        token.cancel();
        assert_eq!(waiting.await.unwrap(), Err(Cancelled));
        assert!(start.elapsed() < S(1), "{:?}", start.elapsed());

        // Begun already cancelled: no wait at all, even for zero.
        let start = tokio::time::Instant::now();
        assert_eq!(wait(S(3600), Some(&token)).await, Err(Cancelled));
        assert_eq!(wait(Duration::ZERO, Some(&token)).await, Err(Cancelled));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
