//! Check kinds against real servers. HTTP runs against a server in this
//! process; Prometheus, Alertmanager, Postgres, Redis and moto are started by
//! scripts/test.sh (`--features integration`), and each test fails, saying
//! how to start them, when they are missing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbookd::adapters::Adapters;
use runbookd::checks::{self, CheckConfig, CheckContext, CheckResult, CheckStatus};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A check from its jobs.yaml form, through the same parser as the loader.
fn check(yaml_text: &str) -> CheckConfig {
    checks::parse(yaml_text).unwrap_or_else(|e| panic!("{yaml_text}: {e}"))
}

fn ctx_at(now: DateTime<Utc>, adapters: Adapters) -> CheckContext {
    CheckContext {
        now,
        adapters: Arc::new(adapters),
        timeout: checks::DEFAULT_CHECK_TIMEOUT,
        redactor: Default::default(),
    }
}

async fn run(c: &CheckConfig, ctx: &CheckContext) -> Vec<CheckResult> {
    tokio::time::timeout(Duration::from_secs(60), c.execute(ctx))
        .await
        .expect("a check must end within its own timeout")
}

async fn one(c: &CheckConfig, ctx: &CheckContext) -> CheckResult {
    let mut r = run(c, ctx).await;
    assert_eq!(r.len(), 1, "{r:?}");
    r.remove(0)
}

mod http {
    use super::*;
    use axum::routing::get;

