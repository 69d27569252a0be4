//! `kind: command`: a program run without a shell.
//!
//! The child gets its own process group so a timeout or cancel stops
//! everything it started (SIGTERM, then SIGKILL after `kill_grace`), not just
//! the direct child; the group ends with the run whatever way the run ends,
//! and with the daemon (see `crate::process`).
//!
//! The child's environment is an allow-list ([`PASSED_ENV`]) plus the job's
//! own `env`: the daemon's environment holds the history store's URL and
//! the checks' tokens, which a job printing `env` would put in its log.
//! `inherit_env: true` passes everything; secrets runbookd knows of are
//! scrubbed from the output either way.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use async_trait::async_trait;
use indexmap::IndexMap;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ExecEnv, Job, JobError, JobKind, Outcome, RunContext};
use crate::config::JobSpec;
use crate::model::Dur;
use crate::process::{self, Group};
use crate::runlog::{MAX_LINE, RunLog, Stream};
use crate::yaml::{At, Diags, Required, Text};

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
    pub workdir: Option<Required>,
    /// Whether the child gets runbookd's whole environment. Default
    /// `false`: only [`PASSED_ENV`] and `env`.
    #[serde(default)]
    pub inherit_env: bool,
    /// Time between SIGTERM and SIGKILL when the run is stopped. Default `10s`.
    pub kill_grace: Option<At<Dur>>,
}

/// What a job gets of runbookd's environment by default.
pub const PASSED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];

/// Bytes of one output line held while reading; the rest is counted.
const KEEP_LINE: usize = MAX_LINE + 4096;

impl JobSpec for CommandSpec {
    fn validate(&self, _job: &str, diags: &mut Diags) {
        if self.argv.value.first().is_none_or(|p| p.trim().is_empty()) {
            diags.at(
                self.argv.at,
                "argv must name a program, e.g. [\"pg_dump\", \"--version\"]",
            );
        }
        // A stop takes at most kill_grace twice (the leader, then what is
        // left of its group); past the runner's wait for a stopping job, the
        // group would outlive the run.
        if let Some(k) = self.kill_grace
            && k.value.0 > MAX_KILL_GRACE
        {
            diags.at(
                k.at,
                format!(
                    "kill_grace must be at most {}s: runbookd waits {}s for a cancelled job to stop",
                    MAX_KILL_GRACE.as_secs(),
                    crate::runner::STOP_WAIT.as_secs()
                ),
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
            .map(|k| k.value)
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
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(process::die_with_parent);
        }
        if !self.spec.inherit_env {
            cmd.env_clear();
            for k in PASSED_ENV {
                if let Some(v) = std::env::var_os(k) {
                    cmd.env(k, v);
                }
            }
        }
        cmd.envs(self.spec.env.iter().map(|(k, v)| (k, v.as_str())));
        // Last, so the job's own `env` cannot hide it.
        cmd.env(process::RUN_TAG, ctx.procs.tag());
        if let Some(w) = &self.spec.workdir {
            cmd.current_dir(PathBuf::from(w.as_str()));
        }
        ctx.log.info(&format!("exec {what}"));
        let mut child = cmd
            .spawn()
            .map_err(|e| JobError::Failed(format!("cannot start `{}`: {e}", argv[0])))?;
        let pid = child.id();
        let group = pid.and_then(process::group_of);
        if let Some(g) = group {
            ctx.procs.started(g).await;
        }
        let drained = CancellationToken::new();
        let readers = [
            child
                .stdout
                .take()
                .map(|o| drain(o, ctx.log.clone(), Stream::Stdout, drained.clone())),
            child
                .stderr
                .take()
                .map(|e| drain(e, ctx.log.clone(), Stream::Stderr, drained.clone())),
        ];
        let grace = self.spec.kill_grace();
        let status = tokio::select! {
            s = child.wait() => s,
            _ = ctx.cancel.cancelled() => {
                stop_leader(pid, &mut child, grace, &ctx.log).await;
                end_group(group, grace, &ctx.log).await;
                finish_readers(readers, drained.clone()).await;
                return Err(JobError::Cancelled);
            }
        };
        end_group(group, grace, &ctx.log).await;
        finish_readers(readers, drained.clone()).await;
        let status =
            status.map_err(|e| JobError::Failed(format!("waiting for `{}`: {e}", argv[0])))?;
        exit_result(argv[0], status)
    }
}

/// The run ends with its process group: what the main process left behind
/// (`sleep 1000 &`) is stopped, and the log says so.
async fn end_group(group: Option<Group>, grace: Duration, log: &RunLog) {
    let Some(g) = group else { return };
    let n = process::stop_group(g, process::ticks_now(), grace).await;
    if n > 0 {
        log.info(&format!(
            "stopped {n} leftover process(es) of process group {} (the run has ended)",
            g.pgid
        ));
    }
}

/// Reads a pipe into the run log: whole lines gathered up to
/// [`FLUSH_BYTES`] and handed over in one batch, so the log formats only
/// what it keeps; no line waits longer than [`FLUSH_EVERY`] however busy
/// the pipe; a line is held to [`KEEP_LINE`] bytes (the rest only counted),
/// so memory stays bounded whatever the output's shape. When `stop` fires
/// (the pipe is held open by a process that outlived the run), what is
/// gathered is still handed over.
fn drain(
    mut r: impl AsyncRead + Unpin + Send + 'static,
    log: RunLog,
    stream: Stream,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut pending: Vec<u8> = Vec::with_capacity(FLUSH_BYTES + buf.len());
        // When the oldest line in `pending` arrived.
        let mut held_since: Option<Instant> = None;
        let mut line: Vec<u8> = Vec::new();
        let mut over: u64 = 0;
        loop {
            let due = held_since.map(|t| t + FLUSH_EVERY);
            let n = tokio::select! {
                read = r.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
                _ = stop.cancelled() => break,
                _ = async {
                    match due {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    flush(&mut pending, &log, stream);
                    held_since = None;
                    continue;
                }
            };
            let mut rest = &buf[..n];
            while let Some(i) = rest.iter().position(|b| *b == b'\n') {
                if line.is_empty() && over == 0 && i <= KEEP_LINE {
                    pending.extend_from_slice(&rest[..=i]);
                } else {
                    hold(&mut line, &mut over, &rest[..i]);
                    if over > 0 {
                        flush(&mut pending, &log, stream);
                        log.lines(stream, &[(&String::from_utf8_lossy(&line), over)]);
                    } else {
                        pending.extend_from_slice(&line);
                        pending.push(b'\n');
                    }
                    line.clear();
                    over = 0;
                }
                rest = &rest[i + 1..];
            }
            hold(&mut line, &mut over, rest);
            if pending.is_empty() {
                held_since = None;
            } else if held_since.is_none() {
                held_since = Some(Instant::now());
            }
            if pending.len() >= FLUSH_BYTES
                || held_since.is_some_and(|t| t.elapsed() >= FLUSH_EVERY)
            {
                flush(&mut pending, &log, stream);
                held_since = None;
            }
        }
        flush(&mut pending, &log, stream);
        if !line.is_empty() || over > 0 {
            log.lines(stream, &[(&String::from_utf8_lossy(&line), over)]);
        }
    })
}

