DELETE FROM missed_fires WHERE recorded_at < $1
