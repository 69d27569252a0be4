//! Fixtures for tests and benchmarks: chainable builders for jobs and
//! configs, and a fresh database per test (a throwaway Postgres database or a
//! SQLite file in a temp dir), so no test sees another's rows.
//!
//! Postgres comes from `RUNBOOKD_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached
//! the test fails and says how to start one; it never skips.

pub mod alertmanager;
pub mod binary;
pub mod bulk;
pub mod fakes;
pub mod history;
pub mod pods;
pub mod proxy;
pub mod receiver;
pub mod smtp;
pub mod world;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono_tz::Tz;
use indexmap::IndexMap;

use crate::config::{
    AlertmanagerConfig, Concurrency, Config, DaemonConfig, Defaults, HistoryConfig, JobConfig,
    Links, MailConfig, Notify, RetryPolicy, Severity,
};
use crate::jobs::command::CommandSpec;
use crate::model::Dur;
use crate::secret::{CapabilityUrl, Redactor, SecretUrl};
use crate::store::{self, HistoryStore};
use crate::yaml::{At, Text};

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A job for tests: `JobBuilder::command("slow", &["sleep", "5"]).every_second().build()`.
#[derive(Debug, Clone)]
pub struct JobBuilder(JobConfig, Option<CommandSpec>);

impl JobBuilder {
    pub fn command(name: &str, argv: &[&str]) -> Self {
        let spec = CommandSpec {
            argv: At {
                value: argv.iter().map(|s| Text::new(*s)).collect(),
                at: Default::default(),
            },
            env: IndexMap::new(),
            workdir: None,
            inherit_env: true,
            kill_grace: Some(At {
                value: Dur(Duration::from_secs(2)),
                at: Default::default(),
            }),
        };
        JobBuilder(
            JobConfig {
                source: String::new(),
                name: name.to_string(),
                kind: "command",
                description: None,
                schedule: None,
                timezone: Tz::UTC,
                concurrency: Concurrency::Forbid,
                timeout: Duration::from_secs(60),
                retries: RetryPolicy {
                    max: 0,
                    backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(1),
                },
                catch_up: None,
                suspend: false,
                notify: Default::default(),
                notify_to: Vec::new(),
                on_failure: Vec::new(),
                severity: Default::default(),
                ping_url: None,
                spec: Arc::new(spec.clone()),
            },
            Some(spec),
        )
    }

    /// `sh -c script`.
    pub fn shell(name: &str, script: &str) -> Self {
        JobBuilder::command(name, &["sh", "-c", script])
    }

    pub fn schedule(mut self, cron: &str) -> Self {
        self.0.schedule = Some(cron.parse().expect("test cron expression"));
        self
    }

    pub fn every_second(self) -> Self {
        self.schedule("* * * * * *")
    }

    pub fn timezone(mut self, tz: Tz) -> Self {
        self.0.timezone = tz;
        self
    }

    pub fn concurrency(mut self, c: Concurrency) -> Self {
        self.0.concurrency = c;
        self
    }

    pub fn timeout(mut self, d: Duration) -> Self {
        self.0.timeout = d;
        self
    }

    pub fn retries(mut self, max: u32, backoff: Duration) -> Self {
        self.0.retries = RetryPolicy {
            max,
            backoff,
            max_backoff: backoff * 8,
        };
        self
    }

    pub fn catch_up(mut self, window: Duration) -> Self {
        self.0.catch_up = Some(window);
        self
    }

    pub fn suspend(mut self) -> Self {
        self.0.suspend = true;
        self
    }

    pub fn notify(mut self, n: Notify, to: &[&str]) -> Self {
        self.0.notify = n;
        self.0.notify_to = to.iter().map(|t| t.to_string()).collect();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        let spec = self.1.as_mut().expect("env() is for command jobs");
        spec.env.insert(key.to_string(), Text::new(value));
        self.0.spec = Arc::new(spec.clone());
        self
    }

    /// Jobs started when this one fails for good.
    pub fn on_failure(mut self, jobs: &[&str]) -> Self {
        self.0.on_failure = jobs.iter().map(|j| Text::new(*j)).collect();
        self
    }

    pub fn severity(mut self, s: Severity) -> Self {
        self.0.severity = s;
        self
    }

