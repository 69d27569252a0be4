-- A job's latest run; `$2` picks dry runs (true), real ones (false) or
-- either (NULL).
SELECT id, job, "trigger", triggered_by, scheduled_for, started_at, finished_at, status, attempt, error, dry_run, owner, heartbeat_at, retry_of, log_truncated
FROM runs
WHERE job = $1 AND ($2 IS NULL OR dry_run = $2)
ORDER BY started_at DESC, id DESC
LIMIT 1
