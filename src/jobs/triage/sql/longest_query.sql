-- The longest-running active query other than this one: its age in
-- seconds and its text (shown only when the job says so).
SELECT extract(epoch FROM now() - query_start)::float8 AS seconds, query
  FROM pg_stat_activity
 WHERE state = 'active'
   AND backend_type = 'client backend'
   AND pid <> pg_backend_pid()
   AND query_start IS NOT NULL
 ORDER BY query_start
 LIMIT 1
