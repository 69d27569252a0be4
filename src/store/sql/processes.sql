SELECT host, pgid, leader_start FROM run_processes WHERE run_id = $1
