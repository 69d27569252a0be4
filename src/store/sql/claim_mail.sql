-- One sender at a time: a replica takes a due message by pushing its next
-- attempt out to the end of its lease; the others then see it not due.
UPDATE mail_queue SET next_attempt_at = $3
WHERE message_id = $1 AND status = 'pending' AND next_attempt_at <= $2
RETURNING message_id
