//! What each URL of jobs.yaml must be, checked at `validate` the way its
//! client will read it (sqlx, reqwest, redis), so a URL that cannot work
//! (a port that is not a number, no host, a wrong scheme) fails there
//! instead of at run time. Messages show the URL with its password masked.

use std::str::FromStr;

use crate::secret::SecretUrl;
use crate::yaml::{Diags, Pos};

/// Which client reads a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlKind {
    /// `http://` or `https://`, with a host.
    Http,
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// The history store: Postgres or `sqlite://path`.
    History,
    /// `redis://` or `rediss://`.
    Redis,
}

/// Why `url` cannot be read as `kind`, if it cannot.
pub fn problem(url: &str, kind: UrlKind) -> Option<String> {
    let postgres = || {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Some("must be a postgres:// URL".to_string());
        }
        sqlx::postgres::PgConnectOptions::from_str(url)
            .err()
            .map(|e| format!("is not a Postgres URL: {}", cause(&e)))
    };
    match kind {
        UrlKind::Postgres => postgres(),
        UrlKind::History if url.starts_with("sqlite:") => {
            sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .err()
                .map(|e| format!("is not an SQLite URL: {}", cause(&e)))
        }
        UrlKind::History if url.starts_with("postgres") => postgres(),
        UrlKind::History => Some("must be postgres://… or sqlite://…".to_string()),
        UrlKind::Http => match reqwest::Url::parse(url) {
            Err(e) => Some(format!("is not a URL: {e}")),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                Some("must be http or https".to_string())
            }
            Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("has no host".to_string()),
            Ok(_) => None,
        },
        UrlKind::Redis => redis::Client::open(url)
            .err()
            .map(|e| format!("is not a Redis URL: {e}")),
    }
}

/// sqlx wraps a parse error as "error with configuration: …"; the cause
/// is what the operator needs.
fn cause(e: &sqlx::Error) -> String {
    let text = match e {
        sqlx::Error::Configuration(inner) => inner.to_string(),
        other => other.to_string(),
    };
    text.trim_start_matches("error with configuration: ")
        .to_string()
}

/// Reports `url` at its position (else `fallback`) when it cannot be read
/// as `kind`; `field` names it (`history.database_url`).
pub fn check(url: &SecretUrl, field: &str, kind: UrlKind, fallback: Pos, diags: &mut Diags) {
    // An empty URL was refused as it was read.
    if url.expose().trim().is_empty() {
        return;
    }
    if let Some(p) = problem(url.expose(), kind) {
        let at = if url.at.is_known() { url.at } else { fallback };
        diags.at(at, format!("{field} {} {p}", url.shown()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        // (url, kind, problem or "")
        let cases = [
            ("postgres://u:p@db:5432/x", UrlKind::Postgres, ""),
            (
                "postgres://u:p@db:notaport/x",
                UrlKind::Postgres,
                "invalid port number",
            ),
            (
                "postgresql://db/x?sslmode=bogus",
                UrlKind::Postgres,
                "unknown value \"bogus\"",
            ),
            (
                "mysql://db/x",
                UrlKind::Postgres,
                "must be a postgres:// URL",
            ),
            ("sqlite://runbookd.db", UrlKind::History, ""),
            ("sqlite::memory:", UrlKind::History, ""),
            (
                "postgres://db:99999/x",
                UrlKind::History,
                "invalid port number",
            ),
            (
                "file:///x",
                UrlKind::History,
                "must be postgres://… or sqlite://…",
            ),
            ("http://api:8080/health", UrlKind::Http, ""),
            ("https://[::1]:9090", UrlKind::Http, ""),
            (
                "http://api:port/health",
                UrlKind::Http,
                "invalid port number",
            ),
            ("http://", UrlKind::Http, "empty host"),
            ("api:8080", UrlKind::Http, "must be http or https"),
            ("redis://cache:6379/0", UrlKind::Redis, ""),
            ("redis://cache:port", UrlKind::Redis, "is not a Redis URL"),
        ];
        for (url, kind, want) in cases {
            let got = problem(url, kind).unwrap_or_default();
            if want.is_empty() {
                assert_eq!(got, "", "{url}");
            } else {
                assert!(got.contains(want), "{url}: {got}");
            }
        }
    }
}
