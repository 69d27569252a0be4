//! Expected runs against actual ones, for one scheduled job over the
//! report's period: a dead-man's switch (a fire with no run is missed,
//! whatever the daemon knew), lateness, duplicates, failures, and runs far
//! from the job's own median. Pure: the fires, runs and median are given.
//!
//! Only fires after runbookd first saw the job are judged: before that no
//! daemon knew of it, so nothing was missed (a new install's first report
//! is not a wall of misses). A scheduler starts at the instant it loads a
//! job and runs the fires after it, so a fire at that very instant is not
//! its either.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{MissedFires, Run, RunId, RunStatus, Trigger};

/// What is unusual about a fire or a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The schedule said a run was due and none was recorded.
    Missed,
    /// The final attempt failed, timed out or was abandoned.
    Failed,
    /// Not started: the previous run was still going (`concurrency:
    /// forbid`).
    Skipped,
    /// More than one first attempt for one fire.
    Duplicate,
    /// Started well after its fire (a catch-up run always is).
    Late,
    /// Took far longer than the job's median.
    Slow,
    /// Took far less than the job's median (did it do its work?).
    Fast,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Missed => "missed",
            FindingKind::Failed => "failed",
            FindingKind::Skipped => "skipped",
            FindingKind::Duplicate => "duplicate",
            FindingKind::Late => "late",
            FindingKind::Slow => "slow",
            FindingKind::Fast => "fast",
        }
    }
}

/// One unusual fire or run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub job: String,
    pub kind: FindingKind,
    /// The fire it is about.
    pub fire: DateTime<Utc>,
    pub run: Option<RunId>,
    pub detail: String,
}

/// Findings of one kind for one job, together: a daemon that was down all
/// night is one line ("missed 96 runs"), not 96.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub job: String,
    pub kind: FindingKind,
    pub count: usize,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// The runs concerned, oldest first.
    pub runs: Vec<RunId>,
    /// The first finding's detail.
    pub detail: String,
}

/// Groups findings by job and kind (and, for missed fires, by reason),
/// worst kind first.
pub fn group(findings: &[Finding]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by(|a, b| (a.kind, &a.job, a.fire).cmp(&(b.kind, &b.job, b.fire)));
    for f in sorted {
        let same = |g: &Group| {
            g.job == f.job
                && g.kind == f.kind
                && (f.kind != FindingKind::Missed || g.detail == f.detail)
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => {
                g.count += 1;
                g.first = g.first.min(f.fire);
                g.last = g.last.max(f.fire);
                g.runs.extend(f.run);
            }
            None => groups.push(Group {
                job: f.job.clone(),
                kind: f.kind,
                count: 1,
                first: f.fire,
                last: f.fire,
                runs: f.run.into_iter().collect(),
                detail: f.detail.clone(),
            }),
        }
    }
    groups
}

/// One scheduled job's line of the ledger.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LedgerRow {
    pub job: String,
    pub schedule: String,
    pub suspended: bool,
    pub expected: u32,
    /// Fires with a run.
    pub ran: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub missed: u32,
    pub skipped: u32,
    pub late: u32,
    pub duplicate: u32,
    pub slow: u32,
    pub fast: u32,
    /// Still going at report time.
    pub running: u32,
    pub median: Option<Duration>,
    /// When runbookd first saw the job (a daemon loaded it, or a run by
    /// hand); `None`: never, so no fire is judged.
    pub first_seen: Option<DateTime<Utc>>,
    /// Fires of the period before `first_seen`: not judged.
    pub unseen: u32,
}

/// How far from the expected a run may be before it is a finding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// A run that starts later than this after its fire is late.
    pub late_after: Duration,
    /// Slower than `slow × median` is slow.
    pub slow: f64,
    /// Faster than `fast × median` is fast.
    pub fast: f64,
    /// Differences smaller than this are never slow or fast: noise.
    pub min_difference: Duration,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            late_after: Duration::from_secs(300),
            slow: 2.0,
            fast: 0.25,
            min_difference: Duration::from_secs(5),
        }
    }
}

/// The median duration of a job's succeeded runs, when there are enough
/// of them (5) to call one unusual.
pub fn median(runs: &[Run]) -> Option<Duration> {
    let mut d: Vec<Duration> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded && !r.dry_run)
        .filter_map(duration)
        .collect();
    if d.len() < 5 {
        return None;
    }
    d.sort();
    Some(d[d.len() / 2])
}

fn duration(r: &Run) -> Option<Duration> {
    (r.finished_at? - r.started_at).to_std().ok()
}

