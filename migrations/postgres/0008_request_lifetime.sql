-- A request has a lifetime: a daemon never takes it after `expires_at`,
-- and it is recorded `expired`. A pending one can be taken back
-- (`withdrawn`), by whom is `closed_by`. Requests left pending from before
-- lifetimes get the default one (5 minutes) from when they were asked, so
-- a request nobody still wants never runs after the upgrade.
ALTER TABLE run_requests ADD COLUMN expires_at TIMESTAMPTZ;
ALTER TABLE run_requests ADD COLUMN closed_by TEXT;
ALTER TABLE run_requests ADD COLUMN closed_at TIMESTAMPTZ;
-- `trigger --confirm`: a change that takes production down, asked for in
-- so many words.
ALTER TABLE run_requests ADD COLUMN confirmed BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE run_requests SET expires_at = requested_at + interval '5 minutes'
 WHERE status = 'pending';
ALTER TABLE run_requests DROP CONSTRAINT run_requests_status_check;
ALTER TABLE run_requests ADD CONSTRAINT run_requests_status_check
    CHECK (status IN ('pending', 'started', 'refused', 'expired', 'withdrawn')) NOT VALID;
ALTER TABLE run_requests VALIDATE CONSTRAINT run_requests_status_check;
