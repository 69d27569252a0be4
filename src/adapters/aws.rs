//! AWS behind two narrow traits named for what runbookd asks: "describe this
//! database instance and its automated snapshots", "when was this secret last
//! rotated". The real implementations use aws-sdk-rds and
//! aws-sdk-secretsmanager with the standard credential chain, `AWS_REGION`
//! and `AWS_ENDPOINT_URL`; tests use moto in server mode and fakes.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

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
    Timeout,
    Unreachable,
    Other,
}

impl std::fmt::Display for AwsErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AwsErrorKind::Auth => "auth",
            AwsErrorKind::NotFound => "not found",
            AwsErrorKind::Timeout => "timeout",
            AwsErrorKind::Unreachable => "unreachable",
            AwsErrorKind::Other => "AWS error",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DbInstance {
    pub id: String,
    pub status: String,
    pub latest_restorable_time: Option<DateTime<Utc>>,
    pub backup_retention_days: Option<i32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DbSnapshot {
    pub id: String,
    pub status: String,
    pub created: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecretInfo {
    pub name: String,
    pub last_rotated: Option<DateTime<Utc>>,
    pub last_changed: Option<DateTime<Utc>>,
    pub rotation_enabled: bool,
}

/// Where to reach AWS: a region to override the chain's, for one check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Target {
    pub region: Option<String>,
}

#[async_trait]
pub trait RdsApi: Send + Sync + std::fmt::Debug {
    async fn instance(&self, target: &Target, id: &str) -> Result<DbInstance, AwsError>;
    /// `SnapshotType=automated` snapshots of the instance.
    async fn automated_snapshots(
        &self,
        target: &Target,
        id: &str,
    ) -> Result<Vec<DbSnapshot>, AwsError>;
}

#[async_trait]
pub trait SecretsApi: Send + Sync + std::fmt::Debug {
    async fn describe(&self, target: &Target, id: &str) -> Result<SecretInfo, AwsError>;
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

impl Aws {
    /// A local AWS stand-in (moto) at `endpoint`, with dummy credentials,
    /// without touching the process environment.
    pub fn local(endpoint: &str) -> Self {
        Aws {
            configs: Mutex::default(),
            local_endpoint: Some(endpoint.to_string()),
        }
    }

    async fn config(&self, target: &Target) -> aws_config::SdkConfig {
        let mut configs = self.configs.lock().await;
        if let Some(c) = configs.get(target) {
            return c.clone();
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
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

fn time(t: Option<&aws_sdk_rds::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// Sorts an SDK error into what an operator acts on. Every AWS SDK crate
/// re-exports the same smithy `SdkError`, so this serves RDS and Secrets
/// Manager alike.
fn classify<E, R>(e: aws_sdk_rds::error::SdkError<E, R>) -> AwsError
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

#[async_trait]
impl RdsApi for Aws {
    async fn instance(&self, target: &Target, id: &str) -> Result<DbInstance, AwsError> {
        let client = aws_sdk_rds::Client::new(&self.config(target).await);
        let out = client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(classify)?;
        let i = out.db_instances().first().ok_or_else(|| AwsError {
            kind: AwsErrorKind::NotFound,
            message: format!("no DB instance `{id}`"),
        })?;
        Ok(DbInstance {
            id: i.db_instance_identifier().unwrap_or(id).to_string(),
            status: i.db_instance_status().unwrap_or("unknown").to_string(),
            latest_restorable_time: time(i.latest_restorable_time()),
            backup_retention_days: i.backup_retention_period(),
        })
    }

    async fn automated_snapshots(
        &self,
        target: &Target,
        id: &str,
    ) -> Result<Vec<DbSnapshot>, AwsError> {
        let client = aws_sdk_rds::Client::new(&self.config(target).await);
        let mut out = Vec::new();
        let mut pages = client
            .describe_db_snapshots()
            .db_instance_identifier(id)
            .snapshot_type("automated")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            for s in page.db_snapshots() {
                out.push(DbSnapshot {
                    id: s.db_snapshot_identifier().unwrap_or("").to_string(),
                    status: s.status().unwrap_or("unknown").to_string(),
                    created: time(s.snapshot_create_time()),
                });
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl SecretsApi for Aws {
    async fn describe(&self, target: &Target, id: &str) -> Result<SecretInfo, AwsError> {
        let client = aws_sdk_secretsmanager::Client::new(&self.config(target).await);
        let out = client
            .describe_secret()
            .secret_id(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(SecretInfo {
            name: out.name().unwrap_or(id).to_string(),
            last_rotated: time(out.last_rotated_date()),
            last_changed: time(out.last_changed_date()),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
        })
    }
}
