#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Teardown in the orders users and syzbot reach:
#  1. a netlink CONNECT with a socket that is not a connected TCP/UNIX
#     stream (UDP, UNIX datagram, netlink, unconnected TCP), a pipe, a
#     regular file or a bad fd: refused (EINVAL, ENOTCONN, EBADF) with the
#     reason in the extended ACK and in the kernel log, nothing registered;
#     one socket listed twice: EBUSY;
#  2. a signal to the task waiting in NBD_DO_IT (nbd-client in ioctl mode):
#     the device is torn down, nothing hangs, the device attaches again;
#  3. NBD_SET_SIZE while an ioctl-configured device is connected: the new
#     size shows at once;
#  4. DISCONNECT_ON_CLOSE: of two openers the first close leaves the
#     device connected and the last disconnects, also when both close at
#     once, in a loop;
#  5. DESTROY_ON_DISCONNECT: a device created for the connection is
#     removed after the disconnect, also when an opener still held it.
#
# Environment: NBDCTL, the nbdctl binary (the harness builds it).

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
HERE=$(dirname "$(readlink -f "$0")")
ROUNDS=${NBD_RACE_ROUNDS:-50}

nbd_test_init
ktap_plan 21
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-server nbd-client python3 blockdev

require_nbdctl
check "load nbd" nbd_load || ktap_bail "cannot load nbd"
nbdkit_start mem memory 256M || ktap_bail "cannot start nbdkit"
SOCK=$(nbd_sock mem)
# The loops below drop clients with requests in flight (udev's reads),
# which can make nbdkit 1.32 abort: they use nbd-server, a process per
# client.
truncate -s 256M "$NBD_TMP/srv.img"
nbdserver_start srv "$NBD_TMP/srv.img" || ktap_bail "cannot start nbd-server"
URI="nbd+unix:///srv?socket=$(nbd_sock srv)"

# --- 1. bad sockets over netlink ------------------------------------------------
dmesg_mark badsock
genl_refused()	# genl_refused KIND ERRNO
{
	local got

	got=$(python3 "$HERE/nbd_genl.py" connect 0 "$1")
	ktap_info "CONNECT with $1: $got"
	[[ $got == "$2"* ]]
}
check "UDP socket: EINVAL" genl_refused udp EINVAL
check "UNIX datagram socket: EINVAL" genl_refused unix-dgram EINVAL
check "netlink socket: EINVAL" genl_refused netlink EINVAL
check "unconnected TCP socket: ENOTCONN" genl_refused tcp-unconnected ENOTCONN
check "pipe: EINVAL" genl_refused pipe EINVAL
check "regular file: EINVAL" genl_refused file EINVAL
check "bad fd: EBADF" genl_refused bad-fd EBADF
check "one socket listed twice: EBUSY" genl_refused unix-twice EBUSY
check "nothing registered: nbd0 is not connected" nbd_disconnected "$DEV"
check "a normal attach works" timeout 60 "$NBDCTL" connect "$URI" "$DEV"
timeout 30 "$NBDCTL" disconnect "$DEV" >/dev/null
nbd_wait_disconnected "$DEV" 10

# --- 2. a signal to the task in NBD_DO_IT ---------------------------------------------
check "attach over ioctl (nbd-client -L)" nbd_attach "$DEV" "$SOCK" -L
doit_killed()
{
	local pid

	pid=$(cat /sys/block/nbd0/pid 2>/dev/null)
	[[ -n $pid ]] || { echo "# no pid in NBD_DO_IT"; return 1; }
	ktap_info "NBD_DO_IT task: $pid ($(cat "/proc/$pid/comm" 2>/dev/null))"
	kill -KILL "$pid"
	pid_gone "$pid" 20 || { echo "# the task in NBD_DO_IT did not die"; return 1; }
}
check "SIGKILL to the task in NBD_DO_IT: it dies" doit_killed
check "... and the device is torn down" nbd_wait_disconnected "$DEV" 20
check "the device attaches again over ioctl" nbd_attach "$DEV" "$SOCK" -L

# --- 3. NBD_SET_SIZE while connected (ioctl) --------------------------------------------
resized()
{
	local got

	python3 "$HERE/nbd_ioctl.py" "$DEV" set-size $((128 << 20)) | sed 's/^/# set-size: /'
	got=$(blockdev --getsize64 "$DEV")
	ktap_info "size after NBD_SET_SIZE 128 MiB: $got"
	[[ $got -eq $((128 << 20)) ]]
}
check "NBD_SET_SIZE while connected: the new size shows at once" resized
check "detach" nbd_detach "$DEV"

# --- 4. DISCONNECT_ON_CLOSE ------------------------------------------------------------------
# Both openers open and read before either closes (two dd's would not
# always overlap): odd rounds close one after the other and check the
# first close left the device connected, even rounds close both at once
# in two threads.
close_rounds()
{
	local i mode got

	for i in $(seq "$ROUNDS"); do
		timeout 60 "$NBDCTL" connect "$URI" "$DEV" --disconnect-on-close \
			>/dev/null || { echo "# round $i: attach failed"; return 1; }
		nbd_connected "$DEV" || {
			echo "# round $i: disconnected before any open"
			dmesg_since_mark | tail -20 | sed 's/^/# kernel: /'
			return 1
		}
		mode=race
		((i % 2)) && mode=seq
		got=$(python3 "$HERE/nbd_ioctl.py" "$DEV" two-closes $mode) ||
			{ echo "# round $i ($mode): $got"; return 1; }
		nbd_wait_disconnected "$DEV" 10 ||
			{ echo "# round $i ($mode): still connected after the last close"; return 1; }
	done
}
# udev's probe of the new disk would be the first opener and its close
# the last: hold its events while these rounds run.
udevadm control --stop-exec-queue 2>/dev/null &&
	at_exit "udevadm control --start-exec-queue"
dmesg_mark close
check "$ROUNDS rounds: the last of two closes disconnects, also racing" close_rounds
udevadm control --start-exec-queue 2>/dev/null

# --- 5. DESTROY_ON_DISCONNECT ------------------------------------------------------------------
NEW=/dev/nbd40
destroyed()
{
	local i

	for i in $(seq 10); do
		timeout 60 "$NBDCTL" connect "$URI" "$NEW" --destroy-on-disconnect \
			>/dev/null || { echo "# round $i: attach failed"; return 1; }
		[[ -e /sys/block/nbd40 ]] || { echo "# round $i: no nbd40"; return 1; }
		timeout 30 "$NBDCTL" disconnect "$NEW" >/dev/null
		wait_for 10 test ! -e /sys/block/nbd40 ||
			{ echo "# round $i: nbd40 still exists"; return 1; }
	done
}
check "a device made for the connection is removed after the disconnect (10 rounds)" destroyed
held_open()
{
	timeout 60 "$NBDCTL" connect "$URI" "$NEW" --destroy-on-disconnect \
		>/dev/null || return 1
	udev_settle
	exec 7<"$NEW"
	timeout 30 "$NBDCTL" disconnect "$NEW" >/dev/null
	sleep 1
	exec 7<&-
	wait_for 10 test ! -e /sys/block/nbd40
}
check "... also when an opener held it during the disconnect" held_open
check "nbd unloads" nbd_unload
ktap_finish
