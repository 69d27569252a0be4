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

use super::{JobError, RunContext};
use crate::adapters::aws::{AwsError, AwsErrorKind};
use crate::model::StepStatus;

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
    Fut: Future<Output = Result<Done<T>, String>>,
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
            h.end(StepStatus::Failed, &why, None).await?;
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
    Fut: Future<Output = Result<String, String>>,
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
            h.end(StepStatus::Failed, &why, None).await?;
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

/// Polls `probe` every `every` until it says done (`Ok(Some)`), fails, or
/// `limit` passes. `Ok(None)` from the probe means "not yet"; `progress`
/// is logged when it changes.
pub async fn wait_for<T, F, Fut>(
    ctx: &RunContext,
    what: &str,
    every: Duration,
    limit: Duration,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut said = String::new();
    loop {
        match probe().await? {
            Ok(done) => return Ok(done),
            Err(progress) => {
                if progress != said {
                    ctx.log.info(&format!("waiting for {what}: {progress}"));
                    said = progress;
                }
            }
        }
        if tokio::time::Instant::now() + every > deadline {
            return Err(format!(
                "{what} did not happen within {} (last seen: {said})",
                humantime::format_duration(limit)
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = ctx.cancel.cancelled() => return Err(format!("cancelled while waiting for {what}")),
        }
    }
}

/// Retries an AWS call that was throttled, after 1 s, 2 s and 4 s (scaled
/// by `base`); any other error, or a fourth throttle, is returned.
pub async fn aws<T, F, Fut>(base: Duration, mut call: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let mut wait = base;
    for _ in 0..3 {
        match call().await {
            Err(e) if e.kind == AwsErrorKind::Throttled => {
                tracing::warn!("AWS throttled the call, retrying in {wait:?}: {e}");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    call().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn throttles_are_retried_and_other_errors_are_not() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, AwsError> = aws(Duration::from_millis(1), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                Err(AwsError {
                    kind: AwsErrorKind::Throttled,
                    message: "Rate exceeded".into(),
                })
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        let calls = AtomicU32::new(0);
        let r: Result<(), AwsError> = aws(Duration::from_millis(1), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(AwsError {
                kind: AwsErrorKind::NotFound,
                message: "no such".into(),
            })
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
