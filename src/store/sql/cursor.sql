SELECT evaluated_until FROM job_cursors WHERE job = $1
