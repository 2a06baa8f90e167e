#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Request timeouts and dead connections:
#  1. two connections, one of which stops answering: its requests time
#     out, the connection is shut down, the requests are resent on the
#     other one and fio's verify passes;
#  2. one connection that stops answering and no dead-connection timeout:
#     the read fails with EIO soon after the timeout and the device is
#     torn down (disconnected, the module unloads);
#  3. timeout 0: a slow request is logged as stuck but keeps waiting and
#     completes;
#  4. the server stopped (SIGSTOP) for longer than the request timeout but
#     less than the dead-connection timeout, with nbdctl --persist: the
#     connection is replaced after SIGCONT and fio sees no error.
#
# Environment: NBDCTL, the nbdctl binary (the harness builds it).

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
SIZE=$((64 << 20))

nbd_test_init
ktap_plan 21
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit fio perl dd

NBDCTL=${NBDCTL:-}
[[ -x $NBDCTL ]] || ktap_bail "NBDCTL ('$NBDCTL') is not an executable"
check "load nbd" nbd_load || ktap_bail "cannot load nbd"

# fio_verify NAME MB ARGS...: 4 KiB random writes over MB MiB with crc32c
# verify; passes with exit 0, no error and every block read back.
fio_verify()
{
	local name=$1 mb=$2 errs w r want

	shift 2
	want=$((mb * 256))
	timeout 300 fio --name="$name" --filename="$DEV" --ioengine=libaio \
		--direct=1 --rw=randwrite --bs=4k --iodepth=8 --size=${mb}M \
		--verify=crc32c --verify_fatal=1 --do_verify=1 \
		--output-format=json --output="$NBD_TMP/$name.json" "$@" \
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
# slow_server NAME: a shell-scripted nbdkit on a file; every connection
# gets a handle c0, c1, ...  A request sleeps SECS first while the file
# $NBD_TMP/NAME.stall-cN (that connection) or NAME.stall-all exists and
# holds SECS.
slow_server()
{
	local name=$1 disk=$NBD_TMP/$1.img st=$NBD_TMP/$1.stall
	local wait_="for f in $st-\$2 $st-all; do [ -s \$f ] && sleep \$(cat \$f) && break; done"

	truncate -s $SIZE "$disk"
	nbdkit_start "$name" eval \
		thread_model='echo parallel' \
		open='n=$(cat "$tmpdir/n" 2>/dev/null || echo 0); echo $((n + 1)) >"$tmpdir/n"; echo c$n' \
		get_size="echo $SIZE" can_write='exit 0' can_multi_conn='exit 0' \
		can_flush='exit 0' flush='exit 0' \
		pread="$wait_; dd if=$disk iflag=skip_bytes,count_bytes skip=\$4 count=\$3 bs=64k status=none" \
		pwrite="$wait_; dd of=$disk oflag=seek_bytes conv=notrunc seek=\$4 bs=64k iflag=fullblock status=none"
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
check "attach with 2 connections and a 3 s timeout" \
	"$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock two)" "$DEV" -C 2 --timeout 3
udev_settle
stall two c0 30
check "fio verify while connection 0 stalls: no error" fio_verify stall 2
unstall two c0
check "the kernel timed a request out and closed that connection" \
	kernel_says 'connection 0: .* timed out, closing the connection'
check "the device is still connected (the other connection lives)" \
	nbd_connected "$DEV"
check "detach" "$NBDCTL" disconnect "$DEV"
check "detached" nbd_wait_disconnected "$DEV" 10

# --- 2. the only connection stalls, no dead-connection timeout ------------------
slow_server one || ktap_bail "cannot start the scripted server"
dmesg_mark single
check "attach one connection with a 3 s timeout" \
	"$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock one)" "$DEV" --timeout 3
udev_settle
stall one all 30
read_fails()
{
	local t0=$SECONDS rc

	timeout 60 dd if="$DEV" of=/dev/null bs=4k count=1 skip=100 \
		iflag=direct status=none 2>"$NBD_TMP/dd.err"
	rc=$?
	ktap_info "read: exit $rc after $((SECONDS - t0)) s: $(head -1 "$NBD_TMP/dd.err")"
	[[ $rc -ne 0 && $rc -ne 124 ]] && grep -q 'Input/output error' "$NBD_TMP/dd.err" &&
		[[ $((SECONDS - t0)) -lt 20 ]]
}
check "a read fails with EIO within 20 s" read_fails
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
udev_settle
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
truncate -s $SIZE "$NBD_TMP/disk2.img"
nbdkit_start file file "$NBD_TMP/disk2.img" || ktap_bail "cannot start nbdkit"
"$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock file)" "$DEV" --timeout 3 \
	--dead-timeout 120 --persist --foreground \
	>"$NBD_TMP/persist.out" 2>"$NBD_TMP/persist.log" &
PERSIST=$!
track_pid "$PERSIST"
check "attach with --persist, timeout 3 s, dead-connection timeout 120 s" \
	nbd_wait_connected "$DEV" 30
dmesg_mark stop
fio_verify stop 64 >"$NBD_TMP/stop.tap" 2>&1 &
FIO=$!
sleep 1
SPID=$(cat "$NBD_TMP/file.pid")
kill -STOP "$SPID"
sleep 8
kill -CONT "$SPID"
stopped_ok()
{
	wait "$FIO"
	local rc=$?

	cat "$NBD_TMP/stop.tap"
	return $rc
}
check "fio verify across an 8 s SIGSTOP of the server: no error" stopped_ok
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
