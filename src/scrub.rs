//! Text runbookd did not write (job output, pod logs, Kubernetes events,
//! HTTP bodies, errors of other systems) as it may be kept or shown:
//! credentials of common shapes masked, terminal control characters
//! escaped.
//!
//! The shapes are found on the text as it came, all at once, and every
//! span found (with the known secrets' spans the [`crate::secret::Redactor`]
//! adds) is replaced in one pass: a mask is never rewritten by a later
//! match, and two overlapping finds become one mask.
//!
//! A value is masked when its key names a secret. The key names a secret
//! when, ignoring case and reading `-` as `_`, it is one of [`NAMES`], or
//! (written with `_`) ends in one of [`SUFFIXES`], or (camelCase) ends in
//! `Password`, `Passwd`, `Secret`, `Token` or `Key`. So `DB_PASSWORD=…`,
//! `"apiKey": "…"` and `X-Api-Key: …` are masked, and `tokens_used=3`,
//! `token_count: 5`, `secret_id=…` and the identifiers of [`NOT_SECRETS`]
//! (`ClientRequestToken`, `NextToken`, `public_key`…) are kept. Without a
//! space after it, a colon is not a key's (`secret:prod/db` names a
//! secret, it holds none).

use std::borrow::Cow;
use std::ops::Range;

use base64::Engine;

/// What replaces every secret, known or found by its shape.
pub const MASK: &str = "[REDACTED]";

/// Keys that name a secret whole (lowercase, `_` for `-`).
pub const NAMES: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "x_api_key",
    "access_key",
    "accesskey",
    "private_key",
    "privatekey",
    "credential",
    "credentials",
    "auth_token",
    "x_auth_token",
    "access_token",
    "refresh_token",
    "client_secret",
    "secret_key",
];

/// Endings of `snake_case` and `ENV_VAR` keys that name a secret.
pub const SUFFIXES: &[&str] = &[
    "_key",
    "_secret",
    "_password",
    "_passwd",
    "_pwd",
    "_token",
    "_credential",
    "_credentials",
];

const CAMEL_SUFFIXES: &[&str] = &["Password", "Passwd", "Secret", "Token", "Key"];

/// Names with a secret's ending that name no secret: identifiers and
/// public halves (lowercase, without `_` and `-`). A rotation's
/// `ClientRequestToken` stays readable in its step, for the audit.
pub const NOT_SECRETS: &[&str] = &[
    "clientrequesttoken",
    "nexttoken",
    "pagetoken",
    "nextpagetoken",
    "continuationtoken",
    "idempotencykey",
    "publickey",
    "primarykey",
    "foreignkey",
    "partitionkey",
    "sortkey",
    "cachekey",
];

/// Spans of `text` holding a credential by its shape. `in_key` says the
/// text starts inside a private key block (a stream read line by line);
/// returns whether it ends inside one.
pub fn credentials(text: &str, in_key: bool, spans: &mut Vec<Range<usize>>) -> bool {
    let in_key = private_keys(text, in_key, spans);
    url_passwords(text, spans);
    auth_schemes(text, spans);
    key_values(text, spans);
    aws_secret_keys(text, spans);
    in_key
}

/// Whether a stream is inside a private key block after `line`, without
/// scrubbing it (for lines a bounded log drops unread).
pub fn in_key_after(line: &str, in_key: bool) -> bool {
    if !in_key && !line.contains("PRIVATE KEY-----") {
        return false;
    }
    private_keys(line, in_key, &mut Vec::new())
}

/// `text` with `spans` masked and control characters escaped, in one pass.
pub fn rebuild(text: &str, spans: &mut [Range<usize>]) -> String {
    if spans.is_empty() {
        return escape_controls(text).into_owned();
    }
    spans.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    let mut out = String::with_capacity(text.len() + spans.len() * MASK.len());
    let mut at = 0;
    let mut i = 0;
    while i < spans.len() {
        let start = spans[i].start.max(at);
        let mut end = spans[i].end;
        i += 1;
        // Overlapping or touching spans are one secret to the reader.
        while i < spans.len() && spans[i].start <= end {
            end = end.max(spans[i].end);
            i += 1;
        }
        if end <= start {
            continue;
        }
        out.push_str(&escape_controls(&text[at..start]));
        out.push_str(MASK);
        at = end;
    }
    out.push_str(&escape_controls(&text[at..]));
    out
}

