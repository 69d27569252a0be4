//! What each part makes of fixed answers.

use super::*;
use crate::testkit::pods::{PodBuilder, usage, warning};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

const NOW: &str = "2026-11-30T09:00:00Z";

#[test]
fn pods_in_trouble_come_first_with_their_reason_and_logs_are_chosen() {
    let now = t(NOW);
    let pods = vec![
        PodBuilder::new("api-a").ready().memory_limit("1Gi").build(),
        PodBuilder::new("api-b")
            .crash_looping()
            .restarts(7)
            .last_end("Error", 1, t("2026-11-30T08:58:00Z"))
            .memory_limit("1Gi")
            .build(),
        PodBuilder::new("api-c")
            .ready()
            .restarts(2)
            .last_end("OOMKilled", 137, t("2026-11-30T08:30:00Z"))
            .memory_limit("1Gi")
            .node("ip-10-0-2-9")
            .build(),
        PodBuilder::new("api-d")
            .ready()
            .restarts(1)
            .last_end("Completed", 0, t("2026-11-20T08:30:00Z"))
            .memory_limit("1Gi")
            .build(),
    ];
    let metrics = vec![usage("api-a", "300Mi"), usage("api-c", "990Mi")];
    let g = assess_pods(&pods, Some(&metrics), now);
    let f = |k: &str| g.facts[k];
    assert_eq!(f("api.pods"), 4.0);
    assert_eq!(f("api.pods_ready"), 3.0);
    assert_eq!(f("api.pods_not_ready"), 1.0);
    assert_eq!(f("api.restarts"), 10.0);
    assert_eq!(f("api.restarted_recently"), 2.0);
    assert_eq!(f("api.crashlooping"), 1.0);
    assert_eq!(f("api.oomkilled"), 1.0);
    assert!(
        (f("api.memory_ratio") - 0.967).abs() < 0.001,
        "{}",
        f("api.memory_ratio")
    );
    assert_eq!(g.summary, "3/4 Ready, 1 CrashLoopBackOff, 1 OOMKilled");
    assert_eq!(
        g.lines[0],
        "api-b Running NOT Ready, 7 restart(s), waiting: CrashLoopBackOff, last ended Error (exit 1) 2m ago, node ip-10-0-1-1"
    );
    assert!(g.lines[1].starts_with("api-c "), "{:?}", g.lines);
    assert!(
        g.lines
            .iter()
            .any(|l| l.starts_with("memory: highest: api-c/api uses 990 MiB of 1024 MiB")),
        "{:?}",
        g.lines
    );
    // The crash-looping pod's previous container, the pod OOMKilled half an
    // hour ago, and one healthy pod to compare (not the one that ended ten
    // days ago, which counts as healthy).
    let rows = pod_rows(&pods);
    let s = |a: &str| a.to_string();
    assert_eq!(
        logs_to_read(&rows, now, 5),
        vec![
            (s("api-b"), s("api"), true),
            (s("api-c"), s("api"), true),
            (s("api-d"), s("api"), false),
        ]
    );
    assert_eq!(
        logs_to_read(&rows, now, 1).len(),
        2,
        "at most 1 troubled + 1 healthy"
    );
}

#[test]
fn no_pods_and_no_metrics() {
    let g = assess_pods(&[], None, t(NOW));
    assert_eq!(g.facts["api.pods"], 0.0);
    assert!(!g.facts.contains_key("api.memory_ratio"));
    assert_eq!(g.summary, "0/0 Ready");
    assert!(
        !g.lines.iter().any(|l| l.starts_with("memory")),
        "the caller says why: {:?}",
        g.lines
    );
}

