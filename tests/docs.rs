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
