//! Pods for tests, built by chaining: `PodBuilder::new("api-1").ready()
//! .restarts(4).last_end("OOMKilled", 137, at).build()`.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::{Value, json};

use crate::adapters::kube::PodMetrics;

#[derive(Debug, Clone)]
pub struct PodBuilder {
    name: String,
    ready: bool,
    phase: &'static str,
    restarts: i32,
    waiting: Option<String>,
    last_end: Option<(String, i32, DateTime<Utc>)>,
    memory_limit: Option<String>,
    node: String,
    created: Option<DateTime<Utc>>,
    reason: Option<&'static str>,
}

impl PodBuilder {
    /// Running, not Ready, no restarts, on node `ip-10-0-1-1`.
    pub fn new(name: &str) -> Self {
        PodBuilder {
            name: name.to_string(),
            ready: false,
            phase: "Running",
            restarts: 0,
            waiting: None,
            last_end: None,
            memory_limit: None,
            node: "ip-10-0-1-1".into(),
            created: None,
            reason: None,
        }
    }

    pub fn ready(mut self) -> Self {
        self.ready = true;
        self
    }

    pub fn restarts(mut self, n: i32) -> Self {
        self.restarts = n;
        self
    }

    /// Waiting in `CrashLoopBackOff`, not Ready.
    pub fn crash_looping(mut self) -> Self {
        self.waiting = Some("CrashLoopBackOff".into());
        self.ready = false;
        self
    }

    /// The previous container ended with `reason` and `exit_code` at `at`.
    pub fn last_end(mut self, reason: &str, exit_code: i32, at: DateTime<Utc>) -> Self {
        self.last_end = Some((reason.to_string(), exit_code, at));
        self
    }

    pub fn memory_limit(mut self, q: &str) -> Self {
        self.memory_limit = Some(q.to_string());
        self
    }

    /// Made at `at` (`metadata.creationTimestamp`).
    pub fn created(mut self, at: DateTime<Utc>) -> Self {
        self.created = Some(at);
        self
    }

    /// Evicted: phase `Failed`, reason `Evicted`.
    pub fn evicted(mut self) -> Self {
        self.phase = "Failed";
        self.reason = Some("Evicted");
        self
    }

    /// A finished Job-like pod: phase `Succeeded`.
    pub fn succeeded(mut self) -> Self {
        self.phase = "Succeeded";
        self
    }

    pub fn node(mut self, n: &str) -> Self {
        self.node = n.to_string();
        self
    }

    pub fn build(self) -> Pod {
        let state = match &self.waiting {
            Some(w) => json!({"waiting": {"reason": w}}),
            None => json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
        };
        let last = match &self.last_end {
            Some((r, code, at)) => json!({"terminated": {
                "reason": r, "exitCode": code, "finishedAt": at.to_rfc3339(),
            }}),
            None => json!({}),
        };
        let resources = match &self.memory_limit {
            Some(m) => json!({"limits": {"memory": m}}),
            None => json!({}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": self.name, "namespace": "default", "labels": {"app": "api"},
                         "creationTimestamp": self.created.map(|c| c.to_rfc3339())},
            "spec": {"nodeName": self.node, "containers": [
                {"name": "api", "image": "flexoraa/api:3", "resources": resources}]},
            "status": {
                "phase": self.phase,
                "reason": self.reason,
                "conditions": [{"type": "Ready", "status": if self.ready { "True" } else { "False" }}],
                "containerStatuses": [{
                    "name": "api", "image": "flexoraa/api:3", "imageID": "", "ready": self.ready,
                    "restartCount": self.restarts, "state": state, "lastState": last,
                }],
            },
        }))
        .expect("pod fixture")
    }
}

/// A Warning event about `object` (`pod/api-1`).
pub fn warning(object: &str, reason: &str, count: i32, at: DateTime<Utc>, message: &str) -> Event {
    let (kind, name) = object.split_once('/').unwrap_or(("pod", object));
    let kind = match kind {
        "pod" => "Pod",
        "deployment" => "Deployment",
        other => other,
    };
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}.{reason}"), "namespace": "default"},
        "involvedObject": {"kind": kind, "name": name},
        "reason": reason, "message": message, "type": "Warning", "count": count,
        "lastTimestamp": at.to_rfc3339(),
    }))
    .expect("event fixture")
}

/// metrics.k8s.io usage of one pod's `api` container.
pub fn usage(pod: &str, memory: &str) -> PodMetrics {
    let v: Value = json!({"metadata": {"name": pod}, "containers": [{"name": "api", "usage": {"memory": memory}}]});
    serde_json::from_value(v).expect("metrics fixture")
}
