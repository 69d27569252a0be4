-- A job's check results since a time, oldest run first: the report's
-- latest table, its day-over-day change and its 7-day charts, in one read
-- that walks runs_job_started_at.
SELECT r.id AS run_id, r.started_at, c.check_name, c.status, c.value_number, c.value_text,
       c.threshold, c.reason, c.duration_ms
FROM runs r
JOIN check_results c ON c.run_id = r.id
WHERE r.job = $1 AND r.started_at >= $2 AND r.status <> 'running'
ORDER BY r.started_at, r.id, c.position