/// The ledger of one job. `fires` are the fires due in the period (the
/// newest few minutes excluded: not yet late), `runs` every run of the job
/// that started in the period or for a fire in it, `missed` the daemon's
/// records of fires it gave up. Of the fires, those after
/// `row.first_seen` are judged.
pub fn ledger(
    mut row: LedgerRow,
    fires: &[DateTime<Utc>],
    runs: &[Run],
    missed: &[MissedFires],
    tol: Tolerance,
) -> (LedgerRow, Vec<Finding>) {
    let (fires, unseen): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = fires
        .iter()
        .copied()
        .partition(|f| row.first_seen.is_some_and(|seen| *f > seen));
    row.unseen = unseen.len() as u32;
    let mut findings = Vec::new();
    let mut by_fire: BTreeMap<DateTime<Utc>, Vec<&Run>> = BTreeMap::new();
    for r in runs.iter().filter(|r| !r.dry_run) {
        if let (Some(at), Trigger::Schedule | Trigger::Catchup | Trigger::Retry) =
            (r.scheduled_for, r.trigger)
        {
            by_fire.entry(at).or_default().push(r);
        }
    }
    row.expected = fires.len() as u32;
    let mut finding = |kind, fire, run: Option<RunId>, detail: String| {
        findings.push(Finding {
            job: row.job.clone(),
            kind,
            fire,
            run,
            detail,
        })
    };
    for fire in fires {
        let Some(all) = by_fire.get(&fire) else {
            row.missed += 1;
            let why = missed
                .iter()
                .find(|m| m.job == row.job && m.first <= fire && fire <= m.last)
                .map(|m| format!("not run: {}", m.reason))
                .unwrap_or_else(|| {
                    "no run was recorded (was any daemon running and scheduling it?)".into()
                });
            finding(FindingKind::Missed, fire, None, why);
            continue;
        };
        row.ran += 1;
        let firsts: Vec<&&Run> = all.iter().filter(|r| r.attempt == 1).collect();
        if firsts.len() > 1 {
            row.duplicate += 1;
            let ids: Vec<String> = firsts.iter().map(|r| format!("{}", r.id)).collect();
            finding(
                FindingKind::Duplicate,
                fire,
                firsts.get(1).map(|r| r.id),
                format!("{} runs for one fire: {}", firsts.len(), ids.join(", ")),
            );
        }
        let first = firsts
            .iter()
            .min_by_key(|r| (r.started_at, r.id))
            .copied()
            .or_else(|| all.iter().min_by_key(|r| (r.started_at, r.id)))
            .expect("a fire with runs");
        let delay = (first.started_at - fire).to_std().unwrap_or_default();
        if first.trigger == Trigger::Catchup || delay > tol.late_after {
            row.late += 1;
            finding(
                FindingKind::Late,
                fire,
                Some(first.id),
                format!(
                    "started {} after its time{}",
                    crate::model::fmt_age(delay),
                    if first.trigger == Trigger::Catchup {
                        " (a catch-up run)"
                    } else {
                        ""
                    }
                ),
            );
        }
        let last = all
            .iter()
            .max_by_key(|r| (r.attempt, r.id))
            .expect("a fire with runs");
        match last.status {
            RunStatus::Succeeded => row.succeeded += 1,
            RunStatus::Running => row.running += 1,
            RunStatus::Skipped => {
                row.skipped += 1;
                finding(
                    FindingKind::Skipped,
                    fire,
                    Some(last.id),
                    last.error.clone().unwrap_or_else(|| "skipped".into()),
                );
            }
            RunStatus::Cancelled => {}
            RunStatus::Failed | RunStatus::TimedOut | RunStatus::Abandoned => {
                row.failed += 1;
                let attempts = if last.attempt > 1 {
                    format!(" after {} attempts", last.attempt)
                } else {
                    String::new()
                };
                finding(
                    FindingKind::Failed,
                    fire,
                    Some(last.id),
                    format!(
                        "{}{attempts}: {}",
                        last.status,
                        last.error.as_deref().unwrap_or("no error recorded")
                    ),
                );
            }
        }
        if let (Some(m), Some(d), RunStatus::Succeeded) = (row.median, duration(last), last.status)
        {
            let gap = if d > m { d - m } else { m - d };
            if gap >= tol.min_difference {
                let ratio = d.as_secs_f64() / m.as_secs_f64().max(0.001);
                let (kind, n) = if ratio > tol.slow {
                    (Some(FindingKind::Slow), &mut row.slow)
                } else if ratio < tol.fast {
                    (Some(FindingKind::Fast), &mut row.fast)
                } else {
                    (None, &mut row.slow)
                };
                if let Some(kind) = kind {
                    *n += 1;
                    finding(
                        kind,
                        fire,
                        Some(last.id),
                        format!(
                            "took {} against a median of {}",
                            crate::model::fmt_age(d),
                            crate::model::fmt_age(m)
                        ),
                    );
                }
            }
        }
    }
    (row, findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// A run, adjusted with chained calls.
    struct R(Run);

    impl R {
        fn fire(id: RunId, at: &str) -> Self {
            R(Run {
                id,
                job: "j".into(),
                trigger: Trigger::Schedule,
                triggered_by: "scheduler".into(),
                scheduled_for: Some(t(at)),
                started_at: t(at),
                finished_at: Some(t(at) + chrono::Duration::seconds(60)),
                status: RunStatus::Succeeded,
                attempt: 1,
                error: None,
                dry_run: false,
                owner: "h:1:x".into(),
                heartbeat_at: t(at),
                retry_of: None,
                log: None,
                log_truncated: false,
                checks: Vec::new(),
                steps: Vec::new(),
            })
        }
        fn started(mut self, secs: i64) -> Self {
            let d = self.0.finished_at.unwrap() - self.0.started_at;
            self.0.started_at += chrono::Duration::seconds(secs);
            self.0.finished_at = Some(self.0.started_at + d);
            self
        }
        fn took(mut self, secs: i64) -> Self {
            self.0.finished_at = Some(self.0.started_at + chrono::Duration::seconds(secs));
            self
        }
        fn status(mut self, s: RunStatus) -> Self {
            self.0.status = s;
            self.0.error = (s != RunStatus::Succeeded).then(|| format!("it {s}"));
            self
        }
        fn attempt(mut self, n: u32) -> Self {
            self.0.attempt = n;
            self.0.trigger = Trigger::Retry;
            self
        }
        fn catchup(mut self) -> Self {
            self.0.trigger = Trigger::Catchup;
            self
        }
        fn manual(mut self) -> Self {
            self.0.trigger = Trigger::Manual;
            self.0.scheduled_for = None;
            self
        }
    }

    const F1: &str = "2026-11-29T03:30:00Z";
    const F2: &str = "2026-11-30T03:30:00Z";

    fn row(median: Option<u64>) -> LedgerRow {
        LedgerRow {
            job: "j".into(),
            median: median.map(Duration::from_secs),
            first_seen: Some(t("2026-11-01T00:00:00Z")),
            ..Default::default()
        }
    }

    #[test]
    fn ledger_table() {
        use FindingKind::*;
        // (case, runs, median, findings)
        let cases: Vec<(&str, Vec<R>, Option<u64>, Vec<FindingKind>)> = vec![
            (
                "all ran",
                vec![R::fire(1, F1), R::fire(2, F2)],
                Some(60),
                vec![],
            ),
            ("one missed", vec![R::fire(1, F1)], None, vec![Missed]),
            (
                "a manual run is no fire",
                vec![R::fire(1, F1), R::fire(2, F2).manual()],
                None,
                vec![Missed],
            ),
            (
                "late",
                vec![R::fire(1, F1).started(600), R::fire(2, F2)],
                None,
                vec![Late],
            ),
            (
                "a little late is on time",
                vec![R::fire(1, F1).started(30), R::fire(2, F2)],
                None,
                vec![],
            ),
            (
                "caught up",
                vec![R::fire(1, F1).catchup().started(120), R::fire(2, F2)],
                None,
                vec![Late],
            ),
            (
                "failed after retries",
                vec![
                    R::fire(1, F1).status(RunStatus::Failed),
                    R::fire(2, F1).attempt(2).status(RunStatus::TimedOut),
                    R::fire(3, F2),
                ],
                None,
                vec![Failed],
            ),
            (
                "a retry that worked is no failure",
                vec![
                    R::fire(1, F1).status(RunStatus::Failed),
                    R::fire(2, F1).attempt(2),
                    R::fire(3, F2),
                ],
                None,
                vec![],
            ),
            (
                "duplicate",
                vec![R::fire(1, F1), R::fire(2, F1), R::fire(3, F2)],
                None,
                vec![Duplicate],
            ),
            (
                "skipped",
                vec![R::fire(1, F1).status(RunStatus::Skipped), R::fire(2, F2)],
                None,
                vec![Skipped],
            ),
            (
                "slow",
                vec![R::fire(1, F1).took(300), R::fire(2, F2)],
                Some(60),
                vec![Slow],
            ),
            (
                "fast",
                vec![R::fire(1, F1).took(2), R::fire(2, F2)],
                Some(60),
                vec![Fast],
            ),
            (
                "fast but within noise",
                vec![R::fire(1, F1).took(1), R::fire(2, F2).took(3)],
                Some(3),
                vec![],
            ),
            (
                "no median, no judgement",
                vec![R::fire(1, F1).took(9000), R::fire(2, F2)],
                None,
                vec![],
            ),
        ];
        for (case, runs, median, want) in cases {
            let runs: Vec<Run> = runs.into_iter().map(|r| r.0).collect();
            let (row, findings) = ledger(
                row(median),
                &[t(F1), t(F2)],
                &runs,
                &[],
                Tolerance::default(),
            );
            let got: Vec<FindingKind> = findings.iter().map(|f| f.kind).collect();
            assert_eq!(got, want, "{case}: {findings:#?}");
            assert_eq!(row.expected, 2, "{case}");
            assert_eq!(
                row.missed + row.ran,
                2,
                "{case}: every fire is ran or missed"
            );
        }
    }

    #[test]
    fn findings_group_by_job_and_kind() {
        let f = |job: &str, kind, at: &str, run: Option<RunId>, detail: &str| Finding {
            job: job.into(),
            kind,
            fire: t(at),
            run,
            detail: detail.into(),
        };
        let g = group(&[
            f("w", FindingKind::Missed, F2, None, "down"),
            f("w", FindingKind::Missed, F1, None, "down"),
            f("w", FindingKind::Missed, F2, None, "other reason"),
            f("w", FindingKind::Late, F1, Some(3), "10m late"),
            f("w", FindingKind::Late, F2, Some(4), "20m late"),
            f("d", FindingKind::Failed, F1, Some(5), "boom"),
        ]);
        let seen: Vec<_> = g
            .iter()
            .map(|g| (g.job.as_str(), g.kind, g.count, g.runs.clone()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("w", FindingKind::Missed, 2, vec![]),
                ("w", FindingKind::Missed, 1, vec![]),
                ("d", FindingKind::Failed, 1, vec![5]),
                ("w", FindingKind::Late, 2, vec![3, 4]),
            ]
        );
        assert_eq!((g[0].first, g[0].last), (t(F1), t(F2)));
    }

    #[test]
    fn a_missed_fire_carries_the_daemons_reason() {
        let missed = MissedFires {
            job: "j".into(),
            first: t(F1),
            last: t(F1),
            count: 1,
            reason: "the history store was unreachable".into(),
            recorded_at: t(F2),
        };
        let (row, f) = ledger(row(None), &[t(F1)], &[], &[missed], Tolerance::default());
        assert_eq!(row.missed, 1);
        assert_eq!(f[0].detail, "not run: the history store was unreachable");
    }

    #[test]
    fn only_fires_after_the_job_was_first_seen_are_judged() {
        let fires = [t(F1), t(F2)];
        // (first seen, expected, unseen): never seen judges nothing; seen
        // at a fire's very instant, that fire was not the scheduler's.
        let cases = [
            (None, 0, 2),
            (Some(t("2026-11-01T00:00:00Z")), 2, 0),
            (Some(t(F1)), 1, 1),
            (Some(t("2026-11-29T12:00:00Z")), 1, 1),
            (Some(t("2026-12-01T00:00:00Z")), 0, 2),
        ];
        for (seen, expected, unseen) in cases {
            let r = LedgerRow {
                first_seen: seen,
                ..row(None)
            };
            let (r, f) = ledger(r, &fires, &[], &[], Tolerance::default());
            assert_eq!((r.expected, r.unseen), (expected, unseen), "{seen:?}");
            assert_eq!(r.missed as usize, f.len(), "{seen:?}: {f:?}");
            assert_eq!(
                r.missed, expected,
                "{seen:?}: no runs, so each judged fire is missed"
            );
        }
    }

    #[test]
    fn the_median_needs_five_succeeded_runs() {
        let runs: Vec<Run> = (1..=4).map(|i| R::fire(i, F1).took(10 * i).0).collect();
        assert_eq!(median(&runs), None);
        let mut runs = runs;
        runs.push(R::fire(5, F1).took(50).0);
        runs.push(R::fire(6, F1).took(999).status(RunStatus::Failed).0);
        assert_eq!(median(&runs), Some(Duration::from_secs(30)));
    }
}
