-- The insert is the claim: a second process inserting the same
-- (job, scheduled_for, attempt) gets no row back. Timestamps are bound by
-- the backend: TIMESTAMPTZ in Postgres, integer microseconds in SQLite.
INSERT INTO runs (job, "trigger", triggered_by, scheduled_for, started_at, status, attempt,
                  error, dry_run, owner, heartbeat_at, retry_of, finished_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $5, $11,
        CASE WHEN $6 = 'running' THEN NULL ELSE $5 END)
ON CONFLICT (job, scheduled_for, attempt) DO NOTHING
RETURNING id
