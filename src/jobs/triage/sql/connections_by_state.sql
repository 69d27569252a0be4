-- Client connections by state (background workers have no database).
SELECT coalesce(state, 'unknown') AS state, count(*) AS n
  FROM pg_stat_activity
 WHERE backend_type = 'client backend'
 GROUP BY 1
 ORDER BY 2 DESC, 1
