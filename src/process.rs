//! Job processes: each `command` job runs in its own process group, which
//! ends with its run, and which no daemon crash can leave behind.
//!
//! - The child gets a parent-death signal (SIGKILL), so a daemon killed
//!   with `kill -9` takes its job's main process with it.
//! - When a run ends, whatever is left in its group (`sleep 1000 &`) is
//!   stopped, SIGTERM then SIGKILL, and the log says how many.
//! - A run's group is recorded with its leader's start time; a daemon that
//!   finds a dead owner's run on its own host stops that group, guarding
//!   against PID reuse by the start times (`/proc/<pid>/stat` field 22).
//! - Every job process also carries [`RUN_TAG`] in its environment. The
//!   group can only be recorded after the spawn returns, so a daemon killed
//!   in between leaves no record; the tag, inherited by every descendant,
//!   still names what that run started.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

pub use crate::model::ProcessGroup as Group;

/// One line of `/proc/<pid>/stat`, the fields we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub pgrp: i32,
    pub start: u64,
    /// Exited, not yet reaped: nothing left to stop.
    pub zombie: bool,
}

/// Parses `/proc/<pid>/stat`; the command name may hold spaces and
/// parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) … starttime(22).
    Some(ProcStat {
        pid,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
        zombie: *fields.first()? == "Z",
    })
}

fn stat_of(proc_root: &Path, pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?)
}

/// The group a just-started child leads.
pub fn group_of(pid: u32) -> Option<Group> {
    let s = stat_of(Path::new("/proc"), pid as i32)?;
    Some(Group {
        pgid: s.pgrp,
        leader_start: s.start,
    })
}

/// The members of `group` that are still ours: every process in it if its
/// leader is alive with the recorded start time; if the leader is gone,
/// only members started no later than `started_before` (clock ticks), so a
/// group id reused by a later process is never touched. Pure over
/// `proc_root`.
pub fn members(proc_root: &Path, group: Group, started_before: Option<u64>) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let all: Vec<ProcStat> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| stat_of(proc_root, pid))
        .filter(|s| s.pgrp == group.pgid && s.start >= group.leader_start)
        .collect();
    let leader_alive = all
        .iter()
        .any(|s| s.pid == group.pgid && s.start == group.leader_start);
    all.into_iter()
        .filter(|s| !s.zombie)
        .filter(|s| leader_alive || started_before.is_some_and(|b| s.start <= b))
        .map(|s| s.pid)
        .collect()
}

/// Clock ticks since boot now, comparable with start times.
pub fn ticks_now() -> Option<u64> {
    ticks_of_uptime(
        &std::fs::read_to_string("/proc/uptime").ok()?,
        ticks_per_second(),
    )
}

/// `/proc/uptime`'s first field in clock ticks, in integers: through a
/// float, `0.29 * 100` is `28.99…` and a process started in the current
/// tick would read as started after "now", and a run's leftover child
/// would escape [`members`].
fn ticks_of_uptime(text: &str, hz: u64) -> Option<u64> {
    let field = text.split_whitespace().next()?;
    let (whole, frac) = field.split_once('.').unwrap_or((field, ""));
    let whole: u64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Up to nine decimals (nanoseconds) are exact in u64 arithmetic.
    let digits = &frac[..frac.len().min(9)];
    let nanos: u64 = format!("{digits:0<9}").parse().ok()?;
    Some(whole * hz + nanos * hz / 1_000_000_000)
}

/// The unit of `/proc` start times.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    hz.max(1) as u64
}

/// Stops what is left of a group: SIGTERM, then SIGKILL after `grace`.
/// Returns how many processes were in it.
pub async fn stop_group(group: Group, started_before: Option<u64>, grace: Duration) -> usize {
    let proc_root = Path::new("/proc");
    let found = members(proc_root, group, started_before);
    if found.is_empty() {
        return 0;
    }
    // A zombie leader still counts as the group's anchor for killpg.
    let pgid = Pid::from_raw(group.pgid);
    let _ = killpg(pgid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if members(proc_root, group, started_before)
            .iter()
            .all(|p| is_zombie(proc_root, *p))
        {
            return found.len();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    found.len()
}

fn is_zombie(proc_root: &Path, pid: i32) -> bool {
    stat_of(proc_root, pid).is_none_or(|s| s.zombie)
}

/// The environment variable every job process carries: `<owner>/<run id>`
/// (see [`run_tag`]).
pub const RUN_TAG: &str = "RUNBOOKD_RUN";

/// [`RUN_TAG`]'s value for a run; the owner names the daemon process, so
/// run ids of two history stores on one host never meet.
pub fn run_tag(owner: &str, run: crate::model::RunId) -> String {
    format!("{owner}/{run}")
}

/// The live processes whose environment holds `RUN_TAG=<tag>` exactly (as
/// they were started: `/proc/<pid>/environ`), this one excepted. Pure over
/// `proc_root`; processes we may not read are not ours.
pub fn tagged(proc_root: &Path, tag: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let want = format!("{RUN_TAG}={tag}");
    let me = std::process::id() as i32;
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(proc_root.join(pid.to_string()).join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()))
        })
        .filter(|pid| !is_zombie(proc_root, *pid))
        .collect()
}

