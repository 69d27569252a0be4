-- The attempts that retry a run: of its job, started after it, so the
-- job's index bounds the read.
SELECT id, job, "trigger", triggered_by, scheduled_for, started_at, finished_at, status, attempt, error, dry_run, owner, heartbeat_at, retry_of, log_truncated
FROM runs
WHERE job = $1
  AND started_at >= $2
  AND retry_of = $3
ORDER BY id
LIMIT $4
