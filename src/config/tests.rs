//! Loader tests: each bad input gives its error at the right place.

use std::path::Path;

use super::*;
use crate::jobs::checklist::ChecklistSpec;
use crate::jobs::command::CommandSpec;
use crate::jobs::load_str;

fn env(name: &str) -> Option<String> {
    match name {
        "PG_PASSWORD" => Some("s3cr3t-pg-pass".into()),
        "TOKEN" => Some("tok-abcdef-123".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Config, Vec<String>> {
    load_str(Path::new("jobs.yaml"), text, &env).map_err(|e| match e {
        ConfigError::Invalid(d) => d.iter().map(|d| d.to_string()).collect(),
        other => vec![other.to_string()],
    })
}

const GOOD: &str = r#"
defaults: { timezone: Asia/Kolkata }
history:  { database_url: "${RUNBOOKD_DATABASE_URL:-sqlite://runbookd.db}", retention: 90d }
jobs:
  hello:
    kind: command
    argv: ["echo", "hello"]
    schedule: "*/5 * * * * *"
    timezone: UTC
    concurrency: forbid
    timeout: 30s
    retries: { max: 2, backoff: 5s }
    catch_up: 1h
  manual:
    kind: command
    argv: [sleep, 5]
"#;

#[test]
fn the_issue_shape_loads_with_defaults() {
    let c = load(GOOD).unwrap();
    assert_eq!(c.defaults.timezone, chrono_tz::Asia::Kolkata);
    assert_eq!(c.history.database_url.expose(), "sqlite://runbookd.db");
    let hello = &c.jobs["hello"];
    assert_eq!(hello.timezone, chrono_tz::UTC);
    assert_eq!(hello.timeout, Duration::from_secs(30));
    assert_eq!(hello.retries.max, 2);
    assert_eq!(hello.retries.backoff, Duration::from_secs(5));
    assert_eq!(hello.catch_up, Some(Duration::from_secs(3600)));
    let manual = &c.jobs["manual"];
    assert!(manual.schedule.is_none());
    assert_eq!(manual.timezone, chrono_tz::Asia::Kolkata);
    assert_eq!(manual.concurrency, Concurrency::Forbid);
    let spec = manual.spec_as::<CommandSpec>().expect("command job");
    let argv: Vec<&str> = spec.argv.value.iter().map(|a| a.as_str()).collect();
    assert_eq!(argv, vec!["sleep", "5"]);
}

/// Each bad input names its line and column. (yaml, expected line:col, text)
#[test]
fn bad_configs_table() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "jobs:\n  a:\n    kind: command\n    argv: [true]\n    timout: 5s\n",
            "jobs.yaml:5:5:",
            "unknown field `timout` (did you mean `timeout`?)",
        ),
        (
            "jobs:\n  a:\n    kind: command\n    argv: [true]\n    schedule: \"61 * * * *\"\n",
            "jobs.yaml:5:16:",
            "invalid schedule `61 * * * *`: minute field `61`: 61 is out of range 0-59",
        ),
        (
            "jobs:\n  a:\n    kind: command\n    argv: [true]\n    schedule: 0 7 * * *\n    timezone: Asia/Kolkatta\n",
            "jobs.yaml:6:15:",
            "unknown timezone `Asia/Kolkatta` (did you mean `Asia/Kolkata`?)",
        ),
        (
            "jobs:\n  a:\n    kind: command\n    argv: [\"${NOPE}\"]\n",
            "jobs.yaml:4:13:",
            "environment variable `NOPE` is not set",
        ),
        (
            "jobs:\n  a:\n    kind: command\n    argv: [true]\n  a:\n    kind: command\n    argv: [false]\n",
            "jobs.yaml:5:3:",
            "duplicate job `a` (first defined at line 2, column 3)",
        ),
        (
            "jobs:\n  a:\n    kind: shell\n",
            "jobs.yaml:3:11:",
            "unknown kind `shell`",
        ),
        (
            "jobs:\n  a:\n    kind: command\n    argv: []\n",
            "jobs.yaml:4:11:",
            "argv must name a program",
        ),
        (
            "jobs:\n  a:\n    kind: command\n    argv: [true]\n    kill_grace: 1m\n",
            "jobs.yaml:5:17:",
            "kill_grace must be at most 25s",
        ),
        (
            "mail:\n  smtp_url: \"http://u:hunter2@mail:25\"\njobs:\n  a:\n    kind: command\n    argv: [true]\n",
            "jobs.yaml:2:13:",
            "mail.smtp_url http://u:[REDACTED]@mail:25: scheme `http`",
        ),
        (
            "mail:\n  to: \"oncall@x.com, not an address\"\njobs:\n  a:\n    kind: command\n    argv: [true]\n",
            "jobs.yaml:2:7:",
            "mail.to: `not an address` is not an email address",
        ),
        (
            "jobs:\n  a:\n    kind: command\n    argv: [true]\n    notify: on_failure\n",
            "jobs.yaml:2:3:",
            "notify: on_failure needs recipients: set mail.to or this job's notify_to",
        ),
        (
            "jobs:\n  a:\n    kind: command\n    argv: [true]\n    notify: sometimes\n",
            "jobs.yaml:5:13:",
            "unknown value `sometimes`, expected one of `never`, `on_failure`, `always`",
        ),
        (
            "jobs:\n  r:\n    kind: report\n    checklist: a\n  a:\n    kind: command\n    argv: [true]\n",
            "jobs.yaml:4:16:",
            "`a` is a command job; a checklist job is needed here",
        ),
        (
            "jobs:\n  r:\n    kind: report\n    charts:\n      - {job: nope, check: x}\n",
            "jobs.yaml:5:15:",
            "no job named `nope` (a checklist job is needed here)",
        ),
        (
            "links:\n  anchors: {redis: issue-redis}\njobs:\n  a:\n    kind: command\n    argv: [true]\n",
            "jobs.yaml:2:20:",
            "links.anchors need links.runbook",
        ),
        (
            "jobs:\n  a:\n    kind: command\n    argv: [true]\n    timeout: soon\n",
            "jobs.yaml:5:14:",
            "invalid duration `soon`",
        ),
        (
            "jobs:\n  a:\n    kind: command\n    argv: [true]\n    concurrency: sometimes\n",
            "jobs.yaml:5:18:",
            "unknown value `sometimes`, expected one of `forbid`, `allow`, `replace`",
        ),
        (
            "jobs:\n  Bad_Name:\n    kind: command\n    argv: [true]\n",
            "jobs.yaml:2:3:",
            "job name `Bad_Name`",
        ),
        (
            "jobz: {}\n",
            "jobs.yaml:1:1:",
            "unknown field `jobz` (did you mean `jobs`?)",
        ),
        (
            "jobs:\n  a:\n    kind: command\n    argv: [true]\n    catch_up: 1h\n",
            "jobs.yaml:5:15:",
            "catch_up needs a schedule",
        ),
        // The parser points at the bracket left open.
        (
            "jobs: [\n",
            "jobs.yaml:1:7:",
            "YAML syntax: unclosed bracket",
        ),
    ];
    for (yaml, at, msg) in cases {
        let errs = load(yaml).expect_err(yaml);
        assert!(
            errs.iter().any(|e| e.starts_with(at) && e.contains(msg)),
            "for {yaml:?} wanted `{at} ... {msg}`, got {errs:#?}"
        );
    }
}

