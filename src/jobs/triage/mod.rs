//! `kind: triage`: the runbook's first ten minutes of an incident as one
//! read-only run. Every configured part (pods and their logs, Warning
//! events, the deployment's revisions, error rate and p99 against an hour
//! and a day ago, the app database's connections, Redis, RDS, firing
//! alerts, the health URL) is read at once, each under its own timeout; a
//! part that fails is reported and never stops the others. Then the facts
//! they measured go through the known-issue rules of jobs.yaml
//! ([`rules`]), and the run names a severity, the issues matched with their
//! evidence and remedy, and the runbookd job that would act (as a dry run:
//! triage never changes anything).
//!
//! Each part is a step of the run (its payload is the part's data, for
//! `show --json`); the readable triage is the run's log, most telling
//! first.

pub mod gather;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Deserialize;
use serde_json::json;
use sqlx::Connection;

use self::gather::{Gathered, Trend};
use self::rules::{Facts, Levels, Match, Rule, Severity};
use super::{ExecEnv, Job, JobError, JobKind, Outcome, RunContext};
use crate::adapters::Adapters;
use crate::adapters::aws::Target;
use crate::checks::CheckContext;
use crate::checks::alertmanager::AlertmanagerCheck;
use crate::checks::prometheus::PrometheusCheck;
use crate::clock::Clock;
use crate::config::JobSpec;
use crate::config::urls::{self, UrlKind};
use crate::model::{Dur, StepStatus};
use crate::secret::{Redactor, SecretUrl, redact_url};
use crate::yaml::{At, Diags, Ident, Pos, Required, Text};

/// Prometheus queries for the error rate and p99 latency.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromQueries {
    /// Prometheus base URL (its password, if any, is a secret). Required.
    pub url: SecretUrl,
    /// The error rate, 0-1. Required.
    pub error_rate: Required,
    /// p99 latency in seconds. Required.
    pub latency_p99: Required,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdsPart {
    /// DB instance identifier. Required.
    pub instance: Ident,
    /// AWS region. Default: the standard chain.
    pub region: Option<Ident>,
}

/// Where severity starts; see [`Levels`] for the defaults.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityConfig {
    /// Default 0.5.
    pub p0_error_rate: Option<At<f64>>,
    /// Default 0.1.
    pub p1_error_rate: Option<At<f64>>,
    /// Default 5s.
    pub p1_latency: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageSpec {
    /// The API's namespace. Default `default`.
    pub namespace: Option<Ident>,
    /// The API's pods. Default `app=api`.
    pub selector: Option<Required>,
    /// The API's deployment. Default `api-deployment`.
    pub deployment: Option<Ident>,
    /// GET, expecting 2xx (the runbook's `curl …/health`). Default: not read.
    pub health_url: Option<SecretUrl>,
    /// Default: not read.
    pub prometheus: Option<PromQueries>,
    /// The application's Postgres, read only. A secret. Default: not read.
    pub database_url: Option<SecretUrl>,
    /// Show the longest-running query's text (redacted). Default `false`:
    /// only its age.
    pub show_query_text: Option<bool>,
    /// A secret. Default: not read.
    pub redis_url: Option<SecretUrl>,
    /// Default: not read.
    pub rds: Option<RdsPart>,
    /// Alertmanager base URL. Default: not read.
    pub alertmanager_url: Option<SecretUrl>,
    /// Log lines read from each chosen pod. Default 100.
    pub log_lines: Option<At<i64>>,
    /// Substrings counted (case-insensitively) in the logs read, each as
    /// fact `logs.<name>`. Default none.
    #[serde(default)]
    pub log_patterns: BTreeMap<String, Vec<Text>>,
    /// Each part's own timeout. Default `8s`.
    pub part_timeout: Option<At<Dur>>,
    pub severity: Option<SeverityConfig>,
    /// The known issues. Default none.
    #[serde(default)]
    pub rules: Vec<At<Rule>>,
}

pub const DEFAULT_PART_TIMEOUT: Duration = Duration::from_secs(8);
/// Troubled pods whose logs are read, at most.
const MAX_LOG_PODS: usize = 5;