/// Terminal control characters shown as escapes (`\x1b`, `\u009b`), so
/// text from outside cannot move the cursor, retitle or clear the
/// operator's terminal. Newline, tab and the CR of a CRLF stay.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\n' && c != '\t' && c != '\r') || matches!(c, '\u{80}'..='\u{9f}')
    };
    let lone_cr = text
        .as_bytes()
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'\r' && text.as_bytes().get(i + 1) != Some(&b'\n'));
    if !lone_cr && !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => out.push(c),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' || c == '\x7f' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if bad(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether `key` (as written before `=` or `:`) names a secret.
pub fn names_a_secret(key: &str) -> bool {
    // `--password`, `spring.datasource.password`: the last name counts.
    let key = key.rsplit('.').next().unwrap_or(key);
    let key = key.trim_start_matches('-');
    if key.is_empty() {
        return false;
    }
    let lower = key.to_ascii_lowercase();
    if NOT_SECRETS.contains(&lower.replace(['-', '_'], "").as_str()) {
        return false;
    }
    if NAMES.contains(&lower.replace('-', "_").as_str()) {
        return true;
    }
    if SUFFIXES.iter().any(|s| lower.ends_with(s)) {
        return true;
    }
    CAMEL_SUFFIXES.iter().any(|s| {
        key.len() > s.len()
            && key.ends_with(s)
            && key.as_bytes()[key.len() - s.len() - 1].is_ascii_lowercase()
    })
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// `-----BEGIN … PRIVATE KEY-----`: what follows, to its END line (or the
/// end of the text), is masked; the BEGIN and END lines stay to say what
/// was there.
fn private_keys(text: &str, mut in_key: bool, spans: &mut Vec<Range<usize>>) -> bool {
    let mut pos = 0;
    // What precedes the BEGIN on its line (`  | ` where runbookd quotes a
    // log): the body's lines carry it too, and it is not the key.
    let mut deco = "";
    let mut from_begin = false;
    loop {
        if in_key {
            let end = text[pos..].find("-----END").map(|i| pos + i);
            let body = Body {
                deco,
                from_begin,
                ended: end.is_some(),
            };
            key_body(text, pos..end.unwrap_or(text.len()), body, spans);
            let Some(end) = end else {
                return true;
            };
            in_key = false;
            pos = end + "-----END".len();
            continue;
        }
        let Some(b) = text[pos..].find("-----BEGIN ").map(|i| pos + i) else {
            return false;
        };
        let label = b + "-----BEGIN ".len();
        let Some(close) = text[label..].find("-----").map(|i| label + i) else {
            return false;
        };
        let name = &text[label..close];
        in_key = name.ends_with("PRIVATE KEY") && name.len() < 40 && !name.contains('\n');
        deco = &text[text[..b].rfind('\n').map(|n| n + 1).unwrap_or(0)..b];
        from_begin = true;
        pos = close + "-----".len();
    }
}

/// Where a key's body sits in the text scrubbed.
#[derive(Clone, Copy)]
struct Body<'a> {
    /// What precedes the BEGIN on its line.
    deco: &'a str,
    /// The BEGIN line is in this text (else a stream's earlier line).
    from_begin: bool,
    /// The END line is in this text.
    ended: bool,
}

