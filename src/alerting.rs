//! Job failures as Alertmanager alerts: which alert a job's state calls
//! for, and the rule that keeps replicas from posting conflicting states.
//!
//! The alert follows the job's notify state in the history store (the
//! `notify_state` row its mail follows), under the job's own `notify` rule:
//! a job with `notify: never` is never alerted, one with `on_failure` or
//! `always` fires at the failure that is mailed and resolves at the
//! recovery that is mailed. Dry runs, cancelled and skipped runs change no
//! state, so they post nothing.
//!
//! The rule:
//! - Every post is built from the state read from the store just before
//!   it, never from what the poster remembers. Failing: a firing alert,
//!   `startsAt` the failure's time, `endsAt` [`ENDS_AFTER_RESENDS`] ×
//!   `resend` ahead (as Prometheus does, so an alert nobody refreshes
//!   resolves on its own). Recovered: a resolved alert, `endsAt` the
//!   recovery's time. Replicas reading the same row post the same alert
//!   (same labels, same times), so posting twice is harmless.
//! - The run that changes the state posts at once. The daemons'
//!   maintenance pass posts every `resend`: firing for each failing job,
//!   and resolved for each job recovered within [`resolved_window`].
//! - Resolved wins. A firing post can only be stale if it read the state
//!   before a recovery and reached Alertmanager after the resolved one;
//!   it arrived within its timeout of that read, and every pass of the
//!   window after it re-posts the resolved alert, so it stands at most
//!   until the next pass. A resolved post is never overruled by an older
//!   firing one for longer.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::adapters::alerts::{Alert, AlertError, AlertSink};
use crate::config::{AlertmanagerConfig, Config, JobConfig, Notify};
use crate::model::{CheckStatus, NotifyState, Run};
use crate::secret::Redactor;
use crate::store::{HistoryStore, StoreError};

/// The `alertname` of every job failure.
pub const ALERTNAME: &str = "RunbookdJobFailed";

/// A firing alert ends this many `resend`s after it is posted.
pub const ENDS_AFTER_RESENDS: u32 = 4;

/// Longest error text carried in an annotation; `runbookd show` has it all.
const ERROR_CHARS: usize = 1000;

/// How long after a recovery every pass re-posts the resolved alert: two
/// passes and a post's timeout, so at least one pass comes after any
/// firing post that was already on its way.
pub fn resolved_window(am: &AlertmanagerConfig) -> Duration {
    am.resend * 2 + am.timeout
}

/// Which states a post is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which<'a> {
    /// One job whose state a run just changed.
    Job(&'a str),
    /// Every job a maintenance pass re-posts.
    Due,
}

/// What a post carried, and how it went.
#[derive(Debug)]
pub struct Posted {
    pub firing: Vec<String>,
    pub resolved: Vec<String>,
    pub result: Result<(), AlertError>,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    #[error("cannot read the jobs' notify states for alerts: {0}")]
    Store(#[from] StoreError),
}

/// The states `which` asks to post, of jobs alerted (in the file, not
/// `notify: never`). Pure.
pub fn due<'s>(
    config: &Config,
    am: &AlertmanagerConfig,
    states: &'s [NotifyState],
    which: Which<'_>,
    now: DateTime<Utc>,
) -> Vec<&'s NotifyState> {
    let window = chrono::Duration::from_std(resolved_window(am)).unwrap_or_default();
    states
        .iter()
        .filter(|s| {
            config
                .jobs
                .get(&s.job)
                .is_some_and(|j| j.notify != Notify::Never)
        })
        .filter(|s| match which {
            Which::Job(job) => s.job == job,
            Which::Due => s.failing || s.since >= now - window,
        })
        .collect()
}

/// The labels of a job's alert: the configured ones and runbookd's own.
pub fn labels(job: &JobConfig, am: &AlertmanagerConfig) -> BTreeMap<String, String> {
    let mut l = am.labels.clone();
    l.insert("alertname".into(), ALERTNAME.into());
    l.insert("job".into(), job.name.clone());
    l.insert("severity".into(), job.severity.as_str().into());
    l
}

