INSERT INTO run_requests (job, params, requested_by, reason, dry_run, requested_at, status,
                          expires_at, confirmed)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)
RETURNING id
