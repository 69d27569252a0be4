#!/usr/bin/env bash
# Benchmarks that need the test services (Postgres, Redis, moto, Prometheus,
# Alertmanager): starts them as scripts/test.sh does, then runs
#   cargo bench --bench "${1:-checklist}"
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
start_services
log "cargo bench --bench ${1:-checklist}"
cargo bench --bench "${1:-checklist}"
