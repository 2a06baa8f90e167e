#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Benchmark structured replies: this tree's nbd.ko with structured
# replies, the same with simple replies, and the kernel's stock nbd.ko,
# over qemu-nbd, one VM boot per kernel (bench-sr-guest.sh).  Writes
# runs.csv and README.md (the tables and ratios of each boot) into the
# results directory.  Not a test: it never fails on a number.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../errtrap.sh"

PROG=${0##*/}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd "$SCRIPT_DIR/../../.." && pwd -P)
VM=$REPO_ROOT/tools/testing/vm

usage()
{
	cat <<EOF
Usage: $PROG [OPTIONS]

Options:
  --kernel K      a kernel to measure (6.1, 6.12 or a release; repeatable;
                  default: 6.1 and 6.12)
  --rounds N      rounds of the three clients per boot (default 3)
  --runtime S     seconds per time-based fio run (default 8)
  --out DIR       results directory (default:
                  tools/testing/bench/results/DATE-sr)
  -h, --help      this help
EOF
}

die()
{
	echo "$PROG: $*" >&2
	exit 2
}

KERNELS=()
ROUNDS=3
RUNTIME=8
OUT=
while [[ $# -gt 0 ]]; do
	case $1 in
	--kernel) [[ $# -ge 2 ]] || die "--kernel needs a value"; KERNELS+=("$2"); shift ;;
	--rounds) [[ $# -ge 2 ]] || die "--rounds needs a value"; ROUNDS=$2; shift ;;
	--runtime) [[ $# -ge 2 ]] || die "--runtime needs a value"; RUNTIME=$2; shift ;;
	--out) [[ $# -ge 2 ]] || die "--out needs a value"; OUT=$2; shift ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive number"
[[ $RUNTIME =~ ^[1-9][0-9]*$ ]] || die "--runtime must be a positive number"
[[ ${#KERNELS[@]} -gt 0 ]] || KERNELS=(6.1 6.12)

"$VM/setup.sh" ||
	die "setup.sh failed: the benchmark needs the packages it installs (see above)"
make -s -C "$REPO_ROOT/tools/nbdctl" >/dev/null ||
	die "cannot build nbdctl (make -C tools/nbdctl)"
NBDCTL=$REPO_ROOT/tools/nbdctl/nbdctl

[[ -n $OUT ]] || OUT=$SCRIPT_DIR/results/$(date +%Y-%m-%d)-sr
[[ -e $OUT/runs.csv ]] && die "$OUT has results already: choose another --out"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)

status=0
for k in "${KERNELS[@]}"; do
	krel=$("$VM/kernels.sh" "$k") || die "no kernel '$k'"
	echo "$PROG: $krel: booting (results in $OUT)" >&2
	if ! NBD_VM_KEEP=1 NBD_VM_QUIET=1 "$VM/vm-run.sh" --kernel "$krel" \
		--smp 2 --mem 4096 --timeout 7200 --log "$OUT/vm-$krel.log" \
		--env "BENCH_ROUNDS=$ROUNDS" --env "BENCH_RUNTIME=$RUNTIME" \
		--env "NBDCTL=$NBDCTL" \
		-- "$SCRIPT_DIR/bench-sr-guest.sh" 2>"$OUT/vm-run-$krel.err"; then
		echo "$PROG: $krel: the run failed:" >&2
		tail -n 20 "$OUT/vm-run-$krel.err" >&2
		status=1
	fi
	run=$(sed -n 's/.*run directory kept: //p; s/.*; run dir //p' \
		"$OUT/vm-run-$krel.err" | tail -n 1)
	if [[ -n $run && -d $run ]]; then
		if [[ -s $OUT/runs.csv ]]; then
			tail -n +2 "$run/runs.csv" >>"$OUT/runs.csv"
		else
			cp "$run/runs.csv" "$OUT/runs.csv"
		fi
		cp "$run/bench-sr.log" "$OUT/bench-sr-$krel.log"
		cat "$run/summary.md" >>"$OUT/README.md"
		echo >>"$OUT/README.md"
		rm -rf "$run"
	fi
done
echo "$PROG: report: $OUT/README.md" >&2
exit $status
