#!/usr/bin/env bash
# Benchmark: what request metrics and the access log cost, in one run.
#
# Two Trellis servers (event engine), each a plain process pinned to CPU 0 (wrk runs on
# CPU 1), loopback only, on free ports, hello mounted at /:
#   on    metrics.enabled: true, logging.access_log: true (stderr to a file on disk)
#   off   metrics.enabled: false, logging.access_log: false
# Route GET /world at 64 connections, round robin over the two servers within each
# repetition; prints the median requests/s and p99 of each, the ratio on/off, and checks
# that the "on" server's /metrics (admin listener) counted the requests.
#
# usage: bench/metrics.sh [--seconds D (5)] [--reps N (3)] [--conns C (64)] [--build DIR]
#   --build DIR  a build folder with server/trellis and plugins/ (default: build/); this
#                script does not build
set -euo pipefail

BENCH=metrics
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_options "$@"
require wrk
make_work
read -r P_ON A_ON P_OFF A_OFF < <(free_ports 4)

# start NAME PORT ADMIN_PORT ENABLED(true|false)
start() {
  local name="$1" port="$2" admin="$3" enabled="$4" dir="$WORK/$1"
  mkdir -p "$dir/data"
  cat >"$dir/trellis.yaml" <<YAML
server:
  engine: event
  listen: 127.0.0.1:$port
  admin_listen: 127.0.0.1:$admin
  data_dir: $dir/data
logging:
  level: info
  access_log: $enabled
metrics:
  enabled: $enabled
plugins:
  search_paths: ["$BUILD/plugins"]
  hello:
    mount: /
YAML
  run_trellis "$name" -sf "http://127.0.0.1:$port/world"
}

log "starting the on and off servers, pinned to CPU 0"
start on "$P_ON" "$A_ON" true
start off "$P_OFF" "$A_OFF" false
log "warming up (2 s each)"
for port in "$P_ON" "$P_OFF"; do taskset -c 1 wrk -t 1 -c "$CONNS" -d 2s "http://127.0.0.1:$port/world" >/dev/null; done

declare -A RPS=() P99=()
for rep in $(seq "$REPS"); do
  log "repetition $rep/$REPS, $CONNS connections, ${SECONDS_PER_RUN} s per server"
  for name in on off; do
    port_var="P_${name^^}"
    read -r rps p99 _ < <(measure "http://127.0.0.1:${!port_var}/world")
    RPS[$name]+="$rps "
    P99[$name]+="$p99 "
    : >"$WORK/$name/trellis.log"  # keep the access log's disk use bounded (O_APPEND)
  done
done

counted="$(curl -sf --max-time 5 "http://127.0.0.1:$A_ON/metrics" |
  awk 'index($0, "trellis_http_request_duration_seconds_count{method=\"GET\",route=\"/{name}\"} ") == 1 { print $2 }')"
uncounted="$(curl -sf --max-time 5 "http://127.0.0.1:$A_OFF/metrics" | grep -c '^trellis_http_requests_total{method="GET",route="/{name}"' || true)"

on_rps="$(tr ' ' '\n' <<<"${RPS[on]}" | grep . | median)"
off_rps="$(tr ' ' '\n' <<<"${RPS[off]}" | grep . | median)"
on_p99="$(tr ' ' '\n' <<<"${P99[on]}" | grep . | median)"
off_p99="$(tr ' ' '\n' <<<"${P99[off]}" | grep . | median)"
echo
echo "GET /world (hello), event engine, $CONNS connections, ${SECONDS_PER_RUN} s x $REPS, median"
printf '  %-36s %10s req/s   p99 %8s ms\n' "metrics + access log on" "$on_rps" "$on_p99"
printf '  %-36s %10s req/s   p99 %8s ms\n' "metrics + access log off" "$off_rps" "$off_p99"
awk -v on="$on_rps" -v off="$off_rps" 'BEGIN { if (off > 0) printf "  on/off: %.3f (%.1f%% fewer requests/s with both on)\n", on / off, 100 * (1 - on / off) }'
echo "  requests the on server's /metrics counted for route /{name} (GET /world): ${counted:-none}"
echo "  request series of /{name} on the off server: $uncounted (metrics.enabled: false records none)"
echo "  compilers running at the end (a shared machine): $(ps -eo comm= | grep -cE '^(cc1plus|cc1|ld)$' || true)"
