#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# One regression check per class of upstream's 2024-2026 nbd bug reports
# (notes/reference.md, "Upstream reports 2024-2026"), sections a..i:
#  a. refcount on 0: CONNECT racing NBD_CLEAR_SOCK plus the device's close;
#  b. reconnect after a disconnect: covered by nbd_races.sh part 3;
#  c. the CONNECT error path while receivers run (use-after-free from
#     recv_work): CONNECTs that fail after a good socket was taken, and
#     CONNECTs of a busy device, in a loop, while I/O runs;
#  d. partial sends must keep the request's cookie: a server that stops
#     reading now and then (sends go out in parts) and answers batches in
#     reverse order, the writers stopped and continued (interrupted
#     sends), fio verify; the server checks every request;
#  e. lock order under memory pressure (fs_reclaim / send lock / socket
#     lock): a memory hog, buffered and direct I/O, the server killed and
#     restarted, the persist process reconnecting (swap: nbd_swap.sh);
#  f. hung tasks waiting for a reconnect: hung_task_timeout_secs 30, the
#     server gone for 45 s while libaio I/O is pending, then back;
#  g. pending commands whose connection or configuration goes away:
#     CLEAR_SOCK with writes stuck half sent; DISCONNECT and CLEAR_SOCK
#     while requests wait for a reconnect;
#  h. a leaked backend identifier: CONNECT with NBD_ATTR_BACKEND_IDENTIFIER
#     and DISCONNECT, also failing CONNECTs with one, many times; kmemleak
#     when the kernel has it (boot with kmemleak=on), else slab numbers as
#     weak evidence (a skip);
#  i. NBD_CLEAR_SOCK racing buffered (page cache) writes to the device.
# Every section ends with a look at the kernel log since it began: no
# WARNING, BUG, KASAN, lockdep report, refcount_t message, hung task or
# reply the driver could not match.
#
# The stock module (NBD_STOCK=1) runs the same checks; some fail there.
#
# Environment: NBDCTL, the nbdctl binary (the harness builds it);
# NBD_UPSTREAM_ROUNDS (default 20) bounds the loops; NBD_UPSTREAM_DOWN
# (default 45) how long the server stays away in f; NBD_UPSTREAM_SECS
# (default 20) how long e runs; NBD_UPSTREAM_SECTIONS (default acdefghi),
# the sections to run.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
HERE=$(dirname "$(readlink -f "$0")")
HELPER="python3 $HERE/nbd_upstream.py"
IOCTL="python3 $HERE/nbd_ioctl.py"
ROUNDS=${NBD_UPSTREAM_ROUNDS:-20}
DOWN=${NBD_UPSTREAM_DOWN:-45}
SECS=${NBD_UPSTREAM_SECS:-20}

nbd_test_init
SECTIONS=${NBD_UPSTREAM_SECTIONS:-acdefghi}
declare -A CHECKS=([a]=4 [c]=5 [d]=5 [e]=4 [f]=5 [g]=5 [h]=3 [i]=4)
want()	# want X: section X is to run
{
	[[ $SECTIONS == *$1* ]]
}
plan=2
for x in "${!CHECKS[@]}"; do
	want "$x" && plan=$((plan + CHECKS[$x]))
done
ktap_plan "$plan"
ktap_info "module: $(nbd_module_desc)"
require_cmds python3 fio perl dd
require_nbdctl
check "load nbd" nbd_load || ktap_bail "cannot load nbd"

DISK=$NBD_TMP/disk.img
truncate -s 256M "$DISK"
SOCK=$(nbd_sock srv)
URI="nbd+unix:///?socket=$SOCK"

