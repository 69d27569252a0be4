UPDATE runs
SET status = 'abandoned',
    finished_at = $2,
    error = 'abandoned: no heartbeat from ' || owner || ' since ' ||
            to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') ||
            '; its process died or lost the history store'
WHERE status = 'running' AND heartbeat_at < $1
RETURNING id
