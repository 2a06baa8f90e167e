#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Benchmark this tree's nbd.ko against the kernel's stock nbd.ko and fio's
# userspace NBD client: one VM boot per kernel, the drivers alternating in
# rounds (bench-guest.sh), then a markdown report and charts (report.py).
# Not a test: it never fails on a number.
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
  --rounds N      rounds of stock / ours / fio-nbd per boot (default 3)
  --runtime S     seconds per fio run (default 4)
  --quick         one round, unix socket only, 1 and 4 connections
  --parallel      boot the kernels' VMs side by side (each VM runs on
                  one host core; ratios compare runs within one boot)
  --out DIR       results directory (default:
                  tools/testing/bench/results/DATE-KERNELS)
  -h, --help      this help

Environment passed to the guest: BENCH_TRANSPORTS ("unix tcp"),
BENCH_CONNS ("1 4"), BENCH_JOBS (all), BENCH_CLIENTS ("stock ours fio-nbd").
BENCH_SMP (2) and BENCH_MEM (4096 MiB: two 1 GiB servers) size the guest;
NBD_VM_ACCEL sets the QEMU accelerator.
EOF
}

die()
{
	echo "$PROG: $*" >&2
	exit 2
}

KERNELS=()
ROUNDS=3
RUNTIME=4
OUT=
QUICK=0
PARALLEL=0

while [[ $# -gt 0 ]]; do
	case $1 in
	--kernel) [[ $# -ge 2 ]] || die "--kernel needs a value"; KERNELS+=("$2"); shift ;;
	--rounds) [[ $# -ge 2 ]] || die "--rounds needs a value"; ROUNDS=$2; shift ;;
	--runtime) [[ $# -ge 2 ]] || die "--runtime needs a value"; RUNTIME=$2; shift ;;
	--out) [[ $# -ge 2 ]] || die "--out needs a value"; OUT=$2; shift ;;
	--quick) QUICK=1 ;;
	--parallel) PARALLEL=1 ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive number"
[[ $RUNTIME =~ ^[1-9][0-9]*$ ]] || die "--runtime must be a positive number"
[[ ${#KERNELS[@]} -gt 0 ]] || KERNELS=(6.1 6.12)
if [[ $QUICK == 1 ]]; then
	ROUNDS=1
	: "${BENCH_TRANSPORTS:=unix}"
fi

# The bench needs the VM tools and its own extras (gnuplot for the charts).
"$VM/setup.sh" ||
	die "setup.sh failed: the benchmark needs the packages it installs (see above)"

krels=()
for k in "${KERNELS[@]}"; do
	krels+=("$("$VM/kernels.sh" "$k")") || die "no kernel '$k'"
done
if [[ -z $OUT ]]; then
	OUT=$SCRIPT_DIR/results/$(date +%Y-%m-%d)
	for k in "${krels[@]}"; do
		OUT+="_${k%%-*}"
	done
fi
[[ -e $OUT/runs.csv ]] && die "$OUT has results already: choose another --out"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)

for tool in fio nbdkit nbd-client gnuplot; do
	command -v $tool >/dev/null ||
		die "$tool not found although setup.sh succeeded: is it on PATH ($PATH)?"
done

envs=(--env "BENCH_ROUNDS=$ROUNDS" --env "BENCH_RUNTIME=$RUNTIME")
for v in BENCH_TRANSPORTS BENCH_CONNS BENCH_JOBS BENCH_CLIENTS; do
	[[ -n ${!v:-} ]] && envs+=(--env "$v=${!v}")
done

# run_kernel KREL: one boot; its CSV files and log end up in $OUT/part-KREL
run_kernel()
{
	local krel=$1 part=$OUT/part-$1 run rc=0

	mkdir -p "$part"
	echo "$PROG: $krel: booting (results in $OUT)" >&2
	if ! NBD_VM_KEEP=1 NBD_VM_QUIET=1 "$VM/vm-run.sh" --kernel "$krel" \
		--smp "${BENCH_SMP:-2}" --mem "${BENCH_MEM:-4096}" --timeout 14400 \
		--log "$OUT/vm-$krel.log" "${envs[@]}" \
		-- "$SCRIPT_DIR/bench-guest.sh" 2>"$part/vm-run.err"; then
		echo "$PROG: $krel: the run failed:" >&2
		tail -n 20 "$part/vm-run.err" >&2
		rc=1
	fi
	run=$(sed -n 's/.*run directory kept: //p; s/.*; run dir //p' \
		"$part/vm-run.err" | tail -n 1)
	if [[ -n $run && -d $run ]]; then
		cp "$run"/runs.csv "$run"/mem.csv "$part/" 2>/dev/null
		[[ -f $run/bench.log ]] && cp "$run/bench.log" "$OUT/bench-$krel.log"
		rm -rf "$run"
	fi
	echo "$PROG: $krel: done" >&2
	return $rc
}

status=0
pids=()
for krel in "${krels[@]}"; do
	if [[ $PARALLEL == 1 ]]; then
		run_kernel "$krel" &
		pids+=($!)
	else
		run_kernel "$krel" || status=1
	fi
done
for pid in "${pids[@]}"; do
	wait "$pid" || status=1
done

# Merge the boots' CSV files (one header each).
for f in runs.csv mem.csv; do
	for krel in "${krels[@]}"; do
		src=$OUT/part-$krel/$f
		[[ -s $src ]] || continue
		if [[ -s $OUT/$f ]]; then
			tail -n +2 "$src" >>"$OUT/$f"
		else
			cp "$src" "$OUT/$f"
		fi
	done
done
for krel in "${krels[@]}"; do
	rm -rf "$OUT/part-$krel"
done

python3 "$SCRIPT_DIR/report.py" "$OUT" || status=1
echo "$PROG: report: $OUT/README.md" >&2
exit $status
