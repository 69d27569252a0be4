-- Inside a claim's transaction, after its insert: the job's runs going on,
-- the new one among them.
SELECT id, job, "trigger", triggered_by, scheduled_for, started_at, finished_at, status, attempt, error, dry_run, owner, heartbeat_at, retry_of, log_truncated
FROM runs
WHERE status = 'running' AND job = $1
ORDER BY id
