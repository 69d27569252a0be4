DELETE FROM mail_queue WHERE status = 'sent' AND created_at < $1
