# shellcheck shell=bash
# What the benchmarks bench/metrics.sh, bench/tls.sh and bench/rate_limit.sh share: their
# options, the checks for the build and the tools, a run folder that is removed at the end
# with every process started into PID stopped, free loopback ports, starting a Trellis
# server pinned to CPU 0, and one wrk run reduced to its numbers.
#
# A script keeps its header comment up to `set -euo pipefail` (--help prints it), then sets
# BENCH to its name without .sh (for messages and the run folder's name) and sources this
# file:
#   BENCH=metrics
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   parse_options "$@"         --seconds, --reps, --conns, --build, --help -> SECONDS_PER_RUN,
#                              REPS, CONNS, BUILD (checked), TRELLIS
#   require wrk curl           exits when $TRELLIS or one of the tools is missing
#   make_work                  WORK=$BUILD/$BENCH-run.XXXXXX, PID=(), cleanup on exit
#   read -r P_A P_B < <(free_ports 2)
#   run_trellis NAME CURL_ARGS...   after writing $WORK/NAME/trellis.yaml
#   read -r rps p99 non2xx < <(measure URL [WRK_OPTIONS...])
#   ... | median
# This file does not build and sets no shell options: the script's `set -euo pipefail`
# holds here too.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
SECONDS_PER_RUN=5
REPS=3
CONNS=64
declare -gA PID=()

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
# die MESSAGE: "$BENCH.sh: MESSAGE" on stderr, exit 1
die() { echo "$BENCH.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# parse_options "$@": the options every one of these scripts takes
parse_options() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --seconds) SECONDS_PER_RUN="${2:?}"; shift 2 ;;
      --reps) REPS="${2:?}"; shift 2 ;;
      --conns) CONNS="${2:?}"; shift 2 ;;
      --build) BUILD="${2:?}"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) echo "$BENCH.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
  done
  local n
  for n in "$SECONDS_PER_RUN" "$REPS" "$CONNS"; do
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { echo "$BENCH.sh: expected a positive number, got '$n'" >&2; exit 2; }
  done
  TRELLIS="$BUILD/server/trellis"
}

# require TOOL...: the built server and each tool on the PATH
require() {
  [ -x "$TRELLIS" ] || die "no $TRELLIS; build first (./dev build)"
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "$tool is missing (./dev deps installs it)"
  done
}

# make_work: the run folder, in the build folder (on disk), and the cleanup at exit that
# stops every process whose PID is in PID and removes the folder
make_work() {
  WORK="$(mktemp -d "$BUILD/$BENCH-run.XXXXXX")"
  trap cleanup EXIT
}
cleanup() {
  local pid
  for pid in "${PID[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PID[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}

# free_ports N: N free loopback ports, on one line
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()' "$1"
}

# run_trellis NAME CURL_ARGS...: starts Trellis on $WORK/NAME/trellis.yaml, pinned to CPU 0,
# its output appended to $WORK/NAME/trellis.log, its PID in PID[NAME]; returns once
# `curl -o /dev/null --max-time 1 CURL_ARGS...` succeeds, exits when it never does
run_trellis() {
  local name="$1" dir="$WORK/$1"
  shift
  ( ulimit -n hard; exec taskset -c 0 "$TRELLIS" serve -c "$dir/trellis.yaml" ) </dev/null >>"$dir/trellis.log" 2>&1 &
  PID[$name]=$!
  for _ in $(seq 100); do
    curl -o /dev/null --max-time 1 "$@" && return 0
    kill -0 "${PID[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "$BENCH.sh: the $name server did not start:" >&2
  tail -5 "$dir/trellis.log" >&2
  exit 1
}

# measure URL [wrk options...]: one wrk run on CPU 1 -> "rps p99_ms non2xx"
measure() {
  local url="$1"
  shift
  taskset -c 1 wrk -t 1 -c "$CONNS" -d "${SECONDS_PER_RUN}s" --timeout 10s --latency "$@" "$url" |
    awk '
      function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
      /Requests\/sec/ { rps = $2 }
      /Non-2xx/ { non2xx = $NF }
      $1 == "99%" { p99 = ms($2) }
      END { printf "%.0f %.3f %d\n", rps, p99, non2xx }'
}
# median: the median of the numbers on stdin, one a line ("nan" for none)
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
