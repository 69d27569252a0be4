-- One batch of the prune (the caller repeats it until nothing is left):
-- each batch is its own short transaction, so pruning a large backlog never
-- holds one huge transaction, nor the SQLite write lock for long.
DELETE FROM runs
WHERE id IN (
    SELECT id FROM runs
    WHERE started_at < $1 AND status <> 'running'
    LIMIT 1000
)