/// What a healthy stack looks like in practice: an OOM kill ten days ago
/// on a pod stable since, an evicted pod not yet collected, a pod of a
/// scale-up still starting. None is a fact of an incident.
#[test]
fn old_kills_evicted_and_starting_pods_are_not_trouble() {
    let now = t(NOW);
    let mut evicted = PodBuilder::new("api-old").build();
    let st = evicted.status.as_mut().unwrap();
    st.phase = Some("Failed".into());
    st.reason = Some("Evicted".into());
    let mut young = PodBuilder::new("api-new").build();
    young.metadata.creation_timestamp =
        serde_json::from_value(json!("2026-11-30T08:59:30Z")).unwrap();
    let pods = vec![
        PodBuilder::new("api-a").ready().build(),
        PodBuilder::new("api-b")
            .ready()
            .restarts(1)
            .last_end("OOMKilled", 137, t("2026-11-20T03:00:00Z"))
            .build(),
        evicted,
        young,
    ];
    let g = assess_pods(&pods, None, now);
    let f = |k: &str| g.facts[k];
    assert_eq!(f("api.pods"), 3.0, "the evicted pod is not serving");
    assert_eq!(f("api.pods_ready"), 2.0);
    assert_eq!(f("api.pods_not_ready"), 0.0, "starting is not failing");
    assert_eq!(f("api.oomkilled"), 0.0, "ten days ago is history");
    assert_eq!(f("api.restarted_recently"), 0.0);
    assert_eq!(g.summary, "2/3 Ready, 1 starting");
    assert!(
        g.lines
            .contains(&"api-old Failed: Evicted (finished, not counted)".to_string()),
        "{:?}",
        g.lines
    );
    let rows = pod_rows(&pods);
    let reads = logs_to_read(&rows, now, 5);
    assert_eq!(reads.len(), 1, "only a healthy pod to compare: {reads:?}");
    assert!(
        !reads[0].0.starts_with("api-old") && !reads[0].0.starts_with("api-new"),
        "{reads:?}"
    );
}

#[test]
fn log_patterns_are_counted_case_insensitively_with_evidence() {
    let logs = vec![
        (
            "api-b".to_string(),
            "ok\nError: sorry, TOO MANY CLIENTS already\nfine\ntoo many clients already"
                .to_string(),
        ),
        (
            "api-c".to_string(),
            "GraphAPI error: OAuthException code 190".to_string(),
        ),
    ];
    let mut p = BTreeMap::new();
    p.insert(
        "pool".to_string(),
        vec!["too many clients already".to_string()],
    );
    p.insert(
        "token".to_string(),
        vec!["oauthexception".to_string(), "expired".to_string()],
    );
    p.insert("redis".to_string(), vec!["ioredis".to_string()]);
    let (facts, evidence) = match_logs(&logs, &p);
    assert_eq!(facts["logs.pool"], 2.0);
    assert_eq!(facts["logs.token"], 1.0);
    assert_eq!(facts["logs.redis"], 0.0);
    assert_eq!(
        evidence[0],
        "pool: api-b: Error: sorry, TOO MANY CLIENTS already"
    );
    assert_eq!(evidence.len(), 3);
}

#[test]
fn warning_events_of_the_last_hour_grouped_most_frequent_first() {
    let now = t(NOW);
    let events = vec![
        warning(
            "pod/api-b",
            "BackOff",
            12,
            t("2026-11-30T08:59:00Z"),
            "Back-off restarting failed container api",
        ),
        warning(
            "pod/api-b",
            "BackOff",
            3,
            t("2026-11-30T08:40:00Z"),
            "Back-off restarting",
        ),
        warning(
            "pod/api-c",
            "Unhealthy",
            4,
            t("2026-11-30T08:50:00Z"),
            "Readiness probe failed: HTTP probe failed with statuscode: 503",
        ),
        warning(
            "pod/old",
            "FailedMount",
            9,
            t("2026-11-30T06:00:00Z"),
            "too old to matter",
        ),
    ];
    let g = assess_events(&events, now);
    assert_eq!(g.facts["events.warnings"], 19.0);
    assert_eq!(
        g.lines,
        vec![
            "15× BackOff pod/api-b: Back-off restarting failed container api",
            "4× Unhealthy pod/api-c: Readiness probe failed: HTTP probe failed with statuscode: 503",
        ]
    );
    assert_eq!(
        g.summary,
        "19 Warning event(s) in the last hour; most: 15× BackOff on pod/api-b"
    );
}

