#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Tracepoints: the five events of upstream's include/trace/events/nbd.h
# exist with upstream's fields and fire during fio (with the stock module
# too: this is the comparison), and this driver's own events record
# structured reply chunks and holes from qemu-nbd, and a protocol
# violation, the requeue it causes and the reconnect of nbdctl --persist
# against nbd_hostile_server.  Recorded with the kernel's tracing
# interface (tracefs), no perf or bpftrace needed.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
BS=4096
UPSTREAM=(nbd_send_request nbd_header_sent nbd_payload_sent
	  nbd_header_received nbd_payload_received)
OWN=(nbd_chunk nbd_chunk_range nbd_protocol_violation nbd_requeue
     nbd_reconnect)
TRIG_OFF=$((40 << 20))

nbd_test_init
ktap_plan 15
ktap_info "module: $(nbd_module_desc)"
require_cmds qemu-nbd fio dd cmp
require_nbdctl

TR=/sys/kernel/tracing
mount_tracefs()
{
	[[ -d $TR/events ]] && return 0
	mount -t tracefs nodev $TR 2>/dev/null && [[ -d $TR/events ]] && return 0
	mount -t debugfs none /sys/kernel/debug 2>/dev/null
	TR=/sys/kernel/debug/tracing
	[[ -d $TR/events ]]
}
check "tracefs is mounted" mount_tracefs || ktap_bail "no tracefs"
check "load nbd" nbd_load || ktap_bail "cannot load nbd"

events_exist()
{
	local e

	for e in "$@"; do
		[[ -d $TR/events/nbd/$e ]] || { echo "# no event nbd/$e"; return 1; }
	done
}

# upstream's fields, by name and type
upstream_fields()
{
	local e f

	for e in nbd_header_sent nbd_payload_sent nbd_header_received \
		 nbd_payload_received; do
		f=$TR/events/nbd/$e/format
		grep -q 'field:struct request \* req;' "$f" &&
			grep -q 'field:u64 handle;' "$f" ||
			{ echo "# $e:"; sed 's/^/#   /' "$f"; return 1; }
	done
	f=$TR/events/nbd/nbd_send_request/format
	grep -q 'field:struct nbd_request \* nbd_request;' "$f" &&
		grep -q 'field:u64 dev_index;' "$f" &&
		grep -q 'field:struct request \* request;' "$f" ||
		{ sed 's/^/#   /' "$f"; return 1; }
}

check "upstream's five events exist" events_exist "${UPSTREAM[@]}"
check "upstream's events have upstream's fields" upstream_fields
if [[ $NBD_STOCK == 1 ]]; then
	skip "this driver's events exist" "the stock module has none"
else
	check "this driver's events exist" events_exist "${OWN[@]}"
fi

trace_on()
{
	echo 0 >$TR/tracing_on
	echo >$TR/trace
	echo 16384 >$TR/buffer_size_kb
	echo 1 >$TR/events/nbd/enable
	echo 1 >$TR/tracing_on
}

trace_off()
{
	echo 0 >$TR/tracing_on
	echo 0 >$TR/events/nbd/enable
	cat $TR/trace >"$NBD_TMP/$1.trace"
	ktap_info "$1: $(grep -c ': nbd_' "$NBD_TMP/$1.trace") events, lost: $(grep -o 'entries-in-buffer/entries-written: [0-9/]*' "$NBD_TMP/$1.trace")"
}

count()
{
	grep -c " $2: " "$NBD_TMP/$1.trace"
}

# --- fio over qemu-nbd on a sparse file --------------------------------
IMG=$NBD_TMP/sparse.img
truncate -s 64M "$IMG"
dd if=/dev/urandom of="$IMG" bs=1M count=4 seek=8 conv=notrunc status=none
if ! qemunbd_start q -f raw "$IMG"; then
	ktap_fail_rest "qemu-nbd did not start"
	ktap_finish
fi
attach_q()
{
	timeout 60 "$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock q)" \
		nbd0 >"$NBD_TMP/connect.out" 2>&1 && nbd_wait_connected $DEV
}
check "attach $DEV to qemu-nbd with nbdctl" attach_q ||
	ktap_info_file "$NBD_TMP/connect.out"

