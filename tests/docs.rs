//! The README's tables of kinds are the registries: a kind added without
//! its row (or a row left for a kind that is gone) fails here.

fn table_kinds(readme: &str, header: &str) -> Vec<String> {
    let start = readme
        .find(header)
        .unwrap_or_else(|| panic!("README has no table headed {header:?}"));
    readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.split('|')
                .nth(1)
                .unwrap()
                .trim()
                .trim_matches('`')
                .to_string()
        })
        .collect()
}

#[test]
fn readme_lists_exactly_the_registered_kinds() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let jobs = table_kinds(&readme, "| kind | what it does |");
    assert_eq!(jobs, runbookd::jobs::Registry::NAMES, "job kinds table");
    let checks = table_kinds(&readme, "| kind | fields (defaults) | what it measures |");
    assert_eq!(
        checks,
        runbookd::checks::CheckKinds::NAMES,
        "check kinds table"
    );
}

/// A scrape in which every metric has a value (a family without one is
/// not shown): a run of each kind of event, a store call failed.
fn a_scrape_with_every_metric() -> String {
    use chrono::{DateTime, Utc};
    use runbookd::model::{CheckStatus, MailBacklog};
    use runbookd::runner::RunEvent;
    use runbookd::store::{HistoryStore, RunStatus, Trigger, WatchedStore};
    use std::time::Duration;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = runbookd::testkit::TestDatabase::sqlite();
    let store = rt.block_on(async {
        let store = WatchedStore::new(db.open().await);
        // The file gone, the store refuses writes and its probe.
        std::fs::remove_file(db.url.trim_start_matches("sqlite://")).unwrap();
        assert!(store.ping().await.is_err());
        store
    });
    let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let state = runbookd::http::DaemonState::new(t("2026-01-01T00:00:00Z"), store.health().clone());
    let job = "nightly";
    state.describe_job(
        job,
        Duration::from_secs(60),
        Some(("0 3 * * *".parse().unwrap(), chrono_tz::UTC)),
    );
    state.next_fires([(job.to_string(), t("2026-01-02T03:00:00Z"))]);
    state.observe(&RunEvent::Started {
        id: 1,
        job: job.into(),
        trigger: Trigger::Schedule,
        scheduled_for: Some(t("2026-01-01T03:00:00Z")),
        started_at: t("2026-01-01T03:00:00Z"),
    });
    state.observe(&RunEvent::Finished {
        id: 1,
        job: job.into(),
        trigger: Trigger::Schedule,
        status: RunStatus::Succeeded,
        attempt: 1,
        at: t("2026-01-01T03:00:10Z"),
        took: Duration::from_secs(10),
        checks: vec![("disk".into(), CheckStatus::Pass, Some(0.5))],
    });
    state.observe(&RunEvent::Ended {
        id: 1,
        job: job.into(),
        status: RunStatus::Succeeded,
        dry_run: false,
        at: t("2026-01-01T03:00:10Z"),
    });
    state.observe(&RunEvent::Started {
        id: 2,
        job: job.into(),
        trigger: Trigger::Manual,
        scheduled_for: None,
        started_at: t("2026-01-01T04:00:00Z"),
    });
    state.ticked(
        t("2026-01-01T04:00:01Z"),
        1,
        &runbookd::scheduler::TickReport {
            missed: vec![(job.to_string(), 1)],
            ..Default::default()
        },
    );
    state.observe(&RunEvent::AlertsPosted {
        firing: vec![job.into()],
        resolved: Vec::new(),
        outcome: runbookd::runner::CallOutcome::Sent,
        at: t("2026-01-01T04:00:01Z"),
    });
    state.observe(&RunEvent::Pinged {
        id: 2,
        job: job.into(),
        signal: runbookd::adapters::ping::PingSignal::Start,
        outcome: runbookd::runner::CallOutcome::Sent,
        at: t("2026-01-01T04:00:01Z"),
    });
    state.abandoned(1);
    state.mail(MailBacklog {
        pending: 1,
        oldest: Some(t("2026-01-01T03:00:10Z")),
    });
    state.render_at(t("2026-01-01T04:00:02Z"))
}

