DELETE FROM job_pauses WHERE job = $1
