#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run every test and end with one line "N passed, N failed":
#   - the debug kernel (KASAN, lockdep, DEBUG_OBJECTS, KUnit) is built
#     first if it is missing or out of date (make debug-kernel);
#   - per kernel: nbd.ko built without a warning, a DKMS build, make
#     install preferred by modprobe, then the selftests in a VM (on the
#     debug kernel also the KUnit module, nbd_kunit), with no kernel splat
#     and nbd unloadable at the end;
#   - the KUnit suites on UML (make kunit);
#   - Ceph's rbd-nbd on a one-node cluster in the guest (nbd_ceph, short),
#     a VM of its own per Debian kernel;
#   - nbdctl: built without a warning, its host tests (no VM; also the
#     systemd unit, bash completion and nbdtab example), and in the VMs
#     nbd_nbdctl, nbd_structured, nbd_persist, nbd_nbdtab and nbd_compat
#     (with nbd-client's tests NBD_COMPAT_TESTS run through it), also
#     with the stock nbd.ko;
#   - make deb: its host test (tools/testing/deb/check.sh), then the
#     packages installed, used and purged with apt in a VM (nbd_deb) on
#     each Debian kernel;
#   - the first run of a new user (tools/testing/firstrun/run.sh): setup.sh
#     and the other first-run paths against a fake, empty Debian.
# The per-kernel jobs and the UML run are independent: they run two at a
# time (a TCG VM keeps one core busy), and each job's output is printed
# when it ends.
#
#   NBD_KERNELS="6.1 6.12 debug"  kernels to test (aliases or releases)
#   NBD_KUNIT=1                   0: skip the KUnit run on UML
#   NBD_NBDCTL_TESTS=1            0: skip nbdctl's host tests
#   NBD_FIRSTRUN_TESTS=1          0: skip the first-run tests
#   NBD_CEPH=1                    0: skip nbd_ceph (rbd-nbd on a Ceph
#                                 cluster in its own VM per kernel)
#   NBD_DEB=1                     0: skip make deb's tests
#   NBD_DEB_VM=1                  0: no nbd_deb (9 minutes a kernel)
#   NBD_COMPAT_TESTS=nbd_discard  nbd-client tests nbd_compat runs with
#                                 nbdctl as nbd-client (check-long: four)
#   NBD_TESTS="nbd_dd ..."        run only these selftests
#   NBD_PARALLEL=2                jobs at once
#   NBD_LONG=0                    1: the full server restart cycle, 5000
#                                 NBD_CLEAR_SOCK and every hostile mode
#                                 on 6.1 and 6.12 (make check-long)
#   NBD_DEBUG_TESTS="nbd_races ..."  selftests the debug kernel runs in
#                                 make check (make check-long: all but
#                                 NBD_DEBUG_SKIP, an extended regex)
#   NBD_RESULTS=DIR               where logs go (default: /var/cache/nbd-dev/results)
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
VM="$REPO/tools/testing/vm"
KERNELS=${NBD_KERNELS:-"6.1 6.12 debug"}
KUNIT=${NBD_KUNIT:-1}
RESULTS=${NBD_RESULTS:-/var/cache/nbd-dev/results}
TESTS=${NBD_TESTS:-}
PARALLEL=${NBD_PARALLEL:-2}
LONG=${NBD_LONG:-0}
# The debug kernel (KASAN, lockdep, DEBUG_OBJECTS, hung tasks) runs 3-5
# times slower than Debian's under TCG.  In make check it runs the tests
# whose paths most need it and that no other suite runs under KASAN:
# the load/unload, CONNECT/CLEAR_SOCK, reconfigure and teardown races,
# the KUnit module (nbd_fuzz's receive path included, which UML runs
# with 100,000 streams), the kTLS receive path, the 3-minute soak
# (server SIGKILL/SIGTERM/SIGSTOP, resize, re-attach, under fio verify)
# and the fuzzing proxy before a real server.  The hostile replies are
# nbd_fuzz's on UML (KASAN, lockdep); server restarts are the soak's.
# make check-long runs every selftest there but NBD_DEBUG_SKIP.
DEBUG_TESTS=${NBD_DEBUG_TESTS-"nbd_races nbd_teardown nbd_kunit nbd_tls nbd_soak nbd_fuzz_proxy"}
DEBUG_SKIP=${NBD_DEBUG_SKIP-"nbd_dd|nbd_fs|nbd_part|nbd_persist|nbd_install|nbd_trace|nbd_perm|nbd_discard|nbd_qemu|nbd_readonly|nbd_errno"}
DKMS_VER=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$REPO/dkms.conf")
# nbd-client's tests that nbd_compat runs with nbdctl as nbd-client
# (NBD_COMPAT_SUBTESTS).  Most others use -L, the ioctl interface, which
# nbdctl leaves to nbd-client; nbd_multiconn wants -C 4 refused by a
# server without CAN_MULTI_CONN, where compat uses one connection.
COMPAT_TESTS=${NBD_COMPAT_TESTS:-nbd_discard}
[ "$LONG" = 1 ] && COMPAT_TESTS=${NBD_COMPAT_TESTS:-"nbd_discard nbd_errno nbd_tcp nbd_fio"}
DEB_DIR=${NBD_CACHE_DIR:-/var/cache/nbd-dev}/deb
# nbd_deb's kernels: every Debian kernel tested.  The deb job builds the
# packages and runs the first; each other is a job of its own ("deb K"),
# which waits for the packages (DEB_READY: make deb's exit status).
DEB_VM_KERNELS=
if [ "${NBD_DEB_VM:-1}" != 0 ]; then
	for k in $KERNELS; do
		[ "$k" = debug ] || DEB_VM_KERNELS+=" $k"
	done
