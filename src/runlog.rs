//! The log of one run: bounded, redacted, shared between the job and the
//! heartbeat that saves it.
//!
//! When a run prints more than the limit, the first half of the budget keeps
//! the start (what was attempted) and the second half keeps the end (how it
//! failed); the middle is dropped and the drop is written into the log.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{SecondsFormat, Utc};

use crate::secret::Redactor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Lines written by runbookd itself about the run.
    Runbookd,
}

impl Stream {
    fn label(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Runbookd => "runbookd",
        }
    }
}

type Tee = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Clone)]
pub struct RunLog {
    inner: Arc<Mutex<Inner>>,
    redactor: Redactor,
    tee: Option<Tee>,
}

impl std::fmt::Debug for RunLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunLog")
    }
}

struct Inner {
    max_bytes: usize,
    head: Vec<String>,
    head_bytes: usize,
    tail: VecDeque<String>,
    tail_bytes: usize,
    dropped_lines: u64,
    dropped_bytes: u64,
    version: u64,
}

pub use crate::model::LogSnapshot;

impl RunLog {
    pub fn new(max_bytes: usize, redactor: Redactor) -> Self {
        RunLog {
            inner: Arc::new(Mutex::new(Inner {
                max_bytes: max_bytes.max(256),
                head: Vec::new(),
                head_bytes: 0,
                tail: VecDeque::new(),
                tail_bytes: 0,
                dropped_lines: 0,
                dropped_bytes: 0,
                version: 0,
            })),
            redactor,
            tee: None,
        }
    }

    /// Also passes every (redacted) line to `f`, e.g. to echo a foreground
    /// run on the terminal.
    pub fn with_tee(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.tee = Some(Arc::new(f));
        self
    }

    pub fn line(&self, stream: Stream, text: &str) {
        let text = self.redactor.redact(text.trim_end_matches(['\n', '\r']));
        let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let line = format!("{ts} {} {text}", stream.label());
        if let Some(tee) = &self.tee {
            tee(&line);
        }
        let mut g = self.inner.lock().expect("run log lock");
        g.version += 1;
        let len = line.len() + 1;
        let half = g.max_bytes / 2;
        if g.tail.is_empty() && g.head_bytes + len <= half {
            g.head_bytes += len;
            g.head.push(line);
            return;
        }
        g.tail_bytes += len;
        g.tail.push_back(line);
        while g.tail_bytes > half && g.tail.len() > 1 {
            if let Some(old) = g.tail.pop_front() {
                g.tail_bytes -= old.len() + 1;
                g.dropped_lines += 1;
                g.dropped_bytes += old.len() as u64 + 1;
            }
        }
    }

    pub fn info(&self, text: &str) {
        self.line(Stream::Runbookd, text);
    }

    /// Increases with every line; lets the heartbeat skip unchanged logs.
    pub fn version(&self) -> u64 {
        self.inner.lock().expect("run log lock").version
    }

    pub fn snapshot(&self) -> LogSnapshot {
        let g = self.inner.lock().expect("run log lock");
        let mut text = String::with_capacity(g.head_bytes + g.tail_bytes + 80);
        for l in &g.head {
            text.push_str(l);
            text.push('\n');
        }
        if g.dropped_lines > 0 {
            text.push_str(&format!(
                "[log truncated: {} lines ({} bytes) dropped here; history keeps {} bytes per run]\n",
                g.dropped_lines, g.dropped_bytes, g.max_bytes
            ));
        }
        for l in &g.tail {
            text.push_str(l);
            text.push('\n');
        }
        LogSnapshot {
            text,
            truncated: g.dropped_lines > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_tail_and_says_what_it_dropped() {
        let log = RunLog::new(1000, Redactor::default());
        for i in 0..200 {
            log.line(Stream::Stdout, &format!("line {i:03}"));
        }
        let s = log.snapshot();
        assert!(s.truncated);
        assert!(s.text.len() <= 1100, "{}", s.text.len());
        assert!(s.text.contains("stdout line 000"));
        assert!(s.text.contains("stdout line 199"));
        assert!(!s.text.contains("stdout line 100"));
        assert!(s.text.contains("[log truncated:"));
    }

    #[test]
    fn small_logs_are_whole() {
        let log = RunLog::new(10_000, Redactor::default());
        log.line(Stream::Stderr, "oops\n");
        let s = log.snapshot();
        assert!(!s.truncated);
        assert!(s.text.ends_with("stderr oops\n"), "{}", s.text);
    }

    #[test]
    fn lines_are_redacted_before_storage_and_tee() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let log = RunLog::new(10_000, Redactor::new(["tok-123456".to_string()]))
            .with_tee(move |l| seen2.lock().unwrap().push(l.to_string()));
        log.line(Stream::Stdout, "token=tok-123456");
        assert!(!log.snapshot().text.contains("tok-123456"));
        assert!(log.snapshot().text.contains("token=[REDACTED]"));
        assert!(!seen.lock().unwrap()[0].contains("tok-123456"));
    }
}
