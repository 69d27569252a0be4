-- A job's runs by id, newest first: the console's pages of a job
-- (`page_runs`) read this index from the top or from a `before` id.
CREATE INDEX runs_job_id ON runs (job, id DESC);
