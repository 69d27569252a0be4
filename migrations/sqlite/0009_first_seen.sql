-- When runbookd first saw each job (a daemon loading it, or `runbookd
-- run`): the morning report judges only the fires after it, so a new
-- install's or a new job's earlier fires are not "missed". Never moved
-- later. A history from before this table gets the earliest instant it
-- shows the job known: a run, a fire a run was for, a recorded missed
-- fire, or the scheduler's cursor.
CREATE TABLE job_first_seen (
    job        TEXT    PRIMARY KEY,
    first_seen INTEGER NOT NULL
);
INSERT INTO job_first_seen (job, first_seen)
SELECT job, MIN(at) FROM (
    SELECT job, started_at AS at FROM runs
    UNION ALL SELECT job, scheduled_for FROM runs WHERE scheduled_for IS NOT NULL
    UNION ALL SELECT job, first_fire FROM missed_fires
    UNION ALL SELECT job, evaluated_until FROM job_cursors
) AS known
GROUP BY job;
