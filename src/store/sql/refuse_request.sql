UPDATE run_requests SET status = 'refused', error = $2 WHERE id = $1
