INSERT INTO missed_fires (job, first_fire, last_fire, count, reason, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6)