/// The lines of a key's body, each without the decoration its BEGIN line
/// has, masked; as one mask where nothing but line breaks is between them.
/// A line already masked stays as it is, so text scrubbed once, quoted and
/// scrubbed again (a triage's log lines, a log tail in a mail) keeps its
/// shape. What precedes `-----END` on its line is the key's only when it
/// is base64 (else it is a quoting prefix, like `  | `).
fn key_body(text: &str, r: Range<usize>, b: Body<'_>, spans: &mut Vec<Range<usize>>) {
    let body = &text[r.clone()];
    let lines = body.split('\n').count();
    let mut found: Vec<Range<usize>> = Vec::new();
    let mut at = r.start;
    for (i, line) in body.split('\n').enumerate() {
        let start = at;
        at += line.len() + 1;
        let (start, line) = match line.strip_prefix(b.deco) {
            Some(rest) if !b.deco.is_empty() => (start + b.deco.len(), rest),
            _ => (start, line),
        };
        let t = line.trim();
        if t.is_empty() || line.contains(MASK) {
            continue;
        }
        let end_line = b.ended && i == lines - 1 && !(b.from_begin && lines == 1);
        let base64 = t
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='));
        if end_line && !base64 {
            continue;
        }
        let s = start + (line.len() - line.trim_start().len());
        let e = s + t.len();
        match found.last_mut() {
            Some(prev) if text[prev.end..s].trim().is_empty() => prev.end = e,
            _ => found.push(s..e),
        }
    }
    spans.extend(found);
}

