use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    a: Option<Text>,
    b: Option<Vec<Text>>,
    #[allow(dead_code)]
    d: Option<Dur>,
}

fn diags(text: &str) -> Vec<String> {
    let l = load::<Doc>(text, &|k| (k == "X").then(|| "ex".to_string()));
    l.diags
        .iter()
        .map(|(p, m)| format!("{}:{}: {m}", p.line, p.col))
        .collect()
}

#[test]
fn text_is_interpolated_with_its_position() {
    let l = load::<Doc>("a: \"v=${X}\"\nb: [p, '${X:-d}']\n", &|k| {
        (k == "X").then(|| "ex".to_string())
    });
    let d = l.value.unwrap();
    let a = d.a.unwrap();
    assert_eq!(a.as_str(), "v=ex");
    assert_eq!((a.at.line, a.at.col, a.quoted), (1, 4, true));
    assert_eq!(a.parts, vec!["ex".to_string()]);
    assert_eq!(d.b.unwrap()[1].as_str(), "ex");
}

#[test]
fn problems_table() {
    // (yaml, expected diagnostics)
    let cases: &[(&str, &[&str])] = &[
        (
            "a: ${NOPE}\n",
            &["1:4: environment variable `NOPE` is not set"],
        ),
        (
            "a: x\na: y\n",
            &["2:1: duplicate key `a` (first defined at line 1, column 1)"],
        ),
        ("d: soon\n", &["1:4: invalid duration `soon`"]),
        ("c: 1\n", &["1:1: unknown field `c`"]),
        ("a: [\n", &["YAML syntax"]),
        ("a: x\n---\na: y\n", &["a second YAML document"]),
    ];
    for (yaml, want) in cases {
        let got = diags(yaml);
        assert_eq!(got.len(), want.len(), "{yaml:?}: {got:#?}");
        for (g, w) in got.iter().zip(want.iter()) {
            assert!(g.contains(w), "{yaml:?}: wanted {w:?} in {g:?}");
        }
    }
}

#[test]
fn plain_numbers_and_booleans_stay_as_written() {
    // (yaml value, text read)
    let cases = [
        ("1.10", "1.10"),
        ("on", "on"),
        ("yes", "yes"),
        ("n", "n"),
        ("0755", "0755"),
        ("0x1F", "0x1F"),
        ("1e3", "1e3"),
        ("-0", "-0"),
        (".inf", ".inf"),
        ("1_000", "1_000"),
        ("'1.10'", "1.10"),
        ("\"1.10\"", "1.10"),
        ("!secret 0123456", "0123456"),
        ("&anchor 1.20", "1.20"),
    ];
    for (yaml, want) in cases {
        let l = load::<Doc>(&format!("a: {yaml}\nb: [{yaml}, 2.50]\n"), &no_env);
        let d = l.value.unwrap_or_else(|| panic!("{yaml}: {:?}", l.diags));
        assert_eq!(d.a.unwrap().as_str(), want, "{yaml}");
        let b = d.b.unwrap();
        assert_eq!(b[0].as_str(), want, "{yaml} in a flow list");
        assert_eq!(b[1].as_str(), "2.50");
    }
    let l = load::<Doc>("a: !secret 0123456\n", &no_env);
    assert_eq!(l.secrets, vec!["0123456".to_string()]);
}

#[test]
fn an_alias_bomb_stops_fast_with_a_position() {
    let mut y = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        y.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let started = std::time::Instant::now();
    let l = load::<serde::de::IgnoredAny>(&y, &no_env);
    assert!(l.value.is_none());
    assert!(l.diags[0].0.is_known(), "{:?}", l.diags);
    // Bounded work, not minutes; generous for a loaded machine.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
