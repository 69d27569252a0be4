DELETE FROM run_requests WHERE status <> 'pending' AND requested_at < $1