/// The README's metrics table is what `/metrics` exposes, name and type:
/// a metric documented but not exposed (or exposed but not documented)
/// fails here.
#[test]
fn readme_lists_exactly_the_exposed_metrics() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("| metric | type | labels | meaning |")
        .expect("README has no metrics table");
    let rows: Vec<Vec<&str>> = readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let mut documented: Vec<(String, String)> = rows
        .iter()
        .map(|cells| (cells[1].trim_matches('`').to_string(), cells[2].to_string()))
        .collect();
    let scrape = a_scrape_with_every_metric();
    let mut exposed: Vec<(String, String)> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_string(), kind.to_string())
        })
        .collect();
    documented.sort();
    exposed.sort();
    assert_eq!(documented, exposed, "README metrics table vs /metrics");
    // And each one's labels, as its samples carry them.
    for cells in &rows {
        let name = cells[1].trim_matches('`');
        let documented: Vec<&str> = cells[3]
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let sample = scrape
            .lines()
            .find(|l| {
                !l.starts_with('#')
                    && l.starts_with(name)
                    && !l[name.len()..].starts_with("_bucket")
            })
            .unwrap_or_else(|| panic!("no sample of {name}"));
        let labels: Vec<&str> = sample
            .split_once('{')
            .map(|(_, rest)| {
                rest.split(',')
                    .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(documented, labels, "labels of {name}: {sample}");
    }
}

/// The triage facts table is the list rules are validated against.
#[test]
fn readme_lists_exactly_the_triage_facts() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut rows = table_kinds(&readme, "| fact | meaning |");
    assert_eq!(rows.pop().as_deref(), Some("logs.NAME"));
    let facts: Vec<&str> = runbookd::jobs::triage::rules::FACTS
        .iter()
        .map(|(f, _)| *f)
        .collect();
    assert_eq!(rows, facts, "triage facts table");
}

/// The IAM policy the README points at covers exactly the AWS calls the
/// job kinds make: a new SDK call without its action fails here.
#[test]
fn the_iam_policy_has_an_action_for_every_aws_call() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("docs/iam-policy.json")).unwrap())
            .unwrap();
    let mut allowed = std::collections::BTreeSet::new();
    for st in policy["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow");
        for a in st["Action"].as_array().unwrap() {
            allowed.insert(a.as_str().unwrap().to_string());
        }
    }
    let mut source = String::new();
    for f in ["rds.rs", "secrets.rs"] {
        source.push_str(&std::fs::read_to_string(root.join("src/adapters/aws").join(f)).unwrap());
    }
    // (SDK call, IAM action); tags on create need AddTagsToResource.
    let table = [
        (".describe_db_instances(", "rds:DescribeDBInstances"),
        (".describe_db_snapshots(", "rds:DescribeDBSnapshots"),
        (".describe_events(", "rds:DescribeEvents"),
        (".create_db_snapshot(", "rds:CreateDBSnapshot"),
        (".delete_db_snapshot(", "rds:DeleteDBSnapshot"),
        (
            ".restore_db_instance_from_db_snapshot(",
            "rds:RestoreDBInstanceFromDBSnapshot",
        ),
        (".delete_db_instance(", "rds:DeleteDBInstance"),
        (".set_tags(", "rds:AddTagsToResource"),
        (".describe_secret(", "secretsmanager:DescribeSecret"),
        (".put_secret_value(", "secretsmanager:PutSecretValue"),
        (
            ".update_secret_version_stage(",
            "secretsmanager:UpdateSecretVersionStage",
        ),
    ];
    let mut needed = std::collections::BTreeSet::new();
    for (call, action) in table {
        if source.contains(call) {
            needed.insert(action.to_string());
        }
    }
    assert_eq!(
        allowed, needed,
        "docs/iam-policy.json against the SDK calls"
    );
    // And no call the table does not know.
    for line in source.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix('.')
            && rest.ends_with("()")
            && (rest.starts_with("describe_")
                || rest.starts_with("create_")
                || rest.starts_with("delete_")
                || rest.starts_with("put_")
                || rest.starts_with("update_")
                || rest.starts_with("restore_")
                || rest.starts_with("get_")
                || rest.starts_with("list_")
                || rest.starts_with("modify_"))
        {
            let call = format!(".{}", rest.trim_end_matches(')'));
            assert!(
                table.iter().any(|(c, _)| *c == call),
                "an AWS call the IAM policy test does not know: {line}"
            );
        }
    }
}

