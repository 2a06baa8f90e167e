#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Bad sockets and teardown races (each after a bug syzbot or blktests
# found in upstream's driver):
#  1. NBD_SET_SOCK with sockets that are not connected TCP/UNIX streams
#     (UDP, UNIX datagram, netlink, unconnected TCP), a pipe, a regular
#     file and a bad fd: refused with EINVAL (ENOTCONN, EBADF), a kernel
#     message, and nothing registered;
#  2. mount/umount in a loop while NBD_CLEAR_SOCK is issued 5000 times
#     (blktests nbd/003), reconnecting now and then;
#  3. RECONFIGURE racing DISCONNECT: never a reconnect after a disconnect;
#  4. a resize while requests wait on a dead connection returns at once;
#  5. writers killed with SIGKILL / SIGINT in the middle of their writes,
#     in a loop, next to a fio verify run: no corruption, no splat.
#
# Environment: NBDCTL, the nbdctl binary (the harness builds it).

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
IOCTL="python3 $(dirname "$(readlink -f "$0")")/nbd_ioctl.py"
CLEARS=${NBD_CLEAR_SOCK_COUNT:-5000}
# rounds of attach + one nbd_ioctl.py run (a Python start costs seconds
# on the debug kernel, where the rounds, not the count, take the time)
CLEAR_ROUNDS=${NBD_CLEAR_SOCK_ROUNDS:-10}
ROUNDS=${NBD_RACE_ROUNDS:-50}

nbd_test_init
ktap_plan 24
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-server python3 mkfs.ext4 fio perl blockdev

require_nbdctl
check "load nbd" nbd_load || ktap_bail "cannot load nbd"
# nbd-server, one process per client: the connect/disconnect loops drop
# clients with requests in flight, which can make nbdkit 1.32 abort.
truncate -s 256M "$NBD_TMP/srv.img"
nbdserver_start srv "$NBD_TMP/srv.img" || ktap_bail "cannot start nbd-server"
URI="nbd+unix:///srv?socket=$(nbd_sock srv)"

attach()	# attach [ARGS...]: nbdctl connect to the memory server
{
	timeout 60 "$NBDCTL" connect "$URI" "$DEV" "$@" >/dev/null
}
detach()
{
	timeout 60 "$NBDCTL" disconnect "$DEV" >/dev/null &&
		nbd_wait_disconnected "$DEV" 10
}

# --- 1. sockets the driver must refuse ----------------------------------------
dmesg_mark badsock
# One nbd_ioctl.py run tries all eight (a Python start takes seconds on
# the debug kernel); each check then reads its line.
SETSOCK=$($IOCTL "$DEV" set-sock udp udp-connected unix-dgram netlink \
	tcp-unconnected pipe file bad-fd)
refused()	# refused KIND ERRNO
{
	local got

	got=$(awk -v k="$1" '$1 == k { print $2 }' <<<"$SETSOCK")
	ktap_info "NBD_SET_SOCK with $1: ${got:-no answer}"
	[[ $got == "$2" ]]
}
check "UDP socket: EINVAL" refused udp EINVAL
check "connected UDP socket: EINVAL" refused udp-connected EINVAL
check "UNIX datagram socket: EINVAL" refused unix-dgram EINVAL
check "netlink socket: EINVAL" refused netlink EINVAL
check "unconnected TCP socket: ENOTCONN" refused tcp-unconnected ENOTCONN
check "pipe: EINVAL" refused pipe EINVAL
check "regular file: EINVAL" refused file EINVAL
check "bad fd: EBADF" refused bad-fd EBADF
said_why()
{
	local n

	n=$(dmesg_since_mark | grep -cE 'nbd0: (only TCP and UNIX stream sockets|socket is not connected|fd [0-9]+ is not a socket|fd [0-9]+: bad file)')
	ktap_info "$n kernel messages for 8 refusals"
	[[ $n -ge 8 ]]
}
check "each refusal is explained in the kernel log" said_why
check "nothing was registered: a normal attach works" attach
check "detach" detach

# --- 2. NBD_CLEAR_SOCK vs mount/umount ------------------------------------------
attach && mkfs.ext4 -q -F "$DEV" && detach
MNT=$NBD_TMP/mnt
mkdir -p "$MNT"
mount_loop()
{
	while [[ ! -e $NBD_TMP/stop-mount ]]; do
		mount -t ext4 "$DEV" "$MNT" 2>/dev/null && umount "$MNT" 2>/dev/null
	done
	umount "$MNT" 2>/dev/null
	true
}
clear_race()
{
	local i per=$((CLEARS / CLEAR_ROUNDS)) t0=$SECONDS

	mount_loop &
	MOUNT_PID=$!
	track_pid "$MOUNT_PID"
	for i in $(seq "$CLEAR_ROUNDS"); do
		nbd_disconnected "$DEV" && attach
		timeout 120 $IOCTL "$DEV" clear-sock $per | sed 's/^/# /' ||
			{ echo "# clear-sock loop $i failed or hung"; break; }
	done
	touch "$NBD_TMP/stop-mount"
	pid_gone "$MOUNT_PID" 60 || { echo "# the mount loop hangs"; return 1; }
	ktap_info "$CLEARS NBD_CLEAR_SOCK in $CLEAR_ROUNDS rounds in $((SECONDS - t0)) s"
	[[ $i -eq $CLEAR_ROUNDS ]]
}
check "$CLEARS NBD_CLEAR_SOCK while mount/umount loops: no hang" clear_race
mountpoint -q "$MNT" && umount "$MNT"
timeout 30 "$NBDCTL" disconnect "$DEV" >/dev/null 2>&1
check "the device ends disconnected" nbd_wait_disconnected "$DEV" 10

