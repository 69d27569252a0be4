//! The shipped known-issue rules as tables: each issue found from its own
//! evidence, none on a healthy stack; severity by the runbook's levels;
//! rule validation.

use super::rules::{Facts, Levels, Severity, match_all, severity};
use super::*;

/// The triage job of the shipped jobs.yaml, every variable at its default.
fn shipped() -> TriageSpec {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = crate::jobs::load_str(&path, &text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    config
        .job("triage")
        .unwrap()
        .spec_as::<TriageSpec>()
        .expect("triage is a triage job")
        .clone()
}

/// A healthy stack, as every part would measure it.
fn healthy() -> Facts {
    [
        ("api.pods", 3.0),
        ("api.pods_ready", 3.0),
        ("api.pods_not_ready", 0.0),
        ("api.restarts", 0.0),
        ("api.restarted_recently", 0.0),
        ("api.crashlooping", 0.0),
        ("api.oomkilled", 0.0),
        ("api.memory_ratio", 0.55),
        ("api.health_ok", 1.0),
        ("events.warnings", 0.0),
        ("deploy.revision", 7.0),
        ("deploy.image_changed", 1.0),
        ("deploy.age_minutes", 4320.0),
        ("deploy.progressing", 0.0),
        ("deploy.unavailable", 0.0),
        ("errors.rate", 0.002),
        ("errors.rate_1h_ago", 0.002),
        ("errors.rate_1d_ago", 0.003),
        ("errors.rise_1h", 0.0),
        ("latency.p99", 0.4),
        ("latency.p99_1h_ago", 0.4),
        ("latency.p99_1d_ago", 0.5),
        ("db.reachable", 1.0),
        ("db.connections", 40.0),
        ("db.max_connections", 100.0),
        ("db.connection_ratio", 0.4),
        ("db.idle_in_transaction", 0.0),
        ("db.longest_query_seconds", 0.2),
        ("redis.reachable", 1.0),
        ("redis.ping_ms", 0.8),
        ("redis.memory_ratio", 0.3),
        ("redis.clients", 12.0),
        ("rds.available", 1.0),
        ("rds.events", 0.0),
        ("alerts.firing", 0.0),
        ("alerts.critical", 0.0),
        ("logs.too_many_clients", 0.0),
        ("logs.redis_errors", 0.0),
        ("logs.whatsapp_token_rejected", 0.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn with(changes: &[(&str, f64)]) -> Facts {
    let mut f = healthy();
    for (k, v) in changes {
        f.insert(k.to_string(), *v);
    }
    f
}

fn without(keys: &[&str]) -> Facts {
    let mut f = healthy();
    for k in keys {
        f.remove(*k);
    }
    f
}

#[test]
fn every_shipped_rule_is_found_from_its_evidence_and_none_on_a_healthy_stack() {
    let spec = shipped();
    let rules: Vec<_> = spec.rules.iter().map(|r| r.value.clone()).collect();
    // (what happened, facts, rules expected to match)
    let cases: Vec<(&str, Facts, &[&str])> = vec![
        ("healthy", healthy(), &[]),
        (
            "healthy, memory and pool just under",
            with(&[("api.memory_ratio", 0.9), ("db.connection_ratio", 0.8)]),
            &[],
        ),
        (
            "pool near max",
            with(&[("db.connection_ratio", 0.95), ("db.connections", 95.0)]),
            &["pool-exhausted"],
        ),
        (
            "too many clients in the logs",
            with(&[("logs.too_many_clients", 3.0)]),
            &["pool-exhausted"],
        ),
        (
            "redis refuses",
            with(&[("redis.reachable", 0.0)]),
            &["redis-unreachable"],
        ),
        (
            "redis errors in the logs",
            with(&[("logs.redis_errors", 12.0)]),
            &["redis-unreachable"],
        ),
        (
            "a few redis lines are not an outage",
            with(&[("logs.redis_errors", 2.0)]),
            &[],
        ),
        (
            "graph API rejects the token",
            with(&[("logs.whatsapp_token_rejected", 4.0)]),
            &["whatsapp-token-rejected"],
        ),
        (
            "OOMKilled",
            with(&[("api.oomkilled", 1.0), ("api.restarted_recently", 1.0)]),
            &["out-of-memory"],
        ),
        (
            "memory near the limit",
            with(&[("api.memory_ratio", 0.97)]),
            &["out-of-memory"],
        ),
        (
            "fresh deploy, errors rising",
            with(&[
                ("deploy.age_minutes", 20.0),
                ("errors.rate", 0.08),
                ("errors.rise_1h", 0.078),
            ]),
            &["bad-deploy"],
        ),
        (
            "old deploy, errors rising",
            with(&[("errors.rate", 0.08), ("errors.rise_1h", 0.078)]),
            &[],
        ),
        (
            "fresh deploy, errors flat",
            with(&[("deploy.age_minutes", 20.0)]),
            &[],
        ),
        (
            "a restart (same images), errors rising",
            with(&[
                ("deploy.age_minutes", 10.0),
                ("deploy.image_changed", 0.0),
                ("errors.rise_1h", 0.2),
            ]),
            &[],
        ),
        (
            "crash loop",
            with(&[
                ("api.crashlooping", 2.0),
                ("api.pods_ready", 1.0),
                ("api.pods_not_ready", 2.0),
            ]),
            &["crash-loop"],
        ),
        (
            "crash loop after a fresh deploy with errors",
            with(&[
                ("api.crashlooping", 1.0),
                ("deploy.age_minutes", 5.0),
                ("errors.rise_1h", 0.3),
            ]),
            &["bad-deploy", "crash-loop"],
        ),
        (
            "prometheus down: no deploy verdict",
            without(&["errors.rise_1h", "errors.rate"])
                .into_iter()
                .chain([("deploy.age_minutes".to_string(), 5.0)])
                .collect(),
            &[],
        ),
        (
            "redis part failed without a verdict",
            without(&["redis.reachable", "redis.ping_ms"]),
            &[],
        ),
    ];
    for (what, facts, want) in cases {
        let got: Vec<String> = match_all(&rules, &facts, None)
            .into_iter()
            .map(|m| m.rule)
            .collect();
        assert_eq!(got, want.to_vec(), "{what}");
    }
}

#[test]
fn a_match_carries_evidence_remedy_runbook_link_and_a_dry_run_to_try() {
    let spec = shipped();
    let rules: Vec<_> = spec.rules.iter().map(|r| r.value.clone()).collect();
    let m = match_all(
        &rules,
        &with(&[("deploy.age_minutes", 12.0), ("errors.rise_1h", 0.2)]),
        Some("https://runbook.example/RUNBOOK.md"),
    );
    assert_eq!(m.len(), 1, "{m:?}");
    let m = &m[0];
    assert_eq!(
        m.evidence,
        vec![
            "deploy.age_minutes = 12 (< 60)",
            "deploy.image_changed = 1 (== 1)",
            "errors.rise_1h = 0.2 (> 0.01)"
        ]
    );
    assert_eq!(
        m.suggest.as_deref(),
        Some("runbookd run rollout-undo --dry-run")
    );
    assert_eq!(
        m.runbook.as_deref(),
        Some("https://runbook.example/RUNBOOK.md#p1-critical-degradation")
    );
    assert!(m.remedy.contains("rollout undo"), "{}", m.remedy);
}

#[test]
fn severity_follows_the_runbook_levels() {
    let l = Levels::default();
    // (what, facts, matches found, severity)
    let cases: Vec<(&str, Facts, Severity)> = vec![
        ("healthy", healthy(), Severity::None),
        (
            "no pod ready",
            with(&[("api.pods_ready", 0.0), ("api.pods_not_ready", 3.0)]),
            Severity::P0,
        ),
        (
            "no pods at all",
            with(&[("api.pods", 0.0), ("api.pods_ready", 0.0)]),
            Severity::P0,
        ),
        (
            "health check fails",
            with(&[("api.health_ok", 0.0)]),
            Severity::P0,
        ),
        (
            "most requests fail",
            with(&[("errors.rate", 0.6)]),
            Severity::P0,
        ),
        (
            "database unreachable",
            with(&[("db.reachable", 0.0)]),
            Severity::P0,
        ),
        (
            "error rate 15%",
            with(&[("errors.rate", 0.15)]),
            Severity::P1,
        ),
        (
            "error rate 6%",
            with(&[("errors.rate", 0.06)]),
            Severity::None,
        ),
        ("p99 at 7 s", with(&[("latency.p99", 7.0)]), Severity::P1),
        (
            "one pod not ready",
            with(&[("api.pods_ready", 2.0), ("api.pods_not_ready", 1.0)]),
            Severity::P1,
        ),
        (
            "a critical alert",
            with(&[("alerts.critical", 1.0), ("alerts.firing", 1.0)]),
            Severity::P1,
        ),
        ("nothing measured", Facts::new(), Severity::None),
    ];
    for (what, facts, want) in cases {
        assert_eq!(severity(&facts, &l, &[]).0, want, "{what}");
    }
    // A known issue alone is a degradation.
    let rules: Vec<_> = shipped().rules.iter().map(|r| r.value.clone()).collect();
    let f = with(&[("redis.reachable", 0.0)]);
    let m = match_all(&rules, &f, None);
    let (s, why) = severity(&f, &l, &m);
    assert_eq!(s, Severity::P1);
    assert_eq!(why, vec!["known issue: Redis connection failures"]);
}

#[test]
fn bad_rules_are_errors_with_positions() {
    let text = "jobs:
  t:
    kind: triage
    log_patterns:
      oops: [\"boom\"]
    rules:
      - name: a
        issue: A
        when:
          db.conection_ratio: \"> 0.8\"
        remedy: r
      - name: a
        issue: B
        remedy: r
      - name: c
        issue: C
        when_any:
          logs.oops: \">= 1\"
          logs.nope: \">= 1\"
        remedy: r
    part_timeout: 0s
    severity:
      p1_error_rate: 10
";
    let err = crate::jobs::load_str(std::path::Path::new("jobs.yaml"), text, &|_| None)
        .unwrap_err()
        .to_string();
    for want in [
        "jobs.yaml:10:31: job `t`: rule `a`: no fact `db.conection_ratio` (did you mean `db.connection_ratio`?)",
        "jobs.yaml:12:9: job `t`: rule `a` needs `when` or `when_any`",
        "jobs.yaml:12:15: job `t`: two rules named `a`",
        "jobs.yaml:19:22: job `t`: rule `c`: no fact `logs.nope` (did you mean `logs.oops`?)",
        "jobs.yaml:23:22: job `t`: severity.p1_error_rate is a rate between 0 and 1",
        "jobs.yaml:21:19: job `t`: part_timeout must be more than 0s",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn on_failure_names_existing_jobs_and_not_itself() {
    let text = "jobs:
  a:
    kind: command
    argv: [\"false\"]
    on_failure: [a, nope, b]
  b:
    kind: command
    argv: [\"true\"]
";
    let err = crate::jobs::load_str(std::path::Path::new("jobs.yaml"), text, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("jobs.yaml:5:18: job `a`: `a` cannot chain to itself on failure"),
        "{err}"
    );
    assert!(
        err.contains("jobs.yaml:5:21: job `a`: on_failure: no job named `nope`"),
        "{err}"
    );
    assert!(err.starts_with("2 error(s)"), "`b` exists: {err}");
    let err = crate::jobs::load_str(
        std::path::Path::new("jobs.yaml"),
        "jobs:\n  a:\n    kind: command\n    argv: [\"false\"]\n    on_failure: [b, b]\n  b:\n    kind: command\n    argv: [\"true\"]\n",
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("jobs.yaml:5:21: job `a`: on_failure names `b` twice"),
        "{err}"
    );
}

#[test]
fn a_rule_suggests_only_jobs_that_exist() {
    let text = "jobs:
  t:
    kind: triage
    rules:
      - name: a
        issue: A
        when: {api.oomkilled: \">= 1\"}
        remedy: r
        suggest: rolout-undo
";
    let err = crate::jobs::load_str(std::path::Path::new("jobs.yaml"), text, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("jobs.yaml:9:18: job `t`: no job named `rolout-undo`"),
        "{err}"
    );
}

#[test]
fn the_readable_triage_puts_the_verdict_and_known_issues_first() {
    let rules: Vec<_> = shipped().rules.iter().map(|r| r.value.clone()).collect();
    let mut pods = gather::Gathered::default().fact("api.crashlooping", 1.0);
    pods.summary = "2/3 Ready, 1 CrashLoopBackOff".into();
    pods.lines
        .push("api-2 Running NOT Ready, 7 restart(s)".into());
    let redis =
        gather::Gathered::failed("redis://r:6379: connection refused").fact("redis.reachable", 0.0);
    let parts = vec![("pods", pods.clone()), ("redis", redis.clone())];
    let d = conclude(&parts, &rules, &Levels::default(), None);
    assert_eq!(d.severity, Severity::P1);
    assert_eq!(d.failed_parts, vec!["redis"]);
    let text = render(&d, &parts);
    let at = |s: &str| {
        text.find(s)
            .unwrap_or_else(|| panic!("no {s:?} in:\n{text}"))
    };
    assert_eq!(at("TRIAGE: P1 (critical degradation)"), 0, "{text}");
    assert!(at("KNOWN ISSUES") < at("REDIS: failed"), "{text}");
    assert!(
        at("REDIS: failed") < at("PODS: 2/3 Ready"),
        "failed parts first:\n{text}"
    );
    assert!(
        text.contains("Redis connection failures [redis-unreachable]"),
        "{text}"
    );
    assert!(
        text.contains("evidence: redis.reachable = 0 (== 0)"),
        "{text}"
    );
    // Unreachable is what was judged of Redis: not also "not read".
    assert!(!text.contains("not read, so not judged"), "{text}");

    // Every part down: the "down" facts may be runbookd's own network, so
    // nothing is judged.
    let health = gather::Gathered::failed("refused").fact("api.health_ok", 0.0);
    let db = gather::Gathered::failed("refused").fact("db.reachable", 0.0);
    let parts = vec![("health", health), ("database", db), ("redis", redis)];
    let d = conclude(&parts, &rules, &Levels::default(), None);
    assert_eq!(d.severity, Severity::Unknown);
    assert!(d.reasons[0].contains("cut off"), "{:?}", d.reasons);
}

#[test]
fn a_failed_health_url_is_said_once_as_the_reason_not_as_unread() {
    let pods = gather::Gathered::default()
        .fact("api.pods", 3.0)
        .fact("api.pods_ready", 3.0);
    // The health URL was asked and did not answer: that is the verdict's
    // reason. Alertmanager's refusal gave no fact: that part is unread.
    let health = gather::Gathered::failed("GET https://api.example/health: connection refused")
        .fact("api.health_ok", 0.0);
    let alerts = gather::Gathered::failed("Alertmanager answered 401 Unauthorized");
    let parts = vec![("pods", pods), ("alerts", alerts), ("health", health)];
    let d = conclude(&parts, &[], &Levels::default(), None);
    assert_eq!(d.severity, Severity::P0);
    let text = render(&d, &parts);
    let verdict = text.split("\n\n").next().unwrap();
    assert_eq!(
        verdict,
        "TRIAGE: P0 (complete outage)\n  - the health check fails\n  - not read, so not judged: alerts",
        "{text}"
    );
}

/// The triage job of `yaml`'s `triage`, against `cluster`.
fn triage_job(cluster: crate::testkit::fakes::FakeCluster, now: DateTime<Utc>) -> TriageJob {
    let yaml = "jobs:
  triage:
    kind: triage
    part_timeout: 8s
    rules:
      - name: crash-loop
        issue: Pods crash looping
        when: {api.crashlooping: \">= 1\"}
        remedy: read the previous log
      - name: out-of-memory
        issue: OOMKilled
        when: {api.oomkilled: \">= 1\"}
        remedy: raise the limit
";
    let config = crate::jobs::load_str(std::path::Path::new("jobs.yaml"), yaml, &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    TriageJob {
        spec: config
            .job("triage")
            .unwrap()
            .spec_as::<TriageSpec>()
            .unwrap()
            .clone(),
        adapters: Arc::new(crate::adapters::Adapters::real().with_cluster(Arc::new(cluster))),
        clock: Arc::new(crate::clock::ManualClock::new(now)),
        runbook_url: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_log_that_never_answers_costs_that_log_not_the_pods_facts() {
    use crate::testkit::pods::PodBuilder;
    let now = DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
        .unwrap()
        .to_utc();
    // api-b is on a dying node: neither its previous nor its current log
    // ever comes.
    let cluster = crate::testkit::fakes::FakeCluster::default()
        .with_pods(vec![
            PodBuilder::new("api-a").ready().build(),
            PodBuilder::new("api-b")
                .crash_looping()
                .restarts(9)
                .last_end("Error", 1, now - chrono::Duration::seconds(40))
                .build(),
            PodBuilder::new("api-c")
                .ready()
                .restarts(1)
                .last_end("OOMKilled", 137, now - chrono::Duration::minutes(20))
                .build(),
        ])
        .with_log("api-c", true, "heap out of memory")
        .log_never_answers("api-b");
    let job = triage_job(cluster, now);
    let limit = job.spec.part_timeout();
    let started = tokio::time::Instant::now();
    // As `part` reads it: under the part's timeout.
    let g = tokio::time::timeout(limit, job.read("pods", now, limit, &Redactor::default()))
        .await
        .expect("the pods part answers within its part_timeout");
    // The logs share a budget that ends before the part's own timeout
    // (the clock is tokio's, paused: this is not a speed test).
    assert!(started.elapsed() < limit, "{:?}", started.elapsed());
    assert_eq!(g.error, None, "{g:?}");
    assert_eq!(g.facts["api.crashlooping"], 1.0);
    assert_eq!(g.facts["api.oomkilled"], 1.0);
    assert!(
        g.lines
            .iter()
            .any(|l| l.starts_with("logs of api-b: ") && l.contains("did not come")),
        "{:#?}",
        g.lines
    );
    assert!(
        g.lines.iter().any(|l| l == "  | heap out of memory"),
        "the other logs are read: {:#?}",
        g.lines
    );
    let rules: Vec<Rule> = job.spec.rules.iter().map(|r| r.value.clone()).collect();
    let d = conclude(&[("pods", g)], &rules, &Levels::default(), None);
    let issues: Vec<&str> = d.matches.iter().map(|m| m.issue.as_str()).collect();
    assert_eq!(issues, ["Pods crash looping", "OOMKilled"]);
}