#[test]
fn every_error_is_reported_at_once() {
    let yaml = "jobs:
  a:
    kind: command
    argv: [true]
    schedule: \"0 25 * * *\"
    timezone: Nowhere/Land
    bogus: 1
  b:
    kind: command
    argv: [\"${MISSING}\"]
";
    let errs = load(yaml).unwrap_err();
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(errs[0].starts_with("jobs.yaml:5:"), "{errs:#?}");
    assert!(errs[1].starts_with("jobs.yaml:6:"), "{errs:#?}");
    assert!(errs[2].starts_with("jobs.yaml:7:"), "{errs:#?}");
    assert!(errs[3].starts_with("jobs.yaml:10:"), "{errs:#?}");
}

#[test]
fn secrets_are_collected_and_never_debug_printed() {
    let yaml = r#"
history:
  database_url: "postgres://runbookd:${PG_PASSWORD}@db:5432/runbookd"
jobs:
  a:
    kind: command
    argv: [curl, -H, "Authorization: Bearer ${TOKEN}"]
    env:
      API_TOKEN: !secret "${TOKEN}"
"#;
    let c = load(yaml).unwrap();
    let dump = format!("{c:?}");
    assert!(!dump.contains("s3cr3t-pg-pass"), "{dump}");
    let r = &c.redactor;
    assert_eq!(r.redact("pw=s3cr3t-pg-pass"), "pw=[REDACTED]");
    assert_eq!(r.redact("t=tok-abcdef-123"), "t=[REDACTED]");
}

#[test]
fn interpolation_defaults_and_env_override() {
    let c = load_str(
        Path::new("jobs.yaml"),
        "history: { database_url: \"${RUNBOOKD_DATABASE_URL:-sqlite://x.db}\" }\njobs: { a: { kind: command, argv: [\"true\"] } }\n",
        &|k| (k == "RUNBOOKD_DATABASE_URL").then(|| "postgres://u@h/db".to_string()),
    )
    .unwrap();
    assert_eq!(c.history.database_url.expose(), "postgres://u@h/db");
}

#[test]
fn a_file_without_jobs_is_an_error() {
    for text in [
        "",
        "# only a comment\n",
        "jobs:\n",
        "jobs: {}\n",
        "defaults: { timezone: UTC }\n",
    ] {
        let errs = load(text).expect_err(text);
        assert_eq!(errs.len(), 1, "{text:?}: {errs:?}");
        assert!(
            errs[0].starts_with("jobs.yaml:1:1: no jobs"),
            "{text:?}: {errs:?}"
        );
    }
}

#[test]
fn retry_delays_double_up_to_the_cap() {
    let p = RetryPolicy {
        max: 5,
        backoff: Duration::from_secs(5),
        max_backoff: Duration::from_secs(12),
    };
    let delays: Vec<u64> = (2..=5).map(|a| p.delay_before(a).as_secs()).collect();
    assert_eq!(delays, vec![5, 10, 12, 12]);
    // The wait actually taken is jittered below that ceiling.
    for a in 2..=5 {
        let (wait, ceiling) = (p.wait_before(a), p.delay_before(a));
        assert!(wait <= ceiling && wait >= ceiling * 3 / 4, "{a}: {wait:?}");
    }
}

#[test]
fn checklist_errors_table() {
    let job =
        |checks: &str| format!("jobs:\n  morning:\n    kind: checklist\n    checks:\n{checks}");
    let cases: &[(String, &str, &str)] = &[
        (
            job("      - {name: a, kind: ping}\n"),
            "jobs.yaml:5:25:",
            "unknown check kind `ping`",
        ),
        (
            job("      - {name: a, kind: http, url: 'http://x', expect_stauts: 200}\n"),
            "jobs.yaml:5:48:",
            "unknown field `expect_stauts` (did you mean `expect_status`?)",
        ),
        (
            job("      - {name: a, kind: prometheus, url: 'http://p', query: up}\n"),
            "jobs.yaml:5:9:",
            "needs `fail_if`, `warn_if` or `anomaly`",
        ),
        (
            job(
                "      - {name: a, kind: prometheus, url: 'http://p', query: up, fail_if: 'about 5'}\n",
            ),
            "jobs.yaml:5:74:",
            "`about 5` is not a condition",
        ),
        (
            job(
                "      - {name: a, kind: http, url: 'http://x'}\n      - {name: a, kind: http, url: 'http://y'}\n",
            ),
            "jobs.yaml:6:16:",
            "duplicate check name `a`",
        ),
        (
            job("      - {name: a, kind: http, url: 'not a url'}\n"),
            "jobs.yaml:5:36:",
            "is not a URL",
        ),
        (
            job(
                "      - {name: a, kind: sql, database_url: 'mysql://x', query: 'SELECT 1', fail_if: '> 1'}\n",
            ),
            "jobs.yaml:5:",
            "must be a postgres:// URL",
        ),
        (
            "jobs:\n  morning:\n    kind: checklist\n    checks: []\n".to_string(),
            "jobs.yaml:4:13:",
            "at least one check",
        ),
    ];
    for (yaml, at, msg) in cases {
        let errs = load(yaml).expect_err(yaml);
        assert!(
            errs.iter().any(|e| e.contains(msg)),
            "for {yaml:?} wanted `{msg}`, got {errs:#?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with(at)),
            "for {yaml:?} wanted position {at}, got {errs:#?}"
        );
    }
}

#[test]
fn the_shipped_checklists_load() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/jobs.yaml")).unwrap();
    let c = load_str(Path::new("jobs.yaml"), &text, &|_| None).unwrap();
    let daily = c.jobs["daily-checklist"]
        .spec_as::<ChecklistSpec>()
        .expect("daily-checklist is a checklist");
    let kinds: std::collections::BTreeSet<&str> =
        daily.checks.value.iter().map(|c| c.kind).collect();
    for k in [
        "http",
        "prometheus",
        "alertmanager",
        "sql",
        "redis",
        "rds",
        "secret_age",
        "kubernetes",
    ] {
        assert!(kinds.contains(k), "the daily checklist has no {k} check");
    }
    assert!(c.jobs["watch"].schedule.is_some());
}

