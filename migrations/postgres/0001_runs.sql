-- One row per attempt of a run. Timestamps are UTC instants.
CREATE TABLE runs (
    id               BIGSERIAL   PRIMARY KEY,
    job              TEXT        NOT NULL,
    "trigger"        TEXT        NOT NULL
                     CHECK ("trigger" IN ('schedule', 'manual', 'catchup', 'retry')),
    triggered_by     TEXT        NOT NULL,
    -- The fire this run belongs to; NULL for manual runs.
    scheduled_for    TIMESTAMPTZ,
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    status           TEXT        NOT NULL
                     CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out',
                                       'cancelled', 'skipped', 'abandoned')),
    attempt          INTEGER     NOT NULL CHECK (attempt >= 1),
    error            TEXT,
    dry_run          BOOLEAN     NOT NULL DEFAULT FALSE,
    -- host:pid:instance of the process executing the run.
    owner            TEXT        NOT NULL,
    heartbeat_at     TIMESTAMPTZ NOT NULL,
    retry_of         BIGINT,
    cancel_requested BOOLEAN     NOT NULL DEFAULT FALSE,
    log              TEXT        NOT NULL DEFAULT '',
    log_truncated    BOOLEAN     NOT NULL DEFAULT FALSE
);

-- The claim: each fire and attempt is inserted by exactly one process.
-- NULLs are distinct, so manual runs never collide.
CREATE UNIQUE INDEX runs_claim ON runs (job, scheduled_for, attempt);
CREATE INDEX runs_started_at ON runs (started_at DESC, id DESC);
CREATE INDEX runs_job_started_at ON runs (job, started_at DESC, id DESC);
CREATE INDEX runs_running ON runs (job) WHERE status = 'running';

-- How far the schedulers have evaluated each job's fires: what lies beyond
-- it after a restart was missed, and is caught up within the job's window.
CREATE TABLE job_cursors (
    job             TEXT        PRIMARY KEY,
    evaluated_until TIMESTAMPTZ NOT NULL
);