impl TriageSpec {
    fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
    fn selector(&self) -> &str {
        self.selector.as_deref().unwrap_or("app=api")
    }
    fn deployment(&self) -> &str {
        self.deployment.as_deref().unwrap_or("api-deployment")
    }
    fn part_timeout(&self) -> Duration {
        self.part_timeout
            .map(|d| d.value.0)
            .unwrap_or(DEFAULT_PART_TIMEOUT)
    }
    fn log_lines(&self) -> i64 {
        self.log_lines.map(|l| l.value).unwrap_or(100)
    }
    fn levels(&self) -> Levels {
        let d = Levels::default();
        match self.severity {
            None => d,
            Some(s) => Levels {
                p0_error_rate: s.p0_error_rate.map(|v| v.value).unwrap_or(d.p0_error_rate),
                p1_error_rate: s.p1_error_rate.map(|v| v.value).unwrap_or(d.p1_error_rate),
                p1_latency: s
                    .p1_latency
                    .map(|l| l.0.as_secs_f64())
                    .unwrap_or(d.p1_latency),
            },
        }
    }
    fn log_facts(&self) -> Vec<String> {
        self.log_patterns
            .keys()
            .map(|k| format!("logs.{k}"))
            .collect()
    }

    /// The parts this job reads, with what each reads (a dry run lists
    /// them).
    pub fn parts(&self) -> Vec<(&'static str, String)> {
        let ns = self.namespace();
        let mut out = vec![
            (
                "pods",
                format!("pods {} in {ns} and their logs", self.selector()),
            ),
            (
                "deployment",
                format!("deployment {} in {ns}", self.deployment()),
            ),
            ("events", format!("Warning events in {ns}")),
        ];
        if let Some(p) = &self.prometheus {
            out.push(("metrics", format!("Prometheus {}", p.url)));
        }
        if let Some(u) = &self.database_url {
            out.push(("database", redact_url(u.expose())));
        }
        if let Some(u) = &self.redis_url {
            out.push(("redis", redact_url(u.expose())));
        }
        if let Some(r) = &self.rds {
            out.push(("rds", format!("RDS instance {}", r.instance)));
        }
        if let Some(u) = &self.alertmanager_url {
            out.push(("alerts", format!("Alertmanager {u}")));
        }
        if let Some(u) = &self.health_url {
            out.push(("health", format!("GET {u}")));
        }
        out
    }
}

impl JobSpec for TriageSpec {
    fn validate(&self, _job: &str, diags: &mut Diags) {
        let logs = self.log_facts();
        for r in &self.rules {
            r.value.validate(r.at, &logs, diags);
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.rules {
            if !seen.insert(r.value.name.as_str()) {
                diags.at(
                    r.value.name.at(),
                    format!("two rules named `{}`", r.value.name),
                );
            }
        }
        // Zero would fail every part at once and call it an outage.
        if let Some(t) = self.part_timeout
            && t.value.0.is_zero()
        {
            diags.at(t.at, "part_timeout must be more than 0s");
        }
        if let Some(l) = self.log_lines
            && !(1..=10_000).contains(&l.value)
        {
            diags.at(l.at, "log_lines must be between 1 and 10000");
        }
        let urls = [
            ("database_url", &self.database_url, UrlKind::Postgres),
            ("redis_url", &self.redis_url, UrlKind::Redis),
            ("health_url", &self.health_url, UrlKind::Http),
            ("alertmanager_url", &self.alertmanager_url, UrlKind::Http),
            (
                "prometheus.url",
                &self.prometheus.as_ref().map(|p| p.url.clone()),
                UrlKind::Http,
            ),
        ];
        for (field, url, kind) in urls {
            if let Some(u) = url {
                urls::check(u, field, kind, Pos::default(), diags);
            }
        }
        if let Some(s) = self.severity {
            for (name, v) in [
                ("p0_error_rate", s.p0_error_rate),
                ("p1_error_rate", s.p1_error_rate),
            ] {
                if let Some(v) = v
                    && !(0.0..=1.0).contains(&v.value)
                {
                    diags.at(v.at, format!("severity.{name} is a rate between 0 and 1"));
                }
            }
        }
    }

    /// The jobs rules suggest must exist (any kind).
    fn references(&self) -> Vec<(&Text, &'static str)> {
        self.rules
            .iter()
            .filter_map(|r| r.value.suggest.as_ref())
            .map(|s| (s, "*"))
            .collect()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl JobKind for TriageSpec {
    fn executor(&self, env: &ExecEnv) -> Arc<dyn Job> {
        Arc::new(TriageJob {
            spec: self.clone(),
            adapters: env.adapters.clone(),
            clock: env.clock.clone(),
            runbook_url: env.config.as_ref().and_then(|c| c.links.runbook.clone()),
        })
    }
}

/// Why the app database could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbFailure {
    /// No answer: refused, reset, TLS, timed out.
    Unreachable,
    /// `too many clients already` (SQLSTATE 53300).
    Full,
    /// Anything else: a refused login, a missing database, a query error.
    Other,
}

impl DbFailure {
    fn of(e: &sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => {
                DbFailure::Unreachable
            }
            sqlx::Error::Database(d) if d.code().as_deref() == Some("53300") => DbFailure::Full,
            _ => DbFailure::Other,
        }
    }
}

#[derive(Debug)]
pub struct TriageJob {
    spec: TriageSpec,
    adapters: Arc<Adapters>,
    clock: Arc<dyn Clock>,
    runbook_url: Option<String>,
}

/// The triage as concluded: what the run stores in its last step.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diagnosis {
    pub severity: Severity,
    pub reasons: Vec<String>,
    pub matches: Vec<Match>,
    pub failed_parts: Vec<String>,
    /// The failed parts that measured nothing, so nothing of them was
    /// judged. A failed part with a fact (a health URL that did not
    /// answer: `api.health_ok = 0`) was judged by it, and is said once, as
    /// what it led to.
    pub unread_parts: Vec<String>,
    pub facts: Facts,
}

