//! The read-only web console of `runbookd serve`: jobs, runs, steps,
//! checks, triage, the queue and the morning report, as pages and as JSON
//! (`?format=json`, the shapes of the CLI's `--json` where it has one).
//!
//! What it promises:
//! - Nothing changes: every route is GET (and HEAD); any other method is
//!   405, and no handler calls a store method that writes. Where an
//!   operator would act, the page shows the CLI command to copy.
//! - Nothing is fetched from elsewhere: the stylesheet and the one script
//!   are served from the binary, and every response carries a strict
//!   Content-Security-Policy, `nosniff` and `no-referrer`. The morning
//!   report is the mail's HTML, whose styles are inline (mail clients drop
//!   `<style>`): its route alone allows inline styles and `data:` images,
//!   never script.
//! - Every value is escaped by the template engine (maud); text from the
//!   history (logs, errors, payloads) passes the redactor again on its way
//!   out, and a job's config is shown through it.
//! - Auth, when configured, is a bearer token or basic-auth credential read
//!   once from a file at start and compared in constant time; /healthz,
//!   /readyz and /metrics are outside the console and never ask.
//! - Every read is bounded (LIMIT, paging by id), and a down history store
//!   is a banner, not a hung page: no store call is made while it is down.

mod pages;
pub mod rows;
mod views;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::clock::Clock;
use crate::config::{Config, ConsoleAuth};
use crate::secret::{Redactor, Secret};
use crate::store::{HistoryStore, StoreError, StoreHealth};

/// The policy of every console response but the report's.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The report's: the mail's HTML, inline styles and `data:` charts, no
/// script at all.
pub const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console: cannot read the credential file {path}: {source}")]
    ReadCredential {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("console: the credential file {path} is empty")]
    EmptyCredential { path: PathBuf },
    #[error(
        "console: the basic-auth file {path} must hold `user:password` (one line, a colon after the user)"
    )]
    NotUserPassword { path: PathBuf },
}

/// What a request must carry, as read from its file.
#[derive(Debug)]
enum Credential {
    Bearer(Secret),
    /// `user:password`, as the browser sends it (base64 decoded).
    Basic(Secret),
}

/// Reads the credential `auth` names. The file is read whole; one
/// trailing newline (as `echo` and `kubectl create secret` leave) is not
/// part of it.
fn credential(auth: &ConsoleAuth) -> Result<Option<Credential>, ConsoleError> {
    let read = |path: &Path| -> Result<Secret, ConsoleError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConsoleError::ReadCredential {
                path: path.to_path_buf(),
                source,
            })?;
        let value = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        if value.is_empty() {
            return Err(ConsoleError::EmptyCredential {
                path: path.to_path_buf(),
            });
        }
        Ok(Secret::new(value))
    };
    Ok(match auth {
        ConsoleAuth::None => None,
        ConsoleAuth::Bearer(p) => Some(Credential::Bearer(read(p)?)),
        ConsoleAuth::Basic(p) => {
            let s = read(p)?;
            if s.expose().contains('\n') || !s.expose().contains(':') {
                return Err(ConsoleError::NotUserPassword { path: p.clone() });
            }
            Some(Credential::Basic(s))
        }
    })
}

/// Equal without telling how much of it matched: both sides are hashed
/// (SHA-256) and the digests compared with every byte looked at, so
/// neither the length nor a common prefix shows in the time taken.
fn same(given: &[u8], expected: &[u8]) -> bool {
    let a = ring::digest::digest(&ring::digest::SHA256, given);
    let b = ring::digest::digest(&ring::digest::SHA256, expected);
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl Credential {
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let (scheme, value) = given.trim().split_once(' ').unwrap_or((given, ""));
        match self {
            Credential::Bearer(token) => {
                scheme.eq_ignore_ascii_case("bearer")
                    && same(value.trim().as_bytes(), token.expose().as_bytes())
            }
            Credential::Basic(pair) => {
                use base64::Engine;
                scheme.eq_ignore_ascii_case("basic")
                    && base64::engine::general_purpose::STANDARD
                        .decode(value.trim())
                        .is_ok_and(|d| same(&d, pair.expose().as_bytes()))
            }
        }
    }

    fn challenge(&self) -> &'static str {
        match self {
            Credential::Bearer(_) => "Bearer realm=\"runbookd\"",
            Credential::Basic(_) => "Basic realm=\"runbookd\", charset=\"UTF-8\"",
        }
    }
}

