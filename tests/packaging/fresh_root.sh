#!/usr/bin/env bash
# The packages' life in a fresh Debian 12 root, as an admin lives it (./dev acceptance):
#   install trellis and trellis-plugin-hello with apt-get (their dependencies must resolve),
#   `trellis check`, serve as the unit says (ExecStart=, User=), disable hello with the CLI,
#   upgrade both packages while hello is disabled and its snippet edited, enable it again,
#   upgrade the plugin alone under a client loop (the dpkg trigger sends the reload), then
#   purge both and find nothing left but the system user.
#
# usage: fresh_root.sh V1_DIR V2_DIR V3_DIR
#   V1_DIR  trellis_*.deb and trellis-plugin-hello_*.deb (the build under test)
#   V2_DIR  the same packages built with higher versions
#   V3_DIR  trellis-plugin-hello_*.deb with a version higher still
# The base root comes from `debootstrap --variant=minbase bookworm`, made once and kept as
# a tarball in $TRELLIS_ROOT_CACHE (default /var/tmp/trellis-bookworm-minbase.tar); each run
# unpacks a fresh copy and removes it at the end. Needs root and a Debian mirror.
set -euo pipefail

V1="$(cd "$1" && pwd)"; V2="$(cd "$2" && pwd)"; V3="$(cd "$3" && pwd)"
CACHE="${TRELLIS_ROOT_CACHE:-/var/tmp/trellis-bookworm-minbase.tar}"
MIRROR="${TRELLIS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

step() { printf '\033[1m--> %s\033[0m\n' "$*" >&2; }
fail() { printf 'fresh_root: FAILED: %s\n' "$*" >&2; exit 1; }

if [ ! -s "$CACHE" ]; then
  step "making a bookworm minbase root with debootstrap (once; cached in $CACHE)"
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  base="$(mktemp -d /var/tmp/trellis-base.XXXXXX)"
  debootstrap --variant=minbase bookworm "$base" "$MIRROR" >"$base.log" 2>&1 ||
    { tail -20 "$base.log"; fail "debootstrap"; }
  tar -C "$base" -cf "$CACHE.tmp" . && mv "$CACHE.tmp" "$CACHE"
  rm -rf "$base" "$base.log"
fi

