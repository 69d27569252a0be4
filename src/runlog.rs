//! The log of one run: bounded, redacted, shared between the job and the
//! heartbeat that saves it.
//!
//! When a run prints more than the limit, the first half of the budget keeps
//! the start (what was attempted) and the second half keeps the end (how it
//! failed); the middle is dropped and the drop is written into the log. A
//! single line longer than [`MAX_LINE`] is cut (after redaction, so a secret
//! is never cut in half and left readable), so memory per run is bounded
//! whatever shape the output has.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{SecondsFormat, Utc};

use crate::secret::Redactor;

/// The longest line kept whole; the rest of a longer line is counted, not
/// kept.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Lines written by runbookd itself about the run.
    Runbookd,
}

impl Stream {
    pub fn label(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Runbookd => "runbookd",
        }
    }
}

/// A line as a foreground run shows it while it happens.
#[derive(Debug, Clone, Copy)]
pub struct TeeLine<'a> {
    /// RFC 3339, milliseconds.
    pub at: &'a str,
    pub stream: Stream,
    /// Already redacted.
    pub text: &'a str,
    /// The job and run the line belongs to.
    pub job: &'a str,
    pub run: i64,
}

type Tee = Arc<dyn Fn(&TeeLine<'_>) + Send + Sync>;

#[derive(Clone)]
pub struct RunLog {
    inner: Arc<Mutex<Inner>>,
    redactor: Redactor,
    /// Per stream: inside a private key block printed line by line (its
    /// lines are masked until its END line).
    in_key: Arc<[Mutex<bool>; 3]>,
    tee: Option<Tee>,
    job: Arc<str>,
    run: i64,
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
            in_key: Arc::new(Default::default()),
            tee: None,
            job: Arc::from(""),
            run: 0,
        }
    }

    /// Names the job and run its lines belong to (for a tee).
    pub fn for_run(mut self, job: &str, run: i64) -> Self {
        self.job = Arc::from(job);
        self.run = run;
        self
    }

    /// Also passes every (redacted) line to `f`, e.g. to echo a foreground
    /// run on the terminal.
    pub fn with_tee(mut self, f: impl Fn(&TeeLine<'_>) + Send + Sync + 'static) -> Self {
        self.tee = Some(Arc::new(f));
        self
    }

    pub fn line(&self, stream: Stream, text: &str) {
        self.append(stream, &[(text, 0)], true);
    }

    /// Several lines of one stream at once: one timestamp, one lock. Each
    /// comes with how many bytes of it were already dropped as too long.
    pub fn lines(&self, stream: Stream, texts: &[(&str, u64)]) {
        self.append(stream, texts, true);
    }

    /// A line by runbookd about the run, shown and stored.
    pub fn info(&self, text: &str) {
        self.line(Stream::Runbookd, text);
    }

    /// A line kept in the history but not echoed: a result the command
    /// prints itself (a checklist's table, the run's outcome).
    pub fn record(&self, text: &str) {
        self.append(Stream::Runbookd, &[(text, 0)], false);
    }

    fn append(&self, stream: Stream, texts: &[(&str, u64)], echo: bool) {
        let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let label = stream.label();
        let tee = if echo { self.tee.as_ref() } else { None };
        // Without a tee, lines the bounded log would drop at once need not
        // be scrubbed or formatted: of a large batch only the tail survives.
        let skip = match tee {
            Some(_) => 0,
            None => self.doomed(texts, ts.len() + label.len() + 2),
        };
        // Lines of one stream come in order from one reader; the lock only
        // keeps the key state whole.
        let mut in_key = self.in_key[stream as usize]
            .lock()
            .expect("run log key state lock");
        for (t, _) in &texts[..skip] {
            *in_key = crate::scrub::in_key_after(t, *in_key);
        }
        let lines: Vec<String> = texts[skip..]
            .iter()
            .map(|(t, dropped)| {
                let text = cut(
                    &self
                        .redactor
                        .redact_line(t.trim_end_matches(['\n', '\r']), &mut in_key),
                    *dropped,
                );
                if let Some(tee) = tee {
                    tee(&TeeLine {
                        at: &ts,
                        stream,
                        text: &text,
                        job: &self.job,
                        run: self.run,
                    });
                }
                format!("{ts} {label} {text}")
            })
            .collect();
        drop(in_key);
        let mut g = self.inner.lock().expect("run log lock");
        for line in lines {
            g.push(line);
        }
    }

    /// How many of `texts`, from the start, the log would drop as soon as
    /// the rest is in, counted as dropped now. Only once the head is full.
    fn doomed(&self, texts: &[(&str, u64)], prefix: usize) -> usize {
        let mut g = self.inner.lock().expect("run log lock");
        if g.tail.is_empty() {
            return 0;
        }
        let half = g.max_bytes / 2;
        let size = |t: &str| prefix + t.len().min(MAX_LINE + 64) + 1;
        let mut kept = 0;
        let mut first = texts.len();
        while first > 0 && kept + size(texts[first - 1].0) <= half {
            kept += size(texts[first - 1].0);
            first -= 1;
        }
        // The last line always goes in, as `push` keeps at least one.
        let first = first.min(texts.len().saturating_sub(1));
        let bytes: usize = texts[..first].iter().map(|(t, _)| size(t)).sum();
        g.dropped_lines += first as u64;
        g.dropped_bytes += bytes as u64;
        g.version += first as u64;
        first
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

impl Inner {
    fn push(&mut self, line: String) {
        self.version += 1;
        let len = line.len() + 1;
        let half = self.max_bytes / 2;
        if self.tail.is_empty() && self.head_bytes + len <= half {
            self.head_bytes += len;
            self.head.push(line);
            return;
        }
        self.tail_bytes += len;
        self.tail.push_back(line);
        while self.tail_bytes > half && self.tail.len() > 1 {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes -= old.len() + 1;
                self.dropped_lines += 1;
                self.dropped_bytes += old.len() as u64 + 1;
            }
        }
    }
}

/// A line cut to [`MAX_LINE`] bytes (on a character boundary), saying how
/// much more it had (`dropped`: bytes its reader did not even keep).
fn cut(text: &str, dropped: u64) -> String {
    if text.len() <= MAX_LINE && dropped == 0 {
        return text.to_string();
    }
    let mut end = text.len().min(MAX_LINE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [line cut: {} more bytes]",
        &text[..end],
        (text.len() - end) as u64 + dropped
    )
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
    fn a_big_batch_keeps_the_same_head_and_tail_as_line_by_line() {
        let texts: Vec<String> = (0..5000).map(|i| format!("line {i:04}")).collect();
        let batch = RunLog::new(1000, Redactor::default());
        // The head fills first, then whole batches arrive.
        for chunk in texts.chunks(700) {
            let refs: Vec<(&str, u64)> = chunk.iter().map(|t| (t.as_str(), 0)).collect();
            batch.lines(Stream::Stdout, &refs);
        }
        let one = RunLog::new(1000, Redactor::default());
        for t in &texts {
            one.line(Stream::Stdout, t);
        }
        let strip = |s: String| -> Vec<String> {
            s.lines()
                .map(|l| {
                    l.split_once(' ')
                        .map(|(_, r)| r.to_string())
                        .unwrap_or_default()
                })
                .collect()
        };
        let (b, o) = (batch.snapshot(), one.snapshot());
        assert_eq!(strip(b.text), strip(o.text));
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
            .with_tee(move |l| seen2.lock().unwrap().push(l.text.to_string()));
        log.line(Stream::Stdout, "token=tok-123456");
        assert!(!log.snapshot().text.contains("tok-123456"));
        assert!(log.snapshot().text.contains("token=[REDACTED]"));
        assert!(!seen.lock().unwrap()[0].contains("tok-123456"));
    }

    #[test]
    fn a_long_line_is_scrubbed_then_cut() {
        let secret = "s3cr3t-".repeat(4);
        let log = RunLog::new(1 << 20, Redactor::new([secret.clone()]));
        // The secret straddles the cut point.
        let mut text = "x".repeat(MAX_LINE - 10);
        text.push_str(&secret);
        text.push_str(&"y".repeat(100));
        log.line(Stream::Stdout, &text);
        let s = log.snapshot().text;
        assert!(!s.contains("s3cr3t"), "part of the secret survived the cut");
        assert!(s.contains("[line cut:"), "{}", &s[s.len() - 80..]);
        assert!(s.len() < MAX_LINE + 200);
    }

    #[test]
    fn a_private_key_printed_line_by_line_is_masked_and_escapes_are_shown() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let log = RunLog::new(10_000, Redactor::default())
            .with_tee(move |l| seen2.lock().unwrap().push(l.text.to_string()));
        log.line(Stream::Stdout, "-----BEGIN EC PRIVATE KEY-----");
        log.line(Stream::Stderr, "stderr is a stream of its own");
        log.lines(
            Stream::Stdout,
            &[
                ("MHcCAQEEIBkg4LVWM9nuwNSk", 0),
                ("-----END EC PRIVATE KEY-----", 0),
                ("after", 0),
            ],
        );
        log.line(Stream::Stdout, "\x1b]0;title\x07\x1b[2Jcleared");
        let text = log.snapshot().text;
        let tee = seen.lock().unwrap().join("\n");
        for got in [&text, &tee] {
            assert!(!got.contains("MHcCAQEEIBkg4LVWM9nuwNSk"), "{got}");
            assert!(!got.contains('\x1b') && !got.contains('\x07'), "{got}");
            assert!(got.contains("stderr is a stream of its own"), "{got}");
            assert!(got.contains("\\x1b]0;title\\x07\\x1b[2Jcleared"), "{got}");
        }
        assert!(text.contains(" stdout [REDACTED]\n"), "{text}");
        assert!(text.contains(" stdout after\n"), "{text}");
    }

    #[test]
    fn a_private_key_whose_begin_line_was_dropped_is_still_masked() {
        let log = RunLog::new(1000, Redactor::default());
        for i in 0..50 {
            log.line(Stream::Stdout, &format!("line {i}"));
        }
        // The BEGIN line falls in the part of the batch the bounded log
        // drops unread; the body lines it keeps are still the key's.
        let mut batch = vec!["-----BEGIN PRIVATE KEY-----".to_string()];
        batch.extend((0..200).map(|i| format!("keybody{i:04}")));
        let refs: Vec<(&str, u64)> = batch.iter().map(|t| (t.as_str(), 0)).collect();
        log.lines(Stream::Stdout, &refs);
        log.line(Stream::Stdout, "-----END PRIVATE KEY-----");
        log.line(Stream::Stdout, "done");
        let text = log.snapshot().text;
        assert!(!text.contains("keybody"), "{text}");
        assert!(text.contains(" stdout done\n"), "{text}");
    }

    #[test]
    fn recorded_lines_are_stored_not_echoed() {
        let seen = Arc::new(Mutex::new(0));
        let seen2 = seen.clone();
        let log =
            RunLog::new(10_000, Redactor::default()).with_tee(move |_| *seen2.lock().unwrap() += 1);
        log.record("CHECK  STATUS");
        log.info("progress");
        assert_eq!(*seen.lock().unwrap(), 1);
        assert!(log.snapshot().text.contains("CHECK  STATUS"));
    }
}
