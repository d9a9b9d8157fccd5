#!/usr/bin/env bash
# Checks the packages that `./dev package` built: trellis, trellis-dev and libtrellis1, and
# the bundled plugins' trellis-plugin-NAME made through trellis_package_plugin (deb and rpm).
#   check_packages.sh [--plugins] [PACKAGE_DIR]     (default: build-package/packages)
#   --plugins: the trellis-plugin-* packages alone (./dev plugin-packages)
# UPDATE_LISTS=1 rewrites the committed file lists from the packages instead of comparing.
# - every .deb and .rpm has a committed file list packaging/files/NAME.{deb,rpm}.txt
#   (debug packages excepted) and every list has its package; the contents match it;
# - lintian reports no error and no warning that is not overridden;
# - systemd-analyze verify passes on the unit, in a temporary root made of the package
#   and the host's own units;
# - conffiles / %config(noreplace), the plugin trigger, Provides trellis-abi-1.0..1.N from
#   sdk/include/trellis/abi.h, versions from project(VERSION), dependencies, stripped and
#   hardened binaries with their symbols in the debug packages, pkg-config, `trellis check`
#   on the packaged configuration;
# - each plugin: its .so 0644 and stripped, Depends/Requires trellis-abi-MAJOR.MINOR of the
#   SDK it was built with, 50-NAME.yaml its one conffile (%config(noreplace)), and purge
#   (rpm: erase) removes the admin's 90-disabled-NAME.yaml.
# Prints every failure and exits 1 if there was one.
set -uo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PLUGINS_ONLY=0
[ "${1:-}" = --plugins ] && { PLUGINS_ONLY=1; shift; }
DIR="$(cd "${1:-$ROOT/build-package/packages}" && pwd)" || { echo "check_packages: no folder ${1:-}" >&2; exit 1; }
LISTS="$ROOT/packaging/files"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

version="$(sed -n 's/^project(Trellis VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")"
abi_major="$(sed -n 's/^#define TRELLIS_ABI_MAJOR \([0-9]*\).*/\1/p' "$ROOT/sdk/include/trellis/abi.h")"
abi_minor="$(sed -n 's/^#define TRELLIS_ABI_MINOR \([0-9]*\).*/\1/p' "$ROOT/sdk/include/trellis/abi.h")"
[ -n "$version" ] && [ -n "$abi_major" ] && [ -n "$abi_minor" ] || { echo "check_packages: cannot read the versions" >&2; exit 1; }
expected_provides=()
for ((m = 0; m <= abi_minor; m++)); do expected_provides+=("trellis-abi-$abi_major.$m"); done
want="$(printf '%s\n' "${expected_provides[@]}" | sort)"