ROOT="$(mktemp -d /var/tmp/trellis-root.XXXXXX)"
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  [ -n "${LOOP_PID:-}" ] && kill "$LOOP_PID" 2>/dev/null || true
  # Whatever the root still runs (a server started by a maintainer script) is stopped by PID.
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$ROOT" ] && kill "$pid" 2>/dev/null || true
  done
  umount "$ROOT/proc" 2>/dev/null || true
  rm -rf "$ROOT"
}
trap cleanup EXIT
step "unpacking a fresh root in $ROOT"
tar -C "$ROOT" -xf "$CACHE"
mount -t proc proc "$ROOT/proc"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
in_root() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
# What an admin's automation passes: keep an edited conffile, take the new default otherwise.
APT_INSTALL=(apt-get install -y -qq -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

one() { # one DIR PATTERN: the single file matching
  local matches=("$1"/$2); [ "${#matches[@]}" -eq 1 ] && [ -f "${matches[0]}" ] || fail "expected one $2 in $1"
  echo "${matches[0]}"
}
step "apt-get update in the root"
in_root apt-get update -qq >/dev/null

# into_root DIR PATTERN: copies the one match into the root's /tmp and prints its path there
# (a glob given to in_root would expand outside the root).
into_root() {
  local file; file="$(one "$1" "$2")"; cp "$file" "$ROOT/tmp/"; echo "/tmp/$(basename "$file")"
}
TRELLIS_V1="$(into_root "$V1" 'trellis_*.deb')"; HELLO_V1="$(into_root "$V1" 'trellis-plugin-hello_*.deb')"
TRELLIS_V2="$(into_root "$V2" 'trellis_*.deb')"; HELLO_V2="$(into_root "$V2" 'trellis-plugin-hello_*.deb')"
HELLO_V3="$(into_root "$V3" 'trellis-plugin-hello_*.deb')"
[ "$HELLO_V2" != "$HELLO_V3" ] && [ "$HELLO_V1" != "$HELLO_V2" ] || fail "the three hello packages need three versions"

step "installing trellis and trellis-plugin-hello with apt-get (dependencies from the mirror)"
in_root "${APT_INSTALL[@]}" "$TRELLIS_V1" "$HELLO_V1" >/dev/null ||
  fail "apt-get install of the packages"
in_root dpkg -s trellis trellis-plugin-hello >/dev/null
in_root id trellis >/dev/null || fail "no system user trellis after install"

step "trellis check on the installed configuration"
in_root trellis check -c /etc/trellis/trellis.yaml || fail "trellis check"

# Free loopback ports: the root shares this machine's network. The admin's drop-in picks
# them; nothing else of the packaged configuration changes.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"; ADMIN_PORT="$(free_port)"
cat >"$ROOT/etc/trellis/conf.d/10-ports.yaml" <<EOF
server:
  listen: 127.0.0.1:$PORT
  admin_listen: 127.0.0.1:$ADMIN_PORT
EOF

UNIT="$(ls "$ROOT"/lib/systemd/system/trellis.service "$ROOT"/usr/lib/systemd/system/trellis.service 2>/dev/null | head -1)"
[ -n "$UNIT" ] || fail "no trellis.service installed"
EXEC_START="$(sed -n 's/^ExecStart=//p' "$UNIT")"
RUN_AS="$(sed -n 's/^User=//p' "$UNIT")"
[ -n "$EXEC_START" ] && [ -n "$RUN_AS" ] || fail "ExecStart= or User= missing in $UNIT"

start_server() {
  # What systemd does for the unit's directories, then ExecStart= as User=.
  local dir
  for dir in /run/trellis /var/lib/trellis /var/log/trellis; do
    in_root install -d -o "$RUN_AS" -g "$RUN_AS" "$dir"
  done
  step "starting '$EXEC_START' as $RUN_AS"
  # shellcheck disable=SC2086  # ExecStart= is a command line
  chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin setpriv --reuid="$RUN_AS" --regid="$RUN_AS" \
    --init-groups $EXEC_START >"$ROOT/tmp/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/livez" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$ROOT/tmp/server.log"; fail "the server exited"; }
    sleep 0.1
  done
  cat "$ROOT/tmp/server.log"; fail "the server did not answer /livez within 10 s"
}
stop_server() {
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
}
status_of() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT$1"; }
plugin_version() {
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/admin/plugins" |
    python3 -c 'import json,sys; print(next((p["version"] for p in json.load(sys.stdin)["plugins"] if p["name"]=="hello" and p.get("state","loaded")=="loaded"), ""))'
}

start_server
[ "$(status_of /hello/world)" = 200 ] || fail "GET /hello/world did not answer 200"

step "the admin edits hello's snippet and disables hello with the CLI"
sed -i 's/^\( *greeting:\).*/\1 Howdy/' "$ROOT/etc/trellis/conf.d/50-hello.yaml"
grep -q Howdy "$ROOT/etc/trellis/conf.d/50-hello.yaml" || fail "50-hello.yaml has no greeting to edit"
EDITED="$(sha256sum <"$ROOT/etc/trellis/conf.d/50-hello.yaml")"
in_root trellis plugins disable hello -c /etc/trellis/trellis.yaml --reload || fail "plugins disable"
[ -f "$ROOT/etc/trellis/conf.d/90-disabled-hello.yaml" ] || fail "no 90-disabled-hello.yaml"
[ "$(status_of /hello/world)" = 404 ] || fail "hello still answers after disable --reload"

step "upgrading both packages to the higher build"
in_root "${APT_INSTALL[@]}" "$TRELLIS_V2" "$HELLO_V2" >"$ROOT/tmp/upgrade.log" 2>&1 ||
  { cat "$ROOT/tmp/upgrade.log"; fail "apt-get install of the upgrade"; }
# Without systemd, postinst checks the configuration with the new binary and says so.
grep -q "trellis check passed with the new version" "$ROOT/tmp/upgrade.log" ||
  { cat "$ROOT/tmp/upgrade.log"; fail "the upgrade did not run trellis check with the new binary"; }
[ "$(sha256sum <"$ROOT/etc/trellis/conf.d/50-hello.yaml")" = "$EDITED" ] || fail "the edited 50-hello.yaml changed"
[ -f "$ROOT/etc/trellis/conf.d/90-disabled-hello.yaml" ] || fail "the upgrade removed 90-disabled-hello.yaml"
stop_server; start_server   # the new binary, as the package's restart does under systemd

step "reinstalling trellis with a configuration the new binary refuses: the server is left alone"
printf 'server:\n  workers: many\n' >"$ROOT/etc/trellis/conf.d/20-broken.yaml"
in_root dpkg -i "$TRELLIS_V2" >"$ROOT/tmp/broken.log" 2>&1 ||
  { cat "$ROOT/tmp/broken.log"; fail "postinst failed instead of leaving the server alone"; }
grep -q "failed; the running server was left alone" "$ROOT/tmp/broken.log" ||
  { cat "$ROOT/tmp/broken.log"; fail "postinst did not report the failed check"; }
grep -q "workers" "$ROOT/tmp/broken.log" || { cat "$ROOT/tmp/broken.log"; fail "postinst did not show the check's reason"; }
rm "$ROOT/etc/trellis/conf.d/20-broken.yaml"
kill -0 "$SERVER_PID" || fail "the server stopped"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/livez")" = 200 ] || fail "the server stopped answering"
[ "$(status_of /hello/world)" = 404 ] || fail "the upgrade re-enabled hello"

