#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build this repository's nbd module for one kernel release, out of the
# source tree, and print the absolute path of the built nbd.ko.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../errtrap.sh"

PROG=${0##*/}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=${NBD_SRC_DIR:-$(cd "$SCRIPT_DIR/../../.." && pwd)}
BUILD_ROOT=${NBD_BUILD_DIR:-/var/cache/nbd-dev/build}

# What is copied from the source tree (files and directories).
SRC_ITEMS=(Kbuild Makefile Kconfig drivers include)
KO_REL=drivers/block/nbd/nbd.ko
MANIFEST=.nbd-src-manifest

usage() {
	cat <<EOF
Usage: $PROG KREL

Build the nbd module of this repository for kernel release KREL (see
kernels.sh) and print the absolute path of nbd.ko on stdout. Build output
goes to stderr.

The sources (${SRC_ITEMS[*]}) are mirrored into
\${NBD_BUILD_DIR:-/var/cache/nbd-dev/build}/KREL/ and built there with
  make -C KDIR M=DIR CONFIG_BLK_DEV_NBD=m \
       CONFIG_MODULE_SRCVERSION_ALL=y modules
KDIR is /lib/modules/KREL/build, or for the debug kernel (KREL "debug" or
its release) the tree debug-kernel.sh built it in.
Rebuilds are incremental: only changed files are copied, files removed
from the source are removed from the build directory, build outputs stay.

Environment:
  NBD_BUILD_DIR    build root (default /var/cache/nbd-dev/build)
  NBD_SRC_DIR      source tree (default: this repository)
  NBD_MAKE_FLAGS   extra make arguments, e.g. "W=1" (word-split)
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

KREL=$1
KDIR=/lib/modules/$KREL/build
if [[ ! -d $KDIR ]]; then
	# The debug kernel lives in the cache; kernels.sh knows where.
	if vars=$("$SCRIPT_DIR/kernels.sh" --vars "$KREL" 2>/dev/null); then
		eval "$vars"
	fi
fi
[[ -d $KDIR ]] || die "no kernel build tree $KDIR (run tools/testing/vm/setup.sh)"
[[ -f $SRC_DIR/Kbuild || -f $SRC_DIR/Makefile ]] ||
	die "no Kbuild or Makefile in $SRC_DIR"

OUT=$BUILD_ROOT/$KREL
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)

# Serialise builds of the same release (parallel vm-run.sh invocations).
exec 9>"$OUT/.lock"
flock 9

# List the source files to mirror, relative to SRC_DIR, sorted.
list_sources() {
	local item
	(
		cd "$SRC_DIR"
		for item in "${SRC_ITEMS[@]}"; do
			if [[ -f $item ]]; then
				printf '%s\n' "$item"
			elif [[ -d $item ]]; then
				find "$item" -type f ! -name '*.o' ! -name '*.ko' \
					! -name '*.mod' ! -name '*.mod.c' \
					! -name '.*.cmd' ! -name '.*.d' ! -name '*.order' \
					! -name 'Module.symvers' -print
			fi
		done
	) | LC_ALL=C sort
}

new_manifest=$(mktemp "$OUT/.manifest.XXXXXX")
trap 'rm -f "$new_manifest"' EXIT
list_sources >"$new_manifest"

# Remove files that were copied before but are gone from the source.
if [[ -f $OUT/$MANIFEST ]]; then
	LC_ALL=C comm -23 "$OUT/$MANIFEST" "$new_manifest" |
		while IFS= read -r f; do
			rm -f -- "${OUT:?}/$f"
		done
fi

# Copy new and changed files. A changed file gets the current time as its
# mtime so make always sees it as newer than its old build outputs.
copied=0
while IFS= read -r f; do
	if ! cmp -s -- "$SRC_DIR/$f" "$OUT/$f"; then
		mkdir -p -- "$OUT/$(dirname -- "$f")"
		cp -f -- "$SRC_DIR/$f" "$OUT/$f"
		copied=$((copied + 1))
	fi
done <"$new_manifest"
mv -f "$new_manifest" "$OUT/$MANIFEST"
trap - EXIT

echo "$PROG: building in $OUT for $KREL ($copied file(s) updated)" >&2

# CONFIG_MODULE_SRCVERSION_ALL=y only makes modpost record a srcversion
# (Debian's kernels don't set it), so tests can check via
# /sys/module/nbd/srcversion that the module they built is the one loaded.
# shellcheck disable=SC2086 # NBD_MAKE_FLAGS is meant to be word-split
make -C "$KDIR" M="$OUT" CONFIG_BLK_DEV_NBD=m CONFIG_MODULE_SRCVERSION_ALL=y \
	-j"$(nproc)" ${NBD_MAKE_FLAGS:-} modules >&2 ||
	die "build failed for $KREL"

[[ -f $OUT/$KO_REL ]] || die "build finished but $OUT/$KO_REL is missing"
printf '%s\n' "$OUT/$KO_REL"
