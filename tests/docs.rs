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