# srv_start [SERVER OPTIONS...]: (re)start the checking server on $DISK.
srv_start()
{
	[[ -n ${SRV_PID:-} ]] && kill_pid "$SRV_PID" 2>/dev/null
	server_start srv $HELPER server "$SOCK" "$DISK" "$@" || return 1
	SRV_PID=$(pgrep -n -f "nbd_upstream.py server $SOCK")
	[[ -n $SRV_PID ]] || return 1
	# No "Killed" job notices when a section kills it.
	disown "$SRV_PID" 2>/dev/null
	true
}
srv_kill()	# the server dies (SIGKILL), its socket path with it
{
	kill -KILL "$SRV_PID" 2>/dev/null
	pid_gone "$SRV_PID" 10
	wait "$SRV_PID" 2>/dev/null
	rm -f "$SOCK"
	SRV_PID=
}
srv_bad()	# lines the server logged as protocol violations
{
	grep -h '^[0-9:]* BAD' "$NBD_TMP"/srv.log* 2>/dev/null
}
# Each restart of the server starts a new log: keep the old ones.
srv_rotate()
{
	[[ -s $NBD_TMP/srv.log ]] && mv "$NBD_TMP/srv.log" "$NBD_TMP/srv.log.$RANDOM$SECONDS"
	true
}
srv_start || ktap_bail "cannot start the server"

attach()	# attach [NBDCTL CONNECT OPTIONS...]
{
	timeout 60 "$NBDCTL" connect "$URI" "$DEV" -b 4096 "$@" \
		>"$NBD_TMP/attach.out" 2>&1 ||
		{ ktap_info_file "$NBD_TMP/attach.out"; return 1; }
	nbd_wait_connected "$DEV" 20
}
detach()
{
	timeout 60 "$NBDCTL" disconnect "$DEV" >/dev/null 2>&1
	nbd_wait_disconnected "$DEV" 20
}
PERSIST=
attach_persist()	# attach_persist DEAD_TIMEOUT
{
	"$NBDCTL" connect "$URI" "$DEV" -b 4096 --persist --foreground \
		--dead-timeout "$1" --handshake-timeout 20 \
		>"$NBD_TMP/persist.out" 2>>"$NBD_TMP/persist.log" &
	PERSIST=$!
	track_pid "$PERSIST"
	nbd_wait_connected "$DEV" 60 && nbd_quiesce "$DEV"
}
detach_persist()
{
	detach
	pid_gone "$PERSIST" 20 || kill_pid "$PERSIST"
	PERSIST=
}
# io_works: a MiB written through the device reads back.
head -c $((1 << 20)) /dev/urandom >"$NBD_TMP/mib"
io_works()
{
	timeout 60 dd if="$NBD_TMP/mib" of="$DEV" bs=64k seek=200 oflag=direct \
		status=none &&
		timeout 60 dd if="$DEV" of="$NBD_TMP/mib.back" bs=64k skip=200 \
			count=16 iflag=direct status=none &&
		cmp -s "$NBD_TMP/mib" "$NBD_TMP/mib.back"
}
# descendants PID: every process below PID.
descendants()
{
	local c

	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		echo "$c"
		descendants "$c"
	done
}
# A request the driver could not match, in our words or upstream's.
COOKIE_RE='unknown cookie|not in flight|stale generation|sent on another connection|Unexpected reply|Double reply|Suspicious reply|Unexpected request'
SPLAT_RE="WARNING:|BUG:|Oops|KASAN|UBSAN|refcount_t|possible circular locking|possible recursive locking|inconsistent lock state|lockdep|hung task|blocked for more than|general protection|Call Trace|$COOKIE_RE"
# section X TITLE: a kernel log mark and a time stamp.
section()
{
	SECTION=$1
	SECTION_T0=$SECONDS
	ktap_info "--- ($1) $2"
	dmesg_mark "section $1"
}
klog()	# klog TEXT: a step, in the kernel log (to line up with its messages)
{
	echo "nbd-selftest: $NBD_TEST_NAME ($SECTION): $*" >/dev/kmsg
}
# no_splat: the kernel logged nothing alarming since the section began.
no_splat()
{
	local hits

	hits=$(dmesg_since_mark | grep -E -- "$SPLAT_RE")
	ktap_info "($SECTION) took $((SECONDS - SECTION_T0)) s"
	[[ -z $hits ]] && return 0
	echo "# kernel messages since ($SECTION) began:"
	dmesg_since_mark | grep -E -B2 -A12 -- "$SPLAT_RE" | head -n 60 | sed 's/^/#   /'
	return 1
}
cont_all()	# SIGCONT to every process in $NBD_TMP/stopped
{
	[[ -s $NBD_TMP/stopped ]] && kill -CONT $(cat "$NBD_TMP/stopped") 2>/dev/null
	true
}
at_exit "cont_all"

