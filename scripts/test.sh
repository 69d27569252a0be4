#!/usr/bin/env bash
# The whole test suite. On a fresh machine it installs and starts every
# service the tests need, runs all tests, and stops what it started.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -- NAME    # extra arguments go to `cargo test`
#
# Services: Postgres (an existing one at RUNBOOKD_TEST_PG_URL, default
# postgres://postgres@127.0.0.1:5432/postgres, else a throwaway cluster made
# with initdb on 127.0.0.1:55432).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

STATE=$(mktemp -d /tmp/runbookd-test.XXXXXX)
chmod 755 "$STATE"
STARTED=()
cleanup() {
  local rc=$?
  for ((i=${#STARTED[@]}-1; i>=0; i--)); do
    eval "${STARTED[$i]}" >/dev/null 2>&1 || true
  done
  rm -rf "$STATE"
  exit $rc
}
trap cleanup EXIT INT TERM

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root to run: $*"; fi
}

apt_install() {
  log "installing $* (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$STATE/apt.log" 2>&1 \
    || { as_root apt-get update -q >>"$STATE/apt.log" 2>&1 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$STATE/apt.log" 2>&1; } \
    || { cat "$STATE/apt.log" >&2; die "apt-get install $* failed"; }
}

port_open() { timeout 2 bash -c "</dev/tcp/$1/$2" 2>/dev/null; }

wait_port() {
  local host=$1 port=$2 what=$3
  for _ in $(seq 1 100); do port_open "$host" "$port" && return 0; sleep 0.1; done
  die "$what did not start listening on $host:$port"
}

# --- Postgres -------------------------------------------------------------
start_postgres() {
  local url=${RUNBOOKD_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  local hostport=${url#*@}; hostport=${hostport%%/*}
  if port_open "${hostport%%:*}" "${hostport##*:}"; then
    log "Postgres: using $hostport"
    export RUNBOOKD_TEST_PG_URL=$url
    return
  fi
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    apt_install postgresql
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  local runas=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    runas=(runuser -u postgres --)
  fi
  local data="$STATE/pg"
  mkdir -p "$data" && [ "$(id -u)" = 0 ] && chown postgres "$data"
  log "Postgres: throwaway cluster on 127.0.0.1:55432"
  "${runas[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >"$STATE/initdb.log" 2>&1 \
    || { cat "$STATE/initdb.log" >&2; die "initdb failed"; }
  "${runas[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-h 127.0.0.1 -p 55432 -k $data -c fsync=off" start >/dev/null \
    || { cat "$data/server.log" >&2; die "Postgres did not start"; }
  STARTED+=("${runas[*]} $bindir/pg_ctl -D $data -m immediate stop")
  export RUNBOOKD_TEST_PG_URL=postgres://postgres@127.0.0.1:55432/postgres
}

start_postgres

log "cargo test --features integration $*"
cargo test --features integration "$@"
