SELECT job, paused_by, reason, paused_at FROM job_pauses ORDER BY job
