#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# nbdctl connect --persist: the server is killed while fio writes and
# verifies, and restarted on the same backing file within the
# dead-connection timeout.  The persist process sees LINK_DEAD, redoes
# the handshake and hands the new socket over with RECONFIGURE: fio must
# finish with no I/O error and no verify error.  Then `nbdctl disconnect`
# ends the persist process.
#
# Environment: NBDCTL, the nbdctl binary (the harness builds it).

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
CONNS=${NBD_PERSIST_CONNS:-2}
JOB_MB=${NBD_PERSIST_MB:-8}	# per fio job (2 jobs)

nbd_test_init
ktap_plan 13
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit fio perl

require_nbdctl

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
dmesg_mark persist
DISK=$NBD_TMP/disk.img
truncate -s 256M "$DISK"
SOCK=$(nbd_sock file)
start_server()
{
	rm -f "$SOCK"
	nbdkit_start file file "$DISK"
}
check "start nbdkit on a backing file" start_server || ktap_bail "no server"

"$NBDCTL" connect "nbd+unix:///?socket=$SOCK" "$DEV" -C "$CONNS" \
	--persist --foreground --dead-timeout 60 --timeout 30 \
	>"$NBD_TMP/persist.out" 2>"$NBD_TMP/persist.log" &
PERSIST=$!
track_pid "$PERSIST"
check "nbdctl connect --persist attaches $DEV" nbd_wait_connected "$DEV" 30 ||
	{ ktap_info_file "$NBD_TMP/persist.log"; ktap_bail "attach failed"; }

fio_job()
{
	timeout 600 fio --name=persist --filename="$DEV" --ioengine=libaio \
		--direct=1 --rw=randwrite --bs=4k --iodepth=16 --numjobs=2 \
		--size=${JOB_MB}M --offset_increment=${JOB_MB}M \
		--verify=crc32c --verify_fatal=1 --do_verify=1 \
		--output-format=json --output="$NBD_TMP/fio.json" \
		>"$NBD_TMP/fio.out" 2>&1
	echo $? >"$NBD_TMP/fio.rc"
}
fio_job &
FIO=$!
track_pid "$FIO"

# Let fio get going, then kill the server outright and bring it back.
wait_for 30 test -s "$NBD_TMP/fio.json" 2>/dev/null
sleep 2
server_killed()
{
	local pid

	pid=$(cat "$NBD_TMP/file.pid") || return 1
	kill -9 "$pid" && pid_gone "$pid" 10
}
check "kill the server (SIGKILL) while fio runs" server_killed
sleep 3
check "restart it on the same backing file" start_server

fio_done()
{
	wait "$FIO"
	[[ $(cat "$NBD_TMP/fio.rc" 2>/dev/null) == 0 ]] ||
		{ ktap_info_file "$NBD_TMP/fio.out"; return 1; }
}
check "fio finishes with exit status 0" fio_done
fio_clean()
{
	local errs w r want=$((2 * JOB_MB * 256))

	errs=$(fio_errors "$NBD_TMP/fio.json")
	w=$(fio_ios "$NBD_TMP/fio.json" write)
	r=$(fio_ios "$NBD_TMP/fio.json" read)
	ktap_info "fio: errors=$errs writes=$w reads=$r (want $want each)"
	[[ $errs == 0 && $w -eq $want && $r -eq $want ]]
}
check "zero I/O errors, zero verify errors" fio_clean
all_reconnected()
{
	local n

	n=$(grep -c 'reconnected' "$NBD_TMP/persist.log")
	ktap_info "$n reconnect(s) logged, $(nbd_server_conns "$SOCK") connection(s) at the server"
	[[ $n -eq $CONNS && $(nbd_server_conns "$SOCK") -eq $CONNS ]]
}
check "every connection was replaced" wait_for 30 all_reconnected
sed 's/^/# persist: /' "$NBD_TMP/persist.log"
dmesg_since_mark | grep 'nbd0' | sed 's/^/# kernel: /'

no_io_error()
{
	! dmesg_since_mark | grep -q 'I/O error, dev nbd0'
}
check "the kernel saw no I/O error" no_io_error

check "nbdctl disconnect $DEV" "$NBDCTL" disconnect "$DEV"
check "$DEV is disconnected" nbd_wait_disconnected "$DEV" 10
check "the persist process ended" pid_gone "$PERSIST" 15
check "unload nbd" nbd_unload
ktap_finish
