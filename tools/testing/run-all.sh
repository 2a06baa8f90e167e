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
#   - nbdctl: built without a warning, its host tests (no VM), and in the
#     VMs nbd_nbdctl, nbd_structured and nbd_persist, also with each
#     kernel's stock nbd.ko;
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
#   NBD_TESTS="nbd_dd ..."        run only these selftests
#   NBD_PARALLEL=2                jobs at once
#   NBD_LONG=0                    1: the full server restart cycle, 5000
#                                 NBD_CLEAR_SOCK and every hostile mode
#                                 on 6.1 and 6.12 (make check-long)
#   NBD_DEBUG_SKIP="nbd_dd|..."   selftests the debug kernel leaves out
#                                 (an extended regex; "" runs them all)
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
# Seconds per selftest on the debug kernel (CI, two VMs side by side;
# measured 2026-12-01 in a clean clone's make check).
DEBUG_SECONDS="nbd_server_restart=560 nbd_races=550 nbd_timeout=456
nbd_hostile=337 nbd_structured=321 nbd_stuck_disconnect=252 nbd_tcp=246
nbd_kunit=245 nbd_teardown=233 nbd_errno=224 nbd_nbdctl=220 nbd_fio=213
nbd_tls=199 nbd_multiconn=178 nbd_modprobe_race=155 nbd_readonly=151
nbd_disconnect_busy=124 nbd_soft_disconnect=99 nbd_qemu=143
nbd_discard=101 nbd_perm=58"
DEBUG_SKIP=${NBD_DEBUG_SKIP-"nbd_dd|nbd_fs|nbd_part|nbd_persist|nbd_install|nbd_trace|nbd_perm|nbd_discard|nbd_qemu|nbd_readonly|nbd_errno"}
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

# Results are lines "ok - WHAT" / "not ok - WHAT" in a job's output; a
# selftest run adds "# counts P F" for its P + F tests.
result() {	# result NAME RC
	if [ "$2" = 0 ]; then
		echo "ok - $1"
	else
		echo "not ok - $1"
	fi
}

