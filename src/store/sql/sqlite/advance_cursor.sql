INSERT INTO job_cursors (job, evaluated_until) VALUES ($1, $2)
ON CONFLICT (job) DO UPDATE
SET evaluated_until = MAX(job_cursors.evaluated_until, excluded.evaluated_until)
