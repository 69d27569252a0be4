//! Who is running a run: the owner recorded on each row, and the test for an
//! owner that has died, which lets a restart mark its runs `abandoned` at
//! once instead of waiting for the heartbeat to go stale.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub host: String,
    pub pid: u32,
    /// Random per process: in a container the new process is often pid 1
    /// again, so the pid alone cannot tell a restart from the same process.
    pub instance: String,
    /// The OS user, recorded as `triggered_by` for CLI runs.
    pub user: String,
}

impl Identity {
    pub fn current() -> Self {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown-host".to_string());
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| format!("uid:{}", nix::unistd::getuid()));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Identity {
            host,
            pid: std::process::id(),
            instance: format!("{:08x}", nanos ^ std::process::id().rotate_left(16)),
            user,
        }
    }

    pub fn owner(&self) -> String {
        format!("{}:{}:{}", self.host, self.pid, self.instance)
    }

    /// `triggered_by` for runs the daemon starts.
    pub fn scheduler(&self) -> String {
        format!("runbookd@{}", self.host)
    }

    /// True when `owner` was a process on this host that no longer exists.
    /// Owners on other hosts are judged by their heartbeat instead.
    pub fn owner_is_dead(&self, owner: &str, proc_root: &Path) -> bool {
        let mut parts = owner.rsplitn(3, ':');
        let (Some(instance), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        if host != self.host {
            return false;
        }
        let Ok(pid) = pid.parse::<u32>() else {
            return false;
        };
        if pid == self.pid {
            return instance != self.instance;
        }
        !proc_root.join(pid.to_string()).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_owner_table() {
        let me = Identity {
            host: "pod-a".into(),
            pid: 1,
            instance: "aaaa".into(),
            user: "root".into(),
        };
        let proc_root = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc_root.path().join("42")).unwrap();
        let cases = [
            ("pod-a:1:aaaa", false, "this very process"),
            ("pod-a:1:bbbb", true, "same pid, earlier incarnation"),
            ("pod-a:42:cccc", false, "another live process on this host"),
            ("pod-a:43:cccc", true, "a gone process on this host"),
            ("pod-b:43:cccc", false, "another host: heartbeat decides"),
            ("garbage", false, "unparseable"),
        ];
        for (owner, dead, why) in cases {
            assert_eq!(me.owner_is_dead(owner, proc_root.path()), dead, "{why}");
        }
    }
}