trace_on
fio_verify trace $DEV --rw=randrw --bsrange=4k-64k --size=16M \
	--offset=32M --io_size=4M --iodepth=8 >/dev/null
dd if=$DEV of=/dev/null bs=1M count=4 skip=48 iflag=direct status=none
sync
trace_off fio

counts_fire()
{
	local e n bad=0

	for e in "${UPSTREAM[@]}"; do
		n=$(count fio "$e")
		ktap_info "$e: $n"
		[[ $n -gt 0 ]] || bad=1
	done
	return $bad
}
check "upstream's five events fire during fio" counts_fire
# every request sent had its reply header: as many of each
balanced()
{
	local s r

	s=$(count fio nbd_header_sent)
	r=$(count fio nbd_header_received)
	ktap_info "headers sent $s, received $r"
	[[ $s -gt 0 && $s -eq $r ]]
}
check "one nbd_header_received per nbd_header_sent" balanced
# as upstream's: one payload event per request each way, data or not
payloads()
{
	local s p r

	s=$(count fio nbd_header_sent)
	p=$(count fio nbd_payload_sent)
	r=$(count fio nbd_payload_received)
	ktap_info "requests $s, payload_sent $p, payload_received $r"
	[[ $s -gt 0 && $p -eq $s && $r -eq $s ]]
}
check "payload events once per request, as upstream's" payloads

if [[ $NBD_STOCK == 1 ]]; then
	skip "nbd_chunk records the chunks" "the stock module has no such event"
	skip "nbd_chunk_range records holes" "the stock module has no such event"
else
	chunks()
	{
		local n

		n=$(count fio nbd_chunk)
		ktap_info "nbd_chunk: $n; $(grep -m1 ' nbd_chunk: ' "$NBD_TMP/fio.trace")"
		[[ $n -gt 0 ]]
	}
	check "nbd_chunk records the chunks" chunks
	holes()
	{
		local n

		n=$(grep -c ' nbd_chunk_range: .* hole at ' "$NBD_TMP/fio.trace")
		ktap_info "holes: $n; $(grep -m1 ' nbd_chunk_range: .* hole at ' "$NBD_TMP/fio.trace")"
		[[ $n -gt 0 ]]
	}
	check "nbd_chunk_range records holes" holes
fi
nbd_detach $DEV >/dev/null 2>&1

# --- a violation, its requeue, and the reconnect of --persist -----------
if [[ $NBD_STOCK == 1 ]]; then
	for t in "a protocol violation is traced" "its request is requeued" \
		 "the reconnect is traced" "the read returns the right data"; do
		skip "$t" "the stock module has no such events"
	done
	ktap_finish
fi

if ! hostile_start h --mode wrong-magic --size 64M \
	--trigger-offset $TRIG_OFF; then
	ktap_fail_rest "cannot start nbd_hostile_server"
	ktap_finish
fi
persist_attach()
{
	timeout 60 "$NBDCTL" connect --persist \
		"nbd+unix:///?socket=$(nbd_sock h)" nbd0 \
		>"$NBD_TMP/persist.out" 2>&1 && nbd_wait_connected $DEV
}
if ! persist_attach; then
	ktap_info_file "$NBD_TMP/persist.out"
	ktap_fail_rest "cannot attach to nbd_hostile_server"
	ktap_finish
fi
trace_on
timeout 60 dd if=$DEV of="$NBD_TMP/got" bs=$BS count=1 \
	skip=$((TRIG_OFF / BS)) iflag=direct status=none
rc=$?
wait_for 30 grep -q ' nbd_reconnect: ' $TR/trace
trace_off bad
check "a protocol violation is traced" \
	test "$(count bad nbd_protocol_violation)" -gt 0
check "its request is requeued" test "$(count bad nbd_requeue)" -gt 0
check "the reconnect is traced" test "$(count bad nbd_reconnect)" -gt 0
# nbd_hostile_server's words hold their own offset
pattern_file $TRIG_OFF $BS "$NBD_TMP/want"
good_read()
{
	[[ $rc -eq 0 ]] || { echo "# dd: exit $rc"; return 1; }
	cmp "$NBD_TMP/got" "$NBD_TMP/want"
}
check "the read returns the right data" good_read
"$NBDCTL" disconnect nbd0 >/dev/null 2>&1
ktap_finish
