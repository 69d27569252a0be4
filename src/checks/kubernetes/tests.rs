//! Pod and deployment verdicts on real-shaped API objects.

use super::*;
use crate::testkit::pods::PodBuilder;
use serde_json::json;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const NOW: &str = "2026-11-29T09:00:00Z";

fn limits() -> Limits {
    Limits {
        window: Duration::from_secs(24 * 3600),
        max_restarts: 3,
        memory_warn: 0.8,
        memory_fail: 0.95,
    }
}

fn pod(name: &str, ready: bool, container_status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "api"}},
        "spec": {"containers": [{"name": "api", "image": "flexoraa/api:1.4.2",
                 "resources": {"limits": {"memory": "1Gi", "cpu": "500m"}}}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [container_status]
        }
    }))
    .unwrap()
}

fn running(restarts: i32) -> serde_json::Value {
    json!({"name": "api", "ready": true, "restartCount": restarts, "image": "flexoraa/api:1.4.2", "imageID": "",
           "state": {"running": {"startedAt": "2026-11-28T10:00:00Z"}}})
}

fn crashloop() -> serde_json::Value {
    json!({"name": "api", "ready": false, "restartCount": 7, "image": "flexoraa/api:1.4.2", "imageID": "",
           "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}},
           "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-11-29T08:55:00Z"}}})
}

fn oomkilled() -> serde_json::Value {
    json!({"name": "api", "ready": true, "restartCount": 1, "image": "flexoraa/api:1.4.2", "imageID": "",
           "state": {"running": {"startedAt": "2026-11-29T07:00:00Z"}},
           "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-11-29T06:59:58Z"}}})
}

fn old_oom() -> serde_json::Value {
    json!({"name": "api", "ready": true, "restartCount": 1, "image": "flexoraa/api:1.4.2", "imageID": "",
           "state": {"running": {"startedAt": "2026-11-20T07:00:00Z"}},
           "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-11-20T06:59:58Z"}}})
}

#[test]
fn pods_table() {
    // (case, pods, [ready, restarts, oomkilled], fragment)
    let cases: Vec<(&str, Vec<Pod>, [CheckStatus; 3], &str)> = vec![
        (
            "healthy",
            vec![
                pod("api-1", true, running(0)),
                pod("api-2", true, running(0)),
            ],
            [CheckStatus::Pass, CheckStatus::Pass, CheckStatus::Pass],
            "2/2 pods Ready",
        ),
        (
            "crash loop",
            vec![
                pod("api-1", true, running(0)),
                pod("api-2", false, crashloop()),
            ],
            [CheckStatus::Fail, CheckStatus::Fail, CheckStatus::Pass],
            "not ready: api-2 (CrashLoopBackOff)",
        ),
        (
            "recent OOM kill",
            vec![pod("api-1", true, oomkilled())],
            [CheckStatus::Pass, CheckStatus::Warn, CheckStatus::Fail],
            "OOMKilled: api-1/api",
        ),
        (
            "old OOM kill outside the window",
            vec![pod("api-1", true, old_oom())],
            [CheckStatus::Pass, CheckStatus::Pass, CheckStatus::Pass],
            "no OOMKilled containers in the last 24h",
        ),
        (
            "no pods",
            vec![],
            [CheckStatus::Fail, CheckStatus::Fail, CheckStatus::Fail],
            "no serving pods match app=api",
        ),
        // Judged as triage judges them (`pods::PodRow::health`): an
        // evicted pod is listed, not counted; a young one not Ready yet
        // is starting, a warning.
        (
            "evicted beside a ready one",
            vec![
                pod("api-1", true, running(0)),
                PodBuilder::new("api-old").evicted().build(),
            ],
            [CheckStatus::Pass, CheckStatus::Pass, CheckStatus::Pass],
            "1/1 pods Ready; finished, not counted: api-old (Evicted)",
        ),
        (
            "starting",
            vec![
                pod("api-1", true, running(0)),
                PodBuilder::new("api-new")
                    .created(t(NOW) - chrono::Duration::seconds(30))
                    .build(),
            ],
            [CheckStatus::Warn, CheckStatus::Pass, CheckStatus::Pass],
            "1/2 pods Ready; starting: api-new",
        ),
    ];
    for (case, pods, want, fragment) in cases {
        let got = assess_pods("api", t(NOW), "app=api", &pods, &limits());
        let statuses: Vec<CheckStatus> = got.iter().map(|r| r.status).collect();
        if pods.is_empty() {
            assert_eq!(statuses, vec![CheckStatus::Fail], "{case}");
        } else {
            assert_eq!(statuses, want, "{case}: {got:#?}");
        }
        assert!(
            got.iter().any(|r| r.reason.contains(fragment)),
            "{case}: {got:#?}"
        );
    }
}

