-- Only a pending request: one a daemon has taken is its (the row lock
-- makes a take and a withdrawal racing have one winner).
UPDATE run_requests SET status = 'withdrawn', closed_by = $2, closed_at = $3, error = $4
WHERE id = $1 AND status = 'pending'
RETURNING id, job, params, requested_by, reason, dry_run, requested_at, status, taken_by,
       taken_at, run_id, error, expires_at, closed_by, closed_at, confirmed
