//! The command line: argument parsing and exit codes here, each command's
//! orchestration in `commands.rs`, its output in `render.rs`.
//!
//! Exit codes: 0 ok, 1 a job failed (or the history store could not be
//! reached), 2 a usage or config error. Data goes to stdout, progress and
//! errors to stderr, so `--json` output can be piped.

mod commands;
mod render;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::ConfigError;
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
    commands::dispatch(cli).await
}
