//! Big histories for benchmarks, loaded with set-based SQL (a million runs
//! in seconds), not through the store.

/// Loads a big history straight into a Postgres store, as 90 days of a
/// live daemon would leave it: `jobs` jobs every 5 minutes (the first,
/// `watch`, a checklist with two check results a run), `daily-checklist`
/// daily with one, each ending now, a failure a day per job. Returns the
/// number of runs. 39 jobs give 1,010,970 runs.
pub async fn load_history(url: &str, jobs: usize) -> u64 {
    let pool = sqlx::PgPool::connect(url)
        .await
        .expect("connect to the bench database");
    let mut names = vec!["watch".to_string()];
    names.extend((1..jobs).map(|i| format!("job-{i:02}")));
    for name in &names {
        sqlx::query(
            "INSERT INTO runs (job, \"trigger\", triggered_by, scheduled_for, started_at, finished_at,
                               status, attempt, owner, heartbeat_at)
             SELECT $1, 'schedule', 'scheduler', t, t + interval '1 second',
                    t + interval '1 second' * (2 + (extract(epoch from t)::bigint % 5)),
                    CASE WHEN extract(epoch from t)::bigint % 86400 = 3600 THEN 'failed' ELSE 'succeeded' END,
                    1, 'bench:1:x', t + interval '3 seconds'
             FROM generate_series(to_timestamp(floor(extract(epoch from now()) / 300) * 300) - interval '90 days',
                                  now() - interval '5 minutes', interval '5 minutes') AS t",
        )
        .bind(name)
        .execute(&pool)
        .await
        .expect("bulk insert runs");
    }
    sqlx::query(
        "INSERT INTO runs (job, \"trigger\", triggered_by, scheduled_for, started_at, finished_at,
                           status, attempt, owner, heartbeat_at)
         SELECT 'daily-checklist', 'schedule', 'scheduler', t, t, t + interval '4 seconds', 'succeeded', 1,
                'bench:1:x', t
         FROM generate_series(date_trunc('day', now()) - interval '90 days' + interval '9 hours',
                              now() - interval '1 minute', interval '1 day') AS t",
    )
    .execute(&pool)
    .await
    .expect("insert checklist runs");
    for (pos, (job, check, scale)) in [
        ("watch", "error-rate-5m", 0.01),
        ("watch", "latency-p99", 1.5),
        ("daily-checklist", "ai-token-budget", 3000.0),
    ]
    .iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO check_results (run_id, position, check_name, status, value_number, threshold, reason, duration_ms)
             SELECT id, $1, $2, 'pass', random() * $3, 'fail if > 1', 'ok', 3 FROM runs WHERE job = $4",
        )
        .bind(pos as i32 % 2)
        .bind(*check)
        .bind(*scale)
        .bind(*job)
        .execute(&pool)
        .await
        .expect("insert check results");
    }
    sqlx::query("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM runs")
        .fetch_one(&pool)
        .await
        .expect("count runs");
    n as u64
}

/// The jobs file that matches [`load_history`]'s history: `watch` and
/// `daily-checklist` with their checks, and `job-NN` commands every 5
/// minutes, `jobs` in all.
pub fn jobs_yaml(jobs: usize) -> String {
    let mut y = String::from(
        "jobs:
  watch:
    kind: checklist
    schedule: \"*/5 * * * *\"
    timezone: UTC
    checks:
      - {name: error-rate-5m, kind: prometheus, url: \"http://127.0.0.1:9\", query: x, fail_if: \"> 0.05\"}
      - {name: latency-p99, kind: prometheus, url: \"http://127.0.0.1:9\", query: x, fail_if: \"> 2\"}
  daily-checklist:
    kind: checklist
    schedule: \"0 9 * * *\"
    timezone: UTC
    checks:
      - {name: ai-token-budget, kind: prometheus, url: \"http://127.0.0.1:9\", query: x, fail_if: \"> 4500\"}
",
    );
    for i in 1..jobs {
        y.push_str(&format!(
            "  job-{i:02}:\n    kind: command\n    argv: [\"true\"]\n    schedule: \"*/5 * * * *\"\n    timezone: UTC\n"
        ));
    }
    y
}