/// The longest `kill_grace`: two of them fit in the runner's wait for a
/// cancelled job ([`crate::runner::STOP_WAIT`]).
pub const MAX_KILL_GRACE: Duration = Duration::from_secs(25);

/// Whole lines gathered before they go to the log in one batch.
const FLUSH_BYTES: usize = 512 * 1024;
/// Gathered lines wait at most this long.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

fn flush(pending: &mut Vec<u8>, log: &RunLog, stream: Stream) {
    if pending.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(pending);
    let lines: Vec<(&str, u64)> = text.split_terminator('\n').map(|l| (l, 0)).collect();
    log.lines(stream, &lines);
    drop(text);
    pending.clear();
}

fn hold(line: &mut Vec<u8>, over: &mut u64, bytes: &[u8]) {
    let take = KEEP_LINE.saturating_sub(line.len()).min(bytes.len());
    line.extend_from_slice(&bytes[..take]);
    *over += (bytes.len() - take) as u64;
}

/// Waits for the readers to reach the end of their pipes; past
/// [`DRAIN_TIMEOUT`] (a leftover process holds a pipe open) they are told
/// to stop, and hand over what they hold before they do.
async fn finish_readers(
    readers: [Option<tokio::task::JoinHandle<()>>; 2],
    stop: CancellationToken,
) {
    let all = futures::future::join_all(readers.into_iter().flatten());
    tokio::pin!(all);
    if tokio::time::timeout(DRAIN_TIMEOUT, &mut all).await.is_err() {
        stop.cancel();
        all.await;
    }
}

/// Stops the main process: SIGTERM to its group, SIGKILL after `grace`.
async fn stop_leader(
    pid: Option<u32>,
    child: &mut tokio::process::Child,
    grace: Duration,
    log: &RunLog,
) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let Some(pid) = pid else { return };
    let pgid = Pid::from_raw(pid as i32);
    let count = process::group_of(pid)
        .map(|g| process::members(std::path::Path::new("/proc"), g, None).len())
        .unwrap_or(0);
    log.info(&format!(
        "stopping process group {pid} ({count} process(es)): SIGTERM"
    ));
    let _ = killpg(pgid, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        log.info(&format!(
            "process group {pid} still running after {}: SIGKILL",
            humantime::format_duration(grace)
        ));
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Redactor;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_pipe_that_never_pauses_still_shows_its_lines_soon() {
        let log = RunLog::new(1 << 20, Redactor::new(Vec::new()));
        let (mut w, r) = tokio::io::duplex(1 << 16);
        let stop = CancellationToken::new();
        let reader = drain(r, log.clone(), Stream::Stdout, stop.clone());
        // A line every 20 ms: never quiet for FLUSH_EVERY, far below
        // FLUSH_BYTES. The first line must show while the writer goes on.
        let writer = tokio::spawn(async move {
            for i in 0.. {
                if w.write_all(format!("line {i}\n").as_bytes()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let shown = tokio::time::timeout(Duration::from_secs(5), async {
            while !log.snapshot().text.contains("line 0") {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            shown.is_ok(),
            "line 0 not in the log 5 s later: {:?}",
            log.snapshot().text
        );
        // Told to stop with the pipe still open, it hands over what it holds.
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the reader stops when told")
            .unwrap();
        writer.abort();
        assert!(
            log.snapshot().text.contains("line 1"),
            "{}",
            log.snapshot().text
        );
    }
}
