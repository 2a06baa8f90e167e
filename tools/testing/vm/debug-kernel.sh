#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the debug kernel of the VM tests (KASAN, lockdep, DEBUG_OBJECTS)
# from Debian's linux-source-6.12, with the stock nbd as a module, and
# install it into the cache: vm-run.sh --kernel debug boots it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../errtrap.sh"

PROG=${0##*/}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CACHE_DIR=${NBD_CACHE_DIR:-/var/cache/nbd-dev}
OUT=$CACHE_DIR/debug-kernel
SELF=$SCRIPT_DIR/$PROG
FRAGMENT=$SCRIPT_DIR/debug-kernel.config
TARBALL=${NBD_LINUX_SOURCE:-/usr/src/linux-source-6.12.tar.xz}
JOBS=${NBD_JOBS:-$(nproc)}

usage() {
	cat <<EOF
Usage: $PROG [--force] [--status]

Build a 6.12 kernel from $TARBALL with
  make defconfig; make kvm_guest.config; the fragment
  ${FRAGMENT#"$SCRIPT_DIR"/}; make olddefconfig; make bzImage modules
check that every option of the fragment ended up in .config, and install
it under \${NBD_CACHE_DIR:-/var/cache/nbd-dev}/debug-kernel/:
  linux-source-6.12/          the build tree (make -C it M=... for modules)
  vmlinuz-RELEASE             the kernel image
  modroot/lib/modules/RELEASE its modules (build -> the tree)
  release                     RELEASE, written once all of the above is
                              in place
The kernel is rebuilt (incrementally) only when this script, the fragment
or the tarball changed.  Prints the release on stdout.

  --force    rebuild even if nothing changed
  --status   print the release if the kernel is built and up to date,
             else exit 1; never builds
  -h         show this help

Environment:
  NBD_CACHE_DIR     cache root (default /var/cache/nbd-dev)
  NBD_JOBS          make -j (default: nproc)
  NBD_LINUX_SOURCE  the source tarball
EOF
}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

FORCE=0
STATUS=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--force) FORCE=1 ;;
	--status) STATUS=1 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 1 ;;
	esac
	shift
done

# What the build depends on.
stamp_of() {
	{
		sha256sum "$SELF" "$FRAGMENT" | cut -d' ' -f1
		stat -L -c '%s %Y' "$TARBALL" 2>/dev/null || echo "no tarball"
	} | sha256sum | cut -d' ' -f1
}

# up_to_date: the installed kernel matches the stamp and is complete.
up_to_date() {
	local rel

	[[ -f $OUT/stamp && -f $OUT/release ]] || return 1
	[[ $(<"$OUT/stamp") == "$(stamp_of)" ]] || return 1
	rel=$(<"$OUT/release")
	[[ -f $OUT/vmlinuz-$rel && -f $OUT/modroot/lib/modules/$rel/modules.dep &&
		-f $OUT/modroot/lib/modules/$rel/build/Module.symvers ]]
}

if [[ $STATUS -eq 1 ]]; then
	up_to_date || exit 1
	cat "$OUT/release"
	exit 0
fi

if [[ ! -f $TARBALL ]]; then
	echo "$PROG: $TARBALL missing, running setup.sh" >&2
	"$SCRIPT_DIR/setup.sh" >&2 ||
		die "setup.sh failed: the kernel source and build tools are needed (see above)"
	[[ -f $TARBALL ]] ||
		die "no $TARBALL after setup.sh: it comes from 'apt-get install linux-source-6.12'; NBD_LINUX_SOURCE=${NBD_LINUX_SOURCE:-} names another file"
fi

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

if [[ $FORCE -eq 0 ]] && up_to_date; then
	echo "$PROG: debug kernel $(<"$OUT/release") is up to date" >&2
	cat "$OUT/release"
	exit 0
fi

t0=$SECONDS
TREE=$("$SCRIPT_DIR/linux-source.sh" "$OUT") || die "cannot unpack the source"
LOG=$OUT/build.log
: >"$LOG"

# run STEP CMD...: run a build step, its output to the log.
run() {
	local step=$1

	shift
	echo "$PROG: $step" >&2
	echo "### $step: $*" >>"$LOG"
	if ! "$@" >>"$LOG" 2>&1; then
		tail -n 40 "$LOG" >&2
		die "$step failed (log: $LOG)"
	fi
}

# check_config: every line of the fragment holds in .config.
check_config() {
	local line sym val got bad=0

	while IFS= read -r line; do
		if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
			sym=${BASH_REMATCH[1]}
			val=${BASH_REMATCH[2]}
		elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
			sym=${BASH_REMATCH[1]}
			val=n
		else
			continue
		fi
		got=$(sed -n "s/^$sym=//p" "$TREE/.config")
		[[ -n $got ]] || got=n
		if [[ $got != "$val" ]]; then
			echo "$PROG: $sym: wanted $val, .config has $got" >&2
			bad=1
		fi
	done <"$FRAGMENT"
	[[ $bad -eq 0 ]] ||
		die "options of ${FRAGMENT##*/} were dropped (unmet dependencies?)"
}

cd "$TREE"
run "make defconfig" make defconfig
run "make kvm_guest.config" make kvm_guest.config
run "merge ${FRAGMENT##*/}" scripts/kconfig/merge_config.sh -m -O . .config "$FRAGMENT"
run "make olddefconfig" make olddefconfig
check_config
echo "$PROG: all $(grep -c -E '^(CONFIG_|# CONFIG_.* is not set)' "$FRAGMENT") options of ${FRAGMENT##*/} are set" >&2

t1=$SECONDS
run "make -j$JOBS bzImage modules (log: $LOG)" make -j"$JOBS" bzImage modules
echo "$PROG: compiled in $((SECONDS - t1)) s" >&2

REL=$(make -s kernelrelease)
[[ -n $REL ]] || die "make kernelrelease printed nothing"

# Install next to the old kernel, then swap.
rm -rf "$OUT/modroot.new"
run "make modules_install" make modules_install INSTALL_MOD_PATH="$OUT/modroot.new"
ln -sfn "$TREE" "$OUT/modroot.new/lib/modules/$REL/build"
rm -f "$OUT/release"
rm -rf "$OUT/modroot"
mv "$OUT/modroot.new" "$OUT/modroot"
rm -f "$OUT"/vmlinuz-*
cp arch/x86/boot/bzImage "$OUT/vmlinuz-$REL"
stamp_of >"$OUT/stamp"
printf '%s\n' "$REL" >"$OUT/release"

echo "$PROG: built $REL in $((SECONDS - t0)) s" >&2
printf '%s\n' "$REL"
