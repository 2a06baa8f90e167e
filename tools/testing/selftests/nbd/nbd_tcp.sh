#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The data path over loopback TCP, where replies are parsed in the
# socket's data_ready callback (softirq): fio with crc32c verification
# over one connection and over four, then the server killed under load,
# which must fail the I/O in flight promptly and end the session without
# a hang (the VM harness checks dmesg for splats).

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
PORT=${NBD_TCP_PORT:-10809}
TARGET=tcp:127.0.0.1:$PORT
REGION_MB=${NBD_TCP_REGION_MB:-16}	# per random-write job
SEQ_MB=${NBD_TCP_SEQ_MB:-32}

nbd_test_init
ktap_plan 15
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-client fio perl

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
nbdkit_start_tcp mem "$PORT" memory 1G ||
	ktap_bail "cannot start nbdkit on port $PORT"
check "attach $DEV over TCP, one connection" nbd_attach "$DEV" "$TARGET" ||
	ktap_bail "attach failed"

run_fio()
{
	fio_verify "$1" "$DEV" "${@:2}"
}

# randwrite NAME JOBS: 4k random writes at QD32 on disjoint regions.
randwrite()
{
	run_fio "$1" --rw=randwrite --bs=4k --iodepth=32 --numjobs="$2" \
		--size=${REGION_MB}M --offset_increment=${REGION_MB}M
}

check "fio 4k randwrite QD32 x2, verify crc32c: exit status 0" \
	randwrite rw1 2
check "fio rw1: no errors, every block written and verified" \
	fio_verify_clean rw1 $((2 * REGION_MB * 256)) $((2 * REGION_MB * 256))
check "fio 1M sequential write QD4, verify crc32c: exit status 0" \
	run_fio seq1 --rw=write --bs=1M --iodepth=4 --size=${SEQ_MB}M
check "fio seq1: no errors, every block written and verified" \
	fio_verify_clean seq1 "$SEQ_MB" "$SEQ_MB"

# rx_inline: debugfs counts receiver runs in data_ready; some of the
# replies above must have been parsed there.
rx_inline()
{
	local f=/sys/kernel/debug/nbd/${DEV#/dev/}/tasks line n

	line=$(grep -m1 '^conn0: receiver ran' "$f" 2>/dev/null)
	ktap_info "debugfs: ${line:-no receiver line in $f}"
	n=$(sed -n 's/^conn0: receiver ran \([0-9]*\) times in data_ready.*/\1/p' \
		<<<"$line")
	[[ -n $n && $n -gt 0 ]]
}
if [[ ${NBD_STOCK:-0} == 1 ]]; then
	skip "replies were parsed in data_ready" "the stock driver has no such count"
else
	check "replies were parsed in data_ready" rx_inline
fi
check "detach $DEV" nbd_detach "$DEV"

check "attach $DEV over TCP, four connections" \
	nbd_attach "$DEV" "$TARGET" -C 4 || ktap_bail "attach failed"
check "fio 4k randwrite QD32 x4, verify crc32c: exit status 0" \
	randwrite rw4 4
check "fio rw4: no errors, every block written and verified" \
	fio_verify_clean rw4 $((4 * REGION_MB * 256)) $((4 * REGION_MB * 256))

# reads_done: reads the device has completed (/sys/block/X/stat).
reads_done()
{
	awk '{ print $1 }' "/sys/block/${DEV#/dev/}/stat"
}

# reads_past N: the device has completed more than N reads.
reads_past()
{
	[[ $(reads_done) -gt $1 ]]
}

# The server dies with reads in flight on every connection: they fail,
# fio ends within the bound, and with no dead-connection timeout the
# session ends.  The server is killed only once fio's reads are flowing
# (fio may take seconds to start on a debug kernel): reads issued after
# the session has ended find a device of size 0 and see end of file,
# not an error.
server_killed()
{
	local fpid t0 rc base

	base=$(reads_done)
	timeout 120 fio --name=killed --filename="$DEV" --ioengine=libaio \
		--direct=1 --rw=randread --bs=4k --iodepth=32 --numjobs=4 \
		--size=$((4 * REGION_MB))M --time_based --runtime=60 \
		--output="$NBD_TMP/killed.out" >/dev/null 2>&1 &
	fpid=$!
	if ! wait_for 60 reads_past $((base + 500)); then
		ktap_info "fio completed $(($(reads_done) - base)) reads in 60 s"
		kill_pid "$fpid"
		return 1
	fi
	kill -KILL "$(cat "$NBD_TMP/mem.pid")"
	t0=$SECONDS
	wait "$fpid"
	rc=$?
	ktap_info "fio exit $rc, $((SECONDS - t0)) s after the server died"
	# 124: timeout killed fio, which means I/O hung
	[[ $rc -ne 0 && $rc -ne 124 ]]
}
check "server killed under load: the I/O fails, no hang" server_killed
check "the session ends" nbd_wait_disconnected "$DEV" 30
closed_logged()
{
	dmesg | tail -n 50 | grep -qE 'nbd0: connection [0-9]+: (closed by the server|receive failed)'
}
if [[ ${NBD_STOCK:-0} == 1 ]]; then
	skip "dmesg names the closed connection" "the stock driver words it differently"
else
	check "dmesg names the closed connection" closed_logged
fi
check "unload nbd" nbd_unload
ktap_finish
