#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Turn the gcov data of a KUnit UML run (CONFIG_GCOV=y; run.sh --coverage)
# into an lcov report for drivers/block/nbd/*.c and print the per-file
# line coverage.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../errtrap.sh"

PROG=${0##*/}

usage() {
	cat <<EOF
Usage: $PROG BUILD_DIR RESULTS_DIR

Read the .gcno/.gcda files under BUILD_DIR/drivers/block/nbd (left there
by a UML kernel built with CONFIG_GCOV=y when it exited), and write to
RESULTS_DIR:
  coverage.info   lcov trace of drivers/block/nbd/*.c
  lcov.log        what lcov --capture printed
  summary.txt     per-file line and function coverage (lcov --list)
  html/           genhtml report
EOF
}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

case ${1:-} in
-h|--help) usage; exit 0 ;;
esac
[[ $# -eq 2 ]] || { usage >&2; exit 2; }
BUILD=$1
RES=$2
OBJ=$BUILD/drivers/block/nbd

command -v lcov >/dev/null || die "lcov not installed (run tools/testing/vm/setup.sh)"
[[ -d $OBJ ]] || die "no $OBJ: was the driver built?"
compgen -G "$OBJ/*.gcno" >/dev/null ||
	die "no .gcno files in $OBJ: the kernel was not built with CONFIG_GCOV=y"
compgen -G "$OBJ/*.gcda" >/dev/null ||
	die "no .gcda files in $OBJ: the UML kernel did not write its coverage data at exit (did it crash?)"

mkdir -p "$RES"
rm -rf "$RES/html" "$RES"/*.info
# gcov must match the compiler that built the objects.
cc_ver=$(sed -n 's/^CONFIG_GCC_VERSION=\([0-9]*\)[0-9][0-9][0-9][0-9]$/\1/p' "$BUILD/.config")
gcov_tool=gcov
if [[ -n $cc_ver ]] && command -v "gcov-$cc_ver" >/dev/null; then
	gcov_tool=gcov-$cc_ver
fi

# lcov 1.16's geninfo warns "Subroutine ... redefined" on every run:
# keep its chatter in a log, shown only when it fails.
if ! lcov -q --gcov-tool "$gcov_tool" --capture --directory "$OBJ" \
	--test-name nbd_kunit --output-file "$RES/all.info" \
	>"$RES/lcov.log" 2>&1; then
	grep -v 'redefined at' "$RES/lcov.log" >&2
	die "lcov --capture failed"
fi
lcov -q --extract "$RES/all.info" '*/drivers/block/nbd/*.c' \
	--output-file "$RES/coverage.info" || die "lcov --extract failed"
rm -f "$RES/all.info"

lcov --list "$RES/coverage.info" 2>/dev/null | tee "$RES/summary.txt"
genhtml -q --output-directory "$RES/html" "$RES/coverage.info" >/dev/null 2>&1 ||
	echo "$PROG: genhtml failed; coverage.info is still there" >&2
echo "$PROG: report in $RES (summary.txt, html/index.html)" >&2
