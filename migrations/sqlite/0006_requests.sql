-- Runs asked of the daemons (`runbookd trigger`): one replica takes each
-- (SQLite serialises writes), starts it as a run and records which.
CREATE TABLE run_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    job          TEXT    NOT NULL,
    params       TEXT    NOT NULL DEFAULT '{}',
    requested_by TEXT    NOT NULL,
    reason       TEXT,
    dry_run      INTEGER NOT NULL DEFAULT 0,
    requested_at INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'started', 'refused')),
    taken_by     TEXT,
    taken_at     INTEGER,
    run_id       INTEGER,
    error        TEXT
);
CREATE INDEX run_requests_pending ON run_requests (id) WHERE status = 'pending';

-- Jobs whose scheduled fires every replica skips until resumed.
CREATE TABLE job_pauses (
    job       TEXT    PRIMARY KEY,
    paused_by TEXT    NOT NULL,
    reason    TEXT,
    paused_at INTEGER NOT NULL
);
