-- Pending requests past their lifetime: recorded expired, never taken.
UPDATE run_requests SET status = 'expired', closed_at = $1, error = $2
WHERE status = 'pending' AND expires_at <= $1
RETURNING id, job, params, requested_by, reason, dry_run, requested_at, status, taken_by,
       taken_at, run_id, error, expires_at, closed_by, closed_at, confirmed
