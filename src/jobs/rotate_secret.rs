//! `kind: rotate_secret`: the runbook's "Secrets Rotation", following
//! Secrets Manager's protocol.
//!
//! 1. The deployment is checked first: a paused deployment, or one still
//!    rolling out, is refused before the secret is touched.
//! 2. createSecret: a new value from the OS CSPRNG (32 bytes, hex, by
//!    default), known to the redactor before anything could print it,
//!    written with `PutSecretValue` as `AWSPENDING` under a UUID
//!    `ClientRequestToken`.
//! 3. finishSecret: `AWSCURRENT` moves to it (Secrets Manager puts
//!    `AWSPREVIOUS` on the old version); the leftover `AWSPENDING` goes.
//! 4. An ExternalSecret, if named, is told to sync now.
//! 5. The deployment restarts (`kubectl rollout restart`) and the rollout
//!    is waited for; then the `verify` checks run.
//!
//! If 5 fails, `AWSCURRENT` goes back to the old version, the deployment
//! restarts again, and the run fails saying so. A rerun after a crash is
//! safe: a pending version that never became current is removed and the
//! rotation starts afresh; one that did (the crash came after step 3) is
//! finished: its `AWSPENDING` removed, then the restart and checks run.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Timelike;
use serde::Deserialize;

use super::procedure::{self, Done, Poll, StepError};
use super::rollout::{deployment_path, ready_to_change, restart_and_wait};
use super::{ExecEnv, Job, JobError, JobKind, Outcome, RunContext};
use crate::adapters::Adapters;
use crate::adapters::aws::{SecretInfo, Target};
use crate::checks::{self, CheckConfig, CheckContext};
use crate::clock::Clock;
use crate::config::JobSpec;
use crate::model::{Dur, Record};
use crate::secret::Secret;
use crate::yaml::{At, Diags, Ident};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Hex,
    Base64,
}

crate::words! { Encoding { Hex = "hex", Base64 = "base64" } }

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateSpec {
    /// Name or ARN of the secret. Required.
    pub secret_id: Ident,
    /// AWS region. Default: the standard chain.
    pub region: Option<Ident>,
    /// Random bytes in the new value. Default 32.
    pub bytes: Option<At<usize>>,
    /// `hex` (default) or `base64`.
    pub encoding: Option<Encoding>,
    /// The deployment that reads the secret. Required.
    pub deployment: Ident,
    /// Default `default`.
    pub namespace: Option<Ident>,
    /// An ExternalSecret to force-sync before the restart. Default: none.
    pub external_secret: Option<Ident>,
    /// How long each rollout may take. Default `10m`.
    pub rollout_timeout: Option<Dur>,
    /// How long the External Secrets operator may take to write the new
    /// value after `force-sync`. Default `2m`.
    pub sync_timeout: Option<Dur>,
    /// How often the rollout is looked at. Default `2s`.
    pub poll: Option<Dur>,
    /// Checks that must pass once the deployment runs with the new value
    /// (the checklist's kinds). Default: none.
    pub verify: Option<At<Vec<CheckConfig>>>,
}

impl RotateSpec {
    fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

impl JobSpec for RotateSpec {
    fn validate(&self, _job: &str, diags: &mut Diags) {
        if let Some(b) = self.bytes
            && !(16..=4096).contains(&b.value)
        {
            diags.at(b.at, "bytes must be between 16 and 4096");
        }
        if let Some(v) = &self.verify {
            checks::validate_list(&v.value, v.at, diags);
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl JobKind for RotateSpec {
    fn executor(&self, env: &ExecEnv) -> Arc<dyn Job> {
        Arc::new(RotateJob {
            spec: self.clone(),
            adapters: env.adapters.clone(),
            clock: env.clock.clone(),
        })
    }
}

#[derive(Debug)]
pub struct RotateJob {
    spec: RotateSpec,
    adapters: Arc<Adapters>,
    clock: Arc<dyn Clock>,
}

/// No secret is made without the OS's randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the OS random source failed")]
pub struct NoRandomness;

/// Bytes from the OS CSPRNG.
fn random(n: usize) -> Result<Vec<u8>, NoRandomness> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| NoRandomness)?;
    Ok(buf)
}

/// A random (version 4) UUID, for `ClientRequestToken`.
pub fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn encode(bytes: &[u8], e: Encoding) -> String {
    match e {
        Encoding::Hex => bytes.iter().map(|x| format!("{x:02x}")).collect(),
        Encoding::Base64 => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(bytes)
        }
    }
}

/// What a rerun finds of an earlier rotation. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// Nothing pending: a fresh rotation.
    None,
    /// A pending version that never became current: remove its stage and
    /// rotate afresh.
    Abandoned(String),
    /// The pending version is already current: finish (remove the stage),
    /// then restart and verify; no new value.
    Finished(String),
}

