//! Each command's orchestration: load the file, open the store, build the
//! runner (in one place), act, and hand the result to `render.rs`.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::render::{self, NextFire, print_json};
use super::{Cli, CliError, Command, MAX_HISTORY, Result};
use crate::adapters::Adapters;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::daemon;
use crate::jobs;
use crate::model::Params;
use crate::runner::{Admission, RunRequest, Runner, SETTLE_WAIT, Stop};
use crate::schedule::{Shift, offset_seconds};
use crate::secret::{redact_url, url_password};
use crate::store::{self, HistoryStore, Run, RunFilter, RunStatus, Trigger};

pub async fn dispatch(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Validate { json } => validate(&cli, *json),
        Command::Jobs { json } => jobs(&cli, *json).await,
        Command::Next {
            job,
            n,
            after,
            json,
        } => next(&cli, job, *n as usize, after.as_deref(), *json),
        Command::Run {
            job,
            dry_run,
            json,
            only,
            skip,
            force,
            confirm,
        } => {
            let mut params = Params::new();
            for (k, v) in [("only", only), ("skip", skip)] {
                if !v.is_empty() {
                    params.insert(k.to_string(), v.join(","));
                }
            }
            run_job(&cli, job, *dry_run, *json, params, *force, *confirm).await
        }
        Command::History {
            job,
            since,
            limit,
            json,
        } => history(&cli, job.clone(), since.as_deref(), *limit, *json).await,
        Command::Show { run, json } => show(&cli, run, *json).await,
        Command::Cancel { run_id } => cancel(&cli, *run_id).await,
        Command::Serve { listen } => serve(&cli, *listen).await,
        Command::Report {
            since,
            out,
            send,
            job,
        } => {
            super::report::report(
                &cli,
                since.as_deref(),
                out.as_deref(),
                *send,
                job.as_deref(),
            )
            .await
        }
        Command::Trigger(args) => super::trigger::trigger(&cli, args).await,
        Command::Requests {
            status,
            job,
            limit,
            json,
        } => {
            super::trigger::requests(&cli, status.map(Into::into), job.as_deref(), *limit, *json)
                .await
        }
        Command::Withdraw { request_id, reason } => {
            super::trigger::withdraw(&cli, *request_id, reason.as_deref()).await
        }
        Command::Pause { job, reason } => super::trigger::pause(&cli, job, reason.as_deref()).await,
        Command::Resume { job } => super::trigger::resume(&cli, job).await,
        Command::Migrate => {
            let config = load(&cli)?;
            let store = open_store(&cli, &config).await?;
            render::note(&format!("history store {} is up to date", store.url()));
            Ok(())
        }
    }
}

pub(super) fn load(cli: &Cli) -> Result<Config> {
    Ok(jobs::load_file(&cli.config)?)
}

fn database_url(cli: &Cli, config: &Config) -> String {
    cli.database_url
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| config.history.database_url.expose().to_string())
}

pub(super) async fn open_store(cli: &Cli, config: &Config) -> Result<Arc<dyn HistoryStore>> {
    Ok(store::open(&database_url(cli, config)).await?)
}

/// The one way the CLI builds a runner: real outside systems, the jobs
/// file's settings, and the history store's password among the secrets
/// (it may come from `--database-url` rather than the file).
fn runner(cli: &Cli, config: &Config, store: Arc<dyn HistoryStore>) -> Result<Runner> {
    let redactor = config
        .redactor
        .with(url_password(&database_url(cli, config)));
    Ok(Runner::builder(store, Arc::new(adapters(config)?))
        .config(config)
        .redactor(redactor)
        .build())
}

/// The real outside systems, with the mailer `mail:` asks for.
pub(super) fn adapters(config: &Config) -> Result<Adapters> {
    let m = &config.mail;
    let mailer = crate::adapters::mail::mailer(
        m.smtp_url.as_ref().map(|u| u.expose()),
        m.ca_file.as_deref(),
        &m.outbox,
        m.timeout,
    )?;
    Ok(Adapters::real().with_mail(mailer))
}

fn validate(cli: &Cli, json: bool) -> Result<()> {
    match jobs::load_file(&cli.config) {
        Ok(c) => {
            if json {
                print_json(
                    &serde_json::json!({ "file": cli.config, "valid": true, "jobs": c.jobs.len(), "errors": [] }),
                )?;
            } else {
                render::say(&format!(
                    "{}: ok, {} job(s)",
                    cli.config.display(),
                    c.jobs.len()
                ))?;
            }
            Ok(())
        }
        Err(ConfigError::Invalid(diags)) => {
            if json {
                print_json(
                    &serde_json::json!({ "file": cli.config, "valid": false, "errors": diags }),
                )?;
            } else {
                for d in &diags {
                    render::say(&d.to_string())?;
                }
            }
            render::note(&format!(
                "{}: {} error(s)",
                cli.config.display(),
                diags.len()
            ));
            Err(CliError::Usage(String::new()))
        }
        Err(e) => Err(e.into()),
    }
}

