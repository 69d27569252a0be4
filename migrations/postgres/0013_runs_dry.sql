-- A job's latest dry run (the console's jobs page, `jobs`) without reading
-- every run of the job: dry runs are few, so the index is small.
CREATE INDEX IF NOT EXISTS runs_job_dry ON runs (job, started_at DESC, id DESC) WHERE dry_run;
