-- One row per step of a run that acts on the outside world, written as the
-- step starts and again as it ends, so a crash leaves the steps so far.
CREATE TABLE run_steps (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    status      TEXT    NOT NULL
                CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    detail      TEXT    NOT NULL,
    -- JSON: what a later reader needs, e.g. a snapshot identifier.
    payload     TEXT,
    PRIMARY KEY (run_id, position)
);
