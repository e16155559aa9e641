#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the transfer-catalog tests.
#
#   export AMS02_TEST_PG_URL="$(bash scripts/pg_test_server.sh)"   # start (or reuse); prints the URL
#   python3 -m pytest tests/test_transfer*.py
#   bash scripts/pg_test_server.sh stop                             # stop it and delete its data
#
# Installs PostgreSQL from Debian's packages if no server binaries are found (needs root
# and apt-get). The cluster lives in $AMS02_PG_DIR (default /tmp/ams02-pg-test), listens
# on 127.0.0.1 only, port $AMS02_PG_PORT (default: a free one), trust authentication for
# the superuser "ams02"; the URL printed names the database "ams02_test". Only the URL goes
# to stdout; progress goes to stderr. Running it again while the server is up reprints
# the URL.
set -euo pipefail

DIR="${AMS02_PG_DIR:-/tmp/ams02-pg-test}"
log() { echo "pg_test_server: $*" >&2; }

find_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
      echo "$d"
      return 0
    fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

# Runs a command as the unprivileged owner of the cluster (PostgreSQL refuses root).
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

url() { echo "postgresql://ams02@127.0.0.1:$(cat "$DIR/port")/ams02_test"; }

if [ "${1:-start}" = "stop" ]; then
  if BIN="$(find_bin)" && [ -f "$DIR/data/postmaster.pid" ]; then
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >&2 || true
  fi
  rm -rf "$DIR"
  log "stopped; removed $DIR"
  exit 0
fi

if ! BIN="$(find_bin)"; then
  log "PostgreSQL not found: installing it from Debian's packages"
  if [ "$(id -u)" != 0 ]; then
    log "error: installing PostgreSQL needs root (apt-get install postgresql)"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
  BIN="$(find_bin)"
fi

if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
fi

# Already running? Reprint the URL.
if [ -f "$DIR/port" ] && [ -f "$DIR/data/postmaster.pid" ] \
   && as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  url
  exit 0
fi

rm -rf "$DIR"
mkdir -p "$DIR"
if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; fi
PORT="${AMS02_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
echo "$PORT" > "$DIR/port"

log "initdb in $DIR/data (PostgreSQL $("$BIN/postgres" --version | awk '{print $3}'))"
as_owner "$BIN/initdb" -D "$DIR/data" -U ams02 --auth=trust -E UTF8 --no-locale >/dev/null
as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c full_page_writes=off -c max_connections=50" \
  start >&2
as_owner "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U ams02 -d postgres -q -v ON_ERROR_STOP=1 \
  -c "CREATE DATABASE ams02_test" >&2
log "listening on 127.0.0.1:$PORT (log: $DIR/server.log)"
url
