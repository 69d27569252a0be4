-- One page of a job's runs for the console, newest first, paged by id
-- (`$4`: only runs older than that id) so a page costs the same however
-- deep it is.
SELECT id, job, "trigger", triggered_by, scheduled_for, started_at, finished_at, status, attempt, error, dry_run, owner, heartbeat_at, retry_of, log_truncated
FROM runs
WHERE job = $1
  AND ($2 IS NULL OR status = $2)
  AND ($3 IS NULL OR "trigger" = $3)
  AND ($4 IS NULL OR id < $4)
ORDER BY id DESC
LIMIT $5