/// The alert a job's state calls for at `now`; `run` is the state's run
/// (the failure, or the recovery), when it can be read. Pure.
pub fn alert(
    config: &Config,
    am: &AlertmanagerConfig,
    job: &JobConfig,
    state: &NotifyState,
    run: Option<&Run>,
    redactor: &Redactor,
    now: DateTime<Utc>,
) -> Alert {
    let id = state.run_id;
    let mut names: Vec<&str> = run
        .map(|r| {
            r.checks
                .iter()
                .filter(|c| c.status != CheckStatus::Pass)
                .map(|c| c.check.as_str())
                .collect()
        })
        .unwrap_or_default();
    names.push(&job.name);
    let runbook = config.links.runbook(&names);
    let mut annotations = BTreeMap::new();
    if state.failing {
        let status = run.map(|r| format!(" {}", r.status)).unwrap_or_default();
        annotations.insert(
            "summary".to_string(),
            format!("runbookd job {} failed: run {id}{status}", job.name),
        );
        let error = run
            .and_then(|r| r.error.as_deref())
            .unwrap_or("no error recorded");
        annotations.insert(
            "description".to_string(),
            error.chars().take(ERROR_CHARS).collect(),
        );
    } else {
        annotations.insert(
            "summary".to_string(),
            format!("runbookd job {} recovered: run {id} succeeded", job.name),
        );
    }
    annotations.insert("details".to_string(), format!("runbookd show {id}"));
    if let Some(r) = &runbook {
        annotations.insert("runbook_url".to_string(), r.clone());
    }
    for v in annotations.values_mut() {
        *v = redactor.redact(v);
    }
    let generator_url = match &am.generator_url {
        Some(t) => Some(
            t.replace("{job}", &enc(&job.name))
                .replace("{run}", &id.to_string()),
        ),
        None => runbook.or_else(|| config.links.runbook.clone()),
    };
    // Re-posts come with the daemon's maintenance pass: never more often
    // than its heartbeat, whatever `resend` says (a default `resend` with
    // a long heartbeat).
    let every = am.resend.max(config.daemon.heartbeat);
    let ahead = chrono::Duration::from_std(every * ENDS_AFTER_RESENDS).unwrap_or_default();
    Alert {
        labels: labels(job, am),
        annotations,
        starts_at: state.since,
        ends_at: if state.failing {
            now + ahead
        } else {
            state.since
        },
        generator_url,
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Reads the states and posts, in one request, the alerts `which` asks
/// for. `None`: nothing to post.
pub async fn post(
    store: &dyn HistoryStore,
    sink: &dyn AlertSink,
    config: &Config,
    redactor: &Redactor,
    which: Which<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Posted>, AlertingError> {
    let Some(am) = &config.alertmanager else {
        return Ok(None);
    };
    let states = store.notify_states().await?;
    let chosen = due(config, am, &states, which, now);
    if chosen.is_empty() {
        return Ok(None);
    }
    let mut alerts = Vec::new();
    let (mut firing, mut resolved) = (Vec::new(), Vec::new());
    for s in chosen {
        let job = &config.jobs[&s.job];
        // The annotations are the run's; an alert without them still
        // fires, so a store that cannot read the run holds up nothing.
        let run = store.get_run(s.run_id).await.ok().flatten();
        alerts.push(alert(config, am, job, s, run.as_ref(), redactor, now));
        if s.failing {
            firing.push(s.job.clone());
        } else {
            resolved.push(s.job.clone());
        }
    }
    let result = sink.post_alerts(&am.url, &alerts, am.timeout).await;
    Ok(Some(Posted {
        firing,
        resolved,
        result,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Links, Severity};
    use crate::secret::SecretUrl;
    use crate::testkit::{ConfigBuilder, JobBuilder};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn state(job: &str, failing: bool, run_id: i64, since: &str) -> NotifyState {
        NotifyState {
            job: job.into(),
            failing,
            run_id,
            since: t(since),
        }
    }

    fn am() -> AlertmanagerConfig {
        let mut am = AlertmanagerConfig::new(SecretUrl::new("http://am:9093"));
        am.labels.insert("team".into(), "backend".into());
        am
    }

    fn config() -> Config {
        ConfigBuilder::new()
            .alertmanager(am())
            .links(Links {
                runbook: Some("https://git/RUNBOOK.md".into()),
                anchors: [("redis".to_string(), "issue-redis".to_string())].into(),
                ..Default::default()
            })
            .job(
                JobBuilder::command("daily", &["true"])
                    .notify(Notify::OnFailure, &["oncall@x"])
                    .severity(Severity::Critical),
            )
            .job(JobBuilder::command("quiet", &["true"]))
            .job(JobBuilder::command("loud", &["true"]).notify(Notify::Always, &["oncall@x"]))
            .build()
    }

    /// Which states each kind of post carries: (states, which, jobs posted).
    #[test]
    fn what_is_posted_table() {
        let c = config();
        let am = am();
        let now = t("2026-01-01T12:00:00Z");
        // resend 1m, timeout 10s: recovered within 2m10s is re-posted.
        let cases: Vec<(Vec<NotifyState>, Which, Vec<&str>)> = vec![
            (
                vec![state("daily", true, 1, "2026-01-01T00:00:00Z")],
                Which::Due,
                vec!["daily"],
            ),
            // A job that does not notify is not alerted, whatever its row.
            (
                vec![state("quiet", true, 1, "2026-01-01T11:59:00Z")],
                Which::Due,
                vec![],
            ),
            // A job gone from the file is left to expire.
            (
                vec![state("gone", true, 1, "2026-01-01T11:59:00Z")],
                Which::Due,
                vec![],
            ),
            (
                vec![
                    state("daily", false, 2, "2026-01-01T11:57:51Z"),
                    state("loud", false, 3, "2026-01-01T11:57:49Z"),
                ],
                Which::Due,
                vec!["daily"],
            ),
            (
                vec![
                    state("daily", false, 2, "2026-01-01T00:00:00Z"),
                    state("loud", true, 3, "2026-01-01T11:00:00Z"),
                ],
                Which::Job("daily"),
                vec!["daily"],
            ),
        ];
        for (states, which, want) in cases {
            let got: Vec<&str> = due(&c, &am, &states, which, now)
                .iter()
                .map(|s| s.job.as_str())
                .collect();
            assert_eq!(got, want, "{states:?} {which:?}");
        }
    }

    #[test]
    fn a_failing_state_fires_ahead_and_a_recovered_one_resolves_at_its_time() {
        let c = config();
        let am = am();
        let job = &c.jobs["daily"];
        let now = t("2026-01-01T12:00:00Z");
        let mut run = Run {
            id: 7,
            job: "daily".into(),
            trigger: crate::model::Trigger::Schedule,
            triggered_by: "scheduler".into(),
            scheduled_for: None,
            started_at: t("2026-01-01T10:59:00Z"),
            finished_at: Some(t("2026-01-01T11:00:00Z")),
            status: crate::model::RunStatus::TimedOut,
            attempt: 1,
            error: Some("timed out after 1m; token=hunter2".into()),
            dry_run: false,
            owner: "h:1:a".into(),
            heartbeat_at: t("2026-01-01T11:00:00Z"),
            retry_of: None,
            log: None,
            log_truncated: false,
            checks: Vec::new(),
            steps: Vec::new(),
        };
        run.checks.push(crate::model::CheckResult::new(
            "redis",
            CheckStatus::Fail,
            "down",
        ));
        let failing = state("daily", true, 7, "2026-01-01T11:00:00Z");
        let a = alert(
            &c,
            &am,
            job,
            &failing,
            Some(&run),
            &Redactor::default(),
            now,
        );
        assert_eq!(
            a.labels,
            BTreeMap::from([
                ("alertname".to_string(), "RunbookdJobFailed".to_string()),
                ("job".to_string(), "daily".to_string()),
                ("severity".to_string(), "critical".to_string()),
                ("team".to_string(), "backend".to_string()),
            ])
        );
        assert_eq!(
            a.annotations,
            BTreeMap::from([
                (
                    "summary".to_string(),
                    "runbookd job daily failed: run 7 timed_out".to_string()
                ),
                (
                    "description".to_string(),
                    "timed out after 1m; token=[REDACTED]".to_string()
                ),
                ("details".to_string(), "runbookd show 7".to_string()),
                (
                    "runbook_url".to_string(),
                    "https://git/RUNBOOK.md#issue-redis".to_string()
                ),
            ])
        );
        assert_eq!(a.starts_at, t("2026-01-01T11:00:00Z"));
        assert_eq!(a.ends_at, t("2026-01-01T12:04:00Z"));
        assert_eq!(
            a.generator_url.as_deref(),
            Some("https://git/RUNBOOK.md#issue-redis")
        );

        let recovered = state("daily", false, 9, "2026-01-01T11:30:00Z");
        let r = alert(&c, &am, job, &recovered, None, &Redactor::default(), now);
        assert_eq!(r.labels, a.labels, "the same alert, resolved");
        assert_eq!(r.starts_at, t("2026-01-01T11:30:00Z"));
        assert_eq!(r.ends_at, t("2026-01-01T11:30:00Z"));
        assert_eq!(
            r.annotations["summary"],
            "runbookd job daily recovered: run 9 succeeded"
        );

        // A console of one's own, with the job and the run in it.
        let mut own = am.clone();
        own.generator_url = Some("https://logs/search?job={job}&run={run}".into());
        let g = alert(&c, &own, job, &failing, None, &Redactor::default(), now);
        assert_eq!(
            g.generator_url.as_deref(),
            Some("https://logs/search?job=daily&run=7")
        );
        assert_eq!(g.annotations["description"], "no error recorded");
    }
}
