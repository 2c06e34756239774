#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at $PAYGATE_TEST_DATABASE_URL (default: the local
# server on 127.0.0.1:5432, user postgres, trust authentication). When none answers, starts
# a throwaway one from the installed PostgreSQL binaries (installing Debian's `postgresql`
# package if there are none) in a temporary directory on port 55432, and prints the URL to
# use. Source it: it exports PAYGATE_TEST_DATABASE_URL and, for a throwaway server,
# PAYGATE_PG_TMPDIR (stop it with `pg_stop_throwaway`).
set -euo pipefail

PAYGATE_TEST_DATABASE_URL="${PAYGATE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export PAYGATE_TEST_DATABASE_URL

pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

pg_answers() {
    local b
    b="$(pg_bin)"
    [ -n "$b" ] && "$b/psql" "$1" -qtAc 'SELECT 1' >/dev/null 2>&1
}

pg_stop_throwaway() {
    if [ -n "${PAYGATE_PG_TMPDIR:-}" ]; then
        runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$PAYGATE_PG_TMPDIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PAYGATE_PG_TMPDIR"
    fi
}

if [ -z "$(pg_bin)" ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
fi

if ! pg_answers "$PAYGATE_TEST_DATABASE_URL"; then
    # Debian's package may have left its own cluster stopped: start a private one instead
    # (initdb refuses to run as root, so as the package's `postgres` user).
    PAYGATE_PG_TMPDIR="$(mktemp -d /tmp/paygate-pg.XXXXXX)"
    export PAYGATE_PG_TMPDIR
    chown postgres "$PAYGATE_PG_TMPDIR"
    runuser -u postgres -- "$(pg_bin)/initdb" -D "$PAYGATE_PG_TMPDIR/data" -A trust -U postgres >/dev/null
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$PAYGATE_PG_TMPDIR/data" -w -l "$PAYGATE_PG_TMPDIR/log" \
        -o "-p 55432 -k $PAYGATE_PG_TMPDIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on" start >/dev/null
    PAYGATE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:55432/postgres"
    export PAYGATE_TEST_DATABASE_URL
    pg_answers "$PAYGATE_TEST_DATABASE_URL"
fi
echo "PostgreSQL for the tests: $PAYGATE_TEST_DATABASE_URL"