/// Stops every live process carrying `tag`: SIGTERM, then SIGKILL after
/// `grace` to those that still carry it, and a short wait for them to go.
/// Each round rescans, so a pid reused meanwhile by another process is
/// never signalled. Returns how many there were.
pub async fn stop_tagged(tag: &str, grace: Duration) -> usize {
    use nix::sys::signal::kill;
    let proc_root = Path::new("/proc");
    let found = tagged(proc_root, tag);
    if found.is_empty() {
        return 0;
    }
    for p in &found {
        let _ = kill(Pid::from_raw(*p), Signal::SIGTERM);
    }
    let gone = |within: Duration| async move {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if tagged(proc_root, tag).is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    if !gone(grace).await {
        for p in tagged(proc_root, tag) {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        // Gone before the caller looks again, so none is counted twice.
        gone(Duration::from_millis(500)).await;
    }
    found.len()
}

/// For `Command::pre_exec`: the child dies with its parent.
pub fn die_with_parent() -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_past_odd_names() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                pid: 4242,
                pgrp: 4242,
                start: 987654,
                zombie: false,
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    fn fake_proc(procs: &[(i32, i32, u64)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (pid, pgrp, start) in procs {
            let p = dir.path().join(pid.to_string());
            std::fs::create_dir(&p).unwrap();
            std::fs::write(
                p.join("stat"),
                format!("{pid} (sh) S 1 {pgrp} {pgrp} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0"),
            )
            .unwrap();
        }
        dir
    }

    #[test]
    fn zombies_and_vanished_processes_count_as_gone() {
        let root = fake_proc(&[(10, 10, 1), (11, 10, 2)]);
        let stat = root.path().join("11").join("stat");
        let running = std::fs::read_to_string(&stat).unwrap();
        std::fs::write(&stat, running.replacen(") S ", ") Z ", 1)).unwrap();
        std::fs::create_dir(root.path().join("12")).unwrap();
        std::fs::write(root.path().join("12").join("stat"), "12 (cut").unwrap();
        let cases = [(10, false), (11, true), (12, true), (13, true)];
        for (pid, gone) in cases {
            assert_eq!(is_zombie(root.path(), pid), gone, "{pid}");
        }
    }

    #[test]
    fn uptime_converts_to_ticks_exactly() {
        let cases: &[(&str, u64, Option<u64>)] = &[
            ("0.29 1.00\n", 100, Some(29)),
            ("1234.57 99.1\n", 100, Some(123457)),
            ("12345.67 0", 100, Some(1234567)),
            ("7 0", 100, Some(700)),
            ("3.5 0", 1000, Some(3500)),
            ("3.999 0", 100, Some(399)),
            ("", 100, None),
            ("x.10 0", 100, None),
            ("1.-1 0", 100, None),
        ];
        for (text, hz, want) in cases {
            assert_eq!(ticks_of_uptime(text, *hz), *want, "{text:?} at {hz} Hz");
        }
        // Every centisecond value of the first 2000 s converts to itself.
        for c in 0..200_000u64 {
            let text = format!("{}.{:02} 0", c / 100, c % 100);
            assert_eq!(ticks_of_uptime(&text, 100), Some(c), "{text}");
        }
    }

    #[test]
    fn tagged_processes_are_found_by_their_exact_tag() {
        let root = fake_proc(&[(10, 10, 1), (11, 10, 2), (12, 12, 3), (13, 13, 4)]);
        let env = |pid: i32, vars: &[&str]| {
            let mut bytes = Vec::new();
            for v in vars {
                bytes.extend_from_slice(v.as_bytes());
                bytes.push(0);
            }
            std::fs::write(root.path().join(pid.to_string()).join("environ"), bytes).unwrap();
        };
        env(10, &["PATH=/bin", "RUNBOOKD_RUN=h:1:a/7", "HOME=/"]);
        env(11, &["RUNBOOKD_RUN=h:1:a/7"]);
        env(12, &["RUNBOOKD_RUN=h:1:a/70"]);
        env(13, &["X=RUNBOOKD_RUN=h:1:a/7"]);
        let mut got = tagged(root.path(), &run_tag("h:1:a", 7));
        got.sort();
        assert_eq!(got, vec![10, 11]);
        assert!(tagged(root.path(), "h:1:b/7").is_empty());
    }

    #[test]
    fn group_members_table() {
        let g = Group {
            pgid: 100,
            leader_start: 5000,
        };
        // (processes as (pid, pgrp, start), started_before, expected members)
        let cases: &[(&[(i32, i32, u64)], Option<u64>, &[i32], &str)] = &[
            (
                &[(100, 100, 5000), (101, 100, 5100)],
                None,
                &[100, 101],
                "leader alive: the whole group",
            ),
            (
                &[(101, 100, 5100), (102, 100, 9000)],
                Some(6000),
                &[101],
                "leader gone: only members from its lifetime",
            ),
            (
                &[(100, 100, 9000)],
                Some(6000),
                &[],
                "the group id reused by a later leader",
            ),
            (
                &[(101, 100, 5100)],
                None,
                &[],
                "leader gone, no bound: touch nothing",
            ),
            (&[(200, 200, 5000)], Some(6000), &[], "another group"),
        ];
        for (procs, before, want, why) in cases {
            let root = fake_proc(procs);
            let mut got = members(root.path(), g, *before);
            got.sort();
            assert_eq!(got, *want, "{why}");
        }
    }
}
