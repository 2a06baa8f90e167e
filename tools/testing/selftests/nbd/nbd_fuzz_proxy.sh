#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Fuzz the reply path through a real server.  nbdkit (file plugin on a
# file in the guest) sits behind nbd_fuzz_proxy.py, which corrupts one
# header field of a reply or structured chunk now and then (magic,
# error, cookie, chunk flags/type/length; never payload bytes).  nbdctl
# connect --persist -C 2 attaches through the proxy, and fio writes with
# crc32c verify and reads in a loop for NBD_FUZZ_SECONDS.
#
# I/O errors and verify failures while the proxy mutates are expected (a
# mutated error field legitimately fails a request) and only reported,
# with the driver's protocol-violation messages counted by kind.  What
# must hold: no kernel splat or hung task (hung_task_timeout_secs is 30
# meanwhile; the VM harness also checks dmesg), every fio run ends within
# a bound, the persist process survives and reconnects, and no leak
# (kmemleak when the kernel has it on, else the unreclaimable slab before
# and after).  Once mutation stops (SIGUSR1 to the proxy), a sequential
# write then verify of the whole device through the same proxy must be
# clean, nbdctl disconnect must work and the module must unload.
#
# Environment:
#	NBDCTL			the nbdctl binary (the harness builds it)
#	NBD_FUZZ_SECONDS	length of the mutation phase (600)
#	NBD_FUZZ_RATE		probability of mutating a reply header (0.01)
#	NBD_FUZZ_SEED		the proxy's seed (1)
#	NBD_FUZZ_MB		device size in MiB (64)
#	NBD_FUZZ_DEAD		--dead-timeout, also the bound on reconnects (120)
#	NBD_FUZZ_FIO_BOUND	time limit of each fio run, in s (300)
#	NBD_FUZZ_SLAB_KB	slab growth tolerated without kmemleak (8192)
#	NBD_FUZZ_NEGATIVE	show that the test can fail: "payload" (the
#				proxy also flips read payload bits, and keeps
#				doing so in the clean phase) or "backing" (the
#				backing file is scribbled on between the final
#				write and its verify)

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
FUZZ_SECONDS=${NBD_FUZZ_SECONDS:-600}
RATE=${NBD_FUZZ_RATE:-0.01}
SEED=${NBD_FUZZ_SEED:-1}
SIZE_MB=${NBD_FUZZ_MB:-64}
DEAD=${NBD_FUZZ_DEAD:-120}
FIO_BOUND=${NBD_FUZZ_FIO_BOUND:-300}
SLAB_KB=${NBD_FUZZ_SLAB_KB:-8192}
NEGATIVE=${NBD_FUZZ_NEGATIVE:-}
KMEMLEAK=/sys/kernel/debug/kmemleak

nbd_test_init
ktap_plan 17
ktap_info "module: $(nbd_module_desc)"
ktap_info "fuzz: ${FUZZ_SECONDS} s, rate $RATE, seed $SEED, ${SIZE_MB} MiB${NEGATIVE:+, negative test: $NEGATIVE}"
require_cmds nbdkit fio perl python3
require_nbdctl

