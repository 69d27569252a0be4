//! `kind: kubernetes`: the runbook's `kubectl get pods -l app=api`,
//! `kubectl top pods` and rollout checks. One check gives several results:
//! `NAME/ready`, `NAME/restarts`, `NAME/oomkilled`, `NAME/rollout` (when a
//! deployment is named) and `NAME/memory` (when metrics.k8s.io is served).
//!
//! Kubernetes keeps a container's total restart count, not restarts per
//! hour; "restarts in the window" is the restart count of containers whose
//! last termination falls inside the window.

pub mod pods;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use serde::Deserialize;

use self::pods::PodHealth;
use super::compare::fmt_number;
use super::{Check, CheckContext, CheckResult, CheckStatus, Part};
use crate::adapters::kube::{PodMetrics, quantity_bytes};
use crate::model::Dur;
use crate::yaml::{Diags, Ident, Pos, Required};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesCheck {
    /// Default `default`.
    #[serde(default = "default_namespace")]
    pub namespace: Ident,
    /// Label selector of the pods. Default `app=api`.
    #[serde(default = "default_selector")]
    pub selector: Required,
    /// Deployment whose rollout is checked. Default: none.
    pub deployment: Option<Ident>,
    /// Window for restarts and OOM kills. Default `24h`.
    pub restart_window: Option<Dur>,
    /// More restarts than this in the window fails. Default 3.
    pub max_restarts: Option<u32>,
    /// Memory use over this fraction of the limit warns. Default 0.8.
    pub memory_warn: Option<f64>,
    /// Memory use over this fraction of the limit fails. Default 0.95.
    pub memory_fail: Option<f64>,
}

fn default_namespace() -> Ident {
    Ident::new("default")
}

fn default_selector() -> Required {
    Required::new("app=api")
}

pub fn k8s_time(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
}

fn pod_name(p: &Pod) -> String {
    p.metadata
        .name
        .clone()
        .unwrap_or_else(|| "(unnamed)".into())
}

pub struct Limits {
    pub window: Duration,
    pub max_restarts: u32,
    pub memory_warn: f64,
    pub memory_fail: f64,
}

/// What one kubernetes check reports, each a result of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubePart {
    Ready,
    Restarts,
    OomKilled,
    Rollout,
    Memory,
}

impl Part for KubePart {
    const ALL: &'static [Self] = &[
        KubePart::Ready,
        KubePart::Restarts,
        KubePart::OomKilled,
        KubePart::Rollout,
        KubePart::Memory,
    ];

    fn word(self) -> Option<&'static str> {
        Some(match self {
            KubePart::Ready => "ready",
            KubePart::Restarts => "restarts",
            KubePart::OomKilled => "oomkilled",
            KubePart::Rollout => "rollout",
            KubePart::Memory => "memory",
        })
    }
}

/// The rollout's threshold when the deployment's replicas are not known.
const ROLLOUT_THRESHOLD: &str = "all replicas available";

impl Limits {
    /// The part's threshold as configured, for results that could not
    /// measure it (a result that did states its own, e.g. `all 3 Ready`).
    fn threshold(&self, part: KubePart) -> String {
        match part {
            KubePart::Ready => "all pods Ready".to_string(),
            KubePart::Restarts => format!(
                "fail if > {} in {}",
                self.max_restarts,
                super::fmt_age(self.window)
            ),
            KubePart::OomKilled => "no OOMKilled last state".to_string(),
            KubePart::Rollout => ROLLOUT_THRESHOLD.to_string(),
            KubePart::Memory => format!(
                "fail if > {}% of limit; warn if > {}%",
                fmt_number(self.memory_fail * 100.0),
                fmt_number(self.memory_warn * 100.0)
            ),
        }
    }
}

#[async_trait]
impl Check for KubernetesCheck {
    fn target(&self) -> String {
        format!("namespace {} pods {}", self.namespace, self.selector)
    }

    fn validate(&self, at: Pos, diags: &mut Diags) {
        let (w, f) = (
            self.memory_warn.unwrap_or(0.8),
            self.memory_fail.unwrap_or(0.95),
        );
        if !(0.0..=10.0).contains(&w) || !(0.0..=10.0).contains(&f) || w > f {
            diags.at(
                at,
                format!(
                    "memory_warn ({w}) and memory_fail ({f}) are fractions of the limit, warn <= fail"
                ),
            );
        }
    }

    async fn run(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult> {
        self.check(name, ctx).await
    }
}

impl KubernetesCheck {
    fn limits(&self) -> Limits {
        Limits {
            window: self
                .restart_window
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(24 * 3600)),
            max_restarts: self.max_restarts.unwrap_or(3),
            memory_warn: self.memory_warn.unwrap_or(0.8),
            memory_fail: self.memory_fail.unwrap_or(0.95),
        }
    }