/// `scheme://user:password@host`: the password.
fn url_passwords(text: &str, spans: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find("://").map(|i| from + i) {
        from = i + 3;
        let scheme_ok = i > 0 && bytes[i - 1].is_ascii_alphanumeric();
        if !scheme_ok {
            continue;
        }
        // The authority ends where the path, query or fragment starts: a
        // password must encode those characters.
        let end = text[from..]
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`')
            })
            .map(|e| from + e)
            .unwrap_or(text.len());
        let authority = &text[from..end];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
            && colon + 1 < at
        {
            spans.push(from + colon + 1..from + at);
        }
    }
}

/// `Bearer <token>` and `Basic <base64 of user:password>`.
fn auth_schemes(text: &str, spans: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    for scheme in ["bearer", "basic"] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(scheme).map(|i| from + i) {
            from = i + scheme.len();
            if i > 0 && bytes[i - 1].is_ascii_alphanumeric() {
                continue;
            }
            let mut start = from;
            while start < bytes.len() && matches!(bytes[start], b' ' | b'\t') {
                start += 1;
            }
            if start == from {
                continue;
            }
            let mut end = start;
            while end < bytes.len()
                && (bytes[end].is_ascii_alphanumeric()
                    || matches!(bytes[end], b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
            {
                end += 1;
            }
            let body = end;
            while end < bytes.len() && bytes[end] == b'=' {
                end += 1;
            }
            // `Bearer realm="api"` is a challenge's parameter, not a token.
            if end > body && matches!(bytes.get(end), Some(b'"') | Some(b'\'')) {
                continue;
            }
            let token = &text[start..end];
            let is_credential = match scheme {
                "bearer" => body - start >= 8,
                _ => base64::engine::general_purpose::STANDARD
                    .decode(token)
                    .is_ok_and(|d| d.contains(&b':')),
            };
            if is_credential {
                spans.push(start..end);
            }
        }
    }
}

/// `key=value`, `key: value`, `"key": "value"` (and `'key'`, and `\"key\"`
/// inside a quoted JSON string) where the key names a secret.
fn key_values(text: &str, spans: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    for (j, &b) in bytes.iter().enumerate() {
        if b != b'=' && b != b':' {
            continue;
        }
        let next = bytes.get(j + 1).copied();
        if b == b'=' {
            // `==`, `!=`, `<=`, `>=`: comparisons, not assignments.
            if next == Some(b'=') || (j > 0 && matches!(bytes[j - 1], b'=' | b'!' | b'<' | b'>')) {
                continue;
            }
        } else if next == Some(b':') || (j > 0 && bytes[j - 1] == b':') {
            continue;
        }
        // The key, back from the sign (spaces allowed before `=`).
        let mut k_end = j;
        while b == b'=' && k_end > 0 && bytes[k_end - 1] == b' ' {
            k_end -= 1;
        }
        let quote = match k_end.checked_sub(1).map(|p| bytes[p]) {
            Some(q @ (b'"' | b'\'')) => {
                let escaped = k_end >= 2 && bytes[k_end - 2] == b'\\';
                Some((q, escaped))
            }
            _ => None,
        };
        let inner_end = match quote {
            Some((_, true)) => k_end - 2,
            Some(_) => k_end - 1,
            None => k_end,
        };
        let mut k_start = inner_end;
        while k_start > 0 && is_key_byte(bytes[k_start - 1]) && inner_end - k_start < 128 {
            k_start -= 1;
        }
        if k_start == inner_end {
            continue;
        }
        match quote {
            Some((q, escaped)) => {
                let open_ok = if escaped {
                    k_start >= 2 && bytes[k_start - 1] == q && bytes[k_start - 2] == b'\\'
                } else {
                    k_start >= 1 && bytes[k_start - 1] == q
                };
                if !open_ok {
                    continue;
                }
            }
            None => {
                // A key is a whole word: `pass_token=` is one key; after
                // `/` or `+` it is the end of base64 (an inline chart's
                // padding), not a key.
                if k_start > 0
                    && (is_key_byte(bytes[k_start - 1])
                        || matches!(bytes[k_start - 1], b'/' | b'+'))
                {
                    continue;
                }
                // `key: value` needs the space; `secret:prod/db` is a name.
                if b == b':' && quote.is_none() && !matches!(next, Some(b' ' | b'\t')) {
                    continue;
                }
            }
        }
        if !names_a_secret(&text[k_start..inner_end]) {
            continue;
        }
        let Some(r) = value_at(bytes, j + 1) else {
            continue;
        };
        // `count = 3` with spaces is code or a comparison (a triage's
        // evidence) more often than a secret: a bare number there stays.
        let spaced = b == b'=' && k_end < j;
        let quoted = matches!(bytes[r.start - 1], b'"' | b'\'');
        if spaced && !quoted && bytes[r.clone()].iter().all(u8::is_ascii_digit) {
            continue;
        }
        spans.push(r);
    }
}

/// The value that starts at `from` (after spaces): a quoted string's
/// contents, or a bare word. `null`, `true`, `false`, nothing, and an
/// object or list (whose own keys are judged) are not values to mask.
fn value_at(bytes: &[u8], mut from: usize) -> Option<Range<usize>> {
    while from < bytes.len() && matches!(bytes[from], b' ' | b'\t') {
        from += 1;
    }
    let quote = match bytes.get(from) {
        Some(b'\\') if matches!(bytes.get(from + 1), Some(b'"')) => Some(&b"\\\""[..]),
        Some(b'"') => Some(&b"\""[..]),
        Some(b'\'') => Some(&b"'"[..]),
        _ => None,
    };
    if let Some(q) = quote {
        let start = from + q.len();
        let mut i = start;
        while i < bytes.len() && bytes[i] != b'\n' {
            if bytes[i..].starts_with(q) {
                return (i > start).then_some(start..i);
            }
            // A backslash escapes the next character in a plain quote.
            if q.len() == 1 && bytes[i] == b'\\' {
                i += 1;
            }
            i += 1;
        }
        // No closing quote on the line: the rest of it is the value.
        let end = i.min(bytes.len());
        return (end > start).then_some(start..end);
    }
    let mut end = from;
    while end < bytes.len()
        && !bytes[end].is_ascii_whitespace()
        && !matches!(
            bytes[end],
            b'&' | b',' | b';' | b'"' | b'\'' | b'<' | b'>' | b')' | b']' | b'}' | b'\\'
        )
    {
        end += 1;
    }
    let word = &bytes[from..end];
    if word.is_empty()
        || matches!(word[0], b'{' | b'[')
        || [&b"null"[..], b"true", b"false", b"None", b"nil"].contains(&word)
    {
        return None;
    }
    Some(from..end)
}

/// An AWS secret access key: 40 characters of base64's alphabet standing
/// alone, with upper and lower case and a digit (a hex digest has no
/// upper case).
fn aws_secret_keys(text: &str, spans: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    let in_set = |b: u8| b.is_ascii_alphanumeric() || b == b'/' || b == b'+';
    let mut i = 0;
    while i < bytes.len() {
        if !in_set(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && in_set(bytes[i]) {
            i += 1;
        }
        let run = &bytes[start..i];
        if run.len() == 40
            && run.iter().any(u8::is_ascii_uppercase)
            && run.iter().any(u8::is_ascii_lowercase)
            && run.iter().any(u8::is_ascii_digit)
            && !run.windows(2).any(|w| w == b"//")
        {
            spans.push(start..i);
        }
    }
}
