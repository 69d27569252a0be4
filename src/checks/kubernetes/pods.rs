//! One judgement of a pod, used by the `kubernetes` check and by triage:
//! finished pods (Succeeded, Failed: Evicted) are listed, not counted; a
//! pod younger than [`STARTING_GRACE`] that is not Ready and not crash
//! looping is starting, not failing; every other pod not Ready is not
//! Ready.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;

use super::k8s_time;

/// What a pod is, for counting: [`PodRow::health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PodHealth {
    Ready,
    /// Young, not Ready yet, not crash looping.
    Starting,
    NotReady,
    /// Succeeded or Failed (evicted, completed): no longer serving.
    Finished,
}

fn name_of(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// A pod as runbookd judges it: the same for the `kubernetes` check and
/// for triage, so the morning checklist and a triage of the same minute
/// never disagree about a pod.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PodRow {
    pub name: String,
    pub phase: String,
    /// Why the pod itself ended (`Evicted`…), for a finished pod.
    pub reason: Option<String>,
    pub ready: bool,
    pub restarts: i32,
    /// Why a container is waiting (CrashLoopBackOff, ImagePullBackOff…).
    pub waiting: Option<String>,
    /// The last termination: reason, exit code, when.
    pub last_end: Option<(String, i32, Option<DateTime<Utc>>)>,
    /// The container whose log tells most: the one that ended last, else
    /// the one waiting, else the first.
    pub container: String,
    pub node: Option<String>,
    pub created: Option<DateTime<Utc>>,
}

/// A pod this young that is not Ready yet is starting, not failing
/// (unless it is already crash looping).
pub const STARTING_GRACE: chrono::Duration = chrono::Duration::minutes(2);

impl PodRow {
    /// The one judgement: see the module. Pure.
    pub fn health(&self, now: DateTime<Utc>) -> PodHealth {
        if self.finished() {
            PodHealth::Finished
        } else if self.ready {
            PodHealth::Ready
        } else if self.starting(now) {
            PodHealth::Starting
        } else {
            PodHealth::NotReady
        }
    }

    /// Why a pod that is not Ready is not: what a container waits on, how
    /// it last ended, else its phase.
    pub fn why_not_ready(&self) -> String {
        self.waiting
            .clone()
            .or_else(|| self.last_end.as_ref().map(|(why, _, _)| why.clone()))
            .unwrap_or_else(|| self.phase.clone())
    }

    /// `Succeeded` or `Failed` (evicted, completed): listed until garbage
    /// collected, no longer serving.
    pub fn finished(&self) -> bool {
        self.phase == "Succeeded" || self.phase == "Failed"
    }

    pub fn starting(&self, now: DateTime<Utc>) -> bool {
        !self.ready
            && self.waiting.as_deref() != Some("CrashLoopBackOff")
            && self.created.is_some_and(|c| now - c < STARTING_GRACE)
    }

    pub fn ended_recently(&self, now: DateTime<Utc>) -> bool {
        self.last_end
            .as_ref()
            .and_then(|(_, _, at)| *at)
            .is_some_and(|at| now - at < chrono::Duration::hours(1))
    }

    /// OOMKilled in the last hour: an old kill of a pod stable since is
    /// history, not the incident.
    pub fn oom_recently(&self, now: DateTime<Utc>) -> bool {
        self.ended_recently(now)
            && self
                .last_end
                .as_ref()
                .is_some_and(|(why, _, _)| why == "OOMKilled")
    }

    /// Not Ready (and not just starting), or ended in the last hour: its
    /// log is worth reading.
    pub fn troubled(&self, now: DateTime<Utc>) -> bool {
        !self.finished() && ((!self.ready && !self.starting(now)) || self.ended_recently(now))
    }
}

pub fn pod_rows(pods: &[Pod]) -> Vec<PodRow> {
    let mut rows: Vec<PodRow> = pods
        .iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            // Init containers first: one crash looping holds the pod back.
            let containers: Vec<_> = status
                .init_container_statuses
                .clone()
                .unwrap_or_default()
                .into_iter()
                .chain(status.container_statuses.clone().unwrap_or_default())
                .collect();
            let ready = status
                .conditions
                .as_ref()
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let waiting = containers.iter().find_map(|c| {
                let reason = c.state.as_ref()?.waiting.as_ref()?.reason.clone()?;
                Some((reason, c.name.clone()))
            });
            // The newest end of any container, current or last state.
            let last_end = containers
                .iter()
                .flat_map(|c| {
                    [c.state.as_ref(), c.last_state.as_ref()]
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.terminated.as_ref())
                        .map(move |t| (t, c.name.clone()))
                })
                .map(|(t, name)| {
                    (
                        t.reason.clone().unwrap_or_else(|| "Terminated".into()),
                        t.exit_code,
                        t.finished_at.as_ref().and_then(k8s_time),
                        name,
                    )
                })
                .max_by_key(|(_, _, at, _)| *at);
            let first = p
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let container = last_end
                .as_ref()
                .map(|(_, _, _, n)| n.clone())
                .or(waiting.as_ref().map(|(_, n)| n.clone()))
                .unwrap_or(first);
            PodRow {
                name: name_of(p),
                phase: status.phase.clone().unwrap_or_else(|| "Unknown".into()),
                reason: status.reason.clone(),
                ready,
                restarts: containers.iter().map(|c| c.restart_count).sum(),
                waiting: waiting.map(|(w, _)| w),
                last_end: last_end.map(|(r, c, at, _)| (r, c, at)),
                container,
                node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
                created: p.metadata.creation_timestamp.as_ref().and_then(k8s_time),
            }
        })
        .collect();
    // Trouble first: serving pods not ready, then most restarts; finished
    // pods last.
    rows.sort_by(|a, b| {
        a.finished()
            .cmp(&b.finished())
            .then(a.ready.cmp(&b.ready))
            .then(b.restarts.cmp(&a.restarts))
            .then(a.name.cmp(&b.name))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::pods::PodBuilder;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn health_table() {
        let now = t("2026-11-30T09:00:00Z");
        let young = t("2026-11-30T08:59:00Z");
        let old = t("2026-11-30T08:00:00Z");
        let cases = [
            (
                "ready",
                PodBuilder::new("a").ready().created(old),
                PodHealth::Ready,
            ),
            (
                "ready and young",
                PodBuilder::new("a").ready().created(young),
                PodHealth::Ready,
            ),
            (
                "not ready, old",
                PodBuilder::new("a").created(old),
                PodHealth::NotReady,
            ),
            (
                "not ready, young",
                PodBuilder::new("a").created(young),
                PodHealth::Starting,
            ),
            (
                "crash looping, young",
                PodBuilder::new("a").crash_looping().created(young),
                PodHealth::NotReady,
            ),
            (
                "not ready, no creation time",
                PodBuilder::new("a"),
                PodHealth::NotReady,
            ),
            (
                "evicted",
                PodBuilder::new("a").evicted().created(old),
                PodHealth::Finished,
            ),
            (
                "succeeded",
                PodBuilder::new("a").succeeded().created(old),
                PodHealth::Finished,
            ),
        ];
        for (what, pod, want) in cases {
            let rows = pod_rows(&[pod.build()]);
            assert_eq!(rows[0].health(now), want, "{what}");
        }
    }
}
