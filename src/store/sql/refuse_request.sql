UPDATE run_requests SET status = 'refused', error = $2, closed_at = taken_at WHERE id = $1