shopt -s nullglob
# product FILES...: the packages this run checks (the plugins' alone with --plugins).
product() {
  local f
  for f in "$@"; do
    case "$(basename "$f")" in
      trellis-plugin-*) printf '%s\0' "$f" ;;
      *) [ "$PLUGINS_ONLY" = 1 ] || printf '%s\0' "$f" ;;
    esac
  done
}
mapfile -d '' debs < <(product "$DIR"/*.deb)
mapfile -d '' ddebs < <(product "$DIR"/*.ddeb)
mapfile -d '' rpms < <(product "$DIR"/*.rpm)
[ "${#debs[@]}" -gt 0 ] || fail "no .deb in $DIR"
[ "${#rpms[@]}" -gt 0 ] || fail "no .rpm in $DIR"

# compare_list NAME KIND ACTUAL_FILE: the sorted paths against packaging/files/NAME.KIND.txt.
compare_list() {
  local name="$1" kind="$2" actual="$3" list="$LISTS/$1.$2.txt"
  if [ "${UPDATE_LISTS:-0}" = 1 ]; then
    cp "$actual" "$list"; echo "wrote $list"
  elif [ ! -f "$list" ]; then
    fail "$name ($kind): no committed file list $list; the package holds:"; sed 's/^/    /' "$actual" >&2
  elif ! diff -u --label "$list (committed)" --label "$name.$kind (built)" "$list" "$actual" >"$WORK/diff"; then
    fail "$name ($kind): contents differ from $list:"; cat "$WORK/diff" >&2
  else
    pass "$name ($kind): contents match $(basename "$list")"
  fi
}

# Every committed list has its package.
for list in "$LISTS"/*.txt; do
  [ "$PLUGINS_ONLY" = 1 ] && [[ "$(basename "$list")" != trellis-plugin-* ]] && continue
  base="$(basename "$list" .txt)"; name="${base%.*}"; kind="${base##*.}"
  case "$kind" in
    deb) found=("$DIR/${name}_"*.deb) ;;
    rpm) found=(); for f in "$DIR/$name-"*.rpm; do
           [ "$(rpm -qp --qf '%{NAME}' "$f" 2>/dev/null)" = "$name" ] && found+=("$f"); done ;;
    *) fail "$list: not NAME.deb.txt or NAME.rpm.txt"; continue ;;
  esac
  [ "${#found[@]}" -eq 1 ] || fail "$name ($kind): expected one package in $DIR for $list, found ${#found[@]}"
done

# --- debs -------------------------------------------------------------------------------
for deb in "${debs[@]}"; do
  name="$(dpkg-deb -f "$deb" Package)"
  dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./|/|; s|/$||' | grep -v '^/\?$' | sort >"$WORK/$name.deb.txt"
  compare_list "$name" deb "$WORK/$name.deb.txt"
  # The plugins carry versions of their own (their project(VERSION)).
  [[ "$name" == trellis-plugin-* ]] || [ "$(dpkg-deb -f "$deb" Version)" = "$version" ] ||
    fail "$name: version $(dpkg-deb -f "$deb" Version), project($version)"
  if dpkg-deb -c "$deb" | awk '$2 != "root/root" { print; bad = 1 } END { exit !bad }' >"$WORK/owners"; then
    fail "$name: entries not owned by root/root:"; cat "$WORK/owners" >&2
  fi
  mkdir -p "$WORK/root-$name" && dpkg-deb -x "$deb" "$WORK/root-$name"
  mkdir -p "$WORK/control-$name" && dpkg-deb -e "$deb" "$WORK/control-$name"
  for script in preinst postinst prerm postrm; do
    [ -f "$WORK/control-$name/$script" ] && ! sh -n "$WORK/control-$name/$script" && fail "$name: $script is not valid sh"
  done
done

# lintian: no error, and every warning either fixed or overridden (reasons in the README).
if [ "${#debs[@]}" -gt 0 ]; then
  # Overridden tags are shown (O:) and do not count; any E: or W: line fails.
  lintian --display-level ">=warning" --show-overrides "${debs[@]}" >"$WORK/lintian" 2>&1
  status=$?
  if [ "$status" -ne 0 ] && [ "$status" -ne 2 ]; then
    fail "lintian did not run (exit $status):"; cat "$WORK/lintian" >&2
  elif grep -Eq '^(E|W): ' "$WORK/lintian"; then
    fail "lintian:"; grep -E '^(E|W|O): ' "$WORK/lintian" >&2
  else
    pass "lintian: no errors or warnings ($(grep -c '^O: ' "$WORK/lintian") overridden)"
    grep '^O: ' "$WORK/lintian" || true
  fi
fi

deb_of() { local f; for f in "${debs[@]}"; do [ "$(dpkg-deb -f "$f" Package)" = "$1" ] && echo "$f"; done; }
server_deb="$(deb_of trellis)"; dev_deb="$(deb_of trellis-dev)"; lib_deb="$(deb_of libtrellis1)"

if [ -n "$server_deb" ]; then
  r="$WORK/root-trellis" c="$WORK/control-trellis"
  # conffiles and the plugin trigger
  for f in /etc/trellis/trellis.yaml /etc/logrotate.d/trellis; do
    grep -qx "$f" "$c/conffiles" 2>/dev/null && pass "trellis: conffile $f" || fail "trellis: $f is not in conffiles"
  done
  grep -qx "interest-noawait /usr/lib/trellis/plugins" "$c/triggers" 2>/dev/null &&
    pass "trellis: file trigger on /usr/lib/trellis/plugins" || fail "trellis: no interest-noawait trigger on /usr/lib/trellis/plugins"
  grep -q "^    triggered)" "$c/postinst" || fail "trellis: postinst has no 'triggered' action"
  # Provides: exactly trellis-abi-MAJOR.0 .. MAJOR.MINOR
  provides="$(dpkg-deb -f "$server_deb" Provides | tr -d ' ' | tr ',' '\n' | sort)"
  [ "$provides" = "$want" ] && pass "trellis: Provides ${expected_provides[*]}" ||
    fail "trellis: Provides '$(echo $provides)', expected '$(echo $want)'"
  depends="$(dpkg-deb -f "$server_deb" Depends)"
  [[ "$depends" =~ (^|, )adduser($|,) ]] || fail "trellis: Depends lacks adduser: $depends"
  [[ "$depends" =~ libc6 ]] || fail "trellis: Depends has no shared-library dependencies (dpkg-shlibdeps): $depends"
  # The binary: stripped, RELRO and BIND_NOW, its symbols in trellis-dbgsym.
  bin="$r/usr/bin/trellis"
  file "$bin" | grep -q ', stripped' || fail "trellis: /usr/bin/trellis is not stripped: $(file -b "$bin")"
  readelf -lW "$bin" | grep -q GNU_RELRO || fail "trellis: /usr/bin/trellis has no RELRO"
  readelf -dW "$bin" | grep -Eq '\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW' || fail "trellis: /usr/bin/trellis is not linked with -z now"
  build_id="$(readelf -nW "$bin" | sed -n 's/.*Build ID: *//p')"
  dbg=""; for f in "${ddebs[@]}"; do [ "$(dpkg-deb -f "$f" Package)" = trellis-dbgsym ] && dbg="$f"; done
  if [ -z "$build_id" ]; then fail "trellis: /usr/bin/trellis has no build id"
  elif [ -z "$dbg" ]; then fail "trellis: no trellis-dbgsym .ddeb"
  elif dpkg-deb -c "$dbg" | grep -q "/usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug"; then
    pass "trellis: stripped, relro + now, symbols in $(basename "$dbg")"
  else fail "trellis: $(basename "$dbg") has no /usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug"
  fi
  # The unit, in a root made of this package, the host's units and /bin/kill.
  u="$WORK/unit-root"
  mkdir -p "$u/usr/bin" "$u/usr/lib/systemd" && ln -s usr/bin "$u/bin" && ln -s usr/lib "$u/lib"
  cp -a /usr/lib/systemd/system "$u/usr/lib/systemd/" && cp /usr/bin/kill "$u/usr/bin/kill"
  cp "$bin" "$u/usr/bin/trellis" && cp "$r/lib/systemd/system/trellis.service" "$u/usr/lib/systemd/system/"
  if systemd-analyze verify --man=no --root="$u" trellis.service >"$WORK/verify" 2>&1 && [ ! -s "$WORK/verify" ]; then
    pass "trellis: systemd-analyze verify trellis.service"
  else fail "trellis: systemd-analyze verify trellis.service:"; cat "$WORK/verify" >&2
  fi
  grep -qx "ExecStartPre=/usr/bin/trellis check -c /etc/trellis/trellis.yaml" "$r/lib/systemd/system/trellis.service" ||
    fail "trellis: the unit's ExecStartPre is not 'trellis check'"
  # The packaged configuration is accepted by the packaged binary.
  if "$bin" check -c "$r/etc/trellis/trellis.yaml" >"$WORK/check" 2>&1; then
    pass "trellis: trellis check accepts /etc/trellis/trellis.yaml"
  else fail "trellis: trellis check rejects the packaged /etc/trellis/trellis.yaml:"; cat "$WORK/check" >&2
  fi
  # The trigger's action without systemd: SIGHUP to the live PID in /run/trellis/trellis.pid,
  # nothing for a stale or malformed one. Run in a private mount namespace with its own /run.
  if unshare -m true 2>/dev/null; then
    if unshare -m sh -c '
        mount -t tmpfs tmpfs /run && mkdir /run/trellis || exit 3
        sleep 30 & pid=$!; echo "$pid" >/run/trellis/trellis.pid
        sh "$1" triggered /usr/lib/trellis/plugins >/dev/null || exit 4
        wait "$pid"; [ $? -eq 129 ] || exit 5                        # ended by SIGHUP
        echo 4194999 >/run/trellis/trellis.pid; sh "$1" triggered /usr/lib/trellis/plugins >/dev/null || exit 6
        echo x >/run/trellis/trellis.pid; sh "$1" triggered /usr/lib/trellis/plugins 2>/dev/null || exit 7
        rm /run/trellis/trellis.pid; sh "$1" triggered /usr/lib/trellis/plugins || exit 8' sh "$c/postinst" >"$WORK/trigger" 2>&1
    then pass "trellis: postinst triggered sends SIGHUP to the PID in /run/trellis/trellis.pid"
    else fail "trellis: postinst triggered (exit $?; 5: the process got no SIGHUP):"; cat "$WORK/trigger" >&2
    fi
  else
    echo "skip: postinst triggered (unshare -m is not permitted here)"
  fi
  [ -d "$r/etc/trellis/conf.d" ] || fail "trellis: no /etc/trellis/conf.d"
  [ -d "$r/usr/lib/trellis/plugins" ] || fail "trellis: no /usr/lib/trellis/plugins"
fi

if [ -n "$dev_deb" ]; then
  depends="$(dpkg-deb -f "$dev_deb" Depends)"
  [[ "$depends" =~ nlohmann-json3-dev ]] || fail "trellis-dev: Depends lacks nlohmann-json3-dev: $depends"
  [[ "$depends" =~ (^|, )trellis( |,|$) ]] && fail "trellis-dev: depends on the trellis service: $depends"
  if [ -n "$lib_deb" ]; then
    [[ "$depends" =~ libtrellis1\ \(=\ $version\) ]] || fail "trellis-dev: Depends lacks libtrellis1 (= $version): $depends"
  fi
  r="$WORK/root-trellis-dev"
  cflags="$(PKG_CONFIG_PATH="$r/usr/share/pkgconfig" PKG_CONFIG_SYSTEM_INCLUDE_PATH=/nonexistent \
    pkg-config --define-prefix --cflags trellis 2>&1)"
  if [ -f "$(echo "$cflags" | sed -n 's/.*-I\([^ ]*trellis-dev[^ ]*include\).*/\1/p')/trellis/abi.h" ]; then
    pass "trellis-dev: pkg-config --cflags trellis finds trellis/abi.h"
  else fail "trellis-dev: pkg-config --cflags trellis gives '$cflags', without trellis/abi.h"
  fi
  [ -f "$r/usr/share/cmake/Trellis/TrellisConfig.cmake" ] || fail "trellis-dev: no TrellisConfig.cmake"
fi

# --- rpms -------------------------------------------------------------------------------
rpm_of() { local f; for f in "${rpms[@]}"; do [ "$(rpm -qp --qf '%{NAME}' "$f" 2>/dev/null)" = "$1" ] && echo "$f"; done; }
for pkg in "${rpms[@]}"; do
  name="$(rpm -qp --qf '%{NAME}' "$pkg" 2>/dev/null)"
  case "$name" in *-debuginfo) continue ;; esac
  # rpm's build-id links change with every build: compared by shape only.
  rpm -qpl "$pkg" 2>/dev/null | sed -e 's|^\(/usr/lib/\.build-id\)/[0-9a-f][0-9a-f]|\1/XX|' \
    -e 's|^\(/usr/lib/\.build-id/XX\)/[0-9a-f]\{38\}|\1/BUILD-ID|' | sort -u >"$WORK/$name.rpm.txt"
  compare_list "$name" rpm "$WORK/$name.rpm.txt"
  [[ "$name" == trellis-plugin-* ]] || [ "$(rpm -qp --qf '%{VERSION}' "$pkg" 2>/dev/null)" = "$version" ] ||
    fail "$name (rpm): version $(rpm -qp --qf '%{VERSION}' "$pkg" 2>/dev/null), project($version)"
