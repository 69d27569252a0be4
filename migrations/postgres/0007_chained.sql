-- Runs started by another run's failure (`on_failure`) have trigger
-- 'chained'.
ALTER TABLE runs DROP CONSTRAINT runs_trigger_check;
ALTER TABLE runs ADD CONSTRAINT runs_trigger_check
    CHECK ("trigger" IN ('schedule', 'manual', 'catchup', 'retry', 'chained'));
