#!/usr/bin/env bash
# Benchmark: nginx, Trellis's event engine and Trellis's Poco engine, in one run.
#
# Servers, each a plain process pinned to CPU 0 (wrk and the other clients run on CPU 1),
# loopback only, on free ports:
#   nginx    Debian's nginx-light, one process, access log off, `return 200` with the
#            body hello sends ({"greeting":"Hello, world!","name":"world"})
#   event    Trellis, server.engine: event, hello mounted at /, notes at /notes on SQLite,
#            security.headers as global middleware, access log on (to a file on disk)
#   poco     the same with server.engine: poco
#   workers  the event server again with TRELLIS_FORCE_WORKERS=1 (every route on the
#            worker pool); reported "not available", with the reason, when the build
#            does not read it or the server does not start with it
# Routes: GET /world (hello) on all of them, GET /notes/{id} on event and poco.
#
# It installs wrk and nginx-light when missing (apt-get, as root), builds Trellis
# (RelWithDebInfo, -j1) in build-bench/, runs every target at 64 and 256 connections,
# round robin over the targets within each repetition, and prints medians (requests/s,
# p50, p99), ratios, the connections that never got a response (wrk -t C -c C with a Lua
# counter per connection), the event server's RSS idle and per idle keep-alive connection
# (10 000 by default, nginx beside it), and PASS/FAIL for each acceptance floor.
#
# usage: bench/engines.sh [--seconds D (8)] [--reps N (3)] [--idle CONNECTIONS (10000)]
#                         [--no-build] [--report-only] [--keep]
#   --report-only  exit 0 even when a floor fails or cannot be checked
#   --keep         keep the run folder (configs, logs, raw wrk results)
# Exit status: 0 when every floor passes, 1 when one fails or could not be checked.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${TRELLIS_BENCH_BUILD:-$ROOT/build-bench}"
SECONDS_PER_RUN=8
REPS=3
IDLE_CONNS=10000
BUILD_IT=1
REPORT_ONLY=0
KEEP=0
CONNS_LIST=(64 256)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_RUN="${2:?}"; shift 2 ;;
    --reps) REPS="${2:?}"; shift 2 ;;
    --idle) IDLE_CONNS="${2:?}"; shift 2 ;;
    --no-build) BUILD_IT=0; shift ;;
    --report-only) REPORT_ONLY=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "engines.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$SECONDS_PER_RUN" "$REPS" "$IDLE_CONNS"; do
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { echo "engines.sh: expected a positive number, got '$n'" >&2; exit 2; }
done

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "engines.sh: need root to run: $*" >&2; exit 1
  fi
}

# ---- tools and build ------------------------------------------------------------------

missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
NGINX=/usr/sbin/nginx

