SELECT message_id, subject, recipients, raw, job, run_id, status, attempts, last_error,
       created_at, next_attempt_at, sent_at
FROM mail_queue
WHERE message_id = $1
