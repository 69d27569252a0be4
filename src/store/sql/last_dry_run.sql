-- A job's latest dry run. Its own statement, with `dry_run` written out,
-- so Postgres and SQLite use the partial index of dry runs (migrations
-- postgres/0013, sqlite/0011): a job with none costs a lookup, not a scan
-- of all its runs.
SELECT id, job, "trigger", triggered_by, scheduled_for, started_at, finished_at, status, attempt, error, dry_run, owner, heartbeat_at, retry_of, log_truncated
FROM runs
WHERE job = $1 AND dry_run
ORDER BY started_at DESC, id DESC
LIMIT 1
