#!/usr/bin/env bash
# Benchmark: the notes plugin on SQLite and on PostgreSQL, GET /notes/{id} and POST /notes,
# beside GET /hello/{name} of the same server in the same run as the baseline. Loopback
# only; Trellis (and PostgreSQL) pinned to CPU 0, wrk to CPU 1; interleaved repetitions,
# medians; requests/s, p50, p99, answers that were not 2xx, and the ratio to hello.
#
# usage: bench/notes_db.sh [SECONDS_PER_RUN (10)] [REPETITIONS (3)] [CONNECTIONS (64)]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_RUN="${1:-10}"
REPS="${2:-3}"
CONNS="${3:-64}"
BUILD="$ROOT/build"
PORT=18191
WORK="$(mktemp -d)"
TRELLIS_PID=""
PG_DIR=""
cleanup() {
  [ -n "$TRELLIS_PID" ] && kill "$TRELLIS_PID" 2>/dev/null || true
  [ -n "$PG_DIR" ] && "$ROOT/tests/support/postgres.sh" stop "$PG_DIR" || true
  rm -rf "$WORK" "$PG_DIR"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "installing wrk" >&2; apt-get install -y -qq wrk >/dev/null; }
"$ROOT/dev" build >/dev/null

# Unique titles: a note's title is unique per owner.
cat >"$WORK/post.lua" <<'LUA'
local n = 0
local run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
request = function()
  n = n + 1
  return wrk.format("POST", "/notes", {["Content-Type"] = "application/json"},
                    '{"title":"bench ' .. run .. '-' .. n .. '","body":"a benchmark note"}')
end
LUA

# wrk --latency output -> "rps p50_ms p99_ms non_2xx"
measure() {
  local path="$1"; shift
  taskset -c 1 wrk -t 1 -c "$CONNS" -d "${SECONDS_PER_RUN}s" --latency "$@" "http://127.0.0.1:$PORT$path" |
    awk '
      function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
      /Requests\/sec/ { rps = $2 }
      /Non-2xx/ { bad = $NF }
      $1 == "50%" { p50 = ms($2) }
      $1 == "99%" { p99 = ms($2) }
      END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, bad }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# serve DATABASE_URL: starts Trellis with hello and notes on that database
serve() {
  cat >"$WORK/trellis.yaml" <<YAML
server:
  listen: 127.0.0.1:$PORT
  admin_enabled: false
  shutdown_delay: 0s
  data_dir: $WORK/data
logging:
  access_log: true
database:
  url: "$1"
  pool_size: 16
plugins:
  search_paths: ["$BUILD/plugins"]
  hello: {}
  notes: {}
YAML
  taskset -c 0 "$BUILD/server/trellis" serve -c "$WORK/trellis.yaml" 2>"$WORK/trellis-$2.log" &
  TRELLIS_PID=$!
  for _ in $(seq 50); do curl -sf "127.0.0.1:$PORT/hello/x" >/dev/null && break; sleep 0.2; done
  curl -sf "127.0.0.1:$PORT/notes" -H 'Content-Type: application/json' -d '{"title":"read me","body":"x"}' >/dev/null
}
stop() { kill "$TRELLIS_PID"; wait "$TRELLIS_PID" || true; TRELLIS_PID=""; }

run_backend() {
  local name="$1" url="$2"
  serve "$url" "$name"
  local id; id="$(curl -sf "127.0.0.1:$PORT/notes?title=read%20me" | sed -E 's/.*"id":([0-9]+).*/\1/')"
  : >"$WORK/$name-hello"; : >"$WORK/$name-get"; : >"$WORK/$name-post"
  for _ in $(seq "$REPS"); do  # interleaved so that drift hits all three alike
    measure /hello/world >>"$WORK/$name-hello"
    measure "/notes/$id" >>"$WORK/$name-get"
    measure /notes -s "$WORK/post.lua" >>"$WORK/$name-post"
  done
  stop
  local hello_rps; hello_rps="$(cut -d' ' -f1 "$WORK/$name-hello" | median)"
  for route in hello get post; do
    local label; label=$(case $route in hello) echo "GET /hello/world";; get) echo "GET /notes/{id}";; post) echo "POST /notes";; esac)
    local rps p50 p99 bad
    rps="$(cut -d' ' -f1 "$WORK/$name-$route" | median)"
    p50="$(cut -d' ' -f2 "$WORK/$name-$route" | median)"
    p99="$(cut -d' ' -f3 "$WORK/$name-$route" | median)"
    bad="$(cut -d' ' -f4 "$WORK/$name-$route" | median)"
    printf "%-11s %-17s %11.0f %9.3f %9.3f %8.0f %7.2f\n" "$name" "$label" "$rps" "$p50" "$p99" "$bad" \
      "$(awk -v a="$rps" -v b="$hello_rps" 'BEGIN { print a / b }')"
  done
}

PG_DIR="$(mktemp -d)"
PG_PORT=$((20000 + RANDOM % 20000))
PG_URL="$(taskset -c 0 "$ROOT/tests/support/postgres.sh" start "$PG_DIR" "$PG_PORT")"
psql -q "$PG_URL/postgres" -c "CREATE DATABASE bench" >/dev/null

echo "$CONNS connections, ${SECONDS_PER_RUN} s per run, median of $REPS; ratio = requests/s / hello's on the same server"
printf "%-11s %-17s %11s %9s %9s %8s %7s\n" database route "requests/s" "p50 ms" "p99 ms" "non-2xx" ratio
run_backend sqlite "sqlite://$WORK/data/bench.db"
run_backend postgresql "$PG_URL/bench"
