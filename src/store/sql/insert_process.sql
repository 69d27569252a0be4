INSERT INTO run_processes (run_id, host, pgid, leader_start)
VALUES ($1, $2, $3, $4)
