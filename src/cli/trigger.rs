//! Runs through the daemons: `trigger` (and `--wait` to follow it),
//! `pause`, `resume`. Everything goes through the history store the
//! daemons share; nothing here talks to a daemon directly.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use super::commands::parse_duration;
use super::commands::{load, open_store};
use super::render;
use super::{Cli, CliError, Result, TriggerArgs};
use crate::clock::{Clock, SystemClock};
use crate::config::JobConfig;
use crate::identity::Identity;
use crate::model::{
    NewRequest, Params, Pause, Request, RequestFilter, RequestId, RequestStatus, Run, RunId,
    RunStatus,
};
use crate::store::{HistoryStore, RunFilter};

/// How long `--wait` waits for a replica to take the request.
const TAKE_WITHIN: Duration = Duration::from_secs(60);
/// A request's lifetime (`--expires-in`) is between these.
const LIFETIME_MIN: Duration = Duration::from_secs(1);
const LIFETIME_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often `--wait` looks at the request and then the run.
const POLL: Duration = Duration::from_millis(300);

fn parse_params(raw: &[String]) -> Result<Params> {
    raw.iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(CliError::Usage(format!(
                "--param `{p}`: write it as KEY=VALUE, e.g. --param only=redis"
            ))),
        })
        .collect()
}

pub async fn trigger(cli: &Cli, args: &TriggerArgs) -> Result<()> {
    let name = args.job.as_str();
    let config = load(cli)?;
    let job = config.job(name)?;
    let params = parse_params(&args.params)?;
    let lifetime = parse_duration("--expires-in", &args.expires_in, LIFETIME_MIN, LIFETIME_MAX)?;
    // Checked here too, so a typo fails at once rather than in a daemon.
    job.spec
        .accepts(&params)
        .map_err(|e| CliError::Usage(format!("`{name}`: {e}")))?;
    job.check_confirmed(args.confirm, args.dry_run)
        .map_err(|e| CliError::Usage(format!("`{name}`: {e}")))?;
    let store = open_store(cli, &config).await?;
    let by = args
        .requested_by
        .clone()
        .unwrap_or_else(|| Identity::current().user);
    let now = SystemClock.now();
    let expires_at = now + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::MAX);
    let id = store
        .request_run(&NewRequest {
            job: name.to_string(),
            params,
            requested_by: by.clone(),
            reason: args.reason.clone(),
            dry_run: args.dry_run,
            requested_at: now,
            expires_at: Some(expires_at),
            confirmed: args.confirm,
        })
        .await?;
    render::note(&format!(
        "request #{id}: `{name}` queued for the daemons on {} (by {by}); it expires unstarted at {} (`runbookd withdraw {id}` takes it back)",
        store.url(),
        render::fmt_time(expires_at),
    ));
    if !args.wait {
        render::say(&id.to_string())?;
        return Ok(());
    }
    let run = taken(store.as_ref(), id, &by, TAKE_WITHIN.min(lifetime)).await?;
    let last = follow(store.as_ref(), run, job, config.daemon.stale_after).await?;
    render::run_end(
        Some(&last),
        last.id,
        name,
        last.status,
        last.attempt,
        last.error.as_deref(),
    )?;
    match last.status {
        RunStatus::Succeeded => Ok(()),
        status => Err(CliError::JobFailed {
            id: last.id,
            job: name.to_string(),
            status,
        }),
    }
}