done
server_rpm="$(rpm_of trellis)"
if [ -n "$server_rpm" ]; then
  # Each file under /etc is %config(noreplace): flags c (config) and n (noreplace).
  rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$server_rpm" 2>/dev/null >"$WORK/rpmflags"
  for f in /etc/trellis/trellis.yaml /etc/logrotate.d/trellis; do
    flags="$(awk -v f="$f" '$1 == f { print $2 }' "$WORK/rpmflags")"
    [[ "$flags" == *c* && "$flags" == *n* ]] && pass "trellis (rpm): $f is %config(noreplace)" ||
      fail "trellis (rpm): $f is not %config(noreplace) (flags '$flags')"
  done
  rpm -qp --configfiles "$server_rpm" 2>/dev/null | grep -qx /etc/trellis/trellis.yaml ||
    fail "trellis (rpm): /etc/trellis/trellis.yaml not among --configfiles"
  rpm -qp --provides "$server_rpm" 2>/dev/null >"$WORK/rpmprovides"
  got="$(grep '^trellis-abi-' "$WORK/rpmprovides" | sort)"
  [ "$got" = "$want" ] && pass "trellis (rpm): provides ${expected_provides[*]}" ||
    fail "trellis (rpm): provides '$(echo $got)', expected '$(echo $want)'"
  rpm -qp --scripts "$server_rpm" 2>/dev/null | grep -q "useradd --system" || fail "trellis (rpm): %pre makes no system user"
  rpm -qp --filetriggers "$server_rpm" 2>/dev/null | grep -q "^transfiletriggerin .* -- /usr/lib/trellis/plugins" &&
    pass "trellis (rpm): file trigger on /usr/lib/trellis/plugins" || fail "trellis (rpm): no %transfiletriggerin on /usr/lib/trellis/plugins"
  [ -n "$(rpm_of trellis-debuginfo)" ] || fail "trellis (rpm): no trellis-debuginfo package"
