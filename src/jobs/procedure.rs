//! How a maintenance job changes production: one recorded step at a time.
//!
//! Every call to the outside is a step: saved in the history as it starts
//! (what is called, on what) and as it ends (the result, how long); in a
//! dry run it is saved as `skipped` with the exact call it would make, and
//! nothing is called. Waits poll with a timeout, sleeping between polls, so
//! a waiting job holds no thread and no database connection. A throttled
//! AWS call is retried with backoff.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{JobError, RunContext};
use crate::adapters::aws::{AwsError, retry_throttled};
use crate::adapters::kube::KubeError;
use crate::model::StepStatus;

/// Why a step failed. Its text is what the step's record and the run's
/// error say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// What the job found the service in, that it cannot go on from (a
    /// failed rollout, a snapshot gone, a refusal).
    #[error("{0}")]
    Found(String),
    #[error("{what} did not happen within {} (last seen: {last})", humantime::format_duration(*.limit))]
    NotWithin {
        what: String,
        limit: Duration,
        last: String,
    },
    #[error("cancelled while waiting for {what}")]
    Cancelled { what: String },
    /// A failure, with what it prevented first.
    #[error("{context}: {source}")]
    Context {
        context: String,
        source: Box<StepError>,
    },
}

impl StepError {
    pub fn found(why: impl Into<String>) -> Self {
        StepError::Found(why.into())
    }

    /// This failure, said as the cause of `context`.
    pub fn context(self, context: impl Into<String>) -> Self {
        StepError::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

/// A probe's answer to [`wait_for`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll<T> {
    Done(T),
    /// Not yet, with how far it got (logged when it changes).
    Waiting(String),
}

/// What a step reports when it ends well: a one-line detail and an
/// optional payload for the history.
pub struct Done<T> {
    pub value: T,
    pub detail: String,
    pub payload: Option<serde_json::Value>,
}

impl<T> Done<T> {
    pub fn new(value: T, detail: impl Into<String>) -> Self {
        Done {
            value,
            detail: detail.into(),
            payload: None,
        }
    }

