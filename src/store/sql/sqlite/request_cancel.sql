UPDATE runs SET cancel_requested = 1 WHERE id = ?1 AND status = 'running' RETURNING id
