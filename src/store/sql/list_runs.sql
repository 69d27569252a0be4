-- sqlx declares every parameter's type, so `$1 IS NULL` needs no cast.
SELECT id, job, "trigger", triggered_by, scheduled_for, started_at, finished_at, status, attempt, error, dry_run, owner, heartbeat_at, retry_of, log_truncated
FROM runs
WHERE ($1 IS NULL OR job = $1)
  AND ($2 IS NULL OR started_at >= $2)
ORDER BY started_at DESC, id DESC
LIMIT $3