fi
dev_rpm="$(rpm_of trellis-dev)"
if [ -n "$dev_rpm" ]; then
  rpm -qp --requires "$dev_rpm" 2>/dev/null | grep -qx "trellis" && fail "trellis-dev (rpm): requires the trellis service"
fi

# --- the plugins' packages ---------------------------------------------------------------
abi="$abi_major.$abi_minor"
for deb in "${debs[@]}"; do
  package="$(dpkg-deb -f "$deb" Package)"
  [[ "$package" == trellis-plugin-* ]] || continue
  name="${package#trellis-plugin-}"; name="${name//-/_}"
  conffile="/etc/trellis/conf.d/50-$name.yaml" so="/usr/lib/trellis/plugins/$name.so"
  r="$WORK/root-$package" c="$WORK/control-$package"
  grep -qE "^-rw-r--r-- root/root .* \.$so$" <<<"$(dpkg-deb -c "$deb")" || fail "$package: $so is not 0644 root/root"
  file "$r$so" | grep -q ', stripped' || fail "$package: $so is not stripped"
  dbg=""; for f in "${ddebs[@]}"; do [ "$(dpkg-deb -f "$f" Package)" = "$package-dbgsym" ] && dbg="$f"; done
  [ -n "$dbg" ] || fail "$package: no $package-dbgsym .ddeb"
  depends="$(dpkg-deb -f "$deb" Depends)"
  [[ "$depends" =~ (^|, )trellis-abi-$abi(,|$) ]] || fail "$package: Depends '$depends' lacks trellis-abi-$abi"
  [ "$(cat "$c/conffiles" 2>/dev/null)" = "$conffile" ] || fail "$package: conffiles is not exactly $conffile"
  grep -q "rm -f /etc/trellis/conf.d/90-disabled-$name.yaml" "$c/postrm" 2>/dev/null ||
    fail "$package: postrm does not remove 90-disabled-$name.yaml on purge"
  pass "$package: $so, trellis-abi-$abi, conffile $conffile, purge removes 90-disabled-$name.yaml"