if want a; then
# --- a. CONNECT racing CLEAR_SOCK plus close ----------------------------------
section a "CONNECT racing NBD_CLEAR_SOCK and the device's close ($ROUNDS rounds)"
clear_close_race()
{
	timeout 300 $HELPER race-clear 0 "$SOCK" "$ROUNDS" >"$NBD_TMP/a.out" 2>&1
	local rc=$?
	ktap_info_file "$NBD_TMP/a.out" 5
	[[ $rc -eq 0 ]]
}
check "(a) $ROUNDS CONNECTs racing CLEAR_SOCK + close: nothing hangs" clear_close_race
timeout 60 "$NBDCTL" disconnect "$DEV" >/dev/null 2>&1
check "(a) the device ends disconnected" nbd_wait_disconnected "$DEV" 20
check "(a) it attaches again and I/O works" eval 'attach && io_works'
detach
check "(a) no kernel splat" no_splat

fi

# --- b. RECONFIGURE racing DISCONNECT -------------------------------------------
ktap_info "--- (b) no reconnect after a disconnect (RECONFIGURE racing DISCONNECT):"
ktap_info "    covered by nbd_races.sh part 3 ('rounds of RECONFIGURE racing DISCONNECT')"

if want c; then
# --- c. the CONNECT error path while receivers run ------------------------------
section c "failing CONNECTs next to live receivers, I/O pending ($ROUNDS rounds)"
ktap_info "(the upstream use-after-free needs a failure after the receivers started,"
ktap_info " an allocation failure there: unreachable without fault injection, which"
ktap_info " these kernels lack; this loops the error paths that are reachable)"
check "(c) attach nbd0" attach
# fio verify runs on nbd0, again and again, until the loop is over.
c_fio_loop()
{
	local n=0

	while [[ ! -e $NBD_TMP/stop-readers ]]; do
		n=$((n + 1))
		timeout 120 fio --name=c --filename="$DEV" --ioengine=libaio \
			--direct=1 --rw=randwrite --bs=4k --iodepth=8 --size=4M \
			--offset=$((32 + n % 8 * 4))M \
			--verify=crc32c --verify_fatal=1 --do_verify=1 \
			--output-format=json --output="$NBD_TMP/c.$n.json" \
			>"$NBD_TMP/c.$n.out" 2>&1
		echo "$n $? $(fio_errors "$NBD_TMP/c.$n.json")" >>"$NBD_TMP/c.runs"
	done
}
: >"$NBD_TMP/c.runs"
rm -f "$NBD_TMP/stop-readers"
c_fio_loop &
CFIO=$!
track_pid "$CFIO"
# Readers of nbd1 while CONNECTs of it fail.
reader_loop()
{
	while [[ ! -e $NBD_TMP/stop-readers ]]; do
		timeout 30 dd if=/dev/nbd1 of=/dev/null bs=4k count=4 \
			iflag=direct status=none 2>/dev/null
		sleep 0.05
	done
}
fail_loop()
{
	timeout 300 $HELPER fail-loop "$SOCK" "$ROUNDS" >"$NBD_TMP/c-loop.out" 2>&1
	local rc=$?
	ktap_info_file "$NBD_TMP/c-loop.out" 5
	[[ $rc -eq 0 ]]
}
[[ -b /dev/nbd1 ]] || ktap_info "no /dev/nbd1"
reader_loop &
READERS=$!
track_pid "$READERS"
check "(c) failing CONNECTs: EBUSY on the busy nbd0, refused on nbd1" fail_loop
touch "$NBD_TMP/stop-readers"
pid_gone "$READERS" 60
c_fio_clean()
{
	local runs bad

	pid_gone "$CFIO" 150 || { echo "# fio still running"; return 1; }
	runs=$(wc -l <"$NBD_TMP/c.runs")
	bad=$(awk '$2 != 0 || $3 != 0' "$NBD_TMP/c.runs")
	ktap_info "$runs fio verify runs beside them; failed: ${bad:-none}"
	[[ $runs -gt 0 && -z $bad ]]
}
check "(c) the fio verify on nbd0 beside them is clean" c_fio_clean
c_nothing_left()
{
	local conns

	nbd_disconnected /dev/nbd1 || { echo "# nbd1 is configured"; return 1; }
	# Only nbd0's connection may be left at the server: a refused
	# CONNECT must drop its reference to the good socket.
	wait_for 10 test "$(nbd_server_conns "$SOCK")" -le 1
	conns=$(nbd_server_conns "$SOCK")
	ktap_info "connections at the server: $conns (nbd0's is 1)"
	[[ $conns -eq 1 ]]
}
check "(c) nothing left behind: nbd1 free, no socket kept" c_nothing_left
detach
check "(c) no kernel splat" no_splat

