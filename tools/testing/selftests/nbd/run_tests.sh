#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the nbd selftests, each under a timeout, with kselftest-style
# output: every test's own TAP indented as "# ...", one "ok N" / "not ok
# N" line per test, a summary, and finally "N passed, N failed".
#
#	run_tests.sh [-l] [TEST...]
#
# TEST is a name from the list (nbd_dd, nbd_dd.sh or a path to it);
# without TEST every test runs.  Meant to run as root in the test VM
# (tools/testing/vm/vm-run.sh), which sets NBD_KO / NBD_STOCK.
#
# Environment: NBD_SELFTEST_TIMEOUT overrides every test's timeout (s).

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

# name and timeout in seconds, in running order
TESTS=(
	nbd_dd:300
	nbd_fio:600
	nbd_fs:300
	nbd_part:300
	nbd_multiconn:300
	nbd_tcp:300
	nbd_readonly:300
	nbd_discard:300
	nbd_disconnect_busy:300
	nbd_stuck_disconnect:300
	nbd_soft_disconnect:300
	nbd_errno:300
	nbd_modprobe_race:300
	nbd_hostile:600
	nbd_qemu:300
	nbd_perm:300
	nbd_nbdctl:300
	nbd_structured:300
	nbd_trace:300
	nbd_persist:600
	nbd_nbdtab:600
	nbd_compat:300
	nbd_tls:600
	nbd_server_restart:900
	nbd_timeout:600
	nbd_races:900
	nbd_upstream:600
	nbd_teardown:600
)
# nbd_install checks "make install"; it needs the harness's staging
# directory, so it runs by default only when that is given.
if [[ -n ${NBD_INSTALL_STAGE:-} && -x $DIR/nbd_install.sh ]]; then
	TESTS+=(nbd_install:300)
fi
# nbd_deb installs make deb's packages (DKMS builds the module in the
# guest: minutes under TCG); only when NBD_DEB_DIR names them, in a VM
# of its own (vm-run.sh --stock).
if [[ -n ${NBD_DEB_DIR:-} && -x $DIR/nbd_deb.sh ]]; then
	TESTS+=(nbd_deb:1200)
fi
# nbd_kunit runs the KUnit module; only kernels with CONFIG_KUNIT can load
# it, so it runs by default only when the harness built one.
if [[ -n ${NBD_KUNIT_KO:-} && -x $DIR/nbd_kunit.sh ]]; then
	TESTS+=(nbd_kunit:1200)
fi
# nbd_soak runs for NBD_SOAK_SECONDS (make soak; 3 minutes of it on the
# debug kernel in make check), so only when that is set.
if [[ -n ${NBD_SOAK_SECONDS:-} && -x $DIR/nbd_soak.sh ]]; then
	TESTS+=(nbd_soak:$((NBD_SOAK_SECONDS + 900)))
fi
# nbd_fuzz_proxy fuzzes the reply path for NBD_FUZZ_SECONDS (default 600):
# too long for the regular runs, so it is in the list only when asked for.
FUZZ_TIMEOUT=$((${NBD_FUZZ_SECONDS:-600} + 900))
if [[ ( ${NBD_FUZZ_PROXY:-0} == 1 || -n ${NBD_FUZZ_SECONDS:-} ) &&
      -x $DIR/nbd_fuzz_proxy.sh ]]; then
	TESTS+=(nbd_fuzz_proxy:$FUZZ_TIMEOUT)
fi
# nbd_swap swaps to nbd under memory pressure; it is meant for a VM of
# its own with little memory (512 MiB), so it runs only with NBD_SWAP=1.
if [[ ${NBD_SWAP:-0} == 1 && -x $DIR/nbd_swap.sh ]]; then
	TESTS+=(nbd_swap:2400)
fi
# nbd_ceph starts a Ceph cluster in the guest (a minute under TCG) and
# runs rbd-nbd on it; run-all.sh gives it a VM of its own, so it is in
# the list only with NBD_CEPH=1 (NBD_CEPH_FULL=1: the long version).
CEPH_TIMEOUT=1200
[[ ${NBD_CEPH_FULL:-0} == 1 ]] && CEPH_TIMEOUT=2700
if [[ ${NBD_CEPH:-0} == 1 && -x $DIR/nbd_ceph.sh ]]; then
	TESTS+=(nbd_ceph:$CEPH_TIMEOUT)