    /// Pings the dead man's switch at `url` (`/start`, then success or
    /// `/fail`).
    pub fn ping_url(mut self, url: &str) -> Self {
        self.0.ping_url = Some(CapabilityUrl::new(url));
        self
    }

    pub fn build(self) -> JobConfig {
        self.0
    }
}

/// A config for tests: `ConfigBuilder::new().job(...).build()`.
#[derive(Debug, Clone)]
pub struct ConfigBuilder(Config);

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigBuilder {
    pub fn new() -> Self {
        ConfigBuilder(Config {
            file: PathBuf::from("test.yaml"),
            defaults: Defaults::default(),
            history: HistoryConfig::default(),
            daemon: DaemonConfig {
                listen: ([127, 0, 0, 1], 0).into(),
                heartbeat: Duration::from_millis(200),
                stale_after: Duration::from_secs(2),
                shutdown_grace: Duration::from_secs(2),
                notify: true,
            },
            mail: MailConfig::default(),
            links: Links::default(),
            alertmanager: None,
            console: Default::default(),
            jobs: IndexMap::new(),
            redactor: Redactor::default(),
        })
    }

    pub fn mail(mut self, mail: MailConfig) -> Self {
        self.0.mail = mail;
        self
    }

    pub fn alertmanager(mut self, am: AlertmanagerConfig) -> Self {
        self.0.alertmanager = Some(am);
        self
    }

    pub fn links(mut self, links: Links) -> Self {
        self.0.links = links;
        self
    }

    pub fn job(mut self, job: JobBuilder) -> Self {
        let j = job.build();
        self.0.jobs.insert(j.name.clone(), j);
        self
    }

    pub fn secrets(mut self, secrets: &[&str]) -> Self {
        self.0.redactor = Redactor::new(secrets.iter().map(|s| s.to_string()));
        self
    }

    pub fn database_url(mut self, url: &str) -> Self {
        self.0.history.database_url = SecretUrl::new(url);
        self
    }

    pub fn build(self) -> Config {
        self.0
    }
}

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    cleanup: Option<Cleanup>,
}

enum Cleanup {
    Postgres { admin_url: String, name: String },
    Dir(#[allow(dead_code)] tempfile::TempDir),
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDatabase {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for a test database");
        let url = format!("sqlite://{}", dir.path().join("history.db").display());
        TestDatabase {
            url,
            cleanup: Some(Cleanup::Dir(dir)),
        }
    }

    pub fn pg_admin_url() -> String {
        std::env::var("RUNBOOKD_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string())
    }

    /// Creates an empty database on the test server. Panics, saying how to
    /// start Postgres, when the server cannot be reached.
    pub async fn postgres() -> Self {
        use sqlx::Connection;
        let admin = Self::pg_admin_url();
        let mut conn = match tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::PgConnection::connect(&admin),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!(
                "Postgres for tests is not reachable at {} ({e}). Run the suite with scripts/test.sh, which starts one, or set RUNBOOKD_TEST_PG_URL.",
                crate::secret::redact_url(&admin)
            ),
            Err(_) => panic!(
                "Postgres for tests at {} did not answer within 10s. Run scripts/test.sh or set RUNBOOKD_TEST_PG_URL.",
                crate::secret::redact_url(&admin)
            ),
        };
        let name = format!(
            "runbookd_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_micros() % 1_000_000
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let mut url = url::Url::parse(&admin).expect("RUNBOOKD_TEST_PG_URL is a URL");
        url.set_path(&name);
        TestDatabase {
            url: url.to_string(),
            cleanup: Some(Cleanup::Postgres {
                admin_url: admin,
                name,
            }),
        }
    }

    pub async fn open(&self) -> Arc<dyn HistoryStore> {
        store::open(&self.url).await.expect("open test store")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(Cleanup::Postgres { admin_url, name }) = self.cleanup.take() {
            // Dropping needs async I/O; a separate thread with its own
            // runtime works whether or not we are inside one.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// The URL of a test service that scripts/test.sh starts, from its
/// environment variable. Panics, saying how to start it, when unset.
pub fn service(var: &str, what: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: {what} is needed for this test. Run the suite with scripts/test.sh, which starts it (or start one and set {var})."
        ),
    }
}

/// A minimal HTTP GET for tests of /healthz and /metrics: (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("read timed out"))??;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
