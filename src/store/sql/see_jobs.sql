INSERT INTO job_first_seen (job, first_seen) VALUES ($1, $2)
ON CONFLICT (job) DO UPDATE SET first_seen = excluded.first_seen
WHERE excluded.first_seen < job_first_seen.first_seen
