#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Request timeouts and dead connections:
#  1. two connections and a dead-connection timeout, one connection stops
#     answering: its requests time out, the connection is shut down, the
#     requests are resent on the other one and what four writers wrote
#     reads back intact;
#  1b. the same without a dead-connection timeout: a write that timed out
#     is not resent (the server may still execute it, and does: a resent
#     copy could then be overwritten by it) but fails with ETIMEDOUT; a
#     read is resent;
#  2. one connection that stops answering and no dead-connection timeout:
#     the read fails with EIO soon after the timeout and the device is
#     torn down (disconnected, the module unloads);
#  3. timeout 0: a slow request is logged as stuck but keeps waiting and
#     completes;
#  4. the server stopped (SIGSTOP), so that it stops reading with a write
#     half-sent and the socket buffers full, for longer than the request
#     timeout but less than the dead-connection timeout, with nbdctl
#     --persist: the connection is replaced after SIGCONT, the half-sent
#     request is sent again on the new one, and fio's verify passes.
#
# Environment: NBDCTL, the nbdctl binary (the harness builds it).

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
SIZE=$((64 << 20))
T=${NBD_REQ_TIMEOUT:-3}		# request timeout (s); more on slow kernels
STALL=$((T * 10))		# a stalled request sleeps this long

nbd_test_init
ktap_plan 27
ktap_info "module: $(nbd_module_desc)"
require_cmds python3 qemu-nbd fio perl dd taskset cmp

require_nbdctl
check "load nbd" nbd_load || ktap_bail "cannot load nbd"

# fio_verify NAME MB [KB [DEPTH]]: random writes of KB KiB (default 4) at
# queue depth DEPTH (8) over MB MiB with crc32c verify; passes with exit
# 0, no error and every block read back.
fio_verify()
{
	local name=$1 mb=$2 kb=${3:-4} depth=${4:-8} errs w r want

	want=$((mb * 1024 / kb))
	timeout 300 fio --name="$name" --filename="$DEV" --ioengine=libaio \
		--direct=1 --rw=randwrite --bs=${kb}k --iodepth=$depth --size=${mb}M \
		--verify=crc32c --verify_fatal=1 --do_verify=1 \
		--output-format=json --output="$NBD_TMP/$name.json" \
		>"$NBD_TMP/$name.out" 2>&1 ||
		{ ktap_info_file "$NBD_TMP/$name.out"; return 1; }
	errs=$(fio_errors "$NBD_TMP/$name.json")
	w=$(fio_ios "$NBD_TMP/$name.json" write)
	r=$(fio_ios "$NBD_TMP/$name.json" read)
	ktap_info "fio $name: errors=$errs writes=$w reads=$r (want $want each)"
	[[ $errs == 0 && $w -eq $want && $r -eq $want ]]
}

kernel_says()	# kernel_says PATTERN: a kernel line since the mark matches
{
	dmesg_since_mark | grep -Eq -- "$1"
}

# --- a server that stalls on demand -------------------------------------------
# slow_server NAME: nbd_stall_server.py on a file; its connections are
# c0, c1, ... in the order they came.  A request sleeps SECS first while
# the file $NBD_TMP/NAME.stall-cN (that connection) or NAME.stall-all
# holds SECS.
slow_server()
{
	local name=$1

	truncate -s $SIZE "$NBD_TMP/$name.img"
	server_start "$name" python3 "$(dirname "$0")/nbd_stall_server.py" \
		"$(nbd_sock "$name")" "$NBD_TMP/$name.img" "$NBD_TMP/$name.stall"
}
stall()		# stall NAME WHO SECS: requests of WHO (cN or all) sleep SECS
{
	echo "$3" >"$NBD_TMP/$1.stall-$2"
}
unstall()	# unstall NAME WHO
{
	rm -f "$NBD_TMP/$1.stall-$2"
}

# --- 1. one of two connections stalls ---------------------------------------
slow_server two || ktap_bail "cannot start the scripted server"
dmesg_mark stall
check "attach with 2 connections, a $T s timeout, a 60 s dead-connection timeout" \
	"$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock two)" "$DEV" -C 2 \
	--timeout $T --dead-timeout 60