fi
DEFAULT_TIMEOUT=300

usage()
{
	echo "usage: ${0##*/} [-l] [TEST...]"
	echo "  -l  list the tests"
}

# timeout_of NAME: the test's time limit; any nbd_*.sh here may be run.
timeout_of()
{
	local t

	for t in "${TESTS[@]}"; do
		if [[ ${t%%:*} == "$1" ]]; then
			echo "${NBD_SELFTEST_TIMEOUT:-${t#*:}}"
			return 0
		fi
	done
	[[ $1 == nbd_* && -x $DIR/$1.sh ]] || return 1
	if [[ $1 == nbd_fuzz_proxy ]]; then
		echo "${NBD_SELFTEST_TIMEOUT:-$FUZZ_TIMEOUT}"
		return 0
	fi
	if [[ $1 == nbd_ceph ]]; then
		echo "${NBD_SELFTEST_TIMEOUT:-$CEPH_TIMEOUT}"
		return 0
	fi
	echo "${NBD_SELFTEST_TIMEOUT:-$DEFAULT_TIMEOUT}"
}

while getopts "lh" opt; do
	case $opt in
	l)
		for t in "${TESTS[@]}"; do
			echo "${t%%:*}"
		done
		exit 0
		;;
	h)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))

selected=()
if [[ $# -eq 0 ]]; then
	for t in "${TESTS[@]}"; do
		selected+=("${t%%:*}")
	done
else
	for a in "$@"; do
		a=${a##*/}
		selected+=("${a%.sh}")
	done
fi

# leftovers: make sure one test's debris does not fail the next one.
leftovers()
{
	local d

	[[ -d /sys/module/nbd ]] || return 0
	echo "# nbd is still loaded after $1; cleaning up"
	for d in /sys/block/nbd*; do
		[[ -e $d/pid ]] || continue
		timeout 30 nbd-client -d "/dev/${d##*/}" >/dev/null 2>&1
	done
	for _ in {1..20}; do
		rmmod nbd 2>/dev/null && return 0
		sleep 0.5
	done
	echo "# could not unload nbd after $1"
}

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

echo "TAP version 13"
echo "1..${#selected[@]}"
echo "# module: ${NBD_KO:-stock (NBD_STOCK=${NBD_STOCK:-unset})} kernel: $(uname -r)"

num=0
passed=0
failed=0
skipped=0
summary=()
t_all=$SECONDS
for name in "${selected[@]}"; do
	num=$((num + 1))
	prog=$DIR/$name.sh
	if ! limit=$(timeout_of "$name") || [[ ! -x $prog ]]; then
		echo "not ok $num selftests: nbd: $name # no such test"
		failed=$((failed + 1))
		summary+=("$(printf '%-22s %-7s' "$name" "MISSING")")
		continue
	fi

	echo "# selftests: nbd: $name.sh"
	echo "# timeout set to $limit"
	t0=$SECONDS
	(cd "$DIR" && timeout -k 20 "$limit" "./$name.sh") 2>&1 | sed -u 's/^/# /'
	rc=${PIPESTATUS[0]}
	secs=$((SECONDS - t0))

	case $rc in
	0)
		echo "ok $num selftests: nbd: $name.sh"
		passed=$((passed + 1))
		res=PASS
		;;
	4)
		echo "ok $num selftests: nbd: $name.sh # SKIP"
		skipped=$((skipped + 1))
		res=SKIP
		;;
	124|137)
		echo "not ok $num selftests: nbd: $name.sh # TIMEOUT $limit seconds"
		failed=$((failed + 1))
		res=TIMEOUT
		;;
	*)
		echo "not ok $num selftests: nbd: $name.sh # exit=$rc"
		failed=$((failed + 1))
		res=FAIL
		;;
	esac
	summary+=("$(printf '%-22s %-7s %4d s' "$name" "$res" "$secs")")
	leftovers "$name"
done

echo "# Summary ($((SECONDS - t_all)) s):"
for line in "${summary[@]}"; do
	echo "#   $line"
done
[[ $skipped -gt 0 ]] && echo "# $skipped skipped"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