done
for pkg in "${rpms[@]}"; do
  package="$(rpm -qp --qf '%{NAME}' "$pkg" 2>/dev/null)"
  [[ "$package" == trellis-plugin-* ]] || continue
  name="${package#trellis-plugin-}"; name="${name//-/_}"
  conffile="/etc/trellis/conf.d/50-$name.yaml" so="/usr/lib/trellis/plugins/$name.so"
  [ "$(rpm -qp --configfiles "$pkg" 2>/dev/null)" = "$conffile" ] || fail "$package (rpm): --configfiles is not exactly $conffile"
  rpm -qp --requires "$pkg" 2>/dev/null | grep -qx "trellis-abi-$abi" || fail "$package (rpm): Requires lacks trellis-abi-$abi"
  rpm -qp --scripts "$pkg" 2>/dev/null | grep -q "rm -f /etc/trellis/conf.d/90-disabled-$name.yaml" ||
    fail "$package (rpm): the erase script does not remove 90-disabled-$name.yaml"
  flags="$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEMODES:perms}\n]' "$pkg" 2>/dev/null)"
  grep -qx "$conffile cn -rw-r--r--" <<<"$flags" || fail "$package (rpm): $conffile is not %config(noreplace) 0644"
  grep -qx "$so  -rw-r--r--" <<<"$flags" || fail "$package (rpm): $so is not 0644"
  pass "$package (rpm): $so, trellis-abi-$abi, %config(noreplace) $conffile"
done

if [ "$failures" -gt 0 ]; then
  echo "check_packages: $failures failure(s) in $DIR" >&2
  exit 1
fi
echo "check_packages: all checks passed for ${#debs[@]} deb(s) and ${#rpms[@]} rpm(s) in $DIR"
