//! Secrets Manager as runbookd uses it: a secret's age, and the steps of
//! a rotation (a pending version, then the move of `AWSCURRENT`). The value
//! itself only ever goes in; runbookd never reads a secret back.
//!
//! A secret is named exactly: an empty id is refused before any call, and
//! the secret described must be the one asked for (by name, full ARN or
//! partial ARN), never another.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Aws, AwsError, AwsErrorKind, Target, classify, time_of};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecretInfo {
    pub name: String,
    pub last_rotated: Option<DateTime<Utc>>,
    pub last_changed: Option<DateTime<Utc>>,
    pub rotation_enabled: bool,
    /// Every version with a staging label.
    pub versions: Vec<SecretVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretVersion {
    pub id: String,
    pub stages: Vec<String>,
}

/// Whether the secret with `name` and `arn` is the one `id` names: its
/// name, its ARN, or its ARN without the six-character suffix AWS adds (a
/// partial ARN).
pub fn names_secret(id: &str, name: &str, arn: &str) -> bool {
    !id.is_empty()
        && (name == id
            || arn == id
            || (id.starts_with("arn:")
                && arn
                    .strip_prefix(id)
                    .is_some_and(|rest| rest.starts_with('-') && rest.len() == 7)))
}

impl SecretInfo {
    /// The version holding `stage` (`AWSCURRENT`, `AWSPENDING`, …).
    pub fn version_with(&self, stage: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == stage))
            .map(|v| v.id.as_str())
    }
}

#[async_trait]
pub trait SecretsApi: Send + Sync + std::fmt::Debug {
    async fn describe(&self, target: &Target, id: &str) -> Result<SecretInfo, AwsError>;

    /// `PutSecretValue` staged `AWSPENDING`, idempotent by `token` (the
    /// `ClientRequestToken`, a UUID). Returns the version id.
    async fn put_pending(
        &self,
        target: &Target,
        id: &str,
        token: &str,
        value: &Secret,
    ) -> Result<String, AwsError> {
        let _ = (target, id, token, value);
        Err(unsupported("write a secret version"))
    }

    /// Moves `stage` to `to` (from `from`, when it is on another version);
    /// with `to: None`, only removes it from `from`.
    async fn move_stage(
        &self,
        target: &Target,
        id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), AwsError> {
        let _ = (target, id, stage, to, from);
        Err(unsupported("move a staging label"))
    }
}

fn unsupported(what: &str) -> AwsError {
    AwsError {
        kind: AwsErrorKind::Other,
        message: format!("this Secrets Manager client cannot {what}"),
    }
}

impl Aws {
    async fn secrets(&self, target: &Target) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.config(target).await)
    }
}

#[async_trait]
impl SecretsApi for Aws {
    async fn describe(&self, target: &Target, id: &str) -> Result<SecretInfo, AwsError> {
        super::exact("secret", id)?;
        let out = self
            .secrets(target)
            .await
            .describe_secret()
            .secret_id(id)
            .send()
            .await
            .map_err(classify)?;
        let mut versions: Vec<SecretVersion> = out
            .version_ids_to_stages()
            .map(|m| {
                m.iter()
                    .map(|(id, stages)| SecretVersion {
                        id: id.clone(),
                        stages: stages.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        versions.sort_by(|a, b| a.id.cmp(&b.id));
        let info = SecretInfo {
            name: out.name().unwrap_or("").to_string(),
            last_rotated: time_of(out.last_rotated_date()),
            last_changed: time_of(out.last_changed_date()),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            versions,
        };
        if !names_secret(id, &info.name, out.arn().unwrap_or("")) {
            return Err(AwsError {
                kind: AwsErrorKind::Other,
                message: format!(
                    "asked for secret `{id}`, Secrets Manager answered with `{}`; nothing is judged from it",
                    info.name
                ),
            });
        }
        Ok(info)
    }

    async fn put_pending(
        &self,
        target: &Target,
        id: &str,
        token: &str,
        value: &Secret,
    ) -> Result<String, AwsError> {
        super::exact("secret", id)?;
        let out = self
            .secrets(target)
            .await
            .put_secret_value()
            .secret_id(id)
            .client_request_token(token)
            .secret_string(value.expose())
            .version_stages("AWSPENDING")
            .send()
            .await
            .map_err(classify)?;
        out.version_id()
            .map(str::to_string)
            .ok_or_else(|| AwsError {
                kind: AwsErrorKind::Other,
                message: format!("PutSecretValue on {id} returned no version id"),
            })
    }

    async fn move_stage(
        &self,
        target: &Target,
        id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), AwsError> {
        super::exact("secret", id)?;
        self.secrets(target)
            .await
            .update_secret_version_stage()
            .secret_id(id)
            .version_stage(stage)
            .set_move_to_version_id(to.map(str::to_string))
            .set_remove_from_version_id(from.map(str::to_string))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_the_one_named_by_name_or_arn() {
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:/app/jwt-AbCdEf";
        // (id asked, is it this secret)
        let cases = [
            ("/app/jwt", true),
            (arn, true),
            ("arn:aws:secretsmanager:us-east-1:1:secret:/app/jwt", true),
            ("/app/jwt-old", false),
            ("arn:aws:secretsmanager:us-east-1:1:secret:/app", false),
            ("", false),
        ];
        for (id, want) in cases {
            assert_eq!(names_secret(id, "/app/jwt", arn), want, "{id}");
        }
    }
}