    async fn check(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult> {
        let cluster = &ctx.adapters.cluster;
        let limits = self.limits();
        let pods = match cluster.pods(&self.namespace, &self.selector).await {
            Ok(p) => p,
            Err(e) => {
                return vec![
                    CheckResult::error(KubePart::Ready.result_name(name), e.to_string())
                        .threshold(limits.threshold(KubePart::Ready)),
                ];
            }
        };
        let mut out = assess_pods(name, ctx.now, &self.selector, &pods, &limits);
        if let Some(d) = &self.deployment {
            out.push(match cluster.deployment(&self.namespace, d).await {
                Ok(dep) => assess_deployment(name, d, dep.as_ref()),
                Err(e) => CheckResult::error(KubePart::Rollout.result_name(name), e.to_string())
                    .threshold(limits.threshold(KubePart::Rollout)),
            });
        }
        match cluster.pod_metrics(&self.namespace, &self.selector).await {
            Ok(Some(m)) => out.push(assess_memory(name, &pods, &m, &limits)),
            Ok(None) => out.push(
                CheckResult::new(
                    KubePart::Memory.result_name(name),
                    CheckStatus::Warn,
                    "not measured: the cluster does not serve metrics.k8s.io (install metrics-server)",
                )
                .threshold(limits.threshold(KubePart::Memory)),
            ),
            Err(e) => out.push(
                CheckResult::error(KubePart::Memory.result_name(name), e.to_string())
                    .threshold(limits.threshold(KubePart::Memory)),
            ),
        }
        out
    }
}

fn recent_termination<'a>(
    t: Option<&'a ContainerStateTerminated>,
    since: DateTime<Utc>,
) -> Option<&'a ContainerStateTerminated> {
    t.filter(|t| {
        t.finished_at
            .as_ref()
            .and_then(k8s_time)
            .is_some_and(|f| f >= since)
    })
}

/// Ready, restarts and OOM kills of the selected pods. Pure.
pub fn assess_pods(
    name: &str,
    now: DateTime<Utc>,
    selector: &str,
    pods: &[Pod],
    limits: &Limits,
) -> Vec<CheckResult> {
    let since = now - chrono::Duration::from_std(limits.window).unwrap_or(chrono::Duration::MAX);
    let window = super::fmt_age(limits.window);
    // Ready is judged as triage judges it (`pods::PodRow::health`).
    let rows = pods::pod_rows(pods);
    let of = |h: PodHealth| rows.iter().filter(move |r| r.health(now) == h);
    let serving = rows.len() - of(PodHealth::Finished).count();
    let finished: Vec<String> = of(PodHealth::Finished)
        .map(|r| format!("{} ({})", r.name, r.reason.as_deref().unwrap_or(&r.phase)))
        .collect();
    let not_counted = if finished.is_empty() {
        String::new()
    } else {
        format!("; finished, not counted: {}", finished.join(", "))
    };
    if serving == 0 {
        return vec![
            CheckResult::new(
                KubePart::Ready.result_name(name),
                CheckStatus::Fail,
                format!("no serving pods match {selector}{not_counted}"),
            )
            .number(0.0)
            .threshold(limits.threshold(KubePart::Ready)),
        ];
    }
    let not_ready: Vec<String> = of(PodHealth::NotReady)
        .map(|r| format!("{} ({})", r.name, r.why_not_ready()))
        .collect();
    let starting: Vec<String> = of(PodHealth::Starting).map(|r| r.name.clone()).collect();
    let ready_count = of(PodHealth::Ready).count();
    let mut restarts = 0i64;
    let mut restarted = Vec::new();
    let mut oom = Vec::new();
    for p in pods {
        let status = p.status.clone().unwrap_or_default();
        for c in &status.container_statuses.clone().unwrap_or_default() {
            let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
            if let Some(t) = recent_termination(last, since) {
                restarts += i64::from(c.restart_count);
                restarted.push(format!("{}/{} ×{}", pod_name(p), c.name, c.restart_count));
                if t.reason.as_deref() == Some("OOMKilled") {
                    oom.push(format!("{}/{}", pod_name(p), c.name));
                }
            }
        }
    }
    let mut reason = format!("{ready_count}/{serving} pods Ready");
    if !not_ready.is_empty() {
        reason.push_str(&format!("; not ready: {}", not_ready.join(", ")));
    }
    if !starting.is_empty() {
        reason.push_str(&format!("; starting: {}", starting.join(", ")));
    }
    reason.push_str(&not_counted);
    let status = if !not_ready.is_empty() {
        CheckStatus::Fail
    } else if !starting.is_empty() {
        CheckStatus::Warn
    } else {
        CheckStatus::Pass
    };
    let ready = CheckResult::new(KubePart::Ready.result_name(name), status, reason)
        .number(ready_count as f64)
        .threshold(format!("all {serving} Ready"));
    let restart_status = if restarts > i64::from(limits.max_restarts) {
        CheckStatus::Fail
    } else if restarts > 0 {
        CheckStatus::Warn
    } else {
        CheckStatus::Pass
    };
    let restarts_result = CheckResult::new(
        KubePart::Restarts.result_name(name),
        restart_status,
        if restarted.is_empty() {
            format!("no restarts in the last {window}")
        } else {
            format!("restarted in the last {window}: {}", restarted.join(", "))
        },
    )
    .number(restarts as f64)
    .threshold(limits.threshold(KubePart::Restarts));
    let oom_result = if oom.is_empty() {
        CheckResult::new(
            KubePart::OomKilled.result_name(name),
            CheckStatus::Pass,
            format!("no OOMKilled containers in the last {window}"),
        )
    } else {
        CheckResult::new(
            KubePart::OomKilled.result_name(name),
            CheckStatus::Fail,
            format!("OOMKilled: {}", oom.join(", ")),
        )
    }
    .number(oom.len() as f64)
    .threshold(limits.threshold(KubePart::OomKilled));
    vec![ready, restarts_result, oom_result]
}