mkdir -p "$BUILD"
# The run folder lives in the build folder, on disk (the access logs are real files), and
# is removed at exit unless --keep.
WORK="$(mktemp -d "$BUILD/engines-run.XXXXXX")"
declare -A PID=()          # server name -> PID of the process this script started
declare -A UNAVAILABLE=()  # server name -> why it is not measured
cleanup() {
  local name pid left
  for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null || true; done
  for _ in $(seq 50); do  # up to 5 s for a clean stop, then KILL
    left=0
    for pid in "${PID[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${PID[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ "$KEEP" -eq 1 ]; then echo "run folder kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [ "$BUILD_IT" -eq 1 ]; then
  # RelWithDebInfo (-O2): Release's -O3 trips a false -Wrestrict in GCC 12 under -Werror.
  log "building Trellis (RelWithDebInfo, -j${JOBS:-1}) in $BUILD"
  # What is being built, for the report: the commit, and whether the tree differed from it.
  built_from="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  [ -z "$(git -C "$ROOT" status --porcelain -- server sdk plugins CMakeLists.txt 2>/dev/null)" ] ||
    built_from="$built_from + uncommitted changes to server/, sdk/ or plugins/"
  if ! TRELLIS_BUILD_DIR="$BUILD" BUILD_TYPE=RelWithDebInfo JOBS="${JOBS:-1}" \
       "$ROOT/dev" build -DBUILD_TESTING=OFF >"$WORK/build.log" 2>&1; then
    tail -40 "$WORK/build.log" >&2
    echo "engines.sh: the build failed" >&2
    exit 1
  fi
  echo "$built_from" >"$BUILD/engines-built-from"
fi
TRELLIS="$BUILD/server/trellis"
[ -x "$TRELLIS" ] || { echo "engines.sh: no $TRELLIS (run without --no-build)" >&2; exit 1; }

# ---- servers --------------------------------------------------------------------------

# Seven distinct free loopback ports, bound at once so that none is handed out twice.
read -r P_NGINX P_EVENT A_EVENT P_POCO A_POCO P_WORKERS A_WORKERS < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()')

HELLO_BODY='{"greeting":"Hello, world!","name":"world"}'

# wait_ready NAME URL: up to 10 s for a 2xx answer while the process lives.
wait_ready() {
  local name="$1" url="$2"
  for _ in $(seq 100); do
    kill -0 "${PID[$name]}" 2>/dev/null || return 1
    curl -sf -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.1
  done
  return 1
}

# not_available NAME REASON: stops the server if it runs and records why it is left out.
not_available() {
  local name="$1" reason="$2"
  if [ -n "${PID[$name]:-}" ]; then
    kill -TERM "${PID[$name]}" 2>/dev/null || true
    wait "${PID[$name]}" 2>/dev/null || true
    unset "PID[$name]"
  fi
  UNAVAILABLE[$name]="$reason"
  echo "engines.sh: $name not available: $reason" >&2
}

start_nginx() {
  local dir="$WORK/nginx"
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$P_NGINX;
    location / {
      default_type application/json;
      return 200 '$HELLO_BODY';
    }
  }
}
NGINX
  ( ulimit -n hard; exec taskset -c 0 "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" ) \
    </dev/null >"$dir/output.log" 2>&1 &
  PID[nginx]=$!
  wait_ready nginx "http://127.0.0.1:$P_NGINX/world" ||
    not_available nginx "did not start: $(tail -3 "$dir/error.log" "$dir/output.log" 2>/dev/null | tr '\n' ' ')"
}

# start_trellis NAME ENGINE PORT ADMIN_PORT [VAR=VALUE...]
# Logs (the access log among them) go to stderr, and stderr to NAME/trellis.log: Trellis
# has no log-file setting yet, so the file is the process's redirected output.
start_trellis() {
  local name="$1" engine="$2" port="$3" admin="$4"; shift 4
  local dir="$WORK/$name"
  mkdir -p "$dir/data"
  cat >"$dir/trellis.yaml" <<YAML
server:
  engine: $engine
  listen: 127.0.0.1:$port
  admin_listen: 127.0.0.1:$admin
  shutdown_delay: 0s        # a benchmark stops at once
  keep_alive_timeout: 10m   # the idle-connection measurement holds connections open
  data_dir: $dir/data
database:
  url: sqlite://bench.db
  pool_size: 16
logging:
  level: info
  access_log: true
middleware: [security.headers]
plugins:
  search_paths: ["$BUILD/plugins"]
  hello:
    mount: /
  notes: {}
  security: {}
YAML
  ( ulimit -n hard; exec env "$@" taskset -c 0 "$TRELLIS" serve -c "$dir/trellis.yaml" ) \
    </dev/null >>"$dir/trellis.log" 2>&1 &
  PID[$name]=$!
  if ! wait_ready "$name" "http://127.0.0.1:$port/world"; then
    not_available "$name" "did not start: $(grep -iE 'error|fail|unknown|refus' "$dir/trellis.log" | head -3 | tr '\n' ' ' | sed 's/ *$//')"
    return
  fi
  local head
  head="$(curl -si --max-time 2 "http://127.0.0.1:$port/world" | tr -d '\r')"
  grep -qi '^x-content-type-options: nosniff' <<<"$head" ||
    echo "engines.sh: warning: $name answers without the security headers" >&2
}

# create_note NAME PORT: prints the id of a new note (as bench/notes_db.sh does).
create_note() {
  local answer id
  answer="$(curl -sf --max-time 5 -H 'Content-Type: application/json' \
              -d '{"title":"bench note","body":"a benchmark note"}' "http://127.0.0.1:$2/notes")" || return 1
  id="$(sed -nE 's/.*"id":([0-9]+).*/\1/p' <<<"$answer")"
  [ -n "$id" ] && curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$2/notes/$id" && echo "$id"
}

