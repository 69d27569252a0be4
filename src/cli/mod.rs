//! The command line: argument parsing and exit codes here, each command's
//! orchestration in `commands.rs`, its output in `render.rs`.
//!
//! Exit codes: 0 ok, 1 a job failed (or the history store could not be
//! reached), 2 a usage or config error. Data goes to stdout, progress and
//! errors to stderr, so `--json` output can be piped.

mod commands;
mod render;
mod report;
mod trigger;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{ConfigError, UnknownJob};
use crate::daemon::DaemonError;
use crate::store::{DEFAULT_LIMIT, RunStatus, StoreError};

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
        hide_env_values = true,
        default_value = "jobs.yaml",
        help_heading = "Global options"
    )]
    pub config: PathBuf,

    /// History store URL (postgres://… or sqlite://…). Overrides
    /// history.database_url in the jobs file.
    #[arg(
        long,
        global = true,
        env = "RUNBOOKD_DATABASE_URL",
        hide_env_values = true,
        help_heading = "Global options"
    )]
    pub database_url: Option<String>,

    /// Log format on stderr.
    #[arg(long, global = true, env = "RUNBOOKD_LOG_FORMAT", hide_env_values = true, value_enum,
          default_value_t = LogFormat::Text, help_heading = "Global options")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// `runbookd trigger`'s arguments.
#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    /// The job (see `runbookd jobs`).
    pub job: String,
    /// Follow the run's log as it is saved and exit with its outcome
    /// (0 succeeded, 1 otherwise). If no daemon takes the request within
    /// 60 s (or its lifetime, if shorter), it is withdrawn: it never runs.
    #[arg(long)]
    pub wait: bool,
    /// How long the request may wait for a daemon (1s to 7d). After that
    /// it is recorded expired and never runs.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub expires_in: String,
    /// Confirm a change that takes production down (scaling to 0).
    #[arg(long)]
    pub confirm: bool,
    /// A parameter of the job, repeatable: `only=redis`.
    #[arg(long = "param", value_name = "K=V")]
    pub params: Vec<String>,
    /// Who asks, when not the OS user (e.g. the person behind a bot).
    #[arg(long = "as", value_name = "NAME", value_parser = name_text)]
    pub requested_by: Option<String>,
    /// Why, recorded in the run's log.
    #[arg(long, value_parser = reason_text)]
    pub reason: Option<String>,
    /// Log what the job would do; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Free text an operator gives is stored and shown to others, so it is
/// bounded and holds no control characters (which would rewrite a terminal
/// or break a table).
fn operator_text(s: &str, max: usize) -> std::result::Result<String, String> {
    let n = s.chars().count();
    if n == 0 || s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if n > max {
        return Err(format!("must be at most {max} characters (this is {n})"));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "must not hold control characters (found {})",
            c.escape_default()
        ));
    }
    Ok(s.to_string())
}

/// `--reason`: a sentence or two.
fn reason_text(s: &str) -> std::result::Result<String, String> {
    operator_text(s, 1000)
}

/// `--as`: a person's or a bot's name.
fn name_text(s: &str) -> std::result::Result<String, String> {
    operator_text(s, 200)
}

/// A request's state, as `requests --status` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RequestState {
    Pending,
    Started,
    Refused,
    Expired,
    Withdrawn,
}

