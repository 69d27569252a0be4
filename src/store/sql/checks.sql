SELECT check_name, status, value_number, value_text, threshold, reason, duration_ms
FROM check_results
WHERE run_id = $1
ORDER BY position