fi
DEB_READY=$RESULTS/deb-build.rc
# The guests' DKMS compiles through ccache, from a cache the deb job fills
# on the host (tools/testing/deb/prime-ccache.sh): minutes of TCG less a
# kernel.  make deb-vm and make check-long compile it all in the guest.
DEB_CCACHE=
[ "$LONG" = 1 ] || DEB_CCACHE=${NBD_CACHE_DIR:-/var/cache/nbd-dev}/deb-ccache
passed=0
failed=0
failures=()

mkdir -p "$RESULTS"
rm -f "$DEB_READY"
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

# Results are lines "ok - WHAT" / "not ok - WHAT" in a job's output; a
# selftest run adds "# counts P F" for its P + F tests.
result() {	# result NAME RC
	if [ "$2" = 0 ]; then
		echo "ok - $1"
	else
		echo "not ok - $1"
	fi
}

# kernel_job K: everything for kernel K (an alias, a release or "debug").
kernel_job() {
	local k=$1 kvars krel ko rc dk stage picked log vmrc
	local t_kernel=$SECONDS vm_timeout=1800 slow=() kunit_ko tests=$TESTS long
	local KREL='' KDIR='' MODROOT='' MODDIR=''

	kvars=$("$VM/kernels.sh" --vars "$k") || { result "kernel $k installed" 1; return; }
	eval "$kvars"
	krel=$KREL

	# The module must build without a single warning.
	log="$RESULTS/build-$krel.log"
	ko=$("$VM/build-module.sh" "$krel" 2>"$log")
	rc=$?
	if [ $rc = 0 ] && grep -q 'warning:' "$log"; then
		rc=1
	fi
	result "build nbd.ko for $krel" $rc
	[ $rc = 0 ] || { tail -20 "$log"; return; }
	stage="$RESULTS/install-$krel"

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
	make_stage "$krel" "$stage" "$MODDIR"
	make -s -C "${ko%/drivers/block/nbd/nbd.ko}" install \
		KDIR="$KDIR" KRELEASE="$krel" INSTALL_MOD_PATH="$stage" \
		>"$RESULTS/install-$krel.log" 2>&1
	rc=$?
	picked=$(modprobe -d "$stage" -S "$krel" -n -v nbd 2>&1 | awk '/insmod/ {print $2}')
	echo "# after make install, modprobe nbd would load $picked"
	[ $rc = 0 ] && [[ $picked == "$stage/lib/modules/$krel/updates/"* ]]
	result "make install for $krel: modprobe prefers updates/nbd.ko" $?
	kernel_vm
}

