//! What each part of a triage reads, and what it makes of it. The reading
//! is behind the adapters' seams; what a part concludes from the answers
//! (rows, facts) is pure, so the table tests feed it fixtures.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::json;

use super::rules::Facts;
use crate::adapters::aws::{DbInstance, RdsEvent};
use crate::adapters::kube::PodMetrics;
use crate::checks::alertmanager::Alert;
use crate::checks::kubernetes::pods::{PodHealth, PodRow, pod_rows};
use crate::checks::kubernetes::{Limits, assess_memory, k8s_time};
use crate::jobs::rollout::{RolloutState, revision, rollout_state};
use crate::model::fmt_number;

/// What one part found: a line for the steps table, its readable section
/// (most telling first), facts for the rules, and its data for `show
/// --json`. A part that failed says why and may still know a fact (a
/// refused connection is `redis.reachable = 0`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gathered {
    pub summary: String,
    pub lines: Vec<String>,
    pub facts: Facts,
    pub data: serde_json::Value,
    pub error: Option<String>,
}

impl Gathered {
    pub fn failed(error: impl Into<String>) -> Self {
        let error = error.into();
        Gathered {
            summary: error.clone(),
            error: Some(error),
            ..Default::default()
        }
    }

    pub fn fact(mut self, name: &str, v: f64) -> Self {
        self.facts.insert(name.to_string(), v);
        self
    }
}

/// A log to read: pod, container, and whether the previous container's.
pub type LogRead = (String, String, bool);

/// The pods whose logs to read: every troubled one (at most `max`), the
/// previous container's log where one ended; and one healthy pod to
/// compare with.
pub fn logs_to_read(rows: &[PodRow], now: DateTime<Utc>, max: usize) -> Vec<LogRead> {
    let mut out: Vec<LogRead> = rows
        .iter()
        .filter(|r| r.troubled(now))
        .take(max)
        .map(|r| (r.name.clone(), r.container.clone(), r.last_end.is_some()))
        .collect();
    if let Some(healthy) = rows
        .iter()
        .find(|r| !r.finished() && r.ready && !r.troubled(now))
    {
        out.push((healthy.name.clone(), healthy.container.clone(), false));
    }
    out
}

/// Pods: rows, facts, and the memory ratio when metrics are served.
pub fn assess_pods(pods: &[Pod], metrics: Option<&[PodMetrics]>, now: DateTime<Utc>) -> Gathered {
    let all = pod_rows(pods);
    let (finished, rows): (Vec<PodRow>, Vec<PodRow>) = all
        .into_iter()
        .partition(|r| r.health(now) == PodHealth::Finished);
    let ready = rows
        .iter()
        .filter(|r| r.health(now) == PodHealth::Ready)
        .count();
    let starting = rows
        .iter()
        .filter(|r| r.health(now) == PodHealth::Starting)
        .count();
    let crashloop = rows
        .iter()
        .filter(|r| r.waiting.as_deref() == Some("CrashLoopBackOff"))
        .count();
    let oom = rows.iter().filter(|r| r.oom_recently(now)).count();
    let recent = rows.iter().filter(|r| r.ended_recently(now)).count();
    let mut g = Gathered::default()
        .fact("api.pods", rows.len() as f64)
        .fact("api.pods_ready", ready as f64)
        .fact("api.pods_not_ready", (rows.len() - ready - starting) as f64)
        .fact(
            "api.restarts",
            rows.iter().map(|r| f64::from(r.restarts)).sum(),
        )
        .fact("api.restarted_recently", recent as f64)
        .fact("api.crashlooping", crashloop as f64)
        .fact("api.oomkilled", oom as f64);
    let mut memory = None;
    if let Some(m) = metrics {
        // Only the ratio is used; the rules judge it.
        let limits = Limits {
            window: std::time::Duration::from_secs(3600),
            max_restarts: 0,
            memory_warn: 0.8,
            memory_fail: 0.95,
        };
        let r = assess_memory("pods", pods, m, &limits);
        if let Some(v) = r.value.as_ref().and_then(|v| v.number()) {
            g.facts.insert("api.memory_ratio".into(), v);
        }
        memory = Some(r.reason);
    }
    for r in &rows {
        let mut line = format!(
            "{} {} {}, {} restart(s)",
            r.name,
            r.phase,
            match r.health(now) {
                PodHealth::Ready => "Ready",
                PodHealth::Starting => "starting",
                PodHealth::NotReady | PodHealth::Finished => "NOT Ready",
            },
            r.restarts
        );
        if let Some(w) = &r.waiting {
            line.push_str(&format!(", waiting: {w}"));
        }
        if let Some((why, code, at)) = &r.last_end {
            line.push_str(&format!(
                ", last ended {why} (exit {code}){}",
                at.map(|t| format!(" {} ago", ago(now, t)))
                    .unwrap_or_default()
            ));
        }
        if let Some(n) = &r.node {
            line.push_str(&format!(", node {n}"));
        }
        g.lines.push(line);
    }
    for r in &finished {
        g.lines.push(format!(
            "{} {}{} (finished, not counted)",
            r.name,
            r.phase,
            r.reason
                .as_ref()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        ));
    }
    if let Some(m) = &memory {
        g.lines.push(format!("memory: {m}"));
    }
    g.summary = format!(
        "{ready}/{} Ready{}{}{}",
        rows.len(),
        if starting > 0 {
            format!(", {starting} starting")
        } else {
            String::new()
        },
        if crashloop > 0 {
            format!(", {crashloop} CrashLoopBackOff")
        } else {
            String::new()
        },
        if oom > 0 {
            format!(", {oom} OOMKilled")
        } else {
            String::new()
        }
    );
    g.data = json!({ "pods": rows, "finished": finished, "memory": memory });
    g
}