fi

if want d; then
# --- d. partial sends keep their cookie -----------------------------------------
section d "partial sends: a server that stops reading, replies reordered"
srv_rotate
check "(d) restart the server: pauses up to 0.5 s, batches of 8 answered in reverse" \
	srv_start --pause 0.1:0.5 --batch 8
check "(d) attach (30 s request timeout: the pauses are no timeouts)" attach --timeout 30
: >"$NBD_TMP/stopped"
stop_cont_loop()	# stop_cont_loop PID: SIGSTOP/SIGCONT PID's processes
{
	local p kids

	while kill -0 "$1" 2>/dev/null; do
		kids=$(descendants "$1" | tr '\n' ' ')
		[[ -n $kids ]] || { sleep 0.2; continue; }
		echo "$kids" >"$NBD_TMP/stopped"
		# shellcheck disable=SC2086
		kill -STOP $kids 2>/dev/null
		sleep 0.0$((RANDOM % 5 + 1))
		# shellcheck disable=SC2086
		kill -CONT $kids 2>/dev/null
		sleep 0.$((RANDOM % 3 + 1))
	done
}
d_fio()
{
	local spid rc

	timeout 300 fio --name=d --filename="$DEV" --ioengine=libaio --direct=1 \
		--rw=randwrite --bsrange=4k-1m --iodepth=8 --size=64M \
		--verify=crc32c --verify_fatal=1 --do_verify=1 \
		--output-format=json --output="$NBD_TMP/d.json" \
		>"$NBD_TMP/d.out" 2>&1 &
	DFIO=$!
	stop_cont_loop "$DFIO" &
	spid=$!
	wait "$DFIO"
	rc=$?
	pid_gone "$spid" 10
	cont_all
	ktap_info "fio: exit $rc, errors=$(fio_errors "$NBD_TMP/d.json") writes=$(fio_ios "$NBD_TMP/d.json" write) reads=$(fio_ios "$NBD_TMP/d.json" read)"
	[[ $rc -eq 0 && $(fio_errors "$NBD_TMP/d.json") == 0 &&
		$(fio_ios "$NBD_TMP/d.json" read) -gt 0 ]] ||
		{ ktap_info_file "$NBD_TMP/d.out"; return 1; }
}
check "(d) fio verify through stalled, interrupted sends is clean" d_fio
detach
d_server_ok()
{
	local stats

	kill -USR1 "$SRV_PID"
	sleep 0.5
	stats=$(grep ' stats ' "$NBD_TMP/srv.log" | tail -n 1)
	ktap_info "server: ${stats#* stats }"
	[[ -z $(srv_bad) ]] || { srv_bad | head -n 5 | sed 's/^/# /'; return 1; }
	[[ $stats =~ pauses=([0-9]+) && ${BASH_REMATCH[1]} -gt 0 &&
		$stats =~ reordered=([0-9]+) && ${BASH_REMATCH[1]} -gt 0 ]]
}
check "(d) the server got only well-formed requests, cookies unique in flight (and paused, reordered)" \
	d_server_ok
