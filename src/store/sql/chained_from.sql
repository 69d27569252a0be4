-- The runs a failed run chained (`on_failure`): trigger `chained`, and
-- `triggered_by` naming the run (`run N of JOB`). They start as it ends,
-- so the window (`$2`..`$3`) bounds the read on the start index.
SELECT id, job, "trigger", triggered_by, scheduled_for, started_at, finished_at, status, attempt, error, dry_run, owner, heartbeat_at, retry_of, log_truncated
FROM runs
WHERE started_at >= $2
  AND started_at <= $3
  AND "trigger" = 'chained'
  AND triggered_by = $1
ORDER BY id
LIMIT $4