/// Counts each pattern's lines in the logs read (case-insensitive), and
/// keeps the first few matching lines as evidence.
pub fn match_logs(
    logs: &[(String, String)],
    patterns: &BTreeMap<String, Vec<String>>,
) -> (Facts, Vec<String>) {
    let mut facts = Facts::new();
    let mut evidence = Vec::new();
    for (name, needles) in patterns {
        let lowered: Vec<String> = needles.iter().map(|n| n.to_lowercase()).collect();
        let mut count = 0usize;
        for (pod, text) in logs {
            for line in text.lines() {
                let l = line.to_lowercase();
                if lowered.iter().any(|n| l.contains(n)) {
                    count += 1;
                    if evidence.len() < 5 {
                        evidence.push(format!("{name}: {pod}: {}", clip(line, 200)));
                    }
                }
            }
        }
        facts.insert(format!("logs.{name}"), count as f64);
    }
    (facts, evidence)
}

pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

pub fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Warning events of the last hour, grouped by object and reason, most
/// frequent first.
pub fn assess_events(events: &[Event], now: DateTime<Utc>) -> Gathered {
    let since = now - chrono::Duration::hours(1);
    let mut groups: BTreeMap<(String, String), (i64, String, Option<DateTime<Utc>>)> =
        BTreeMap::new();
    for e in events {
        let at = e
            .last_timestamp
            .as_ref()
            .and_then(k8s_time)
            .or_else(|| {
                e.event_time.as_ref().and_then(|t| {
                    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
                })
            })
            .or_else(|| e.first_timestamp.as_ref().and_then(k8s_time));
        if at.is_some_and(|t| t < since) {
            continue;
        }
        let obj = format!(
            "{}/{}",
            e.involved_object
                .kind
                .clone()
                .unwrap_or_default()
                .to_lowercase(),
            e.involved_object.name.clone().unwrap_or_default()
        );
        let reason = e.reason.clone().unwrap_or_else(|| "Unknown".into());
        let entry = groups
            .entry((obj, reason))
            .or_insert((0, String::new(), None));
        entry.0 += i64::from(e.count.unwrap_or(1).max(1));
        if entry.2 <= at {
            entry.1 = e.message.clone().unwrap_or_default();
            entry.2 = at;
        }
    }
    let mut list: Vec<_> = groups.into_iter().collect();
    list.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    let total: i64 = list.iter().map(|(_, (n, _, _))| n).sum();
    let mut g = Gathered::default().fact("events.warnings", total as f64);
    for ((obj, reason), (n, msg, _)) in &list {
        g.lines
            .push(format!("{n}× {reason} {obj}: {}", clip(msg.trim(), 160)));
    }
    g.summary = match list.first() {
        None => "no Warning events in the last hour".to_string(),
        Some(((obj, reason), (n, _, _))) => {
            format!("{total} Warning event(s) in the last hour; most: {n}× {reason} on {obj}")
        }
    };
    g.data = json!(
        list.iter()
            .map(|((obj, reason), (n, msg, at))| json!({
                "object": obj, "reason": reason, "count": n, "message": msg, "last": at,
            }))
            .collect::<Vec<_>>()
    );
    g
}