# kernel_vm: the VM part of kernel_job (its variables are in scope).
kernel_vm() {
	# 4 vCPUs: blk-mq makes one hardware queue per CPU at most, and the
	# multi-connection test wants to see 4 of them.
	if [ -n "$MODROOT" ]; then
		# KASAN + lockdep under TCG make the debug kernel 3-5 times
		# slower (a 4k write with verify: ~70 IOPS): more time for the
		# VM and each test, small fio runs, a longer load/unload race
		# (10 s gives only one unload there).
		vm_timeout=3600
		[ "$LONG" = 1 ] && vm_timeout=14400
		slow=(--env NBD_SELFTEST_TIMEOUT=900 --env NBD_RACE_SECONDS=20
		      --env NBD_FIO_REGION_MB=4 --env NBD_FIO_SEQ_MB=8
		      --env NBD_MULTICONN_MB=2 --env NBD_REQ_TIMEOUT=20
		      --env NBD_TCP_REGION_MB=2 --env NBD_TCP_SEQ_MB=4
		      --env NBD_RACE_ROUNDS=4 --env NBD_CLEAR_SOCK_COUNT=120
		      --env NBD_CLEAR_SOCK_ROUNDS=4
		      --env NBD_RESTART_MB=2 --env NBD_RESTART_DEAD=180
		      --env NBD_RESTART_SHORT=1
		      --env NBD_HOSTILE_SR_BAD=sr-overlap,sr-done-early
		      --env NBD_TLS_SHORT=1 --env NBD_TLS_MB=2
		      --env "NBD_TLS_MODES=alert-mid-reply garbage"
		      --env NBD_KUNIT_FUZZ_STREAMS=400
		      --env NBD_SOAK_SECONDS=180 --env NBD_SOAK_MB=2
		      --env NBD_FUZZ_PROXY=1 --env NBD_FUZZ_SECONDS=90
		      --env NBD_FUZZ_MB=16)
		if [ "$LONG" = 1 ]; then
			slow+=(--env NBD_SOAK_SECONDS=600 --env NBD_SOAK_MB=4
			       --env NBD_FUZZ_SECONDS=600 --env NBD_FUZZ_MB=64
			       --env NBD_SELFTEST_TIMEOUT=2400)
		fi
	elif [ "$LONG" != 1 ]; then
		# Within CI's hour: the short server restart cycle and 2000
		# NBD_CLEAR_SOCK on 6.1 and 6.12 too; make check-long
		# (NBD_LONG=1) runs the full ones (and every hostile mode).
		slow=(--env NBD_RESTART_SHORT=1 --env NBD_CLEAR_SOCK_COUNT=2000
		      --env NBD_TLS_MB=8)
		# nbd_upstream without its two longest sections (memory
		# pressure, the server gone 45 s: two minutes), which the
		# debug kernel's soak and make check-long cover, to make room
		# for nbd_ceph
		slow+=(--env NBD_UPSTREAM_SECTIONS=acdghi)
		# 6.12 meets all six hostile TLS peers, 6.1 two of them
		case $krel in
		6.1.*) slow+=(--env "NBD_TLS_MODES=alert-mid-reply keyupdate") ;;
		esac
	else
		slow=(--env NBD_HOSTILE_ALL=1)
	fi
	# make soak and make vm-fuzz: their lengths win, and the bounds grow.
	for v in NBD_SOAK_SECONDS NBD_SOAK_SEED NBD_SOAK_MB NBD_FUZZ_PROXY \
		 NBD_FUZZ_SECONDS NBD_FUZZ_RATE NBD_FUZZ_SEED NBD_FUZZ_MB; do
		[ -n "${!v:-}" ] && slow+=(--env "$v=${!v}")
	done
	long=$(( ${NBD_SOAK_SECONDS:-0} > ${NBD_FUZZ_SECONDS:-0} ?
		 ${NBD_SOAK_SECONDS:-0} : ${NBD_FUZZ_SECONDS:-0} ))
	if [ "$long" -gt 0 ]; then
		slow+=(--env "NBD_SELFTEST_TIMEOUT=$((long + 1500))")
		vm_timeout=$((vm_timeout + long + 1500))
	fi
	# A kernel with KUnit built the test module too: run it there.
	kunit_ko=${ko%/nbd.ko}/nbd_kunit.ko
	if [ -f "$kunit_ko" ] && grep -qs '^CONFIG_KUNIT=y' "$KDIR/.config"; then
		slow+=(--env "NBD_KUNIT_KO=$kunit_ko")
	else
		kunit_ko=''
	fi
	# The debug kernel runs DEBUG_TESTS (make check-long: every test
	# but DEBUG_SKIP); the others every test.
	if [ -n "$MODROOT" ] && [ -z "$TESTS" ]; then
		if [ "$LONG" = 1 ]; then
			tests=$(NBD_INSTALL_STAGE=$stage NBD_KUNIT_KO=$kunit_ko \
				NBD_SOAK_SECONDS=600 NBD_FUZZ_PROXY=1 \
				tools/testing/selftests/nbd/run_tests.sh -l |
				grep -vxE "$DEBUG_SKIP")
		else
			tests=$DEBUG_TESTS
		fi
		tests=$(for t in $tests; do
			[ -x "tools/testing/selftests/nbd/$t.sh" ] || continue
			[ "$t" != nbd_kunit ] || [ -n "$kunit_ko" ] || continue
			echo "$t"
		done)
		tests=$(echo $tests)
	elif [ "$LONG" != 1 ] && [ -z "$TESTS" ] && [[ $krel == 6.1.* ]]; then
		# Within CI's hour: upstream's bug classes on 6.12 and the
		# debug kernel's races; on 6.1 in make check-long.
		tests=$(NBD_INSTALL_STAGE=$stage \
			tools/testing/selftests/nbd/run_tests.sh -l |
			grep -vx nbd_upstream)
		tests=$(echo $tests)
	fi
	log="$RESULTS/selftests-$krel.log"
	echo "# selftests on $krel${tests:+ ($tests)} (log: $log)"
	"$VM/vm-run.sh" --kernel "$krel" --smp 4 --timeout $vm_timeout \
		--module "$ko" --env "NBD_INSTALL_STAGE=$stage" "${slow[@]}" \
		--env "NBDCTL=$NBDCTL" --env "NBD_COMPAT_SUBTESTS=$COMPAT_TESTS" \
		--log "$RESULTS/vm-$krel.log" -- \
		tools/testing/selftests/nbd/run_tests.sh $tests >"$log" 2>&1
	vmrc=$?
	cat "$log"
	vm_counts "$krel" "$log" $vmrc

	# nbdctl must work with the kernel's own nbd.ko too (same netlink),
	# and fall back to simple replies there (nbd_structured).  What
	# the stock module does with kernel TLS (nbd_tls with --stock) is
	# recorded by hand: CI's hour has no room for it.
	[ -z "$MODROOT" ] && [ -z "$TESTS" ] || return 0
	stock_tests="nbd_nbdctl nbd_structured nbd_persist nbd_nbdtab nbd_compat"
	log="$RESULTS/selftests-$krel-stock.log"
	echo "# nbdctl with the stock nbd.ko on $krel (log: $log)"
	"$VM/vm-run.sh" --kernel "$krel" --smp 4 --timeout 1200 --stock \
		--env "NBDCTL=$NBDCTL" --env "NBD_COMPAT_SUBTESTS=$COMPAT_TESTS" \
		--log "$RESULTS/vm-$krel-stock.log" -- \
		tools/testing/selftests/nbd/run_tests.sh $stock_tests \
		>"$log" 2>&1
	vmrc=$?
	cat "$log"
	vm_counts "$krel (stock nbd.ko)" "$log" $vmrc

	echo "# $krel: $((SECONDS - t_kernel)) s"
}

