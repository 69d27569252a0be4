-- Every job in the JSON array `$1` evaluated until `$2` (one statement for
-- a whole tick; a cursor never moves back).
INSERT INTO job_cursors (job, evaluated_until)
SELECT value, $2 FROM json_array_elements_text($1::json) AS value
ON CONFLICT (job) DO UPDATE
SET evaluated_until = GREATEST(job_cursors.evaluated_until, EXCLUDED.evaluated_until)