fn images(rs: &ReplicaSet) -> Vec<String> {
    rs.spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The deployment: current and previous revision with their images, when
/// the current one rolled out, and whether a rollout is under way.
pub fn assess_deployment(
    name: &str,
    dep: Option<&Deployment>,
    sets: &[ReplicaSet],
    now: DateTime<Utc>,
) -> Gathered {
    let Some(dep) = dep else {
        return Gathered::failed(format!("deployment {name} not found"));
    };
    let mut revs: Vec<(i64, &ReplicaSet)> = sets
        .iter()
        .filter_map(|rs| revision(&rs.metadata).map(|r| (r, rs)))
        .collect();
    revs.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
    let current_rev = revision(&dep.metadata).or(revs.first().map(|(r, _)| *r));
    let current = revs.iter().find(|(r, _)| Some(*r) == current_rev);
    let previous = revs
        .iter()
        .find(|(r, _)| current_rev.is_some_and(|c| *r < c));
    // When the current revision went out: its ReplicaSet's creation, or
    // later when the deployment last progressed to it (an undo reuses an
    // old ReplicaSet, whose creation is days ago).
    let progressed = dep
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_.as_deref() == Some("Progressing"))
        })
        .filter(|c| {
            matches!(
                c.reason.as_deref(),
                Some(
                    "NewReplicaSetAvailable"
                        | "ReplicaSetUpdated"
                        | "NewReplicaSetCreated"
                        | "FoundNewReplicaSet"
                )
            )
        })
        .and_then(|c| c.last_update_time.as_ref())
        .and_then(k8s_time);
    let created =
        current.and_then(|(_, rs)| rs.metadata.creation_timestamp.as_ref().and_then(k8s_time));
    let rolled_at = created.max(progressed);
    let state = rollout_state(dep, dep.metadata.generation.unwrap_or(0));
    let (progressing, state_line) = match &state {
        RolloutState::Done(s) => (false, format!("rollout complete: {s}")),
        RolloutState::Progressing(s) => (true, format!("rolling out: {s}")),
        RolloutState::Failed(s) => (false, format!("rollout FAILED: {s}")),
    };
    let unavailable = dep
        .status
        .as_ref()
        .and_then(|s| s.unavailable_replicas)
        .unwrap_or(0);
    let mut g = Gathered::default()
        .fact("deploy.progressing", if progressing { 1.0 } else { 0.0 })
        .fact("deploy.unavailable", f64::from(unavailable));
    if let Some(r) = current_rev {
        g.facts.insert("deploy.revision".into(), r as f64);
    }
    if let Some(t) = rolled_at {
        g.facts.insert(
            "deploy.age_minutes".into(),
            (now - t).num_seconds() as f64 / 60.0,
        );
    }
    let cur_images = current.map(|(_, rs)| images(rs)).unwrap_or_default();
    let prev_images = previous.map(|(_, rs)| images(rs)).unwrap_or_default();
    // A restart makes a revision with the same images: not a deploy.
    if current.is_some() && previous.is_some() {
        g.facts.insert(
            "deploy.image_changed".into(),
            if cur_images == prev_images { 0.0 } else { 1.0 },
        );
    }
    g.lines.push(format!(
        "revision {} ({}), rolled out {}",
        current_rev
            .map(|r| r.to_string())
            .unwrap_or_else(|| "?".into()),
        cur_images.join(", "),
        rolled_at
            .map(|t| format!("{} ago ({})", ago(now, t), t.to_rfc3339()))
            .unwrap_or_else(|| "at an unknown time".into())
    ));
    match previous {
        Some((r, _)) => g.lines.push(format!(
            "previous revision {r} ({})",
            prev_images.join(", ")
        )),
        None => g.lines.push("no previous revision".to_string()),
    }
    g.lines.push(state_line.clone());
    g.summary = format!(
        "revision {}{}; {state_line}",
        current_rev
            .map(|r| r.to_string())
            .unwrap_or_else(|| "?".into()),
        rolled_at
            .map(|t| format!(" rolled out {} ago", ago(now, t)))
            .unwrap_or_default()
    );
    g.data = json!({
        "revision": current_rev,
        "images": cur_images,
        "rolled_out_at": rolled_at,
        "previous_revision": previous.map(|(r, _)| *r),
        "previous_images": prev_images,
        "state": state_line,
        "unavailable": unavailable,
    });
    g
}

/// One metric now, an hour ago and a day ago.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Trend {
    pub now: Option<f64>,
    pub hour_ago: Option<f64>,
    pub day_ago: Option<f64>,
}

