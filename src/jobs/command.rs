//! `kind: command`: a program run without a shell.
//!
//! The child gets its own process group so a timeout or cancel stops
//! everything it started (SIGTERM, then SIGKILL after `kill_grace`), not just
//! the direct child.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use async_trait::async_trait;
use indexmap::IndexMap;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::{ExecEnv, Job, JobError, JobKind, Outcome, RunContext};
use crate::config::JobSpec;
use crate::model::Dur;
use crate::runlog::{RunLog, Stream};
use crate::yaml::{At, Diags, Text};

/// How long output readers may run after the child exits, for a grandchild
/// that keeps the pipe open.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// Program and arguments. Required, not run through a shell.
    pub argv: At<Vec<Text>>,
    /// Extra environment variables. Tag a value `!secret` to keep it out of
    /// logs. Default: none.
    #[serde(default)]
    pub env: IndexMap<String, Text>,
    /// Working directory. Default: runbookd's own.
    pub workdir: Option<Text>,
    /// Whether the child inherits runbookd's environment. Default `true`.
    #[serde(default = "default_true")]
    pub inherit_env: bool,
    /// Time between SIGTERM and SIGKILL when the run is stopped. Default `10s`.
    pub kill_grace: Option<Dur>,
}

fn default_true() -> bool {
    true
}

impl JobSpec for CommandSpec {
    fn validate(&self, _job: &str, diags: &mut Diags) {
        if self.argv.value.first().is_none_or(|p| p.trim().is_empty()) {
            diags.at(
                self.argv.at,
                "argv must name a program, e.g. [\"pg_dump\", \"--version\"]",
            );
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl JobKind for CommandSpec {
    fn executor(&self, _env: &ExecEnv) -> std::sync::Arc<dyn Job> {
        std::sync::Arc::new(CommandJob::new(self.clone()))
    }
}

impl CommandSpec {
    fn kill_grace(&self) -> Duration {
        self.kill_grace
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10))
    }
}

#[derive(Debug)]
pub struct CommandJob {
    spec: CommandSpec,
}

impl CommandJob {
    pub fn new(spec: CommandSpec) -> Self {
        CommandJob { spec }
    }

    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.spec.argv.value);
        if let Some(w) = &self.spec.workdir {
            s.push_str(&format!(" in {w}"));
        }
        if !self.spec.env.is_empty() {
            let keys: Vec<&str> = self.spec.env.keys().map(String::as_str).collect();
            s.push_str(&format!(" with env {}", keys.join(", ")));
        }
        s
    }
}

#[async_trait]
impl Job for CommandJob {
    async fn run(&self, ctx: &RunContext) -> Result<Outcome, JobError> {
        let what = self.describe();
        if ctx.dry_run {
            ctx.log.info(&format!("dry run: would execute {what}"));
            return Ok(Outcome {
                summary: Some(format!("dry run: would execute {what}")),
                ..Default::default()
            });
        }
        let argv: Vec<&str> = self.spec.argv.value.iter().map(|a| a.as_str()).collect();
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if !self.spec.inherit_env {
            cmd.env_clear();
            if let Ok(path) = std::env::var("PATH") {
                cmd.env("PATH", path);
            }
        }
        cmd.envs(self.spec.env.iter().map(|(k, v)| (k, v.as_str())));
        if let Some(w) = &self.spec.workdir {
            cmd.current_dir(PathBuf::from(w.as_str()));
        }
        ctx.log.info(&format!("exec {what}"));
        let mut child = cmd
            .spawn()
            .map_err(|e| JobError::Failed(format!("cannot start `{}`: {e}", argv[0])))?;
        let pid = child.id();
        let readers = [
            child
                .stdout
                .take()
                .map(|o| drain(o, ctx.log.clone(), Stream::Stdout)),
            child
                .stderr
                .take()
                .map(|e| drain(e, ctx.log.clone(), Stream::Stderr)),
        ];
        let status = tokio::select! {
            s = child.wait() => s,
            _ = ctx.cancel.cancelled() => {
                stop_group(pid, &mut child, self.spec.kill_grace(), &ctx.log).await;
                finish_readers(readers).await;
                return Err(JobError::Cancelled);
            }
        };
        finish_readers(readers).await;
        let status =
            status.map_err(|e| JobError::Failed(format!("waiting for `{}`: {e}", argv[0])))?;
        exit_result(argv[0], status)
    }
}

fn drain(
    r: impl AsyncRead + Unpin + Send + 'static,
    log: RunLog,
    stream: Stream,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        // A non-UTF-8 line ends reading rather than failing the run.
        while let Ok(Some(line)) = lines.next_line().await {
            log.line(stream, &line);
        }
    })
}

async fn finish_readers(readers: [Option<tokio::task::JoinHandle<()>>; 2]) {
    for r in readers.into_iter().flatten() {
        let abort = r.abort_handle();
        if tokio::time::timeout(DRAIN_TIMEOUT, r).await.is_err() {
            abort.abort();
        }
    }
}

async fn stop_group(
    pid: Option<u32>,
    child: &mut tokio::process::Child,
    grace: Duration,
    log: &RunLog,
) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let Some(pid) = pid else { return };
    let pgid = Pid::from_raw(pid as i32);
    log.info(&format!("stopping process group {pid}: SIGTERM"));
    let _ = killpg(pgid, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        log.info(&format!(
            "process group {pid} still running after {}: SIGKILL",
            humantime::format_duration(grace)
        ));
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // Children that ignored SIGTERM while the leader exited.
    let _ = killpg(pgid, Signal::SIGKILL);
}

fn exit_result(program: &str, status: ExitStatus) -> Result<Outcome, JobError> {
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        return Ok(Outcome {
            summary: Some("exit 0".to_string()),
            ..Default::default()
        });
    }
    match (status.code(), status.signal()) {
        (Some(code), _) => Err(JobError::Failed(format!(
            "`{program}` exited with status {code}"
        ))),
        (None, Some(sig)) => Err(JobError::Failed(format!(
            "`{program}` was killed by signal {sig}"
        ))),
        _ => Err(JobError::Failed(format!(
            "`{program}` ended abnormally: {status}"
        ))),
    }
}