    pub fn payload(mut self, p: serde_json::Value) -> Self {
        self.payload = Some(p);
        self
    }
}

/// Runs one step: `call` says exactly what is called (and is all a dry run
/// does). `None` in a dry run. A failure names the step and the cause; a
/// cancel mid-step says the call may have happened.
pub async fn step<T, F, Fut>(
    ctx: &RunContext,
    name: &str,
    target: &str,
    call: &str,
    f: F,
) -> Result<Option<T>, JobError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Done<T>, StepError>>,
{
    if ctx.dry_run {
        let h = ctx
            .steps
            .start(name, target, &format!("dry run: would call {call}"))
            .await?;
        h.end(
            StepStatus::Skipped,
            &format!("dry run: would call {call}"),
            None,
        )
        .await?;
        return Ok(None);
    }
    let h = ctx.steps.start(name, target, call).await?;
    let r = tokio::select! {
        r = f() => r,
        _ = ctx.cancel.cancelled() => {
            h.end(
                StepStatus::Failed,
                "cancelled during the step; the call may have reached the service",
                None,
            )
            .await?;
            return Err(JobError::Cancelled);
        }
    };
    match r {
        Ok(done) => {
            h.end(StepStatus::Succeeded, &done.detail, done.payload)
                .await?;
            Ok(Some(done.value))
        }
        Err(why) => {
            h.end(StepStatus::Failed, &why.to_string(), None).await?;
            Err(JobError::Failed(format!(
                "step `{name}` on {target}: {why}"
            )))
        }
    }
}

/// A clean-up step: it runs even when the run is being cancelled (a
/// restored throwaway instance must not be left behind), bounded by
/// `limit`. Recorded like any step; skipped in a dry run.
pub async fn cleanup<F, Fut>(
    ctx: &RunContext,
    name: &str,
    target: &str,
    call: &str,
    limit: Duration,
    f: F,
) -> Result<(), JobError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<String, StepError>>,
{
    if ctx.dry_run {
        ctx.steps
            .skipped(name, target, &format!("dry run: would call {call}"))
            .await?;
        return Ok(());
    }
    let h = ctx.steps.start(name, target, call).await?;
    match tokio::time::timeout(limit, f()).await {
        Ok(Ok(detail)) => {
            h.end(StepStatus::Succeeded, &detail, None).await?;
            Ok(())
        }
        Ok(Err(why)) => {
            h.end(StepStatus::Failed, &why.to_string(), None).await?;
            Err(JobError::Failed(format!(
                "clean-up step `{name}` on {target}: {why}"
            )))
        }
        Err(_) => {
            let why = format!("no answer within {}", humantime::format_duration(limit));
            h.end(StepStatus::Failed, &why, None).await?;
            Err(JobError::Failed(format!(
                "clean-up step `{name}` on {target}: {why}"
            )))
        }
    }
}

/// Polls `probe` every `every` until it says [`Poll::Done`], fails, or
/// `limit` passes; a [`Poll::Waiting`] progress is logged when it changes.
pub async fn wait_for<T, F, Fut>(
    ctx: &RunContext,
    what: &str,
    every: Duration,
    limit: Duration,
    mut probe: F,
) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, StepError>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut said = String::new();
    loop {
        match probe().await? {
            Poll::Done(done) => return Ok(done),
            Poll::Waiting(progress) => {
                if progress != said {
                    ctx.log.info(&format!("waiting for {what}: {progress}"));
                    said = progress;
                }
            }
        }
        if tokio::time::Instant::now() + every > deadline {
            return Err(StepError::NotWithin {
                what: what.to_string(),
                limit,
                last: said,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = ctx.cancel.cancelled() => return Err(StepError::Cancelled { what: what.to_string() }),
        }
    }
}

/// Retries an AWS call that was throttled ([`retry_throttled`]); a
/// cancel of the run ends a wait for a retry at once.
pub async fn aws<T, F, Fut>(
    base: Duration,
    cancel: &CancellationToken,
    call: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    retry_throttled(base, Some(cancel), call).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::aws::{AWS_RETRIES, AwsErrorKind};
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn throttles_are_retried_and_other_errors_are_not() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, AwsError> = aws(
            Duration::from_millis(1),
            &CancellationToken::new(),
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    Err(AwsError {
                        kind: AwsErrorKind::Throttled,
                        message: "Rate exceeded".into(),
                    })
                } else {
                    Ok(n)
                }
            },
        )
        .await;
        assert_eq!(r.unwrap(), 2);
        let calls = AtomicU32::new(0);
        let r: Result<(), AwsError> = aws(
            Duration::from_millis(1),
            &CancellationToken::new(),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(AwsError {
                    kind: AwsErrorKind::NotFound,
                    message: "no such".into(),
                })
            },
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    fn throttled() -> AwsError {
        AwsError {
            kind: AwsErrorKind::Throttled,
            message: "Rate exceeded".into(),
        }
    }

    // Four tries in all, the waits between them about 1, 2 and 4 s: with
    // time paused, the elapsed time is exactly the waits.
    #[tokio::test(start_paused = true)]
    async fn a_throttle_is_tried_four_times_with_growing_waits() {
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<(), AwsError> = aws(
            Duration::from_secs(1),
            &CancellationToken::new(),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(throttled())
            },
        )
        .await;
        assert_eq!(r, Err(throttled()));
        assert_eq!(calls.load(Ordering::SeqCst), AWS_RETRIES + 1);
        let waited = start.elapsed();
        assert!(
            waited <= Duration::from_secs(7) && waited >= Duration::from_millis(5250),
            "{waited:?}"
        );
    }

    // Cancelled while waiting to retry: the throttle comes back at once, and
    // no further call is made (a wait that ignored the cancel would let the
    // paused clock run on and call again).
    #[tokio::test(start_paused = true)]
    async fn a_cancel_ends_the_wait_for_a_retry() {
        let cancel = CancellationToken::new();
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<(), AwsError> = aws(Duration::from_secs(60), &cancel, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            cancel.cancel();
            Err(throttled())
        })
        .await;
        assert_eq!(r, Err(throttled()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