async fn jobs(cli: &Cli, json: bool) -> Result<()> {
    let config = load(cli)?;
    let store = match open_store(cli, &config).await {
        Ok(s) => Some(s),
        Err(e) => {
            render::note(&format!("warning: last status unknown: {e}"));
            None
        }
    };
    let now = SystemClock.now();
    let paused = match &store {
        Some(s) => s.paused_jobs().await?,
        None => Vec::new(),
    };
    let pending = match &store {
        Some(s) => pending_requests(s.as_ref(), None, now).await?,
        None => Vec::new(),
    };
    let mut rows = Vec::new();
    for job in config.jobs.values() {
        // A dry run is never a job's last status: it would hide a real
        // failure before it.
        let (last, last_dry) = match &store {
            Some(s) => (
                s.last_run(&job.name, Some(false)).await?,
                s.last_run(&job.name, Some(true)).await?,
            ),
            None => (None, None),
        };
        rows.push(crate::console::rows::job_row(
            job,
            now,
            last.as_ref(),
            last_dry.as_ref(),
            &paused,
            &pending,
        ));
    }
    if json {
        return print_json(&rows);
    }
    render::jobs(&rows)
}

fn next(cli: &Cli, name: &str, n: usize, after: Option<&str>, json: bool) -> Result<()> {
    let config = load(cli)?;
    let job = config.job(name)?;
    let Some(expr) = &job.schedule else {
        return Err(CliError::Usage(format!(
            "job `{name}` has no schedule: it runs only when started by hand (runbookd run {name})"
        )));
    };
    let mut t = match after {
        Some(a) => DateTime::parse_from_rfc3339(a)
            .map_err(|e| {
                CliError::Usage(format!(
                    "--after `{a}` is not an RFC 3339 instant (e.g. 2026-03-08T00:00:00Z): {e}"
                ))
            })?
            .with_timezone(&Utc),
        None => SystemClock.now(),
    };
    let tz = job.timezone;
    let mut prev_offset = offset_seconds(tz, t);
    let mut fires = Vec::new();
    for _ in 0..n {
        let Some(f) = expr.next_fire(tz, t) else {
            break;
        };
        let local = f.at.with_timezone(&tz);
        let offset = offset_seconds(tz, f.at);
        let note = match f.shift {
            Shift::Gap => Some(format!(
                "DST: {} does not exist in {}; runs at the first instant after the gap",
                f.nominal.format("%Y-%m-%d %H:%M:%S"),
                tz.name()
            )),
            Shift::Repeated if expr.runs_both_passes() => Some(format!(
                "DST: {} occurs twice in {}; the hour field is `*`, so it runs in both passes",
                f.nominal.format("%H:%M:%S"),
                tz.name()
            )),
            Shift::Repeated => Some(format!(
                "DST: {} occurs twice in {}; runs once, at the first",
                f.nominal.format("%H:%M:%S"),
                tz.name()
            )),
            Shift::None if offset != prev_offset => {
                Some(format!("DST: UTC offset is now {}", local.format("%:z")))
            }
            Shift::None => None,
        };
        prev_offset = offset;
        fires.push(NextFire {
            utc: render::fmt_time(f.at),
            local: local.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            offset: local.format("%:z").to_string(),
            nominal: f.nominal.format("%Y-%m-%dT%H:%M:%S").to_string(),
            shift: f.shift,
            note,
        });
        t = f.at;
    }
    if json {
        return print_json(&fires);
    }
    render::next(name, &expr.to_string(), tz, &fires)
}

/// Cancelled on SIGTERM or SIGINT, with the signal's name. The handlers
/// are set before this returns, so whatever the caller says next (`serve`'s
/// listen address) tells a supervisor a SIGTERM is handled from then on.
fn signals() -> (CancellationToken, Arc<std::sync::Mutex<&'static str>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let which = Arc::new(std::sync::Mutex::new(""));
    let (t, w) = (token.clone(), which.clone());
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        *w.lock().expect("signal lock") = name;
        t.cancel();
    });
    (token, which)
}