/// The line and column of `{v}` in `yaml`, 1-based.
fn placeholder_at(yaml: &str) -> (usize, usize) {
    let offset = yaml.find("{v}").expect("a {v} placeholder");
    let before = &yaml[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// Every identifier a job or check acts on, left empty, set from a
/// variable that is set but empty, or only whitespace: `validate` names the
/// field at its position. (AWS and Kubernetes read an empty filter as
/// "everything": `verify_backups` judged another instance's snapshot.)
#[test]
fn empty_identifiers_are_refused_at_their_position() {
    const MIGRATE: &str = "kind: snapshot_migrate\ninstance: db\ndeployment: api\n";
    const ROTATE: &str = "kind: rotate_secret\nsecret_id: s\ndeployment: api\n";
    const VERIFY: &str = "kind: verify_backups\ninstance: db\n";
    const ROLLOUT: &str = "kind: rollout\naction: restart\ndeployment: api\n";
    const TRIAGE: &str = "kind: triage\n";
    let check = |body: &str| format!("kind: checklist\nchecks:\n  - name: c\n{}", indent(body, 4));
    // (the job's body, the field set to {v})
    let cases: Vec<(String, &str)> = vec![
        (MIGRATE.replace("instance: db", "instance: {v}"), "instance"),
        (
            MIGRATE.replace("deployment: api", "deployment: {v}"),
            "deployment",
        ),
        (format!("{MIGRATE}namespace: {{v}}\n"), "namespace"),
        (format!("{MIGRATE}region: {{v}}\n"), "region"),
        (format!("{MIGRATE}container: {{v}}\n"), "container"),
        (
            format!("{MIGRATE}snapshot_prefix: {{v}}\n"),
            "snapshot_prefix",
        ),
        (
            ROTATE.replace("secret_id: s", "secret_id: {v}"),
            "secret_id",
        ),
        (
            ROTATE.replace("deployment: api", "deployment: {v}"),
            "deployment",
        ),
        (format!("{ROTATE}namespace: {{v}}\n"), "namespace"),
        (format!("{ROTATE}region: {{v}}\n"), "region"),
        (
            format!("{ROTATE}external_secret: {{v}}\n"),
            "external_secret",
        ),
        (VERIFY.replace("instance: db", "instance: {v}"), "instance"),
        (format!("{VERIFY}region: {{v}}\n"), "region"),
        (format!("{VERIFY}restore_class: {{v}}\n"), "restore_class"),
        (
            ROLLOUT.replace("deployment: api", "deployment: {v}"),
            "deployment",
        ),
        (format!("{ROLLOUT}namespace: {{v}}\n"), "namespace"),
        (format!("{TRIAGE}namespace: {{v}}\n"), "namespace"),
        (format!("{TRIAGE}selector: {{v}}\n"), "selector"),
        (format!("{TRIAGE}deployment: {{v}}\n"), "deployment"),
        (format!("{TRIAGE}rds:\n  instance: {{v}}\n"), "instance"),
        (
            format!("{TRIAGE}rds:\n  instance: db\n  region: {{v}}\n"),
            "region",
        ),
        (
            format!(
                "{TRIAGE}prometheus:\n  url: http://p\n  error_rate: {{v}}\n  latency_p99: x\n"
            ),
            "error_rate",
        ),
        (
            format!(
                "{TRIAGE}prometheus:\n  url: http://p\n  error_rate: x\n  latency_p99: {{v}}\n"
            ),
            "latency_p99",
        ),
        (
            format!("{TRIAGE}prometheus:\n  url: {{v}}\n  error_rate: x\n  latency_p99: x\n"),
            "url",
        ),
        (format!("{TRIAGE}health_url: {{v}}\n"), "health_url"),
        (
            format!("{TRIAGE}alertmanager_url: {{v}}\n"),
            "alertmanager_url",
        ),
        (format!("{TRIAGE}database_url: {{v}}\n"), "database_url"),
        (format!("{TRIAGE}redis_url: {{v}}\n"), "redis_url"),
        (check("kind: rds\ninstance: {v}\n"), "instance"),
        (check("kind: rds\ninstance: db\nregion: {v}\n"), "region"),
        (
            check("kind: secret_age\nsecret_id: {v}\nmax_age: 90d\n"),
            "secret_id",
        ),
        (check("kind: kubernetes\nnamespace: {v}\n"), "namespace"),
        (check("kind: kubernetes\nselector: {v}\n"), "selector"),
        (check("kind: kubernetes\ndeployment: {v}\n"), "deployment"),
        (check("kind: http\nurl: {v}\n"), "url"),
        (check("kind: http\nurl: http://x\nmethod: {v}\n"), "method"),
        (
            check("kind: prometheus\nurl: {v}\nquery: up\nfail_if: '< 1'\n"),
            "url",
        ),
        (
            check("kind: prometheus\nurl: http://p\nquery: {v}\nfail_if: '< 1'\n"),
            "query",
        ),
        (
            check("kind: sql\ndatabase_url: {v}\nquery: SELECT 1\nfail_if: '> 1'\n"),
            "database_url",
        ),
        (
            check("kind: sql\ndatabase_url: postgres://h/d\nquery: {v}\nfail_if: '> 1'\n"),
            "query",
        ),
        (check("kind: redis\nurl: {v}\n"), "url"),
        (check("kind: alertmanager\nurl: {v}\n"), "url"),
        (
            check("kind: alertmanager\nurl: http://a\nfail_at: {v}\n"),
            "fail_at",
        ),
        (
            check("kind: alertmanager\nurl: http://a\nmatchers: [{v}]\n"),
            "matchers",
        ),
        (
            format!("kind: command\nargv: [true]\nworkdir: {{v}}\n"),
            "workdir",
        ),
    ];
    for (body, field) in &cases {
        let template = format!("jobs:\n  j:\n{}", indent(body, 4));
        let (line, col) = placeholder_at(&template);
        for value in ["\"\"", "\"${EMPTY}\"", "\"  \""] {
            let yaml = template.replace("{v}", value);
            let errs = load(&yaml).expect_err(&yaml);
            let at = format!("jobs.yaml:{line}:{col}: ");
            assert!(
                errs.iter().any(|e| e.starts_with(&at)
                    && e.contains(&format!("`{field}`"))
                    && e.contains("must not be empty")),
                "{value} for `{field}`: wanted `{at}... `{field}` ... must not be empty` in {errs:#?}\n{yaml}"
            );
        }
    }
}

/// A variable set but empty says so, naming what was written.
#[test]
fn a_set_but_empty_variable_is_named() {
    let errs =
        load("jobs:\n  j:\n    kind: verify_backups\n    instance: \"${EMPTY}\"\n").unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        errs[0],
        "jobs.yaml:4:15: job `j`: `instance` must not be empty: `${EMPTY}` gives an empty value (a variable set but empty counts as missing)"
    );
}

fn indent(text: &str, n: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(n)))
        .collect()
}

