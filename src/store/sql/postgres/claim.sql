-- See migration 0011: lock, insert and read in one round trip.
SELECT * FROM runbookd_claim($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
