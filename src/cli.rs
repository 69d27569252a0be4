//! The command line: argument parsing, each command's output, exit codes.
//!
//! Exit codes: 0 ok, 1 a job failed (or the history store could not be
//! reached), 2 a usage or config error. Data goes to stdout, progress and
//! errors to stderr, so `--json` output can be piped.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config, ConfigError};
use crate::daemon::{self, DaemonError};
use crate::identity::Identity;
use crate::runner::{RunRequest, Runner, Stop};
use crate::schedule::{Shift, offset_seconds};
use crate::secret::redact_url;
use crate::store::{
    self, DEFAULT_LIMIT, HistoryStore, Run, RunFilter, RunStatus, StoreError, Trigger,
};

#[derive(Debug, Parser)]
#[command(
    name = "runbookd",
    version,
    about = "Runs a production runbook as scheduled, audited jobs",
    long_about = "Runs a production runbook as scheduled, audited jobs.\n\nExit codes: 0 ok, 1 a job failed or the history store is unreachable, 2 usage or config error."
)]
pub struct Cli {
    /// The jobs file.
    #[arg(
        short,
        long,
        global = true,
        env = "RUNBOOKD_CONFIG",
        default_value = "jobs.yaml"
    )]
    pub config: PathBuf,

    /// History store URL (postgres://… or sqlite://…). Overrides
    /// history.database_url in the jobs file.
    #[arg(
        long,
        global = true,
        env = "RUNBOOKD_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Log format on stderr.
    #[arg(long, global = true, env = "RUNBOOKD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the jobs file and report every error as file:line:col: message.
    Validate {
        #[arg(long)]
        json: bool,
    },
    /// List jobs with their schedule, next fire and last status.
    Jobs {
        #[arg(long)]
        json: bool,
    },
    /// Print a job's next fire times in its timezone and in UTC, flagging DST
    /// shifts.
    Next {
        job: String,
        /// How many fires.
        #[arg(short = 'n', long = "count", default_value_t = 5)]
        n: usize,
        /// Start after this instant (RFC 3339) instead of now.
        #[arg(long)]
        after: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run a job now, in this process, and record it in the history.
    Run {
        job: String,
        /// Log what the job would do; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// List recent runs, newest first.
    History {
        #[arg(long)]
        job: Option<String>,
        /// Only runs started within this long (e.g. 24h, 7d) or since an
        /// RFC 3339 instant.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = DEFAULT_LIMIT)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show one run with its log.
    Show {
        run_id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Ask the process running a run to cancel it.
    Cancel { run_id: i64 },
    /// Run the scheduler daemon.
    Serve {
        /// Address for /healthz and /metrics. Default: daemon.listen from the
        /// jobs file, else 0.0.0.0:9090.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Create or update the history store's schema.
    Migrate,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The job ran and did not succeed; its details are already printed.
    #[error("run {id} of `{job}` ended {status}")]
    JobFailed {
        id: i64,
        job: String,
        status: RunStatus,
    },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

pub async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Validate { json } => validate(&cli, *json),
        Command::Jobs { json } => jobs(&cli, *json).await,
        Command::Next {
            job,
            n,
            after,
            json,
        } => next(&cli, job, *n, after.as_deref(), *json),
        Command::Run { job, dry_run, json } => run_job(&cli, job, *dry_run, *json).await,
        Command::History {
            job,
            since,
            limit,
            json,
        } => history(&cli, job.clone(), since.as_deref(), *limit, *json).await,
        Command::Show { run_id, json } => show(&cli, *run_id, *json).await,
        Command::Cancel { run_id } => cancel(&cli, *run_id).await,
        Command::Serve { listen } => serve(&cli, *listen).await,
        Command::Migrate => {
            let config = load(&cli)?;
            let store = open_store(&cli, &config).await?;
            eprintln!("history store {} is up to date", store.url());
            Ok(())
        }
    }
}

fn load(cli: &Cli) -> Result<Config> {
    Ok(config::load_file(&cli.config)?)
}

fn database_url(cli: &Cli, config: &Config) -> String {
    cli.database_url
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| config.history.database_url.expose().to_string())
}

async fn open_store(cli: &Cli, config: &Config) -> Result<Arc<dyn HistoryStore>> {
    Ok(store::open(&database_url(cli, config)).await?)
}

fn print_json(value: &impl Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::other)?;
    writeln!(out)?;
    Ok(())
}

fn validate(cli: &Cli, json: bool) -> Result<()> {
    match config::load_file(&cli.config) {
        Ok(c) => {
            if json {
                print_json(
                    &serde_json::json!({ "file": cli.config, "valid": true, "jobs": c.jobs.len(), "errors": [] }),
                )?;
            } else {
                println!("{}: ok, {} job(s)", cli.config.display(), c.jobs.len());
            }
            Ok(())
        }
        Err(ConfigError::Invalid(diags)) => {
            if json {
                print_json(
                    &serde_json::json!({ "file": cli.config, "valid": false, "errors": diags }),
                )?;
            } else {
                for d in &diags {
                    println!("{d}");
                }
            }
            eprintln!("{}: {} error(s)", cli.config.display(), diags.len());
            Err(CliError::Usage(String::new()))
        }
        Err(e) => Err(e.into()),
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Serialize)]
struct JobRow {
    name: String,
    kind: &'static str,
    schedule: Option<String>,
    timezone: String,
    concurrency: String,
    suspended: bool,
    next_fire: Option<String>,
    last_status: Option<RunStatus>,
    last_run_id: Option<i64>,
    last_started_at: Option<DateTime<Utc>>,
}

async fn jobs(cli: &Cli, json: bool) -> Result<()> {
    let config = load(cli)?;
    let store = match open_store(cli, &config).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("warning: last status unknown: {e}");
            None
        }
    };
    let now = SystemClock.now();
    let mut rows = Vec::new();
    for job in config.jobs.values() {
        let last = match &store {
            Some(s) => s.last_run(&job.name).await?,
            None => None,
        };
        let next = job
            .schedule
            .as_ref()
            .and_then(|e| e.next_fire(job.timezone, now))
            .map(|f| {
                f.at.with_timezone(&job.timezone)
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string()
            });
        rows.push(JobRow {
            name: job.name.clone(),
            kind: job.kind(),
            schedule: job.schedule.as_ref().map(|s| s.to_string()),
            timezone: job.timezone.name().to_string(),
            concurrency: job.concurrency.to_string(),
            suspended: job.suspend,
            next_fire: if job.suspend { None } else { next },
            last_status: last.as_ref().map(|r| r.status),
            last_run_id: last.as_ref().map(|r| r.id),
            last_started_at: last.as_ref().map(|r| r.started_at),
        });
    }
    if json {
        return print_json(&rows);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.kind.to_string(),
                r.schedule.clone().unwrap_or_else(|| "(manual)".into()),
                r.timezone.clone(),
                if r.suspended {
                    "(suspended)".into()
                } else {
                    r.next_fire.clone().unwrap_or_else(|| "-".into())
                },
                match (r.last_status, r.last_run_id) {
                    (Some(s), Some(id)) => format!("{s} (#{id})"),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    print_table(
        &["JOB", "KIND", "SCHEDULE", "TIMEZONE", "NEXT", "LAST"],
        &table,
    )
}

fn print_table(header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == cells.len() {
                    c.to_string()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

#[derive(Serialize)]
struct NextFire {
    utc: String,
    local: String,
    offset: String,
    /// The wall-clock time the cron expression named.
    nominal: String,
    shift: Shift,
    note: Option<String>,
}

fn next(cli: &Cli, name: &str, n: usize, after: Option<&str>, json: bool) -> Result<()> {
    let config = load(cli)?;
    let job = config.job(name).map_err(CliError::Usage)?;
    let Some(expr) = &job.schedule else {
        return Err(CliError::Usage(format!(
            "job `{name}` has no schedule: it runs only when started by hand (runbookd run {name})"
        )));
    };
    let mut t = match after {
        Some(a) => DateTime::parse_from_rfc3339(a)
            .map_err(|e| {
                CliError::Usage(format!(
                    "--after `{a}` is not an RFC 3339 instant (e.g. 2026-03-08T00:00:00Z): {e}"
                ))
            })?
            .with_timezone(&Utc),
        None => SystemClock.now(),
    };
    let tz = job.timezone;
    let mut prev_offset = offset_seconds(tz, t);
    let mut fires = Vec::new();
    for _ in 0..n {
        let Some(f) = expr.next_fire(tz, t) else {
            break;
        };
        let local = f.at.with_timezone(&tz);
        let offset = offset_seconds(tz, f.at);
        let note = match f.shift {
            Shift::Gap => Some(format!(
                "DST: {} does not exist in {}; runs at the first instant after the gap",
                f.nominal.format("%Y-%m-%d %H:%M:%S"),
                tz.name()
            )),
            Shift::Repeated => Some(format!(
                "DST: {} occurs twice in {}; runs once, at the first",
                f.nominal.format("%H:%M:%S"),
                tz.name()
            )),
            Shift::None if offset != prev_offset => {
                Some(format!("DST: UTC offset is now {}", local.format("%:z")))
            }
            Shift::None => None,
        };
        prev_offset = offset;
        fires.push(NextFire {
            utc: fmt_time(f.at),
            local: local.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            offset: local.format("%:z").to_string(),
            nominal: f.nominal.format("%Y-%m-%dT%H:%M:%S").to_string(),
            shift: f.shift,
            note,
        });
        t = f.at;
    }
    if json {
        return print_json(&fires);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{name}: `{expr}` in {}", tz.name())?;
    for f in &fires {
        let local = DateTime::parse_from_rfc3339(&f.local)
            .map(|d| {
                d.with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string()
            })
            .unwrap_or_else(|_| f.local.clone());
        match &f.note {
            Some(note) => writeln!(out, "{local}  ({})  {}  [{note}]", f.offset, f.utc)?,
            None => writeln!(out, "{local}  ({})  {}", f.offset, f.utc)?,
        }
    }
    Ok(())
}

/// Cancelled on SIGTERM or SIGINT, with the signal's name.
fn signals() -> (CancellationToken, Arc<std::sync::Mutex<&'static str>>) {
    let token = CancellationToken::new();
    let which = Arc::new(std::sync::Mutex::new(""));
    let (t, w) = (token.clone(), which.clone());
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        *w.lock().expect("signal lock") = name;
        t.cancel();
    });
    (token, which)
}

async fn run_job(cli: &Cli, name: &str, dry_run: bool, json: bool) -> Result<()> {
    let config = load(cli)?;
    let job = config.job(name).map_err(CliError::Usage)?.clone();
    let store = open_store(cli, &config).await?;
    let identity = Identity::current();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    daemon::reap(
        store.as_ref(),
        &identity,
        clock.as_ref(),
        config.daemon.stale_after,
    )
    .await?;
    let runner = Runner::new(
        store.clone(),
        clock,
        identity.clone(),
        config.daemon.heartbeat,
        config.history.log_max_bytes,
        config.redactor.clone(),
    )
    .with_tee(|line| eprintln!("{line}"));
    let req = RunRequest {
        trigger: Trigger::Manual,
        triggered_by: identity.user.clone(),
        scheduled_for: None,
        dry_run,
    };
    let id = runner
        .claim(&job, &req)
        .await?
        .ok_or_else(|| CliError::Usage("the history store refused the run".into()))?;
    let stop = Stop::new();
    let (sig, which) = signals();
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            sig.cancelled().await;
            let name = *which.lock().expect("signal lock");
            stop.cancel(format!("interrupted by {name}"));
        })
    };
    let ended = runner.execute(&job, &req, id, &stop).await;
    watcher.abort();
    let run = store.get_run(ended.id).await?;
    if json {
        if let Some(r) = &run {
            print_json(r)?;
        }
    } else {
        if let Some(r) = &run
            && !r.checks.is_empty()
        {
            print!("{}", crate::checks::render_table(&r.checks));
        }
        let took = run
            .as_ref()
            .and_then(|r| r.duration())
            .map(|d| format!(" in {:.2}s", d.num_milliseconds() as f64 / 1000.0))
            .unwrap_or_default();
        println!(
            "run {} of `{name}` {}{took}{}{}",
            ended.id,
            ended.status,
            if ended.attempt > 1 {
                format!(" (attempt {})", ended.attempt)
            } else {
                String::new()
            },
            ended
                .error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    if ended.status == RunStatus::Succeeded {
        Ok(())
    } else {
        Err(CliError::JobFailed {
            id: ended.id,
            job: name.to_string(),
            status: ended.status,
        })
    }
}

fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = humantime::parse_duration(s).map_err(|e| {
        CliError::Usage(format!(
            "--since `{s}` is neither a duration (24h, 7d) nor an RFC 3339 instant: {e}"
        ))
    })?;
    Ok(now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
}

fn short(s: &str, n: usize) -> String {
    let one_line = s.lines().next().unwrap_or("");
    if one_line.chars().count() > n {
        format!("{}…", one_line.chars().take(n - 1).collect::<String>())
    } else {
        one_line.to_string()
    }
}

async fn history(
    cli: &Cli,
    job: Option<String>,
    since: Option<&str>,
    limit: u32,
    json: bool,
) -> Result<()> {
    let config = load(cli)?;
    let since = since
        .map(|s| parse_since(s, SystemClock.now()))
        .transpose()?;
    let store = open_store(cli, &config).await?;
    let runs = store
        .list_runs(&RunFilter {
            job,
            since,
            limit: limit.max(1),
        })
        .await?;
    if json {
        return print_json(&runs);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.job.clone(),
                format!("{}{}", r.trigger, if r.dry_run { " (dry)" } else { "" }),
                r.status.to_string(),
                r.attempt.to_string(),
                fmt_time(r.started_at),
                r.duration()
                    .map(|d| format!("{:.1}s", d.num_milliseconds() as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into()),
                r.error.as_deref().map(|e| short(e, 60)).unwrap_or_default(),
            ]
        })
        .collect();
    print_table(
        &[
            "ID", "JOB", "TRIGGER", "STATUS", "ATTEMPT", "STARTED", "TOOK", "ERROR",
        ],
        &rows,
    )
}

