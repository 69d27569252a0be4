-- Fires that did not run and never will (runbookd or its store was down,
-- outside the catch-up rule), one row per stretch, for the morning report.
CREATE TABLE missed_fires (
    id          BIGSERIAL   PRIMARY KEY,
    job         TEXT        NOT NULL,
    first_fire  TIMESTAMPTZ NOT NULL,
    last_fire   TIMESTAMPTZ NOT NULL,
    count       BIGINT      NOT NULL CHECK (count >= 1),
    reason      TEXT        NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX missed_fires_recorded_at ON missed_fires (recorded_at);

-- The process group each run started, and its leader's start time (clock
-- ticks since boot, which tells the group from a later one given the same
-- id): a daemon that finds a run's owner dead on its own host stops it.
CREATE TABLE run_processes (
    run_id       BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    host         TEXT   NOT NULL,
    pgid         BIGINT NOT NULL,
    leader_start BIGINT NOT NULL
);
CREATE INDEX run_processes_run ON run_processes (run_id);