vmrss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
threads_of() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }

LOAD_AVG_START="$(cut -d' ' -f1-3 /proc/loadavg)"
log "load before starting: $LOAD_AVG_START"
log "starting nginx and Trellis (event, poco) on 127.0.0.1, pinned to CPU 0"
start_nginx
start_trellis event event "$P_EVENT" "$A_EVENT"
EVENT_RSS_START=""
[ -n "${PID[event]:-}" ] && EVENT_RSS_START="$(vmrss_kib "${PID[event]}")"
start_trellis poco poco "$P_POCO" "$A_POCO"
if [ -n "${UNAVAILABLE[event]:-}" ]; then
  UNAVAILABLE[workers]="needs the event engine"
elif ! grep -qsF TRELLIS_FORCE_WORKERS "$TRELLIS"; then
  UNAVAILABLE[workers]="this build does not read TRELLIS_FORCE_WORKERS"
  echo "engines.sh: workers not available: ${UNAVAILABLE[workers]}" >&2
else
  start_trellis workers event "$P_WORKERS" "$A_WORKERS" TRELLIS_FORCE_WORKERS=1
fi

NOTE_ID_event="" NOTE_ID_poco=""
for name in event poco; do
  [ -n "${UNAVAILABLE[$name]:-}" ] && continue
  port_var="P_${name^^}"
  id="$(create_note "$name" "${!port_var}")" || id=""
  if [ -n "$id" ]; then
    printf -v "NOTE_ID_$name" '%s' "$id"
  else
    UNAVAILABLE[$name-notes]="creating a note failed"
  fi
done

# Targets: NAME SERVER PORT PATH. A target whose server is not available is listed in the
# results as such.
TARGETS=(
  "nginx nginx $P_NGINX /world"
  "event event $P_EVENT /world"
  "poco poco $P_POCO /world"
  "workers workers $P_WORKERS /world"
  "event-notes event $P_EVENT /notes/${NOTE_ID_event:-0}"
  "poco-notes poco $P_POCO /notes/${NOTE_ID_poco:-0}"
)
available() {  # TARGET_NAME SERVER
  [ -z "${UNAVAILABLE[$2]:-}" ] && [ -z "${UNAVAILABLE[$1]:-}" ]
}
for target in "${TARGETS[@]}"; do
  read -r name server _ <<<"$target"
  [ "$name" != "$server" ] && [ -n "${UNAVAILABLE[$server]:-}" ] && [ -z "${UNAVAILABLE[$name]:-}" ] &&
    UNAVAILABLE[$name]="${UNAVAILABLE[$server]}"
done

# ---- measuring ------------------------------------------------------------------------

mkdir -p "$WORK/results"
declare -A ACCESS_LOG_LINES=()
# Counts the access-log lines a Trellis server wrote and empties its log file (opened with
# O_APPEND, so the server keeps writing at the new end), keeping the disk use bounded.
take_access_log() {
  local file="$WORK/$1/trellis.log"
  [ -f "$file" ] || return 0
  ACCESS_LOG_LINES[$1]=$(( ${ACCESS_LOG_LINES[$1]:-0} + $(wc -l <"$file") ))
  truncate -s 0 "$file"
}

