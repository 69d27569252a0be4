CREATE INDEX runs_job_id ON runs (job, id DESC);
