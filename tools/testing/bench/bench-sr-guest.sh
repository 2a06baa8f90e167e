#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest half of the structured-reply benchmark (bench-sr.sh starts it
# through vm-run.sh).  In one boot, over loopback TCP to qemu-nbd (which
# answers reads of unallocated ranges with OFFSET_HOLE chunks), compare:
#   ours-sr      this tree's nbd.ko, structured replies (nbdctl's default)
#   ours-simple  the same with nbdctl --no-structured-replies
#   stock        the kernel's own nbd.ko (nbdctl falls back to simple)
# on two exports of 1 GiB: "sparse" (1 MiB of data every 10 MiB, 90%
# holes) read once from start to end with 1 MiB reads, and "full" (all
# data) with 4k random reads at QD32 and 1 MiB sequential reads at QD4.
# The clients take turns, their order rotating every round.  Writes
# runs.csv, summary.md and bench-sr.log into NBD_VM_RUN_DIR (or BENCH_OUT).
#
# Knobs: BENCH_ROUNDS (3), BENCH_RUNTIME (seconds per time-based fio run,
# 8), BENCH_CLIENTS ("ours-sr ours-simple stock").
set -uo pipefail

ROUNDS=${BENCH_ROUNDS:-3}
RUNTIME=${BENCH_RUNTIME:-8}
CLIENTS=(${BENCH_CLIENTS:-ours-sr ours-simple stock})
OUT=${BENCH_OUT:-${NBD_VM_RUN_DIR:?}}
NBDCTL=${NBDCTL:?the guest needs NBDCTL}
KREL=$(uname -r)
DEV=/dev/nbd0
SIZE_MB=1024
PORT_SPARSE=10809
PORT_FULL=10810
TMP=$(mktemp -d /tmp/nbd-bench-sr.XXXXXX)
RUNS=$OUT/runs.csv
PIDS=()

log()
{
	echo "# $(date +%T) $*" | tee -a "$OUT/bench-sr.log"
}

die()
{
	log "FATAL: $*"
	exit 1
}

cleanup()
{
	local p

	"$NBDCTL" disconnect --all >/dev/null 2>&1
	[[ -d /sys/module/nbd ]] && rmmod nbd 2>/dev/null
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

wait_for()
{
	local deadline=$((SECONDS + $1))

	shift
	until "$@"; do
		[[ $SECONDS -ge $deadline ]] && return 1
		sleep 0.1
	done
}

listening()
{
	ss -Hltn "sport = :$1" | grep -q .
}

start_server()
{
	local port=$1 file=$2

	qemu-nbd -t -f raw -b 127.0.0.1 -p "$port" "$file" \
		>"$TMP/qemu-nbd-$port.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 listening "$port" ||
		die "qemu-nbd on $port did not start: $(cat "$TMP/qemu-nbd-$port.log")"
}

load()
{
	[[ -d /sys/module/nbd ]] && { rmmod nbd || die "cannot unload nbd"; }
	if [[ $1 == stock ]]; then
		modprobe nbd nbds_max=2 || die "modprobe nbd failed"
	else
		insmod "${NBD_KO:?}" nbds_max=2 || die "insmod $NBD_KO failed"
	fi
}

# attach CLIENT PORT
attach()
{
	local args=()

	[[ $1 == ours-simple ]] && args=(--no-structured-replies)
	timeout 60 "$NBDCTL" -v connect "nbd://127.0.0.1:$2" nbd0 "${args[@]}" \
		>"$TMP/connect.log" 2>&1 ||
		die "nbdctl connect ($1) failed: $(cat "$TMP/connect.log")"
	udevadm settle --timeout=30 >/dev/null 2>&1 || true
}

detach()
{
	timeout 60 "$NBDCTL" disconnect nbd0 >/dev/null 2>&1 ||
		die "nbdctl disconnect failed"
	udevadm settle --timeout=30 >/dev/null 2>&1 || true
}

lo_rx_bytes()
{
	awk -F'[: ]+' '$2 == "lo" { print $3 }' /proc/net/dev
}

# bytes the client's socket to PORT received so far (ss's tcp_info)
sock_rx_bytes()
{
	ss -Htin "dport = :$1" | grep -o 'bytes_received:[0-9]*' |
		cut -d: -f2 | awk '{ s += $1 } END { print s + 0 }'
}

# fio_run JSON ARGS...: one fio run on the device
fio_run()
{
	local json=$1

	shift
	timeout 600 fio --name=b --filename=$DEV --ioengine=libaio --direct=1 \
		--output-format=json --output="$json" "$@" >"$TMP/fio.err" 2>&1
}

# iops bw_kib runtime_ms of a fio JSON result (reads)
fio_numbers()
{
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["jobs"][0]["read"]; print("%.1f %d %d" % (r["iops"], r["bw"], r["runtime"]))' "$1"
}

# run CLIENT JOB ROUND
run()
{
	local client=$1 job=$2 round=$3 json=$TMP/fio.json port args
	local lo0 lo1 s0 s1 iops bw ms

	case $job in
	sparse-read-1m)
		port=$PORT_SPARSE
		args=(--rw=read --bs=1M --iodepth=1 --size=${SIZE_MB}M) ;;
	full-randread-4k-qd32)
		port=$PORT_FULL
		args=(--rw=randread --bs=4k --iodepth=32 --time_based
		      --runtime="$RUNTIME" --norandommap --randrepeat=0) ;;
	full-seqread-1m-qd4)
		port=$PORT_FULL
		args=(--rw=read --bs=1M --iodepth=4 --time_based
		      --runtime="$RUNTIME") ;;
	esac
	attach "$client" "$port"
	lo0=$(lo_rx_bytes)
	s0=$(sock_rx_bytes "$port")
	fio_run "$json" "${args[@]}" ||
		die "fio $client $job failed: $(tail -3 "$TMP/fio.err")"
	s1=$(sock_rx_bytes "$port")
	lo1=$(lo_rx_bytes)
	detach
	read -r iops bw ms < <(fio_numbers "$json")
	echo "$KREL,$round,$client,$job,$iops,$bw,$ms,$((lo1 - lo0)),$((s1 - s0))" >>"$RUNS"
	log "$client $job: $iops IOPS, $((bw / 1024)) MiB/s, $ms ms, socket received $((s1 - s0)) bytes"
}

