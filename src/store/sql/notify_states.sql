SELECT job, failing, run_id, since FROM notify_state ORDER BY job
