SELECT position, name, target, status, started_at, finished_at, detail, payload
FROM run_steps
WHERE run_id = $1
ORDER BY position
