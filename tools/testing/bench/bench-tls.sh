#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Benchmark NBD over TLS: this tree's nbd.ko with kernel TLS (nbdctl
# --tls-certificates), the stock nbd.ko behind nbd-client's userspace TLS
# proxy, and this tree's nbd.ko without TLS, over nbdkit, one VM boot per
# kernel (bench-tls-guest.sh) with QEMU's "max" CPU, which has AES-NI.
# Writes runs.csv and README.md (the tables and ratios of each boot) into
# the results directory.  Not a test: it never fails on a number.
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
  --rounds N      rounds of the clients per boot (default 3)
  --runtime S     seconds per time-based fio run (default 8)
  --smp N         guest CPUs (default 2)
  --out DIR       results directory (default:
                  tools/testing/bench/results/DATE-tls)
  -h, --help      this help

Environment: BENCH_CLIENTS (default "proxy ktls plain stock-ktls") and
BENCH_JOBS (default "seqread-1m-qd4 seqwrite-1m-qd4 randread-4k-qd32")
narrow the matrix; NBDCTL names another nbdctl binary.
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
SMP=2
OUT=
while [[ $# -gt 0 ]]; do
	case $1 in
	--kernel) [[ $# -ge 2 ]] || die "--kernel needs a value"; KERNELS+=("$2"); shift ;;
	--rounds) [[ $# -ge 2 ]] || die "--rounds needs a value"; ROUNDS=$2; shift ;;
	--runtime) [[ $# -ge 2 ]] || die "--runtime needs a value"; RUNTIME=$2; shift ;;
	--smp) [[ $# -ge 2 ]] || die "--smp needs a value"; SMP=$2; shift ;;
	--out) [[ $# -ge 2 ]] || die "--out needs a value"; OUT=$2; shift ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive number"
[[ $RUNTIME =~ ^[1-9][0-9]*$ ]] || die "--runtime must be a positive number"
[[ $SMP =~ ^[1-9][0-9]*$ && $SMP -ge 2 ]] ||
	die "--smp must be 2 or more (the proxy, nbdkit and fio need CPUs)"
[[ ${#KERNELS[@]} -gt 0 ]] || KERNELS=(6.1 6.12)

"$VM/setup.sh" ||
	die "setup.sh failed: the benchmark needs the packages it installs (see above)"
# The guest runs the host's programs.
command -v certtool >/dev/null ||
	die "certtool not found: apt-get install gnutls-bin"
nbdkit --dump-config 2>/dev/null | grep -qx 'tls=yes' ||
	die "this nbdkit was built without TLS"
if [[ -z ${NBDCTL:-} ]]; then
	make -s -C "$REPO_ROOT/tools/nbdctl" >/dev/null ||
		die "cannot build nbdctl (make -C tools/nbdctl)"
	NBDCTL=$REPO_ROOT/tools/nbdctl/nbdctl
fi
NBDCTL=$(realpath "$NBDCTL")
"$NBDCTL" connect --help 2>&1 | grep -q -- --tls-certificates ||
	echo "$PROG: warning: $NBDCTL has no --tls-certificates: only the proxy and plain clients will run" >&2

[[ -n $OUT ]] || OUT=$SCRIPT_DIR/results/$(date +%Y-%m-%d)-tls
[[ -e $OUT/runs.csv ]] && die "$OUT has results already: choose another --out"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)

# -cpu max: TCG's model with AES-NI and PCLMULQDQ, so that both the
# proxy (GnuTLS) and kTLS (the kernel's aesni gcm) take their fast paths.
export NBD_VM_QEMU_ARGS="-cpu max${NBD_VM_QEMU_ARGS:+ $NBD_VM_QEMU_ARGS}"

envs=(--env "BENCH_ROUNDS=$ROUNDS" --env "BENCH_RUNTIME=$RUNTIME"
      --env "NBDCTL=$NBDCTL")
[[ -n ${BENCH_CLIENTS:-} ]] && envs+=(--env "BENCH_CLIENTS=$BENCH_CLIENTS")
[[ -n ${BENCH_JOBS:-} ]] && envs+=(--env "BENCH_JOBS=$BENCH_JOBS")

status=0
for k in "${KERNELS[@]}"; do
	krel=$("$VM/kernels.sh" "$k") || die "no kernel '$k'"
	echo "$PROG: $krel: booting (results in $OUT)" >&2
	if ! NBD_VM_KEEP=1 NBD_VM_QUIET=1 "$VM/vm-run.sh" --kernel "$krel" \
		--smp "$SMP" --mem 4096 --timeout 7200 --log "$OUT/vm-$krel.log" \
		"${envs[@]}" \
		-- "$SCRIPT_DIR/bench-tls-guest.sh" 2>"$OUT/vm-run-$krel.err"; then
		echo "$PROG: $krel: the run failed:" >&2
		tail -n 20 "$OUT/vm-run-$krel.err" >&2
		status=1
	fi
	run=$(sed -n 's/.*run directory kept: //p; s/.*; run dir //p' \
		"$OUT/vm-run-$krel.err" | tail -n 1)
	if [[ -n $run && -d $run ]]; then
		if [[ -s $run/runs.csv ]]; then
			if [[ -s $OUT/runs.csv ]]; then
				tail -n +2 "$run/runs.csv" >>"$OUT/runs.csv"
			else
				cp "$run/runs.csv" "$OUT/runs.csv"
			fi
		fi
		[[ -f $run/bench-tls.log ]] &&
			cp "$run/bench-tls.log" "$OUT/bench-tls-$krel.log"
		if [[ -f $run/summary.md ]]; then
			cat "$run/summary.md" >>"$OUT/README.md"
			echo >>"$OUT/README.md"
		fi
		rm -rf "$run"
	fi
done
echo "$PROG: report: $OUT/README.md" >&2
exit $status
