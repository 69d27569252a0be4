INSERT INTO check_results (run_id, position, check_name, status, value_number, value_text,
                           threshold, reason, duration_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
