#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the driver's KUnit tests under UML: merge this repository's
# drivers/block/nbd/ into an unpacked Debian linux-source-6.12 (in place of
# upstream's nbd.c) and run tools/testing/kunit/kunit.py there.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../errtrap.sh"

PROG=${0##*/}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$SCRIPT_DIR/../../.." && pwd -P)
VM_DIR=$REPO/tools/testing/vm
CACHE=${NBD_CACHE_DIR:-/var/cache/nbd-dev}/kunit
TARBALL=${NBD_LINUX_SOURCE:-/usr/src/linux-source-6.12.tar.xz}
COV_RESULTS=${NBD_KUNIT_COVERAGE_DIR:-${NBD_CACHE_DIR:-/var/cache/nbd-dev}/results/kunit-coverage}

usage() {
	cat <<EOF
Usage: $PROG [--coverage] [--kunitconfig FILE] [KUNIT.PY ARGS...]

Copy drivers/block/nbd/ and include/uapi/linux/nbd{,-netlink}.h of this
repository into the kernel tree
  \${NBD_CACHE_DIR:-/var/cache/nbd-dev}/kunit/linux-source-6.12
(unpacked from $TARBALL on the first run; upstream's
drivers/block/nbd.c is replaced by our directory) and run there
  kunit.py run --kunitconfig=drivers/block/nbd/.kunitconfig \\
      --build_dir=\${NBD_CACHE_DIR:-/var/cache/nbd-dev}/kunit/build --jobs=\$(nproc)
Other arguments are passed to kunit.py run (e.g. --raw_output,
--kernel_args=..., a suite glob).  Exits non-zero when the build fails or
a test fails or crashes.

  --coverage          build with gcov (separate build dir build-coverage)
                      and write an lcov report of drivers/block/nbd/*.c to
                      \$NBD_KUNIT_COVERAGE_DIR (default
                      ${COV_RESULTS})
  --kunitconfig FILE  use FILE instead of the repository's
                      drivers/block/nbd/.kunitconfig (path on the host)
  -h, --help          show this help

Environment: NBD_CACHE_DIR, NBD_KUNIT_COVERAGE_DIR, NBD_LINUX_SOURCE.
EOF
}

die() {
	echo "$PROG: $*" >&2
	exit 2
}

COVERAGE=0
KUNITCONFIG=
PASS=()
while [[ $# -gt 0 ]]; do
	case $1 in
	--coverage) COVERAGE=1 ;;
	--kunitconfig) [[ $# -ge 2 ]] || die "--kunitconfig needs a file"
		KUNITCONFIG=$2; shift ;;
	--kunitconfig=*) KUNITCONFIG=${1#*=} ;;
	-h|--help) usage; exit 0 ;;
	*) PASS+=("$1") ;;
	esac
	shift
done

if [[ -n $KUNITCONFIG ]]; then
	[[ -f $KUNITCONFIG ]] || die "no such file: $KUNITCONFIG"
	KUNITCONFIG=$(realpath "$KUNITCONFIG")
else
	[[ -f $REPO/drivers/block/nbd/.kunitconfig ]] ||
		die "no drivers/block/nbd/.kunitconfig in $REPO (or pass --kunitconfig FILE)"
	KUNITCONFIG=drivers/block/nbd/.kunitconfig
fi

if [[ ! -f $TARBALL ]] || ! command -v rsync >/dev/null ||
	{ [[ $COVERAGE -eq 1 ]] && ! command -v lcov >/dev/null; }; then
	echo "$PROG: installing what is missing with setup.sh" >&2
	"$VM_DIR/setup.sh" >&2 ||
		die "setup.sh failed: the UML build needs the kernel source and rsync (see above)"
	[[ -f $TARBALL ]] ||
		die "no $TARBALL after setup.sh: it comes from 'apt-get install linux-source-6.12'; NBD_LINUX_SOURCE=${NBD_LINUX_SOURCE:-} names another file"
fi

mkdir -p "$CACHE"
# One run at a time: the tree and build directories are shared.
exec 9>"$CACHE/.lock"
flock 9

TREE=$("$VM_DIR/linux-source.sh" "$CACHE") || die "cannot unpack the kernel source"

# --- our driver in place of upstream's -----------------------------------------
# Files a build in the repository may leave next to the sources; they must
# not reach the kernel tree, where make would take them as up to date.
rsync_excludes=(
	--exclude='*.o' --exclude='*.ko' --exclude='*.mod' --exclude='*.mod.c'
	--exclude='.*.cmd' --exclude='.*.d' --exclude='*.order' --exclude='*.a'
	--exclude='Module.symvers' --exclude='*.gcno' --exclude='*.gcda'
	--exclude='*.orig' --exclude='*.rej' --exclude='*~'
)
# By content, not by time: a changed file gets a new mtime and rebuilds,
# an unchanged one keeps its mtime and does not.
rsync -r --checksum --delete "${rsync_excludes[@]}" \
	"$REPO/drivers/block/nbd/" "$TREE/drivers/block/nbd/"
for h in nbd.h nbd-netlink.h; do
	if ! cmp -s "$REPO/include/uapi/linux/$h" "$TREE/include/uapi/linux/$h"; then
		cp "$REPO/include/uapi/linux/$h" "$TREE/include/uapi/linux/$h"
	fi
done
rm -f "$TREE/drivers/block/nbd.c"

mk=$TREE/drivers/block/Makefile
if grep -q -E '^obj-\$\(CONFIG_BLK_DEV_NBD\)[[:space:]]+\+= nbd\.o$' "$mk"; then
	sed -i -E 's|^(obj-\$\(CONFIG_BLK_DEV_NBD\)[[:space:]]+\+= )nbd\.o$|\1nbd/|' "$mk"
fi
grep -q -E '^obj-\$\(CONFIG_BLK_DEV_NBD\)[[:space:]]+\+= nbd/$' "$mk" ||
	die "cannot hook nbd/ into $mk"

kc=$TREE/drivers/block/Kconfig
if ! grep -q '^source "drivers/block/nbd/Kconfig"$' "$kc"; then
	# Replace the whole "config BLK_DEV_NBD" entry, up to the next entry.
	awk '
		skip && /^(config|menuconfig|source|if|endif|menu|endmenu|comment|choice|endchoice)([[:space:]]|$)/ {
			skip = 0
			print ""
		}
		$0 == "config BLK_DEV_NBD" {
			print "source \"drivers/block/nbd/Kconfig\""
			skip = 1
		}
		!skip { print }
	' "$kc" >"$kc.new"
	mv "$kc.new" "$kc"
fi
if ! grep -q '^source "drivers/block/nbd/Kconfig"$' "$kc" ||
	grep -q '^config BLK_DEV_NBD$' "$kc"; then
	die "cannot hook drivers/block/nbd/Kconfig into $kc"
fi

# UML's linker scripts keep .init_array.* but drop the priority-sorted
# .fini_array.NNNNN sections out of the run-at-exit range.  GCC puts the
# gcov destructor, which writes the .gcda files, in .fini_array.00100: without
# this no coverage data is ever written.  (KASAN's .fini_array.00099
# destructor, which then runs too, does nothing.)
for lds in arch/um/kernel/dyn.lds.S arch/um/include/asm/common.lds.S; do
	if ! grep -q -F '*(.fini_array.*)' "$TREE/$lds"; then
		sed -i 's/\*(\.fini_array)/*(.fini_array.*) *(.fini_array)/' "$TREE/$lds"
	fi
	grep -q -F '*(.fini_array.*) *(.fini_array)' "$TREE/$lds" ||
		die "cannot patch .fini_array in $lds"
done

# --- kunit.py ---------------------------------------------------------------------
if [[ $COVERAGE -eq 1 ]]; then
	BUILD=$CACHE/build-coverage
else
	BUILD=$CACHE/build
fi
ARGS=(run "--kunitconfig=$KUNITCONFIG" "--build_dir=$BUILD" "--jobs=$(nproc)")
if [[ $COVERAGE -eq 1 ]]; then
	# UML's own gcov (CONFIG_GCOV, not GCOV_KERNEL): the kernel writes
	# .gcda files next to the objects when it exits.
	ARGS+=(--kunitconfig=tools/testing/kunit/configs/coverage_uml.config)
	# GCC 12's libgcov.a exports a global mangle_path(), which clashes
	# with the kernel's (fs/seq_file.c) when UML links libgcov in:
	# "multiple definition of `mangle_path'".  Rename the kernel's.
	gcov_syms=$(nm "$(gcc -print-file-name=libgcov.a)" 2>/dev/null || true)
	if grep -q ' T mangle_path$' <<<"$gcov_syms"; then
		ARGS+=(--make_options=KCFLAGS=-Dmangle_path=kernel_mangle_path)
	fi
	find "$BUILD" -name '*.gcda' -delete 2>/dev/null || true
fi
raw=0
timeout_set=0
for a in "${PASS[@]}"; do
	[[ $a == --raw_output* ]] && raw=1
	[[ $a == --timeout* ]] && timeout_set=1
done
# kunit.py's default bound on the whole run is 300 s; nbd_fuzz alone
# takes about that under UML with 100,000 streams.
[[ $timeout_set -eq 1 ]] || ARGS+=(--timeout=1800)
ARGS+=("${PASS[@]}")

LOG=$CACHE/last-run.log
echo "$PROG: $TREE: kunit.py ${ARGS[*]}" >&2
t0=$SECONDS
rc=0
(cd "$TREE" && python3 tools/testing/kunit/kunit.py "${ARGS[@]}") 2>&1 |
	tee "$LOG" || rc=$?
secs=$((SECONDS - t0))

summary=$(sed 's/\x1b\[[0-9;]*m//g' "$LOG" | grep -a -E 'Testing complete\.' | tail -n 1 || true)
if [[ $raw -eq 1 && $rc -eq 0 ]]; then
	# Raw output is not parsed by kunit.py run, so it cannot fail on a
	# test: parse the kernel log it saved for the verdict.
	if [[ -f $BUILD/test.log ]]; then
		parsed=$(cd "$TREE" && python3 tools/testing/kunit/kunit.py parse \
			"$BUILD/test.log" 2>&1) || rc=1
		summary=$(printf '%s\n' "$parsed" | sed 's/\x1b\[[0-9;]*m//g' |
			grep -a -E 'Testing complete\.' | tail -n 1 || true)
	fi
fi
# KUnit fails a case on a KASAN report, not on a WARN, a lockdep report
# or a DEBUG_OBJECTS one: any of them in the kernel's log fails the run.
# Allowed: UML's own warning at boot that PCI over virtio has no device
# ID (arch/um/drivers/virt-pci.c; kunit.py's UML config).
SPLAT_RE='WARNING:|BUG:|Oops|KASAN|UBSAN|ODEBUG:|possible circular locking|possible recursive locking|inconsistent lock state|INFO: task .* blocked|general protection'
SPLAT_OK='WARNING: CPU: [0-9]+ PID: [0-9]+ at arch/um/drivers/virt-pci\.c:'
if [[ -f $BUILD/test.log ]]; then
	splats=$(grep -a -E "$SPLAT_RE" "$BUILD/test.log" |
		 grep -a -v -E "$SPLAT_OK" || true)
	if [[ -n $splats ]]; then
		echo "$PROG: kernel splats in $BUILD/test.log:" >&2
		head -n 20 <<<"$splats" >&2
		rc=1
	fi
fi
# kunit.py has been seen to exit 0 after a test crashed the kernel
# ("Ran 10 tests: passed: 10, errors: 2"): judge by the summary too.
if [[ $rc -eq 0 && $summary =~ (failed|crashed|errors):\ *[1-9] ]]; then
	rc=1
fi
if [[ $rc -eq 0 && -z $summary ]]; then
	echo "$PROG: kunit.py printed no 'Testing complete' summary" >&2
	rc=1
fi

if [[ $COVERAGE -eq 1 && -f $BUILD/vmlinux ]]; then
	if ! bash "$SCRIPT_DIR/coverage.sh" "$BUILD" "$COV_RESULTS"; then
		[[ $rc -ne 0 ]] || rc=1
	fi
fi

[[ -z $summary ]] || echo "$PROG: ${summary#*] }" >&2
if [[ $rc -eq 0 ]]; then
	echo "$PROG: PASS in ${secs} s (log: $LOG)" >&2
else
	echo "$PROG: FAIL (status $rc) in ${secs} s (log: $LOG)" >&2
fi
exit "$rc"