# measure CONNS PORT PATH: one wrk run -> "rps p50_ms p99_ms non_2xx socket_errors"
measure() {
  taskset -c 1 wrk -t 1 -c "$1" -d "${SECONDS_PER_RUN}s" --timeout 10s --latency "http://127.0.0.1:$2$3" |
    awk '
      function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
      /Requests\/sec/ { rps = $2 }
      /Non-2xx/ { bad = $NF }
      /Socket errors/ { err = $4 + $6 + $8 + $10 }
      $1 == "50%" { p50 = ms($2) }
      $1 == "99%" { p99 = ms($2) }
      END { printf "%.0f %.3f %.3f %d %d\n", rps, p50, p99, bad, err }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
busiest_other() {  # compilers running right now: a sign that the machine is shared
  ps -eo comm= | grep -cE '^(cc1plus|cc1|ld|ld\.gold|ld\.lld|clang|clang\+\+|rustc)$' || true
}

log "warming up (2 s per target at 256 connections)"
for target in "${TARGETS[@]}"; do
  read -r name server port path <<<"$target"
  available "$name" "$server" || continue
  taskset -c 1 wrk -t 1 -c 256 -d 2s "http://127.0.0.1:$port$path" >/dev/null
  take_access_log "$server"
done

MAX_COMPILERS=0 SUM_COMPILERS=0 SAMPLES=0
total_runs=$(( REPS * ${#CONNS_LIST[@]} ))
run=0
for rep in $(seq "$REPS"); do
  for conns in "${CONNS_LIST[@]}"; do
    run=$((run + 1))
    log "repetition $rep/$REPS, $conns connections ($run/$total_runs), ${SECONDS_PER_RUN} s per target"
    for target in "${TARGETS[@]}"; do  # round robin: drift hits every target alike
      read -r name server port path <<<"$target"
      available "$name" "$server" || continue
      c=$(busiest_other); [ "$c" -gt "$MAX_COMPILERS" ] && MAX_COMPILERS=$c
      SUM_COMPILERS=$((SUM_COMPILERS + c)); SAMPLES=$((SAMPLES + 1))
      measure "$conns" "$port" "$path" >>"$WORK/results/$name-$conns"
      take_access_log "$server"
    done
  done
done

# Connections never answered: wrk 4.1 counts completed requests only, so a connection that
# never gets a byte goes unnoticed. One wrk thread per connection, a Lua counter per thread.
# The Lua script holds every connection's first request for 3 s (see its header).
MAX_CONNS="${CONNS_LIST[-1]}"
log "connections never answered: wrk -t $MAX_CONNS -c $MAX_CONNS, ${SECONDS_PER_RUN} s per target"
declare -A NEVER=() NOT_STARTED=()
for target in "${TARGETS[@]}"; do
  read -r name server port path <<<"$target"
  available "$name" "$server" || continue
  out="$(taskset -c 1 wrk -t "$MAX_CONNS" -c "$MAX_CONNS" -d "$((SECONDS_PER_RUN + 3))s" --timeout 10s \
          -s "$ROOT/bench/count_responses.lua" "http://127.0.0.1:$port$path")"
  NEVER[$name]="$(sed -nE 's/.*never_answered=([0-9]+).*/\1/p' <<<"$out")"
  NOT_STARTED[$name]="$(sed -nE 's/.*not_started=([0-9]+).*/\1/p' <<<"$out")"
  [ -n "${NEVER[$name]}" ] || NEVER[$name]="?"
  [ -n "${NOT_STARTED[$name]}" ] || NOT_STARTED[$name]="?"
  take_access_log "$server"
done

declare -A THREADS=()
for name in "${!PID[@]}"; do THREADS[$name]="$(threads_of "${PID[$name]}")"; done

# Idle keep-alive connections: one request each, then held open from a separate process.
declare -A IDLE=()
EVENT_RSS_IDLE=""
idle_test() {  # NAME PORT
  local name="$1" port="$2"
  [ -n "${PID[$name]:-}" ] || return 0
  sleep 2  # let the server settle after the load
  [ "$name" = event ] && EVENT_RSS_IDLE="$(vmrss_kib "${PID[$name]}")"
  log "$IDLE_CONNS idle keep-alive connections to $name"
  IDLE[$name]="$(taskset -c 1 timeout 300 python3 "$ROOT/bench/idle_connections.py" "${PID[$name]}" "$port" \
                   --path /world --connections "$IDLE_CONNS")" || IDLE[$name]="failed"
  take_access_log "$name"
  if ! curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$port/world"; then
    IDLE[$name]="${IDLE[$name]} (the server no longer answers afterwards)"
  fi
}
[ -z "${UNAVAILABLE[event]:-}" ] && idle_test event "$P_EVENT"
[ -z "${UNAVAILABLE[nginx]:-}" ] && idle_test nginx "$P_NGINX"

# ---- report ---------------------------------------------------------------------------

declare -A RPS=() P99=() BAD=()
label() {
  case "$1" in
    nginx) echo "nginx return 200" ;;
    event) echo "event hello" ;;
    poco) echo "poco hello" ;;
    workers) echo "event hello, worker pool" ;;
    event-notes) echo "event GET /notes/{id}" ;;
    poco-notes) echo "poco GET /notes/{id}" ;;
  esac
}
echo
echo "== nginx vs Trellis engines: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, servers on CPU 0, wrk on CPU 1"
echo "   ${SECONDS_PER_RUN} s per run, median of $REPS interleaved repetitions; Trellis: access log on (to a file),"
echo "   security.headers global, hello at /, notes on SQLite (pool 16)"
echo "   Trellis built from $(cat "$BUILD/engines-built-from" 2>/dev/null || echo "an unknown tree (not built by this script)");" \
  "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo
