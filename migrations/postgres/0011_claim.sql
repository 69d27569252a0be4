-- A claim in one round trip: the job's claims one at a time (an advisory
-- lock held to the end of the claim's transaction), the run inserted, and
-- the job's running runs read after the lock, so every run read was
-- claimed before this one and every later claim reads this one. In
-- PL/pgSQL each statement takes a fresh snapshot, so the read sees a claim
-- that committed while this one waited for the lock (a single SQL
-- statement would not). No row back: another process holds this fire.
CREATE FUNCTION runbookd_claim(
    p_job TEXT, p_trigger TEXT, p_triggered_by TEXT, p_scheduled_for TIMESTAMPTZ,
    p_started_at TIMESTAMPTZ, p_status TEXT, p_attempt BIGINT, p_error TEXT,
    p_dry_run BOOLEAN, p_owner TEXT, p_retry_of BIGINT)
RETURNS TABLE (
    mine BOOLEAN, id BIGINT, job TEXT, "trigger" TEXT, triggered_by TEXT,
    scheduled_for TIMESTAMPTZ, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, status TEXT,
    attempt INTEGER, error TEXT, dry_run BOOLEAN, owner TEXT, heartbeat_at TIMESTAMPTZ,
    retry_of BIGINT, log_truncated BOOLEAN)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    claimed BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('runbookd claim ' || p_job, 0));
    INSERT INTO runs (job, "trigger", triggered_by, scheduled_for, started_at, status, attempt,
                      error, dry_run, owner, heartbeat_at, retry_of, finished_at)
    VALUES (p_job, p_trigger, p_triggered_by, p_scheduled_for, p_started_at, p_status,
            p_attempt, p_error, p_dry_run, p_owner, p_started_at, p_retry_of,
            CASE WHEN p_status = 'running' THEN NULL ELSE p_started_at END)
    ON CONFLICT (job, scheduled_for, attempt) DO NOTHING
    RETURNING runs.id INTO claimed;
    IF claimed IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT r.id = claimed, r.id, r.job, r."trigger", r.triggered_by, r.scheduled_for,
               r.started_at, r.finished_at, r.status, r.attempt, r.error, r.dry_run, r.owner,
               r.heartbeat_at, r.retry_of, r.log_truncated
        FROM runs r
        WHERE r.status = 'running' AND r.job = p_job
        ORDER BY r.id;
END $$;