pub fn assess_metrics(errors: Trend, p99: Trend) -> Gathered {
    let mut g = Gathered::default();
    let mut put = |k: &str, v: Option<f64>| {
        if let Some(v) = v {
            g.facts.insert(k.to_string(), v);
        }
    };
    put("errors.rate", errors.now);
    put("errors.rate_1h_ago", errors.hour_ago);
    put("errors.rate_1d_ago", errors.day_ago);
    put(
        "errors.rise_1h",
        errors.now.zip(errors.hour_ago).map(|(a, b)| a - b),
    );
    put("latency.p99", p99.now);
    put("latency.p99_1h_ago", p99.hour_ago);
    put("latency.p99_1d_ago", p99.day_ago);
    let pct = |v: Option<f64>| {
        v.map(|v| format!("{}%", fmt_number((v * 10000.0).round() / 100.0)))
            .unwrap_or_else(|| "no data".into())
    };
    let secs = |v: Option<f64>| {
        v.map(|v| format!("{} s", fmt_number((v * 1000.0).round() / 1000.0)))
            .unwrap_or_else(|| "no data".into())
    };
    g.lines.push(format!(
        "error rate {} now, {} an hour ago, {} yesterday",
        pct(errors.now),
        pct(errors.hour_ago),
        pct(errors.day_ago)
    ));
    g.lines.push(format!(
        "p99 latency {} now, {} an hour ago, {} yesterday",
        secs(p99.now),
        secs(p99.hour_ago),
        secs(p99.day_ago)
    ));
    g.summary = format!("error rate {}, p99 {}", pct(errors.now), secs(p99.now));
    g.data = json!({
        "error_rate": {"now": errors.now, "hour_ago": errors.hour_ago, "day_ago": errors.day_ago},
        "latency_p99": {"now": p99.now, "hour_ago": p99.hour_ago, "day_ago": p99.day_ago},
    });
    g
}

/// The app database's connections by state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DbLoad {
    pub by_state: Vec<(String, i64)>,
    pub max_connections: i64,
    /// Age in seconds of the longest-running active query, and its text
    /// when configured.
    pub longest: Option<(f64, Option<String>)>,
}