printf "| %-5s | %-26s | %10s | %8s | %8s | %7s | %9s |\n" conns target "requests/s" "p50 ms" "p99 ms" non-2xx "sock err"
printf "|%s|%s|%s|%s|%s|%s|%s|\n" "-------" "----------------------------" "------------" "----------" "----------" "---------" "-----------"
for conns in "${CONNS_LIST[@]}"; do
  for target in "${TARGETS[@]}"; do
    read -r name server _ <<<"$target"
    if ! available "$name" "$server"; then
      printf "| %-5s | %-26s | %s |\n" "$conns" "$(label "$name")" "not available: ${UNAVAILABLE[$name]:-${UNAVAILABLE[$server]}}"
      continue
    fi
    f="$WORK/results/$name-$conns"
    rps=$(cut -d' ' -f1 "$f" | median); p50=$(cut -d' ' -f2 "$f" | median); p99=$(cut -d' ' -f3 "$f" | median)
    bad=$(awk '{ s += $4 } END { print s + 0 }' "$f"); err=$(awk '{ s += $5 } END { print s + 0 }' "$f")
    RPS[$name-$conns]=$rps; P99[$name-$conns]=$p99; BAD[$name]=$(( ${BAD[$name]:-0} + bad + err ))
    printf "| %-5s | %-26s | %10.0f | %8.2f | %8.2f | %7d | %9d |\n" "$conns" "$(label "$name")" "$rps" "$p50" "$p99" "$bad" "$err"
  done
done
echo "(non-2xx and socket errors: summed over the repetitions)"

ratio() {  # A B CONNS -> A/B at CONNS, or n/a
  local a="${RPS[$1-$3]:-}" b="${RPS[$2-$3]:-}"
  if [ -n "$a" ] && [ -n "$b" ]; then awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; else echo "n/a"; fi
}
echo
printf "| %-28s |" ratio; for conns in "${CONNS_LIST[@]}"; do printf " %6s |" "$conns"; done; echo
printf "|%s|" "------------------------------"; for _ in "${CONNS_LIST[@]}"; do printf "%s|" "--------"; done; echo
for pair in "event nginx" "event poco" "workers poco" "event-notes poco-notes" "poco nginx"; do
  read -r a b <<<"$pair"
  printf "| %-28s |" "$a / $b"
  for conns in "${CONNS_LIST[@]}"; do printf " %6s |" "$(ratio "$a" "$b" "$conns")"; done; echo
done

echo
echo "connections that never got a response (wrk -t $MAX_CONNS -c $MAX_CONNS, one Lua counter per connection):"
for target in "${TARGETS[@]}"; do
  read -r name server _ <<<"$target"
  if available "$name" "$server"; then
    printf "  %-26s %s of %s" "$(label "$name")" "${NEVER[$name]}" "$MAX_CONNS"
    [ "${NOT_STARTED[$name]}" = 0 ] && echo || echo " (${NOT_STARTED[$name]} connections of wrk never started: not checked)"
  else printf "  %-26s not available\n" "$(label "$name")"; fi
done

echo
echo "memory and threads:"
[ -n "$EVENT_RSS_START" ] && echo "  event server RSS just after start: $EVENT_RSS_START KiB"
[ -n "$EVENT_RSS_IDLE" ] && echo "  event server RSS idle after the runs: $EVENT_RSS_IDLE KiB"
for name in event nginx; do
  [ -n "${IDLE[$name]:-}" ] && echo "  $name, $IDLE_CONNS idle keep-alive connections: ${IDLE[$name]}"
done
for name in nginx event poco workers; do
  [ -n "${THREADS[$name]:-}" ] && echo "  $name threads after the runs: ${THREADS[$name]}"
done
for name in event poco workers; do
  [ -n "${ACCESS_LOG_LINES[$name]:-}" ] && echo "  $name log lines written to its file (access log): ${ACCESS_LOG_LINES[$name]}"