step "enabling hello again: the admin's greeting answers"
in_root trellis plugins enable hello -c /etc/trellis/trellis.yaml --reload || fail "plugins enable"
curl -fsS "http://127.0.0.1:$PORT/hello/world" | grep -q Howdy || fail "hello does not use the edited snippet"
OLD_VERSION="$(plugin_version)"

step "upgrading trellis-plugin-hello under a client loop; the trigger reloads"
: >"$ROOT/tmp/loop.log"
( end=$((SECONDS + 60)); while [ "$SECONDS" -lt "$end" ] && [ ! -f "$ROOT/tmp/loop.stop" ]; do
    curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT/hello/world" >>"$ROOT/tmp/loop.log"
  done ) &
LOOP_PID=$!
sleep 1
in_root "${APT_INSTALL[@]}" "$HELLO_V3" >"$ROOT/tmp/hello-v3.log" 2>&1 ||
  { cat "$ROOT/tmp/hello-v3.log"; fail "apt-get install of hello v3"; }
grep -q "sending SIGHUP to trellis (PID $SERVER_PID)" "$ROOT/tmp/hello-v3.log" ||
  { cat "$ROOT/tmp/hello-v3.log"; fail "the dpkg trigger did not send the reload"; }
NEW_VERSION=""
for _ in $(seq 1 100); do
  NEW_VERSION="$(plugin_version)"; [ -n "$NEW_VERSION" ] && [ "$NEW_VERSION" != "$OLD_VERSION" ] && break
  sleep 0.1
done
sleep 1; touch "$ROOT/tmp/loop.stop"; wait "$LOOP_PID"; LOOP_PID=""
[ "$NEW_VERSION" != "$OLD_VERSION" ] || fail "hello still runs $OLD_VERSION after the upgrade (no reload?)"
TOTAL="$(wc -l <"$ROOT/tmp/loop.log")"; FAILED="$(grep -vc '^200$' "$ROOT/tmp/loop.log" || true)"
echo "client loop: $TOTAL requests across the upgrade $OLD_VERSION -> $NEW_VERSION, $FAILED not 200" >&2
[ "$TOTAL" -gt 0 ] && [ "$FAILED" -eq 0 ] || fail "requests failed during the plugin upgrade"

step "purging both packages"
stop_server
rm "$ROOT/etc/trellis/conf.d/10-ports.yaml"   # this script's own drop-in, not a package's
in_root apt-get purge -y -qq -o Dpkg::Use-Pty=0 trellis-plugin-hello trellis >/dev/null || fail "apt-get purge"
LEFT="$(cd "$ROOT" && find etc/trellis var/lib/trellis var/log/trellis usr/lib/trellis run/trellis \
          etc/logrotate.d/trellis lib/systemd/system/trellis.service usr/lib/systemd/system/trellis.service \
          usr/bin/trellis 2>/dev/null || true)"
[ -z "$LEFT" ] || fail "left after purge: $LEFT"
in_root id trellis >/dev/null || fail "the system user went with the purge (Debian keeps it)"
step "fresh root: every step passed"