pub fn assess_db(load: &DbLoad) -> Gathered {
    let total: i64 = load.by_state.iter().map(|(_, n)| n).sum();
    let ratio = if load.max_connections > 0 {
        total as f64 / load.max_connections as f64
    } else {
        0.0
    };
    let idle_tx = load
        .by_state
        .iter()
        .filter(|(s, _)| s.starts_with("idle in transaction"))
        .map(|(_, n)| n)
        .sum::<i64>();
    let mut g = Gathered::default()
        .fact("db.reachable", 1.0)
        .fact("db.connections", total as f64)
        .fact("db.max_connections", load.max_connections as f64)
        .fact("db.connection_ratio", ratio)
        .fact("db.idle_in_transaction", idle_tx as f64)
        .fact(
            "db.longest_query_seconds",
            load.longest.as_ref().map(|(s, _)| *s).unwrap_or(0.0),
        );
    g.summary = format!(
        "{total} of {} connections ({}%)",
        load.max_connections,
        fmt_number((ratio * 1000.0).round() / 10.0)
    );
    g.lines.push(format!(
        "{total} of max_connections {}: {}",
        load.max_connections,
        load.by_state
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    match &load.longest {
        Some((s, text)) => g.lines.push(format!(
            "longest-running query: {} s{}",
            fmt_number(s.round()),
            text.as_ref()
                .map(|t| format!(": {}", clip(t, 200)))
                .unwrap_or_default()
        )),
        None => g.lines.push("no query running".to_string()),
    }
    g.data = json!({
        "connections": total,
        "max_connections": load.max_connections,
        "by_state": load.by_state.iter().map(|(s, n)| json!({"state": s, "count": n})).collect::<Vec<_>>(),
        "longest_query_seconds": load.longest.as_ref().map(|(s, _)| s),
        "longest_query": load.longest.as_ref().and_then(|(_, t)| t.clone()),
    });
    g
}

/// Redis: PING round trip and INFO's memory and clients.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RedisState {
    pub ping_ms: f64,
    pub used_memory: Option<f64>,
    pub maxmemory: Option<f64>,
    pub clients: Option<f64>,
}

pub fn assess_redis(s: &RedisState) -> Gathered {
    let mut g = Gathered::default()
        .fact("redis.reachable", 1.0)
        .fact("redis.ping_ms", s.ping_ms);
    let ratio = match (s.used_memory, s.maxmemory) {
        (Some(u), Some(m)) if m > 0.0 => Some(u / m),
        _ => None,
    };
    if let Some(r) = ratio {
        g.facts.insert("redis.memory_ratio".into(), r);
    }
    if let Some(c) = s.clients {
        g.facts.insert("redis.clients".into(), c);
    }
    let mib = |b: f64| fmt_number((b / 1048576.0 * 10.0).round() / 10.0);
    let memory = match (s.used_memory, s.maxmemory) {
        (Some(u), Some(m)) if m > 0.0 => format!(
            "{} MiB of maxmemory {} MiB ({}%)",
            mib(u),
            mib(m),
            fmt_number((u / m * 1000.0).round() / 10.0)
        ),
        (Some(u), _) => format!("{} MiB (no maxmemory)", mib(u)),
        _ => "memory unknown".into(),
    };
    g.summary = format!(
        "PONG in {} ms, {memory}",
        fmt_number((s.ping_ms * 10.0).round() / 10.0)
    );
    g.lines.push(g.summary.clone());
    if let Some(c) = s.clients {
        g.lines
            .push(format!("{} connected client(s)", fmt_number(c)));
    }
    g.data = json!({
        "ping_ms": s.ping_ms, "used_memory": s.used_memory,
        "maxmemory": s.maxmemory, "clients": s.clients,
    });
    g
}

/// Reads a field of Redis's INFO text.
pub fn info_field(info: &str, key: &str) -> Option<f64> {
    info.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(':')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

pub fn assess_rds(
    instance: &DbInstance,
    events: Option<&[RdsEvent]>,
    now: DateTime<Utc>,
) -> Gathered {
    let mut g = Gathered::default().fact(
        "rds.available",
        // Statuses in which the instance still serves queries.
        if matches!(
            instance.status.as_str(),
            "available" | "backing-up" | "storage-optimization"
        ) {
            1.0
        } else {
            0.0
        },
    );
    g.lines
        .push(format!("instance {} is {}", instance.id, instance.status));
    match events {
        Some(evs) => {
            g.facts.insert("rds.events".into(), evs.len() as f64);
            // Newest first: the latest is the likeliest cause.
            for e in evs.iter().rev() {
                g.lines.push(format!(
                    "{}: {}{}",
                    e.at.map(|t| format!("{} ago", ago(now, t)))
                        .unwrap_or_else(|| "?".into()),
                    e.message,
                    if e.categories.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", e.categories.join(", "))
                    }
                ));
            }
            if evs.is_empty() {
                g.lines.push("no events in the last hour".into());
            }
        }
        None => g.lines.push("events not read".into()),
    }
    g.summary = format!(
        "{} {}, {} event(s) in the last hour",
        instance.id,
        instance.status,
        events
            .map(|e| e.len().to_string())
            .unwrap_or_else(|| "?".into())
    );
    g.data = json!({
        "instance": instance.id,
        "status": instance.status,
        "events": events.unwrap_or_default().iter().map(|e| json!({
            "at": e.at, "message": e.message, "categories": e.categories,
        })).collect::<Vec<_>>(),
    });
    g
}

pub fn assess_alerts(alerts: &[Alert], now: DateTime<Utc>) -> Gathered {
    let critical = alerts
        .iter()
        .filter(|a| a.labels.get("severity").map(String::as_str) == Some("critical"))
        .count();
    let mut g = Gathered::default()
        .fact("alerts.firing", alerts.len() as f64)
        .fact("alerts.critical", critical as f64);
    let mut sorted: Vec<&Alert> = alerts.iter().collect();
    // Critical first, then oldest first: the first to fire is often the cause.
    sorted.sort_by_key(|a| {
        (
            a.labels.get("severity").map(String::as_str) != Some("critical"),
            a.starts_at,
        )
    });
    for a in sorted {
        g.lines.push(format!(
            "{} [{}]{}{}",
            a.labels.get("alertname").cloned().unwrap_or_default(),
            a.labels
                .get("severity")
                .cloned()
                .unwrap_or_else(|| "none".into()),
            a.starts_at
                .map(|t| format!(" for {}", ago(now, t)))
                .unwrap_or_default(),
            a.annotations
                .get("summary")
                .map(|s| format!(": {}", clip(s, 160)))
                .unwrap_or_default()
        ));
    }
    g.summary = if alerts.is_empty() {
        "no alerts firing".into()
    } else {
        format!("{} firing, {critical} critical", alerts.len())
    };
    g.data = json!(alerts);
    g
}

#[cfg(test)]
mod tests;
