SELECT job, first_fire, last_fire, count, reason, recorded_at
FROM missed_fires
WHERE recorded_at >= $1
ORDER BY recorded_at, id