async fn run_job(
    cli: &Cli,
    name: &str,
    dry_run: bool,
    json: bool,
    params: Params,
    force: bool,
    confirmed: bool,
) -> Result<()> {
    let config = load(cli)?;
    let job = config.job(name)?.clone();
    job.spec
        .accepts(&params)
        .map_err(|e| CliError::Usage(format!("job `{name}`: {e}")))?;
    job.check_confirmed(confirmed, dry_run)
        .map_err(|e| CliError::Usage(format!("job `{name}`: {e}")))?;
    let store = open_store(cli, &config).await?;
    // From now on the morning report judges this job's fires.
    store.see_jobs(&[name], SystemClock.now()).await?;
    let format = cli.log_format;
    let runner = runner(cli, &config, store.clone())?.with_tee(move |l| render::tee(format, l));
    runner.reap(config.daemon.stale_after).await?;
    let mut req = RunRequest {
        trigger: Trigger::Manual,
        triggered_by: runner.identity().user.clone(),
        scheduled_for: None,
        dry_run,
        params,
        force,
        confirmed,
        ..Default::default()
    };
    // Overlap rules hold for runs by hand as for scheduled ones, but not
    // for dry runs: they change nothing, so they must not cancel a real run
    // (`replace`) nor be refused by one.
    let id = match runner.admit(&job, &mut req).await? {
        Admission::Start { id } => id,
        Admission::Lost => {
            return Err(CliError::Usage("the history store refused the run".into()));
        }
        Admission::Skipped { id, blockers, .. } => {
            let list = blockers
                .iter()
                .map(|i| format!("#{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(CliError::Refused(format!(
                "not started: run {list} of `{name}` is still running and its concurrency is forbid (recorded as skipped run {id}); use --force to run beside it"
            )));
        }
    };
    let stop = Stop::new();
    let (sig, which) = signals();
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            sig.cancelled().await;
            let name = *which.lock().expect("signal lock");
            stop.cancel(format!("interrupted by {name}"));
        })
    };
    let ended = runner.execute(&job, &req, id, &stop).await;
    watcher.abort();
    if let Some(n) = &ended.notified {
        render::note(n);
    }
    // With CronJobs no daemon resends mail an earlier run left pending:
    // each run does. A dry run changes nothing, this included.
    if !dry_run {
        resend_pending(&runner).await;
    }
    let run = store.get_run(ended.id).await?;
    if json {
        if let Some(r) = &run {
            print_json(r)?;
        }
    } else {
        render::run_end(
            run.as_ref(),
            ended.id,
            name,
            ended.status,
            ended.attempt,
            ended.error.as_deref(),
        )?;
    }
    // The run is recorded and said; its end ping and alert go before the
    // process does (a CronJob's pod ends with it).
    runner.settle(SETTLE_WAIT).await;
    if ended.status == RunStatus::Succeeded {
        Ok(())
    } else {
        Err(CliError::JobFailed {
            id: ended.id,
            job: name.to_string(),
            status: ended.status,
        })
    }
}

/// How long a run by hand spends sending mail left pending: a down server
/// holds each message up to `mail.timeout`, and the pod should not wait on
/// all of them.
const RESEND_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Sends the pending mail that is due (as the daemon's maintenance pass
/// does), for at most [`RESEND_WITHIN`], and says which were sent; nothing
/// here fails the run.
async fn resend_pending(runner: &Runner) {
    match tokio::time::timeout(
        RESEND_WITHIN,
        runner.postman().resend_due(daemon::RESEND_BATCH),
    )
    .await
    {
        Ok(Ok(r)) => {
            for m in &r.delivered {
                render::note(&format!(
                    "pending mail sent: {} ({}) to {}",
                    m.subject, m.message_id, m.to
                ));
            }
            if r.failed > 0 {
                tracing::warn!("pending mail: {} still not sent", r.failed);
            }
        }
        Ok(Err(e)) => tracing::warn!("pending mail: {e}"),
        Err(_) => tracing::warn!(
            "pending mail: stopped after {}; the next run sends the rest",
            humantime::format_duration(RESEND_WITHIN)
        ),
    }
}

/// A duration argument (`5m`, `1h 30m`), refused with the flag's name
/// outside `min..=max`: every duration the CLI takes is bounded, so no
/// input can overflow the time arithmetic it feeds.
pub(super) fn parse_duration(
    flag: &str,
    s: &str,
    min: std::time::Duration,
    max: std::time::Duration,
) -> Result<std::time::Duration> {
    let d = humantime::parse_duration(s).map_err(|e| {
        CliError::Usage(format!(
            "{flag} `{s}` is not a duration (e.g. 30s, 5m, 1h 30m, 7d): {e}"
        ))
    })?;
    if d < min || d > max {
        return Err(CliError::Usage(format!(
            "{flag} `{s}` must be from {} to {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        )));
    }
    Ok(d)
}

/// Requests still waiting for a daemon (inside their lifetime), oldest
/// first: what `jobs` and `history` mention so a queued run is never out
/// of sight.
pub(super) async fn pending_requests(
    store: &dyn HistoryStore,
    job: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<crate::model::Request>> {
    let mut list = store
        .list_requests(&crate::model::RequestFilter {
            status: Some(crate::model::RequestStatus::Pending),
            job: job.map(str::to_string),
            limit: MAX_HISTORY,
        })
        .await?;
    list.retain(|r| r.expires_at.is_none_or(|at| at > now));
    list.reverse();
    Ok(list)
}

pub(super) fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Err(e) = humantime::parse_duration(s) {
        return Err(CliError::Usage(format!(
            "--since `{s}` is neither a duration (24h, 7d) nor an RFC 3339 instant (2026-03-08T00:00:00Z): {e}"
        )));
    }
    let d = parse_duration("--since", s, std::time::Duration::ZERO, SINCE_MAX)?;
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--since `{s}` reaches before any time runbookd can record"
            ))
        })
}

