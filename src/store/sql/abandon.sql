UPDATE runs SET status = 'abandoned', finished_at = $2, error = $3
WHERE id = $1 AND status = 'running'
RETURNING id
