#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Resolve a kernel alias (6.1, 6.12) or a full release string to an
# installed kernel release that has both /boot/vmlinuz-R and
# /lib/modules/R/build; or "debug" to the debug kernel that
# debug-kernel.sh built into the cache.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../errtrap.sh"

PROG=${0##*/}
DEFAULT_ALIASES=(6.1 6.12)
DEBUG_DIR=${NBD_CACHE_DIR:-/var/cache/nbd-dev}/debug-kernel

usage() {
	cat <<EOF
Usage: $PROG ALIAS|RELEASE
       $PROG --vars ALIAS|RELEASE
       $PROG --list

Print the full installed kernel release for ALIAS (e.g. 6.1 or 6.12: the
newest installed release of that series having both /boot/vmlinuz-R and
/lib/modules/R/build). A full RELEASE is printed back if it is installed.
ALIAS "debug" is the debug kernel built by debug-kernel.sh (make
debug-kernel) in \${NBD_CACHE_DIR:-/var/cache/nbd-dev}/debug-kernel.

  --vars   print shell assignments for the kernel, for eval:
           KREL     the release
           VMLINUZ  the kernel image
           KDIR     the build tree for out-of-tree modules
           MODROOT  the root of its /lib/modules tree: empty for an
                    installed kernel, a directory in the cache for the
                    debug kernel (modprobe -d MODROOT)
           MODDIR   \$MODROOT/lib/modules/KREL
  --list   print the default set of releases (${DEFAULT_ALIASES[*]}),
           one per line
  -h       show this help
EOF
}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

# A release is usable when we can boot it and build modules for it.
usable() {
	[[ -f /boot/vmlinuz-$1 && -d /lib/modules/$1/build ]]
}

# The debug kernel's release, if it is built completely.
debug_release() {
	local rel

	[[ -f $DEBUG_DIR/release ]] || return 1
	rel=$(<"$DEBUG_DIR/release")
	[[ -n $rel && -f $DEBUG_DIR/vmlinuz-$rel &&
		-d $DEBUG_DIR/modroot/lib/modules/$rel/build ]] || return 1
	printf '%s\n' "$rel"
}

is_debug() {
	[[ $(debug_release 2>/dev/null) == "$1" ]]
}

# Installed usable releases, one per line, oldest first.
installed_releases() {
	local d r
	for d in /lib/modules/*/; do
		[[ -d $d ]] || continue
		r=${d%/}
		r=${r##*/}
		if usable "$r"; then
			printf '%s\n' "$r"
		fi
	done | sort -V
}

resolve() {
	local want=$1 rel best="" plain=""

	if [[ $want =~ ^[0-9]+\.[0-9]+$ ]]; then
		# "6.1" must match 6.1.0-56-amd64 but not 6.12.x.
		while IFS= read -r rel; do
			[[ $rel == "$want".* || $rel == "$want"-* ||
				$rel == "$want"+* ]] || continue
			best=$rel
			# Prefer the generic flavour over -rt / -cloud ones.
			if [[ $rel != *-rt-* && $rel != *-cloud-* ]]; then
				plain=$rel
			fi
		done < <(installed_releases)
		[[ -n $plain ]] && best=$plain
		[[ -n $best ]] ||
			die "no installed $want kernel with /boot/vmlinuz-* and /lib/modules/*/build (run tools/testing/vm/setup.sh)"
		printf '%s\n' "$best"
		return 0
	fi

	if [[ $want == debug ]]; then
		debug_release ||
			die "the debug kernel is not built (run make debug-kernel)"
		return 0
	fi

	usable "$want" || is_debug "$want" ||
		die "kernel '$want' is not installed (need /boot/vmlinuz-$want and /lib/modules/$want/build)"
	printf '%s\n' "$want"
}

# vars ALIAS|RELEASE: the kernel's paths as shell assignments.
vars() {
	local rel root='' vmlinuz kdir

	rel=$(resolve "$1") || exit 1
	if usable "$rel"; then
		vmlinuz=/boot/vmlinuz-$rel
		kdir=/lib/modules/$rel/build
	else
		root=$DEBUG_DIR/modroot
		vmlinuz=$DEBUG_DIR/vmlinuz-$rel
		kdir=$root/lib/modules/$rel/build
	fi
	printf 'KREL=%q\nVMLINUZ=%q\nKDIR=%q\nMODROOT=%q\nMODDIR=%q\n' \
		"$rel" "$vmlinuz" "$kdir" "$root" "$root/lib/modules/$rel"
}

if [[ $# -eq 2 && $1 == --vars ]]; then
	vars "$2"
	exit 0
fi
[[ $# -eq 1 ]] || { usage >&2; exit 1; }

case $1 in
-h|--help)
	usage
	;;
--list)
	for a in "${DEFAULT_ALIASES[@]}"; do
		resolve "$a"
	done
	;;
-*)
	usage >&2
	exit 1
	;;
*)
	resolve "$1"
	;;
esac
