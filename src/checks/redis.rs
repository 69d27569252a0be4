//! `kind: redis`: PING answers, fast enough; optionally used memory against
//! thresholds. The runbook's "Redis connection failures" diagnosis.

use std::time::Instant;

use async_trait::async_trait;
use serde::Deserialize;

use super::compare::{Condition, Threshold, Thresholds, fmt_number};
use super::{Check, CheckContext, CheckResult, CheckStatus, Part};
use crate::config::urls::{self, UrlKind};
use crate::model::Dur;
use crate::secret::{SecretUrl, redact_url};
use crate::yaml::{Diags, Pos};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisCheck {
    /// `redis://[user:password@]host:6379[/db]`. A secret.
    pub url: SecretUrl,
    /// PING latency that warns. Default: none.
    pub warn_latency: Option<Dur>,
    /// PING latency that fails. Default: none.
    pub fail_latency: Option<Dur>,
    /// `used_memory` in bytes that fails, e.g. `"> 1e9"`. Default: not checked.
    pub used_memory_fail_if: Option<Condition>,
    /// `used_memory` in bytes that warns. Default: not checked.
    pub used_memory_warn_if: Option<Condition>,
}

/// What one redis check reports: the PING, named as the check, and the
/// used memory when it has thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisPart {
    Ping,
    Memory,
}

impl Part for RedisPart {
    const ALL: &'static [Self] = &[RedisPart::Ping, RedisPart::Memory];

    fn word(self) -> Option<&'static str> {
        match self {
            RedisPart::Ping => None,
            RedisPart::Memory => Some("memory"),
        }
    }
}

#[async_trait]
impl Check for RedisCheck {
    fn threshold(&self) -> Option<String> {
        Some(self.threshold_of(RedisPart::Ping))
    }

    fn target(&self) -> String {
        redact_url(self.url.expose())
    }

    fn validate(&self, at: Pos, diags: &mut Diags) {
        urls::check(&self.url, "url", UrlKind::Redis, at, diags);
    }

    async fn run(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult> {
        self.check(name, ctx).await
    }
}

impl RedisCheck {
    /// The part's threshold as configured, for results that could not
    /// measure it.
    fn threshold_of(&self, part: RedisPart) -> String {
        match part {
            RedisPart::Memory => self.memory().describe(),
            RedisPart::Ping => {
                let latency = self.latency().to_string();
                if latency.is_empty() {
                    "PONG".to_string()
                } else {
                    latency
                }
            }
        }
    }

    /// The PING latency's limits, in whole ms.
    fn latency(&self) -> Threshold {
        let over = |d: Dur| Condition::Gt(d.0.as_millis() as f64);
        Threshold::Limits {
            fail: self.fail_latency.map(over),
            warn: self.warn_latency.map(over),
            unit: Some("ms".into()),
        }
    }

    fn memory(&self) -> Thresholds {
        Thresholds {
            fail_if: self.used_memory_fail_if,
            warn_if: self.used_memory_warn_if,
        }
    }

    async fn check(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult> {
        let target = redact_url(self.url.expose());
        let fail = |e: redis::RedisError| {
            vec![
                CheckResult::error(
                    RedisPart::Ping.result_name(name),
                    format!("{target}: {}", describe(&e)),
                )
                .threshold(self.threshold_of(RedisPart::Ping)),
            ]
        };
        let client = match redis::Client::open(self.url.expose()) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(ctx.timeout))
            .set_response_timeout(Some(ctx.timeout));
        let started = Instant::now();
        let mut con = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let ping_started = Instant::now();
        let pong: String = match redis::cmd("PING").query_async(&mut con).await {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let latency = ping_started.elapsed();
        let (status, why) = match (self.fail_latency, self.warn_latency) {
            (Some(f), _) if latency > f.0 => (CheckStatus::Fail, "too slow"),
            (_, Some(w)) if latency > w.0 => (CheckStatus::Warn, "slow"),
            _ => (CheckStatus::Pass, "ok"),
        };
        let mut out = vec![
            CheckResult::new(
                RedisPart::Ping.result_name(name),
                status,
                format!(
                    "{pong} in {:.1} ms ({why}; connect {} ms)",
                    latency.as_secs_f64() * 1000.0,
                    (ping_started - started).as_millis()
                ),
            )
            .number(latency.as_secs_f64() * 1000.0)
            .threshold(self.latency()),
        ];
        let t = self.memory();
        if !t.is_empty() {
            let info: Result<String, _> =
                redis::cmd("INFO").arg("memory").query_async(&mut con).await;
            let check = RedisPart::Memory.result_name(name);
            let unmeasured = |why: String| {
                CheckResult::error(&check, why).threshold(self.threshold_of(RedisPart::Memory))
            };
            out.push(match info {
                Err(e) => unmeasured(format!("INFO memory: {}", describe(&e))),
                Ok(text) => match used_memory(&text) {
                    None => unmeasured("INFO memory has no used_memory field".to_string()),
                    Some(bytes) => {
                        let (status, reason) = t.reason("used_memory", bytes);
                        CheckResult::new(
                            check,
                            status,
                            format!("{reason} ({} MiB)", fmt_number((bytes / 1048576.0).round())),
                        )
                        .number(bytes)
                        .threshold(t.describe())
                    }
                },
            });
        }
        out
    }
}

fn used_memory(info: &str) -> Option<f64> {
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
}

fn describe(e: &redis::RedisError) -> String {
    let s = e.to_string();
    let lower = s.to_lowercase();
    let class = if e.is_timeout() || lower.contains("timed out") {
        "timeout"
    } else if e.is_connection_refusal() || lower.contains("connection refused") {
        "refused"
    } else if lower.contains("failed to lookup") || lower.contains("dns") {
        "DNS"
    } else if lower.contains("noauth")
        || lower.contains("wrongpass")
        || lower.contains("authentication")
    {
        "auth"
    } else {
        "redis"
    };
    format!("{class}: {s}")
}

#[cfg(test)]
mod tests {
    use super::{Part, RedisPart};

    /// History stores results under these names: they never change.
    #[test]
    fn parts_are_named_as_history_knows_them() {
        let names: Vec<String> = RedisPart::ALL.iter().map(|p| p.result_name("r")).collect();
        assert_eq!(names, ["r", "r/memory"]);
    }

    #[test]
    fn used_memory_is_read_from_info() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n";
        assert_eq!(super::used_memory(info), Some(1048576.0));
        assert_eq!(super::used_memory("# Memory\r\n"), None);
    }
}
