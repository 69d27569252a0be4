//! AWS behind two narrow traits named for what runbookd does with it:
//! [`RdsApi`] (instances, snapshots, restores) and [`SecretsApi`] (a secret's
//! age and its rotation). The real implementations use aws-sdk-rds and
//! aws-sdk-secretsmanager with the standard credential chain, `AWS_REGION`
//! and `AWS_ENDPOINT_URL`; tests use moto in server mode and fakes. This
//! module holds what both share: configuration, the HTTPS client, and how
//! an SDK error becomes an [`AwsError`].

mod rds;
mod secrets;

pub use rds::{DbInstance, DbSnapshot, RdsApi, RdsEvent, exact, owned_by};
pub use secrets::{SecretInfo, SecretVersion, SecretsApi};

use std::collections::HashMap;
use std::time::Duration;

use std::future::Future;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::retry::{self, Backoff};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct AwsError {
    pub kind: AwsErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    Auth,
    NotFound,
    /// Too many requests: worth retrying after a pause.
    Throttled,
    /// Over a service quota (e.g. manual snapshots): retrying will not help.
    Quota,
    Timeout,
    Unreachable,
    Other,
}

impl std::fmt::Display for AwsErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AwsErrorKind::Auth => "auth",
            AwsErrorKind::NotFound => "not found",
            AwsErrorKind::Throttled => "throttled",
            AwsErrorKind::Quota => "quota exceeded",
            AwsErrorKind::Timeout => "timeout",
            AwsErrorKind::Unreachable => "unreachable",
            AwsErrorKind::Other => "AWS error",
        })
    }
}

/// Where to reach AWS: a region to override the chain's, for one check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Target {
    pub region: Option<String>,
}

/// The real AWS, configured once on first use: loading the credential chain
/// can probe instance metadata, which only checks that use AWS should pay for.
#[derive(Debug, Default)]
pub struct Aws {
    configs: Mutex<HashMap<Target, aws_config::SdkConfig>>,
    /// Set only by [`Aws::local`].
    local_endpoint: Option<String>,
}

/// Per-call limits inside the check's own timeout, so an unreachable
/// endpoint is reported as such rather than as the check's timeout.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(8);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Throttled AWS calls are retried this many times by
/// [`retry_throttled`], so four tries in all. The SDK itself tries each
/// call once (`RetryConfig` below): with its default of three attempts
/// under ours, a throttled call was tried up to twelve times, with waits no
/// one chose. One layer decides, with jitter and a cancel.
pub const AWS_RETRIES: u32 = 3;

/// Retries a call that AWS throttled, after about 1 s, 2 s and 4 s (scaled
/// by `base`, each jittered shorter, see [`crate::retry`]); any other error,
/// or a fourth throttle, is returned. Only throttles: the request was
/// refused before it did anything, so even a call that changes something
/// is safe to repeat. A `cancel` during a wait returns the last throttle at
/// once.
pub async fn retry_throttled<T, F, Fut>(
    base: Duration,
    cancel: Option<&CancellationToken>,
    mut call: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let waits = Backoff::doubling(base);
    for n in 1..=AWS_RETRIES {
        match call().await {
            Err(e) if e.kind == AwsErrorKind::Throttled => {
                let wait = waits.delay(n);
                tracing::warn!("AWS throttled the call, retrying in {wait:?}: {e}");
                if retry::wait(wait, cancel).await.is_err() {
                    return Err(e);
                }
            }
            other => return other,
        }
    }
    call().await
}

impl Aws {
    /// A local AWS stand-in (moto) at `endpoint`, with dummy credentials,
    /// without touching the process environment.
    pub fn local(endpoint: &str) -> Self {
        Aws {
            configs: Mutex::default(),
            local_endpoint: Some(endpoint.to_string()),
        }
    }

    pub(super) async fn config(&self, target: &Target) -> aws_config::SdkConfig {
        let mut configs = self.configs.lock().await;
        if let Some(c) = configs.get(target) {
            return c.clone();
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            // One try per SDK call: throttles are retried by
            // `retry_throttled` alone, a known number of times. Other
            // failures (a 5xx, a dropped connection) are the step's or the
            // check's failure, retried by the job's own `retries`.
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(OPERATION_TIMEOUT)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            );
        if let Some(r) = &target.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(endpoint) = &self.local_endpoint {
            loader = loader.endpoint_url(endpoint).credentials_provider(
                aws_sdk_rds::config::Credentials::new(
                    "testing",
                    "testing",
                    None,
                    None,
                    "runbookd-local",
                ),
            );
            if target.region.is_none() {
                loader = loader.region(aws_config::Region::new("us-east-1"));
            }
        }
        let c = loader.load().await;
        configs.insert(target.clone(), c.clone());
        c
    }
}

/// The SDK's HTTPS client over rustls with ring, the process's one crypto
/// provider (the SDK's default client would compile aws-lc). It serves the
/// services and the credential providers alike.
pub fn https_client() -> aws_sdk_rds::config::SharedHttpClient {
    static CLIENT: std::sync::OnceLock<aws_sdk_rds::config::SharedHttpClient> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            use aws_smithy_http_client::{Builder, tls};
            Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https()
        })
        .clone()
}

/// The error and its causes, each once, without the SDK's debug dump of the
/// raw response.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(c) = cur {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = c.source();
    }
    parts.join(": ")
}

pub(super) fn time_of(t: Option<&aws_sdk_rds::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// Sorts an SDK error into what an operator acts on. Every AWS SDK crate
/// re-exports the same smithy `SdkError`, so this serves RDS and Secrets
/// Manager alike.
pub(super) fn classify<E, R>(e: aws_sdk_rds::error::SdkError<E, R>) -> AwsError
where
    E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_rds::error::SdkError;
    let message = chain(&e);
    let missing = ["loading credentials", "no credentials found in chain"]
        .iter()
        .find_map(|m| message.find(m).map(|at| at + m.len()));
    if let Some(at) = missing {
        // The chain's own words are "dispatch failure" and an IMDS error;
        // what the operator needs is that no credentials were found.
        let cause = message[at..]
            .trim_start_matches([':', ' ', '.'])
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return AwsError {
            kind: AwsErrorKind::Auth,
            message: format!(
                "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or give the pod an IAM role through IRSA); the last provider tried said: {cause}"
            ),
        };
    }
    let kind = match &e {
        SdkError::TimeoutError(_) => AwsErrorKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => AwsErrorKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_io() => AwsErrorKind::Unreachable,
        SdkError::DispatchFailure(_) => AwsErrorKind::Unreachable,
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("");
            if code.contains("NotFound") {
                AwsErrorKind::NotFound
            } else if code.contains("Throttl")
                || ["RequestLimitExceeded", "TooManyRequestsException"].contains(&code)
            {
                AwsErrorKind::Throttled
            } else if code.contains("QuotaExceeded") || code.contains("LimitExceeded") {
                AwsErrorKind::Quota
            } else if [
                "AccessDenied",
                "AccessDeniedException",
                "InvalidClientTokenId",
                "UnrecognizedClientException",
                "ExpiredToken",
                "ExpiredTokenException",
                "SignatureDoesNotMatch",
                "AuthFailure",
            ]
            .contains(&code)
            {
                AwsErrorKind::Auth
            } else {
                AwsErrorKind::Other
            }
        }
        _ if message.contains("credentials") => AwsErrorKind::Auth,
        _ => AwsErrorKind::Other,
    };
    AwsError { kind, message }
}
