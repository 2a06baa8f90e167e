#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Disconnecting a busy device: nbd-client -d while fio hammers /dev/nbd0
# with random reads and writes.  fio must end soon (errors are fine),
# nothing may hang, the device must end up disconnected, and the module
# must unload afterwards.  Over netlink and over the ioctl interface.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
FIO_RUNTIME=120		# fio would run this long if nothing stopped it
FIO_BOUND=30		# ... but must end this soon after the disconnect

nbd_test_init
ktap_plan 20
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-client fio

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
# One server per phase: nbdkit 1.32 can die on an assertion
# (raw_send_socket: sock >= 0) when a client drops the connection with
# many requests in flight, which is what this test does.
for s in netlink ioctl final; do
	nbdkit_start "$s" memory 256M || ktap_bail "cannot start nbdkit"
done

FIO_PID=
start_fio()
{
	timeout $((FIO_RUNTIME + 60)) fio --name=busy --filename="$DEV" \
		--ioengine=libaio --direct=1 --rw=randrw --bs=4k --iodepth=32 \
		--numjobs=2 --size=128M --time_based --runtime=$FIO_RUNTIME \
		>"$NBD_TMP/fio.$1.out" 2>&1 &
	FIO_PID=$!
	track_pid "$FIO_PID"
}

# fio_busy: fio is running and the device has requests in flight.
_fio_busy()
{
	kill -0 "$FIO_PID" 2>/dev/null && nbd_busy "$DEV"
}
# fio can take more than 10 s to start its jobs under the debug kernel.
fio_busy()
{
	sleep 3
	wait_for 60 _fio_busy && return 0
	kill -0 "$FIO_PID" 2>/dev/null || ktap_info_file "$NBD_TMP/fio.$1.out"
	return 1
}

# fio_ends: fio exits within FIO_BOUND seconds.
fio_ends()
{
	local t0=$SECONDS rc

	if ! wait_for $FIO_BOUND _pid_gone "$FIO_PID"; then
		echo "# fio still running $FIO_BOUND s after the disconnect"
		return 1
	fi
	wait "$FIO_PID"
	rc=$?
	ktap_info "fio ended $((SECONDS - t0)) s after the disconnect, exit status $rc"
	ktap_info_file "$NBD_TMP/fio.$1.out" 3
	[[ $rc -ne 124 ]]
}

# no_data: the disconnected device returns no data.
no_data()
{
	local n

	timeout 20 dd if="$DEV" of="$NBD_TMP/after" bs=4096 count=1 \
		iflag=direct status=none 2>/dev/null
	[[ $? -eq 124 ]] && { echo "# read hung"; return 1; }
	n=$(stat -c %s "$NBD_TMP/after" 2>/dev/null || echo 0)
	[[ $n -eq 0 ]] || { echo "# read returned $n bytes"; return 1; }
}

# busy_disconnect NAME [NBD-CLIENT ARGS]
busy_disconnect()
{
	local name=$1 client_pid

	shift
	check "$name: attach $DEV" nbd_attach "$DEV" "$(nbd_sock "$name")" "$@" ||
		ktap_bail "attach failed"
	client_pid=$NBD_CLIENT_PID
	start_fio "$name"
	check "$name: fio randrw is running with I/O in flight" fio_busy "$name"
	check "$name: nbd-client -d returns" \
		quiet timeout 60 nbd-client -d "$DEV"
	check "$name: fio ends within $FIO_BOUND s" fio_ends "$name"
	check "$name: the device is disconnected" nbd_wait_disconnected "$DEV" 20
	check "$name: nbd-client -c reports it not connected" \
		expect_fail nbd_client_check "$DEV"
	check "$name: reading it returns no data, without hanging" no_data
	if [[ $name == ioctl ]]; then
		check "$name: nbd-client in NBD_DO_IT exited" \
			pid_gone "$client_pid" 15
	fi
}

busy_disconnect netlink
busy_disconnect ioctl -L

# The device is usable again after all that.
roundtrip()
{
	head -c 65536 /dev/urandom >"$NBD_TMP/in"
	dd if="$NBD_TMP/in" of="$DEV" bs=4096 oflag=direct status=none &&
		dd if="$DEV" of="$NBD_TMP/out" bs=4096 count=16 iflag=direct \
			status=none &&
		cmp "$NBD_TMP/in" "$NBD_TMP/out"
}
check "reattach $DEV" nbd_attach "$DEV" "$(nbd_sock final)"
check "a dd round trip works" roundtrip
check "detach $DEV" nbd_detach "$DEV"
check "unload nbd" nbd_unload
ktap_finish