pub fn leftover(info: &SecretInfo) -> Leftover {
    match (
        info.version_with("AWSPENDING"),
        info.version_with("AWSCURRENT"),
    ) {
        (None, _) => Leftover::None,
        (Some(p), Some(c)) if p == c => Leftover::Finished(p.to_string()),
        (Some(p), _) => Leftover::Abandoned(p.to_string()),
    }
}

impl RotateJob {
    fn target(&self) -> Target {
        Target {
            region: self.spec.region.as_ref().map(|r| r.to_string()),
        }
    }

    fn secret(&self) -> String {
        format!("secret:{}", self.spec.secret_id)
    }

    fn rollout_timeout(&self) -> Duration {
        self.spec
            .rollout_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(600))
    }

    fn poll(&self) -> Duration {
        self.spec
            .poll
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(2))
    }

    async fn move_stage(
        &self,
        ctx: &RunContext,
        step: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), JobError> {
        let id = self.spec.secret_id.as_str();
        let call = format!(
            "secretsmanager:UpdateSecretVersionStage SecretId={id} VersionStage={stage}{}{}",
            to.map(|t| format!(" MoveToVersionId={t}"))
                .unwrap_or_default(),
            from.map(|f| format!(" RemoveFromVersionId={f}"))
                .unwrap_or_default()
        );
        let target = self.target();
        procedure::step(ctx, step, &self.secret(), &call, || async {
            procedure::aws(Duration::from_secs(1), &ctx.cancel, || {
                self.adapters
                    .secrets
                    .move_stage(&target, id, stage, to, from)
            })
            .await?;
            Ok(Done::new(
                (),
                match to {
                    Some(t) => format!("{stage} is on version {t}"),
                    None => format!("{stage} removed"),
                },
            ))
        })
        .await?;
        Ok(())
    }

    async fn sync_and_restart(&self, ctx: &RunContext) -> Result<(), JobError> {
        let ns = self.spec.namespace();
        if let Some(es) = &self.spec.external_secret {
            let now = self.clock.now().timestamp().to_string();
            procedure::step(
                ctx,
                "force-sync",
                &format!("externalsecret/{es} in {ns}"),
                &format!(
                    "PATCH /apis/external-secrets.io/v1beta1/namespaces/{ns}/externalsecrets/{es} (merge) {{\"metadata\":{{\"annotations\":{{\"force-sync\":\"{now}\"}}}}}}"
                ),
                || async {
                    self.adapters
                        .cluster
                        .annotate_external_secret(ns, es, "force-sync", &now)
                        .await
                        ?;
                    Ok(Done::new((), "the operator will refresh it now"))
                },
            )
            .await?;
            // Pods restarted before the operator wrote the Secret would
            // start with the old value, and the rotation would look done.
            let since = self
                .clock
                .now()
                .with_nanosecond(0)
                .unwrap_or_else(|| self.clock.now());
            let limit = self
                .spec
                .sync_timeout
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(120));
            procedure::step(
                ctx,
                "wait-secret-sync",
                &format!("externalsecret/{es} in {ns}"),
                &format!(
                    "GET /apis/external-secrets.io/v1beta1/namespaces/{ns}/externalsecrets/{es} until status.refreshTime >= {} and Ready",
                    since.to_rfc3339()
                ),
                || async {
                    procedure::wait_for(ctx, "the ExternalSecret to refresh", self.poll(), limit, || async {
                        let s = self
                            .adapters
                            .cluster
                            .external_secret_sync(ns, es)
                            .await
                            ?;
                        let fresh = s.refreshed_at.is_some_and(|t| t >= since);
                        match (fresh, s.ready) {
                            (true, Some((false, why))) => Err(StepError::found(format!(
                                "ExternalSecret {es} refreshed but is not Ready: {why}"
                            ))),
                            (true, _) => Ok(Poll::Done(())),
                            (false, _) => Ok(Poll::Waiting(match s.refreshed_at {
                                Some(t) => format!("last refreshed {}", t.to_rfc3339()),
                                None => "never refreshed".into(),
                            })),
                        }
                    })
                    .await
                    .map_err(|e| e.context(format!("the Secret was not rewritten from {es}, so a restart would not pick up the new value")))
                    .map(|()| Done::new((), "refreshed from the provider"))
                },
            )
            .await?;
        }
        restart_and_wait(
            ctx,
            &self.adapters.cluster,
            &self.clock,
            ns,
            &self.spec.deployment,
            self.rollout_timeout(),
            self.poll(),
        )
        .await
    }

    /// The verify checks; a failing or erroring one fails the rotation.
    async fn verify(&self, ctx: &RunContext, records: &mut Vec<Record>) -> Result<(), JobError> {
        let Some(list) = &self.spec.verify else {
            return Ok(());
        };
        let names: Vec<&str> = list.value.iter().map(|c| c.name.as_str()).collect();
        let results = procedure::step(
            ctx,
            "verify",
            &format!("{} check(s)", list.value.len()),
            &format!("checks {}", names.join(", ")),
            || async {
                let cctx = CheckContext::new(self.clock.now(), self.adapters.clone())
                    .with_redactor(ctx.redactor.clone());
                let results = checks::run_all(&list.value, &cctx, 8).await;
                let (ok, summary) = checks::summarize(&results);
                if ok {
                    Ok(Done::new(results, summary))
                } else {
                    Err(StepError::found(format!("verification failed: {summary}")))
                }
            },
        )
        .await;
        match results {
            Ok(Some(r)) => {
                records.extend(r.into_iter().map(Record::Check));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Job for RotateJob {
    async fn run(&self, ctx: &RunContext) -> Result<Outcome, JobError> {
        let id = self.spec.secret_id.as_str();
        let (ns, dep) = (self.spec.namespace(), self.spec.deployment.as_str());
        let target = self.target();
        let mut records = Vec::new();

        // What an earlier, interrupted rotation left.
        let info = procedure::step(
            ctx,
            "inspect-secret",
            &self.secret(),
            &format!("secretsmanager:DescribeSecret SecretId={id}"),
            || async {
                let info = procedure::aws(Duration::from_secs(1), &ctx.cancel, || {
                    self.adapters.secrets.describe(&target, id)
                })
                .await?;
                let current = info
                    .version_with("AWSCURRENT")
                    .unwrap_or("none")
                    .to_string();
                Ok(Done::new(info, format!("AWSCURRENT is version {current}")))
            },
        )
        .await?;
        let previous = info
            .as_ref()
            .and_then(|i| i.version_with("AWSCURRENT").map(str::to_string));
        let left = info.as_ref().map(leftover).unwrap_or(Leftover::None);

        // Nothing changes before the deployment is known to take a restart.
        procedure::step(
            ctx,
            "check-deployment",
            &format!("deployment/{dep} in {ns}"),
            &format!("GET {}", deployment_path(ns, dep)),
            || async {
                let d = self
                    .adapters
                    .cluster
                    .deployment(ns, dep)
                    .await?
                    .ok_or_else(|| {
                        StepError::found(format!("no deployment `{dep}` in namespace `{ns}`"))
                    })?;
                ready_to_change(&d)
                    .map_err(|e| StepError::found(format!("refusing to rotate: {e}")))?;
                Ok(Done::new((), "ready for a restart"))
            },
        )
        .await?;

        let (new, old) = match left {
            Leftover::Finished(v) => {
                ctx.log.info(&format!(
                    "an earlier rotation made version {v} current and stopped; finishing it"
                ));
                self.move_stage(ctx, "clear-pending", "AWSPENDING", None, Some(&v))
                    .await?;
                let old = info
                    .as_ref()
                    .and_then(|i| i.version_with("AWSPREVIOUS").map(str::to_string));
                (v, old)
            }
            left => {
                if let Leftover::Abandoned(v) = left {
                    ctx.log.info(&format!(
                        "an earlier rotation left version {v} pending and never made it current; removing it"
                    ));
                    self.move_stage(ctx, "remove-abandoned", "AWSPENDING", None, Some(&v))
                        .await?;
                }
                let bytes = self.spec.bytes.map(|b| b.value).unwrap_or(32);
                let value = encode(
                    &random(bytes).map_err(|e| JobError::Failed(e.to_string()))?,
                    self.spec.encoding.unwrap_or_default(),
                );
                // Before the value goes anywhere, everything scrubs it.
                ctx.redactor.add(&value);
                let value = Secret::new(value);
                let token = uuid_v4();
                let new = procedure::step(
                    ctx,
                    "create-secret",
                    &self.secret(),
                    &format!(
                        "secretsmanager:PutSecretValue SecretId={id} ClientRequestToken={} SecretString=<{bytes} random bytes, {:?}> VersionStages=AWSPENDING",
                        if ctx.dry_run { "<new UUID>" } else { &token },
                        self.spec.encoding.unwrap_or_default()
                    ),
                    || async {
                        let v = procedure::aws(Duration::from_secs(1), &ctx.cancel, || {
                            self.adapters
                                .secrets
                                .put_pending(&target, id, &token, &value)
                        })
                        .await
                        ?;
                        Ok(Done::new(v.clone(), format!("version {v} staged AWSPENDING"))
                            .payload(serde_json::json!({"version": v, "client_request_token": token})))
                    },
                )
                .await?
                .unwrap_or_else(|| "<new version>".to_string());
                let old = previous.clone();
                self.move_stage(
                    ctx,
                    "finish-secret",
                    "AWSCURRENT",
                    Some(&new),
                    // A secret with no AWSCURRENT has nothing to remove it
                    // from; the placeholder is only for a dry run's print.
                    match (&old, ctx.dry_run) {
                        (Some(o), _) => Some(o.as_str()),
                        (None, true) => Some("<current version>"),
                        (None, false) => None,
                    },
                )
                .await?;
                self.move_stage(ctx, "clear-pending", "AWSPENDING", None, Some(&new))
                    .await?;
                (new, old)
            }
        };

        let applied = async {
            self.sync_and_restart(ctx).await?;
            self.verify(ctx, &mut records).await
        }
        .await;
        // A wait that noticed the cancel first fails rather than cancels:
        // either way it is a cancel, not a failure to roll back from.
        let applied = match applied {
            Err(_) if ctx.cancel.is_cancelled() => Err(JobError::Cancelled),
            other => other,
        };
        match applied {
            Ok(()) => Ok(Outcome {
                summary: Some(if ctx.dry_run {
                    format!("dry run: nothing changed; would rotate {id} and restart {dep}")
                } else {
                    format!(
                        "rotated {id}: version {new} is AWSCURRENT; {dep} restarted and verified"
                    )
                }),
                records,
                ..Default::default()
            }),
            Err(JobError::Cancelled) => {
                if !ctx.dry_run {
                    // No rollback on a cancel (the operator wants it to
                    // stop), so say exactly where it stopped.
                    let ns = self.spec.namespace();
                    let back = match &old {
                        Some(old) => format!(
                            "; or roll back with `aws secretsmanager update-secret-version-stage --secret-id {id} --version-stage AWSCURRENT --move-to-version-id {old} --remove-from-version-id {new}` and restart again"
                        ),
                        None => String::new(),
                    };
                    ctx.log.record(&format!(
                        "cancelled after the rotation: AWSCURRENT of {id} is version {new}, and {dep} may be only partly restarted onto it; finish with `kubectl -n {ns} rollout restart deployment/{dep}`{back}"
                    ));
                }
                Err(JobError::Cancelled)
            }
            Err(JobError::Failed(cause)) => {
                let Some(old) = old else {
                    return Err(JobError::Failed(format!(
                        "{cause}; there is no previous version to roll back to: AWSCURRENT stays on {new}"
                    )));
                };
                ctx.log
                    .info(&format!("rolling back: AWSCURRENT back to version {old}"));
                let back = async {
                    self.move_stage(ctx, "rollback-secret", "AWSCURRENT", Some(&old), Some(&new))
                        .await?;
                    self.sync_and_restart(ctx).await
                }
                .await;
                match back {
                    Ok(()) => Ok(Outcome {
                        failure: Some(format!(
                            "rotation rolled back: {cause}; AWSCURRENT is back on version {old} and {dep} restarted with it"
                        )),
                        records,
                        ..Default::default()
                    }),
                    Err(e) => Err(JobError::Failed(format!(
                        "{cause}; and the rollback failed too ({e}): AWSCURRENT may still be on version {new}; put it back with `aws secretsmanager update-secret-version-stage --secret-id {id} --version-stage AWSCURRENT --move-to-version-id {old} --remove-from-version-id {new}` and restart {dep}"
                    ))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::aws::SecretVersion;

    fn info(versions: &[(&str, &[&str])]) -> SecretInfo {
        SecretInfo {
            versions: versions
                .iter()
                .map(|(id, stages)| SecretVersion {
                    id: id.to_string(),
                    stages: stages.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_rerun_reads_what_a_crash_left() {
        let cases: &[(&[(&str, &[&str])], Leftover)] = &[
            (&[("v1", &["AWSCURRENT"])], Leftover::None),
            (
                &[("v1", &["AWSCURRENT"]), ("v2", &["AWSPENDING"])],
                Leftover::Abandoned("v2".into()),
            ),
            (
                &[
                    ("v1", &["AWSPREVIOUS"]),
                    ("v2", &["AWSCURRENT", "AWSPENDING"]),
                ],
                Leftover::Finished("v2".into()),
            ),
        ];
        for (versions, want) in cases {
            assert_eq!(leftover(&info(versions)), *want, "{versions:?}");
        }
    }

    #[test]
    fn new_values_are_random_and_well_formed() {
        let a = encode(&random(32).unwrap(), Encoding::Hex);
        let b = encode(&random(32).unwrap(), Encoding::Hex);
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        // The RFC 4122 variant, lowercase hex in 8-4-4-4-12, a new one each
        // time.
        assert!("89ab".contains(&u[19..20]), "{u}");
        let groups: Vec<usize> = u.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{u}");
        assert!(
            u.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{u}"
        );
        assert_ne!(u, uuid_v4());
    }
}