    async fn server() -> std::net::SocketAddr {
        let app = axum::Router::new()
            .route(
                "/health",
                get(|| async {
                    (
                        [("content-type", "application/json")],
                        r#"{"status":"ok","db":{"ok":true}}"#,
                    )
                }),
            )
            .route(
                "/down",
                get(|| async {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "database unreachable",
                    )
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    "ok"
                }),
            )
            .route(
                "/hang",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    fn refused_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn status_body_json_latency_and_transport_errors() {
        let addr = server().await;
        let ctx = ctx_at(Utc::now(), Adapters::real());
        let base = format!("http://{addr}");
        // (yaml, status, reason fragment)
        let cases = vec![
            (
                format!("{{name: h, kind: http, url: '{base}/health', expect_status: 200}}"),
                CheckStatus::Pass,
                "200 in",
            ),
            (
                format!("{{name: h, kind: http, url: '{base}/down'}}"),
                CheckStatus::Fail,
                "answered 503: database unreachable",
            ),
            (
                format!("{{name: h, kind: http, url: '{base}/down', expect_status: [200, 503]}}"),
                CheckStatus::Pass,
                "503 in",
            ),
            (
                format!("{{name: h, kind: http, url: '{base}/health', body_contains: degraded}}"),
                CheckStatus::Fail,
                "does not contain `degraded`",
            ),
            (
                format!(
                    "{{name: h, kind: http, url: '{base}/health', json_field: {{path: db.ok, equals: true}}}}"
                ),
                CheckStatus::Pass,
                "200",
            ),
            (
                format!(
                    "{{name: h, kind: http, url: '{base}/health', json_field: {{path: status, equals: degraded}}}}"
                ),
                CheckStatus::Fail,
                "JSON field `status` is \"ok\"",
            ),
            (
                format!(
                    "{{name: h, kind: http, url: '{base}/slow', warn_latency: 100ms, fail_latency: 5s}}"
                ),
                CheckStatus::Warn,
                "(slow)",
            ),
            (
                format!("{{name: h, kind: http, url: '{base}/slow', fail_latency: 100ms}}"),
                CheckStatus::Fail,
                "(too slow)",
            ),
            (
                format!(
                    "{{name: h, kind: http, url: 'http://127.0.0.1:{}/health'}}",
                    refused_port()
                ),
                CheckStatus::Error,
                "refused:",
            ),
            (
                "{name: h, kind: http, url: 'http://runbookd-test.invalid/health'}".to_string(),
                CheckStatus::Error,
                "DNS:",
            ),
            (
                format!("{{name: h, kind: http, url: 'https://{addr}/health'}}"),
                CheckStatus::Error,
                "TLS:",
            ),
            (
                format!("{{name: h, kind: http, url: '{base}/hang', timeout: 500ms}}"),
                CheckStatus::Error,
                "timeout",
            ),
        ];
        for (yaml_text, status, fragment) in cases {
            let r = one(&check(&yaml_text), &ctx).await;
            assert_eq!(r.status, status, "{yaml_text}: {r:?}");
            assert!(r.reason.contains(fragment), "{yaml_text}: {}", r.reason);
        }
    }

    #[tokio::test]
    async fn headers_are_sent_and_never_shown() {
        let app = axum::Router::new().route(
            "/graph",
            get(|h: axum::http::HeaderMap| async move {
                match h.get("authorization").and_then(|v| v.to_str().ok()) {
                    Some("Bearer EAAG-valid-token") => (axum::http::StatusCode::OK, "{}"),
                    _ => (
                        axum::http::StatusCode::UNAUTHORIZED,
                        "{\"error\":{\"message\":\"Invalid OAuth access token\"}}",
                    ),
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let ctx = ctx_at(Utc::now(), Adapters::real());
        let ok = check(&format!(
            "{{name: wa, kind: http, url: 'http://{addr}/graph', headers: {{Authorization: 'Bearer EAAG-valid-token'}}}}"
        ));
        assert_eq!(one(&ok, &ctx).await.status, CheckStatus::Pass);
        let bad = check(&format!(
            "{{name: wa, kind: http, url: 'http://{addr}/graph', headers: {{Authorization: 'Bearer EAAG-expired'}}}}"
        ));
        let r = one(&bad, &ctx).await;
        assert_eq!(r.status, CheckStatus::Fail);
        assert!(r.reason.contains("401"), "{}", r.reason);
        assert!(
            !format!("{bad:?}").contains("EAAG-expired"),
            "headers are secrets: {bad:?}"
        );
    }

    /// A failing body quoted into the reason: credentials in it are masked
    /// in the check's result, in the stored run and in the mail.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn credentials_in_a_quoted_body_are_masked_where_stored_and_mailed() {
        use runbookd::adapters::mail::Outbox;
        use runbookd::testkit::world::World;
        let app = axum::Router::new().route(
            "/login",
            get(|| async {
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "retry with password=pw-body-1234 Authorization: Bearer bt-body-5678abcd \x1b[2J",
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let leaked = ["pw-body-1234", "bt-body-5678abcd"];

        let ctx = ctx_at(Utc::now(), Adapters::real());
        let c = check(&format!(
            "{{name: login, kind: http, url: 'http://{addr}/login'}}"
        ));
        let r = one(&c, &ctx).await;
        assert_eq!(
            r.reason,
            format!(
                "GET http://{addr}/login answered 500: retry with password=[REDACTED] Authorization: Bearer [REDACTED] \\x1b[2J"
            )
        );

        let outbox = tempfile::tempdir().unwrap();
        let yaml = format!(
            "mail:\n  to: oncall@example.com\n  outbox: {}\njobs:\n  daily:\n    kind: checklist\n    notify: on_failure\n    checks:\n      - {{name: login, kind: http, url: 'http://{addr}/login'}}\n",
            outbox.path().display()
        );
        let w = World::builder(
            &yaml,
            Adapters::real().with_mail(std::sync::Arc::new(Outbox::new(outbox.path()))),
        )
        .build()
        .await;
        let run = w.run("daily").await;
        assert_eq!(run.checks.len(), 1, "{run:?}");
        assert!(
            run.checks[0].reason.contains("password=[REDACTED]"),
            "{}",
            run.checks[0].reason
        );
        let mut mail = String::new();
        for m in std::fs::read_dir(outbox.path()).unwrap() {
            let raw = std::fs::read(m.unwrap().path()).unwrap();
            let parsed = mailparse::parse_mail(&raw).unwrap();
            for p in std::iter::once(&parsed).chain(parsed.subparts.iter()) {
                mail.push_str(&p.get_body().unwrap());
            }
        }
        assert!(mail.contains("password=[REDACTED]"), "{mail}");
        let everything = format!("{}{mail}", serde_json::to_string(&run).unwrap());
        for l in leaked {
            assert!(!everything.contains(l), "{l} in:\n{everything}");
        }
        assert!(!everything.contains('\x1b'), "{everything}");
        assert!(!everything.contains("\\u001b"), "{everything}");
    }

    // The test's server shares the runtime: two threads keep it answering
    // while the checks run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checklist_takes_as_long_as_its_slowest_check() {
        let addr = server().await;
        let ctx = ctx_at(Utc::now(), Adapters::real());
        let list: Vec<CheckConfig> = (0..6)
            .map(|i| {
                check(&format!(
                    "{{name: slow-{i}, kind: http, url: 'http://{addr}/slow'}}"
                ))
            })
            .collect();
        let started = std::time::Instant::now();
        let results = checks::run_all(&list, &ctx, 8).await;
        let took = started.elapsed();
        assert_eq!(results.len(), 6);
        assert!(results.iter().all(|r| r.status == CheckStatus::Pass));
        assert_eq!(
            results.iter().map(|r| r.check.as_str()).collect::<Vec<_>>(),
            ["slow-0", "slow-1", "slow-2", "slow-3", "slow-4", "slow-5"]
        );
        // Six 400 ms checks one after another would take 2.4 s; concurrently
        // the whole list is near one. Generous bound for a loaded machine,
        // still short of what one at a time would take.
        assert!(took < Duration::from_millis(2000), "took {took:?}");
        // With a bound of 2 they go in three waves.
        let started = std::time::Instant::now();
        checks::run_all(&list, &ctx, 2).await;
        assert!(
            started.elapsed() >= Duration::from_millis(1200),
            "the bound holds"
        );
    }
}

#[cfg(feature = "integration")]
mod prometheus {
    use super::*;

    /// The fixture's reference instant (scripts/prometheus_fixture.py).
    const T0: &str = "2026-01-08T09:00:00Z";

    fn prom() -> String {
        runbookd::testkit::service(
            "RUNBOOKD_TEST_PROMETHEUS_URL",
            "Prometheus with the fixture history",
        )
    }

    #[tokio::test]
    async fn queries_at_a_fixed_time_table() {
        let url = prom();
        let ctx = ctx_at(t(T0), Adapters::real());
        let err = |s: &str| {
            format!(
                "sum(rate(http_requests_total{{scenario=\"{s}\",status=~\"5..\"}}[1h])) / sum(rate(http_requests_total{{scenario=\"{s}\"}}[1h]))"
            )
        };
        let p99 = |s: &str| {
            format!(
                "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{scenario=\"{s}\"}}[1h])))"
            )
        };
        let tokens = |s: &str| format!("sum(increase(ai_tokens_total{{scenario=\"{s}\"}}[24h]))");
        // (query, thresholds, status, value, reason fragment)
        let cases: Vec<(String, &str, CheckStatus, Option<f64>, &str)> = vec![
            (
                err("ok"),
                "fail_if: '>= 0.01'",
                CheckStatus::Pass,
                Some(0.005),
                "within thresholds",
            ),
            (
                err("bad"),
                "fail_if: '>= 0.01'",
                CheckStatus::Fail,
                Some(0.03),
                "is >= 0.01",
            ),
            (
                err("bad"),
                "fail_if: '> 0.05', warn_if: '> 0.01'",
                CheckStatus::Warn,
                Some(0.03),
                "is > 0.01",
            ),
            (
                p99("slow"),
                "fail_if: '> 2'",
                CheckStatus::Fail,
                Some(4.4),
                "is > 2",
            ),
            (
                p99("fast"),
                "fail_if: '> 2'",
                CheckStatus::Pass,
                Some(0.46),
                "within",
            ),
            (
                tokens("under"),
                "warn_if: '> 3000'",
                CheckStatus::Pass,
                Some(2500.0),
                "within",
            ),
            (
                tokens("over"),
                "warn_if: '> 3000'",
                CheckStatus::Warn,
                Some(4000.0),
                "is > 3000",
            ),
            (
                "sum(rate(no_such_metric[5m]))".into(),
                "fail_if: '> 0'",
                CheckStatus::Error,
                None,
                "no data",
            ),
            (
                "sum(rate(http_requests_total[5m]".into(),
                "fail_if: '> 0'",
                CheckStatus::Error,
                None,
                "prometheus bad_data",
            ),
        ];
        for (query, thresholds, status, value, fragment) in cases {
            let c = check(&format!(
                "{{name: q, kind: prometheus, url: '{url}', query: '{}', {thresholds}}}",
                query.replace('\'', "''")
            ));
            let r = one(&c, &ctx).await;
            assert_eq!(r.status, status, "{query}: {r:?}");
            assert!(r.reason.contains(fragment), "{query}: {}", r.reason);
            match (value, r.value.as_ref().and_then(|v| v.number())) {
                (Some(want), Some(got)) => assert!(
                    (got - want).abs() < 0.01 * want.max(1.0),
                    "{query}: {got} vs {want}"
                ),
                (None, None) => {}
                (w, g) => panic!("{query}: value {g:?}, wanted {w:?}"),
            }
        }
    }

    #[tokio::test]
    async fn no_data_status_is_configurable() {
        let url = prom();
        let ctx = ctx_at(t(T0), Adapters::real());
        let c = check(&format!(
            "{{name: q, kind: prometheus, url: '{url}', query: 'absent_metric_xyz', fail_if: '> 0', no_data: warn}}"
        ));
        let r = one(&c, &ctx).await;
        assert_eq!(r.status, CheckStatus::Warn);
        assert!(r.value.is_none(), "no data is never zero: {r:?}");
    }

    #[tokio::test]
    async fn overnight_anomaly_against_the_previous_week() {
        let url = prom();
        let ctx = ctx_at(t(T0), Adapters::real());
        let q = |s: &str| {
            format!("sum(increase(http_requests_total{{scenario=\"{s}\",status=\"500\"}}[12h]))")
        };
        let spike = check(&format!(
            "{{name: a, kind: prometheus, url: '{url}', query: '{}', anomaly: {{days: 7, sigmas: 3}}}}",
            q("spike")
        ));
        let r = one(&spike, &ctx).await;
        assert_eq!(r.status, CheckStatus::Fail, "{r:?}");
        assert!(
            r.reason.contains("anomaly:") && r.reason.contains("above the 7-day mean"),
            "{}",
            r.reason
        );
        assert!(
            r.threshold
                .as_ref()
                .unwrap()
                .to_string()
                .contains("within 3σ of the 7-day mean"),
            "{r:?}"
        );
        let steady = check(&format!(
            "{{name: a, kind: prometheus, url: '{url}', query: '{}', anomaly: {{days: 7, sigmas: 3}}}}",
            q("steady")
        ));
        let r = one(&steady, &ctx).await;
        assert_eq!(r.status, CheckStatus::Pass, "{r:?}");
    }

    /// One error after seven quiet nights, as Prometheus returns it:
    /// `increase()` extrapolates, so tonight is 1.0028, not 1. That is the
    /// noise of a count, not an anomaly.
    #[tokio::test]
    async fn one_error_after_quiet_nights_is_a_count_not_an_anomaly() {
        let url = prom();
        let ctx = ctx_at(t(T0), Adapters::real());
        let q = "sum(increase(http_requests_total{scenario=\"quiet\",status=\"500\"}[12h]))";
        let c = check(&format!(
            "{{name: a, kind: prometheus, url: '{url}', query: '{q}', anomaly: {{days: 7, sigmas: 3}}}}"
        ));
        let r = one(&c, &ctx).await;
        let value = r.value.as_ref().and_then(|v| v.number()).unwrap();
        assert!(
            value > 1.0 && value < 1.01,
            "the fixture's extrapolated count: {value}"
        );
        assert_eq!(r.status, CheckStatus::Pass, "{r:?}");
        assert!(r.reason.contains("√mean, the noise of a count"), "{r:?}");
        // Told it is not a count, the same value is far outside a σ of 0.
        let c = check(&format!(
            "{{name: a, kind: prometheus, url: '{url}', query: '{q}', anomaly: {{days: 7, sigmas: 3, count: false}}}}"
        ));
        assert_eq!(one(&c, &ctx).await.status, CheckStatus::Fail);
    }

    /// A change smaller than `min_change` never flags, however many σ.
    #[tokio::test]
    async fn a_change_under_min_change_never_flags() {
        let url = prom();
        let ctx = ctx_at(t(T0), Adapters::real());
        let q = "sum(increase(http_requests_total{scenario=\"spike\",status=\"500\"}[12h]))";
        let with = |min: &str| {
            check(&format!(
                "{{name: a, kind: prometheus, url: '{url}', query: '{q}', anomaly: {{days: 7, sigmas: 3, min_change: {min}}}}}"
            ))
        };
        // About 1000 tonight against about 100.
        let r = one(&with("5000"), &ctx).await;
        assert_eq!(r.status, CheckStatus::Pass, "{r:?}");
        assert!(r.reason.contains("under min_change 5000"), "{r:?}");
        assert!(
            r.threshold
                .as_ref()
                .unwrap()
                .to_string()
                .contains("min_change 5000"),
            "{r:?}"
        );
        let r = one(&with("500"), &ctx).await;
        assert_eq!(r.status, CheckStatus::Fail, "{r:?}");
    }

    #[tokio::test]
    async fn unreachable_prometheus_is_an_error_with_its_cause() {
        let ctx = ctx_at(t(T0), Adapters::real());
        let c = check(
            "{name: q, kind: prometheus, url: 'http://127.0.0.1:1', query: 'up', fail_if: '< 1'}",
        );
        let r = one(&c, &ctx).await;
        assert_eq!(r.status, CheckStatus::Error);
        assert!(r.reason.starts_with("refused:"), "{}", r.reason);
    }
}

#[cfg(feature = "integration")]
mod alertmanager {
    use super::*;

    fn am() -> String {
        runbookd::testkit::service("RUNBOOKD_TEST_ALERTMANAGER_URL", "Alertmanager")
    }

    async fn post_alert(
        client: &reqwest::Client,
        url: &str,
        test_id: &str,
        name: &str,
        severity: &str,
    ) {
        let now = Utc::now();
        let body = serde_json::json!([{
            "labels": {"alertname": name, "severity": severity, "test_id": test_id},
            "annotations": {"summary": "from runbookd tests"},
            "startsAt": now.to_rfc3339(),
            "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
        }]);
        let r = client
            .post(format!("{url}/api/v2/alerts"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "posting an alert: {}", r.status());
    }

    async fn silence(client: &reqwest::Client, url: &str, test_id: &str, name: &str) {
        let now = Utc::now();
        let body = serde_json::json!({
            "matchers": [
                {"name": "test_id", "value": test_id, "isRegex": false, "isEqual": true},
                {"name": "alertname", "value": name, "isRegex": false, "isEqual": true}
            ],
            "startsAt": now.to_rfc3339(),
            "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "createdBy": "runbookd tests",
            "comment": "silenced by a test"
        });
        let r = client
            .post(format!("{url}/api/v2/silences"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "creating a silence: {}",
            r.status()
        );
    }

    /// Runs the check until it reports `want` (Alertmanager processes posted
    /// alerts asynchronously), failing after 20 s.
    async fn until(c: &CheckConfig, ctx: &CheckContext, want: CheckStatus) -> CheckResult {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = one(c, ctx).await;
            if r.status == want || std::time::Instant::now() > deadline {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test]
    async fn none_firing_and_silenced() {
        let url = am();
        let client = runbookd::adapters::http_client();
        let id = format!("t{}", Utc::now().timestamp_nanos_opt().unwrap());
        let ctx = ctx_at(Utc::now(), Adapters::real());
        let c = check(&format!(
            "{{name: alerts, kind: alertmanager, url: '{url}', matchers: ['test_id=\"{id}\"']}}"
        ));

        let r = one(&c, &ctx).await;
        assert_eq!(r.status, CheckStatus::Pass, "none: {r:?}");
        assert_eq!(r.reason, "no firing alerts");

        post_alert(&client, &url, &id, "HighErrorRate", "warning").await;
        let r = until(&c, &ctx, CheckStatus::Warn).await;
        assert_eq!(r.status, CheckStatus::Warn, "warning firing: {r:?}");
        assert!(r.reason.contains("HighErrorRate (warning)"), "{}", r.reason);

        post_alert(&client, &url, &id, "ApiDown", "critical").await;
        let r = until(&c, &ctx, CheckStatus::Fail).await;
        assert_eq!(r.status, CheckStatus::Fail, "critical firing: {r:?}");
        assert!(
            r.reason
                .starts_with("2 firing: ApiDown (critical), HighErrorRate (warning)"),
            "{}",
            r.reason
        );

        silence(&client, &url, &id, "ApiDown").await;
        let r = until(&c, &ctx, CheckStatus::Warn).await;
        assert_eq!(
            r.status,
            CheckStatus::Warn,
            "silenced critical no longer counts: {r:?}"
        );
        assert!(!r.reason.contains("ApiDown"), "{}", r.reason);
    }
}

#[cfg(feature = "integration")]
mod sql {
    use super::*;
    use runbookd::testkit::TestDatabase;

    async fn app_db() -> TestDatabase {
        let db = TestDatabase::postgres().await;
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        for stmt in [
            "CREATE TABLE consent_log (id bigserial PRIMARY KEY, phone text NOT NULL, action text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO consent_log (phone, action, created_at) SELECT '+9199' || g, 'opt_out', now() - interval '1 minute' FROM generate_series(1, 12) g",
            "INSERT INTO consent_log (phone, action, created_at) SELECT '+9188' || g, 'opt_out', now() - interval '2 hours' FROM generate_series(1, 40) g",
            "INSERT INTO consent_log (phone, action) SELECT '+9177' || g, 'opt_in' FROM generate_series(1, 5) g",
        ] {
            sqlx::query(stmt).execute(&pool).await.unwrap();
        }
        pool.close().await;
        db
    }

    #[tokio::test]
    async fn opt_out_spike_pool_pressure_and_failures() {
        let db = app_db().await;
        let ctx = ctx_at(Utc::now(), Adapters::real());
        let spike = "SELECT count(*) FROM consent_log WHERE action = ''opt_out'' AND created_at > now() - interval ''5 minutes''";
        let cases: Vec<(String, CheckStatus, &str)> = vec![
            (format!("query: '{spike}', fail_if: '> 10'"), CheckStatus::Fail, "value 12 is > 10"),
            (format!("query: '{spike}', fail_if: '> 20'"), CheckStatus::Pass, "value 12 is within"),
            (
                "query: 'SELECT count(*)::float8 / current_setting(''max_connections'')::float8 FROM pg_stat_activity', fail_if: '> 0.9'".into(),
                CheckStatus::Pass,
                "within thresholds",
            ),
            ("query: 'SELECT 1 FROM pg_sleep(5)', fail_if: '> 1', statement_timeout: 200ms".into(), CheckStatus::Error, "timeout (statement_timeout)"),
            ("query: 'SELECT count(*) FROM no_such_table', fail_if: '> 1'".into(), CheckStatus::Error, "relation \"no_such_table\" does not exist"),
            ("query: 'SELECT id FROM consent_log', fail_if: '> 1'".into(), CheckStatus::Error, "more than one row"),
            ("query: 'SELECT NULL::int', fail_if: '> 1'".into(), CheckStatus::Error, "NULL"),
            // A write (here a sequence advance) is refused by the read-only
            // transaction.
            ("query: 'SELECT nextval(''consent_log_id_seq'')', fail_if: '> 1000'".into(), CheckStatus::Error, "read-only"),
        ];
        for (fields, status, fragment) in cases {
            let c = check(&format!(
                "{{name: s, kind: sql, database_url: '{}', {fields}}}",
                db.url
            ));
            let r = one(&c, &ctx).await;
            assert_eq!(r.status, status, "{fields}: {r:?}");
            assert!(r.reason.contains(fragment), "{fields}: {}", r.reason);
        }
        // Nothing was deleted.
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM consent_log")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 57);
        pool.close().await;
    }

    #[tokio::test]
    async fn unreachable_and_wrong_password_name_the_cause_but_not_the_password() {
        let ctx = ctx_at(Utc::now(), Adapters::real());
        let c = check(
            "{name: s, kind: sql, database_url: 'postgres://app:hunter2@127.0.0.1:1/app', query: 'SELECT 1', fail_if: '> 1'}",
        );
        let r = one(&c, &ctx).await;
        assert_eq!(r.status, CheckStatus::Error);
        assert!(r.reason.contains("refused"), "{}", r.reason);
        assert!(
            r.reason
                .contains("postgres://app:[REDACTED]@127.0.0.1:1/app"),
            "{}",
            r.reason
        );
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}

#[cfg(feature = "integration")]
mod redis {
    use super::*;

    #[tokio::test]
    async fn up_with_memory_and_down() {
        let url = runbookd::testkit::service("RUNBOOKD_TEST_REDIS_URL", "Redis");
        let ctx = ctx_at(Utc::now(), Adapters::real());
        let up = check(&format!(
            "{{name: r, kind: redis, url: '{url}', fail_latency: 2s, used_memory_fail_if: '> 1e12'}}"
        ));
        let r = run(&up, &ctx).await;
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].status, CheckStatus::Pass, "{r:?}");
        assert!(r[0].reason.starts_with("PONG in"), "{}", r[0].reason);
        assert_eq!(r[1].check, "r/memory");
        assert_eq!(r[1].status, CheckStatus::Pass, "{r:?}");
        assert!(r[1].value.as_ref().unwrap().number().unwrap() > 0.0);
        let tight = check(&format!(
            "{{name: r, kind: redis, url: '{url}', used_memory_fail_if: '> 1'}}"
        ));
        assert_eq!(run(&tight, &ctx).await[1].status, CheckStatus::Fail);

        let down = check("{name: r, kind: redis, url: 'redis://127.0.0.1:1'}");
        let r = one(&down, &ctx).await;
        assert_eq!(r.status, CheckStatus::Error);
        assert!(r.reason.contains("refused"), "{}", r.reason);
    }
}

#[cfg(feature = "integration")]
mod aws {
    use super::*;
    use runbookd::adapters::aws::Aws;

    fn endpoint() -> String {
        runbookd::testkit::service("RUNBOOKD_TEST_AWS_ENDPOINT", "moto in server mode")
    }

    /// moto's state is shared by every test: names are unique per test.
    fn unique(prefix: &str) -> String {
        format!("{prefix}-{}", Utc::now().timestamp_nanos_opt().unwrap())
    }

    async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(runbookd::adapters::aws::https_client())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("ap-south-1"))
            .credentials_provider(aws_sdk_rds::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await
    }

    #[tokio::test]
    async fn rds_instance_and_automated_backup_through_moto() {
        let endpoint = endpoint();
        let id = unique("flexoraa-db");
        let rds = aws_sdk_rds::Client::new(&sdk_config(&endpoint).await);
        rds.create_db_instance()
            .db_instance_identifier(&id)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .master_username("flexoraa")
            .master_user_password("not-a-real-password")
            .allocated_storage(20)
            .backup_retention_period(7)
            .send()
            .await
            .unwrap();
        let adapters = Adapters::real().with_rds(Arc::new(Aws::local(&endpoint)));
        let ctx = ctx_at(Utc::now(), adapters);
        let c = check(&format!(
            "{{name: db, kind: rds, instance: {id}, region: ap-south-1}}"
        ));
        let r = run(&c, &ctx).await;
        let statuses: Vec<(&str, CheckStatus)> =
            r.iter().map(|r| (r.check.as_str(), r.status)).collect();
        assert_eq!(
            statuses,
            [
                ("db/status", CheckStatus::Pass),
                ("db/backup", CheckStatus::Pass),
                ("db/restorable", CheckStatus::Pass)
            ],
            "{r:#?}"
        );
        assert!(
            r[1].reason.contains(&format!("rds:{id}")),
            "{}",
            r[1].reason
        );

        // The same snapshot is stale when evaluated two days later.
        let later = ctx_at(
            Utc::now() + chrono::Duration::days(2),
            Adapters::real().with_rds(Arc::new(Aws::local(&endpoint))),
        );
        let r = run(&c, &later).await;
        assert_eq!(r[1].status, CheckStatus::Fail, "{r:#?}");

        let missing = check("{name: db, kind: rds, instance: no-such-db, region: ap-south-1}");
        let r = run(&missing, &ctx).await;
        assert_eq!(r[0].status, CheckStatus::Error);
        assert!(r[0].reason.contains("not found"), "{}", r[0].reason);
    }

    #[tokio::test]
    async fn secret_age_through_moto() {
        let endpoint = endpoint();
        let name = format!("/flexoraa/test/{}", unique("jwt"));
        let sm = aws_sdk_secretsmanager::Client::new(&sdk_config(&endpoint).await);
        sm.create_secret()
            .name(&name)
            .secret_string("initial")
            .send()
            .await
            .unwrap();
        let adapters = || Adapters::real().with_secrets(Arc::new(Aws::local(&endpoint)));
        let c = check(&format!(
            "{{name: jwt, kind: secret_age, secret_id: '{name}', region: ap-south-1, max_age: 90d, warn_age: 75d}}"
        ));
        let r = one(&c, &ctx_at(Utc::now(), adapters())).await;
        assert_eq!(r.status, CheckStatus::Pass, "{r:?}");
        assert!(r.reason.contains("last changed"), "{}", r.reason);
        let r = one(
            &c,
            &ctx_at(Utc::now() + chrono::Duration::days(80), adapters()),
        )
        .await;
        assert_eq!(r.status, CheckStatus::Warn, "{r:?}");
        let r = one(
            &c,
            &ctx_at(Utc::now() + chrono::Duration::days(91), adapters()),
        )
        .await;
        assert_eq!(r.status, CheckStatus::Fail, "{r:?}");
        let gone = check(
            "{name: jwt, kind: secret_age, secret_id: /nope, region: ap-south-1, max_age: 1d}",
        );
        let r = one(&gone, &ctx_at(Utc::now(), adapters())).await;
        assert_eq!(r.status, CheckStatus::Error);
        assert!(r.reason.contains("not found"), "{}", r.reason);
    }

    #[tokio::test]
    async fn unreachable_aws_endpoint_is_an_error() {
        let adapters = Adapters::real().with_rds(Arc::new(Aws::local("http://127.0.0.1:1")));
        let c = check("{name: db, kind: rds, instance: x, region: ap-south-1}");
        let r = run(&c, &ctx_at(Utc::now(), adapters)).await;
        assert_eq!(r[0].status, CheckStatus::Error);
        assert!(
            r[0].reason.contains("unreachable") || r[0].reason.contains("timeout"),
            "{}",
            r[0].reason
        );
    }
}
