#!/usr/bin/env bash
# Benchmark: HTTPS against plain HTTP on the event engine, in one run.
#
# Two Trellis servers (event engine), each a plain process pinned to CPU 0 (wrk runs on
# CPU 1), loopback only, on free ports, hello mounted at /, access log off:
#   plain  http://
#   tls    https://, server.tls with a P-256 certificate made here by openssl
# Route GET /world:
#   keep-alive  wrk at --conns connections for --seconds, round robin over the two servers
#               in each repetition (the handshake is paid once per connection)
#   new         one request per connection (wrk with Connection: close): every request
#               pays a TCP handshake, and for tls a full TLS handshake
# Prints the median requests/s and p99 of each and the ratios tls/plain.
#
# usage: bench/tls.sh [--seconds D (5)] [--reps N (3)] [--conns C (64)] [--build DIR]
#   --build DIR  a build folder with server/trellis and plugins/ (default: build/); this
#                script does not build
set -euo pipefail

BENCH=tls
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_options "$@"
require wrk openssl curl
make_work
read -r P_PLAIN A_PLAIN P_TLS A_TLS < <(free_ports 4)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -keyout "$WORK/key.pem" \
  -out "$WORK/cert.pem" -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null

# start NAME PORT ADMIN_PORT SCHEME
start() {
  local name="$1" port="$2" admin="$3" scheme="$4" dir="$WORK/$1" tls=""
  mkdir -p "$dir/data"
  [ "$scheme" = https ] && tls="  tls: {certificate: $WORK/cert.pem, key: $WORK/key.pem}"
  cat >"$dir/trellis.yaml" <<YAML
server:
  engine: event
  listen: 127.0.0.1:$port
  admin_listen: 127.0.0.1:$admin
  data_dir: $dir/data
$tls
logging:
  access_log: false
plugins:
  search_paths: ["$BUILD/plugins"]
  hello:
    mount: /
YAML
  run_trellis "$name" -sf --cacert "$WORK/cert.pem" "$scheme://localhost:$port/world"
}

log "starting the plain and tls servers, pinned to CPU 0"
start plain "$P_PLAIN" "$A_PLAIN" http
start tls "$P_TLS" "$A_TLS" https
URL_plain="http://127.0.0.1:$P_PLAIN/world"
URL_tls="https://127.0.0.1:$P_TLS/world"
log "warming up (2 s each)"
for url in "$URL_plain" "$URL_tls"; do taskset -c 1 wrk -t 1 -c "$CONNS" -d 2s "$url" >/dev/null; done

declare -A RPS=() P99=()
for rep in $(seq "$REPS"); do
  log "repetition $rep/$REPS, $CONNS connections, ${SECONDS_PER_RUN} s per server and mode"
  for mode in keepalive new; do
    for name in plain tls; do
      url_var="URL_$name"
      if [ "$mode" = new ]; then
        read -r rps p99 _ < <(measure "${!url_var}" -H "Connection: close")
      else
        read -r rps p99 _ < <(measure "${!url_var}")
      fi
      RPS[$mode.$name]+="$rps "
      P99[$mode.$name]+="$p99 "
    done
  done
done

echo
echo "GET /world (hello), event engine, $CONNS connections, ${SECONDS_PER_RUN} s x $REPS, median"
for mode in keepalive new; do
  for name in plain tls; do
    rps="$(tr ' ' '\n' <<<"${RPS[$mode.$name]}" | grep . | median)"
    p99="$(tr ' ' '\n' <<<"${P99[$mode.$name]}" | grep . | median)"
    printf '  %-10s %-6s %10s req/s   p99 %8s ms\n' "$mode" "$name" "$rps" "$p99"
    eval "R_${mode}_${name}=$rps"
  done
  awk -v t="$(eval echo "\$R_${mode}_tls")" -v p="$(eval echo "\$R_${mode}_plain")" -v m="$mode" \
    'BEGIN { if (p > 0) printf "  %-10s tls/plain: %.3f\n", m, t / p }'
done
echo "  negotiated: $(openssl s_client -connect "127.0.0.1:$P_TLS" </dev/null 2>/dev/null | sed -n 's/^New, //p' | head -1)"
echo "  compilers running at the end (a shared machine): $(ps -eo comm= | grep -cE '^(cc1plus|cc1|ld)$' || true)"