# --- 3. RECONFIGURE vs DISCONNECT -------------------------------------------------
reconf_race()
{
	local i rpid

	for i in $(seq "$ROUNDS"); do
		attach || { echo "# round $i: attach failed"; return 1; }
		timeout 30 "$NBDCTL" reconfigure "$DEV" --timeout 30 \
			>/dev/null 2>&1 &
		rpid=$!
		timeout 30 "$NBDCTL" disconnect "$DEV" >/dev/null 2>&1
		wait "$rpid"
		if ! nbd_wait_disconnected "$DEV" 10; then
			echo "# round $i: still connected after the disconnect"
			return 1
		fi
	done
}
check "$ROUNDS rounds of RECONFIGURE racing DISCONNECT: always disconnected" reconf_race

# --- 4. resize while requests wait on a dead connection ------------------------------
nbdkit_start stop memory 64M || ktap_bail "cannot start nbdkit"
check "attach with a 2 s timeout and a 60 s dead-connection timeout" \
	timeout 60 "$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock stop)" \
	"$DEV" --timeout 2 --dead-timeout 60
udev_settle
kill -STOP "$(cat "$NBD_TMP/stop.pid")"
dd if="$DEV" of=/dev/null bs=4k count=1 skip=77 iflag=direct status=none \
	2>/dev/null &
DD=$!
sleep 5	# the read timed out; its connection is dead; it waits for a new one
resize_returns()
{
	local t0=$SECONDS rc secs

	timeout 30 "$NBDCTL" reconfigure "$DEV" --size 32M 2>"$NBD_TMP/resize.err"
	rc=$?
	secs=$((SECONDS - t0))
	# sysfs, not blockdev: opening the disk would read its partition
	# table, which waits for the reconnect too.
	ktap_info "reconfigure --size: exit $rc after $secs s; size now $(nbd_size_bytes "$DEV")"
	[[ $rc -ne 124 && $secs -lt 15 ]] &&
		{ [[ ${NBD_STOCK:-0} == 1 ]] || [[ $rc -eq 0 ]]; }
}
check "a resize returns at once while a request waits for a reconnect" resize_returns
kill -CONT "$(cat "$NBD_TMP/stop.pid")"
timeout 30 "$NBDCTL" disconnect "$DEV" >/dev/null 2>&1
check "the waiting read ends after the disconnect" pid_gone "$DD" 20
nbd_wait_disconnected "$DEV" 10

# --- 5. writers killed mid-write ------------------------------------------------------------
check "attach with 2 connections" attach -C 2
fio_bg()
{
	timeout 600 fio --name=bg --filename="$DEV" --ioengine=libaio --direct=1 \
		--rw=randwrite --bs=4k --iodepth=8 --size=16M --offset=0 \
		--verify=crc32c --verify_fatal=1 --do_verify=1 \
		--output-format=json --output="$NBD_TMP/bg.json" \
		>"$NBD_TMP/bg.out" 2>&1
	echo $? >"$NBD_TMP/bg.rc"
}
fio_bg &
FIO=$!
head -c $((8 << 20)) /dev/urandom >"$NBD_TMP/pattern"
kill_writers()
{
	local i pid sig

	for i in $(seq "$ROUNDS"); do
		dd if="$NBD_TMP/pattern" of="$DEV" bs=1M seek=64 oflag=direct \
			status=none 2>/dev/null &
		pid=$!
		sleep "0.0$((RANDOM % 10))"
		sig=KILL
		[[ $((i % 2)) -eq 0 ]] && sig=INT
		kill -s $sig "$pid" 2>/dev/null
		pid_gone "$pid" 30 || { echo "# round $i: the writer survived SIG$sig"; return 1; }
	done
}
check "$ROUNDS writers killed (SIGKILL, SIGINT) mid-write: each one dies" kill_writers
fio_ok()
{
	local errs

	wait "$FIO"
	errs=$(fio_errors "$NBD_TMP/bg.json")
	ktap_info "background fio: exit $(cat "$NBD_TMP/bg.rc"), errors=$errs"
	[[ $(cat "$NBD_TMP/bg.rc") == 0 && $errs == 0 ]]
}
check "the fio verify run next to them saw no error" fio_ok
final_write()
{
	dd if="$NBD_TMP/pattern" of="$DEV" bs=1M seek=64 oflag=direct status=none &&
		dd if="$DEV" of="$NBD_TMP/back" bs=1M skip=64 count=8 iflag=direct \
			status=none && cmp "$NBD_TMP/pattern" "$NBD_TMP/back"
}
check "a last full write of the killed writers' region reads back intact" final_write
check "detach" detach
check "nbd unloads" nbd_unload
ktap_finish