/// Everything a page reads: the config it was started with, the history,
/// the store's health as the daemon sees it, and the clock.
#[derive(Debug)]
pub struct Console {
    config: Arc<Config>,
    store: Arc<dyn HistoryStore>,
    health: Arc<StoreHealth>,
    clock: Arc<dyn Clock>,
    redactor: Redactor,
    credential: Option<Credential>,
    /// The last `/report` answered, kept [`REPORT_KEPT`]: the report reads
    /// a whole period of runs (tens of ms over a big history), and people
    /// open it together during an incident.
    report_kept: std::sync::Mutex<Option<KeptReport>>,
}

/// How long `/report` answers from the report it last built (the `Age`
/// header says how old it is).
pub const REPORT_KEPT: std::time::Duration = std::time::Duration::from_secs(30);

/// A report page as built: for which format and period, when, and the body.
#[derive(Debug, Clone)]
struct KeptReport {
    format: Format,
    period: std::time::Duration,
    at: chrono::DateTime<chrono::Utc>,
    body: String,
}

impl Console {
    /// Reads the credential file, if any: an unreadable one fails `serve`
    /// at start, naming the file.
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn HistoryStore>,
        health: Arc<StoreHealth>,
        clock: Arc<dyn Clock>,
        redactor: Redactor,
    ) -> Result<Self, ConsoleError> {
        let credential = credential(&config.console.auth)?;
        // Never in a log or a page, whatever prints it.
        match &credential {
            Some(Credential::Bearer(t)) => redactor.add(t.expose()),
            Some(Credential::Basic(pair)) => {
                redactor.add(pair.expose());
                if let Some((_, password)) = pair.expose().split_once(':') {
                    redactor.add(password);
                }
            }
            None => {}
        }
        Ok(Console {
            config,
            store,
            health,
            clock,
            redactor,
            credential,
            report_kept: std::sync::Mutex::new(None),
        })
    }
}

/// The console's routes, with their headers and auth; merged into the
/// daemon's router beside (not under) its health and metrics.
pub fn router(console: Console) -> Router {
    let console = Arc::new(console);
    Router::new()
        .route("/", get(views::jobs))
        .route("/jobs/{name}", get(views::job))
        .route("/jobs/{name}/charts/duration", get(views::duration_chart))
        .route(
            "/jobs/{name}/charts/checks/{check}",
            get(views::check_chart),
        )
        .route("/runs/{id}", get(views::run))
        .route("/queue", get(views::queue))
        .route("/report", get(views::report))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(console.clone(), auth))
        .layer(middleware::from_fn(headers))
        .with_state(console)
}

async fn css() -> Response {
    static_file("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    static_file("text/javascript; charset=utf-8", JS)
}

fn static_file(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn not_found(req: Request) -> Response {
    PageError::NotFound(format!("no page at {}", req.uri().path())).into_response()
}

async fn auth(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    match &c.credential {
        Some(cred) if !cred.admits(req.headers()) => {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                "the runbookd console needs a credential (see the README, Console)\n",
            )
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(cred.challenge()),
            );
            r
        }
        _ => next.run(req).await,
    }
}

