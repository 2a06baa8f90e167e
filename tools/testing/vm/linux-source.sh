#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Unpack Debian's linux-source-6.12 tarball into a directory, once, and
# print the path of the unpacked tree.  Used by debug-kernel.sh and
# tools/testing/kunit/run.sh, each with its own copy of the tree.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../errtrap.sh"

PROG=${0##*/}
TARBALL=${NBD_LINUX_SOURCE:-/usr/src/linux-source-6.12.tar.xz}
STAMP_NAME=.nbd-unpacked

usage() {
	cat <<EOF
Usage: $PROG DIR

Unpack $TARBALL (apt package linux-source-6.12) into DIR/linux-source-6.12
unless a complete unpack of the same tarball is there already, and print
the tree's path.  An unpack is complete when DIR/linux-source-6.12/$STAMP_NAME
names the tarball's size and mtime; a new tarball (package upgrade)
replaces the tree, build outputs included.

Environment:
  NBD_LINUX_SOURCE   the tarball (default /usr/src/linux-source-6.12.tar.xz)
EOF
}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

case ${1:-} in
-h|--help) usage; exit 0 ;;
""|-*) usage >&2; exit 1 ;;
esac
[[ $# -eq 1 ]] || { usage >&2; exit 1; }

[[ -f $TARBALL ]] ||
	die "no $TARBALL (apt-get install linux-source-6.12, or run tools/testing/vm/setup.sh)"

mkdir -p "$1"
DIR=$(cd "$1" && pwd -P)
NAME=$(basename "$TARBALL")
NAME=${NAME%.tar.*}
TREE=$DIR/$NAME
want="$(stat -L -c '%s %Y' "$TARBALL") $TARBALL"

exec 9>"$DIR/.$NAME.lock"
flock 9

if [[ -f $TREE/$STAMP_NAME && $(<"$TREE/$STAMP_NAME") == "$want" ]]; then
	printf '%s\n' "$TREE"
	exit 0
fi

echo "$PROG: unpacking $TARBALL into $DIR" >&2
t0=$SECONDS
tmp=$(mktemp -d "$DIR/.unpack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tar -xf "$TARBALL" -C "$tmp" || die "cannot unpack $TARBALL"
[[ -f $tmp/$NAME/Makefile ]] || die "$TARBALL has no $NAME/Makefile"
printf '%s\n' "$want" >"$tmp/$NAME/$STAMP_NAME"
rm -rf "$TREE"
mv "$tmp/$NAME" "$TREE"
echo "$PROG: unpacked in $((SECONDS - t0)) s" >&2
printf '%s\n' "$TREE"
