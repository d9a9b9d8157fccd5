#!/bin/sh
# debian-changelog.sh PACKAGE VERSION MAINTAINER CHANGELOG.md: the Debian-format changelog
# of a native package (/usr/share/doc/PACKAGE/changelog.gz) on stdout, one entry for
# VERSION whose text is the project's CHANGELOG.md. Its date is SOURCE_DATE_EPOCH, else the
# last commit's, else now, so that the same sources give the same file.
set -eu
package=$1 version=$2 maintainer=$3 changelog=$4
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$(dirname "$changelog")" log -1 --format=%ct 2>/dev/null || date +%s)}
printf '%s (%s) unstable; urgency=medium\n\n' "$package" "$version"
printf '  * Trellis %s. The project'"'"'s CHANGELOG.md:\n\n' "$version"
fold -s -w 74 "$changelog" | sed -e 's/[[:space:]]*$//' -e 's/^./    &/'
printf '\n -- %s  %s\n' "$maintainer" "$(LC_ALL=C date -u -R -d "@$epoch")"
