//! What a triage concludes from what it gathered, pure: the runbook's
//! severity and its known issues, matched by rules written in jobs.yaml
//! against named facts (`db.connection_ratio`, `api.oomkilled`, …). A rule
//! is data, so the on-call team adds a known issue without a release.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::checks::compare::Condition;
use crate::model::fmt_number;
use crate::yaml::{At, Diags, Name, Pos, Text};

/// Numbers the parts measured, by name. A yes/no fact is 1 or 0; a fact a
/// failed part could not measure is absent, and a condition on it holds
/// for no rule.
pub type Facts = BTreeMap<String, f64>;

/// Every fact the parts can produce (besides `logs.<pattern>`), with what
/// it means: the README table and the rule validation read this list.
pub const FACTS: &[(&str, &str)] = &[
    (
        "api.pods",
        "pods of the selector still serving (not Succeeded or Failed, e.g. Evicted)",
    ),
    ("api.pods_ready", "pods Ready"),
    (
        "api.pods_not_ready",
        "pods not Ready, leaving out those started in the last 2 minutes",
    ),
    ("api.restarts", "container restarts, all pods"),
    (
        "api.restarted_recently",
        "pods with a container that ended in the last hour",
    ),
    (
        "api.crashlooping",
        "pods with a container waiting in CrashLoopBackOff",
    ),
    (
        "api.oomkilled",
        "pods with a container OOMKilled in the last hour",
    ),
    (
        "api.memory_ratio",
        "highest container memory use against its limit (0-1)",
    ),
    (
        "api.health_ok",
        "the health URL answered 2xx (1) or not (0)",
    ),
    ("events.warnings", "Warning events in the last hour"),
    ("deploy.revision", "the deployment's current revision"),
    (
        "deploy.age_minutes",
        "minutes since the current revision rolled out (its ReplicaSet made, or the deployment last progressed to it)",
    ),
    (
        "deploy.image_changed",
        "the current revision's images differ from the previous one's (1; 0 for a restart)",
    ),
    (
        "deploy.progressing",
        "a rollout is under way (1) or done (0)",
    ),
    ("deploy.unavailable", "unavailable replicas"),
    ("errors.rate", "error rate now (0-1)"),
    ("errors.rate_1h_ago", "error rate an hour ago"),
    ("errors.rate_1d_ago", "error rate at this time yesterday"),
    ("errors.rise_1h", "error rate now less an hour ago"),
    ("latency.p99", "p99 latency now, seconds"),
    ("latency.p99_1h_ago", "p99 latency an hour ago"),
    ("latency.p99_1d_ago", "p99 latency at this time yesterday"),
    ("db.reachable", "the app database answered (1) or not (0)"),
    ("db.connections", "connections open"),
    ("db.max_connections", "max_connections"),
    (
        "db.connection_ratio",
        "connections against max_connections (0-1)",
    ),
    (
        "db.idle_in_transaction",
        "connections idle in a transaction",
    ),
    (
        "db.longest_query_seconds",
        "age of the longest-running query",
    ),
    ("redis.reachable", "Redis answered PING (1) or not (0)"),
    ("redis.ping_ms", "PING round trip, milliseconds"),
    (
        "redis.memory_ratio",
        "used_memory against maxmemory (0-1; absent without maxmemory)",
    ),
    ("redis.clients", "connected clients"),
    (
        "rds.available",
        "the RDS instance serves (1: `available`, `backing-up`, `storage-optimization`) or not (0)",
    ),
    ("rds.events", "RDS events for the instance in the last hour"),
    ("alerts.firing", "alerts firing in Alertmanager"),
    ("alerts.critical", "alerts firing with severity critical"),
];

/// One known issue: when its facts hold, the triage names it with the
/// evidence and the runbook's remedy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A short id, e.g. `pool-exhausted`. Required.
    pub name: Name,
    /// The runbook's name for it. Required.
    pub issue: Name,
    /// Facts that must all hold, e.g. `{db.connection_ratio: "> 0.8"}`.
    #[serde(default)]
    pub when: BTreeMap<String, At<Condition>>,
    /// Facts of which at least one must hold (besides all of `when`).
    #[serde(default)]
    pub when_any: BTreeMap<String, At<Condition>>,
    /// What to do, from the runbook. Required.
    pub remedy: Text,
    /// The runbook section (an anchor under `links.runbook`). Default none.
    pub runbook: Option<Text>,
    /// A runbookd job that performs the remedy; suggested with
    /// `--dry-run`, never run. Default none.
    pub suggest: Option<Text>,
}

impl Rule {
    /// `log_facts`: the `logs.<pattern>` names the job defines.
    pub fn validate(&self, at: Pos, log_facts: &[String], diags: &mut Diags) {
        if self.when.is_empty() && self.when_any.is_empty() {
            diags.at(
                at,
                format!("rule `{}` needs `when` or `when_any`", self.name),
            );
        }
        for (fact, c) in self.when.iter().chain(&self.when_any) {
            if !FACTS.iter().any(|(f, _)| f == fact) && !log_facts.iter().any(|f| f == fact) {
                let mut known: Vec<String> = FACTS.iter().map(|(f, _)| f.to_string()).collect();
                known.extend(log_facts.iter().cloned());
                let near = known
                    .iter()
                    .min_by_key(|k| strsim::levenshtein(k, fact))
                    .filter(|k| strsim::levenshtein(k, fact) <= 3);
                diags.at(
                    c.at,
                    format!(
                        "rule `{}`: no fact `{fact}`{}",
                        self.name,
                        match near {
                            Some(n) => format!(" (did you mean `{n}`?)"),
                            None => "; facts are listed in the README (triage)".to_string(),
                        }
                    ),
                );
            }
        }
    }

