#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Several connections per device: nbd-client -C 4 against a server that
# advertises NBD_FLAG_CAN_MULTI_CONN gives 4 sockets and one blk-mq
# hardware queue per connection (capped by the number of CPUs), and
# verified I/O from 4 jobs spreads over them.  Against a server without
# CAN_MULTI_CONN the same attach is refused with a kernel message, while
# a single connection still works.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
CONNS=4
JOB_MB=${NBD_MULTICONN_MB:-16}	# per fio job (4 jobs)
WANT=$((4 * JOB_MB * 256))	# 4 KiB writes, and as many verify reads

nbd_test_init
ktap_plan 15
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-client fio perl

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
nbdkit_start multi --filter=log memory 256M logfile="$NBD_TMP/multi.reqlog" || ktap_bail "cannot start nbdkit"
nbdkit_start single --filter=multi-conn memory 256M multi-conn-mode=disable ||
	ktap_bail "cannot start nbdkit with the multi-conn filter"

# cpu_ids: nr_cpu_ids, which caps the number of hardware queues.
cpu_ids()
{
	local possible last

	possible=$(cat /sys/devices/system/cpu/possible)
	last=${possible##*[-,]}
	echo $((last + 1))
}

no_conns()
{
	[[ $(nbd_server_conns "$1") -eq 0 ]]
}

check_conns()
{
	local n

	n=$(nbd_server_conns "$(nbd_sock multi)")
	ktap_info "server has $n connections"
	[[ $n -eq $CONNS ]]
}

check_hwqs()
{
	local want n

	want=$(cpu_ids)
	[[ $want -gt $CONNS ]] && want=$CONNS
	n=$(find "/sys/block/${DEV##*/}/mq" -mindepth 1 -maxdepth 1 -type d | wc -l)
	ktap_info "$n hardware queues (want $want: $CONNS connections, $(cpu_ids) CPU ids)"
	[[ $n -eq $want ]]
}

check "attach with -C $CONNS to a CAN_MULTI_CONN server" \
	nbd_attach "$DEV" "$(nbd_sock multi)" -C $CONNS ||
	ktap_bail "attach failed"
check "the server sees $CONNS connections" check_conns
check "one hardware queue per connection" check_hwqs

run_fio()
{
	timeout 300 fio --name=multi --filename="$DEV" --ioengine=libaio \
		--direct=1 --rw=randwrite --bs=4k --iodepth=16 --numjobs=4 \
		--size=${JOB_MB}M --offset_increment=${JOB_MB}M --verify=crc32c \
		--verify_fatal=1 --do_verify=1 --output-format=json \
		--output="$NBD_TMP/fio.json" >"$NBD_TMP/fio.out" 2>&1 ||
		{ ktap_info_file "$NBD_TMP/fio.out"; return 1; }
	local errs r w

	errs=$(fio_errors "$NBD_TMP/fio.json")
	w=$(fio_ios "$NBD_TMP/fio.json" write)
	r=$(fio_ios "$NBD_TMP/fio.json" read)
	ktap_info "fio: errors=$errs writes=$w reads=$r (want $WANT each)"
	[[ $errs == 0 && $w -eq $WANT && $r -eq $WANT ]]
}
check "fio verify with 4 jobs over $CONNS connections" run_fio

# writing_conns: server connections that carried write requests.
writing_conns()
{
	grep -o 'connection=[0-9]* Write' "$NBD_TMP/multi.reqlog" | sort -u | wc -l
}
if [[ $(cpu_ids) -lt 2 ]]; then
	skip "writes used several connections" "a single CPU: one hardware queue"
else
	n=$(writing_conns)
	ktap_info "$n connections carried writes"
	ktap_result $(( n >= 2 ? 0 : 1 )) "writes used several connections"
fi

check "detach $DEV" nbd_detach "$DEV"
check "all server connections closed" \
	wait_for 10 no_conns "$(nbd_sock multi)"

# --- a server without CAN_MULTI_CONN -----------------------------------------
dmesg_mark "multi-conn refused"
refused()
{
	! timeout 60 nbd-client -unix "$(nbd_sock single)" "$DEV" -b 4096 \
		-C $CONNS >"$NBD_TMP/refused.out" 2>&1
}
check "attach with -C $CONNS to a server without CAN_MULTI_CONN fails" refused
ktap_info_file "$NBD_TMP/refused.out" 5
sleep 1
check "the device is not connected" nbd_disconnected "$DEV"
check "the server has no connection left" \
	wait_for 10 no_conns "$(nbd_sock single)"
dmesg_since_mark >"$NBD_TMP/dmesg"
ktap_info_file "$NBD_TMP/dmesg" 5
check "the kernel logged why (a message about multiple connections)" \
	grep -qi multi "$NBD_TMP/dmesg"

check "a single connection to that server works" \
	nbd_attach "$DEV" "$(nbd_sock single)"
check "detach $DEV" nbd_detach "$DEV"
check "unload nbd" nbd_unload
ktap_finish