mkdir -p "$OUT"
: >"$OUT/bench-sr.log"
log "kernel $KREL, qemu-nbd $(qemu-nbd --version | head -1), fio $(fio --version)"
mount -t debugfs none /sys/kernel/debug 2>/dev/null

# sparse: 1 MiB of data at the start of every 10 MiB; full: all data
truncate -s ${SIZE_MB}M "$TMP/sparse.img"
for ((i = 0; i < SIZE_MB; i += 10)); do
	dd if=/dev/urandom of="$TMP/sparse.img" bs=1M count=1 seek=$i \
		conv=notrunc status=none
done
head -c $((SIZE_MB << 20)) /dev/urandom >"$TMP/full.img"
log "sparse export: $(du -m "$TMP/sparse.img" | cut -f1) MiB allocated of $SIZE_MB"
start_server $PORT_SPARSE "$TMP/sparse.img"
start_server $PORT_FULL "$TMP/full.img"

echo "kernel,round,client,job,iops,bw_kib,runtime_ms,lo_bytes,sock_bytes" >"$RUNS"
n=${#CLIENTS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
	for ((k = 0; k < n; k++)); do
		client=${CLIENTS[$(((k + r - 1) % n))]}
		if [[ $client == stock ]]; then
			load stock
		else
			load ours
		fi
		for job in sparse-read-1m full-randread-4k-qd32 full-seqread-1m-qd4; do
			run "$client" "$job" "$r"
		done
	done
done
rmmod nbd 2>/dev/null

python3 - "$RUNS" >"$OUT/summary.md" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def med(client, job, key):
    v = [float(r[key]) for r in rows if r["client"] == client and r["job"] == job]
    return statistics.median(v) if v else float("nan")
def per(client, job, key):
    return ", ".join("%g" % float(r[key]) for r in rows
                     if r["client"] == client and r["job"] == job)
clients = [c for c in ("ours-sr", "ours-simple", "stock")
           if any(r["client"] == c for r in rows)]
print("## %s: structured replies (median of %d rounds)\n" % (rows[0]["kernel"], max(int(r["round"]) for r in rows)))
print("| job | " + " | ".join(clients) + " |")
print("| --- |" + " --- |" * len(clients))
j = "sparse-read-1m"
print("| %s, seconds for 1 GiB | " % j + " | ".join("%.2f (%s)" % (med(c, j, "runtime_ms") / 1000, per(c, j, "runtime_ms")) for c in clients) + " |")
print("| %s, MiB received on the socket | " % j + " | ".join("%.1f" % (med(c, j, "sock_bytes") / 2**20) for c in clients) + " |")
print("| %s, MiB through loopback | " % j + " | ".join("%.1f" % (med(c, j, "lo_bytes") / 2**20) for c in clients) + " |")
for j in ("full-randread-4k-qd32", "full-seqread-1m-qd4"):
    print("| %s, IOPS | " % j + " | ".join("%.0f (%s)" % (med(c, j, "iops"), per(c, j, "iops")) for c in clients) + " |")
print()
def ratio(a, b): return a / b if b else float("nan")
if "ours-sr" in clients and "ours-simple" in clients:
    j = "sparse-read-1m"
    print("- sparse read, simple / structured time: %.2fx (target >= 3)" % ratio(med("ours-simple", j, "runtime_ms"), med("ours-sr", j, "runtime_ms")))
    if "stock" in clients:
        print("- sparse read, stock / structured time: %.2fx" % ratio(med("stock", j, "runtime_ms"), med("ours-sr", j, "runtime_ms")))
    for j in ("full-randread-4k-qd32", "full-seqread-1m-qd4"):
        print("- %s, structured / simple IOPS: %.3f (target >= 0.95)" % (j, ratio(med("ours-sr", j, "iops"), med("ours-simple", j, "iops"))))
PY
cat "$OUT/summary.md" | tee -a "$OUT/bench-sr.log"
