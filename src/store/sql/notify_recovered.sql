-- A row back only when the job had been told failing: the one "recovered".
UPDATE notify_state SET failing = FALSE, run_id = $2, since = $3
WHERE job = $1 AND failing = TRUE
RETURNING job
