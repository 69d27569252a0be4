-- Every job in the JSON array `$1` evaluated until `$2` (one statement for
-- a whole tick; a cursor never moves back). `WHERE true` lets SQLite read
-- ON CONFLICT after a SELECT.
INSERT INTO job_cursors (job, evaluated_until)
SELECT value, $2 FROM json_each($1) WHERE true
ON CONFLICT (job) DO UPDATE
SET evaluated_until = MAX(job_cursors.evaluated_until, excluded.evaluated_until)
