INSERT INTO job_pauses (job, paused_by, reason, paused_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (job) DO NOTHING