async fn show(cli: &Cli, id: i64, json: bool) -> Result<()> {
    let config = load(cli)?;
    let store = open_store(cli, &config).await?;
    let run: Run = store
        .get_run(id)
        .await?
        .ok_or_else(|| CliError::Usage(format!("no run {id} in history store {}", store.url())))?;
    if json {
        return print_json(&run);
    }
    let mut out = std::io::stdout().lock();
    let opt = |t: Option<DateTime<Utc>>| t.map(fmt_time).unwrap_or_else(|| "-".into());
    writeln!(out, "run {}  {}  {}", run.id, run.job, run.status)?;
    writeln!(
        out,
        "trigger       {}{}",
        run.trigger,
        if run.dry_run { " (dry run)" } else { "" }
    )?;
    writeln!(out, "triggered_by  {}", run.triggered_by)?;
    writeln!(out, "scheduled_for {}", opt(run.scheduled_for))?;
    writeln!(out, "started_at    {}", fmt_time(run.started_at))?;
    writeln!(out, "finished_at   {}", opt(run.finished_at))?;
    writeln!(
        out,
        "attempt       {}{}",
        run.attempt,
        run.retry_of
            .map(|r| format!(" (retry of #{r})"))
            .unwrap_or_default()
    )?;
    writeln!(out, "owner         {}", run.owner)?;
    if let Some(e) = &run.error {
        writeln!(out, "error         {e}")?;
    }
    if !run.checks.is_empty() {
        writeln!(out, "checks:")?;
        write!(out, "{}", crate::checks::render_table(&run.checks))?;
    }
    writeln!(
        out,
        "log{}:",
        if run.log_truncated {
            " (truncated)"
        } else {
            ""
        }
    )?;
    write!(out, "{}", run.log.as_deref().unwrap_or(""))?;
    Ok(())
}

async fn cancel(cli: &Cli, id: i64) -> Result<()> {
    let config = load(cli)?;
    let store = open_store(cli, &config).await?;
    if store.request_cancel(id).await? {
        println!("cancel requested for run {id}; its process stops it at the next heartbeat");
        Ok(())
    } else {
        Err(CliError::Usage(format!("run {id} is not running")))
    }
}

async fn serve(cli: &Cli, listen: Option<SocketAddr>) -> Result<()> {
    let config = Arc::new(load(cli)?);
    let url = database_url(cli, &config);
    let store = store::open(&url).await?;
    let (sig, which) = signals();
    let listen = listen.unwrap_or(config.daemon.listen);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shutdown = CancellationToken::new();
    let s2 = shutdown.clone();
    tokio::spawn(async move {
        sig.cancelled().await;
        tracing::info!("{} received", *which.lock().expect("signal lock"));
        s2.cancel();
    });
    tracing::debug!(store = %redact_url(&url), "starting");
    daemon::serve(config, store, clock, listen, shutdown).await?;
    Ok(())
}
