-- Several claims in one round trip and one transaction (the fires a tick
-- found due at one instant): runbookd_claim (migration 0011) for each
-- element of the JSON array `$1`, in the array's order. The caller sorts it
-- by job, so replicas take the per-job locks in one order and never
-- deadlock. `n` is the element's position, from 1.
SELECT r.n, c.*
FROM json_array_elements($1::json) WITH ORDINALITY AS r(v, n)
CROSS JOIN LATERAL runbookd_claim(
    r.v->>'job', r.v->>'trigger', r.v->>'triggered_by',
    (r.v->>'scheduled_for')::timestamptz, (r.v->>'started_at')::timestamptz,
    r.v->>'status', (r.v->>'attempt')::bigint, r.v->>'error',
    (r.v->>'dry_run')::boolean, r.v->>'owner', (r.v->>'retry_of')::bigint) AS c
ORDER BY r.n, c.id
