-- Runs started by another run's failure (`on_failure`) have trigger
-- 'chained'. NOT VALID then VALIDATE: the check of existing rows takes a
-- lock that lets a live history go on being written.
ALTER TABLE runs DROP CONSTRAINT runs_trigger_check;
ALTER TABLE runs ADD CONSTRAINT runs_trigger_check
    CHECK ("trigger" IN ('schedule', 'manual', 'catchup', 'retry', 'chained')) NOT VALID;
ALTER TABLE runs VALIDATE CONSTRAINT runs_trigger_check;
