#!/usr/bin/env python3
"""Writes fixed historical metrics as OpenMetrics, for
`promtool tsdb create-blocks-from openmetrics`.

The checks tests query Prometheus at T0 = 2026-01-08T09:00:00Z. Each series
carries a `scenario` label so one Prometheus serves every test case:

- ok / bad: 10 requests/s with 0.5% / 3% of them 5xx
  (http_requests_total{job="api",status,scenario});
- fast / slow: request durations, with 5% of slow requests over 2 s
  (http_request_duration_seconds_bucket{job="api",scenario,le});
- under / over: AI tokens, 2500 / 4000 a day (ai_tokens_total{scenario});
- steady / spike: 5xx counts that are the same every night, or ten times
  higher in the last 12 hours before T0;
- quiet: a 5xx counter that stood still for nine days (at 42, from errors
  long before) and counted one error in the night before T0. Its samples
  are off the 2-minute grid of T0 (as a scraper's are), so
  `increase(...[12h])` extrapolates to the window's edges and returns
  1.0028 tonight and 0 on the previous nights, not whole numbers.

Deterministic: the same file every run, no randomness.
"""

import math
import sys

T0 = 1767862800  # 2026-01-08T09:00:00Z
START = T0 - 9 * 86400
STEP = 120


def main(out):
    w = out.write
    times = range(START, T0 + 1, STEP)

    w("# HELP http_requests Requests served by the API.\n# TYPE http_requests counter\n")
    for scenario, error_ratio in (("ok", 0.005), ("bad", 0.03)):
        for status, share in (("200", 1 - error_ratio), ("500", error_ratio)):
            for t in times:
                v = 10.0 * share * (t - START)
                w(f'http_requests_total{{job="api",scenario="{scenario}",status="{status}"}} {v:.3f} {t}\n')
    # Nightly 5xx: ~100 per 12 h, varying a little by day; `spike` has ten
    # times that in the 12 hours before T0.
    for scenario in ("steady", "spike"):
        total = 0.0
        for t in times:
            day = (t - START) // 86400
            per_sec = (100 + 8 * math.sin(day)) / 43200.0
            if scenario == "spike" and t > T0 - 43200:
                per_sec *= 10
            total += per_sec * STEP if t > START else 0.0
            w(f'http_requests_total{{job="api",scenario="{scenario}",status="500"}} {total:.3f} {t}\n')

    # One error at T0 - 3h, sampled 50 s after the grid (ending 70 s
    # before T0): Prometheus extrapolates the increase by 120/43080.
    for t in range(START + 50, T0 + 1, STEP):
        v = 43 if t >= T0 - 3 * 3600 else 42
        w(f'http_requests_total{{job="api",scenario="quiet",status="500"}} {v} {t}\n')

    w("# HELP http_request_duration_seconds Request latency.\n# TYPE http_request_duration_seconds histogram\n")
    buckets = ("0.1", "0.5", "1", "2", "5", "+Inf")
    shares = {
        # cumulative share of requests at or below each bucket
        "fast": (0.90, 1.0, 1.0, 1.0, 1.0, 1.0),
        "slow": (0.50, 0.80, 0.90, 0.95, 1.0, 1.0),
    }
    for scenario, cum in shares.items():
        for le, share in zip(buckets, cum):
            for t in times:
                v = 10.0 * share * (t - START)
                w(f'http_request_duration_seconds_bucket{{job="api",scenario="{scenario}",le="{le}"}} {v:.3f} {t}\n')
        for t in times:
            w(f'http_request_duration_seconds_count{{job="api",scenario="{scenario}"}} {10.0 * (t - START):.3f} {t}\n')
            w(f'http_request_duration_seconds_sum{{job="api",scenario="{scenario}"}} {3.0 * (t - START):.3f} {t}\n')

    w("# HELP ai_tokens AI tokens used.\n# TYPE ai_tokens counter\n")
    for scenario, per_day in (("under", 2500.0), ("over", 4000.0)):
        for t in times:
            w(f'ai_tokens_total{{scenario="{scenario}"}} {per_day * (t - START) / 86400:.3f} {t}\n')
    w("# EOF\n")


if __name__ == "__main__":
    main(sys.stdout)
