-- One row per check result of a checklist run, in the checklist's order.
CREATE TABLE check_results (
    run_id       BIGINT           NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position     INTEGER          NOT NULL,
    check_name   TEXT             NOT NULL,
    status       TEXT             NOT NULL CHECK (status IN ('pass', 'warn', 'fail', 'error')),
    -- The measured value: a number when it is one, so runs can be compared.
    value_number DOUBLE PRECISION,
    value_text   TEXT,
    threshold    TEXT,
    reason       TEXT             NOT NULL,
    duration_ms  BIGINT           NOT NULL,
    PRIMARY KEY (run_id, position)
);

-- "This check over time", for later runs and the morning report.
CREATE INDEX check_results_by_name ON check_results (check_name, run_id DESC);
