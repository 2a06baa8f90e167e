#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest half of the TLS benchmark (bench-tls.sh starts it through
# vm-run.sh).  In one boot, over loopback TCP to nbdkit's memory plugin
# (1 GiB, filled first), compare:
#   proxy       the kernel's stock nbd.ko and nbd-client's TLS mode: a
#               userspace process relays between the kernel's plaintext
#               socket and the TLS connection
#   ktls        this tree's nbd.ko and nbdctl --tls-certificates: kernel TLS
#               on the driver's own socket
#   plain       this tree's nbd.ko and nbdctl, without TLS (the same nbdkit,
#               the same data): what TLS costs this driver
#   stock-ktls  the stock nbd.ko and nbdctl's kernel TLS
# Each client attaches /dev/nbd0, runs the jobs and detaches; the module
# is reloaded for every client.  The order of the clients is reversed
# every other round.  Writes runs.csv, summary.md and bench-tls.log into
# NBD_VM_RUN_DIR (or BENCH_OUT).
#
# Knobs: BENCH_ROUNDS (3), BENCH_RUNTIME (seconds per fio run, 8),
# BENCH_CLIENTS ("proxy ktls plain stock-ktls"), BENCH_JOBS (all three).
set -uo pipefail

ROUNDS=${BENCH_ROUNDS:-3}
RUNTIME=${BENCH_RUNTIME:-8}
read -ra CLIENTS <<<"${BENCH_CLIENTS:-proxy ktls plain stock-ktls}"
read -ra JOBS <<<"${BENCH_JOBS:-seqread-1m-qd4 seqwrite-1m-qd4 randread-4k-qd32}"
OUT=${BENCH_OUT:-${NBD_VM_RUN_DIR:?}}
NBDCTL=${NBDCTL:?the guest needs NBDCTL}
KREL=$(uname -r)
DEV=/dev/nbd0
SIZE_MB=1024
PORT_TLS=10811
# one server: --tls=on takes TLS and plaintext clients on the same
# store, so it is filled once, in plaintext
PORT_PLAIN=$PORT_TLS
TMP=$(mktemp -d /tmp/nbd-bench-tls.XXXXXX)
PKI=$TMP/pki
RUNS=$OUT/runs.csv
NOTES=$TMP/notes.md
HZ=$(getconf CLK_TCK)
SERVER_PIDS=()

log()
{
	echo "# $(date +%T) $*" | tee -a "$OUT/bench-tls.log"
}

die()
{
	log "FATAL: $*"
	exit 1
}

# a line under the tables of summary.md
note()
{
	log "$*"
	echo "- $*" >>"$NOTES"
}

proxy_pids()
{
	pgrep -x nbd-client
}

no_proxy()
{
	! pgrep -x nbd-client >/dev/null
}