/// The headers of every console response (a route may set a looser CSP of
/// its own: the report).
async fn headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// Why a page cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the history store is down: {0}")]
    StoreDown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl PageError {
    fn status(&self) -> StatusCode {
        match self {
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::StoreDown(_) | PageError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl PageError {
    /// The error as the page would have answered: JSON (`{"status",
    /// "error"}`) when the query asked for it, even one otherwise refused,
    /// so a script reading the JSON twin never has to parse HTML.
    fn answer(self, query: Option<&str>) -> Response {
        let json = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .any(|(k, v)| k == "format" && v == "json");
        if !json {
            return self.into_response();
        }
        let status = self.status();
        let body = serde_json::json!({
            "status": status.as_u16(),
            "error": Redactor::default().redact(&self.to_string()),
        });
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{body:#}\n"),
        )
            .into_response()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        let html = pages::error(status, &Redactor::default().redact(&self.to_string()));
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html.into_string(),
        )
            .into_response()
    }
}

/// How a page answers: HTML, or its JSON twin (`?format=json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Html,
    Json,
}

/// A page's query string, read strictly: a parameter the page does not
/// take, or one given twice, is a 400 naming it.
struct Params {
    values: BTreeMap<String, String>,
    format: Format,
}

impl Params {
    fn parse(raw: Option<&str>, takes: &[&str]) -> Result<Self, PageError> {
        let mut values = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if k != "format" && !takes.contains(&k.as_ref()) {
                let takes: Vec<String> = std::iter::once("format")
                    .chain(takes.iter().copied())
                    .map(|t| format!("`{t}`"))
                    .collect();
                return Err(PageError::BadRequest(format!(
                    "unknown parameter `{k}`: this page takes {}",
                    takes.join(", ")
                )));
            }
            if values.insert(k.to_string(), v.to_string()).is_some() {
                return Err(PageError::BadRequest(format!(
                    "parameter `{k}` is given twice"
                )));
            }
        }
        let format = match values.remove("format").as_deref() {
            None | Some("html") => Format::Html,
            Some("json") => Format::Json,
            Some(other) => {
                return Err(PageError::BadRequest(format!(
                    "format `{other}`: use `html` or `json`"
                )));
            }
        };
        // An empty value (a filter form's "any") is no value.
        values.retain(|_, v| !v.trim().is_empty());
        Ok(Params { values, format })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// A page as HTML or JSON.
fn answer<T: serde::Serialize>(
    format: Format,
    view: &T,
    html: impl FnOnce(&T) -> maud::Markup,
) -> Response {
    match format {
        Format::Json => match serde_json::to_string_pretty(view) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body + "\n").into_response(),
            Err(e) => PageError::Internal(format!("cannot write JSON: {e}")).into_response(),
        },
        Format::Html => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html(view).into_string(),
        )
            .into_response(),
    }
}

fn png(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "image/png")], Body::from(bytes)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cre", b"s3cret"));
        assert!(!same(b"s3cret!", b"s3cret"));
        assert!(!same(b"", b"s3cret"));
    }

    #[test]
    fn bearer_and_basic_are_read_from_the_header() {
        use base64::Engine;
        let mut h = HeaderMap::new();
        let bearer = Credential::Bearer(Secret::new("tok"));
        assert!(!bearer.admits(&h));
        h.insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        assert!(bearer.admits(&h));
        h.insert(header::AUTHORIZATION, "Bearer tok2".parse().unwrap());
        assert!(!bearer.admits(&h));
        h.insert(header::AUTHORIZATION, "Basic tok".parse().unwrap());
        assert!(!bearer.admits(&h));
        let basic = Credential::Basic(Secret::new("ops:pw"));
        let enc = base64::engine::general_purpose::STANDARD.encode("ops:pw");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {enc}").parse().unwrap(),
        );
        assert!(basic.admits(&h));
        let wrong = base64::engine::general_purpose::STANDARD.encode("ops:px");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {wrong}").parse().unwrap(),
        );
        assert!(!basic.admits(&h));
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(!basic.admits(&h));
    }

    #[test]
    fn queries_are_strict() {
        let p = Params::parse(Some("status=failed&format=json"), &["status"]).unwrap();
        assert_eq!(p.format, Format::Json);
        assert_eq!(p.get("status"), Some("failed"));
        for (q, want) in [
            ("nope=1", "unknown parameter `nope`"),
            ("status=a&status=b", "given twice"),
            ("format=xml", "format `xml`"),
        ] {
            let e = Params::parse(Some(q), &["status"]).err().unwrap();
            assert!(e.to_string().contains(want), "{q}: {e}");
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        }
        let empty = Params::parse(Some("status="), &["status"]).unwrap();
        assert_eq!(empty.get("status"), None);
    }

    #[test]
    fn a_credential_file_is_read_or_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = credential(&ConsoleAuth::Bearer(missing.clone())).unwrap_err();
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
        let f = dir.path().join("basic");
        std::fs::write(&f, "no-colon\n").unwrap();
        let e = credential(&ConsoleAuth::Basic(f.clone())).unwrap_err();
        assert!(e.to_string().contains("user:password"), "{e}");
        assert!(!e.to_string().contains("no-colon"), "{e}");
        std::fs::write(&f, "ops:pw\n").unwrap();
        match credential(&ConsoleAuth::Basic(f)).unwrap() {
            Some(Credential::Basic(s)) => assert_eq!(s.expose(), "ops:pw"),
            other => panic!("{other:?}"),
        }
    }
}
