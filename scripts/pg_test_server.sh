#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests (loopback only, trust auth, data in a temp dir).
#
#   scripts/pg_test_server.sh start          -> prints DATABASE_URL=... and PGDATA=... (one per line)
#   scripts/pg_test_server.sh stop <PGDATA>  -> stops the cluster and deletes its directory
#
# Why a script and not a fixture only: developers can start the same server by hand and point
# TEST_DATABASE_URL at it, so the test suite does not pay the initdb cost on every run.
# PostgreSQL refuses to run as root; as root the cluster is owned by and run as the `postgres` user.
set -euo pipefail

PG_BIN="${PG_BIN:-}"
if [[ -z "$PG_BIN" ]]; then
    # Newest installed major version wins (Debian layout: /usr/lib/postgresql/<major>/bin).
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
if [[ -z "$PG_BIN" || ! -x "$PG_BIN/initdb" ]]; then
    echo "pg_test_server: no PostgreSQL binaries found (set PG_BIN or apt-get install postgresql)" >&2
    exit 2
fi

run_as_owner() {
    if [[ "$(id -u)" == "0" ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

cmd_start() {
    if [[ "$(id -u)" == "0" ]] && ! id postgres >/dev/null 2>&1; then
        echo "pg_test_server: running as root but no 'postgres' user exists to own the cluster" >&2
        exit 2
    fi
    local pgdata port
    pgdata="$(mktemp -d "${TMPDIR:-/tmp}/pg_test.XXXXXX")"
    if [[ "$(id -u)" == "0" ]]; then
        chown postgres: "$pgdata"
    fi
    chmod 700 "$pgdata"
    run_as_owner "$PG_BIN/initdb" -D "$pgdata/data" --auth=trust --username=postgres \
        --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$pgdata/initdb.log" 2>&1 || {
        echo "pg_test_server: initdb failed, see $pgdata/initdb.log" >&2
        cat "$pgdata/initdb.log" >&2
        exit 1
    }
    port="$(free_port)"
    # fsync off: the data is disposable and tests run faster.
    run_as_owner "$PG_BIN/pg_ctl" -D "$pgdata/data" -l "$pgdata/server.log" -w -t 30 \
        -o "-p $port -k $pgdata -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || {
        echo "pg_test_server: server did not start, see $pgdata/server.log" >&2
        cat "$pgdata/server.log" >&2 || true
        exit 1
    }
    echo "DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
    echo "PGDATA=$pgdata"
}

cmd_stop() {
    local pgdata="${1:-}"
    if [[ -z "$pgdata" || ! -d "$pgdata/data" ]]; then
        echo "usage: $0 stop <PGDATA printed by start>" >&2
        exit 2
    fi
    if ! run_as_owner "$PG_BIN/pg_ctl" -D "$pgdata/data" -m fast -w stop >/dev/null; then
        echo "pg_test_server: pg_ctl stop failed (server already down?); removing $pgdata anyway" >&2
    fi
    rm -rf -- "$pgdata"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    *) echo "usage: $0 start | stop <PGDATA>" >&2; exit 2 ;;
esac