nbd_quiesce "$DEV"
stall two c0 $STALL
# Four writers on disjoint regions (dd, not fio: fio 3.33's helper thread
# gives up on an EINTR under the debug kernel's load), then read back.
stalled_writes()
{
	local i p pids=() bad=0

	# 32 blocks of 4 KiB each, one request per block.
	head -c $((512 << 10)) /dev/urandom >"$NBD_TMP/stall.in"
	for i in 0 1 2 3; do
		dd if="$NBD_TMP/stall.in" of="$DEV" bs=4k skip=$((i * 32)) \
			seek=$((i * 32)) count=32 oflag=direct conv=notrunc \
			status=none &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || bad=1
	done
	[[ $bad -eq 0 ]] || { echo "# a writer failed"; return 1; }
	dd if="$DEV" of="$NBD_TMP/stall.out" bs=4k count=128 iflag=direct \
		status=none && cmp "$NBD_TMP/stall.in" "$NBD_TMP/stall.out"
}
check "512 KiB written by 4 writers while connection 0 stalls read back intact" \
	stalled_writes || ktap_info_file "$NBD_TMP/two.log"
unstall two c0
check "the kernel timed a request out and closed that connection" \
	kernel_says 'connection 0: .* timed out, closing the connection'
check "the device is still connected (the other connection lives)" \
	nbd_connected "$DEV"
check "detach" "$NBDCTL" disconnect "$DEV"
check "detached" nbd_wait_disconnected "$DEV" 10

# --- 1b. no dead-connection timeout: a timed-out write is not resent ------------
# cpu_of_hwq N: a CPU whose requests go to hardware queue N (with one
# queue per connection, to connection N first).
cpu_of_hwq()
{
	local l

	l=$(cat "/sys/block/${DEV##*/}/mq/$1/cpu_list" 2>/dev/null) || return 1
	l=${l%%,*}
	echo "${l%%-*}"
}
slow_server twob || ktap_bail "cannot start the scripted server"
dmesg_mark nodead
check "attach with 2 connections, a $T s timeout, no dead-connection timeout" \
	"$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock twob)" "$DEV" -C 2 \
	--timeout $T
nbd_quiesce "$DEV"
CPU0=$(cpu_of_hwq 0)
ZSTALL=$((T * 2 + 5))	# past the timeout; the old copy lands after it
stall twob c0 $ZSTALL
head -c 4096 /dev/urandom >"$NBD_TMP/zombie.in"
write_times_out()
{
	local rc

	timeout $((ZSTALL * 4)) taskset -c "$CPU0" dd if="$NBD_TMP/zombie.in" \
		of="$DEV" bs=4k seek=300 count=1 oflag=direct conv=notrunc \
		status=none 2>"$NBD_TMP/zombie.err"
	rc=$?
	ktap_info "write on connection 0: exit $rc: $(head -n 1 "$NBD_TMP/zombie.err")"
	[[ $rc -ne 0 && $rc -ne 124 ]] &&
		grep -q 'Connection timed out' "$NBD_TMP/zombie.err"
}
check "a write on the stalled connection fails with ETIMEDOUT" write_times_out
check "the kernel said it was not resent" \
	kernel_says 'write of 4096 bytes at 1228800 not resent'
check "a read from the same CPU is served by the other connection" \
	timeout 60 taskset -c "$CPU0" dd if="$DEV" of=/dev/null bs=4k count=1 \
	skip=400 iflag=direct status=none
zombie_landed()
{
	dd if="$NBD_TMP/twob.img" of="$NBD_TMP/zombie.out" bs=4k skip=300 \
		count=1 status=none && cmp -s "$NBD_TMP/zombie.in" "$NBD_TMP/zombie.out"
}
check "the server executed the timed-out write after its stall anyway" \
	wait_for $((ZSTALL + 20)) zombie_landed
unstall twob c0
check "detach" "$NBDCTL" disconnect "$DEV"

# --- 2. the only connection stalls, no dead-connection timeout ------------------
slow_server one || ktap_bail "cannot start the scripted server"
dmesg_mark single
check "attach one connection with a $T s timeout" \
	"$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock one)" "$DEV" --timeout $T
