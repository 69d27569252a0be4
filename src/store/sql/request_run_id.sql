UPDATE run_requests SET run_id = $2 WHERE id = $1
