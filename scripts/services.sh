#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis servers on loopback for the test suite.
#
#   scripts/services.sh up       install (Debian packages) when missing, start or reuse, write .services/env
#   scripts/services.sh down     stop both and remove their data
#   scripts/services.sh status   say what runs where
#
# Both listen on 127.0.0.1 only, on free ports, with their data under .services/ (ignored by git).
# `up` writes .services/env, sourceable by a shell (`set -a; . .services/env; set +a`) and read by
# tests/conftest.py:
#   MAJORDOME_TEST_POSTGRES_DSN=postgresql://postgres@127.0.0.1:PORT/majordome_test
#   MAJORDOME_TEST_REDIS_URL=redis://127.0.0.1:PORT/0
# When a server cannot be installed or started, `up` prints why and records it instead
# (MAJORDOME_TEST_POSTGRES_UNAVAILABLE / MAJORDOME_TEST_REDIS_UNAVAILABLE), so the tests that need
# it skip with that reason; it exits 0, except under CI=true, where it exits 1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${MAJORDOME_SERVICES_DIR:-$ROOT/.services}
ENV_FILE=$STATE/env
PG_DB=majordome_test
PG_SUPERUSER=postgres

log() { printf 'services: %s\n' "$*" >&2; }

# -- helpers ---------------------------------------------------------------------------------

free_port() {
    # A port the kernel just handed out on loopback (a race with another program is possible but
    # harmless: the server then fails to start and says so).
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "not root and no sudo: cannot run '$*'"
        return 1
    fi
}

apt_install() {
    # apt_install PACKAGE...: Debian's packages, non-interactively; refreshes the lists once if needed.
    if ! command -v apt-get >/dev/null 2>&1; then
        log "apt-get is not available on this machine; install $* yourself"
        return 1
    fi
    log "installing $* (apt-get)"
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2; then
        return 0
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

pg_bindir() {
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return 0
    fi
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    # Debian keeps the server binaries out of PATH, one folder per major version.
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
        return 0
    fi
    return 1
}

# PostgreSQL refuses to run as root: as root, every server command runs as the postgres user.
pg_run() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$PG_OS_USER" -- "$@"
    else
        "$@"
    fi
}

ensure_pg_os_user() {
    PG_OS_USER=$(id -un)
    [ "$(id -u)" -eq 0 ] || return 0
    PG_OS_USER=postgres
    if ! id postgres >/dev/null 2>&1; then
        log "creating the system user 'postgres'"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres || return 1
    fi
}

redis_ping() {
    # redis_ping PORT: PONG from 127.0.0.1:PORT within 2 s; no redis-cli needed.
    local reply
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 reply <&3 || reply=
    exec 3<&- 3>&-
    [ "${reply%$'\r'}" = "+PONG" ]
}

redis_shutdown() {
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 0
    printf 'SHUTDOWN NOSAVE\r\n' >&3
    IFS= read -r -t 2 _ <&3 || true
    exec 3<&- 3>&-
}

# -- PostgreSQL ------------------------------------------------------------------------------

PG_DSN=
PG_REASON=

pg_data_dir() {
    # Under .services/ when the postgres user can reach it; else a private folder under /tmp,
    # recorded in .services/postgres.path.
    if [ -f "$STATE/postgres.path" ]; then
        cat "$STATE/postgres.path"
    else
        echo "$STATE/postgres"
    fi
}

pg_running() {
    local data port
    data=$(pg_data_dir)
    [ -f "$STATE/postgres.port" ] && [ -f "$data/postmaster.pid" ] || return 1
    port=$(cat "$STATE/postgres.port")
    pg_run "$PG_BIN/pg_ctl" status -D "$data" >/dev/null 2>&1 \
        && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -d "$PG_DB" -U "$PG_SUPERUSER" >/dev/null 2>&1
}

pg_stop() {
    local data
    data=$(pg_data_dir)
    if [ -f "$data/postmaster.pid" ] && PG_BIN=${PG_BIN:-$(pg_bindir)}; then
        ensure_pg_os_user || true
        pg_run "$PG_BIN/pg_ctl" stop -D "$data" -m fast -w >/dev/null 2>&1 || true
    fi
    rm -rf "$data"
    rm -f "$STATE/postgres.path" "$STATE/postgres.port"
}

