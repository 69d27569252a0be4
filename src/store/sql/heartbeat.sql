UPDATE runs
SET heartbeat_at = $2,
    log = COALESCE($3, log),
    log_truncated = COALESCE($4, log_truncated)
WHERE id = $1 AND status = 'running'
RETURNING cancel_requested
