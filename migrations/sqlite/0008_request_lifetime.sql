-- A request has a lifetime: a daemon never takes it after `expires_at`,
-- and it is recorded `expired`. A pending one can be taken back
-- (`withdrawn`), by whom is `closed_by`. Requests left pending from before
-- lifetimes get the default one (5 minutes) from when they were asked, so
-- a request nobody still wants never runs after the upgrade. The status
-- CHECK is widened in the stored schema, as 0007 does for `runs`.
ALTER TABLE run_requests ADD COLUMN expires_at INTEGER;
ALTER TABLE run_requests ADD COLUMN closed_by TEXT;
ALTER TABLE run_requests ADD COLUMN closed_at INTEGER;
-- `trigger --confirm`: a change that takes production down, asked for in
-- so many words.
ALTER TABLE run_requests ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 0;
UPDATE run_requests SET expires_at = requested_at + 300000000 WHERE status = 'pending';
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, '''started'', ''refused'')', '''started'', ''refused'', ''expired'', ''withdrawn'')')
 WHERE type = 'table' AND name = 'run_requests';
PRAGMA writable_schema = OFF;
CREATE TABLE schema_bump_0008 (x INTEGER);
DROP TABLE schema_bump_0008;