check "(d) no kernel splat, no reply the driver could not match" no_splat

fi

if want e; then
# --- e. lock order under memory pressure --------------------------------------------
section e "memory pressure + I/O + connection kills"
if [[ -e /proc/lockdep ]]; then
	ktap_info "lockdep is on: its reports would show here"
else
	ktap_info "this kernel has no lockdep: only warnings and oopses can show"
fi
srv_rotate
srv_start || ktap_bail "cannot restart the server"
check "(e) attach with --persist (dead-connection timeout 60 s)" attach_persist 60
e_run()
{
	local hog leave avail fio1 fio2 rc1 rc2 kills=0 end

	avail=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
	leave=160
	ktap_info "MemAvailable before: $avail MiB; the hog leaves about $leave"
	$HELPER hog "$leave" $((SECS + 20)) >"$NBD_TMP/hog.out" 2>&1 &
	hog=$!
	track_pid "$hog"
	sleep 3
	timeout 300 fio --name=e1 --filename="$DEV" --ioengine=psync --direct=0 \
		--rw=randwrite --bs=16k --size=32M --offset=0 \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --end_fsync=1 \
		--output-format=json --output="$NBD_TMP/e1.json" \
		>"$NBD_TMP/e1.out" 2>&1 &
	fio1=$!
	timeout 300 fio --name=e2 --filename="$DEV" --ioengine=libaio --direct=1 \
		--rw=randwrite --bs=64k --iodepth=8 --size=64M --offset=64M \
		--verify=crc32c --verify_fatal=1 --do_verify=1 \
		--output-format=json --output="$NBD_TMP/e2.json" \
		>"$NBD_TMP/e2.out" 2>&1 &
	fio2=$!
	end=$((SECONDS + SECS))
	sleep 2
	while [[ $SECONDS -lt $end ]] &&
		{ kill -0 "$fio1" || kill -0 "$fio2"; } 2>/dev/null; do
		srv_kill
		srv_rotate
		srv_start || { echo "# the server did not restart"; break; }
		kills=$((kills + 1))
		sleep 3
	done
	wait "$fio1"
	rc1=$?
	wait "$fio2"
	rc2=$?
	kill_pid "$hog"
	ktap_info "$kills server kills; hog: $(cat "$NBD_TMP/hog.out")"
	ktap_info "buffered fio: exit $rc1 errors=$(fio_errors "$NBD_TMP/e1.json"); direct fio: exit $rc2 errors=$(fio_errors "$NBD_TMP/e2.json")"
	[[ $rc1 -eq 0 && $rc2 -eq 0 && $(fio_errors "$NBD_TMP/e1.json") == 0 &&
		$(fio_errors "$NBD_TMP/e2.json") == 0 && $kills -gt 0 ]] || {
		ktap_info_file "$NBD_TMP/e1.out" 5
		ktap_info_file "$NBD_TMP/e2.out" 5
		ktap_info_file "$NBD_TMP/persist.log" 5
		return 1
	}
}
check "(e) buffered + direct fio verify under memory pressure and server kills: clean" e_run
check "(e) detach" detach_persist
check "(e) no kernel splat (lock order, warnings)" no_splat

fi

if want f; then
# --- f. hung tasks waiting for a reconnect -------------------------------------------
section f "the server gone for $DOWN s with libaio I/O pending"
HT=/proc/sys/kernel/hung_task_timeout_secs
HTI=/proc/sys/kernel/hung_task_check_interval_secs
if [[ -w $HT ]]; then
	at_exit "echo $(cat $HT) >$HT"
	echo 30 >"$HT"
	if [[ -w $HTI ]]; then
		at_exit "echo $(cat $HTI) >$HTI"
		echo 5 >"$HTI"
	fi
	ktap_info "hung_task_timeout_secs=30, check interval $(cat "$HTI" 2>/dev/null || echo '?') s"
else
	ktap_info "no hung task detector: only the I/O's completion is checked"
