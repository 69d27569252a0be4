-- In batches, so pruning a large backlog never holds one huge transaction.
DELETE FROM runs
WHERE id IN (
    SELECT id FROM runs
    WHERE started_at < $1 AND status <> 'running'
    LIMIT 10000
)
