#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run every test: build checks on the host, then the selftests in a VM on
# each kernel.  Ends with one line "N passed, N failed".
#
#   NBD_KERNELS="6.1 6.12"   kernels to test (aliases or releases); "debug"
#                            builds the KASAN + lockdep kernel first
#                            (make debug-kernel) and tests on it too
#   NBD_TESTS="nbd_dd ..."   run only these selftests
#   NBD_RESULTS=DIR          where logs go (default: /var/cache/nbd-dev/results)
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
VM="$REPO/tools/testing/vm"
KERNELS=${NBD_KERNELS:-"6.1 6.12"}
RESULTS=${NBD_RESULTS:-/var/cache/nbd-dev/results}
TESTS=${NBD_TESTS:-}
DKMS_VER=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$REPO/dkms.conf")
passed=0
failed=0
failures=()

mkdir -p "$RESULTS"
cd "$REPO" || exit 1

make_stage() {	# make_stage KREL DIR MODDIR: a module tree linking to the kernel's
	local k=$1 d=$2/lib/modules/$1 f

	rm -rf "$2"
	mkdir -p "$d"
	for f in "$3"/*; do
		case ${f##*/} in
		modules.order | modules.builtin | modules.builtin.modinfo)
			cp "$f" "$d/" ;;
		modules.* | build | source | updates) ;;
		*) ln -s "$f" "$d/" ;;
		esac
	done
}

result() {	# result NAME OK
	if [ "$2" = 0 ]; then
		passed=$((passed + 1))
		echo "ok - $1"
	else
		failed=$((failed + 1))
		failures+=("$1")
		echo "not ok - $1"
	fi
}

# The debug kernel is built here, not by vm-run.sh: it takes ten minutes
# or more the first time (then only when its config or script change).
for k in $KERNELS; do
	[ "$k" = debug ] || continue
	echo "# building the debug kernel (log: $RESULTS/debug-kernel.log)"
	t0=$SECONDS
	make -s -C "$REPO" debug-kernel >"$RESULTS/debug-kernel.log" 2>&1
	rc=$?
	echo "# debug kernel: $((SECONDS - t0)) s"
	result "build the debug kernel" $rc
	[ $rc = 0 ] || tail -20 "$RESULTS/debug-kernel.log"
	break
done

for k in $KERNELS; do
	kvars=$("$VM/kernels.sh" --vars "$k") || { result "kernel $k installed" 1; continue; }
	# KREL, KDIR, MODROOT (empty but for the debug kernel), MODDIR
	KREL='' KDIR='' MODROOT='' MODDIR=''
	eval "$kvars"
	krel=$KREL
	t_kernel=$SECONDS

	# The module must build without a single warning.
	log="$RESULTS/build-$krel.log"
	ko=$("$VM/build-module.sh" "$krel" 2>"$log")
	rc=$?
	if [ $rc = 0 ] && grep -q 'warning:' "$log"; then
		rc=1
	fi
	result "build nbd.ko for $krel" $rc
	[ $rc = 0 ] || { tail -20 "$log"; continue; }

	# DKMS builds it from a clean export of the tree, in a private tree
	dk="$RESULTS/dkms-$krel"
	rm -rf "$dk"
	mkdir -p "$dk/src/nbd-$DKMS_VER" "$dk/dkms"
	git -C "$REPO" ls-files -z | (cd "$REPO" && xargs -0 cp --parents -t "$dk/src/nbd-$DKMS_VER")
	dkms build -m nbd -v "$DKMS_VER" -k "$krel" --sourcetree "$dk/src" \
		--dkmstree "$dk/dkms" --kernelsourcedir "$KDIR" >"$dk.log" 2>&1 &&
		ls "$dk/dkms/nbd/$DKMS_VER/$krel"/*/module/nbd.ko* >/dev/null 2>&1
	result "dkms build for $krel" $?

	# make install into a stage that links to the kernel's own modules,
	# so that its depmod sees both; the VM test then checks modprobe.
	stage="$RESULTS/install-$krel"
	make_stage "$krel" "$stage" "$MODDIR"
	make -s -C "${ko%/drivers/block/nbd/nbd.ko}" install \
		KDIR="$KDIR" KRELEASE="$krel" INSTALL_MOD_PATH="$stage" \
		>"$RESULTS/install-$krel.log" 2>&1
	rc=$?
	picked=$(modprobe -d "$stage" -S "$krel" -n -v nbd 2>&1 | awk '/insmod/ {print $2}')
	echo "# after make install, modprobe nbd would load $picked"
	[ $rc = 0 ] && [[ $picked == "$stage/lib/modules/$krel/updates/"* ]]
	result "make install for $krel: modprobe prefers updates/nbd.ko" $?

	log="$RESULTS/selftests-$krel.log"
	echo "# selftests on $krel (log: $log)"
	# 4 vCPUs: blk-mq makes one hardware queue per CPU at most, and the
	# multi-connection test wants to see 4 of them.
	# KASAN + lockdep under TCG make the debug kernel 3-5 times slower:
	# more time for the VM and for each test, and a longer load/unload
	# race (10 s gives only one unload there).
	vm_timeout=1800
	slow=()
	if [ -n "$MODROOT" ]; then
		vm_timeout=5400
		slow=(--env NBD_SELFTEST_TIMEOUT=1200 --env NBD_RACE_SECONDS=30)
	fi
	"$VM/vm-run.sh" --kernel "$krel" --smp 4 --timeout $vm_timeout \
		--module "$ko" --env "NBD_INSTALL_STAGE=$stage" "${slow[@]}" \
		--log "$RESULTS/vm-$krel.log" -- \
		tools/testing/selftests/nbd/run_tests.sh $TESTS 2>&1 | tee "$log"
	vmrc=${PIPESTATUS[0]}

	# Each selftest counts; so does the VM run's own verdict (no splat,
	# module removable), which can fail while every test passed.
	sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
	if [ -n "$sum" ]; then
		p=${sum%% passed*}
		f=${sum#*passed, }
		f=${f%% failed*}
		passed=$((passed + p))
		failed=$((failed + f))
		[ "$f" = 0 ] || failures+=("selftests on $krel ($f)")
	else
		result "selftests ran on $krel" 1
	fi
	verdict=$(grep -E 'NBD-VM-RESULT' "$log" | tail -1)
	case "$verdict" in
	*splat=0*rmmod=ok*) clean=0 ;;
	*) clean=1 ;;
	esac
	result "no kernel splat and nbd unloads on $krel (vm-run rc=$vmrc)" $clean
	echo "# $krel: $((SECONDS - t_kernel)) s"
done

if [ ${#failures[@]} -gt 0 ]; then
	echo "# failed:"
	printf '#   %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
