UPDATE runs
SET status = 'abandoned',
    finished_at = $2,
    error = 'abandoned: no heartbeat from ' || owner || ' since ' ||
            strftime('%Y-%m-%dT%H:%M:%SZ', heartbeat_at / 1000000, 'unixepoch') ||
            '; its process died or lost the history store'
WHERE status = 'running' AND heartbeat_at < $1
RETURNING id