    /// The evidence when the rule holds on `facts`, else `None`.
    pub fn matches(&self, facts: &Facts) -> Option<Vec<String>> {
        let holds = |fact: &String, c: &At<Condition>| -> Option<String> {
            let v = *facts.get(fact)?;
            c.value
                .holds(v)
                .then(|| format!("{fact} = {} ({})", fmt_number(v), c.value))
        };
        let mut evidence = Vec::new();
        for (fact, c) in &self.when {
            evidence.push(holds(fact, c)?);
        }
        if !self.when_any.is_empty() {
            let any: Vec<String> = self
                .when_any
                .iter()
                .filter_map(|(f, c)| holds(f, c))
                .collect();
            if any.is_empty() {
                return None;
            }
            evidence.extend(any);
        }
        Some(evidence)
    }
}

/// A known issue found, as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    pub rule: String,
    pub issue: String,
    pub evidence: Vec<String>,
    pub remedy: String,
    /// The runbook link, when the rule names a section and links are set.
    pub runbook: Option<String>,
    /// The command that performs the remedy, to try as a dry run first.
    pub suggest: Option<String>,
}

pub fn match_all(rules: &[Rule], facts: &Facts, runbook_url: Option<&str>) -> Vec<Match> {
    rules
        .iter()
        .filter_map(|r| {
            let evidence = r.matches(facts)?;
            Some(Match {
                rule: r.name.to_string(),
                issue: r.issue.to_string(),
                evidence,
                remedy: r.remedy.to_string(),
                runbook: r.runbook.as_ref().map(|a| match runbook_url {
                    Some(u) => format!("{u}#{a}"),
                    None => format!("#{a}"),
                }),
                suggest: r
                    .suggest
                    .as_ref()
                    .map(|j| format!("runbookd run {j} --dry-run")),
            })
        })
        .collect()
}

/// The runbook's severity levels, as far as a triage can tell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    /// Complete outage.
    P0,
    /// Critical degradation.
    P1,
    /// Nothing the triage could see.
    None,
    /// Nothing could be read at all.
    Unknown,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::P0 => "P0 (complete outage)",
            Severity::P1 => "P1 (critical degradation)",
            Severity::None => "no incident found",
            Severity::Unknown => "unknown: nothing could be read",
        })
    }
}

/// Where severity starts. Defaults from the runbook's table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    /// Error rate that is an outage. Default 0.5.
    pub p0_error_rate: f64,
    /// Error rate that is a critical degradation. Default 0.1 (the
    /// runbook's "Error rate >10%").
    pub p1_error_rate: f64,
    /// p99 latency, seconds, that is a critical degradation. Default 5
    /// (the runbook's "API latency >5s").
    pub p1_latency: f64,
}

impl Default for Levels {
    fn default() -> Self {
        Levels {
            p0_error_rate: 0.5,
            p1_error_rate: 0.1,
            p1_latency: 5.0,
        }
    }
}

/// The severity and why, most telling reason first.
pub fn severity(facts: &Facts, levels: &Levels, matches: &[Match]) -> (Severity, Vec<String>) {
    let f = |k: &str| facts.get(k).copied();
    let mut p0 = Vec::new();
    if f("api.pods").is_some_and(|n| n > 0.0) && f("api.pods_ready") == Some(0.0) {
        p0.push("no API pod is Ready".to_string());
    }
    if f("api.pods") == Some(0.0) {
        p0.push("the API has no pods".to_string());
    }
    if f("api.health_ok") == Some(0.0) {
        p0.push("the health check fails".to_string());
    }
    if let Some(r) = f("errors.rate").filter(|r| *r > levels.p0_error_rate) {
        p0.push(format!(
            "error rate {}% over {}%",
            fmt_number(r * 100.0),
            fmt_number(levels.p0_error_rate * 100.0)
        ));
    }
    if f("db.reachable") == Some(0.0) {
        p0.push("the database is unreachable".to_string());
    }
    if !p0.is_empty() {
        return (Severity::P0, p0);
    }
    let mut p1 = Vec::new();
    if let Some(r) = f("errors.rate").filter(|r| *r > levels.p1_error_rate) {
        p1.push(format!(
            "error rate {}% over {}%",
            fmt_number(r * 100.0),
            fmt_number(levels.p1_error_rate * 100.0)
        ));
    }
    if let Some(l) = f("latency.p99").filter(|l| *l > levels.p1_latency) {
        p1.push(format!(
            "p99 latency {} s over {} s",
            fmt_number(l),
            fmt_number(levels.p1_latency)
        ));
    }
    for m in matches {
        p1.push(format!("known issue: {}", m.issue));
    }
    if let Some(n) = f("api.pods_not_ready").filter(|n| *n > 0.0) {
        p1.push(format!("{} API pod(s) not Ready", fmt_number(n)));
    }
    if let Some(n) = f("alerts.critical").filter(|n| *n > 0.0) {
        p1.push(format!("{} critical alert(s) firing", fmt_number(n)));
    }
    if p1.is_empty() {
        (Severity::None, Vec::new())
    } else {
        (Severity::P1, p1)
    }
}
