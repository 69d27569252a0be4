-- One row per attempt of a run. Timestamps are integer microseconds since the
-- Unix epoch, UTC, so they sort and compare exactly.
CREATE TABLE runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job              TEXT    NOT NULL,
    "trigger"        TEXT    NOT NULL
                     CHECK ("trigger" IN ('schedule', 'manual', 'catchup', 'retry')),
    triggered_by     TEXT    NOT NULL,
    scheduled_for    INTEGER,
    started_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    status           TEXT    NOT NULL
                     CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out',
                                       'cancelled', 'skipped', 'abandoned')),
    attempt          INTEGER NOT NULL CHECK (attempt >= 1),
    error            TEXT,
    dry_run          INTEGER NOT NULL DEFAULT 0,
    owner            TEXT    NOT NULL,
    heartbeat_at     INTEGER NOT NULL,
    retry_of         INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    log              TEXT    NOT NULL DEFAULT '',
    log_truncated    INTEGER NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX runs_claim ON runs (job, scheduled_for, attempt);
CREATE INDEX runs_started_at ON runs (started_at DESC, id DESC);
CREATE INDEX runs_job_started_at ON runs (job, started_at DESC, id DESC);
CREATE INDEX runs_running ON runs (job) WHERE status = 'running';

CREATE TABLE job_cursors (
    job             TEXT    PRIMARY KEY,
    evaluated_until INTEGER NOT NULL
);