fi
srv_rotate
srv_start || ktap_bail "cannot restart the server"
check "(f) attach with --persist, dead-connection timeout 120 s" attach_persist 120
f_run()
{
	local fpid mid rc t0

	timeout 400 fio --name=f --filename="$DEV" --ioengine=libaio --direct=1 \
		--rw=randwrite --bs=4k --iodepth=4 --size=4M --offset=128M \
		--rate_iops=100 --verify=crc32c --verify_fatal=1 --do_verify=1 \
		--output-format=json --output="$NBD_TMP/f.json" \
		>"$NBD_TMP/f.out" 2>&1 &
	fpid=$!
	wait_for 20 nbd_writing "$DEV"
	sleep 2
	t0=$SECONDS
	srv_kill
	klog "server killed"
	sleep $((DOWN / 2))
	mid=$(cat /sys/block/nbd0/inflight 2>/dev/null | tr -s ' ')
	kill -0 "$fpid" 2>/dev/null || { echo "# fio ended while the server was away"; }
	ktap_info "after $((SECONDS - t0)) s without a server: inflight (r w)$mid; fio $(kill -0 "$fpid" 2>/dev/null && echo waiting || echo gone)"
	sleep $((DOWN - DOWN / 2))
	srv_start || { echo "# the server did not come back"; return 1; }
	ktap_info "the server is back after $((SECONDS - t0)) s"
	pid_gone "$fpid" 200 || { echo "# fio still waits $((SECONDS - t0)) s after the server left"; return 1; }
	wait "$fpid"
	rc=$?
	ktap_info "fio: exit $rc, errors=$(fio_errors "$NBD_TMP/f.json") writes=$(fio_ios "$NBD_TMP/f.json" write) reads=$(fio_ios "$NBD_TMP/f.json" read), $((SECONDS - t0)) s after the server left"
	[[ $rc -eq 0 && $(fio_errors "$NBD_TMP/f.json") == 0 ]] ||
		{ ktap_info_file "$NBD_TMP/f.out" 5; ktap_info_file "$NBD_TMP/persist.log" 5; return 1; }
}
check "(f) the I/O pending over $DOWN s without a server completes, verified" f_run
no_hung_task()
{
	! dmesg_since_mark | grep -E -A8 'blocked for more than|hung_task' | sed 's/^/# /' | grep .
}
check "(f) no hung task report" no_hung_task
check "(f) detach" detach_persist
check "(f) no kernel splat" no_splat

fi

