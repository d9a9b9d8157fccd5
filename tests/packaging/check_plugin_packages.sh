#!/usr/bin/env bash
# Checks the trellis-plugin-NAME packages made by `cmake --build BUILD --target package-plugins`:
# lintian finds no error or warning in the deb; `dpkg-deb -c` and `rpm -qpl` list exactly
# packaging/files/trellis-plugin-NAME.{deb,rpm}.txt; the plugin is 0644 and stripped; the deb
# Depends and the rpm Requires trellis-abi-MAJOR.MINOR of sdk/include/trellis/abi.h; the
# snippet 50-NAME.yaml is a conffile (rpm: %config) and purge/erase removes 90-disabled-NAME.yaml.
#   tests/packaging/check_plugin_packages.sh BUILD_DIR [NAME...]   (default: hello notes security)
# UPDATE_LISTS=1 rewrites the committed file lists from the packages instead of comparing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:?usage: $0 BUILD_DIR [NAME...]}"
shift
NAMES=("$@")
[ "${#NAMES[@]}" -gt 0 ] || NAMES=(hello notes security)
PACKAGES="$BUILD/packages"
ABI="$(sed -n 's/^#define TRELLIS_ABI_MAJOR \([0-9]*\).*/\1/p' "$ROOT/sdk/include/trellis/abi.h").$(
  sed -n 's/^#define TRELLIS_ABI_MINOR \([0-9]*\).*/\1/p' "$ROOT/sdk/include/trellis/abi.h")"

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
one() {  # the one file matching a glob, or a failure
  local matches=($1)
  if [ "${#matches[@]}" -ne 1 ] || [ ! -f "${matches[0]}" ]; then
    fail "expected one package $1, found: ${matches[*]}"; return 1
  fi
  echo "${matches[0]}"
}
compare() {  # compare LIST_FILE ACTUAL_TEXT WHAT
  if [ "${UPDATE_LISTS:-0}" = 1 ]; then
    printf '%s\n' "$2" >"$1"; echo "wrote $1"
  elif ! diff -u "$1" <(printf '%s\n' "$2"); then
    fail "$3 differs from $1 (the diff above; UPDATE_LISTS=1 rewrites the list)"
  fi
}

for name in "${NAMES[@]}"; do
  package="trellis-plugin-${name//_/-}"
  conffile="/etc/trellis/conf.d/50-$name.yaml"
  echo "== $package"
  deb="$(one "$PACKAGES/${package}_*_*.deb")" || continue
  rpm="$(one "$PACKAGES/${package}-[0-9]*.rpm")" || continue

  # lintian: errors and warnings fail; information tags are shown.
  lintian_out="$(lintian --display-info "$deb" 2>&1 | grep -v 'running with root privileges' || true)"
  [ -z "$lintian_out" ] || echo "$lintian_out"
  if grep -qE '^[EW]: ' <<<"$lintian_out"; then fail "lintian reports errors or warnings on $deb"; fi

  listing="$(dpkg-deb -c "$deb")"
  compare "$ROOT/packaging/files/$package.deb.txt" \
    "$(awk '{print $6}' <<<"$listing" | sed 's|^\./|/|; s|/$||' | grep -v '^$' | sort)" "dpkg-deb -c $deb"
  compare "$ROOT/packaging/files/$package.rpm.txt" "$(rpm -qpl "$rpm" 2>/dev/null | sort)" "rpm -qpl $rpm"

  grep -qE "^-rw-r--r-- root/root .* \./usr/lib/trellis/plugins/$name\.so$" <<<"$listing" ||
    fail "$deb: usr/lib/trellis/plugins/$name.so is not 0644 root/root"
  unpacked="$(mktemp -d)"
  dpkg-deb -x "$deb" "$unpacked"
  grep -q ', stripped' <<<"$(file "$unpacked/usr/lib/trellis/plugins/$name.so")" || fail "$deb: $name.so is not stripped"
  rm -rf "$unpacked"
  one "$PACKAGES/${package}-dbgsym_*_*.ddeb" >/dev/null || true

  depends="$(dpkg-deb -f "$deb" Depends)"
  grep -qE "(^|, )trellis-abi-$ABI(,|$)" <<<"$depends" || fail "$deb: Depends '$depends' lacks trellis-abi-$ABI"
  control="$(mktemp -d)"
  dpkg-deb -e "$deb" "$control"
  [ "$(cat "$control/conffiles")" = "$conffile" ] || fail "$deb: conffiles is not exactly $conffile"
  grep -q "rm -f /etc/trellis/conf.d/90-disabled-$name.yaml" "$control/postrm" ||
    fail "$deb: postrm does not remove 90-disabled-$name.yaml on purge"
  rm -rf "$control"

  [ "$(rpm -qp --configfiles "$rpm" 2>/dev/null)" = "$conffile" ] || fail "$rpm: --configfiles is not exactly $conffile"
  grep -qx "trellis-abi-$ABI" <<<"$(rpm -qp --requires "$rpm" 2>/dev/null)" || fail "$rpm: Requires lacks trellis-abi-$ABI"
  grep -q "rm -f /etc/trellis/conf.d/90-disabled-$name.yaml" <<<"$(rpm -qp --scripts "$rpm" 2>/dev/null)" ||
    fail "$rpm: the erase script does not remove 90-disabled-$name.yaml"
  flags="$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEMODES:perms}\n]' "$rpm" 2>/dev/null)"
  grep -qx "$conffile cn -rw-r--r--" <<<"$flags" || fail "$rpm: $conffile is not %config(noreplace) 0644"
  grep -qx "/usr/lib/trellis/plugins/$name.so  -rw-r--r--" <<<"$flags" || fail "$rpm: $name.so is not 0644"
done

if [ "$failures" -gt 0 ]; then
  echo "plugin packages: $failures failure(s)" >&2
  exit 1
fi
echo "plugin packages: ${NAMES[*]} passed"
