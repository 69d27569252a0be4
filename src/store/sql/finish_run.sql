-- Unconditional: if a partitioned daemon's run was marked abandoned by a
-- peer and then finished after all, the real outcome wins.
UPDATE runs
SET status = $2, finished_at = $3, error = $4, log = $5, log_truncated = $6, heartbeat_at = $3
WHERE id = $1
