INSERT INTO mail_queue (message_id, subject, recipients, raw, job, run_id, status, attempts,
                        created_at, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8)
ON CONFLICT (message_id) DO NOTHING