# deb_job: make deb's host test, the packages for the VM test (their
# exit status to DEB_READY, for the "deb K" jobs), then nbd_deb on the
# first kernel of DEB_VM_KERNELS.
deb_job() {
	local t0=$SECONDS rc first k kvars rels=() KREL=''

	host_tests_job "make deb (host)" "$RESULTS/deb-check.log" \
		"$REPO/tools/testing/deb/check.sh"
	[ -n "$DEB_VM_KERNELS" ] || { echo "# deb: $((SECONDS - t0)) s"; return 0; }
	DEB_LINT=0 DEB_OUT="$DEB_DIR" make -s -C "$REPO" deb \
		>"$RESULTS/deb-build.log" 2>&1
	rc=$?
	result "make deb for the VM test" $rc
	if [ $rc = 0 ] && [ -n "$DEB_CCACHE" ]; then
		for k in $DEB_VM_KERNELS; do
			kvars=$("$VM/kernels.sh" --vars "$k") || continue
			eval "$kvars"
			rels+=("$KREL")
		done
		rm -rf "$DEB_CCACHE"
		"$REPO/tools/testing/deb/prime-ccache.sh" "$DEB_DIR" \
			"$DEB_CCACHE" "${rels[@]}" >"$RESULTS/deb-ccache.log" 2>&1
		result "nbd_deb's compiler cache filled for ${rels[*]}" $?
		cat "$RESULTS/deb-ccache.log"
	fi
	echo $rc >"$DEB_READY.tmp" && mv "$DEB_READY.tmp" "$DEB_READY"
	[ $rc = 0 ] || { tail -20 "$RESULTS/deb-build.log"; return 0; }
	read -r first _ <<<"$DEB_VM_KERNELS"
	deb_vm "$first"
	echo "# deb: $((SECONDS - t0)) s"
}

