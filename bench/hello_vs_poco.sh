#!/usr/bin/env bash
# Benchmark: Trellis serving hello (access log and request ids on) against a plain Poco
# HTTPServer with the same thread settings answering the same bytes. One run, loopback,
# server pinned to CPU 0 and wrk to CPU 1, interleaved repetitions, medians, ratios; then
# a count of connections that were never answered at 256 (wrk does not report those).
#
# usage: bench/hello_vs_poco.sh [SECONDS_PER_RUN (10)] [REPETITIONS (3)]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_RUN="${1:-10}"
REPS="${2:-3}"
BUILD="$ROOT/build"
TRELLIS_PORT=18181
PLAIN_PORT=18182
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

command -v wrk >/dev/null || { echo "installing wrk" >&2; apt-get install -y -qq wrk >/dev/null; }
"$ROOT/dev" build >/dev/null
cmake --build "$BUILD" --target plain_poco_server -j 2 >/dev/null

cat >"$WORK/trellis.yaml" <<YAML
server:
  listen: 127.0.0.1:$TRELLIS_PORT
  admin_enabled: false
logging:
  access_log: true
plugins:
  search_paths: ["$BUILD/plugins"]
  hello: {}
YAML

taskset -c 0 "$BUILD/server/trellis" serve -c "$WORK/trellis.yaml" 2>"$WORK/trellis.log" &
PIDS+=($!)
taskset -c 0 "$BUILD/bench/plain_poco_server" "$PLAIN_PORT" &
PIDS+=($!)
sleep 1
curl -sf "localhost:$TRELLIS_PORT/hello/world" >/dev/null
curl -sf "localhost:$PLAIN_PORT/hello/world" >/dev/null

# wrk --latency output -> "rps p50_ms p99_ms"
measure() {
  local port="$1" conns="$2"
  taskset -c 1 wrk -t 1 -c "$conns" -d "${SECONDS_PER_RUN}s" --latency "http://127.0.0.1:$port/hello/world" |
    awk '
      function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
      /Requests\/sec/ { rps = $2 }
      $1 == "50%" { p50 = ms($2) }
      $1 == "99%" { p99 = ms($2) }
      END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf "%-6s %-8s %12s %10s %10s\n" conns server "requests/s" "p50 ms" "p99 ms"
for conns in 64 256; do
  : >"$WORK/trellis-$conns"; : >"$WORK/plain-$conns"
  for _ in $(seq "$REPS"); do  # interleaved so that drift hits both alike
    measure "$TRELLIS_PORT" "$conns" >>"$WORK/trellis-$conns"
    measure "$PLAIN_PORT" "$conns" >>"$WORK/plain-$conns"
  done
  for server in trellis plain; do
    rps=$(cut -d' ' -f1 "$WORK/$server-$conns" | median)
    p50=$(cut -d' ' -f2 "$WORK/$server-$conns" | median)
    p99=$(cut -d' ' -f3 "$WORK/$server-$conns" | median)
    printf "%-6s %-8s %12.0f %10.3f %10.3f\n" "$conns" "$server" "$rps" "$p50" "$p99"
    eval "${server}_rps_$conns=$rps"
  done
  ratio=$(awk -v a="$(eval echo \$trellis_rps_$conns)" -v b="$(eval echo \$plain_rps_$conns)" 'BEGIN { printf "%.2f", a / b }')
  echo "ratio trellis/plain at $conns connections: $ratio"
done

echo "connections never answered at 256 (keep-alive clients, ${SECONDS_PER_RUN} s):"
for port in "$TRELLIS_PORT" "$PLAIN_PORT"; do
  name=$([ "$port" = "$TRELLIS_PORT" ] && echo trellis || echo plain)
  printf "  %-8s " "$name"
  taskset -c 1 python3 "$ROOT/bench/keepalive_clients.py" "$port" /hello/world --connections 256 --seconds "$SECONDS_PER_RUN"
done
