-- The oldest pending request, inside its lifetime, that no other replica
-- is taking right now.
UPDATE run_requests SET status = 'started', taken_by = $1, taken_at = $2
WHERE id = (
    SELECT id FROM run_requests
    WHERE status = 'pending' AND (expires_at IS NULL OR expires_at > $2)
    ORDER BY id
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
RETURNING id, job, params, requested_by, reason, dry_run, requested_at, status, taken_by,
       taken_at, run_id, error, expires_at, closed_by, closed_at, confirmed