/// Hostile values where a number, a word, a list or text belongs: the
/// message says what was expected in the file's terms and what was found,
/// never a Rust type. (yaml, expected message)
#[test]
fn type_errors_say_what_was_expected() {
    let job = |body: &str| format!("jobs:\n  j:\n{}", indent(body, 4));
    let cases: &[(String, &str)] = &[
        (
            job("kind: command\nargv: [true]\nretries: {max: -3}\n"),
            "jobs.yaml:5:20: job `j`: `max`: expected a whole number from 0 to 4294967295, found `-3`",
        ),
        (
            job("kind: command\nargv: [true]\nnotify: [x]\n"),
            "jobs.yaml:5:13: job `j`: `notify`: expected one of `never`, `on_failure`, `always`, found a list",
        ),
        (
            job("kind: command\nargv: [true]\nconcurrency: {a: 1}\n"),
            "jobs.yaml:5:18: job `j`: `concurrency`: expected one of `forbid`, `allow`, `replace`, found a mapping",
        ),
        (
            job("kind: rollout\naction: [restart]\ndeployment: api\n"),
            "jobs.yaml:4:13: job `j`: `action`: expected one of `restart`, `undo`, `scale`, found a list",
        ),
        (
            job("kind: command\nargv: [true]\nsuspend: maybe\n"),
            "jobs.yaml:5:14: job `j`: `suspend`: expected true or false, found `maybe`",
        ),
        (
            job("kind: command\nargv: true\n"),
            "jobs.yaml:4:11: job `j`: `argv`: expected a list, found `true`",
        ),
        (
            job("kind: verify_backups\ninstance:\n"),
            "jobs.yaml:4:13: job `j`: `instance`: expected text, found nothing",
        ),
        (
            job("kind: verify_backups\ninstance: [a, b]\n"),
            "jobs.yaml:4:15: job `j`: `instance`: expected text, found a list",
        ),
        (
            job("kind: verify_backups\ninstance: db\nmanual_snapshot_quota: -1\n"),
            "jobs.yaml:5:28: job `j`: `manual_snapshot_quota`: expected a whole number from 0 to 18446744073709551615, found `-1`",
        ),
        (
            job("kind: verify_backups\ninstance: db\nquota_warn: lots\n"),
            "jobs.yaml:5:17: job `j`: `quota_warn`: expected a number, found `lots`",
        ),
        (
            job("kind: rollout\naction: scale\ndeployment: api\nreplicas: 3000000000\n"),
            "jobs.yaml:6:15: job `j`: `replicas`: expected a whole number from -2147483648 to 2147483647, found `3000000000`",
        ),
        (
            job("kind: rotate_secret\nsecret_id: s\ndeployment: api\nencoding: base32\n"),
            "jobs.yaml:6:15: job `j`: unknown value `base32` (did you mean `base64`?), expected one of `hex`, `base64`",
        ),
    ];
    for (yaml, want) in cases {
        let errs = load(yaml).expect_err(yaml);
        assert_eq!(errs, vec![want.to_string()], "{yaml}");
        for jargon in [
            "invalid u",
            "invalid i",
            "externally tagged",
            "Option<",
            "scalar",
            "variant",
        ] {
            assert!(!errs[0].contains(jargon), "{errs:?}");
        }
    }
}

