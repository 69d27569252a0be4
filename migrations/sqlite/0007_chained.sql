-- Runs started by another run's failure (`on_failure`) have trigger
-- 'chained'. SQLite cannot alter a CHECK constraint, and rebuilding `runs`
-- would cascade-delete every child row; widening the CHECK in the stored
-- schema is the documented way for a change that existing rows satisfy
-- (sqlite.org/lang_altertable.html, "otheralter"). The table created and
-- dropped after bumps the schema cookie, so every open connection rereads
-- the schema.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, '''catchup'', ''retry'')', '''catchup'', ''retry'', ''chained'')')
 WHERE type = 'table' AND name = 'runs';
PRAGMA writable_schema = OFF;
CREATE TABLE schema_bump_0007 (x INTEGER);
DROP TABLE schema_bump_0007;