/// Waits for a replica to take the request; the run it started. Past
/// `within`, the request is withdrawn, atomically against a daemon taking
/// it: either a daemon has it (and it is followed) or it never runs.
async fn taken(
    store: &dyn HistoryStore,
    id: RequestId,
    by: &str,
    within: Duration,
) -> Result<RunId> {
    let deadline = tokio::time::Instant::now() + within;
    let mut withdrawn = false;
    loop {
        let r = store
            .get_request(id)
            .await?
            .ok_or_else(|| CliError::Refused(format!("request #{id} is gone from the store")))?;
        match (r.status, r.run_id) {
            (RequestStatus::Started, Some(run)) => {
                render::note(&format!(
                    "run {run} started by {}",
                    r.taken_by.as_deref().unwrap_or("a daemon")
                ));
                return Ok(run);
            }
            (RequestStatus::Started, None) => {}
            (RequestStatus::Pending, _) => {}
            _ => return Err(CliError::Refused(fate(&r))),
        }
        if tokio::time::Instant::now() >= deadline && !withdrawn {
            let why = format!(
                "`trigger --wait` gave up: no daemon took it within {}",
                humantime::format_duration(within)
            );
            if store
                .withdraw_request(id, by, &why, SystemClock.now())
                .await?
                .is_some()
            {
                return Err(CliError::Refused(format!(
                    "no daemon took request #{id} within {}, so it was withdrawn: it will never run. Is `runbookd serve` running against {}?",
                    humantime::format_duration(within),
                    store.url()
                )));
            }
            // A daemon took it meanwhile: follow it.
            withdrawn = true;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What became of a request that did not start, in a sentence.
fn fate(r: &Request) -> String {
    let why = r.error.as_deref().unwrap_or("no reason recorded");
    match r.status {
        RequestStatus::Refused => format!(
            "request #{} refused by {}: {why}",
            r.id,
            r.taken_by.as_deref().unwrap_or("a daemon")
        ),
        RequestStatus::Expired => format!("request #{} expired: {why}; it will never run", r.id),
        RequestStatus::Withdrawn => format!(
            "request #{} was withdrawn by {}: {why}; it will never run",
            r.id,
            r.closed_by.as_deref().unwrap_or("someone")
        ),
        RequestStatus::Started => match r.run_id {
            Some(run) => format!(
                "request #{} already started as run {run} (`runbookd show {run}`; `runbookd cancel {run}` stops it)",
                r.id
            ),
            None => format!(
                "request #{} is being started by {}",
                r.id,
                r.taken_by.as_deref().unwrap_or("a daemon")
            ),
        },
        RequestStatus::Pending => format!("request #{} is pending", r.id),
    }
}

/// `runbookd requests`: records what has expired, then lists.
pub async fn requests(
    cli: &Cli,
    status: Option<RequestStatus>,
    job: Option<&str>,
    limit: u32,
    json: bool,
) -> Result<()> {
    let config = load(cli)?;
    if let Some(j) = job {
        config.job(j)?;
    }
    let store = open_store(cli, &config).await?;
    store.expire_requests(SystemClock.now()).await?;
    let list = store
        .list_requests(&RequestFilter {
            status,
            job: job.map(str::to_string),
            limit,
        })
        .await?;
    if json {
        return render::print_json(&list);
    }
    render::requests(&list, SystemClock.now())
}

/// `runbookd withdraw`: takes back a pending request.
pub async fn withdraw(cli: &Cli, id: RequestId, reason: Option<&str>) -> Result<()> {
    let config = load(cli)?;
    let store = open_store(cli, &config).await?;
    let now = SystemClock.now();
    store.expire_requests(now).await?;
    let by = Identity::current().user;
    let why = reason.unwrap_or("withdrawn by hand (`runbookd withdraw`)");
    match store.withdraw_request(id, &by, why, now).await? {
        Some(r) => render::say(&format!(
            "request #{id} (`{}`, asked by {}) withdrawn: no daemon will run it",
            r.job, r.requested_by
        )),
        None => match store.get_request(id).await? {
            None => Err(CliError::NotFound(format!(
                "no request #{id} in {}",
                store.url()
            ))),
            Some(r) if r.status == RequestStatus::Withdrawn => Err(CliError::Refused(format!(
                "request #{id} was already withdrawn by {}",
                r.closed_by.as_deref().unwrap_or("someone")
            ))),
            Some(r) => Err(CliError::Refused(format!("cannot withdraw: {}", fate(&r)))),
        },
    }
}

/// Prints a run's log as it is saved (each heartbeat), through its
/// retries, until it ends. Returns its last attempt.
async fn follow(
    store: &dyn HistoryStore,
    mut id: RunId,
    job: &JobConfig,
    stale_after: Duration,
) -> Result<Run> {
    let mut printed = 0usize;
    loop {
        let run = store
            .get_run(id)
            .await?
            .ok_or_else(|| CliError::Usage(format!("run {id} is gone from the store")))?;
        let log = run.log.as_deref().unwrap_or("");
        if log.len() > printed && log.is_char_boundary(printed) {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(log[printed..].as_bytes());
            printed = log.len();
        } else if log.len() < printed {
            // The saved log was cut to its head and tail: the middle is in
            // `runbookd show`, not here.
            render::note(&format!("… (the log was cut; `runbookd show {id}` has it)"));
            printed = log.len();
        }
        if run.status != RunStatus::Running {
            // A retry carries the run on, once its backoff has passed.
            let retries = matches!(run.status, RunStatus::Failed | RunStatus::TimedOut)
                && run.attempt <= job.retries.max
                && !run.dry_run;
            let give_up = tokio::time::Instant::now()
                + if retries {
                    job.retries.delay_before(run.attempt + 1) + Duration::from_secs(10)
                } else {
                    Duration::ZERO
                };
            let retry = loop {
                let next = store
                    .list_runs(&RunFilter {
                        job: Some(run.job.clone()),
                        since: Some(run.started_at),
                        limit: 100,
                    })
                    .await?
                    .into_iter()
                    .find(|r| r.retry_of == Some(id));
                if next.is_some() || tokio::time::Instant::now() >= give_up {
                    break next;
                }
                tokio::time::sleep(POLL).await;
            };
            match retry {
                Some(next) => {
                    render::note(&format!(
                        "run {id} {}; retrying as run {}",
                        run.status, next.id
                    ));
                    id = next.id;
                    printed = 0;
                    continue;
                }
                None => return Ok(run),
            }
        }
        let quiet = (SystemClock.now() - run.heartbeat_at)
            .to_std()
            .unwrap_or_default();
        if quiet > stale_after * 2 {
            return Err(CliError::Refused(format!(
                "run {id} has not beaten for {}s and no replica has marked it abandoned: are all daemons down? It still reads as running",
                quiet.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn pause(cli: &Cli, name: &str, reason: Option<&str>) -> Result<()> {
    let config = load(cli)?;
    let job = config.job(name)?;
    if job.schedule.is_none() {
        return Err(CliError::Usage(format!(
            "`{name}` has no schedule: there is nothing to pause"
        )));
    }
    let store = open_store(cli, &config).await?;
    let by = Identity::current().user;
    let fresh = store
        .pause_job(&Pause {
            job: name.to_string(),
            paused_by: by,
            reason: reason.map(str::to_string),
            paused_at: SystemClock.now(),
        })
        .await?;
    if fresh {
        render::say(&format!(
            "`{name}` paused: every daemon skips its scheduled fires (recorded as skipped) until `runbookd resume {name}`"
        ))?;
    } else {
        let p = store
            .paused_jobs()
            .await?
            .into_iter()
            .find(|p| p.job == name);
        render::say(&format!(
            "`{name}` was already paused{}",
            p.map(|p| format!(" by {} since {}", p.paused_by, p.paused_at.to_rfc3339()))
                .unwrap_or_default()
        ))?;
    }
    Ok(())
}

pub async fn resume(cli: &Cli, name: &str) -> Result<()> {
    let config = load(cli)?;
    config.job(name)?;
    let store: Arc<dyn HistoryStore> = open_store(cli, &config).await?;
    if store.resume_job(name).await? {
        render::say(&format!(
            "`{name}` resumed: its next fire runs (fires while it was paused stay skipped)"
        ))?;
        Ok(())
    } else {
        Err(CliError::Usage(format!("`{name}` is not paused")))
    }
}