if want g; then
# --- g. pending commands whose connection/config goes away ----------------------------
section g "requests pending while their connection or configuration goes away"
ended_by()	# ended_by PID DEADLINE: PID is gone by $SECONDS DEADLINE
{
	local left=$(($2 - SECONDS))

	((left < 0)) && left=0
	wait_for "$left" _pid_gone "$1"
}
g_stuck_clear()
{
	local fpid t0

	attach --timeout 60 || return 1
	timeout 120 fio --name=g1 --filename="$DEV" --ioengine=libaio --direct=1 \
		--rw=write --bs=1m --iodepth=8 --size=64M --offset=0 \
		--output-format=json --output="$NBD_TMP/g1.json" \
		>"$NBD_TMP/g1.out" 2>&1 &
	fpid=$!
	wait_for 20 nbd_writing "$DEV"
	kill -STOP "$SRV_PID"
	echo "$SRV_PID" >"$NBD_TMP/stopped"
	klog "server stopped"
	sleep 2	# the socket buffers fill; writes stay half sent
	for p in $(descendants "$fpid"); do
		kill -STOP "$p"; sleep 0.1; kill -CONT "$p"
	done
	ktap_info "server stopped; inflight (r w) $(cat /sys/block/nbd0/inflight | tr -s ' ')"
	t0=$SECONDS
	klog "CLEAR_SOCK"
	timeout 30 $IOCTL "$DEV" clear-sock 1 >"$NBD_TMP/g.clear" 2>&1
	local irc=$? gone
	klog "CLEAR_SOCK returned $irc after $((SECONDS - t0)) s"
	ktap_info "CLEAR_SOCK: exit $irc after $((SECONDS - t0)) s ($(cat "$NBD_TMP/g.clear"))"
	ended_by "$fpid" $((t0 + 30))
	gone=$?
	ktap_info "fio $( ((gone == 0)) && echo "ended" || echo "still running") $((SECONDS - t0)) s after CLEAR_SOCK"
	[[ $irc -eq 0 ]] || gone=1
	kill -CONT "$SRV_PID"
	: >"$NBD_TMP/stopped"
	wait "$fpid" 2>/dev/null
	timeout 30 "$NBDCTL" disconnect "$DEV" >/dev/null 2>&1
	nbd_wait_disconnected "$DEV" 20 || { echo "# still connected"; return 1; }
	[[ $gone -eq 0 ]]
}
check "(g) CLEAR_SOCK with writes stuck half sent returns, they end within 30 s, the device goes down" g_stuck_clear
# g_waiting HOW: requests wait for a reconnect (the server is gone, no
# persist process); HOW (disconnect or clear-sock) takes the config away.
g_waiting()
{
	local how=$1 dpid wpid t0 gone irc

	srv_rotate
	srv_start || return 1
	attach --dead-timeout 60 || return 1
	nbd_quiesce "$DEV"
	srv_kill
	timeout 120 dd if="$DEV" of=/dev/null bs=4k count=8 skip=1000 \
		iflag=direct status=none 2>/dev/null &
	dpid=$!
	timeout 120 dd if="$NBD_TMP/mib" of="$DEV" bs=64k seek=300 \
		oflag=direct status=none 2>/dev/null &
	wpid=$!
	sleep 3
	ktap_info "$how: requests waiting, inflight (r w) $(cat /sys/block/nbd0/inflight | tr -s ' ')"
	t0=$SECONDS
	klog "$how with requests waiting"
	case $how in
	disconnect) timeout 30 "$NBDCTL" disconnect "$DEV" >"$NBD_TMP/g.how" 2>&1 ;;
	clear-sock) timeout 30 $IOCTL "$DEV" clear-sock 1 >"$NBD_TMP/g.how" 2>&1 ;;
	esac
	irc=$?
	ktap_info "$how: exit $irc after $((SECONDS - t0)) s $(tr '\n' ' ' <"$NBD_TMP/g.how")"
	ended_by "$dpid" $((t0 + 30)) && ended_by "$wpid" $((t0 + 30))
	gone=$?
	ktap_info "$how: the waiting I/O $( ((gone == 0)) && echo "ended" || echo "still waits") $((SECONDS - t0)) s after it"
	wait_for 100 _pid_gone "$dpid"
	wait_for 100 _pid_gone "$wpid"
	[[ $irc -eq 0 ]] || gone=1
	timeout 30 "$NBDCTL" disconnect "$DEV" >/dev/null 2>&1
	nbd_wait_disconnected "$DEV" 40 || { echo "# still connected"; return 1; }
	[[ $gone -eq 0 ]]
}
check "(g) DISCONNECT while requests wait for a reconnect: it returns, they end within 30 s" g_waiting disconnect
check "(g) CLEAR_SOCK while requests wait for a reconnect: it returns, they end within 30 s" g_waiting clear-sock
srv_rotate
srv_start || ktap_bail "cannot restart the server"
check "(g) the device attaches again and I/O works" eval 'attach && io_works'
detach
check "(g) no kernel splat" no_splat

fi

if want h; then
# --- h. a leaked backend identifier -----------------------------------------------------
section h "CONNECT with a backend identifier and DISCONNECT, $ROUNDS rounds"
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug 2>/dev/null
KMEMLEAK=/sys/kernel/debug/kmemleak
have_kmemleak=0
if [[ -e $KMEMLEAK ]] && echo clear >"$KMEMLEAK" 2>/dev/null; then
	have_kmemleak=1