pg_up() {
    if ! PG_BIN=$(pg_bindir); then
        apt_install postgresql || { PG_REASON="PostgreSQL is not installed and 'apt-get install postgresql' failed"; return 1; }
        PG_BIN=$(pg_bindir) || { PG_REASON="PostgreSQL was installed but no initdb was found"; return 1; }
    fi
    ensure_pg_os_user || { PG_REASON="running as root and the 'postgres' system user could not be created"; return 1; }

    local port data
    if pg_running; then
        port=$(cat "$STATE/postgres.port")
        log "PostgreSQL already running on 127.0.0.1:$port (reused)"
        PG_DSN="postgresql://$PG_SUPERUSER@127.0.0.1:$port/$PG_DB"
        return 0
    fi
    pg_stop  # whatever was left (a stopped or broken instance) is thrown away

    data="$STATE/postgres"
    mkdir -p "$data"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$PG_OS_USER" "$data"
        if ! runuser -u "$PG_OS_USER" -- test -w "$data"; then
            # A parent folder the postgres user cannot traverse: use a private folder in /tmp.
            rmdir "$data"
            data=$(mktemp -d /tmp/majordome-postgres.XXXXXX)
            chown "$PG_OS_USER" "$data"
            echo "$data" >"$STATE/postgres.path"
        fi
    fi
    chmod 700 "$data"

    local initlog="$STATE/postgres-initdb.log"
    if ! pg_run "$PG_BIN/initdb" -D "$data" -U "$PG_SUPERUSER" --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
        >"$initlog" 2>&1 \
        && ! pg_run "$PG_BIN/initdb" -D "$data" -U "$PG_SUPERUSER" --auth=trust --encoding=UTF8 --no-locale \
        >"$initlog" 2>&1; then
        PG_REASON="initdb failed: $(tail -n 3 "$initlog" | tr '\n' ' ')"
        return 1
    fi
    # Loopback TCP only; no Unix socket (its path could exceed the 107-byte limit in a deep checkout).
    # fsync off: the data is thrown away, and the tests then wait less for the disk.
    port=$(free_port) || { PG_REASON="no free loopback port (python3 is needed to find one)"; return 1; }
    local logfile="$data/server.log"
    if ! pg_run "$PG_BIN/pg_ctl" start -D "$data" -w -t 30 -l "$logfile" \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null 2>&1; then
        PG_REASON="PostgreSQL did not start on 127.0.0.1:$port: $(tail -n 3 "$logfile" 2>/dev/null | tr '\n' ' ')"
        return 1
    fi
    echo "$port" >"$STATE/postgres.port"
    if ! pg_run "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" "$PG_DB" >"$STATE/postgres-createdb.log" 2>&1; then
        PG_REASON="createdb $PG_DB failed: $(tail -n 3 "$STATE/postgres-createdb.log" | tr '\n' ' ')"
        return 1
    fi
    log "PostgreSQL started on 127.0.0.1:$port (data in $data)"
    PG_DSN="postgresql://$PG_SUPERUSER@127.0.0.1:$port/$PG_DB"
}

# -- Redis -----------------------------------------------------------------------------------

REDIS_URL=
REDIS_REASON=

redis_stop() {
    if [ -f "$STATE/redis.port" ]; then
        redis_shutdown "$(cat "$STATE/redis.port")"
    fi
    if [ -f "$STATE/redis/redis.pid" ]; then
        local pid
        pid=$(cat "$STATE/redis/redis.pid")
        # Only the process this script started: its pid file, and still a redis-server.
        if [ -n "$pid" ] && grep -qs redis-server "/proc/$pid/cmdline"; then
            kill "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf "$STATE/redis"
    rm -f "$STATE/redis.port"
}