/// Concludes from the parts. Pure.
pub fn conclude(
    parts: &[(&str, Gathered)],
    rules: &[Rule],
    levels: &Levels,
    runbook_url: Option<&str>,
) -> Diagnosis {
    let mut facts = Facts::new();
    for (_, g) in parts {
        facts.extend(g.facts.clone());
    }
    let matches = rules::match_all(rules, &facts, runbook_url);
    let (mut severity, mut reasons) = rules::severity(&facts, levels, &matches);
    // Every part failed: the facts that say "down" (health, database) are
    // as likely runbookd's own network as production. Judge nothing.
    if !parts.is_empty() && parts.iter().all(|(_, g)| g.error.is_some()) {
        severity = Severity::Unknown;
        reasons =
            vec!["no part could be read; runbookd itself may be cut off from the targets".into()];
    }
    Diagnosis {
        severity,
        reasons,
        matches,
        failed_parts: parts
            .iter()
            .filter(|(_, g)| g.error.is_some())
            .map(|(n, _)| n.to_string())
            .collect(),
        unread_parts: parts
            .iter()
            .filter(|(_, g)| g.error.is_some() && g.facts.is_empty())
            .map(|(n, _)| n.to_string())
            .collect(),
        facts,
    }
}

/// The readable triage: the verdict, the known issues with evidence and
/// remedy, then every part's section.
pub fn render(d: &Diagnosis, parts: &[(&str, Gathered)]) -> String {
    let mut out = String::new();
    out.push_str(&format!("TRIAGE: {}\n", d.severity));
    for r in &d.reasons {
        out.push_str(&format!("  - {r}\n"));
    }
    if !d.unread_parts.is_empty() {
        out.push_str(&format!(
            "  - not read, so not judged: {}\n",
            d.unread_parts.join(", ")
        ));
    }
    if !d.matches.is_empty() {
        out.push_str("\nKNOWN ISSUES (from the runbook)\n");
        for (i, m) in d.matches.iter().enumerate() {
            out.push_str(&format!("{}. {} [{}]\n", i + 1, m.issue, m.rule));
            out.push_str(&format!("   evidence: {}\n", m.evidence.join("; ")));
            out.push_str(&format!("   remedy:   {}\n", m.remedy));
            if let Some(s) = &m.suggest {
                out.push_str(&format!(
                    "   try:      {s}  (a dry run; triage changes nothing)\n"
                ));
            }
            if let Some(r) = &m.runbook {
                out.push_str(&format!("   runbook:  {r}\n"));
            }
        }
    }
    // Failed parts first: an unreadable part is itself evidence.
    let mut ordered: Vec<&(&str, Gathered)> =
        parts.iter().filter(|(_, g)| g.error.is_some()).collect();
    ordered.extend(parts.iter().filter(|(_, g)| g.error.is_none()));
    for (name, g) in ordered {
        let failed = if g.error.is_some() { "failed: " } else { "" };
        out.push_str(&format!(
            "\n{}: {failed}{}\n",
            name.to_uppercase(),
            g.summary
        ));
        for l in &g.lines {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out
}

#[async_trait]
impl Job for TriageJob {
    async fn run(&self, ctx: &RunContext) -> Result<Outcome, JobError> {
        let parts = self.spec.parts();
        if ctx.dry_run {
            for (name, target) in &parts {
                ctx.steps
                    .skipped(name, target, "dry run: would read it, changing nothing")
                    .await?;
            }
            return Ok(Outcome {
                summary: Some(format!("dry run: {} parts listed, none read", parts.len())),
                ..Default::default()
            });
        }
        let started = Instant::now();
        let now = self.clock.now();
        ctx.log.info(&format!(
            "triage: reading {} parts at once, each within {}",
            parts.len(),
            humantime::format_duration(self.spec.part_timeout())
        ));
        let mut pending = FuturesUnordered::new();
        for (name, target) in parts {
            pending.push(self.part(ctx, name, target, now));
        }
        // A cancel ends every part at once (each closes its step as
        // cancelled), so the history keeps no step `running`.
        let mut gathered: Vec<(&'static str, Gathered)> = Vec::new();
        while let Some(r) = pending.next().await {
            gathered.push(r);
        }
        if ctx.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        // A fixed order to read, whatever finished first.
        let order = [
            "pods",
            "deployment",
            "metrics",
            "database",
            "redis",
            "rds",
            "alerts",
            "health",
            "events",
        ];
        gathered.sort_by_key(|(n, _)| order.iter().position(|o| o == n));
        let rules: Vec<Rule> = self.spec.rules.iter().map(|r| r.value.clone()).collect();
        let d = conclude(
            &gathered,
            &rules,
            &self.spec.levels(),
            self.runbook_url.as_deref(),
        );
        let text = ctx.redactor.redact(&render(&d, &gathered));
        // Echoed, unlike a checklist's table: `run triage` shows the triage
        // itself after the progress lines.
        for line in text.lines() {
            ctx.log.info(line);
        }
        let summary = match d.severity {
            Severity::Unknown => {
                "nothing could be read: every part failed (is runbookd cut off from the targets?)"
                    .to_string()
            }
            Severity::None if d.unread_parts.is_empty() => {
                format!("no incident found ({} parts read)", gathered.len())
            }
            // Silence from a part is not health: say what was not seen.
            Severity::None => format!(
                "no incident found in {} of {} parts; not read: {}",
                gathered.len() - d.unread_parts.len(),
                gathered.len(),
                d.unread_parts.join(", ")
            ),
            // The reasons first (what the page is about), then the known
            // issues that explain it.
            s => {
                let mut line = format!(
                    "{}: {}",
                    if s == Severity::P0 { "P0" } else { "P1" },
                    d.reasons.join("; ")
                );
                if s == Severity::P0 && !d.matches.is_empty() {
                    line.push_str(&format!(
                        "; known issues: {}",
                        d.matches
                            .iter()
                            .map(|m| m.issue.clone())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ));
                }
                line
            }
        };
        let step = ctx
            .steps
            .start(
                "diagnosis",
                "rules of this job",
                "matching the facts to the known issues",
            )
            .await;
        let saved = match step {
            Ok(h) => h
                .end(
                    StepStatus::Succeeded,
                    &summary,
                    Some(serde_json::to_value(&d).unwrap_or_default()),
                )
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        // A read-only job goes on unrecorded; the log has the triage.
        if let Err(e) = saved {
            ctx.log
                .info(&format!("the diagnosis is not in the history: {e}"));
        }
        ctx.log.info(&format!(
            "triage done in {} ms: {summary}",
            started.elapsed().as_millis()
        ));
        // Nothing read at all is a failed triage; an incident found is a
        // triage that worked.
        Ok(Outcome {
            failure: (d.severity == Severity::Unknown).then(|| summary.clone()),
            summary: Some(summary),
            records: Vec::new(),
        })
    }
}

impl TriageJob {
    /// One part as a step: started, read under the part's timeout, ended
    /// with its summary (the progress line) and data.
    async fn part(
        &self,
        ctx: &RunContext,
        name: &'static str,
        target: String,
        now: DateTime<Utc>,
    ) -> (&'static str, Gathered) {
        // Triage changes nothing, so a step the history cannot take is said
        // in the log and the part goes on (a mutating job would stop).
        let step = match ctx.steps.start(name, &target, "reading").await {
            Ok(h) => Some(h),
            Err(e) => {
                ctx.log.info(&format!("{name}: not in the history: {e}"));
                None
            }
        };
        let limit = self.spec.part_timeout();
        let read = tokio::select! {
            r = tokio::time::timeout(limit, self.read(name, now, limit, &ctx.redactor)) => Some(r),
            _ = ctx.cancel.cancelled() => None,
        };
        let g = match read {
            None => Gathered::failed("cancelled: the run was stopped"),
            Some(Ok(g)) => g,
            Some(Err(_)) => {
                let mut g = Gathered::failed(format!(
                    "no answer within {}",
                    humantime::format_duration(limit)
                ));
                // A store that does not answer in time is down to the rules.
                match name {
                    "database" => g.facts.insert("db.reachable".into(), 0.0),
                    "redis" => g.facts.insert("redis.reachable".into(), 0.0),
                    "health" => g.facts.insert("api.health_ok".into(), 0.0),
                    _ => None,
                };
                g
            }
        };
        let status = if g.error.is_some() {
            StepStatus::Failed
        } else {
            StepStatus::Succeeded
        };
        let payload = json!({
            "facts": g.facts,
            "lines": g.lines,
            "data": g.data,
            "error": g.error,
        });
        match step {
            Some(h) => {
                if let Err(e) = h.end(status, &g.summary, Some(payload)).await {
                    ctx.log.info(&format!("{name}: not in the history: {e}"));
                }
            }
            // The progress line the step would have printed.
            None => ctx.log.info(&format!("{name} {status}: {}", g.summary)),
        }
        (name, g)
    }

    async fn read(
        &self,
        name: &str,
        now: DateTime<Utc>,
        limit: Duration,
        redactor: &Redactor,
    ) -> Gathered {
        match name {
            "pods" => self.read_pods(now, redactor).await,
            "deployment" => self.read_deployment(now).await,
            "events" => match self
                .adapters
                .cluster
                .warning_events(self.spec.namespace())
                .await
            {
                Ok(mut evs) => {
                    // An event's message is the cluster's text (a
                    // container's env in a failed start): scrubbed before
                    // it is cut short, so no secret is left half.
                    for e in &mut evs {
                        if let Some(m) = &e.message {
                            e.message = Some(redactor.redact(m));
                        }
                    }
                    gather::assess_events(&evs, now)
                }
                Err(e) => Gathered::failed(e.to_string()),
            },
            "metrics" => self.read_metrics(now, limit, redactor).await,
            "database" => self.read_db(limit, redactor).await,
            "redis" => self.read_redis(limit).await,
            "rds" => self.read_rds(now).await,
            "alerts" => self.read_alerts(now, limit, redactor).await,
            "health" => self.read_health(limit).await,
            other => Gathered::failed(format!("no part named {other}")),
        }
    }

    async fn read_pods(&self, now: DateTime<Utc>, redactor: &Redactor) -> Gathered {
        let cluster = &self.adapters.cluster;
        let (ns, sel) = (self.spec.namespace(), self.spec.selector());
        let limit = self.spec.part_timeout();
        // The pods' facts come from the list alone. Metrics get half the
        // part's time; the logs share one budget that ends an eighth of it
        // before the part's own timeout, so a log that never comes (a pod
        // on a dying node) costs its own lines, never the pods' facts.
        let logs_budget = limit - limit / 8;
        let logs_by = tokio::time::Instant::now() + logs_budget;
        let sub = limit / 2;
        let (pods, metrics) = tokio::join!(
            cluster.pods(ns, sel),
            tokio::time::timeout(sub, cluster.pod_metrics(ns, sel))
        );
        let pods = match pods {
            Ok(p) => p,
            Err(e) => return Gathered::failed(e.to_string()),
        };
        let (metrics, metrics_note) = match metrics {
            Ok(Ok(Some(m))) => (Some(m), None),
            Ok(Ok(None)) => (
                None,
                Some("not measured: metrics.k8s.io is not served".to_string()),
            ),
            Ok(Err(e)) => (None, Some(format!("not measured: {e}"))),
            Err(_) => (
                None,
                Some(format!(
                    "not measured: metrics.k8s.io did not answer within {}",
                    humantime::format_duration(sub)
                )),
            ),
        };
        let mut g = gather::assess_pods(&pods, metrics.as_deref(), now);
        if let Some(n) = metrics_note {
            g.lines.push(format!("memory: {n}"));
        }
        let rows = crate::checks::kubernetes::pods::pod_rows(&pods);
        let chosen = gather::logs_to_read(&rows, now, MAX_LOG_PODS);
        let tail = self.spec.log_lines();
        let reads = chosen.iter().map(|(pod, container, previous)| async move {
            let read = |prev: bool| async move {
                match tokio::time::timeout_at(
                    logs_by,
                    cluster.pod_logs(ns, pod, container, tail, prev),
                )
                .await
                {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!(
                        "the log of {pod} did not come within the {} the logs share",
                        humantime::format_duration(logs_budget)
                    )),
                }
            };
            let r = read(*previous).await;
            // A container that never ended has no previous log: read the
            // current one, while the budget lasts.
            let r = match r {
                Err(_) if *previous && tokio::time::Instant::now() < logs_by => read(false).await,
                r => r,
            };
            (pod.clone(), *previous, r)
        });
        let mut logs = Vec::new();
        let mut log_data = Vec::new();
        for (pod, previous, r) in futures::future::join_all(reads).await {
            match r {
                Ok(text) => {
                    // Scrubbed whole (a private key spans lines), then cut
                    // to the lines asked for.
                    let text = redactor.redact(&text);
                    let lines: Vec<String> = text.lines().map(|l| gather::clip(l, 1000)).collect();
                    let from = lines.len().saturating_sub(tail.max(0) as usize);
                    let lines = lines[from..].to_vec();
                    log_data.push(json!({"pod": pod, "previous": previous, "lines": lines}));
                    logs.push((pod, lines.join("\n")));
                }
                Err(e) => {
                    g.lines.push(format!("logs of {pod}: {e}"));
                    log_data.push(json!({"pod": pod, "error": e}));
                }
            }
        }
        let patterns: BTreeMap<String, Vec<String>> = self
            .spec
            .log_patterns
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|t| t.to_string()).collect()))
            .collect();
        let (facts, evidence) = gather::match_logs(&logs, &patterns);
        g.facts.extend(facts);
        for e in evidence {
            g.lines.push(format!("log: {e}"));
        }
        // The last lines of each log read, troubled pods first.
        for (pod, text) in &logs {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(5);
            g.lines.push(format!("last lines of {pod}:"));
            for l in &lines[from..] {
                g.lines.push(format!("  | {}", gather::clip(l, 200)));
            }
        }
        if let Some(obj) = g.data.as_object_mut() {
            obj.insert("logs".into(), json!(log_data));
        }
        g
    }

    async fn read_deployment(&self, now: DateTime<Utc>) -> Gathered {
        let cluster = &self.adapters.cluster;
        let ns = self.spec.namespace();
        let dep = match cluster.deployment(ns, self.spec.deployment()).await {
            Ok(d) => d,
            Err(e) => return Gathered::failed(e.to_string()),
        };
        let sets = match &dep {
            Some(d) => match cluster.replica_sets(ns, d).await {
                Ok(s) => s,
                Err(e) => {
                    let mut g =
                        gather::assess_deployment(self.spec.deployment(), dep.as_ref(), &[], now);
                    g.lines.push(format!("revisions not read: {e}"));
                    return g;
                }
            },
            None => Vec::new(),
        };
        gather::assess_deployment(self.spec.deployment(), dep.as_ref(), &sets, now)
    }

    async fn read_metrics(
        &self,
        now: DateTime<Utc>,
        limit: Duration,
        redactor: &Redactor,
    ) -> Gathered {
        let Some(p) = &self.spec.prometheus else {
            return Gathered::failed("not configured");
        };
        let mut ctx = CheckContext::new(now, self.adapters.clone()).with_redactor(redactor.clone());
        ctx.timeout = limit;
        let check = |q: &Required| PrometheusCheck {
            url: p.url.clone(),
            query: q.clone(),
            fail_if: None,
            warn_if: None,
            reduce: None,
            no_data: None,
            anomaly: None,
        };
        let (errors, p99) = (check(&p.error_rate), check(&p.latency_p99));
        let hour = now - chrono::Duration::hours(1);
        let day = now - chrono::Duration::days(1);
        let (e0, e1, e2, l0, l1, l2) = tokio::join!(
            errors.value_at(&ctx, now),
            errors.value_at(&ctx, hour),
            errors.value_at(&ctx, day),
            p99.value_at(&ctx, now),
            p99.value_at(&ctx, hour),
            p99.value_at(&ctx, day),
        );
        // The present is what matters: without it the part failed.
        if let (Err(a), Err(_)) = (&e0, &l0) {
            return Gathered::failed(a.to_string());
        }
        // A query that failed is said, not silently "no data".
        let mut notes = Vec::new();
        for (what, r) in [
            ("error rate now", &e0),
            ("error rate an hour ago", &e1),
            ("error rate yesterday", &e2),
            ("p99 now", &l0),
            ("p99 an hour ago", &l1),
            ("p99 yesterday", &l2),
        ] {
            if let Err(e) = r {
                notes.push(format!("{what} not read: {e}"));
            }
        }
        let v = |r: Result<Option<f64>, _>| r.ok().flatten().filter(|v: &f64| v.is_finite());
        let mut g = gather::assess_metrics(
            Trend {
                now: v(e0),
                hour_ago: v(e1),
                day_ago: v(e2),
            },
            Trend {
                now: v(l0),
                hour_ago: v(l1),
                day_ago: v(l2),
            },
        );
        g.lines.extend(notes);
        g
    }

    async fn read_db(&self, limit: Duration, redactor: &Redactor) -> Gathered {
        let Some(url) = &self.spec.database_url else {
            return Gathered::failed("not configured");
        };
        let target = redact_url(url.expose());
        let show_text = self.spec.show_query_text.unwrap_or(false);
        let read = async {
            let mut con = sqlx::PgConnection::connect(url.expose())
                .await
                .map_err(|e| (DbFailure::of(&e), format!("connect to {target}: {e}")))?;
            let q = |e: sqlx::Error| (DbFailure::Other, format!("{target}: {e}"));
            let mut tx = con.begin().await.map_err(q)?;
            sqlx::query("SET TRANSACTION READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(q)?;
            sqlx::query("SELECT set_config('statement_timeout', $1, true)")
                .bind(limit.as_millis().max(1000).to_string())
                .execute(&mut *tx)
                .await
                .map_err(q)?;
            let by_state: Vec<(String, i64)> =
                sqlx::query_as(include_str!("sql/connections_by_state.sql"))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(q)?;
            let (max,): (i32,) = sqlx::query_as(include_str!("sql/max_connections.sql"))
                .fetch_one(&mut *tx)
                .await
                .map_err(q)?;
            let longest: Option<(f64, String)> =
                sqlx::query_as(include_str!("sql/longest_query.sql"))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(q)?;
            let _ = tx.rollback().await;
            let _ = con.close().await;
            Ok::<_, (DbFailure, String)>(gather::DbLoad {
                by_state,
                max_connections: i64::from(max),
                // A query's text may hold a literal password: scrubbed
                // before it is cut short.
                longest: longest.map(|(s, t)| (s, show_text.then(|| redactor.redact(&t)))),
            })
        };
        match read.await {
            Ok(load) => gather::assess_db(&load),
            // Only a database that cannot be reached is "unreachable"; a
            // full one is the pool-exhausted case, and a refused login is
            // triage's own configuration, not a fact about production.
            Err((DbFailure::Unreachable, e)) => Gathered::failed(e).fact("db.reachable", 0.0),
            Err((DbFailure::Full, e)) => {
                let mut g = Gathered::failed(e)
                    .fact("db.reachable", 1.0)
                    .fact("db.connection_ratio", 1.0);
                g.summary = format!("every connection slot is taken: {}", g.summary);
                g
            }
            Err((DbFailure::Other, e)) => Gathered::failed(e),
        }
    }

    async fn read_redis(&self, limit: Duration) -> Gathered {
        let Some(url) = &self.spec.redis_url else {
            return Gathered::failed("not configured");
        };
        let target = redact_url(url.expose());
        // Refused, dropped or silent is unreachable; an error Redis
        // answered (NOAUTH, MISCONF) fails the part without a verdict.
        let unreachable = |e: redis::RedisError| {
            let g = Gathered::failed(format!("{target}: {e}"));
            if e.is_io_error()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.is_connection_dropped()
            {
                g.fact("redis.reachable", 0.0)
            } else {
                g
            }
        };
        let client = match redis::Client::open(url.expose()) {
            Ok(c) => c,
            Err(e) => return unreachable(e),
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(limit))
            .set_response_timeout(Some(limit));
        let mut con = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(c) => c,
            Err(e) => return unreachable(e),
        };
        let t = Instant::now();
        if let Err(e) = redis::cmd("PING").query_async::<String>(&mut con).await {
            return unreachable(e);
        }
        let ping_ms = t.elapsed().as_secs_f64() * 1000.0;
        let info: String = redis::cmd("INFO")
            .query_async(&mut con)
            .await
            .unwrap_or_default();
        gather::assess_redis(&gather::RedisState {
            ping_ms,
            used_memory: gather::info_field(&info, "used_memory"),
            maxmemory: gather::info_field(&info, "maxmemory"),
            clients: gather::info_field(&info, "connected_clients"),
        })
    }

    async fn read_rds(&self, now: DateTime<Utc>) -> Gathered {
        let Some(r) = &self.spec.rds else {
            return Gathered::failed("not configured");
        };
        let target = Target {
            region: r.region.as_ref().map(|t| t.to_string()),
        };
        let (instance, events) = tokio::join!(
            self.adapters.rds.instance(&target, &r.instance),
            self.adapters.rds.events(&target, &r.instance, 60)
        );
        match instance.and_then(|i| i.belonging_to(&r.instance)) {
            Ok(i) => {
                let mut g = gather::assess_rds(&i, events.as_ref().ok().map(Vec::as_slice), now);
                if let Err(e) = events {
                    g.lines.push(format!("events not read: {e}"));
                }
                g
            }
            Err(e) => Gathered::failed(format!("RDS instance {}: {e}", r.instance)),
        }
    }

    async fn read_alerts(
        &self,
        now: DateTime<Utc>,
        limit: Duration,
        redactor: &Redactor,
    ) -> Gathered {
        let Some(url) = &self.spec.alertmanager_url else {
            return Gathered::failed("not configured");
        };
        let check = AlertmanagerCheck {
            url: url.clone(),
            matchers: Vec::new(),
            severities: None,
            fail_at: None,
        };
        let mut ctx = CheckContext::new(now, self.adapters.clone());
        ctx.timeout = limit;
        match check.firing(&ctx).await {
            Ok(mut alerts) => {
                // Annotations are other people's text: scrubbed before
                // they are cut short.
                for a in &mut alerts {
                    for v in a.annotations.values_mut() {
                        *v = redactor.redact(v);
                    }
                }
                gather::assess_alerts(&alerts, now)
            }
            Err(e) => Gathered::failed(e.to_string()),
        }
    }

    async fn read_health(&self, limit: Duration) -> Gathered {
        let Some(url) = &self.spec.health_url else {
            return Gathered::failed("not configured");
        };
        let t = Instant::now();
        match self
            .adapters
            .http
            .get(url.expose())
            .timeout(limit)
            .send()
            .await
        {
            Ok(r) => {
                let ok = r.status().is_success();
                let ms = t.elapsed().as_millis();
                let mut g = Gathered::default().fact("api.health_ok", if ok { 1.0 } else { 0.0 });
                g.summary = format!("{} in {ms} ms", r.status());
                g.lines
                    .push(format!("GET {url}: {} in {ms} ms", r.status()));
                g.data = json!({"status": r.status().as_u16(), "ms": ms});
                g
            }
            Err(e) => {
                Gathered::failed(crate::checks::http::describe_error("GET", &url.shown(), &e))
                    .fact("api.health_ok", 0.0)
            }
        }
    }
}

#[cfg(test)]
mod tests;