/// No Docker engine runs here, so the Dockerfile's dependency stage is
/// checked the way it works: its stub commands, run on a copy of the
/// manifest alone, must leave a tree cargo accepts with the locked
/// dependencies, and nothing the build copies may be docker-ignored.
#[test]
fn the_dockerfile_dependency_stage_builds_from_the_manifest_alone() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docker = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let stage = docker
        .split("COPY Cargo.toml Cargo.lock ./")
        .nth(1)
        .expect("the dependency stage copies the manifest first");
    let run = stage.split("\nRUN ").nth(1).expect("a RUN after the copy");
    let stubs: String = run
        .split("&& cargo build")
        .next()
        .unwrap()
        .replace("\\\n", " ");
    let dir = tempfile::tempdir().unwrap();
    for f in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(root.join(f), dir.path().join(f)).unwrap();
    }
    let sh = std::process::Command::new("sh")
        .arg("-ec")
        .arg(&stubs)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        sh.status.success(),
        "{stubs}: {}",
        String::from_utf8_lossy(&sh.stderr)
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let meta = std::process::Command::new(cargo)
        // The resolve, and the manifests of what the host build uses, as
        // `cargo build --locked` reads them (metadata would fetch every
        // target's crates, which the build does not).
        .args(["tree", "--locked", "--offline", "-e", "normal,build"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        meta.status.success(),
        "the stubbed tree is not a cargo package: {}",
        String::from_utf8_lossy(&meta.stderr)
    );
    let ignored = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    for copied in docker
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            parts[..parts.len() - 1].to_vec()
        })
    {
        assert!(
            !ignored.lines().any(|i| i.trim() == copied),
            "{copied} is copied into the image but docker-ignored"
        );
        assert!(
            root.join(copied).exists(),
            "the Dockerfile copies {copied}, which is not here"
        );
    }
}

/// A heading's anchor as GitHub makes it: lower case, spaces to hyphens,
/// punctuation other than hyphens and underscores dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The README's "Monitoring runbookd" section.
fn monitoring_section(readme: &str) -> &str {
    let start = readme
        .find("\n## Monitoring runbookd\n")
        .expect("README has a \"Monitoring runbookd\" section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// Every alert of the chart links to its own paragraph of the README's
/// "Monitoring runbookd": a heading named as the alert (the link's anchor)
/// and a paragraph after it that says what to do.
#[test]
fn every_alert_links_to_its_paragraph_in_the_readme() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = monitoring_section(&readme);
    let rules =
        std::fs::read_to_string(root.join("helm/runbookd/templates/prometheusrule.yaml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    let links: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url: {{ $url }}#"))
        .collect();
    assert_eq!(alerts.len(), 12, "{alerts:?}");
    assert_eq!(
        links,
        alerts.iter().map(|a| a.to_lowercase()).collect::<Vec<_>>(),
        "each alert links to the anchor of its own name"
    );
    for (alert, link) in alerts.iter().zip(&links) {
        let heading = format!("\n#### {alert}\n");
        let at = section
            .find(&heading)
            .unwrap_or_else(|| panic!("no heading for {alert} in \"Monitoring runbookd\""));
        assert_eq!(anchor(alert), *link);
        let paragraph = section[at + heading.len()..]
            .trim_start()
            .split("\n\n")
            .next()
            .unwrap();
        assert!(
            !paragraph.starts_with('#') && paragraph.split_whitespace().count() > 25,
            "{alert}'s paragraph says too little: {paragraph:?}"
        );
    }
}

/// The alerts and the dashboard read only series that exist: each
/// `runbookd_` metric is in the README's metrics table (itself checked
/// against /metrics above), each kube-state-metrics series is named in
/// "Monitoring runbookd".
#[test]
fn the_alerts_and_the_dashboard_read_documented_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("| metric | type | labels | meaning |").unwrap();
    let documented: Vec<String> = readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.split('|')
                .nth(1)
                .unwrap()
                .trim()
                .trim_matches('`')
                .to_string()
        })
        .collect();
    let section = monitoring_section(&readme);
    let names = |text: &str, prefix: &str| -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len().max(1)..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            found.push(name);
        }
        found.sort();
        found.dedup();
        found
    };
    let mut used = 0;
    for file in [
        "helm/runbookd/templates/prometheusrule.yaml",
        "helm/runbookd/files/dashboard.json",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for name in names(&text, "runbookd_") {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| documented.iter().any(|d| d == b))
                .unwrap_or(&name);
            assert!(
                documented.iter().any(|d| d == base),
                "{file} reads {name}, which is not in README's metrics table"
            );
            used += 1;
        }
        for name in names(&text, "kube_") {
            assert!(
                section.contains(&format!("`{name}`")),
                "{file} reads {name}, which \"Monitoring runbookd\" does not name"
            );
            used += 1;
        }
    }
    assert!(used > 20, "{used}");
}
