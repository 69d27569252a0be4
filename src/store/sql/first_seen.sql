SELECT job, first_seen FROM job_first_seen ORDER BY job
