-- Pending mail: how much, and the oldest's queue time (NULL when none).
SELECT COUNT(*) AS pending, MIN(created_at) AS oldest
FROM mail_queue
WHERE status = 'pending'