impl From<RequestState> for crate::model::RequestStatus {
    fn from(s: RequestState) -> Self {
        use crate::model::RequestStatus as S;
        match s {
            RequestState::Pending => S::Pending,
            RequestState::Started => S::Started,
            RequestState::Refused => S::Refused,
            RequestState::Expired => S::Expired,
            RequestState::Withdrawn => S::Withdrawn,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The most fires `next` lists, and rows `history` returns.
pub const MAX_NEXT: usize = 1000;
pub const MAX_HISTORY: u32 = 10_000;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the jobs file and report every error as file:line:col: message.
    Validate {
        /// Print {file, valid, jobs, errors} as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List jobs with their schedule, next fire and last status.
    Jobs {
        /// Print the rows as JSON (next_fire in RFC 3339).
        #[arg(long)]
        json: bool,
    },
    /// Print a job's next fire times in its timezone and in UTC, flagging DST
    /// shifts.
    Next {
        /// The job (see `runbookd jobs`).
        job: String,
        /// How many fires (1 to 1000).
        #[arg(short = 'n', long = "count", default_value_t = 5,
              value_parser = clap::value_parser!(u64).range(1..=MAX_NEXT as u64))]
        n: u64,
        /// Start after this instant (RFC 3339) instead of now.
        #[arg(long)]
        after: Option<String>,
        /// Print utc, local, offset, nominal, shift and note per fire as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a job now, in this process, and record it in the history.
    Run {
        /// The job (see `runbookd jobs`).
        job: String,
        /// Log what the job would do; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the recorded run (with checks and steps) as JSON.
        #[arg(long)]
        json: bool,
        /// Checklists: run only these checks (comma-separated names).
        #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
        only: Vec<String>,
        /// Checklists: leave out these checks (comma-separated names).
        #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
        skip: Vec<String>,
        /// Run even though a run of the job is running and its concurrency
        /// says forbid; the run records that it was forced.
        #[arg(long)]
        force: bool,
        /// Confirm a change that takes production down (scaling to 0).
        #[arg(long)]
        confirm: bool,
    },
    /// List recent runs, newest first.
    History {
        /// Only runs of this job.
        #[arg(long)]
        job: Option<String>,
        /// Only runs started within this long (e.g. 24h, 7d) or since an
        /// RFC 3339 instant.
        #[arg(long)]
        since: Option<String>,
        /// At most this many runs (1 to 10000).
        #[arg(long, default_value_t = DEFAULT_LIMIT,
              value_parser = clap::value_parser!(u32).range(1..=MAX_HISTORY as i64))]
        limit: u32,
        /// Print the runs as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one run with its steps, checks and log.
    Show {
        /// A run id, or a job name for its latest run.
        #[arg(value_name = "RUN_ID|JOB")]
        run: String,
        /// Print the run as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the process running a run to cancel it.
    Cancel {
        /// The run to cancel (see `runbookd history`).
        run_id: i64,
    },
    /// Run the scheduler daemon.
    Serve {
        /// Address for /healthz, /readyz and /metrics. Default: daemon.listen
        /// from the jobs file, else 0.0.0.0:8790.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Ask the daemons to run a job: one replica takes the request (within
    /// a second or so), applies the overlap rules and runs it.
    Trigger(TriggerArgs),
    /// List requests made with `trigger`: pending, started, refused,
    /// expired and withdrawn, with who asked, why, and what became of them.
    Requests {
        /// Only requests in this state.
        #[arg(long, value_enum)]
        status: Option<RequestState>,
        /// Only requests for this job.
        #[arg(long)]
        job: Option<String>,
        /// At most this many requests, newest first (1 to 10000).
        #[arg(long, default_value_t = DEFAULT_LIMIT,
              value_parser = clap::value_parser!(u32).range(1..=MAX_HISTORY as i64))]
        limit: u32,
        /// Print the requests as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take back a pending request so that no daemon ever runs it.
    Withdraw {
        /// The request (see `runbookd requests`).
        request_id: i64,
        /// Why, recorded with the request.
        #[arg(long, value_parser = reason_text)]
        reason: Option<String>,
    },
    /// Stop a job's scheduled fires on every replica until `resume` (its
    /// fires are recorded as skipped, with who paused it and why).
    Pause {
        /// The job (see `runbookd jobs`); it must have a schedule.
        job: String,
        /// Why, shown in each skipped fire.
        #[arg(long, value_parser = reason_text)]
        reason: Option<String>,
    },
    /// Let a paused job's scheduled fires run again.
    Resume {
        /// The paused job (see `runbookd jobs`).
        job: String,
    },
    /// Build the morning report from the history and print it (or write
    /// it to a file); --send mails it as the report job would.
    Report {
        /// The period: a duration back from now (24h, 7d) or an RFC 3339
        /// instant. Default: the report job's period, else 24h.
        #[arg(long)]
        since: Option<String>,
        /// Write to FILE instead of stdout: `.html` or `.htm` (charts
        /// inline, to look at in a browser), `.eml` (the whole message),
        /// `.txt` or no extension (the text); in any case. Any other
        /// extension is refused.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Send it to its recipients (or the outbox when no SMTP is set).
        #[arg(long)]
        send: bool,
        /// The `report` job whose settings to use. Default: the first one.
        #[arg(long)]
        job: Option<String>,
    },
    /// Create or update the history store's schema.
    Migrate,
}

/// A job the operator named that the file does not have is a usage error.
impl From<UnknownJob> for CliError {
    fn from(e: UnknownJob) -> Self {
        CliError::Usage(e.to_string())
    }
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
    /// The job was not started (an overlap rule); says why.
    #[error("{0}")]
    Refused(String),
    /// A run or request the operator named is not in the history (a
    /// well-formed question with a "no" for an answer, so exit 1, not 2).
    #[error("{0}")]
    NotFound(String),
    /// The job ran and did not succeed; its details are already printed.
    #[error("run {id} of `{job}` ended {status}")]
    JobFailed {
        id: i64,
        job: String,
        status: RunStatus,
    },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// A file the command was asked to write (`report --out`).
    #[error("cannot write {}: {source}", .path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Mail(#[from] crate::adapters::mail::MailError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error("{0}")]
    Delivery(#[from] crate::delivery::DeliveryError),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_)
            | CliError::Usage(_)
            | CliError::Store(StoreError::UnsupportedUrl { .. }) => 2,
            // The reader of our output went away (`| head`): nothing to say.
            _ if self.is_closed_output() => 0,
            _ => 1,
        }
    }

    /// stdout was closed by its reader.
    pub fn is_closed_output(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Nothing more to say on stderr: the output already said it (a failed
    /// run's last line) or no one reads it.
    pub fn is_quiet(&self) -> bool {
        self.is_closed_output() || matches!(self, CliError::JobFailed { .. })
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

pub async fn run(cli: Cli) -> Result<()> {
    commands::dispatch(cli).await
}