redis_up() {
    local server
    if ! server=$(command -v redis-server); then
        apt_install redis-server || { REDIS_REASON="Redis is not installed and 'apt-get install redis-server' failed"; return 1; }
        server=$(command -v redis-server) || { REDIS_REASON="redis-server was installed but is not on PATH"; return 1; }
    fi
    local port
    if [ -f "$STATE/redis.port" ] && redis_ping "$(cat "$STATE/redis.port")"; then
        port=$(cat "$STATE/redis.port")
        log "Redis already running on 127.0.0.1:$port (reused)"
        REDIS_URL="redis://127.0.0.1:$port/0"
        return 0
    fi
    redis_stop
    mkdir -p "$STATE/redis"
    port=$(free_port) || { REDIS_REASON="no free loopback port (python3 is needed to find one)"; return 1; }
    if ! "$server" --port "$port" --bind 127.0.0.1 --protected-mode yes --save '' --appendonly no \
        --daemonize yes --dir "$STATE/redis" --pidfile "$STATE/redis/redis.pid" \
        --logfile "$STATE/redis/redis.log" >"$STATE/redis/start.log" 2>&1; then
        REDIS_REASON="redis-server did not start: $(cat "$STATE/redis/start.log" "$STATE/redis/redis.log" 2>/dev/null | tail -n 3 | tr '\n' ' ')"
        return 1
    fi
    local _
    for _ in $(seq 1 50); do
        if redis_ping "$port"; then
            echo "$port" >"$STATE/redis.port"
            log "Redis started on 127.0.0.1:$port"
            REDIS_URL="redis://127.0.0.1:$port/0"
            return 0
        fi
        sleep 0.1
    done
    REDIS_REASON="redis-server on 127.0.0.1:$port did not answer PING within 5 s: $(tail -n 3 "$STATE/redis/redis.log" 2>/dev/null | tr '\n' ' ')"
    return 1
}

# -- commands --------------------------------------------------------------------------------

printable() { printf '%s' "$1" | tr -c '[:print:]' ' '; }

write_env() {
    local tmp="$ENV_FILE.tmp"
    {
        echo "# Written by scripts/services.sh up; read by tests/conftest.py and make test."
        if [ -n "$PG_DSN" ]; then
            printf 'MAJORDOME_TEST_POSTGRES_DSN=%q\n' "$PG_DSN"
        else
            printf 'MAJORDOME_TEST_POSTGRES_UNAVAILABLE=%q\n' "$(printable "$PG_REASON")"
        fi
        if [ -n "$REDIS_URL" ]; then
            printf 'MAJORDOME_TEST_REDIS_URL=%q\n' "$REDIS_URL"
        else
            printf 'MAJORDOME_TEST_REDIS_UNAVAILABLE=%q\n' "$(printable "$REDIS_REASON")"
        fi
    } >"$tmp"
    mv "$tmp" "$ENV_FILE"
}

cmd_up() {
    mkdir -p "$STATE"
    local failed=0
    pg_up || { [ -n "$PG_REASON" ] || PG_REASON="PostgreSQL could not be started"; failed=1; }
    redis_up || { [ -n "$REDIS_REASON" ] || REDIS_REASON="Redis could not be started"; failed=1; }
    write_env
    if [ "$failed" -eq 1 ]; then
        [ -z "$PG_REASON" ] || log "PostgreSQL unavailable: $PG_REASON"
        [ -z "$REDIS_REASON" ] || log "Redis unavailable: $REDIS_REASON"
        if [ "${CI:-}" = "true" ]; then
            log "CI=true: the tests need both servers"
            return 1
        fi
        log "the tests that need them will be skipped with this reason"
    fi
    log "wrote ${ENV_FILE#"$ROOT"/}"
}

cmd_down() {
    [ -d "$STATE" ] || { log "nothing to stop"; return 0; }
    pg_stop
    redis_stop
    rm -rf "$STATE"
    log "stopped; ${STATE#"$ROOT"/} removed"
}

cmd_status() {
    if [ -f "$ENV_FILE" ]; then
        cat "$ENV_FILE"
    else
        echo "not up (no ${ENV_FILE#"$ROOT"/})"
    fi
    if [ -f "$STATE/redis.port" ] && redis_ping "$(cat "$STATE/redis.port")"; then
        echo "redis: answering on 127.0.0.1:$(cat "$STATE/redis.port")"
    fi
    if PG_BIN=$(pg_bindir) && [ -f "$STATE/postgres.port" ] \
        && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$(cat "$STATE/postgres.port")" >/dev/null 2>&1; then
        echo "postgres: answering on 127.0.0.1:$(cat "$STATE/postgres.port")"
    fi
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 up|down|status" >&2
        exit 2
        ;;
esac