t_start=$SECONDS
# save_logs: the logs that explain a failure, kept in the VM's run
# directory (shared with the host) when there is one.
save_logs()
{
	local d=${NBD_VM_RUN_DIR:-}/nbd_fuzz_proxy

	[[ -n ${NBD_VM_RUN_DIR:-} && -d $NBD_VM_RUN_DIR ]] || return 0
	mkdir -p "$d" || return 0
	cp "$NBD_TMP"/*.log "$NBD_TMP"/*.dmesg "$NBD_TMP"/runs \
		"$NBD_TMP"/proxy.stats "$NBD_TMP"/kmemleak.* "$d"/ 2>/dev/null
	cp "$NBD_TMP"/*.out "$d"/ 2>/dev/null
}
at_exit save_logs
PROXY=$NBD_SELFTEST_DIR/nbd_fuzz_proxy.py
PSOCK=$NBD_TMP/proxy.sock
STATS=$NBD_TMP/proxy.stats

# A short hung-task timeout, so that a request stuck for good shows up
# within the run (restored at exit).
HT=/proc/sys/kernel/hung_task_timeout_secs
if [[ -w $HT ]]; then
	ht_old=$(cat "$HT")
	echo 30 >"$HT"
	at_exit "echo $ht_old >$HT"
	ktap_info "hung_task_timeout_secs: 30 (was $ht_old)"
else
	ktap_info "no $HT: the kernel has no hung task detector"
fi

mountpoint -q /sys/kernel/debug 2>/dev/null ||
	mount -t debugfs none /sys/kernel/debug 2>/dev/null
have_kmemleak=0
# kmemleak=off (the default of the debug kernel) leaves the file, but it
# refuses every command.
if [[ -e $KMEMLEAK ]] && echo clear >"$KMEMLEAK" 2>/dev/null; then
	have_kmemleak=1
	ktap_info "kmemleak is on"
fi

# unreclaimable_kb: SUnreclaim of /proc/meminfo after dropping caches.
unreclaimable_kb()
{
	sync
	echo 3 >/proc/sys/vm/drop_caches
	sleep 1
	awk '/^SUnreclaim:/ { print $2 }' /proc/meminfo
}

# kmalloc_kb: bytes in use in the kmalloc caches (nbd has none of its
# own), from /proc/slabinfo.
kmalloc_kb()
{
	awk '$1 ~ /^kmalloc-/ { s += $2 * $4 } END { printf "%d\n", s / 1024 }' \
		/proc/slabinfo 2>/dev/null
}

if [[ $have_kmemleak == 0 ]]; then
	slab0=$(unreclaimable_kb)
	kmalloc0=$(kmalloc_kb)
fi

# start_nbdkit: nbdkit on the file, with room for a slow debug kernel
# (lib.sh's nbdkit_start waits 20 s; under KASAN and kmemleak in a loaded
# TCG guest starting nbdkit took longer).
start_nbdkit()
{
	local pidf=$NBD_TMP/nbdkit.pid pid

	rm -f "$pidf" "$(nbd_sock nbdkit)"
	nbdkit -f --exit-with-parent -P "$pidf" -U "$(nbd_sock nbdkit)" \
		file "$DISK" >"$NBD_TMP/nbdkit.log" 2>&1 &
	pid=$!
	track_pid "$pid"
	wait_for 180 test -s "$pidf" && kill -0 "$pid" 2>/dev/null && return 0
	ktap_info "nbdkit did not start:"
	ktap_info_file "$NBD_TMP/nbdkit.log"
	return 1
}

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
DISK=$NBD_TMP/disk.img
truncate -s "${SIZE_MB}M" "$DISK"
check "nbdkit serves a ${SIZE_MB} MiB file" start_nbdkit ||
	ktap_bail "no server"

# pstat KEY: a counter of the proxy.
pstat()
{
	local v

	v=$(awk -F= -v k="$1" '$1 == k { print $2 }' "$STATS" 2>/dev/null)
	echo "${v:-0}"
}

proxy_args=(--listen "unix:$PSOCK" --upstream "unix:$(nbd_sock nbdkit)"
	    --rate "$RATE" --seed "$SEED" --paused
	    --log "$NBD_TMP/proxy.log" --stats "$STATS"
	    --pidfile "$NBD_TMP/proxy.pid")
[[ $NEGATIVE == payload ]] && proxy_args+=(--payload-rate 0.05)
start_proxy()
{
	python3 "$PROXY" "${proxy_args[@]}" >"$NBD_TMP/proxy.err" 2>&1 &
	proxy=$!
	track_pid "$proxy"
	# Python takes minutes to start on a loaded debug kernel (KASAN,
	# kmemleak, TCG).
	wait_for 300 test -S "$PSOCK" && wait_for 60 test -s "$NBD_TMP/proxy.pid" &&
		kill -0 "$proxy" 2>/dev/null && return 0
	ktap_info_file "$NBD_TMP/proxy.err"
	return 1
}
check "the fuzz proxy listens (rate $RATE, seed $SEED, paused)" start_proxy ||
	ktap_bail "no proxy"

"$NBDCTL" connect "nbd+unix:///?socket=$PSOCK" "$DEV" -C 2 \
	--persist --foreground --dead-timeout "$DEAD" --timeout 20 \
	--handshake-timeout 30 \
	>"$NBD_TMP/persist.out" 2>"$NBD_TMP/persist.log" &
persist=$!
track_pid "$persist"
check "nbdctl connect --persist -C 2 attaches $DEV through the proxy" \
	nbd_wait_connected "$DEV" 60 || {
	ktap_info_file "$NBD_TMP/persist.log"
	ktap_info_file "$NBD_TMP/proxy.log"
	ktap_bail "attach failed"
}
nbd_quiesce "$DEV"
ktap_info "nbdctl list: $("$NBDCTL" list 2>&1 | tr '\n' ';')"
ktap_info "proxy: $(pstat transmission) connections in transmission, $(pstat structured) with structured replies"

# ---------------------------------------------------------------------------
# The mutation phase
# ---------------------------------------------------------------------------

# fio_read NAME: random reads of mixed sizes for a few seconds (no data
# check: what they read is whatever the last writes left).
fio_read()
{
	local name=$1

	timeout -k 10 "$FIO_BOUND" fio --name="$name" --filename="$DEV" \
		--ioengine=libaio --direct=1 --rw=randread --bsrange=4k-128k \
		--iodepth=16 --numjobs=2 --time_based --runtime=5 \
		--output-format=json --output="$NBD_TMP/$name.json" \
		>"$NBD_TMP/$name.out" 2>&1
}

# fio_write NAME: random writes verified with crc32c, each job its own
# region.
fio_write()
{
	local name=$1 mb=$((SIZE_MB / 4))

	timeout -k 10 "$FIO_BOUND" fio --name="$name" --filename="$DEV" \
		--ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
		--iodepth=16 --numjobs=2 --size="${mb}M" \
		--offset_increment="${mb}M" --verify=crc32c --verify_fatal=1 \
		--do_verify=1 --output-format=json \
		--output="$NBD_TMP/$name.json" >"$NBD_TMP/$name.out" 2>&1
}

# fio_loop: write+verify and read runs by turns until $NBD_TMP/stop
# exists; one line per run in $NBD_TMP/runs: number, kind, exit status,
# errors fio counted, seconds.
fio_loop()
{
	local i=0 kind t0 rc

	while [[ ! -e $NBD_TMP/stop ]]; do
		i=$((i + 1))
		kind="write"
		((i % 2 == 0)) && kind="read"
		t0=$SECONDS
		"fio_$kind" "fuzz.$i"
		rc=$?
		echo "$i $kind $rc $(fio_errors "$NBD_TMP/fuzz.$i.json") $((SECONDS - t0))" \
			>>"$NBD_TMP/runs"
	done
}

dmesg_mark "fuzz"
mark_fuzz=$_dmesg_mark
dmesg -w >"$NBD_TMP/kmsg.log" 2>/dev/null &
track_pid $!

kill -USR2 "$proxy"
t_fuzz=$SECONDS
: >"$NBD_TMP/runs"
fio_loop &
loop=$!
track_pid "$loop"
persist_died=
nbdkit_deaths=0
while ((SECONDS - t_fuzz < FUZZ_SECONDS)); do
	sleep 5
	# nbdkit 1.32 can abort when a client goes away while it answers
	# requests in parallel (raw_send_socket: Assertion `sock >= 0'):
	# not what is tested here, so it is restarted (and reported).
	if ! kill -0 "$(cat "$NBD_TMP/nbdkit.pid")" 2>/dev/null; then
		nbdkit_deaths=$((nbdkit_deaths + 1))
		ktap_info "nbdkit died after $((SECONDS - t_fuzz)) s; its log:"
		ktap_info_file "$NBD_TMP/nbdkit.log" 3
		cp "$NBD_TMP/nbdkit.log" "$NBD_TMP/nbdkit.$nbdkit_deaths.log"
		start_nbdkit ||
			ktap_info "cannot restart nbdkit"
	fi
	if [[ -z $persist_died ]] && ! kill -0 "$persist" 2>/dev/null; then
		persist_died=$((SECONDS - t_fuzz))
		ktap_info "the persist process died after $persist_died s"
	fi
	kill -0 "$loop" 2>/dev/null || break
done
touch "$NBD_TMP/stop"
# The last run still runs with mutation on; it has its bound.
t_stop=$SECONDS
pid_gone "$loop" $((FIO_BOUND + 30))
loop_rc=$?
kill -USR1 "$proxy"
fuzz_secs=$((SECONDS - t_fuzz))
if [[ $loop_rc -ne 0 ]]; then
	ktap_info "the fio loop has not ended $((SECONDS - t_stop)) s after it was told to stop"
	ktap_info "stuck tasks: $(ps -eo pid,stat,wchan:32,comm | awk '$2 ~ /D/' | tr '\n' ';')"
fi

mutations=$(pstat mutations)
ktap_info "nbdkit died $nbdkit_deaths times (restarted)"
ktap_info "mutation phase: $fuzz_secs s; the proxy saw $(pstat connections) connections, $(pstat requests) requests, $(pstat replies) simple replies, $(pstat chunks) chunks"
ktap_info "mutations: $mutations: $(awk -F= '$1 ~ /^kind[.]/ { sub(/^kind[.]/, "", $1); printf "%s %s  ", $1, $2 }' "$STATS")"
if [[ $RATE == 0 || $RATE == 0.0 ]]; then
	skip "the proxy mutated reply headers" "NBD_FUZZ_RATE is 0"
else
	check "the proxy mutated reply headers ($mutations)" test "$mutations" -gt 0
fi

# runs_bounded: at least one run, none killed by its time limit and the
# loop ended.
runs_bounded()
{
	local n late

	n=$(wc -l <"$NBD_TMP/runs")
	late=$(awk '$3 == 124 || $3 == 137' "$NBD_TMP/runs" | wc -l)
	ktap_info "fio runs: $n ($(awk '$2 == "write"' "$NBD_TMP/runs" | wc -l) write+verify, $(awk '$2 == "read"' "$NBD_TMP/runs" | wc -l) read); failed (exit != 0): $(awk '$3 != 0' "$NBD_TMP/runs" | wc -l); with fio-counted errors: $(awk '$4 != 0' "$NBD_TMP/runs" | wc -l); longest $(awk '$5 > m { m = $5 } END { print m + 0 }' "$NBD_TMP/runs") s; killed at ${FIO_BOUND} s: $late"
	ktap_info "verify failures: $(grep -l 'verify:\|bad magic header\|crc32c' "$NBD_TMP"/fuzz.*.out 2>/dev/null | wc -l) runs"
	[[ $loop_rc -eq 0 && $n -ge 1 && $late -eq 0 ]]
}
check "every fio run ended within ${FIO_BOUND} s" runs_bounded

persist_alive()
{
	[[ -z $persist_died ]] && kill -0 "$persist" 2>/dev/null
}
check "the persist process survived the mutation phase" persist_alive ||
	ktap_info_file "$NBD_TMP/persist.log"
reconnects=$(grep -c ': reconnected$' "$NBD_TMP/persist.log")
ktap_info "reconnects: $reconnects; reconnect failures logged: $(grep -c 'reconnect failed' "$NBD_TMP/persist.log")"
if [[ $mutations -gt 0 ]]; then
	check "the persist process reconnected ($reconnects times)" \
		test "$reconnects" -gt 0
else
	skip "the persist process reconnected" "no mutation"
fi

# fuzz_dmesg: the kernel's messages of the mutation phase.
awk -v m="$mark_fuzz" 'seen { print } index($0, m) { seen = 1 }' \
	"$NBD_TMP/kmsg.log" >"$NBD_TMP/fuzz.dmesg"
SPLAT='WARNING:|BUG:|Oops|KASAN|UBSAN|circular locking|recursive locking|inconsistent lock state|hung task|blocked for more than|general protection|Call Trace'
no_splat()
{
	! grep -Eq "$SPLAT" "$NBD_TMP/fuzz.dmesg" && return 0
	grep -E -m 20 -A 12 "$SPLAT" "$NBD_TMP/fuzz.dmesg" | sed 's/^/# splat: /'
	return 1
}
check "no kernel splat or hung task while mutating" no_splat
check "the driver's requests stayed well-formed (the proxy parsed them all)" \
	test "$(pstat client_passthrough)" -eq 0 ||
	grep 'forwarded blindly' "$NBD_TMP/proxy.log" | head -n 5 | sed 's/^/# proxy: /'

# The driver's messages, counted by kind: numbers replaced by N.
ktap_info "kernel messages of the mutation phase, by kind ($(wc -l <"$NBD_TMP/fuzz.dmesg") lines):"
grep -E 'nbd' "$NBD_TMP/fuzz.dmesg" | grep -v 'nbd-selftest' |
	sed -E 's/^\[ *[0-9.]+\] //; s/0x[0-9a-f]+/X/g; s/\b[0-9a-f]*[0-9][0-9a-f]*\b/N/g' |
	sort | uniq -c | sort -rn | head -n 40 | sed 's/^/#   /'

# ---------------------------------------------------------------------------
# The clean phase, through the same proxy
# ---------------------------------------------------------------------------

# all_live: the proxy carries both connections again and the device
# answers.
all_live()
{
	[[ $(pstat active) -ge 2 ]] && nbd_connected "$DEV" &&
		timeout 30 dd if="$DEV" of=/dev/null bs=4k count=1 iflag=direct \
			status=none 2>/dev/null
}
check "mutation stopped: both connections are live again" \
	wait_for "$DEAD" all_live ||
	ktap_info "proxy: $(pstat active) active connections; persist: $(tail -n 3 "$NBD_TMP/persist.log" | tr '\n' ';')"

dmesg_mark "final"
t_final=$SECONDS
final_ok()
{
	local e1 e2 w r

	fio_verify final.w "$DEV" --rw=write --bs=1M --iodepth=4 \
		--do_verify=0 || return 1
	if [[ $NEGATIVE == backing ]]; then
		ktap_info "negative test: scribbling on the backing file at 1 MiB"
		printf 'scribble' | dd of="$DISK" bs=1 seek=$((1 << 20)) \
			conv=notrunc status=none
	fi
	fio_verify final.v "$DEV" --rw=write --bs=1M --iodepth=4 \
		--verify_only || return 1
	e1=$(fio_errors "$NBD_TMP/final.w.json")
	e2=$(fio_errors "$NBD_TMP/final.v.json")
	w=$(fio_ios "$NBD_TMP/final.w.json" write)
	r=$(fio_ios "$NBD_TMP/final.v.json" read)
	ktap_info "final: errors $e1 + $e2, $w MiB written, $r MiB read back and verified (want $SIZE_MB)"
	[[ $e1 == 0 && $e2 == 0 && $w -eq $SIZE_MB && $r -eq $SIZE_MB ]]
}
check "final sequential write + verify of all ${SIZE_MB} MiB is clean" final_ok
check "the kernel saw no I/O error in the final phase" \
	eval '! dmesg_since_mark | grep -q "I/O error, dev nbd0"' ||
	dmesg_since_mark | grep nbd | tail -n 5 | sed 's/^/# kernel: /'
ktap_info "final phase: $((SECONDS - t_final)) s; payload bits flipped: $(pstat payload_mutations)"
ktap_info "persist log (last lines):"
ktap_info_file "$NBD_TMP/persist.log" 5

# ---------------------------------------------------------------------------
# Teardown and leaks
# ---------------------------------------------------------------------------

disconnect()
{
	quiet "$NBDCTL" disconnect "$DEV" && nbd_wait_disconnected "$DEV" 30
}
disc_ok=0
disconnect && disc_ok=1
persist_gone=0
pid_gone "$persist" 30 && persist_gone=1

# kmemleak_clean: a scan finds no leak that names nbd.
kmemleak_clean()
{
	local n

	# Objects must be a few seconds old to be reported; the second
	# scan confirms the first.
	sleep 6
	timeout 600 sh -c "echo scan >$KMEMLEAK"
	sleep 6
	timeout 600 sh -c "echo scan >$KMEMLEAK"
	cat "$KMEMLEAK" >"$NBD_TMP/kmemleak.txt"
	n=$(grep -c '^unreferenced object' "$NBD_TMP/kmemleak.txt")
	ktap_info "kmemleak: $n unreferenced objects reported in all"
	# One report: from "unreferenced object" to the next one.
	awk '/^unreferenced object/ { if (r ~ /nbd/) print r; r = "" } { r = r $0 "\n" }
	     END { if (r ~ /nbd/) print r }' "$NBD_TMP/kmemleak.txt" \
		>"$NBD_TMP/kmemleak.nbd"
	if [[ -s $NBD_TMP/kmemleak.nbd ]]; then
		ktap_info "kmemleak reports naming nbd:"
		ktap_info_file "$NBD_TMP/kmemleak.nbd" 60
		return 1
	fi
	return 0
}

# The leak check wants the module still loaded for kmemleak's symbols.
if [[ $have_kmemleak == 1 ]]; then
	leak_rc=0
	kmemleak_clean || leak_rc=1
	leak_desc="kmemleak finds no leak in nbd"
fi

check "nbdctl disconnect" test "$disc_ok" -eq 1
check "the persist process ended" test "$persist_gone" -eq 1
check "unload nbd" nbd_unload

if [[ $have_kmemleak == 1 ]]; then
	ktap_result "$leak_rc" "$leak_desc"
else
	kill_pid "$proxy"
	kill_pid "$(cat "$NBD_TMP/nbdkit.pid" 2>/dev/null)"
	slab1=$(unreclaimable_kb)
	kmalloc1=$(kmalloc_kb)
	ktap_info "no kmemleak: SUnreclaim ${slab0} kB before loading nbd, ${slab1} kB after unloading it ($((slab1 - slab0)) kB); kmalloc caches ${kmalloc0:-?} -> ${kmalloc1:-?} kB"
	check "unreclaimable slab grew by at most ${SLAB_KB} kB" \
		test $((slab1 - slab0)) -le "$SLAB_KB"
fi
ktap_info "total: $((SECONDS - t_start)) s"
ktap_finish
