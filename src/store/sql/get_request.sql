SELECT id, job, params, requested_by, reason, dry_run, requested_at, status, taken_by,
       taken_at, run_id, error, expires_at, closed_by, closed_at, confirmed
FROM run_requests
WHERE id = $1