# deb_vm K: nbd_deb on kernel K, in a stock guest (the module under test
# is the one DKMS builds there).
deb_vm() {
	local k=$1 kvars krel log vmrc KREL=''

	kvars=$("$VM/kernels.sh" --vars "$k") ||
		{ result "kernel $k installed (nbd_deb)" 1; return; }
	eval "$kvars"
	krel=$KREL
	log="$RESULTS/selftests-$krel-deb.log"
	echo "# nbd_deb on $krel (log: $log)"
	"$VM/vm-run.sh" --kernel "$krel" --smp 2 --timeout 1500 --stock \
		--env "NBD_DEB_DIR=$DEB_DIR" --env NBD_SELFTEST_TIMEOUT=1200 \
		${DEB_CCACHE:+--env "NBD_DEB_CCACHE=$DEB_CCACHE"} \
		--log "$RESULTS/vm-$krel-deb.log" -- \
		tools/testing/selftests/nbd/run_tests.sh nbd_deb >"$log" 2>&1
	vmrc=$?
	cat "$log"
	vm_counts "$krel (nbd_deb)" "$log" $vmrc
}

# deb_vm_job K: nbd_deb on K once the deb job has built the packages
# (it writes DEB_READY; it is started before this job, so a bound of
# 20 minutes is only for a deb job that died).
deb_vm_job() {
	local t0=$SECONDS

	while [ ! -f "$DEB_READY" ] && [ $((SECONDS - t0)) -lt 1200 ]; do
		sleep 2
	done
	if [ "$(cat "$DEB_READY" 2>/dev/null)" != 0 ]; then
		result "nbd_deb on $1: make deb built the packages" 1
		return
	fi
	deb_vm "$1"
	echo "# deb on $1: $((SECONDS - t0)) s"
}

# vm_counts NAME LOG RC: the counts of a VM selftest run.
vm_counts() {
	local sum p f verdict clean log=$2

	# Each selftest counts; so does the VM run's own verdict (no splat,
	# module removable), which can fail while every test passed.
	sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
	if [ -n "$sum" ]; then
		p=${sum%% passed*}
		f=${sum#*passed, }
		f=${f%% failed*}
		echo "# counts $p $f selftests on $1"
	else
		result "selftests ran on $1" 1
	fi
	verdict=$(grep -E 'NBD-VM-RESULT' "$log" | tail -1)
	case "$verdict" in
	*splat=0*rmmod=ok*) clean=0 ;;
	*) clean=1 ;;
	esac
	result "no kernel splat and nbd unloads on $1 (vm-run rc=$3)" $clean
}

# kunit_job: the KUnit suites on UML, as `make kunit` runs them.
kunit_job() {
	local t0=$SECONDS rc line

	"$REPO/tools/testing/kunit/run.sh" >"$RESULTS/kunit.log" 2>&1
	rc=$?
	grep -E '^\[[0-9:]+\] +(\[(FAILED|CRASHED|SKIPPED)\]|=+ \[)' \
		"$RESULTS/kunit.log" | sed 's/^/# /'
	line=$(grep -E 'Testing complete\.' "$RESULTS/kunit.log" | tail -1)
	echo "# ${line:-kunit.py printed no summary}"
	[ $rc = 0 ] || tail -30 "$RESULTS/kunit.log"
	result "KUnit on UML (make kunit): ${line##*] }" $rc
	echo "# kunit: $((SECONDS - t0)) s"
}

# nbd_hostile_server, built once here (the guests see this tree), not in
# every VM that needs it (10-20 s under TCG); lib.sh builds it in the
# guest when this copy is missing or older than its source.
SELFTESTS="$REPO/tools/testing/selftests/nbd"
${CC:-cc} -O2 -Wall -Wextra -o "$SELFTESTS/nbd_hostile_server" \
	"$SELFTESTS/nbd_hostile_server.c" >"$RESULTS/hostile-server-cc.log" 2>&1 ||
	echo "# nbd_hostile_server did not build on the host (the VMs build it): $RESULTS/hostile-server-cc.log"
