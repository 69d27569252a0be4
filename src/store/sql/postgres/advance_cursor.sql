INSERT INTO job_cursors (job, evaluated_until) VALUES ($1, $2)
ON CONFLICT (job) DO UPDATE
SET evaluated_until = GREATEST(job_cursors.evaluated_until, EXCLUDED.evaluated_until)