/// A value refused as it is read is not judged again with the default it
/// was read as: `timeout: 5x` is one error, not also "more than 0s".
#[test]
fn an_unreadable_value_is_reported_once() {
    let job = |body: &str| format!("jobs:\n  j:\n{}", indent(body, 4));
    let cases = [
        (
            job("kind: command\nargv: [true]\ntimeout: 5x\n"),
            "invalid duration `5x`",
        ),
        (
            job("kind: triage\npart_timeout: soon\n"),
            "invalid duration `soon`",
        ),
        (
            format!(
                "history: {{retention: soon}}\n{}",
                job("kind: command\nargv: [true]\n")
            ),
            "invalid duration `soon`",
        ),
        (
            job("kind: snapshot_migrate\ninstance: db\ndeployment: api\nsnapshot_prefix: \"\"\n"),
            "`snapshot_prefix` must not be empty",
        ),
    ];
    for (yaml, want) in cases {
        let errs = load(&yaml).expect_err(&yaml);
        assert_eq!(errs.len(), 1, "{yaml}: {errs:#?}");
        assert!(errs[0].contains(want), "{yaml}: {errs:#?}");
    }
}

/// Names become metric labels, table rows and headings: a control or
/// invisible character, a space at an end or a name past 128 characters
/// is refused where it is written. (yaml, position, message)
#[test]
fn names_that_break_outputs_are_refused() {
    let check = |name: &str| {
        format!(
            "jobs:\n  j:\n    kind: checklist\n    checks:\n      - name: {name}\n        kind: http\n        url: http://x\n"
        )
    };
    let rule = |name: &str| {
        format!(
            "jobs:\n  j:\n    kind: triage\n    rules:\n      - name: {name}\n        issue: Pool\n        remedy: restart\n        when: {{db.connection_ratio: '> 0.8'}}\n"
        )
    };
    let long = "a".repeat(129);
    let cases: Vec<(String, &str, &str)> = vec![
        (check("\"api\\nhealth\""), "5:15", "holds a newline"),
        (check("\"api\\e[31m\""), "5:15", "holds the character U+001B"),
        (check("\"api\\u202Eevil\""), "5:15", "holds the character U+202E"),
        (check("\"api\\u200B\""), "5:15", "holds the character U+200B"),
        (check("\" api\""), "5:15", "starts or ends with a space"),
        (check(&long), "5:15", "129 characters long"),
        (check("\"\""), "5:15", "`name` must not be empty"),
        (rule("\"pool\\nexhausted\""), "5:15", "holds a newline"),
        (
            "jobs:\n  j:\n    kind: triage\n    rules:\n      - name: pool\n        issue: \"Pool\\tExhausted\"\n        remedy: restart\n        when: {db.connection_ratio: '> 0.8'}\n".to_string(),
            "6:16",
            "holds a tab",
        ),
        (
            "jobs:\n  j:\n    kind: command\n    argv: [true]\n    env:\n      \"A\\nB\": x\n".to_string(),
            "6:7",
            "a key must not contain control characters",
        ),
        (
            "jobs:\n  \"a\\nb\":\n    kind: command\n    argv: [true]\n".to_string(),
            "2:3",
            "control characters",
        ),
    ];
    for (yaml, at, msg) in &cases {
        let errs = load(yaml).expect_err(yaml);
        let at = format!("jobs.yaml:{at}: ");
        assert!(
            errs.iter().any(|e| e.starts_with(&at) && e.contains(msg)),
            "wanted `{at}... {msg}` in {errs:#?}\n{yaml}"
        );
    }
}

