-- Runs asked of the daemons (`runbookd trigger`): one replica takes each
-- (FOR UPDATE SKIP LOCKED), starts it as a run and records which.
CREATE TABLE run_requests (
    id           BIGSERIAL   PRIMARY KEY,
    job          TEXT        NOT NULL,
    params       TEXT        NOT NULL DEFAULT '{}',
    requested_by TEXT        NOT NULL,
    reason       TEXT,
    dry_run      BOOLEAN     NOT NULL DEFAULT FALSE,
    requested_at TIMESTAMPTZ NOT NULL,
    status       TEXT        NOT NULL CHECK (status IN ('pending', 'started', 'refused')),
    taken_by     TEXT,
    taken_at     TIMESTAMPTZ,
    run_id       BIGINT,
    error        TEXT
);
CREATE INDEX run_requests_pending ON run_requests (id) WHERE status = 'pending';

-- Jobs whose scheduled fires every replica skips until resumed.
CREATE TABLE job_pauses (
    job       TEXT        PRIMARY KEY,
    paused_by TEXT        NOT NULL,
    reason    TEXT,
    paused_at TIMESTAMPTZ NOT NULL
);
