#!/usr/bin/env bash
# Benchmark: what the rate_limit middleware costs, in one run.
#
# Four Trellis servers (event engine), each a plain process pinned to CPU 0 (wrk runs on
# CPU 1), loopback only, on free ports, hello mounted at /, access log off, all applying
# `middleware: [rate_limit]` except the baseline:
#   baseline  hello alone (no rate_limit plugin)
#   memory    backend memory, one per-address policy too large to refuse (every request
#             is decided and allowed: the cost of the check and the two fields)
#   refused   backend memory, 1 request per hour: every request but the first is a 429
#   redis     backend redis, the same policy as memory, against a redis-server started here
#             (temporary folder, free loopback port, no persistence; it shares CPU 1 with wrk)
# Route GET /world at --conns connections, round robin over the servers within each
# repetition; prints the median requests/s and p99 of each and the ratios to the baseline,
# and checks through Redis's INFO commandstats that the redis server made one EVALSHA per
# request.
#
# usage: bench/rate_limit.sh [--seconds D (5)] [--reps N (3)] [--conns C (64)] [--build DIR]
#   --build DIR  a build folder with server/trellis and plugins/ (default: build/); this
#                script does not build
set -euo pipefail

BENCH=rate_limit
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_options "$@"
require wrk curl redis-server redis-cli
[ -f "$BUILD/plugins/rate_limit.so" ] || die "no $BUILD/plugins/rate_limit.so; build first"
make_work
read -r P_BASE A_BASE P_MEM A_MEM P_REF A_REF P_RED A_RED P_REDIS < <(free_ports 9)

log "starting redis-server on 127.0.0.1:$P_REDIS"
mkdir -p "$WORK/redis"
redis-server --port "$P_REDIS" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/redis" \
  </dev/null >"$WORK/redis/redis.log" 2>&1 &
PID[redis-server]=$!  # not PID[redis]: that is the Trellis server of that name
for _ in $(seq 50); do
  [ "$(redis-cli -p "$P_REDIS" ping 2>/dev/null)" = PONG ] && break
  sleep 0.1
done
[ "$(redis-cli -p "$P_REDIS" ping 2>/dev/null)" = PONG ] || { echo "rate_limit.sh: redis-server did not start" >&2; exit 1; }

# start NAME PORT ADMIN_PORT RATE_LIMIT_CONFIG ("" for no rate_limit at all)
start() {
  local name="$1" port="$2" admin="$3" config="$4" dir="$WORK/$1" plugin="" global=""
  mkdir -p "$dir/data"
  if [ -n "$config" ]; then
    plugin="  rate_limit:
    config: $config"
    global="middleware: [rate_limit]"
  fi
  cat >"$dir/trellis.yaml" <<YAML
server:
  engine: event
  listen: 127.0.0.1:$port
  admin_listen: 127.0.0.1:$admin
  data_dir: $dir/data
logging:
  access_log: false
$global
plugins:
  search_paths: ["$BUILD/plugins"]
  hello:
    mount: /
$plugin
YAML
  run_trellis "$name" -s "http://127.0.0.1:$port/livez"
}

WIDE='{policies: [{name: per_address, key: client_address, limit: 1000000000, window: 1h}]}'
log "starting the baseline, memory, refused and redis servers, pinned to CPU 0"
start baseline "$P_BASE" "$A_BASE" ""
start memory "$P_MEM" "$A_MEM" "$WIDE"
start refused "$P_REF" "$A_REF" '{policies: [{name: per_address, key: client_address, limit: 1, window: 1h}]}'
start redis "$P_RED" "$A_RED" "{backend: redis, redis: {port: $P_REDIS}, policies: [{name: per_address, key: client_address, limit: 1000000000, window: 1h}]}"
NAMES=(baseline memory refused redis)
declare -A PORT=([baseline]=$P_BASE [memory]=$P_MEM [refused]=$P_REF [redis]=$P_RED)

# The fields are there, and the refused server refuses.
curl -s -D - -o /dev/null "http://127.0.0.1:$P_RED/world" | grep -qi '^RateLimit: "per_address";r=' ||
  { echo "rate_limit.sh: the redis server sent no RateLimit field" >&2; exit 1; }
curl -s -o /dev/null "http://127.0.0.1:$P_REF/world"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_REF/world")" = 429 ] ||
  { echo "rate_limit.sh: the refused server did not answer 429" >&2; exit 1; }

log "warming up (2 s each)"
for name in "${NAMES[@]}"; do taskset -c 1 wrk -t 1 -c "$CONNS" -d 2s "http://127.0.0.1:${PORT[$name]}/world" >/dev/null; done

declare -A RPS=() P99=() NON2XX=()
redis-cli -p "$P_REDIS" config resetstat >/dev/null
redis_requests=0
for rep in $(seq "$REPS"); do
  log "repetition $rep/$REPS, $CONNS connections, ${SECONDS_PER_RUN} s per server"
  for name in "${NAMES[@]}"; do
    read -r rps p99 non2xx < <(measure "http://127.0.0.1:${PORT[$name]}/world")
    RPS[$name]+="$rps "
    P99[$name]+="$p99 "
    NON2XX[$name]=$(( ${NON2XX[$name]:-0} + non2xx ))
    [ "$name" = redis ] && redis_requests=$(( redis_requests + $(awk -v r="$rps" -v s="$SECONDS_PER_RUN" 'BEGIN { printf "%d", r * s }') ))
  done
done
evalsha="$(redis-cli -p "$P_REDIS" info commandstats | tr -d '\r' | awk -F'[:=,]' '$1 == "cmdstat_evalsha" { print $3 }')"

echo
echo "GET /world (hello), event engine, $CONNS connections, ${SECONDS_PER_RUN} s x $REPS, median"
base_rps="$(tr ' ' '\n' <<<"${RPS[baseline]}" | grep . | median)"
for name in "${NAMES[@]}"; do
  rps="$(tr ' ' '\n' <<<"${RPS[$name]}" | grep . | median)"
  p99="$(tr ' ' '\n' <<<"${P99[$name]}" | grep . | median)"
  printf '  %-9s %10s req/s   p99 %8s ms   %s   non-2xx %s\n' "$name" "$rps" "$p99" \
    "$(awk -v r="$rps" -v b="$base_rps" 'BEGIN { if (b > 0) printf "%.3f x baseline", r / b }')" "${NON2XX[$name]}"
done
echo "  redis: EVALSHA calls ${evalsha:-0} for about $redis_requests measured requests (wrk's rate x duration; plus the requests"
echo "         wrk left unfinished at the end of each run)"
echo "  compilers running at the end (a shared machine): $(ps -eo comm= | grep -cE '^(cc1plus|cc1|ld)$' || true)"
