UPDATE mail_queue
SET last_error = $2, next_attempt_at = $3, attempts = attempts + $4
WHERE message_id = $1 AND status = 'pending'