/// Every URL is read as its client will read it, at `validate`: a port
/// that is not a number, a missing host or a wrong scheme fails here, not
/// at run time. (yaml, position, message)
#[test]
fn urls_are_validated_in_full() {
    let job = |body: &str| format!("jobs:\n  j:\n{}", indent(body, 4));
    let check = |body: &str| {
        job(&format!(
            "kind: checklist\nchecks:\n  - name: c\n{}",
            indent(body, 4)
        ))
    };
    let triage = |field: &str| job(&format!("kind: triage\n{field}\n"));
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!(
                "history: {{database_url: \"postgres://u:pw@db:notaport/runbookd\"}}\n{}",
                job("kind: command\nargv: [true]\n")
            ),
            "1:25",
            "history.database_url postgres://[REDACTED] is not a Postgres URL: invalid port number",
        ),
        (
            format!(
                "history: {{database_url: \"mysql://db/x\"}}\n{}",
                job("kind: command\nargv: [true]\n")
            ),
            "1:25",
            "must be postgres://… or sqlite://…",
        ),
        (
            check(
                "kind: sql\ndatabase_url: 'postgres://db:notaport/x'\nquery: SELECT 1\nfail_if: '> 1'\n",
            ),
            "7:23",
            "is not a Postgres URL: invalid port number",
        ),
        (
            check("kind: http\nurl: 'http://api:notaport/health'\n"),
            "7:14",
            "is not a URL: invalid port number",
        ),
        (
            check("kind: prometheus\nurl: 'ftp://p:9090'\nquery: up\nfail_if: '< 1'\n"),
            "7:14",
            "must be http or https",
        ),
        (
            check("kind: alertmanager\nurl: 'http://am:notaport'\n"),
            "7:14",
            "is not a URL: invalid port number",
        ),
        (
            check("kind: redis\nurl: 'redis://cache:notaport'\n"),
            "7:14",
            "is not a Redis URL",
        ),
        (
            triage("health_url: 'http://api:notaport/health'"),
            "4:17",
            "is not a URL",
        ),
        (
            triage("alertmanager_url: 'am:9093'"),
            "4:23",
            "must be http or https",
        ),
        (
            triage("prometheus: {url: 'http://p:notaport', error_rate: x, latency_p99: y}"),
            "4:23",
            "is not a URL",
        ),
        (
            triage("database_url: 'postgres://u:pw@db:notaport/app'"),
            "4:19",
            "database_url postgres://[REDACTED] is not a Postgres URL: invalid port number",
        ),
    ];
    for (yaml, at, msg) in &cases {
        let errs = load(yaml).expect_err(yaml);
        let at = format!("jobs.yaml:{at}: ");
        assert!(
            errs.iter().any(|e| e.starts_with(&at) && e.contains(msg)),
            "wanted `{at}... {msg}` in {errs:#?}\n{yaml}"
        );
        assert!(!errs.iter().any(|e| e.contains(":pw@")), "{errs:#?}");
    }
    // `{endpoint}` in a restore check stands for the restored instance.
    load(&job(
        "kind: verify_backups\ninstance: db\nrestore_test: true\nrestore_checks:\n  - {name: rows, kind: sql, database_url: 'postgres://u:pw@{endpoint}/app', query: SELECT 1, fail_if: '< 1'}\n",
    ))
    .unwrap();
}

