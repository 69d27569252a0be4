SELECT id, job, params, requested_by, reason, dry_run, requested_at, status, taken_by,
       taken_at, run_id, error, expires_at, closed_by, closed_at, confirmed
FROM run_requests
WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR job = $2)
ORDER BY id DESC
LIMIT $3
