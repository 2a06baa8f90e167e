# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The result lines of the host test scripts (tools/nbdctl/tests/run.sh,
# tools/testing/firstrun/run.sh): "ok N - DESC" and "not ok N - DESC" with
# the detail indented under it, counted in $passed and $failed; the script
# ends with "$passed passed, $failed failed", which run-all.sh counts.
# Sourced; TAP_DETAIL_LINES (default 20) bounds each detail.

passed=0
failed=0
n=0

ok()
{
	n=$((n + 1))
	passed=$((passed + 1))
	echo "ok $n - $1"
}

# not_ok DESC [DETAIL...]
not_ok()
{
	local line

	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	for line in "$@"; do
		printf '%s\n' "$line" | head -n "${TAP_DETAIL_LINES:-20}" |
			sed 's/^/#   /'
	done
}