/// A chained run takes no parameters, so a job that needs one (scaling to
/// 0 needs `--confirm`) can never run from `on_failure`: refused where it
/// is named, not found out at the failure that needed it.
#[test]
fn a_chained_job_that_needs_confirmation_is_refused() {
    let yaml = "jobs:
  watch:
    kind: command
    argv: [\"true\"]
    on_failure: [triage, maintenance]
  triage:
    kind: triage
  maintenance:
    kind: rollout
    action: scale
    replicas: 0
    deployment: api
";
    let errs = load(yaml).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("jobs.yaml:5:26: job `watch`: on_failure: `maintenance` cannot run chained: scaling api to 0 replicas"),
        "{errs:#?}"
    );
    assert!(
        errs[0].contains("a chained run has no --confirm"),
        "{errs:#?}"
    );
    // Scaling to 1 needs nothing, so it may be chained.
    load(&yaml.replace("replicas: 0", "replicas: 1")).unwrap();
}

#[test]
fn alertmanager_section_and_job_alert_fields_load_with_defaults() {
    let yaml = r#"
alertmanager:
  url: "http://am:${TOKEN}@alertmanager:9093"
  labels: { team: backend, env: production }
jobs:
  a:
    kind: command
    argv: ["true"]
    alert_severity: critical
    ping_url: "https://hc-ping.com/${TOKEN}"
  b:
    kind: command
    argv: ["true"]
    ping_url: "${HC_UNSET:-}"
"#;
    let c = load(yaml).unwrap();
    let am = c.alertmanager.as_ref().expect("alertmanager is set");
    assert_eq!(am.url.shown(), "http://am:[REDACTED]@alertmanager:9093");
    assert_eq!(am.resend, Duration::from_secs(60));
    assert_eq!(am.timeout, Duration::from_secs(10));
    assert_eq!(am.generator_url, None);
    assert_eq!(
        am.labels.iter().collect::<Vec<_>>(),
        [
            (&"env".to_string(), &"production".to_string()),
            (&"team".to_string(), &"backend".to_string())
        ]
    );
    assert_eq!(c.jobs["a"].severity, Severity::Critical);
    assert_eq!(c.jobs["b"].severity, Severity::Warning);
    let ping = c.jobs["a"].ping_url.as_ref().expect("a pings");
    assert_eq!(ping.expose(), "https://hc-ping.com/tok-abcdef-123");
    assert_eq!(
        format!("{:?}", c.jobs["a"]).matches("tok-abcdef").count(),
        0
    );
    // The whole ping URL is a secret, not only the part the environment
    // gave.
    assert_eq!(
        c.redactor
            .redact("GET https://hc-ping.com/tok-abcdef-123/start"),
        "GET [REDACTED]/start"
    );
    // Empty is off, explicitly: not an empty identifier.
    assert!(c.jobs["b"].ping_url.is_none());
    // Alerts alone: a job may notify with no one to mail.
    let alone = load(
        "alertmanager: { url: \"http://am:9093\" }\njobs: { a: { kind: command, argv: [\"true\"], notify: on_failure } }\n",
    )
    .unwrap();
    assert!(alone.jobs["a"].notify_to.is_empty());
    let errs =
        load("jobs: { a: { kind: command, argv: [\"true\"], notify: on_failure } }\n").unwrap_err();
    assert!(errs[0].contains("needs recipients"), "{errs:?}");
    // No section, or an empty URL: no alerts.
    let none = load("jobs: { a: { kind: command, argv: [\"true\"] } }\n").unwrap();
    assert!(none.alertmanager.is_none());
    let empty = load(
        "alertmanager: { url: \"${AM_UNSET:-}\", resend: 5m }\njobs: { a: { kind: command, argv: [\"true\"] } }\n",
    )
    .unwrap();
    assert!(empty.alertmanager.is_none());
}

