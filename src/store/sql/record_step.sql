-- A step is written when it starts and again when it ends; the second write
-- completes the first.
INSERT INTO run_steps (run_id, position, name, target, status, started_at, finished_at,
                       detail, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (run_id, position) DO UPDATE
SET status = excluded.status,
    finished_at = excluded.finished_at,
    detail = excluded.detail,
    payload = excluded.payload
