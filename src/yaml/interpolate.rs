//! `${VAR}` and `${VAR:-default}` in jobs.yaml values.
//!
//! Interpolation runs on parsed scalar values, not on the raw file, so an
//! environment value can never add YAML structure (a `:` or a newline in a
//! password stays inside its string).
//!
//! - `${VAR}`: the variable's value; an error if it is unset.
//! - `${VAR:-default}`: the default when the variable is unset or empty, as in
//!   the shell.
//! - `$$`: a literal `$`.
//!
//! Besides the text, it returns the values the environment put in, so a
//! secret value's parts can be scrubbed even where they appear alone
//! (`Bearer ${TOKEN}` echoed back as just the token).

/// An error with its byte offset inside the scalar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    pub offset: usize,
    pub message: String,
}

pub fn interpolate(
    input: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), Vec<InterpolationError>> {
    let mut out = String::with_capacity(input.len());
    let mut parts = Vec::new();
    let mut errors = Vec::new();
    let mut rest = input;
    let mut pos = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let here = pos + i;
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            pos = here + 2;
            rest = tail;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            out.push('$');
            pos = here + 1;
            rest = after;
            continue;
        };
        let Some(end) = body_start.find('}') else {
            errors.push(InterpolationError {
                offset: here,
                message: "unterminated `${` (write `$$` for a literal `$`)".to_string(),
            });
            rest = "";
            break;
        };
        let body = &body_start[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if !is_var_name(name) {
            errors.push(InterpolationError {
                offset: here,
                message: format!(
                    "`${{{body}}}` is not a valid reference: use `${{NAME}}` or `${{NAME:-default}}` with NAME made of letters, digits and `_`"
                ),
            });
        } else {
            match (env(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => {
                    out.push_str(&v);
                    parts.push(v);
                }
                (None, Some(d)) => out.push_str(d),
                (None, None) => errors.push(InterpolationError {
                    offset: here,
                    message: format!(
                        "environment variable `{name}` is not set (set it, or give a default with `${{{name}:-value}}`)"
                    ),
                }),
            }
        }
        pos = here + 2 + end + 1;
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok((out, parts))
    } else {
        Err(errors)
    }
}

fn is_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.internal".into()),
            "EMPTY" => Some(String::new()),
            "PASS" => Some("p:a\nss".into()),
            _ => None,
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, Result<&str, (usize, &str)>)] = &[
            ("plain", Ok("plain")),
            ("${HOST}", Ok("db.internal")),
            ("pg://${HOST}:5432", Ok("pg://db.internal:5432")),
            ("${MISSING:-fallback}", Ok("fallback")),
            ("${EMPTY:-fallback}", Ok("fallback")),
            ("${HOST:-fallback}", Ok("db.internal")),
            ("${MISSING:-}", Ok("")),
            ("cost $$5 and $x", Ok("cost $5 and $x")),
            ("$${HOST}", Ok("${HOST}")),
            ("${PASS}", Ok("p:a\nss")),
            ("a ${MISSING} b", Err((2, "`MISSING` is not set"))),
            ("${HOST", Err((0, "unterminated"))),
            ("x${1BAD}", Err((1, "not a valid reference"))),
        ];
        for (input, want) in cases {
            let got = interpolate(input, &env);
            match (want, got) {
                (Ok(w), Ok((g, _))) => assert_eq!(&g, w, "{input}"),
                (Err((off, msg)), Err(errs)) => {
                    assert_eq!(errs[0].offset, *off, "{input}");
                    assert!(
                        errs[0].message.contains(msg),
                        "{input}: {}",
                        errs[0].message
                    );
                }
                (w, g) => panic!("{input}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn returns_what_the_environment_put_in() {
        let (_, parts) = interpolate("u=${HOST} p=${MISSING:-dflt} q=${EMPTY:-x}", &env).unwrap();
        assert_eq!(parts, vec!["db.internal".to_string()]);
    }

    #[test]
    fn reports_every_missing_variable() {
        let errs = interpolate("${A}-${B}", &env).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[1].offset, 5);
    }
}