cleanup()
{
	local p

	nbd-client -d $DEV >/dev/null 2>&1
	"$NBDCTL" disconnect --all >/dev/null 2>&1
	for p in $(proxy_pids); do
		kill "$p" 2>/dev/null
	done
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

# busy jiffies of all CPUs: every process in the guest (fio, nbdkit, the
# TLS proxy) and the kernel's work (softirqs, workers)
cpu_ticks()
{
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# utime + stime of the processes PIDS... (0 for those gone)
proc_ticks()
{
	local p t=0 v

	for p in "$@"; do
		v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || v=0
		t=$((t + ${v:-0}))
	done
	echo $t
}

# CA, server certificate for localhost / 127.0.0.1 and client
# certificate, in the layout nbdkit --tls-certificates and nbdctl
# --tls-certificates read: ca-cert.pem, server-{cert,key}.pem,
# client-{cert,key}.pem.  ECDSA keys: quick to make under TCG.
make_certificates()
{
	local who

	mkdir -p "$PKI"
	cat >"$TMP/ca.info" <<-EOF
		cn = "nbd bench CA"
		ca
		cert_signing_key
		expiration_days = 30
	EOF
	cat >"$TMP/server.info" <<-EOF
		organization = "nbd bench"
		cn = "localhost"
		dns_name = "localhost"
		ip_address = "127.0.0.1"
		tls_www_server
		encryption_key
		signing_key
		expiration_days = 30
	EOF
	cat >"$TMP/client.info" <<-EOF
		organization = "nbd bench"
		cn = "nbd bench client"
		tls_www_client
		encryption_key
		signing_key
		expiration_days = 30
	EOF
	if ! { certtool --generate-privkey --key-type=ecdsa \
			--outfile "$PKI/ca-key.pem" &&
	       certtool --generate-self-signed \
			--load-privkey "$PKI/ca-key.pem" \
			--template "$TMP/ca.info" --outfile "$PKI/ca-cert.pem"
	     } >>"$TMP/certtool.log" 2>&1; then
		die "certtool (CA) failed: $(tail -5 "$TMP/certtool.log")"
	fi
	for who in server client; do
		if ! { certtool --generate-privkey --key-type=ecdsa \
				--outfile "$PKI/$who-key.pem" &&
		       certtool --generate-certificate \
				--load-privkey "$PKI/$who-key.pem" \
				--load-ca-certificate "$PKI/ca-cert.pem" \
				--load-ca-privkey "$PKI/ca-key.pem" \
				--template "$TMP/$who.info" \
				--outfile "$PKI/$who-cert.pem"
		     } >>"$TMP/certtool.log" 2>&1; then
			die "certtool ($who) failed: $(tail -5 "$TMP/certtool.log")"
		fi
	done
	chmod 600 "$PKI"/*-key.pem
}

start_server()
{
	local port=$1 name=$2

	shift 2
	nbdkit -f -i 127.0.0.1 -p "$port" -P "$TMP/$name.pid" "$@" \
		memory ${SIZE_MB}M >"$TMP/nbdkit-$name.log" 2>&1 &
	SERVER_PIDS+=($!)
	wait_for 20 test -s "$TMP/$name.pid" ||
		die "nbdkit ($name) did not start: $(cat "$TMP/nbdkit-$name.log")"
}

server_pid()
{
	cat "$TMP/tls.pid"
}

# Fill the export with a sequential write, so that reads return stored
# data, not the memory plugin's holes: in plaintext, with fio's libnbd
# engine (the server takes plaintext and TLS clients).
fill_servers()
{
	fio --name=fill --ioengine=nbd --uri="nbd://127.0.0.1:$PORT_PLAIN/" \
		--rw=write --bs=1M --iodepth=4 --size=${SIZE_MB}M \
		--output=/dev/null >"$TMP/fill.err" 2>&1 ||
		die "filling the export failed: $(tail -5 "$TMP/fill.err")"
}

driver_of()
{
	case $1 in
	proxy|stock-ktls) echo stock ;;
	*) echo ours ;;
	esac
}

load_module()
{
	local want

	[[ -d /sys/module/nbd ]] && unload_module
	if [[ $1 == stock ]]; then
		modprobe nbd nbds_max=2 || die "modprobe nbd failed"
		[[ $(modinfo -n nbd) == */kernel/drivers/block/* ]] ||
			die "modprobe would not load the kernel's own nbd"
	else
		insmod "$NBD_KO" nbds_max=2 || die "insmod $NBD_KO failed"
		want=$(modinfo -F srcversion "$NBD_KO")
		[[ $(cat /sys/module/nbd/srcversion) == "$want" ]] ||
			die "loaded nbd is not $NBD_KO"
	fi
	settle
	wait_for 10 test -b $DEV || die "$DEV did not appear"
}

unload_module()
{
	for _ in $(seq 20); do
		rmmod nbd 2>/dev/null && return 0
		settle
		sleep 0.5
	done
	die "cannot unload nbd: $(rmmod nbd 2>&1)"
}

connected()
{
	[[ $(cat /sys/block/nbd0/size 2>/dev/null) =~ ^[1-9] ]]
}

# kTLS sockets open now, from /proc/net/tls_stat: "TX RX"
tls_sockets()
{
	awk '$1 ~ /^TlsCurr(Tx|Rx)(Sw|Device)$/ {
		if ($1 ~ /Tx/) tx += $2; else rx += $2 }
	     END { print tx + 0, rx + 0 }' /proc/net/tls_stat 2>/dev/null ||
		echo "? ?"
}

# attach CLIENT: 0 when attached; else the client's messages are in
# $TMP/connect.log
attach()
{
	local client=$1 cmd

	case $client in
	proxy)
		cmd=(nbd-client 127.0.0.1 "$PORT_TLS" "$DEV" -N '' -b 4096
		     -certfile "$PKI/client-cert.pem"
		     -keyfile "$PKI/client-key.pem"
		     -cacertfile "$PKI/ca-cert.pem" -tlshostname localhost) ;;
	ktls|stock-ktls)
		cmd=("$NBDCTL" -v connect "nbds://127.0.0.1:$PORT_TLS/" "$DEV"
		     --tls-certificates "$PKI" -b 4096) ;;
	plain)
		cmd=("$NBDCTL" -v connect "nbd://127.0.0.1:$PORT_PLAIN/" "$DEV"
		     -b 4096) ;;
	esac
	echo "+ ${cmd[*]}" >"$TMP/connect.log"
	# The proxy stays behind, and with it this stdout: not a pipe.
	timeout 60 "${cmd[@]}" >>"$TMP/connect.log" 2>&1 </dev/null ||
		return 1
	wait_for 20 connected || { echo "$DEV not connected" >>"$TMP/connect.log"; return 1; }
	settle
}

detach()
{
	local client=$1 p

	if [[ $client == proxy ]]; then
		timeout 60 nbd-client -d $DEV >/dev/null 2>&1
	else
		timeout 60 "$NBDCTL" disconnect $DEV >/dev/null 2>&1
	fi
	wait_for 30 eval '! connected' || die "$DEV did not disconnect ($client)"
	if ! wait_for 30 no_proxy; then
		log "nbd-client still running after the disconnect: killing it"
		for p in $(proxy_pids); do
			kill "$p" 2>/dev/null
		done
	fi
	settle
}

job_args()
{
	case $1 in
	seqread-1m-qd4) echo "--rw=read --bs=1M --iodepth=4" ;;
	seqwrite-1m-qd4) echo "--rw=write --bs=1M --iodepth=4" ;;
	randread-4k-qd32) echo "--rw=randread --bs=4k --iodepth=32" ;;
	*) die "unknown job $1" ;;
	esac
}

# iops bw_kib ios of a fio JSON result (reads and writes)
fio_numbers()
{
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
print("%.1f %d %d" % tuple(sum(j[d][k] for d in ("read", "write"))
                           for k in ("iops", "bw", "total_ios")))' "$1"
}

# run CLIENT JOB ROUND
run()
{
	local client=$1 job=$2 round=$3 json=$TMP/fio.json spid pids
	local c0 c1 s0 s1 p0 p1 iops bw ios

	spid=$(server_pid "$client")
	pids=$(proxy_pids)
	c0=$(cpu_ticks)
	s0=$(proc_ticks "$spid")
	# shellcheck disable=SC2086 # a list of pids
	p0=$(proc_ticks $pids)
	# shellcheck disable=SC2046 # job_args is a list of options
	if ! timeout $((RUNTIME + 120)) fio --name="$job" --filename=$DEV \
		--ioengine=libaio --direct=1 $(job_args "$job") \
		--size=${SIZE_MB}M --time_based --runtime="$RUNTIME" \
		--norandommap --randrepeat=0 --output-format=json \
		--output="$json" >"$TMP/fio.err" 2>&1; then
		log "fio $client $job failed: $(tail -3 "$TMP/fio.err")"
		return 1
	fi
	c1=$(cpu_ticks)
	s1=$(proc_ticks "$spid")
	# shellcheck disable=SC2086
	p1=$(proc_ticks $pids)
	read -r iops bw ios < <(fio_numbers "$json")
	[[ ${ios:-0} -gt 0 ]] || { log "fio $client $job: no I/O"; return 1; }
	echo "$KREL,$round,$client,$job,$iops,$bw,$ios,$(awk -v c=$((c1 - c0)) \
		-v s=$((s1 - s0)) -v p=$((p1 - p0)) -v n="$ios" -v hz="$HZ" \
		'BEGIN { f = 1e6 / hz / n
			 printf "%.2f,%.2f,%.2f", c * f, s * f, p * f }')" >>"$RUNS"
	log "$client $job: $iops IOPS, $((bw / 1024)) MiB/s, $(tail -n 1 "$RUNS" | cut -d, -f8) us CPU per I/O"
}

# turn CLIENT ROUND: load its driver, attach, run the jobs, detach
turn()
{
	local client=$1 round=$2 job tls

	load_module "$(driver_of "$client")"
	if ! attach "$client"; then
		note "round $round: $client did not attach: $(tr '\n' ' ' <"$TMP/connect.log" | cut -c1-600)"
		cat "$TMP/connect.log" >>"$OUT/bench-tls.log"
		return
	fi
	tls=$(tls_sockets)
	log "$client attached (kTLS sockets TX RX: $tls): $(tr '\n' ' ' <"$TMP/connect.log" | cut -c1-300)"
	if [[ $client == *ktls && $tls == "0 0" ]]; then
		note "round $round: $client attached without a kTLS socket"
	fi
	for job in "${JOBS[@]}"; do
		run "$client" "$job" "$round"
	done
	detach "$client"
}

mkdir -p "$OUT"
: >"$OUT/bench-tls.log"
: >"$NOTES"
[[ -f ${NBD_KO:-} ]] || die "NBD_KO is not set: run through bench-tls.sh"
log "kernel $KREL, $(nproc) CPUs, rounds $ROUNDS, runtime $RUNTIME s"
log "fio $(fio --version), $(nbdkit --version | head -1), $(nbd-client -V 2>&1 | head -1 | sed 's/^This is //'), $(certtool --version | head -1)"
log "CPU: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2-), AES-NI: $(grep -q -w -m1 aes /proc/cpuinfo && echo yes || echo NO)"
[[ -d /sys/module/nbd ]] && rmmod nbd
# The VM's udev does not coldplug the CPU, so nothing loads the kernel's
# AES-NI and CLMUL modules: without them kTLS would run on aes-generic
# while GnuTLS (the proxy, nbdkit) uses AES-NI.
for m in aesni_intel ghash_clmulni_intel tls; do
	modprobe "$m" || log "modprobe $m failed"
done

# kTLS clients need nbdctl's TLS options; without them they are left out
if ! "$NBDCTL" connect --help 2>&1 | grep -q -- --tls-certificates; then
	keep=()
	for c in "${CLIENTS[@]}"; do
		[[ $c == *ktls ]] || keep+=("$c")
	done
	[[ ${#keep[@]} -ne ${#CLIENTS[@]} ]] &&
		note "$NBDCTL has no --tls-certificates: no kTLS clients measured"
	CLIENTS=("${keep[@]}")
fi
[[ ${#CLIENTS[@]} -gt 0 ]] || die "no client to measure"

make_certificates
start_server $PORT_TLS tls --tls=on --tls-certificates="$PKI"
fill_servers
log "servers filled: TLS on $PORT_TLS, plaintext on $PORT_PLAIN"

echo "kernel,round,client,job,iops,bw_kib,ios,cpu_us_per_io,srv_cpu_us_per_io,proxy_cpu_us_per_io" >"$RUNS"
n=${#CLIENTS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
	order=()
	for ((k = 0; k < n; k++)); do
		if ((r % 2)); then
			order+=("${CLIENTS[$k]}")
		else
			order+=("${CLIENTS[$((n - 1 - k))]}")
		fi
	done
	log "round $r: ${order[*]}"
	for client in "${order[@]}"; do
		turn "$client" "$r"
	done
done
[[ -d /sys/module/nbd ]] && unload_module
# the kernel's AES-GCM implementations that kTLS instantiated
gcm=$(awk '/^name/ { n = $3 } /^driver/ && n == "gcm(aes)" { printf " %s", $3 }' /proc/crypto)
note "kernel TLS's gcm(aes):${gcm:- none in use}"

python3 - "$RUNS" "$RUNTIME" "$NOTES" >"$OUT/summary.md" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
runtime = sys.argv[2]
notes = open(sys.argv[3]).read().strip()
order = ("proxy", "ktls", "plain", "stock-ktls")
clients = [c for c in order if any(r["client"] == c for r in rows)]
jobs = []
for r in rows:
    if r["job"] not in jobs:
        jobs.append(r["job"])
kernel = rows[0]["kernel"] if rows else "?"
rounds = max((int(r["round"]) for r in rows), default=0)

def vals(c, j, k):
    return [float(r[k]) for r in rows if r["client"] == c and r["job"] == j]

def med(c, j, k):
    v = vals(c, j, k)
    return statistics.median(v) if v else float("nan")

def fmt(x, p=0):
    return "-" if x != x else "%.*f" % (p, x)

print("## %s: TLS (median of %d rounds, %s s runs)\n" % (kernel, rounds, runtime))
print("CPU: guest CPU time per I/O over the run (all processes and the kernel),")
print("of which nbdkit's and the TLS proxy's (nbd-client) processes.\n")
print("| job | client | IOPS | MiB/s | CPU µs/IO | nbdkit µs/IO | proxy µs/IO |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for j in jobs:
    for c in clients:
        print("| %s | %s | %s | %s | %s | %s | %s |" % (
            j, c, fmt(med(c, j, "iops")), fmt(med(c, j, "bw_kib") / 1024, 1),
            fmt(med(c, j, "cpu_us_per_io"), 1),
            fmt(med(c, j, "srv_cpu_us_per_io"), 1),
            fmt(med(c, j, "proxy_cpu_us_per_io"), 1) if c == "proxy" else "-"))
print()

def round_ratios(a, b, j, k):
    out = []
    for rnd in sorted({r["round"] for r in rows}):
        va = [float(r[k]) for r in rows if r["client"] == a and r["job"] == j and r["round"] == rnd]
        vb = [float(r[k]) for r in rows if r["client"] == b and r["job"] == j and r["round"] == rnd]
        if va and vb and vb[0]:
            out.append(va[0] / vb[0])
    return out

def cell(a, b, j, k):
    v = round_ratios(a, b, j, k)
    if not v:
        return "-"
    s = "%.2f" % statistics.median(v)
    if len(v) > 1:
        s += " (" + ", ".join("%.2f" % x for x in v) + ")"
    return s

pairs = [(a, b) for a, b in (("ktls", "proxy"), ("ktls", "plain"),
                             ("ktls", "stock-ktls"))
         if a in clients and b in clients]
if pairs:
    print("Ratios: median of the per-round ratios (each round's in brackets);")
    print("throughput above 1 and CPU per I/O below 1 favour the first.\n")
    head = ["job"]
    for a, b in pairs:
        head += ["%s/%s MiB/s" % (a, b), "%s/%s CPU/IO" % (a, b)]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for j in jobs:
        line = [j]
        for a, b in pairs:
            line += [cell(a, b, j, "bw_kib"), cell(a, b, j, "cpu_us_per_io")]
        print("| " + " | ".join(line) + " |")
    print()
if notes:
    print(notes)
PY
tee -a "$OUT/bench-tls.log" <"$OUT/summary.md"
