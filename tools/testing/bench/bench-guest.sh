#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest half of the benchmark (started by bench.sh through vm-run.sh):
# in one boot, alternate the kernel's stock nbd.ko and this tree's nbd.ko
# (NBD_KO) round after round against the same nbdkit servers, with the
# same fio jobs, and measure fio's userspace NBD client against the same
# servers as the reference.  Writes runs.csv, mem.csv and bench.log into
# NBD_VM_RUN_DIR (or BENCH_OUT).
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_RUNTIME (seconds per fio
# run, 4), BENCH_TRANSPORTS ("unix tcp"), BENCH_CONNS ("1 4"),
# BENCH_JOBS (job names, default all), BENCH_CLIENTS ("stock ours fio-nbd").
set -uo pipefail

ROUNDS=${BENCH_ROUNDS:-3}
RUNTIME=${BENCH_RUNTIME:-4}
TRANSPORTS=${BENCH_TRANSPORTS:-unix tcp}
CONNS=${BENCH_CONNS:-1 4}
CLIENTS=${BENCH_CLIENTS:-stock ours fio-nbd}
ALL_JOBS="randread-4k-qd1 randread-4k-qd32 randwrite-4k-qd32 randrw-64k-qd16 seqread-1m-qd4 seqwrite-1m-qd4"
JOBS=${BENCH_JOBS:-$ALL_JOBS}
OUT=${BENCH_OUT:-${NBD_VM_RUN_DIR:?}}
KREL=$(uname -r)
DEV=/dev/nbd0
SIZE_MB=1024
PORT=10809
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
TMP=$(mktemp -d /tmp/nbd-bench.XXXXXX)
SOCK=$TMP/mem.sock
RUNS=$OUT/runs.csv
MEM=$OUT/mem.csv
SERVER_PIDS=()

log()
{
	echo "# $(date +%T) $*" | tee -a "$OUT/bench.log"
}

die()
{
	log "FATAL: $*"
	exit 1
}

cleanup()
{
	local p

	nbd-client -d "$DEV" >/dev/null 2>&1
	[[ -d /sys/module/nbd ]] && rmmod nbd 2>/dev/null
	for p in "${SERVER_PIDS[@]}"; do
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

settle()
{
	udevadm settle --timeout=30 >/dev/null 2>&1 || true
}

# Kernel memory in KiB: everything not free, not page cache and not
# process memory (slab, page tables, vmalloc, pages drivers allocate).
kernel_kib()
{
	awk '/^(MemTotal):/ { t += $2 }
	     /^(MemFree|Buffers|Cached|AnonPages):/ { t -= $2 }
	     END { print t }' /proc/meminfo
}

# Kernel memory after dropping the caches that can be dropped: the
# median of three readings.
kernel_kib_settled()
{
	local i v=()

	for i in 1 2 3; do
		sync
		echo 3 >/proc/sys/vm/drop_caches
		sleep 0.5
		v+=("$(kernel_kib)")
	done
	printf '%s\n' "${v[@]}" | sort -n | sed -n 2p
}

# busy and total jiffies of all CPUs
cpu_ticks()
{
	awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; print b }' /proc/stat
}

proc_ticks()
{
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

start_servers()
{
	local pidf=$TMP/unix.pid

	nbdkit -f -U "$SOCK" -P "$pidf" memory size=${SIZE_MB}M \
		>"$TMP/nbdkit-unix.log" 2>&1 &
	SERVER_PIDS+=($!)
	UNIX_PID=$!
	nbdkit -f -i 127.0.0.1 -p $PORT -P "$TMP/tcp.pid" memory \
		size=${SIZE_MB}M >"$TMP/nbdkit-tcp.log" 2>&1 &
	SERVER_PIDS+=($!)
	TCP_PID=$!
	wait_for 20 test -s "$pidf" -a -s "$TMP/tcp.pid" ||
		die "nbdkit did not start: $(cat "$TMP"/nbdkit-*.log)"
}

uri()
{
	if [[ $1 == unix ]]; then
		echo "nbd+unix:///?socket=$SOCK"
	else
		echo "nbd://127.0.0.1:$PORT/"
	fi
}

server_pid()
{
	if [[ $1 == unix ]]; then echo "$UNIX_PID"; else echo "$TCP_PID"; fi
}

# Fill the exports so reads return stored data, not holes.
fill_servers()
{
	local t

	for t in $TRANSPORTS; do
		fio --name=fill --ioengine=nbd --uri="$(uri "$t")" --rw=write \
			--bs=1M --iodepth=4 --size=${SIZE_MB}M \
			--output=/dev/null || die "filling the $t export failed"
	done
}

# load_module CLIENT [DEVICES]
load_module()
{
	local want n=${2:-1}

	[[ -d /sys/module/nbd ]] && die "nbd is loaded already"
	if [[ $1 == stock ]]; then
		modprobe nbd nbds_max="$n" || die "modprobe nbd failed"
		[[ $(modinfo -n nbd) == */kernel/drivers/block/* ]] ||
			die "modprobe would not load the kernel's own nbd"
	else
		insmod "$NBD_KO" nbds_max="$n" || die "insmod $NBD_KO failed"
		want=$(modinfo -F srcversion "$NBD_KO")
		[[ $(cat /sys/module/nbd/srcversion) == "$want" ]] ||
			die "loaded nbd is not $NBD_KO"
	fi
	settle
	wait_for 10 test -b /dev/nbd$((n - 1)) || die "nbd devices did not appear"
}

unload_module()
{
	local i

	for i in $(seq 20); do
		rmmod nbd 2>/dev/null && return 0
		settle
		sleep 0.5
	done
	die "cannot unload nbd: $(rmmod nbd 2>&1)"
}

# connected [DEV]
connected()
{
	local b=/sys/block/$(basename "${1:-$DEV}")

	[[ -e $b/pid && $(cat "$b/size") != 0 ]]
}

# attach TRANSPORT CONNECTIONS [DEV]
attach()
{
	local t=$1 c=$2 dev=${3:-$DEV} args

	if [[ $t == unix ]]; then
		args=(-unix "$SOCK")
	else
		args=(127.0.0.1 $PORT)
	fi
	timeout 60 nbd-client "${args[@]}" "$dev" -b 4096 -C "$c" \
		>"$TMP/client.log" 2>&1 ||
		die "nbd-client ${args[*]} -C $c failed: $(cat "$TMP/client.log")"
	wait_for 20 connected "$dev" || die "$dev not connected"
	settle
}

# detach [DEV]
detach()
{
	local dev=${1:-$DEV}

	timeout 60 nbd-client -d "$dev" >/dev/null 2>&1
	wait_for 30 eval "! connected $dev" || die "$dev did not disconnect"
	settle
}

# fio arguments of a job name: rw, bs, iodepth
job_args()
{
	case $1 in
	randread-4k-qd1) echo "--rw=randread --bs=4k --iodepth=1" ;;
	randread-4k-qd32) echo "--rw=randread --bs=4k --iodepth=32" ;;
	randwrite-4k-qd32) echo "--rw=randwrite --bs=4k --iodepth=32" ;;
	randrw-64k-qd16) echo "--rw=randrw --bs=64k --iodepth=16" ;;
	seqread-1m-qd4) echo "--rw=read --bs=1M --iodepth=4" ;;
	seqwrite-1m-qd4) echo "--rw=write --bs=1M --iodepth=4" ;;
	*) die "unknown job $1" ;;
	esac
}

# Sum a fio JSON result into: iops bw_kib p50_us p99_us ios
# (latency of reads, or of writes for write-only jobs).
fio_summary()
{
	python3 - "$1" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
iops = bw = ios = 0
lat = None
for d in ("read", "write"):
    s = j[d]
    iops += s["iops"]
    bw += s["bw"]
    ios += s["total_ios"]
    if lat is None and s["total_ios"]:
        lat = s["clat_ns"].get("percentile", {})
p50 = lat.get("50.000000", 0) / 1000 if lat else 0
p99 = lat.get("99.000000", 0) / 1000 if lat else 0
print("%.1f %.1f %.1f %.1f %d" % (iops, bw, p50, p99, ios))
EOF
}

# run_job CLIENT TRANSPORT CONNS JOB ROUND
run_job()
{
	local client=$1 t=$2 c=$3 job=$4 round=$5 target json
	local cpu0 cpu1 srv0 srv1 spid iops bw p50 p99 ios size_args

	json=$TMP/fio.json
	if [[ $client == fio-nbd ]]; then
		target=(--ioengine=nbd --uri="$(uri "$t")")
	else
		target=(--ioengine=libaio --direct=1 --filename=$DEV)
	fi
	# numjobs = connections; sequential jobs each stream their own part
	size_args=(--size=${SIZE_MB}M)
	if [[ $job == seq* && $c -gt 1 ]]; then
		size_args=(--size=$((SIZE_MB / c))M
			   --offset_increment=$((SIZE_MB / c))M)
	fi
	spid=$(server_pid "$t")
	cpu0=$(cpu_ticks)
	srv0=$(proc_ticks "$spid")
	# shellcheck disable=SC2046 # job_args is a list of options
	if ! timeout $((RUNTIME + 120)) fio --name="$job" "${target[@]}" \
		$(job_args "$job") --numjobs="$c" "${size_args[@]}" \
		--time_based --runtime="$RUNTIME" --group_reporting \
		--norandommap --randrepeat=0 --output-format=json \
		--output="$json" >"$TMP/fio.err" 2>&1; then
		log "fio $client $t ${c}c $job failed: $(tail -3 "$TMP/fio.err")"
		return 1
	fi
	cpu1=$(cpu_ticks)
	srv1=$(proc_ticks "$spid")
	read -r iops bw p50 p99 ios < <(fio_summary "$json")
	[[ ${ios:-0} -gt 0 ]] || { log "fio $client $t $job: no I/O"; return 1; }
	# USER_HZ ticks (10 ms) -> microseconds per I/O
	echo "$KREL,$round,$client,$t,$c,$job,$iops,$bw,$p50,$p99,$(awk -v b=$((cpu1 - cpu0)) -v s=$((srv1 - srv0)) -v n="$ios" \
		'BEGIN { printf "%.2f,%.2f", b * 10000 / n, s * 10000 / n }')" >>"$RUNS"
	log "$client $t ${c}c $job: $iops IOPS, p50 $p50 us, p99 $p99 us"
}

# Unreclaimable slab in KiB: socket buffers, bios and the like.
slab_kib()
{
	awk '/^SUnreclaim:/ { print $2 }' /proc/meminfo
}

# median of N readings of slab_kib, DELAY seconds apart
slab_kib_median()
{
	local i v=()

	for i in $(seq "$1"); do
		v+=("$(slab_kib)")
		sleep "$2"
	done
	printf '%s\n' "${v[@]}" | sort -n | sed -n "$((($1 + 1) / 2))p"
}

# Kernel memory of a driver, amplified to rise above the noise: loading
# it with MEM_DEVS devices (per device), one idle connection on each of
# MEM_CONNS devices (per connection), and QD32 of 4k reads on four of
# those (per in-flight request: 128 of them; unreclaimable slab only, as
# free-page counts move by megabytes between readings).  Also the exact size of the
# driver's per-request data (struct nbd_cmd, from the module's BTF),
# which blk-mq allocates for every tag.
MEM_DEVS=32
MEM_CONNS=16	# the page allocator's free lists move by megabytes
measure_memory()
{
	local client=$1 round=$2 k0 k1 k2 idle busy pdu fio_pid i args=()

	k0=$(kernel_kib_settled)
	load_module "$client" $MEM_DEVS
	k1=$(kernel_kib_settled)
	pdu=$(python3 "$BENCH_DIR/btf_size.py" nbd_cmd 2>>"$OUT/bench.log")
	# A module built without BTF (no vmlinux in 6.1's headers): its
	# DWARF debug information has the same struct.
	if [[ -z $pdu && $client == ours ]] && command -v gdb >/dev/null; then
		pdu=$(gdb -batch -ex 'print sizeof(struct nbd_cmd)' "$NBD_KO" \
			2>>"$OUT/bench.log" | sed -n 's/^\$1 = \([0-9]*\)$/\1/p')
		log "struct nbd_cmd from $NBD_KO's DWARF: ${pdu:-not found}"
	fi
	for ((i = 0; i < MEM_CONNS; i++)); do
		attach unix 1 /dev/nbd$i
	done
	for i in 0 1 2 3; do
		args+=(--name=mem$i --filename=/dev/nbd$i)
	done
	k2=$(kernel_kib_settled)
	idle=$(slab_kib_median 5 0.3)
	fio --ioengine=libaio --direct=1 --rw=randread --bs=4k --iodepth=32 \
		--size=${SIZE_MB}M --time_based --runtime=$((RUNTIME + 5)) \
		--norandommap "${args[@]}" --output=/dev/null >/dev/null 2>&1 &
	fio_pid=$!
	sleep 2
	busy=$(slab_kib_median 9 0.3)
	wait "$fio_pid"
	for ((i = 0; i < MEM_CONNS; i++)); do
		detach /dev/nbd$i
	done
	unload_module
	awk -v kr="$KREL" -v r="$round" -v c="$client" -v dev=$((k1 - k0)) \
		-v n=$MEM_DEVS -v conn=$((k2 - k1)) -v nc=$MEM_CONNS \
		-v fl=$((busy - idle)) \
		-v pdu="$pdu" 'BEGIN {
		p = kr "," r "," c ","
		printf "%sper_device,%.1f\n", p, dev / n
		printf "%sper_connection,%.1f\n", p, conn / nc
		printf "%sinflight_128,%.1f\n", p, fl
		printf "%sper_request,%.2f\n", p, fl / 128
		if (pdu != "")
			printf "%spdu_bytes,%s\n", p, pdu
	}' >>"$MEM"
	log "$client memory: $MEM_DEVS devices $((k1 - k0)) KiB, $MEM_CONNS idle connections $((k2 - k1)) KiB, 128 reads in flight $((busy - idle)) KiB, struct nbd_cmd ${pdu:-?} bytes"
}

# Swap "stock" and "ours" in a list of clients.
swap_drivers()
{
	local c out=()

	for c in $1; do
		case $c in
		stock) out+=(ours) ;;
		ours) out+=(stock) ;;
		*) out+=("$c") ;;
		esac
	done
	echo "${out[*]}"
}

main()
{
	local round client t c job order

	[[ -f ${NBD_KO:-} ]] || die "NBD_KO is not set: run through bench.sh"
	mkdir -p "$OUT"
	[[ -s $RUNS ]] ||
		echo "kernel,round,client,transport,conns,job,iops,bw_kib,p50_us,p99_us,cpu_us_per_io,srv_cpu_us_per_io" >"$RUNS"
	[[ -s $MEM ]] || echo "kernel,round,client,metric,kib" >"$MEM"
	log "kernel $KREL, $(nproc) CPUs, rounds $ROUNDS, runtime $RUNTIME s, transports $TRANSPORTS, connections $CONNS"
	log "fio $(fio --version), nbdkit $(nbdkit --version | head -1), nbd-client $(nbd-client -V 2>&1 | head -1)"
	[[ -d /sys/module/nbd ]] && rmmod nbd
	start_servers
	fill_servers

	# Clients take turns for each transport and connection count, so
	# that the runs compared are a minute or two apart, not a whole
	# round; the kernel drivers swap places every round.
	for round in $(seq "$ROUNDS"); do
		order=$CLIENTS
		((round % 2)) || order=$(swap_drivers "$CLIENTS")
		log "round $round: $order"
		for client in $order; do
			[[ $client != fio-nbd ]] && measure_memory "$client" "$round"
		done
		for t in $TRANSPORTS; do
			for c in $CONNS; do
				for client in $order; do
					if [[ $client != fio-nbd ]]; then
						load_module "$client"
						log "$client: scheduler $(cat /sys/block/nbd0/queue/scheduler)"
						attach "$t" "$c"
					fi
					for job in $JOBS; do
						run_job "$client" "$t" "$c" "$job" "$round"
					done
					if [[ $client != fio-nbd ]]; then
						detach
						unload_module
					fi
				done
			done
		done
	done
	log "done"
}

main "$@"
