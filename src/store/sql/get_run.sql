SELECT id, job, "trigger", triggered_by, scheduled_for, started_at, finished_at, status, attempt, error, dry_run, owner, heartbeat_at, retry_of, log_truncated, log
FROM runs
WHERE id = $1
