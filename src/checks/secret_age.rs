//! `kind: secret_age`: a Secrets Manager secret was rotated or changed
//! within `max_age` (the runbook's "Secrets Rotation", watched).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Check, CheckContext, CheckResult, CheckStatus, fmt_age};
use crate::adapters::aws::{SecretInfo, Target, retry_throttled};
use crate::model::{Dur, Threshold};
use crate::yaml::Ident;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretAgeCheck {
    /// Name or ARN, e.g. `/flexoraa/production/jwt-secret`.
    pub secret_id: Ident,
    /// AWS region. Default: the standard chain.
    pub region: Option<Ident>,
    /// Older than this fails. Required.
    pub max_age: Dur,
    /// Older than this warns. Default: none.
    pub warn_age: Option<Dur>,
}

#[async_trait]
impl Check for SecretAgeCheck {
    fn threshold(&self) -> Option<String> {
        Some(
            Threshold::Age {
                fail: self.max_age.0,
                warn: self.warn_age.map(|w| w.0),
            }
            .to_string(),
        )
    }

    fn target(&self) -> String {
        format!("secret {}", self.secret_id)
    }

    async fn run(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult> {
        vec![self.check(name, ctx).await]
    }
}

impl SecretAgeCheck {
    async fn check(&self, name: &str, ctx: &CheckContext) -> CheckResult {
        let target = Target {
            region: self.region.as_ref().map(|r| r.to_string()),
        };
        // Throttles retried within the check's own timeout.
        let secrets = &ctx.adapters.secrets;
        match retry_throttled(Duration::from_secs(1), None, || {
            secrets.describe(&target, &self.secret_id)
        })
        .await
        {
            Ok(info) => assess(
                name,
                ctx.now,
                &info,
                self.max_age.0,
                self.warn_age.map(|d| d.0),
            ),
            Err(e) => CheckResult::error(name, format!("describe secret {}: {e}", self.secret_id)),
        }
    }
}

/// Pure: the age of the newer of rotation and change.
pub fn assess(
    name: &str,
    now: DateTime<Utc>,
    info: &SecretInfo,
    max_age: Duration,
    warn_age: Option<Duration>,
) -> CheckResult {
    let threshold = Threshold::Age {
        fail: max_age,
        warn: warn_age,
    };
    let latest = match (info.last_rotated, info.last_changed) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let Some(at) = latest else {
        return CheckResult::new(
            name,
            CheckStatus::Fail,
            format!("secret {} has never been rotated or changed", info.name),
        )
        .threshold(threshold.clone());
    };
    let age = (now - at).to_std().unwrap_or_default();
    let days = age.as_secs_f64() / 86400.0;
    let shown = fmt_age(age);
    let status = if age > max_age {
        CheckStatus::Fail
    } else if warn_age.is_some_and(|w| age > w) {
        CheckStatus::Warn
    } else {
        CheckStatus::Pass
    };
    let what = if Some(at) == info.last_rotated {
        "rotated"
    } else {
        "changed"
    };
    CheckResult::new(
        name,
        status,
        format!(
            "{} last {what} {shown} ago ({}){}",
            info.name,
            at.to_rfc3339(),
            if info.rotation_enabled {
                ""
            } else {
                "; automatic rotation is off"
            }
        ),
    )
    .number((days * 100.0).round() / 100.0)
    .threshold(threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn age_table() {
        let now = t("2026-11-29T00:00:00Z");
        let day = Duration::from_secs(86400);
        let info = |rot: Option<&str>, chg: Option<&str>| SecretInfo {
            name: "/flexoraa/production/jwt-secret".into(),
            last_rotated: rot.map(t),
            last_changed: chg.map(t),
            rotation_enabled: false,
            versions: Vec::new(),
        };
        let cases = [
            (
                info(Some("2026-11-20T00:00:00Z"), None),
                CheckStatus::Pass,
                "rotated 9d ago",
            ),
            (
                info(None, Some("2026-11-01T00:00:00Z")),
                CheckStatus::Warn,
                "changed 28d ago",
            ),
            (
                info(Some("2026-07-01T00:00:00Z"), Some("2026-08-01T00:00:00Z")),
                CheckStatus::Fail,
                "changed 120d ago",
            ),
            (info(None, None), CheckStatus::Fail, "never been rotated"),
        ];
        for (i, status, fragment) in cases {
            let r = assess("jwt", now, &i, 90 * day, Some(14 * day));
            assert_eq!(r.status, status, "{r:?}");
            assert!(r.reason.contains(fragment), "{}", r.reason);
        }
    }
}
