-- A row back only when this failure is news: the job was not already
-- known to be failing. Atomic, so two replicas never both tell it.
INSERT INTO notify_state (job, failing, run_id, since) VALUES ($1, TRUE, $2, $3)
ON CONFLICT (job) DO UPDATE
SET failing = TRUE, run_id = excluded.run_id, since = excluded.since
WHERE notify_state.failing = FALSE
RETURNING job