done
echo "  machine: load average before starting $LOAD_AVG_START; compiler processes (cc1plus, ld, ...) running"
echo "    at the start of each wrk run: mean $(awk -v s="$SUM_COMPILERS" -v n="$SAMPLES" 'BEGIN { printf "%.1f", n ? s / n : 0 }'), at most $MAX_COMPILERS"

# ---- floors ---------------------------------------------------------------------------

failed=0
verdict() {  # NAME RESULT(PASS|FAIL|NOT CHECKED) DETAIL
  printf "  %-11s %-52s %s\n" "$2" "$1" "$3"
  [ "$2" = PASS ] || failed=1
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
check_ratio() {  # NAME A B FACTOR CONNS...
  local name="$1" a="$2" b="$3" factor="$4"; shift 4
  local conns r result=PASS detail=""
  for conns in "$@"; do
    r="$(ratio "$a" "$b" "$conns")"
    if [ "$r" = n/a ]; then result="NOT CHECKED"; detail="$detail $conns: n/a"; continue; fi
    detail="$detail $conns: $r"
    ge "$r" "$factor" || { [ "$result" = PASS ] && result=FAIL; }
  done
  verdict "$name" "$result" "(${detail# })"
}

echo
echo "acceptance floors:"
check_ratio "event >= 2 x poco at $MAX_CONNS connections" event poco 2 "$MAX_CONNS"
if [ -n "${P99[event-$MAX_CONNS]:-}" ]; then
  if lt "${P99[event-$MAX_CONNS]}" 50; then r=PASS; else r=FAIL; fi
  verdict "event p99 < 50 ms at $MAX_CONNS connections" "$r" "(${P99[event-$MAX_CONNS]} ms)"
else
  verdict "event p99 < 50 ms at $MAX_CONNS connections" "NOT CHECKED" "(event not available)"
fi
answered=PASS detail=""
[ -n "${NEVER[event]:-}" ] || answered="NOT CHECKED"
for name in event workers event-notes poco poco-notes; do
  n="${NEVER[$name]:-}"
  if [ -n "${UNAVAILABLE[$name]:-}" ]; then detail="$detail $name: not available"; continue; fi
  if [ -z "$n" ] || [ "$n" = "?" ] || [ "${NOT_STARTED[$name]}" != 0 ]; then
    answered="NOT CHECKED"; detail="$detail $name: n/a"; continue
  fi
  detail="$detail $name: $n"
  [ "$n" -eq 0 ] || { [ "$answered" = PASS ] && answered=FAIL; }
done
verdict "every connection answered (Trellis, $MAX_CONNS connections)" "$answered" "(never answered,${detail})"
# Not one of the floors asked for, but they mean nothing without it: a 503 is fast.
clean=PASS detail=""
for name in event workers event-notes poco poco-notes; do
  [ -n "${BAD[$name]:-}" ] || continue
  detail="$detail $name: ${BAD[$name]}"
  [ "${BAD[$name]}" -eq 0 ] || clean=FAIL
done
[ -n "$detail" ] || clean="NOT CHECKED"
verdict "every Trellis answer 2xx, no socket errors" "$clean" "(non-2xx + socket errors,${detail})"
check_ratio "worker-pool hello >= 1.5 x poco" workers poco 1.5 "${CONNS_LIST[@]}"
check_ratio "notes on SQLite: event >= 1.0 x poco" event-notes poco-notes 1.0 "${CONNS_LIST[@]}"

echo
echo "target (reported, not a floor): event >= 0.8 x nginx, p99 within 2 x nginx's"
for conns in "${CONNS_LIST[@]}"; do
  r="$(ratio event nginx "$conns")"
  if [ "$r" = n/a ]; then echo "  $conns connections: n/a"; continue; fi
  p99e="${P99[event-$conns]}" p99n="${P99[nginx-$conns]}"
  met=met
  ge "$r" 0.8 || met="not met"
  ge "$(awk -v p="$p99n" 'BEGIN { print 2 * p }')" "$p99e" || met="not met"
  echo "  $conns connections: $met (requests/s ratio $r; p99 $p99e ms against nginx's $p99n ms)"
done

if [ "$failed" -ne 0 ]; then
  echo
  echo "some floors failed or could not be checked"
  [ "$REPORT_ONLY" -eq 1 ] || exit 1
fi
exit 0