# nbd_tls_peer (GnuTLS) the same way, for nbd_tls.
${CC:-cc} -O2 -Wall -Wextra -o "$SELFTESTS/nbd_tls_peer" \
	"$SELFTESTS/nbd_tls_peer.c" $(pkg-config --cflags --libs gnutls) \
	>"$RESULTS/tls-peer-cc.log" 2>&1 ||
	echo "# nbd_tls_peer did not build on the host (the VMs build it): $RESULTS/tls-peer-cc.log"

# The debug kernel is built before any job: it keeps both cores busy for
# ten minutes or more the first time (then only when its config or
# script change).
for k in $KERNELS; do
	[ "$k" = debug ] || continue
	echo "# building the debug kernel (log: $RESULTS/debug-kernel.log)"
	t0=$SECONDS
	make -s -C "$REPO" debug-kernel >"$RESULTS/debug-kernel.log" 2>&1
	rc=$?
	echo "# debug kernel: $((SECONDS - t0)) s"
	if [ $rc = 0 ]; then
		passed=$((passed + 1))
		echo "ok - build the debug kernel"
	else
		failed=$((failed + 1))
		failures+=("build the debug kernel")
		echo "not ok - build the debug kernel"
		tail -20 "$RESULTS/debug-kernel.log"
	fi
	break
done

# nbdctl, built once on the host; the VMs run it from there.
NBDCTL_DIR=${NBD_CACHE_DIR:-/var/cache/nbd-dev}/nbdctl
NBDCTL=$NBDCTL_DIR/nbdctl
make -s -C "$REPO/tools/nbdctl" O="$NBDCTL_DIR" all \
	>"$RESULTS/nbdctl-build.log" 2>&1 && ! grep -q 'warning:' "$RESULTS/nbdctl-build.log"
rc=$?
if [ $rc = 0 ]; then
	passed=$((passed + 1))
	echo "ok - build nbdctl without a warning"
else
	failed=$((failed + 1))
	failures+=("build nbdctl")
	echo "not ok - build nbdctl without a warning"
	tail -20 "$RESULTS/nbdctl-build.log"
fi

