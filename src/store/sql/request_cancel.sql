UPDATE runs SET cancel_requested = TRUE WHERE id = $1 AND status = 'running' RETURNING id