fi
slab32()	# active kmalloc-32 and kmalloc-64 objects
{
	awk '$1 == "kmalloc-32" || $1 == "kmalloc-64" { n += $2 } END { print n + 0 }' \
		/proc/slabinfo 2>/dev/null
}
H_SLAB0=$(slab32)
h_loop()
{
	timeout 300 $HELPER backend-loop 0 "$SOCK" $ROUNDS nbd-upstream-leak \
		>"$NBD_TMP/h.out" 2>&1
	local rc=$?
	ktap_info_file "$NBD_TMP/h.out" 6
	[[ $rc -eq 0 ]]
}
check "(h) each CONNECT shows its backend, EBUSY when busy, refused with a bad socket" h_loop
nbd_wait_disconnected "$DEV" 20
h_leaks()
{
	local n

	# Objects younger than a few seconds are not reported yet.
	sleep 6
	echo scan >"$KMEMLEAK"
	sleep 1
	echo scan >"$KMEMLEAK"
	cat "$KMEMLEAK" >"$NBD_TMP/kmemleak.txt"
	n=$(grep -c '^unreferenced object' "$NBD_TMP/kmemleak.txt")
	ktap_info "kmemleak: $n unreferenced objects in all"
	# Ours: a backtrace through nbd, or our backend string in the dump.
	perl -ne 'BEGIN { $/ = "unreferenced object" }
		print "$/$_" if /\[nbd\]|nbd_|nbd-upst/' \
		"$NBD_TMP/kmemleak.txt" >"$NBD_TMP/kmemleak.nbd"
	if [[ -s $NBD_TMP/kmemleak.nbd ]]; then
		head -n 30 "$NBD_TMP/kmemleak.nbd" | sed 's/^/#   /'
		return 1
	fi
}
if [[ $have_kmemleak -eq 1 ]]; then
	check "(h) kmemleak finds no object of nbd's" h_leaks
else
	H_SLAB1=$(slab32)
	skip "(h) kmemleak finds no object of nbd's" \
		"no kmemleak (boot with kmemleak=on); kmalloc-32+64 active objects $H_SLAB0 -> $H_SLAB1 over $ROUNDS rounds (weak evidence)"
fi
check "(h) no kernel splat" no_splat

fi

if want i; then
# --- i. CLEAR_SOCK racing buffered writes ------------------------------------------------
section i "NBD_CLEAR_SOCK racing buffered writes ($ROUNDS rounds)"
head -c $((1 << 20)) /dev/urandom >"$NBD_TMP/pat"
writer_loop()	# buffered, odd-sized (read-modify-write of blocks) writes
{
	while [[ ! -e $NBD_TMP/stop-writers ]]; do
		timeout 30 dd if="$NBD_TMP/pat" of="$DEV" bs=1536 count=200 \
			seek=$((RANDOM % 4000)) conv=notrunc,fsync status=none \
			2>/dev/null
		timeout 30 dd if="$NBD_TMP/pat" of="$DEV" bs=64k count=8 \
			seek=$((RANDOM % 200)) conv=notrunc status=none 2>/dev/null
	done
}
i_race()
{
	local w1 w2 rc

	rm -f "$NBD_TMP/stop-writers"
	writer_loop &
	w1=$!
	writer_loop &
	w2=$!
	track_pid "$w1"
	track_pid "$w2"
	timeout 300 $HELPER clear-loop 0 "$SOCK" "$ROUNDS" >"$NBD_TMP/i.out" 2>&1
	rc=$?
	touch "$NBD_TMP/stop-writers"
	ktap_info_file "$NBD_TMP/i.out" 5
	pid_gone "$w1" 90 && pid_gone "$w2" 90 ||
		{ echo "# the writers hang"; return 1; }
	[[ $rc -eq 0 ]]
}
check "(i) $ROUNDS CLEAR_SOCK racing buffered writers: nothing hangs" i_race
timeout 30 "$NBDCTL" disconnect "$DEV" >/dev/null 2>&1
check "(i) the device ends disconnected" nbd_wait_disconnected "$DEV" 20
check "(i) it attaches again and I/O works" eval 'attach && io_works'
detach
check "(i) no kernel splat (mark_buffer_dirty warning)" no_splat

fi

check "nbd unloads" nbd_unload
ktap_finish