/// How far back `--since` may reach: far beyond any retention, well inside
/// what the clock can represent.
const SINCE_MAX: std::time::Duration = std::time::Duration::from_secs(100 * 366 * 24 * 3600);

async fn history(
    cli: &Cli,
    job: Option<String>,
    since: Option<&str>,
    limit: u32,
    json: bool,
) -> Result<()> {
    let config = load(cli)?;
    let now = SystemClock.now();
    let since = since.map(|s| parse_since(s, now)).transpose()?;
    let store = open_store(cli, &config).await?;
    if let Some(j) = &job
        && let Err(unknown) = config.job(j)
        && store.last_run(j, None).await?.is_none()
    {
        // A job gone from the file keeps its history; a name that is in
        // neither is a typo, not an empty answer.
        return Err(CliError::Usage(format!(
            "--job: {unknown}; nor has any run of it been recorded"
        )));
    }
    let runs = store
        .list_runs(&RunFilter {
            job: job.clone(),
            since,
            limit: limit.max(1),
        })
        .await?;
    let pending = pending_requests(store.as_ref(), job.as_deref(), now).await?;
    for r in &pending {
        render::note(&format!(
            "request #{} for `{}` by {} is pending, not yet run (`runbookd requests`; `runbookd withdraw {}` takes it back)",
            r.id, r.job, r.requested_by, r.id
        ));
    }
    if json {
        return print_json(&runs);
    }
    render::history(&runs)
}

async fn show(cli: &Cli, which: &str, json: bool) -> Result<()> {
    let config = load(cli)?;
    let store = open_store(cli, &config).await?;
    let id = match which.parse::<i64>() {
        Ok(id) => id,
        // A job's name: its latest run.
        Err(_) => {
            config.job(which).map_err(|e| {
                CliError::Usage(format!("`{which}` is neither a run id nor a job: {e}"))
            })?;
            store
                .last_run(which, None)
                .await?
                .ok_or_else(|| CliError::NotFound(format!("job `{which}` has no runs yet")))?
                .id
        }
    };
    let run: Run = store.get_run(id).await?.ok_or_else(|| {
        CliError::NotFound(format!("no run {id} in history store {}", store.url()))
    })?;
    if json {
        return print_json(&run);
    }
    render::show(&run)
}

async fn cancel(cli: &Cli, id: i64) -> Result<()> {
    let config = load(cli)?;
    let store = open_store(cli, &config).await?;
    if store.request_cancel(id).await? {
        render::say(&format!(
            "cancel requested for run {id}; its process stops it at the next heartbeat"
        ))?;
        return Ok(());
    }
    match store.get_run(id).await? {
        None => Err(CliError::NotFound(format!(
            "no run {id} in history store {} (`runbookd history` lists runs; a queued request is withdrawn with `runbookd withdraw`)",
            store.url()
        ))),
        Some(r) => Err(CliError::Refused(format!(
            "run {id} of `{}` is not running: it ended {}",
            r.job, r.status
        ))),
    }
}

async fn serve(cli: &Cli, listen: Option<SocketAddr>) -> Result<()> {
    let config = Arc::new(load(cli)?);
    let url = database_url(cli, &config);
    let store = store::open(&url).await?;
    let (sig, which) = signals();
    let listen = listen.unwrap_or(config.daemon.listen);
    let shutdown = CancellationToken::new();
    let s2 = shutdown.clone();
    tokio::spawn(async move {
        sig.cancelled().await;
        // Said before the stop, so it precedes the daemon's "stopping" and
        // "stopped"; a line that cannot be written is dropped
        // (`logging::init`), so the stop still follows.
        tracing::info!("{} received", *which.lock().expect("signal lock"));
        s2.cancel();
    });
    tracing::debug!(store = %redact_url(&url), "starting");
    let runner = runner(cli, &config, store)?;
    daemon::serve(config, runner, listen, shutdown).await?;
    Ok(())
}
