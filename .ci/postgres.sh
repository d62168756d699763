#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the tests and print the line that points them
# at it:
#
#     eval "$(.ci/postgres.sh)"    # sets LIVEWITNESS_TEST_POSTGRES_URL
#
# The cluster lives in a new temporary directory, listens on 127.0.0.1 at a free port
# (and a Unix socket in that directory), runs with fsync off (its data is worthless) and
# has a role and database `livewitness` with a random password. It is left running; the
# line printed on stderr says how to stop it. Needs the PostgreSQL server binaries
# (Debian: apt-get install postgresql) and python3. Run as root, the cluster runs as the
# `postgres` user; run as anyone else, as that user.
#
# Only the export line goes to stdout, so that `eval` runs nothing else.
set -euo pipefail

bindir="${PG_BINDIR:-}"
if [[ -z "$bindir" ]]; then
    # Debian keeps the server binaries out of PATH, one directory per major version.
    bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
    bindir="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
fi
if [[ ! -x "$bindir/initdb" ]]; then
    echo "postgres.sh: no PostgreSQL server binaries (initdb) found; set PG_BINDIR" >&2
    exit 1
fi

dir="$(mktemp -d /tmp/livewitness-pg.XXXXXX)"
run_as=()
if [[ "$(id -u)" == 0 ]]; then
    # initdb and postgres refuse to run as root.
    chown postgres: "$dir"
    run_as=(runuser -u postgres --)
fi

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"

# The superuser connects over the socket without a password; everyone else over TCP with one.
"${run_as[@]}" "$bindir/initdb" --pgdata="$dir/data" --username=postgres --encoding=UTF8 \
    --locale=C --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
}
"${run_as[@]}" "$bindir/pg_ctl" --pgdata="$dir/data" --log="$dir/server.log" --wait start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    >/dev/null || {
    cat "$dir/server.log" >&2
    exit 1
}

# CREATEDB so that a test may make a database of its own, not only a schema.
"${run_as[@]}" "$bindir/psql" --host="$dir" --port="$port" --username=postgres --dbname=postgres \
    --quiet --no-psqlrc --set=ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE ROLE livewitness LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE livewitness OWNER livewitness;
SQL

stop="${run_as[*]:+${run_as[*]} }$bindir/pg_ctl --pgdata=$dir/data stop"
echo "postgres.sh: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port," \
    "data in $dir; stop it with: $stop" >&2
echo "export LIVEWITNESS_TEST_POSTGRES_URL='postgresql+psycopg://livewitness:$password@127.0.0.1:$port/livewitness'"
