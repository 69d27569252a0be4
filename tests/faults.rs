//! Faults and hostile input, each reproduced against the built binary: the
//! history store full, deleted or down; the log reader gone; a daemon
//! killed hard; jobs that leave children behind or print a gigabyte on one
//! line; an alias bomb; secrets printed back. Every fault is on loopback or
//! in a temp dir, and every test stops by itself.

use std::path::Path;
use std::time::{Duration, Instant};

use runbookd::testkit::binary::{Daemon, Workdir, alive, eventually, get, metric, stderr, stdout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_runbookd");
const DAEMON: &str = "daemon:\n  heartbeat: 200ms\n  stale_after: 2s\n  shutdown_grace: 1s\n";

fn workdir(yaml: &str) -> Workdir {
    Workdir::new(BIN, yaml)
}

fn runs(w: &Workdir, job: &str) -> Vec<Value> {
    let v = w.json(&["history", "--job", job, "--limit", "10000", "--json"]);
    v.as_array().cloned().unwrap_or_default()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn read_pid(path: &Path) -> i32 {
    eventually(Duration::from_secs(20), "a pid file", || {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })
}

/// A per-second job that leaves one line in `marker` each time it runs.
fn marking_job(marker: &Path, concurrency: &str) -> String {
    format!(
        "{DAEMON}jobs:\n  mark:\n    kind: command\n    argv: [sh, -c, \"echo ran >> {}\"]\n    schedule: \"* * * * * *\"\n    timezone: UTC\n    concurrency: {concurrency}\n    catch_up: 10s\n",
        marker.display()
    )
}

#[test]
fn a_closed_stderr_neither_kills_nor_deafens_the_daemon() {
    let marker = tempfile::NamedTempFile::new().unwrap();
    let w = workdir(&marking_job(marker.path(), "allow"));
    let mut child = w
        .cmd(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the start-up line, then the reader goes away.
    let mut err = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("listen=") {
        let n = std::io::Read::read(&mut err, &mut buf).unwrap();
        assert!(n > 0, "serve ended before listening: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    drop(err);
    let at_close = lines(marker.path());
    eventually(Duration::from_secs(20), "runs after stderr closed", || {
        (lines(marker.path()) >= at_close + 3).then_some(())
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon ignored SIGTERM after its stderr reader went away");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    // Every run it made is recorded and ended.
    let rs = runs(&w, "mark");
    assert!(rs.iter().all(|r| r["status"] != "running"), "{rs:?}");
    assert_eq!(rs.len(), lines(marker.path()));
}

#[test]
fn a_job_never_outlives_its_run() {
    let w = workdir(&format!(
        "{DAEMON}jobs:
  bg:
    kind: command
    argv: [sh, -c, 'sleep 120 & echo $! > bg.pid; echo started']
  hung:
    kind: command
    argv: [sh, -c, 'sleep 120 & echo $! > hung.pid; sleep 120']
    timeout: 1s
"
    ));
    let out = w.run(&["run", "bg"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = read_pid(&w.path().join("bg.pid"));
    assert!(!alive(pid), "the background child {pid} outlived its run");
    let run = w.json(&["show", "bg", "--json"]);
    assert!(
        run["log"]
            .as_str()
            .unwrap()
            .contains("stopped 1 leftover process(es)"),
        "{}",
        run["log"]
    );

    let out = w.run(&["run", "hung"]);
    assert_eq!(out.status.code(), Some(1));
    let run = w.json(&["show", "hung", "--json"]);
    assert_eq!(run["status"], "timed_out");
    let pid = read_pid(&w.path().join("hung.pid"));
    assert!(
        !alive(pid),
        "the background child {pid} outlived its timed-out run"
    );
    assert!(
        run["log"]
            .as_str()
            .unwrap()
            .contains(" process(es)): SIGTERM"),
        "{}",
        run["log"]
    );
}

#[test]
fn a_daemon_killed_hard_leaves_no_job_process_behind() {
    let w = workdir(&format!(
        "{DAEMON}jobs:
  slow:
    kind: command
    argv: [sh, -c, 'echo $$$$ > leader.pid; sleep 120 & echo $! > child.pid; wait']
    schedule: \"* * * * * *\"
    timezone: UTC
    concurrency: forbid
"
    ));
    let mut d = w.serve();
    let leader = read_pid(&w.path().join("leader.pid"));
    let child = read_pid(&w.path().join("child.pid"));
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait(Duration::from_secs(10));
    // The job's main process dies with the daemon.
    eventually(
        Duration::from_secs(10),
        "the job's main process to die with the daemon",
        || (!alive(leader)).then_some(()),
    );
    // The restarted daemon stops what the dead one left, before it runs the
    // forbid job again.
    let _d2 = w.serve();
    eventually(Duration::from_secs(20), "the orphan to be stopped", || {
        (!alive(child)).then_some(())
    });
    let abandoned = eventually(Duration::from_secs(20), "the run marked abandoned", || {
        runs(&w, "slow")
            .into_iter()
            .find(|r| r["status"] == "abandoned")
    });
    assert!(
        abandoned["error"]
            .as_str()
            .unwrap()
            .contains("stopped 1 process(es)"),
        "{abandoned}"
    );
}

/// A daemon killed between spawning a job and recording its process group
/// leaves a `running` run with no group to stop. That window is a few
/// milliseconds wide, so the state it leaves is written here directly: the
/// run of a dead owner on this host, and a process carrying the run's tag.
#[test]
fn a_job_process_the_dead_daemon_never_recorded_is_stopped_by_its_tag() {
    use std::os::unix::process::CommandExt;
    let w = workdir(&format!(
        "{DAEMON}jobs:\n  other:\n    kind: command\n    argv: [\"true\"]\n"
    ));
    let out = w.run(&["run", "other"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let owner = format!("{host}:{dead_pid}:0dead0");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(async {
        let store = runbookd::store::open(w.db_url()).await.unwrap();
        store
            .insert_run(&runbookd::model::NewRun {
                job: "other".into(),
                trigger: runbookd::model::Trigger::Manual,
                triggered_by: "test".into(),
                scheduled_for: None,
                started_at: chrono::Utc::now(),
                status: runbookd::model::RunStatus::Running,
                attempt: 1,
                error: None,
                dry_run: false,
                owner: owner.clone(),
                retry_of: None,
            })
            .await
            .unwrap()
            .expect("a manual run is never a duplicate")
    });
    let spawn_tagged = |tag: String| {
        std::process::Command::new("sleep")
            .arg("120")
            .env("RUNBOOKD_RUN", tag)
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let mut orphan = spawn_tagged(format!("{owner}/{id}"));
    let mut bystander = spawn_tagged(format!("{owner}/{}", id + 1));
    // Any start reaps: here a manual run of another job.
    let out = w.run(&["run", "other"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = eventually(Duration::from_secs(10), "the orphan to be stopped", || {
        orphan.try_wait().unwrap()
    });
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15),
        "stopped with SIGTERM"
    );
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "a process with another run's tag was touched"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
    let run = w.json(&["show", &id.to_string(), "--json"]);
    assert_eq!(run["status"], "abandoned");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("stopped 1 process(es)"),
        "{run}"
    );
}

/// Peak memory (VmHWM, kB) of a process, polled until it exits.
fn peak_kb(child: &mut std::process::Child) -> u64 {
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
            for l in s.lines() {
                if let Some(v) = l.strip_prefix("VmHWM:") {
                    peak = peak.max(v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0));
                }
            }
        }
        if child.try_wait().unwrap().is_some() {
            return peak;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not end within 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_huge_single_line_is_captured_in_bounded_memory() {
    let w = workdir(&format!(
        "{DAEMON}jobs:
  flood:
    kind: command
    argv: [sh, -c, \"head -c 300000000 /dev/zero | tr '\\\\0' a; echo; echo done\"]
"
    ));
    let mut child = w
        .cmd(&["run", "flood"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let peak = peak_kb(&mut child);
    assert!(child.wait().unwrap().success());
    // 300 MB went through; the old reader held the line (and copies).
    assert!(peak < 100 * 1024, "peak RSS {peak} kB for a 300 MB line");
    let run = w.json(&["show", "flood", "--json"]);
    let log = run["log"].as_str().unwrap();
    assert!(
        log.contains("[line cut: "),
        "{}",
        &log[..log.len().min(300)]
    );
    assert!(log.contains("stdout done"));
    assert!(log.len() < 300 * 1024);
}

#[test]
fn a_yaml_alias_bomb_is_refused_fast_with_a_position() {
    let mut y = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..=9 {
        let p = i - 1;
        y.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{p}"); 10].join(", ")
        ));
    }
    y.push_str("jobs:\n  a:\n    kind: command\n    argv: [true]\n");
    let w = workdir(&y);
    let started = Instant::now();
    let out = w.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10));
    let text = stdout(&out);
    assert!(text.starts_with("jobs.yaml:"), "{text}");
    assert!(text.lines().count() == 1, "{text}");
}

#[test]
fn a_second_document_is_an_error() {
    let w = workdir("jobs:\n  a:\n    kind: command\n    argv: [true]\n---\njobs: {}\n");
    let out = w.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("a second YAML document"),
        "{}",
        stdout(&out)
    );
}

/// An HTTP server on loopback that answers every request 503 with `body`.
fn echo_server(body: String) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut s = s;
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

#[test]
fn secrets_never_leak_from_jobs_or_checks_in_any_shape() {
    let token = "tok-wa-45678901234";
    let app_pw = "app-pw-98765";
    // The server echoes the bare token, once at the start and once where a
    // 120-character cut would halve it.
    let body = format!("token {token} rejected; {}{token}", "x".repeat(120 - 31));
    let addr = echo_server(body);
    let yaml = format!(
        "jobs:
  printenv:
    kind: command
    argv: [env]
  printenv-all:
    kind: command
    argv: [env]
    inherit_env: true
  graph:
    kind: checklist
    checks:
      - name: token
        kind: http
        url: http://{addr}/v17.0/me
        headers:
          Authorization: \"Bearer ${{WHATSAPP_ACCESS_TOKEN:-}}\"
      - name: db
        kind: sql
        database_url: \"${{APP_DATABASE_URL:-postgres://x@127.0.0.1:1/x}}\"
        query: SELECT 1
        fail_if: \"> 1\"
        timeout: 2s
"
    );
    let w = workdir(&yaml);
    let env = [
        ("WHATSAPP_ACCESS_TOKEN", token.to_string()),
        (
            "APP_DATABASE_URL",
            format!("postgres://app:{app_pw}@127.0.0.1:1/app"),
        ),
    ];
    let mut all = String::new();
    for job in ["printenv", "printenv-all", "graph"] {
        let mut c = w.cmd(&["run", job]);
        c.envs(env.iter().map(|(k, v)| (k, v)));
        let out = c.output().unwrap();
        all.push_str(&stdout(&out));
        all.push_str(&stderr(&out));
        let run = w.json(&["show", job, "--json"]);
        all.push_str(&run.to_string());
    }
    let printenv = w.json(&["show", "printenv", "--json"]);
    let log = printenv["log"].as_str().unwrap();
    assert!(log.contains("PATH="), "the allow-list passes PATH: {log}");
    assert!(!log.contains("WHATSAPP_ACCESS_TOKEN"), "{log}");
    assert!(!log.contains("APP_DATABASE_URL"), "{log}");
    let inherited = w.json(&["show", "printenv-all", "--json"]);
    assert!(
        inherited["log"]
            .as_str()
            .unwrap()
            .contains("WHATSAPP_ACCESS_TOKEN=[REDACTED]"),
        "inherit_env passes the variable, scrubbed"
    );
    let graph = w.json(&["show", "graph", "--json"]);
    assert!(
        graph["checks"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("[REDACTED]"),
        "{graph}"
    );
    let db = std::fs::read(w.path().join("history.db")).unwrap_or_default();
    for secret in [token, &token[..10], app_pw] {
        assert!(!all.contains(secret), "`{secret}` leaked:\n{all}");
        assert!(
            !db.windows(secret.len()).any(|win| win == secret.as_bytes()),
            "`{secret}` is in the history file"
        );
    }
}

/// Fills the filesystem at `dir` with one file until it is full.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    path
}

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// A small tmpfs (this needs root; scripts/test.sh runs as root on CI).
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs ({}): this fault test needs root; run it as root, as scripts/test.sh does on CI",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

fn scrape(d: &Daemon) -> (u16, u16, String) {
    let addr = d.addr();
    let health = get(addr, "/healthz").map(|r| r.0).unwrap_or(0);
    let ready = get(addr, "/readyz").map(|r| r.0).unwrap_or(0);
    let metrics = get(addr, "/metrics").map(|r| r.1).unwrap_or_default();
    (health, ready, metrics)
}

/// Waits until the daemon has evaluated its jobs `n` more times. With the
/// per-second job due at each, that is `n` chances for a run to start: the
/// proof that one that did not start was not merely late.
fn ticks_pass(d: &Daemon, n: f64) {
    let ticks = || metric(&scrape(d).2, "runbookd_ticks_total");
    let from = ticks();
    eventually(Duration::from_secs(30), &format!("{n} more ticks"), || {
        (ticks() >= from + n).then_some(())
    });
}

#[cfg(feature = "integration")]
#[test]
fn a_full_disk_stops_claims_and_readiness_and_no_run_goes_unrecorded() {
    let fs = Tmpfs::mount("2m");
    let marker = tempfile::NamedTempFile::new().unwrap();
    let db = format!("sqlite://{}", fs.0.path().join("history.db").display());
    let w = workdir(&marking_job(marker.path(), "allow")).with_db(&db);
    let d = w.serve();
    eventually(Duration::from_secs(20), "three runs", || {
        (lines(marker.path()) >= 3).then_some(())
    });
    let filler = fill(fs.0.path());
    // While full: no run starts that could not be recorded, the daemon is
    // alive but not ready, and the failures are counted.
    let (health, ready, metrics) = eventually(Duration::from_secs(20), "not ready", || {
        let s = scrape(&d);
        (s.1 == 503).then_some(s)
    });
    // A run claimed just before the disk filled has ended (it may have
    // left its line): from here the count must stand still.
    eventually(Duration::from_secs(20), "no run going", || {
        (metric(&scrape(&d).2, "runbookd_active_runs") == 0.0).then_some(())
    });
    let before = lines(marker.path());
    ticks_pass(&d, 3.0);
    assert_eq!(health, 200, "the process is alive");
    assert_eq!(ready, 503);
    assert!(
        metric(&metrics, "runbookd_store_errors_total") >= 1.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "runbookd_store_up"), 0.0, "{metrics}");
    assert_eq!(
        lines(marker.path()),
        before,
        "a job ran while its claim could not be stored"
    );
    std::fs::remove_file(filler).unwrap();
    let back = Instant::now();
    eventually(Duration::from_secs(20), "ready again", || {
        (scrape(&d).1 == 200).then_some(())
    });
    eventually(Duration::from_secs(20), "runs again", || {
        (lines(marker.path()) >= before + 3).then_some(())
    });
    drop(d);
    let rs = runs(&w, "mark");
    // Every run that happened is a row; no row is left running for good.
    assert_eq!(rs.len(), lines(marker.path()), "runs executed vs recorded");
    // No burst: the fires missed while full are not replayed.
    let burst = rs
        .iter()
        .filter(|r| {
            let t =
                chrono::DateTime::parse_from_rfc3339(r["started_at"].as_str().unwrap()).unwrap();
            let since = chrono::Utc::now() - chrono::Duration::from_std(back.elapsed()).unwrap();
            t >= since && t < since + chrono::Duration::seconds(1)
        })
        .count();
    assert!(
        burst <= 2,
        "{burst} runs in the first second after the store came back"
    );
}

#[test]
fn a_deleted_database_directory_stops_claims() {
    let marker = tempfile::NamedTempFile::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("store");
    std::fs::create_dir(&sub).unwrap();
    let db = format!("sqlite://{}", sub.join("history.db").display());
    let w = workdir(&marking_job(marker.path(), "allow")).with_db(&db);
    let d = w.serve();
    eventually(Duration::from_secs(20), "two runs", || {
        (lines(marker.path()) >= 2).then_some(())
    });
    std::fs::remove_dir_all(&sub).unwrap();
    eventually(Duration::from_secs(20), "not ready", || {
        (scrape(&d).1 == 503).then_some(())
    });
    eventually(Duration::from_secs(20), "no run going", || {
        (metric(&scrape(&d).2, "runbookd_active_runs") == 0.0).then_some(())
    });
    let stopped_at = lines(marker.path());
    ticks_pass(&d, 3.0);
    assert_eq!(
        lines(marker.path()),
        stopped_at,
        "runs went on into a deleted database"
    );
    assert!(d.log().contains("is gone"), "{}", d.log());
}

/// Postgres behind a proxy the test cuts for 6 s under a running daemon.
#[cfg(feature = "integration")]
#[test]
fn a_postgres_outage_is_neither_a_burst_nor_unhealthy() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(runbookd::testkit::TestDatabase::postgres());
    let url = url::Url::parse(&db.url).unwrap();
    let upstream: std::net::SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .unwrap();
    let proxy = runbookd::testkit::proxy::Proxy::start(upstream);
    let mut via = url.clone();
    via.set_port(Some(proxy.addr.port())).unwrap();
    let marker = tempfile::NamedTempFile::new().unwrap();
    let w = workdir(&marking_job(marker.path(), "allow")).with_db(via.as_str());
    let d = w.serve();
    eventually(Duration::from_secs(20), "three runs", || {
        (lines(marker.path()) >= 3).then_some(())
    });
    proxy.cut();
    let cut = Instant::now();
    let mut healths = Vec::new();
    let mut saw_unready = false;
    let mut errors = 0.0;
    while cut.elapsed() < Duration::from_secs(6) {
        let (h, r, m) = scrape(&d);
        healths.push(h);
        saw_unready |= r == 503;
        errors = metric(&m, "runbookd_store_errors_total").max(errors);
        std::thread::sleep(Duration::from_millis(250));
    }
    let during = lines(marker.path());
    proxy.restore();
    let back = chrono::Utc::now();
    eventually(Duration::from_secs(20), "runs again", || {
        (lines(marker.path()) >= during + 3).then_some(())
    });
    let (_, _, metrics) = scrape(&d);
    let log = d.log();
    drop(d);
    assert!(
        healths.iter().all(|h| *h == 200),
        "/healthz during the outage: {healths:?}\n{log}"
    );
    assert!(saw_unready, "/readyz never said the store was down\n{log}");
    assert!(errors >= 1.0, "store errors were not counted\n{log}");
    assert!(
        metric(&metrics, "runbookd_fires_missed_total") >= 3.0,
        "{metrics}\n--- daemon log ---\n{log}"
    );
    let rs = runs(&w, "mark");
    let first_second = rs
        .iter()
        .filter(|r| {
            let t =
                chrono::DateTime::parse_from_rfc3339(r["started_at"].as_str().unwrap()).unwrap();
            t >= back && t < back + chrono::Duration::seconds(1)
        })
        .count();
    assert!(
        first_second <= 2,
        "{first_second} runs in the first second after the outage at {back}: {:#?}",
        rs.iter()
            .map(|r| format!(
                "{} {} {} {}",
                r["id"], r["trigger"], r["scheduled_for"], r["started_at"]
            ))
            .collect::<Vec<_>>()
    );
    assert!(rs.iter().all(|r| r["status"] != "running"), "{rs:?}");
}

/// Housekeeping never holds up a fire: with the daemon's prune stuck (its
/// first statement waits on a lock another session holds), a per-second
/// job keeps starting on time. The prune ran inside the daemon's loop, so
/// every fire waited for it.
#[cfg(feature = "integration")]
#[test]
fn a_stuck_prune_never_holds_up_a_fire() {
    use sqlx::Connection;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(runbookd::testkit::TestDatabase::postgres());
    let marker = tempfile::NamedTempFile::new().unwrap();
    let w = workdir(&marking_job(marker.path(), "allow")).with_db(&db.url);
    assert!(w.run(&["migrate"]).status.success());
    let mut lock = rt.block_on(sqlx::PgConnection::connect(&db.url)).unwrap();
    rt.block_on(
        sqlx::raw_sql("BEGIN; LOCK TABLE missed_fires IN ACCESS EXCLUSIVE MODE").execute(&mut lock),
    )
    .unwrap();
    let mut admin = rt.block_on(sqlx::PgConnection::connect(&db.url)).unwrap();
    let _d = w.serve();
    // The prune is now waiting on the lock.
    eventually(
        Duration::from_secs(20),
        "the prune to wait on the lock",
        || {
            let n: i64 = rt
                .block_on(
                    sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity
                     WHERE wait_event_type = 'Lock' AND query LIKE '%missed_fires%'",
                    )
                    .fetch_one(&mut admin),
                )
                .unwrap();
            (n > 0).then_some(())
        },
    );
    let stuck_at = chrono::Utc::now();
    // Well inside the store's 10 s statement timeout, which is what would
    // free a loop waiting on the prune.
    eventually(
        Duration::from_secs(6),
        "three fires after the prune got stuck",
        || {
            let late = runs(&w, "mark")
                .iter()
                .filter(|r| {
                    r["scheduled_for"]
                        .as_str()
                        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                        .is_some_and(|t| t > stuck_at)
                })
                .count();
            (late >= 3).then_some(())
        },
    );
    rt.block_on(sqlx::raw_sql("COMMIT").execute(&mut lock))
        .unwrap();
}