# host_tests_job NAME LOG SCRIPT: a host test script that ends with
# "N passed, N failed"; its counts are NAME's.
host_tests_job() {
	local name=$1 log=$2 t0=$SECONDS sum p f

	"$3" >"$log" 2>&1
	cat "$log"
	sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
	if [ -n "$sum" ]; then
		p=${sum%% passed*}
		f=${sum#*passed, }
		f=${f%% failed*}
		echo "# counts $p $f $name"
	else
		result "$name ran" 1
	fi
	echo "# $name: $((SECONDS - t0)) s"
}

# nbdctl's host tests (ASan + UBSan build, real and fake servers), and
# its systemd unit, bash completion and nbdtab example.
nbdctl_job() {
	host_tests_job "nbdctl host tests" "$RESULTS/nbdctl-tests.log" \
		"$REPO/tools/nbdctl/tests/run.sh"
	host_tests_job "nbdctl unit, completion, nbdtab.example" \
		"$RESULTS/nbdctl-systemd.log" \
		"$REPO/tools/nbdctl/tests/systemd_check.sh"
}

# ceph_job K: Ceph's rbd-nbd (nbd_ceph, its short version, 8 MiB fio
# runs; the long one in make check-long) on kernel K, in a VM of its own, as the test starts a Ceph
# cluster in the guest.  Its module is built apart, so that it never
# races the kernel job's build.
ceph_job() {
	local k=$1 kvars krel ko log vmrc t0=$SECONDS KREL='' long=() vmt=1800

	kvars=$("$VM/kernels.sh" --vars "$k") ||
		{ result "kernel $k installed (nbd_ceph)" 1; return; }
	eval "$kvars"
	krel=$KREL
	log="$RESULTS/build-ceph-$krel.log"
	ko=$(NBD_BUILD_DIR="${NBD_CACHE_DIR:-/var/cache/nbd-dev}/build-ceph" \
		"$VM/build-module.sh" "$krel" 2>"$log") ||
		{ result "build nbd.ko for nbd_ceph on $krel" 1; tail -20 "$log"; return; }
	log="$RESULTS/selftests-$krel-ceph.log"
	# make check-long: the long version (make ceph's)
	if [ "$LONG" = 1 ]; then
		long=(--env NBD_CEPH_FULL=1)
		vmt=3600
	fi
	echo "# nbd_ceph on $krel (log: $log)"
	"$VM/vm-run.sh" --kernel "$krel" --smp 2 --timeout $vmt \
		--module "$ko" --env "NBDCTL=$NBDCTL" --env NBD_CEPH=1 \
		--env NBD_CEPH_MB=8 "${long[@]}" --log "$RESULTS/vm-$krel-ceph.log" -- \
		tools/testing/selftests/nbd/run_tests.sh nbd_ceph >"$log" 2>&1
	vmrc=$?
	cat "$log"
	vm_counts "$krel (nbd_ceph)" "$log" $vmrc
	echo "# ceph on $krel: $((SECONDS - t0)) s"
}

# setup.sh and the first-run paths on a fake fresh Debian.
firstrun_job() {
	host_tests_job "first-run tests" "$RESULTS/firstrun-tests.log" \
		"$REPO/tools/testing/firstrun/run.sh"
}

# Jobs, longest first.
jobs_list=()
for k in $KERNELS; do
	[ "$k" = debug ] && jobs_list+=("kernel debug")
done
for k in $KERNELS; do
	[ "$k" = debug ] || jobs_list+=("kernel $k")
done
# Ceph's rbd-nbd per Debian kernel, unless only some selftests were
# asked for; before kunit, so that the two lanes end close together
if [ "${NBD_CEPH:-1}" != 0 ] && [ -z "$TESTS" ]; then
	for k in $KERNELS; do
		[ "$k" = debug ] || jobs_list+=("ceph $k")
	done
fi
if [ "${NBD_DEB:-1}" != 0 ] && [ -z "$TESTS" ]; then
	jobs_list+=("deb")
	read -r _ rest <<<"$DEB_VM_KERNELS"
	for k in $rest; do
		jobs_list+=("deb $k")
	done
fi
[ "$KUNIT" = 0 ] || jobs_list+=("kunit")
[ "${NBD_NBDCTL_TESTS:-1}" = 0 ] || jobs_list+=("nbdctl")
[ "${NBD_FIRSTRUN_TESTS:-1}" = 0 ] || jobs_list+=("firstrun")

# collect NAME FILE: print a finished job's output and count its results.
collect() {
	local line n p f

	echo "# ===== $1 ====="
	cat "$2"
	while IFS= read -r line; do
		case $line in
		"ok - "*) passed=$((passed + 1)) ;;
		"not ok - "*)
			failed=$((failed + 1))
			failures+=("${line#not ok - }") ;;
		"# counts "*)
			read -r _ _ p f n <<<"$line"
			passed=$((passed + p))
			failed=$((failed + f))
			[ "$f" = 0 ] || failures+=("$n ($f)") ;;
		esac
	done <"$2"
}

declare -A job_out=() job_name=()
running=0
t_jobs=$SECONDS
# wait_one: wait for any job to end, then collect it.
wait_one() {
	local pid

	wait -n -p pid "${!job_out[@]}"
	collect "${job_name[$pid]}" "${job_out[$pid]}"
	echo "# ${job_name[$pid]} ended after $((SECONDS - t_jobs)) s"
	unset "job_out[$pid]" "job_name[$pid]"
	running=$((running - 1))
}

for j in "${jobs_list[@]}"; do
	[ $running -lt "$PARALLEL" ] || wait_one
	out="$RESULTS/job-${j// /-}.out"
	case $j in
	kunit) kunit_job >"$out" 2>&1 & ;;
	deb) deb_job >"$out" 2>&1 & ;;
	deb\ *) deb_vm_job "${j#deb }" >"$out" 2>&1 & ;;
	ceph\ *) ceph_job "${j#ceph }" >"$out" 2>&1 & ;;
	nbdctl) nbdctl_job >"$out" 2>&1 & ;;
	firstrun) firstrun_job >"$out" 2>&1 & ;;
	*) kernel_job ${j#kernel } >"$out" 2>&1 & ;;
	esac
	job_out[$!]=$out
	job_name[$!]=$j
	running=$((running + 1))
	echo "# started $j (output: $out)"
done
while [ $running -gt 0 ]; do
	wait_one
done

if [ ${#failures[@]} -gt 0 ]; then
	echo "# failed:"
	printf '#   %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