#[test]
fn a_fresh_rollout_is_dated_with_both_revisions_images() {
    use crate::adapters::kube::ClusterApi;
    use crate::testkit::fakes::FakeCluster;
    let now = t(NOW);
    let cluster = FakeCluster::default().rolled_out_at(t("2026-11-30T08:35:00Z"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (dep, sets) = rt.block_on(async {
        let d = cluster
            .deployment("default", "api-deployment")
            .await
            .unwrap();
        let s = cluster
            .replica_sets("default", d.as_ref().unwrap())
            .await
            .unwrap();
        (d, s)
    });
    let g = assess_deployment("api-deployment", dep.as_ref(), &sets, now);
    assert_eq!(g.facts["deploy.image_changed"], 1.0);
    assert_eq!(g.facts["deploy.revision"], 3.0);
    assert_eq!(g.facts["deploy.age_minutes"], 25.0);
    assert_eq!(g.facts["deploy.progressing"], 0.0);
    assert_eq!(
        g.lines[0],
        "revision 3 (flexoraa/api:3), rolled out 25m ago (2026-11-30T08:35:00+00:00)"
    );
    assert_eq!(g.lines[1], "previous revision 2 (flexoraa/api:2)");
    // An undo reuses an old ReplicaSet: the rollout is when the deployment
    // last progressed to it, not the set's creation days ago.
    let mut undone = dep.clone().unwrap();
    undone.status.as_mut().unwrap().conditions = Some(vec![
        serde_json::from_value(json!({
            "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
            "lastUpdateTime": "2026-11-30T08:50:00Z",
        }))
        .unwrap(),
    ]);
    let mut old_sets = sets.clone();
    for rs in &mut old_sets {
        rs.metadata.creation_timestamp =
            serde_json::from_value(json!("2026-11-01T00:00:00Z")).unwrap();
    }
    let g = assess_deployment("api-deployment", Some(&undone), &old_sets, now);
    assert_eq!(g.facts["deploy.age_minutes"], 10.0);
    let missing = assess_deployment("api-deployment", None, &[], now);
    assert_eq!(
        missing.error.as_deref(),
        Some("deployment api-deployment not found")
    );
}

#[test]
fn metrics_database_redis_rds_and_alerts() {
    let m = assess_metrics(
        Trend {
            now: Some(0.12),
            hour_ago: Some(0.01),
            day_ago: None,
        },
        Trend {
            now: Some(2.5),
            hour_ago: Some(0.4),
            day_ago: Some(0.5),
        },
    );
    assert!((m.facts["errors.rise_1h"] - 0.11).abs() < 1e-9);
    assert!(!m.facts.contains_key("errors.rate_1d_ago"));
    assert_eq!(
        m.lines[0],
        "error rate 12% now, 1% an hour ago, no data yesterday"
    );
    assert_eq!(m.summary, "error rate 12%, p99 2.5 s");

    let d = assess_db(&DbLoad {
        by_state: vec![
            ("idle".into(), 70),
            ("active".into(), 20),
            ("idle in transaction".into(), 5),
        ],
        max_connections: 100,
        longest: Some((42.4, None)),
    });
    assert_eq!(d.facts["db.connection_ratio"], 0.95);
    assert_eq!(d.facts["db.idle_in_transaction"], 5.0);
    assert_eq!(d.summary, "95 of 100 connections (95%)");
    assert_eq!(d.lines[1], "longest-running query: 42 s");

    let info = "# Memory\r\nused_memory:524288000\r\nmaxmemory:1048576000\r\n# Clients\r\nconnected_clients:17\r\n";
    let r = assess_redis(&RedisState {
        ping_ms: 1.25,
        used_memory: info_field(info, "used_memory"),
        maxmemory: info_field(info, "maxmemory"),
        clients: info_field(info, "connected_clients"),
    });
    assert_eq!(r.facts["redis.memory_ratio"], 0.5);
    assert_eq!(r.facts["redis.clients"], 17.0);
    assert_eq!(
        r.summary,
        "PONG in 1.3 ms, 500 MiB of maxmemory 1000 MiB (50%)"
    );

    let rds = assess_rds(
        &DbInstance {
            id: "db".into(),
            status: "rebooting".into(),
            ..Default::default()
        },
        Some(&[RdsEvent {
            at: Some(t("2026-11-30T08:55:00Z")),
            message: "DB instance restarted".into(),
            categories: vec!["availability".into()],
        }]),
        t(NOW),
    );
    assert_eq!(rds.facts["rds.available"], 0.0);
    assert_eq!(rds.lines[1], "5m ago: DB instance restarted [availability]");

    let alerts: Vec<Alert> = serde_json::from_value(json!([
        {"labels": {"alertname": "HighLatency", "severity": "warning"}, "startsAt": "2026-11-30T08:10:00Z"},
        {"labels": {"alertname": "ErrorRate", "severity": "critical"}, "annotations": {"summary": "5xx over 5%"}, "startsAt": "2026-11-30T08:40:00Z"},
    ]))
    .unwrap();
    let a = assess_alerts(&alerts, t(NOW));
    assert_eq!(a.facts["alerts.critical"], 1.0);
    assert_eq!(a.lines[0], "ErrorRate [critical] for 20m: 5xx over 5%");
    assert_eq!(a.summary, "2 firing, 1 critical");
}