fn deployment(
    replicas: i32,
    available: i32,
    updated: i32,
    progressing: Option<(&str, &str)>,
) -> Deployment {
    let mut conditions = vec![
        json!({"type": "Available", "status": if available >= replicas { "True" } else { "False" }}),
    ];
    if let Some((reason, msg)) = progressing {
        conditions.push(
            json!({"type": "Progressing", "status": "False", "reason": reason, "message": msg}),
        );
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api-deployment", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "x"}]}}},
        "status": {"replicas": replicas, "availableReplicas": available, "updatedReplicas": updated, "conditions": conditions}
    }))
    .unwrap()
}

#[test]
fn rollout_table() {
    let cases = [
        (
            "complete",
            Some(deployment(3, 3, 3, None)),
            CheckStatus::Pass,
            "3/3 available",
        ),
        (
            "in progress",
            Some(deployment(3, 2, 1, None)),
            CheckStatus::Warn,
            "rollout in progress: 1/3 updated",
        ),
        (
            "short of replicas",
            Some(deployment(3, 2, 3, None)),
            CheckStatus::Fail,
            "only 2/3 available",
        ),
        (
            "deadline exceeded",
            Some(deployment(
                3,
                2,
                1,
                Some((
                    "ProgressDeadlineExceeded",
                    "ReplicaSet \"api-7f9\" has timed out progressing.",
                )),
            )),
            CheckStatus::Fail,
            "ProgressDeadlineExceeded: ReplicaSet",
        ),
        ("missing", None, CheckStatus::Fail, "not found"),
    ];
    for (case, dep, status, fragment) in cases {
        let r = assess_deployment("api", "api-deployment", dep.as_ref());
        assert_eq!(r.status, status, "{case}: {r:?}");
        assert!(r.reason.contains(fragment), "{case}: {}", r.reason);
    }
}

fn metrics(pod: &str, memory: &str) -> PodMetrics {
    serde_json::from_value(json!({
        "metadata": {"name": pod, "namespace": "default"},
        "timestamp": "2026-11-29T08:59:30Z", "window": "30s",
        "containers": [{"name": "api", "usage": {"cpu": "120m", "memory": memory}}]
    }))
    .unwrap()
}

#[test]
fn memory_table() {
    let pods = vec![
        pod("api-1", true, running(0)),
        pod("api-2", true, running(0)),
    ];
    let cases = [
        (
            vec![metrics("api-1", "300Mi"), metrics("api-2", "400Mi")],
            CheckStatus::Pass,
            "api-2/api uses 400 MiB of 1024 MiB",
        ),
        (vec![metrics("api-1", "900Mi")], CheckStatus::Warn, "87.9%"),
        (vec![metrics("api-1", "1000Mi")], CheckStatus::Fail, "97.7%"),
        (vec![], CheckStatus::Warn, "no memory metrics"),
    ];
    for (m, status, fragment) in cases {
        let r = assess_memory("api", &pods, &m, &limits());
        assert_eq!(r.status, status, "{r:?}");
        assert!(r.reason.contains(fragment), "{}", r.reason);
    }
}

/// History stores results under these names: they never change.
#[test]
fn parts_are_named_as_history_knows_them() {
    let names: Vec<String> = KubePart::ALL.iter().map(|p| p.result_name("api")).collect();
    assert_eq!(
        names,
        [
            "api/ready",
            "api/restarts",
            "api/oomkilled",
            "api/rollout",
            "api/memory"
        ]
    );
}

/// A result that could not measure still states the configured threshold
/// of its part.
#[test]
fn unmeasured_parts_state_their_threshold() {
    let l = limits();
    let cases = [
        (KubePart::Ready, "all pods Ready"),
        (KubePart::Restarts, "fail if > 3 in 24h"),
        (KubePart::OomKilled, "no OOMKilled last state"),
        (KubePart::Rollout, "all replicas available"),
        (KubePart::Memory, "fail if > 95% of limit; warn if > 80%"),
    ];
    for (part, want) in cases {
        assert_eq!(l.threshold(part), want, "{part:?}");
    }
    let gone = assess_deployment("api", "api-deployment", None);
    assert_eq!(
        gone.threshold.map(|t| t.to_string()).as_deref(),
        Some("all replicas available")
    );
}