/// (yaml, expected line:col, text)
#[test]
fn bad_alerting_configs_table() {
    let job = "jobs:\n  a:\n    kind: command\n    argv: [\"true\"]\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("alertmanager: {{ url: \"am:9093\" }}\n{job}"),
            "jobs.yaml:1:22:",
            "alertmanager.url",
        ),
        (
            format!("alertmanager: {{ url: \"ftp://am\" }}\n{job}"),
            "jobs.yaml:1:22:",
            "scheme `ftp`",
        ),
        (
            format!("alertmanager: {{ url: \"http://am\", labels: {{ job: x }} }}\n{job}"),
            "jobs.yaml:1:",
            "`job` is set by runbookd",
        ),
        (
            format!("alertmanager: {{ url: \"http://am\", labels: {{ team-name: x }} }}\n{job}"),
            "jobs.yaml:1:",
            "`team-name` is not a label name",
        ),
        (
            format!("alertmanager: {{ url: \"http://am\", labels: {{ team: \"\" }} }}\n{job}"),
            "jobs.yaml:1:",
            "alertmanager.labels.team is empty",
        ),
        (
            format!("alertmanager: {{ url: \"http://am\", resend: 500ms }}\n{job}"),
            "jobs.yaml:1:",
            "alertmanager.resend must be at least 1s",
        ),
        (
            format!(
                "daemon: {{ heartbeat: 10s, stale_after: 30s }}\nalertmanager: {{ url: \"http://am\", resend: 5s }}\n{job}"
            ),
            "jobs.yaml:2:",
            "alertmanager.resend (5s) must be at least daemon.heartbeat (10s)",
        ),
        (
            format!("alertmanager: {{ url: \"http://am\", timeout: 0s }}\n{job}"),
            "jobs.yaml:1:",
            "alertmanager.timeout must be more than 0s",
        ),
        (
            format!(
                "alertmanager: {{ url: \"http://am\", generator_url: \"console/{{run}}\" }}\n{job}"
            ),
            "jobs.yaml:1:",
            "alertmanager.generator_url",
        ),
        (
            format!("alertmanager: {{ url: \"http://am\", resnd: 1m }}\n{job}"),
            "jobs.yaml:1:",
            "unknown field `resnd` (did you mean `resend`?)",
        ),
        (
            format!("{job}    alert_severity: page\n"),
            "jobs.yaml:5:21:",
            "unknown value `page`, expected one of `info`, `warning`, `critical`",
        ),
        (
            format!("{job}    ping_url: \"https://hc-ping.com/x?create=1\"\n"),
            "jobs.yaml:5:15:",
            "has a query",
        ),
        (
            format!("{job}    ping_url: \"hc-ping.com/x\"\n"),
            "jobs.yaml:5:15:",
            "job `a`: ping_url",
        ),
    ];
    for (yaml, at, msg) in &cases {
        let errs = load(yaml).expect_err(yaml);
        assert!(
            errs.iter().any(|e| e.starts_with(at) && e.contains(msg)),
            "for {yaml:?} wanted `{at} ... {msg}`, got {errs:#?}"
        );
        // A ping URL is a secret even in its error.
        assert!(
            errs.iter().all(|e| !e.contains("hc-ping.com/x")),
            "{errs:#?}"
        );
    }
}

#[test]
fn the_shipped_daily_jobs_ping_and_alert_only_when_configured() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/jobs.yaml")).unwrap();
    let daily = ["daily-checklist", "morning-report", "verify-backups"];
    let bare = load_str(Path::new("jobs.yaml"), &text, &|_| None).unwrap();
    assert!(bare.alertmanager.is_none());
    assert!(bare.jobs.values().all(|j| j.ping_url.is_none()));
    let set = load_str(Path::new("jobs.yaml"), &text, &|k| match k {
        "ALERTMANAGER_URL" => Some("http://alertmanager.monitoring:9093".into()),
        k if k.starts_with("HC_PING_") => Some(format!("https://hc-ping.com/{}", k.to_lowercase())),
        _ => None,
    })
    .unwrap();
    let am = set
        .alertmanager
        .as_ref()
        .expect("alerts with ALERTMANAGER_URL");
    assert_eq!(am.labels["team"], "backend");
    for name in daily {
        let url = set.jobs[name]
            .ping_url
            .as_ref()
            .map(|u| u.expose().to_string());
        assert!(
            url.as_deref()
                .is_some_and(|u| u.starts_with("https://hc-ping.com/hc_ping_")),
            "{name}: {url:?}"
        );
    }
}

/// The console's credential file: one of two, an empty value (a chart's
/// `${VAR:-}` left unset) is none, both set is refused where written.
#[test]
fn console_auth_is_one_file_or_none() {
    let job = "jobs:\n  a: { kind: command, argv: [\"true\"] }\n";
    let auth = |text: &str| load(&format!("{text}\n{job}")).map(|c| c.console.auth);
    assert!(matches!(auth("").unwrap(), ConsoleAuth::None));
    assert!(matches!(
        auth("console: { bearer_token_file: \"${EMPTY}\", basic_auth_file: \"\" }").unwrap(),
        ConsoleAuth::None
    ));
    match auth("console: { bearer_token_file: \" /run/secrets/token \" }").unwrap() {
        ConsoleAuth::Bearer(p) => assert_eq!(p, PathBuf::from("/run/secrets/token")),
        other => panic!("{other:?}"),
    }
    match auth("console: { basic_auth_file: /creds, bearer_token_file: \"${EMPTY}\" }").unwrap() {
        ConsoleAuth::Basic(p) => assert_eq!(p, PathBuf::from("/creds")),
        other => panic!("{other:?}"),
    }
    let err = auth("console: { bearer_token_file: /t, basic_auth_file: /b }").unwrap_err();
    assert!(
        err.iter()
            .any(|e| e.starts_with("jobs.yaml:1:") && e.contains("not both")),
        "{err:?}"
    );
    let err = auth("console: { bearer_file: /t }").unwrap_err();
    assert!(
        err.iter()
            .any(|e| e.contains("unknown field `bearer_file`") && e.contains("`bearer_token_file`")),
        "{err:?}"
    );
}
