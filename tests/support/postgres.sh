#!/usr/bin/env bash
# A throwaway PostgreSQL server for the database test pass, in a folder of its own, on
# loopback only, trusting local connections.
#   tests/support/postgres.sh start DIR PORT   initdb (the first time) + start; prints the url
#   tests/support/postgres.sh stop DIR         stops the server (by its postmaster PID)
set -euo pipefail
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
command="$1" dir="$2"

# The server's programs run as another user (initdb and postgres refuse root), who may not
# be allowed into the caller's working directory (a checkout under /root): work from /,
# and keep their messages in log files, never in what this script prints.
cd /

# initdb and postgres refuse to run as root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$command" in
  start)
    port="$3"
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    if [ ! -d "$dir/data" ]; then
      as_owner "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
        { echo "postgres.sh: initdb failed; see $dir/initdb.log" >&2; exit 1; }
      # The postgres user (the tests' own) needs no password; any other role must give the
      # right one, so that a test can see a wrong password refused.
      printf '%s\n' "local all all trust" "host all postgres 127.0.0.1/32 trust" \
        "host all all 127.0.0.1/32 scram-sha-256" >"$dir/data/pg_hba.conf"
    fi
    as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300" start >"$dir/pg_ctl.log" 2>&1 ||
      { echo "postgres.sh: pg_ctl start failed; see $dir/pg_ctl.log and $dir/server.log" >&2; exit 1; }
    echo "postgresql://postgres@127.0.0.1:$port"
    ;;
  stop)
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    pid="$(head -1 "$dir/data/postmaster.pid")"
    kill -INT "$pid" 2>/dev/null || true   # fast shutdown
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
