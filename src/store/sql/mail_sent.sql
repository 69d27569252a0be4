UPDATE mail_queue SET status = 'sent', sent_at = $2, last_error = NULL WHERE message_id = $1
