#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The KUnit suites, built out of tree as nbd_kunit.ko next to nbd.ko, run
# on the VM's kernel (which needs CONFIG_KUNIT, as the debug kernel has):
# loading the module runs nbd_proto, nbd_transport, nbd_structured,
# nbd_netlink, nbd_tls (whose kTLS socket cases run only where the
# kernel has CONFIG_TLS, as the debug kernel does) and nbd_fuzz (with
# NBD_KUNIT_FUZZ_STREAMS streams, default 400: UML runs 100,000); each
# suite's KTAP result is read back from debugfs (or from dmesg when the
# kernel has no KUNIT_DEBUGFS).  Every suite must be there and pass, with
# no test case failed or skipped, and both modules must unload afterwards.
# KASAN and lockdep reports are caught by the VM harness.
#
# Environment: NBD_KUNIT_KO, the test module (the harness sets it);
# NBD_KUNIT_FUZZ_STREAMS, nbd_fuzz's streams.

source "$(dirname "$0")/lib.sh"

SUITES=(nbd_proto nbd_transport nbd_structured nbd_netlink nbd_tls nbd_fuzz)
FUZZ_STREAMS=${NBD_KUNIT_FUZZ_STREAMS:-400}
KUNIT_DEBUGFS=/sys/kernel/debug/kunit

nbd_test_init
ktap_plan $((4 + ${#SUITES[@]}))
ktap_info "module: $(nbd_module_desc)"
require_cmds insmod rmmod modinfo

KO=${NBD_KUNIT_KO:-}
if [[ -z $KO || ! -f $KO ]]; then
	ktap_bail "NBD_KUNIT_KO ('$KO') is not a module file"
fi
# Debian's kernels have no KUnit: the harness runs this test only on
# kernels that do (built-in KUnit shows its parameters in /sys/module).
[[ -d /sys/module/kunit ]] || ktap_bail "kernel $(uname -r) has no KUnit"

check "load nbd" nbd_load || ktap_bail "cannot load nbd"

# insmod returns once every suite has run (KUnit runs a module's suites
# from its init function).
load_tests()
{
	local t0=$SECONDS rc

	dmesg_mark kunit
	# udev would probe every disk the suites create and add reads of its
	# own to the ones the tests count: hold its events until the end.
	if command -v udevadm >/dev/null; then
		udevadm control --stop-exec-queue 2>/dev/null &&
			at_exit "udevadm control --start-exec-queue"
	fi
	timeout 900 insmod "$KO" fuzz_streams="$FUZZ_STREAMS"
	rc=$?
	udevadm control --start-exec-queue 2>/dev/null
	ktap_info "insmod $(basename "$KO"): exit $rc after $((SECONDS - t0)) s"
	return $rc
}
check "load $(basename "$KO") (runs the suites)" load_tests ||
	ktap_bail "cannot load the test module"
dmesg_since_mark >"$NBD_TMP/dmesg"

# suite_ktap SUITE: the suite's KTAP, from debugfs or else from dmesg
# (where the kernel prefixes every line with its timestamp).
suite_ktap()
{
	if [[ -r $KUNIT_DEBUGFS/$1/results ]]; then
		cat "$KUNIT_DEBUGFS/$1/results"
		return
	fi
	sed -E 's/^\[[ 0-9.]+\] ?//' "$NBD_TMP/dmesg" |
		awk -v s="$1" '
			$0 ~ "^    # Subtest: " s "$" { on = 1 }
			on { print }
			on && $0 ~ "^(not )?ok [0-9]+ " s "( |$)" { exit }'
}

# suite_passed SUITE: the suite ran, it and every case in it passed and
# none was skipped.  Cases are the lines one level below the suite.
suite_passed()
{
	local ktap=$NBD_TMP/$1.ktap cases bad skipped

	suite_ktap "$1" >"$ktap"
	if ! grep -Eq "^(    )?(not )?ok [0-9]+ $1( |$)" "$ktap"; then
		echo "# $1: no result (did the suite run?)"
		return 1
	fi
	cases=$(grep -Ec '^        (not )?ok [0-9]+ |^    (not )?ok [0-9]+ ' "$ktap")
	bad=$(grep -Ec '^ *not ok [0-9]+ ' "$ktap")
	skipped=$(grep -Eic '^ *ok [0-9]+ .*# SKIP' "$ktap")
	ktap_info "$1: $cases results, $bad failed, $skipped skipped"
	if [[ $bad -ne 0 || $skipped -ne 0 ]]; then
		grep -E '^ *(not ok|ok .*# SKIP)|^ *# .*(Expected|EXPECTATION|ASSERTION|FAILED)' \
			"$ktap" | head -40 | sed 's/^/# /'
		return 1
	fi
	[[ $cases -gt 0 ]]
}

for s in "${SUITES[@]}"; do
	check "KUnit suite $s passes" suite_passed "$s"
done

unload_tests()
{
	timeout 60 rmmod nbd_kunit
}
check "unload nbd_kunit" unload_tests
check "unload nbd" nbd_unload
ktap_finish