nbd_quiesce "$DEV"
stall one all $STALL
read_fails()
{
	local t0=$SECONDS rc

	timeout $((STALL * 2)) dd if="$DEV" of=/dev/null bs=4k count=1 skip=100 \
		iflag=direct status=none 2>"$NBD_TMP/dd.err"
	rc=$?
	ktap_info "read: exit $rc after $((SECONDS - t0)) s: $(head -1 "$NBD_TMP/dd.err")"
	[[ $rc -ne 0 && $rc -ne 124 ]] && grep -q 'Input/output error' "$NBD_TMP/dd.err" &&
		[[ $((SECONDS - t0)) -lt $((T + 17)) ]]
}
check "a read fails with EIO within $((T + 17)) s" read_fails
check "the device is torn down by itself" nbd_wait_disconnected "$DEV" 15
unstall one all
check "the kernel said why" kernel_says 'no live connection.*disconnecting'
dmesg_since_mark | grep nbd0 | sed 's/^/# kernel: /'
check "nbd unloads" nbd_unload
check "load nbd again" nbd_load

# --- 3. timeout 0: wait, and log the stuck request --------------------------
slow_server zero || ktap_bail "cannot start the scripted server"
dmesg_mark notimeout
check "attach with --timeout 0" \
	"$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock zero)" "$DEV" --timeout 0
nbd_quiesce "$DEV"
stall zero all 35
read_waits()
{
	local t0=$SECONDS rc

	timeout 120 dd if="$DEV" of=/dev/null bs=4k count=1 skip=200 \
		iflag=direct status=none 2>"$NBD_TMP/dd0.err"
	rc=$?
	ktap_info "read: exit $rc after $((SECONDS - t0)) s"
	[[ $rc -eq 0 && $((SECONDS - t0)) -ge 30 ]]
}
check "a 35 s read completes" read_waits
unstall zero all
check "... and was logged as possibly stuck" kernel_says 'possibly stuck'
check "detach" "$NBDCTL" disconnect "$DEV"

# --- 4. server stopped past the timeout, within the dead timeout ------------
truncate -s $((256 << 20)) "$NBD_TMP/disk2.img"
# qemu-nbd: nbdkit 1.32 can abort when a client drops with requests in
# flight, which is what happens here.
qemunbd_start stopq -f raw "$NBD_TMP/disk2.img" || ktap_bail "cannot start qemu-nbd"
SPID=$(pgrep -f "qemu-nbd -t -k $(nbd_sock stopq)" | head -1)
[[ -n $SPID ]] || ktap_bail "cannot find the qemu-nbd process"
"$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock stopq)" "$DEV" --timeout $T \
	--dead-timeout 120 --persist --foreground \
	>"$NBD_TMP/persist.out" 2>"$NBD_TMP/persist.log" &
PERSIST=$!
track_pid "$PERSIST"
check "attach with --persist, timeout $T s, dead-connection timeout 120 s" \
	nbd_wait_connected "$DEV" 30
dmesg_mark stop
# 256 KiB writes, 8 in flight: 2 MiB, more than the socket buffers hold,
# so the stopped server leaves a request half-sent on the wire.
fio_verify stop 128 256 8 >"$NBD_TMP/stop.tap" 2>&1 &
FIO=$!
sleep 1
kill -STOP "$SPID"
sleep $((T + 5))
kill -CONT "$SPID"
stopped_ok()
{
	wait "$FIO"
	local rc=$?

	cat "$NBD_TMP/stop.tap"
	return $rc
}
check "fio verify across a $((T + 5)) s SIGSTOP of the server: no error" stopped_ok
sed 's/^/# persist: /' "$NBD_TMP/persist.log"
replaced()
{
	kernel_says 'timed out, closing the connection' &&
		grep -q 'reconnected' "$NBD_TMP/persist.log"
}
check "the stop hit I/O in flight: a request timed out, the connection was replaced" \
	replaced
check "detach" "$NBDCTL" disconnect "$DEV"
ktap_finish