# kernel_job K [PART]: everything for kernel K (an alias, a release or
# "debug").  PART 1 or 2 runs half of the selftests (balanced by time, see
# kernel_vm); part 2 only builds the module (cached by then) and runs its half.
kernel_job() {
	local k=$1 part=${2:-} kvars krel ko rc dk stage picked log vmrc
	local t_kernel=$SECONDS vm_timeout=1800 slow=() kunit_ko tests=$TESTS
	local KREL='' KDIR='' MODROOT='' MODDIR='' sfx=''

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
	[ "$part" = 2 ] || result "build nbd.ko for $krel" $rc
	[ $rc = 0 ] || { tail -20 "$log"; return; }
	stage="$RESULTS/install-$krel"
	[ "$part" = 2 ] && { sfx=-part2; kernel_vm; return; }

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
	[ "$part" = 1 ] && sfx=-part1
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
		slow=(--env NBD_SELFTEST_TIMEOUT=900 --env NBD_RACE_SECONDS=20
		      --env NBD_FIO_REGION_MB=4 --env NBD_FIO_SEQ_MB=8
		      --env NBD_MULTICONN_MB=2 --env NBD_REQ_TIMEOUT=20
		      --env NBD_TCP_REGION_MB=2 --env NBD_TCP_SEQ_MB=4
		      --env NBD_RACE_ROUNDS=6 --env NBD_CLEAR_SOCK_COUNT=300
		      --env NBD_RESTART_MB=2 --env NBD_RESTART_DEAD=180
		      --env NBD_RESTART_SHORT=1
		      --env NBD_HOSTILE_SR_BAD=sr-overlap,sr-done-early
		      --env NBD_TLS_SHORT=1 --env NBD_TLS_MB=2
		      --env "NBD_TLS_MODES=alert-mid-reply garbage")
	elif [ "$LONG" != 1 ]; then
		# Within CI's hour: the short server restart cycle and 2000
		# NBD_CLEAR_SOCK on 6.1 and 6.12 too; make check-long
		# (NBD_LONG=1) runs the full ones (and every hostile mode).
		slow=(--env NBD_RESTART_SHORT=1 --env NBD_CLEAR_SOCK_COUNT=2000
		      --env NBD_TLS_MB=8)
		# 6.12 meets all six hostile TLS peers, 6.1 two of them
		case $krel in
		6.1.*) slow+=(--env "NBD_TLS_MODES=alert-mid-reply keyupdate") ;;
		esac
	else
		slow=(--env NBD_HOSTILE_ALL=1)
	fi
	# A kernel with KUnit built the test module too: run it there.
	kunit_ko=${ko%/nbd.ko}/nbd_kunit.ko
	if [ -f "$kunit_ko" ] && grep -qs '^CONFIG_KUNIT=y' "$KDIR/.config"; then
		slow+=(--env "NBD_KUNIT_KO=$kunit_ko")
	else
		kunit_ko=''
	fi
	# Two halves of about the same length: longest test first, each to
	# the half with less so far, by the seconds each took on the debug
	# kernel in CI (DEBUG_SECONDS; a test not listed counts 120 s).
	# nbd_install needs part 1's staging tree.
	# The debug kernel leaves out the tests whose driver paths others
	# cover there too (they run on both Debian kernels): plain I/O
	# through nbd-client (nbd_dd, nbd_qemu's ioctl path stays), a
	# filesystem, partitions, --persist (nbd_timeout and
	# nbd_server_restart reconnect), make install (no kernel code) and
	# the tracepoints (nbd_structured runs the same paths with them),
	# the permission checks (no kernel path the others miss), discard
	# (the send path of writes, which every fio run takes), qemu-nbd
	# (its ioctls are nbd_races' there), read-only exports (a queue
	# flag and FLUSH, no locking or memory of their own) and the error
	# table (ESHUTDOWN's soft disconnect and resend run in
	# nbd_server_restart there).
	if [ -n "$part" ] && [ -z "$TESTS" ]; then
		tests=$(NBD_INSTALL_STAGE=$stage NBD_KUNIT_KO=$kunit_ko \
			tools/testing/selftests/nbd/run_tests.sh -l |
			grep -vxE "$DEBUG_SKIP" |
			awk -v p="$part" -v secs="$(echo $DEBUG_SECONDS)" '
				BEGIN { n = split(secs, kv, " ")
					for (i = 1; i <= n; i++) {
						split(kv[i], f, "=")
						w[f[1]] = f[2]
					} }
				{ t[++m] = $0; s[m] = ($0 in w) ? w[$0] : 120 }
				END {
					# insertion sort, longest first
					for (i = 2; i <= m; i++)
						for (j = i; j > 1 && s[j] > s[j - 1]; j--) {
							x = s[j]; s[j] = s[j - 1]; s[j - 1] = x
							x = t[j]; t[j] = t[j - 1]; t[j - 1] = x
						}
					for (i = 1; i <= m; i++) {
						h = sum[1] <= sum[2] ? 1 : 2
						if (t[i] == "nbd_install")
							h = 1
						sum[h] += s[i]
						if (h == p)
							print t[i]
					} }')
		tests=$(echo $tests)
	fi
	log="$RESULTS/selftests-$krel$sfx.log"
	echo "# selftests on $krel${part:+ (part $part: $tests)} (log: $log)"
	"$VM/vm-run.sh" --kernel "$krel" --smp 4 --timeout $vm_timeout \
		--module "$ko" --env "NBD_INSTALL_STAGE=$stage" "${slow[@]}" \
		--env "NBDCTL=$NBDCTL" --log "$RESULTS/vm-$krel$sfx.log" -- \
		tools/testing/selftests/nbd/run_tests.sh $tests >"$log" 2>&1
	vmrc=$?
	cat "$log"
	vm_counts "$krel${part:+ part $part}" "$log" $vmrc

	# nbdctl must work with the kernel's own nbd.ko too (same netlink),
	# and fall back to simple replies there (nbd_structured).  What
	# the stock module does with kernel TLS (nbd_tls with --stock) is
	# recorded by hand: CI's hour has no room for it.
	[ -z "$MODROOT" ] && [ -z "$TESTS" ] || return 0
	stock_tests="nbd_nbdctl nbd_structured nbd_persist"
	log="$RESULTS/selftests-$krel-stock.log"
	echo "# nbdctl with the stock nbd.ko on $krel (log: $log)"
	"$VM/vm-run.sh" --kernel "$krel" --smp 4 --timeout 1200 --stock \
		--env "NBDCTL=$NBDCTL" --log "$RESULTS/vm-$krel-stock.log" -- \
		tools/testing/selftests/nbd/run_tests.sh $stock_tests \
		>"$log" 2>&1
	vmrc=$?
	cat "$log"
	vm_counts "$krel (stock nbd.ko)" "$log" $vmrc
	echo "# $krel: $((SECONDS - t_kernel)) s"
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

# nbdctl's host tests (ASan + UBSan build, real and fake servers).
nbdctl_job() {
	host_tests_job "nbdctl host tests" "$RESULTS/nbdctl-tests.log" \
		"$REPO/tools/nbdctl/tests/run.sh"
}

# setup.sh and the first-run paths on a fake fresh Debian.
firstrun_job() {
	host_tests_job "first-run tests" "$RESULTS/firstrun-tests.log" \
		"$REPO/tools/testing/firstrun/run.sh"
}

# Jobs, longest first.
jobs_list=()
# The debug kernel's selftests take as long as all the rest: two halves.
for k in $KERNELS; do
	[ "$k" = debug ] && jobs_list+=("kernel debug 1" "kernel debug 2")
done
for k in $KERNELS; do
	[ "$k" = debug ] || jobs_list+=("kernel $k")
done
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
