//! A real SMTP server (aiosmtpd, `scripts/smtp_fixture.py`) for one test,
//! writing what it accepts into a Maildir. `scripts/test.sh` installs
//! aiosmtpd and says where it is; a test run without it fails and says so.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How a test server behaves.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// AUTH required with these credentials (530 without, 535 if wrong).
    pub auth: Option<(String, String)>,
    /// STARTTLS offered and required.
    pub starttls: bool,
    /// TLS from the first byte.
    pub smtps: bool,
}

impl SmtpOptions {
    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.into(), password.into()));
        self
    }

    pub fn starttls(mut self) -> Self {
        self.starttls = true;
        self
    }

    pub fn smtps(mut self) -> Self {
        self.smtps = true;
        self
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: the SMTP tests need aiosmtpd; run them with scripts/test.sh, which installs it and sets {name}")
    })
}

/// The test CA's certificate (`ca.pem`) that signed the server's.
pub fn test_ca() -> PathBuf {
    PathBuf::from(env("RUNBOOKD_TEST_SMTP_TLS")).join("ca.pem")
}

pub struct SmtpServer {
    pub port: u16,
    maildir: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start(opts: SmtpOptions) -> Self {
        Self::start_on(super::binary::free_port(), opts)
    }

    /// On a given port: the second half of a "down, then up" test.
    pub fn start_on(port: u16, opts: SmtpOptions) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir for the Maildir");
        let maildir = dir.path().join("Maildir");
        let tls = PathBuf::from(env("RUNBOOKD_TEST_SMTP_TLS"));
        let mut cmd = Command::new(env("RUNBOOKD_TEST_SMTP_PYTHON"));
        cmd.arg(env("RUNBOOKD_TEST_SMTP_FIXTURE"))
            .args(["--port", &port.to_string()])
            .arg("--maildir")
            .arg(&maildir);
        if let Some((u, p)) = &opts.auth {
            cmd.args(["--auth", &format!("{u}:{p}")]);
        }
        for (on, flag) in [(opts.starttls, "--starttls"), (opts.smtps, "--smtps")] {
            if on {
                cmd.arg(flag)
                    .arg(tls.join("cert.pem"))
                    .arg(tls.join("key.pem"));
            }
        }
        // stdin stays open while this lives: the server stops when it closes.
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scripts/smtp_fixture.py");
        let out = child.stdout.take().expect("fixture stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l.starts_with("ready") => {}
            other => {
                let _ = child.kill();
                panic!("the SMTP fixture did not start on 127.0.0.1:{port}: {other:?}");
            }
        }
        SmtpServer {
            port,
            maildir,
            child,
            _dir: dir,
        }
    }

    /// The messages received, each as its bytes, oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        // Arrival order. Maildir names are `SECS.M<micros>P<pid>Q<n>.host`
        // with micros not zero-padded, so their text order is not it; the
        // fixture's one process counts deliveries in Q.
        files.sort_by_key(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let num = |after: char, until: char| -> u64 {
                name.split_once(after)
                    .and_then(|(_, r)| r.split(until).next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            let secs: u64 = name
                .split('.')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            (num('Q', '.'), secs, num('M', 'P'), name.clone())
        });
        files
            .iter()
            .map(|p| std::fs::read(p).expect("read a Maildir message"))
            .collect()
    }

    pub fn maildir(&self) -> &Path {
        &self.maildir
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