/// Full available replicas, no failed progress. Pure.
pub fn assess_deployment(name: &str, deployment: &str, dep: Option<&Deployment>) -> CheckResult {
    let check = KubePart::Rollout.result_name(name);
    let Some(dep) = dep else {
        return CheckResult::new(
            check,
            CheckStatus::Fail,
            format!("deployment {deployment} not found"),
        )
        .threshold(ROLLOUT_THRESHOLD);
    };
    let desired = dep.spec.replicas.unwrap_or(1);
    let status = dep.status.clone().unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let threshold = format!("{desired}/{desired} available");
    let stuck = status.conditions.as_ref().and_then(|cs| {
        cs.iter()
            .find(|c| {
                c.type_.as_deref() == Some("Progressing")
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
            .map(|c| c.message.clone().unwrap_or_default())
    });
    let (st, reason) = if let Some(msg) = stuck {
        (
            CheckStatus::Fail,
            format!("ProgressDeadlineExceeded: {msg}"),
        )
    } else if available >= desired && updated >= desired {
        (
            CheckStatus::Pass,
            format!("{available}/{desired} available"),
        )
    } else if updated < desired {
        (
            CheckStatus::Warn,
            format!(
                "rollout in progress: {updated}/{desired} updated, {available}/{desired} available"
            ),
        )
    } else {
        (
            CheckStatus::Fail,
            format!("only {available}/{desired} available"),
        )
    };
    CheckResult::new(check, st, format!("{deployment}: {reason}"))
        .number(available as f64)
        .threshold(threshold)
}

/// Highest container memory use as a fraction of its limit. Pure.
pub fn assess_memory(
    name: &str,
    pods: &[Pod],
    metrics: &[PodMetrics],
    limits: &Limits,
) -> CheckResult {
    let check = KubePart::Memory.result_name(name);
    let threshold = limits.threshold(KubePart::Memory);
    let mut worst: Option<(f64, String)> = None;
    let mut unlimited = Vec::new();
    for m in metrics {
        let pod_name = m.metadata.name.clone().unwrap_or_default();
        let Some(pod) = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pod_name.as_str()))
        else {
            continue;
        };
        let spec_containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        for c in &m.containers {
            let used = c.usage.memory.as_deref().and_then(quantity_bytes);
            let limit = spec_containers
                .iter()
                .find(|s| s.name == c.name)
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.limits.as_ref())
                .and_then(|l| l.get("memory"))
                .and_then(|q| quantity_bytes(&q.0));
            match (used, limit) {
                (Some(u), Some(l)) if l > 0.0 => {
                    let ratio = u / l;
                    if worst.as_ref().is_none_or(|(w, _)| ratio > *w) {
                        worst = Some((
                            ratio,
                            format!(
                                "{pod_name}/{} uses {} MiB of {} MiB",
                                c.name,
                                (u / 1048576.0).round(),
                                (l / 1048576.0).round()
                            ),
                        ));
                    }
                }
                (Some(_), _) => unlimited.push(format!("{pod_name}/{}", c.name)),
                _ => {}
            }
        }
    }
    match worst {
        None if !unlimited.is_empty() => CheckResult::new(
            check,
            CheckStatus::Warn,
            format!("no memory limit set on {}", unlimited.join(", ")),
        )
        .threshold(threshold),
        None => CheckResult::new(
            check,
            CheckStatus::Warn,
            "no memory metrics for the selected pods",
        )
        .threshold(threshold),
        Some((ratio, what)) => {
            let status = if ratio > limits.memory_fail {
                CheckStatus::Fail
            } else if ratio > limits.memory_warn {
                CheckStatus::Warn
            } else {
                CheckStatus::Pass
            };
            CheckResult::new(
                check,
                status,
                format!(
                    "highest: {what} ({}%)",
                    fmt_number((ratio * 1000.0).round() / 10.0)
                ),
            )
            .number((ratio * 1000.0).round() / 1000.0)
            .threshold(threshold)
        }
    }
}

#[cfg(test)]
mod tests;
