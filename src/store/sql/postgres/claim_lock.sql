-- One claim of a job at a time, until the claiming transaction ends. Ids
-- are drawn at insert, not at commit, so without it a later claim could
-- commit first and see nothing running, while the earlier one, committing
-- after, sees only a later id: both `forbid` claims would run.
SELECT 1 AS locked FROM pg_advisory_xact_lock(hashtextextended('runbookd claim ' || $1, 0))
