#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Soak: mixed fio verify over several connections while the server is
# killed (SIGKILL), stopped gracefully (SIGTERM: NBD_ESHUTDOWN, a soft
# disconnect), stopped and continued (SIGSTOP/SIGCONT), the device
# resized, and the device re-attached with another connection count, at
# random intervals, for NBD_SOAK_SECONDS.  nbdctl connect --persist
# reconnects.  Pass: every fio run exits 0 with zero I/O and verify
# errors, no I/O error in the kernel log, the persist process survives
# every fault, and no task hangs (hung_task_timeout_secs is set to 120 s,
# the kernel's default, and the harness fails on a hung-task report: the
# outages the soak causes, a server stopped for up to 8 s or restarted,
# plus the persist process's backoff, can keep I/O waiting longer than
# 30 s on the debug kernel, which is no hang).
#
# The workload (each fio run, over and over in each round):
#   - random writes of 512 B to 64 KiB, with reads verifying behind them
#     (verify_backlog) and a flush every 16 writes;
#   - FUA writes (O_SYNC), verified;
#   - trim-then-write (trimwrite), verified;
#   - random reads of 4 KiB to 128 KiB.
# The server is nbdkit's file plugin on a file in the guest (TCP).
# Faults are drawn from a generator seeded by NBD_SOAK_SEED (default: the
# time; the seed is printed, so a run can be repeated).
#
# Environment: NBDCTL; NBD_SOAK_SECONDS (default 180); NBD_SOAK_CONNS,
# the connection count most rounds use (default 4); NBD_SOAK_MB, MiB per
# fio job (default 8); NBD_SOAK_SEED.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
DURATION=${NBD_SOAK_SECONDS:-180}
CONNS=${NBD_SOAK_CONNS:-4}
JOB_MB=${NBD_SOAK_MB:-8}
SEED=${NBD_SOAK_SEED:-$(date +%s)}
PORT=10810
DEAD=120
STOCK=${NBD_STOCK:-0}

nbd_test_init
ktap_plan 12
ktap_info "module: $(nbd_module_desc)"
ktap_info "seed $SEED (NBD_SOAK_SEED=$SEED repeats the faults), $DURATION s"
require_cmds nbdkit fio perl
require_nbdctl
RANDOM=$SEED

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
if [[ -w /proc/sys/kernel/hung_task_timeout_secs ]]; then
	old_hung=$(cat /proc/sys/kernel/hung_task_timeout_secs)
	echo 120 >/proc/sys/kernel/hung_task_timeout_secs
	at_exit "echo $old_hung >/proc/sys/kernel/hung_task_timeout_secs"
	ktap_info "hung_task_timeout_secs: 120 (was $old_hung)"
else
	ktap_info "this kernel has no hung task detector"
fi

DISK=$NBD_TMP/soak.img
SMALL=$((4 * JOB_MB + 16))	# MiB: the four fio regions, and more
BIG=$((SMALL + 32))
truncate -s "${BIG}M" "$DISK"
size_now=$BIG

# start_server: nbdkit on the port; a few tries, as the port may still be
# held for a moment by the server just stopped.
start_server()
{
	local i

	for i in 1 2 3 4 5; do
		nbdkit_start_tcp soak "$PORT" file "$DISK" >/dev/null && return 0
		sleep 1
	done
	nbdkit_start_tcp soak "$PORT" file "$DISK"
}

# stop_server SIGNAL: the server is gone.  After SIGTERM nbdkit finishes
# its connections first; one that takes over 60 s is killed (and said).
stop_server()
{
	local pid

	pid=$(server_pid)
	[[ -n $pid ]] || return 0
	kill "-$1" "$pid" 2>/dev/null
	pid_gone "$pid" 60 && return 0
	fault "the server was still there 60 s after SIG$1: SIGKILL"
	kill -KILL "$pid" 2>/dev/null
	pid_gone "$pid" 20
}

server_pid()
{
	cat "$NBD_TMP/soak.pid" 2>/dev/null
}

FAULTS=$NBD_TMP/faults.log
: >"$FAULTS"
fault()	# fault WHAT: log one injected fault
{
	echo "$SECONDS $*" >>"$FAULTS"
	ktap_info "t=$SECONDS s: $*"
}

# fio_round NAME: one fio run of the mixed verify workload.
fio_round()
{
	local r=$((JOB_MB * 1024 * 1024))

	timeout 600 fio --output-format=json --output="$NBD_TMP/$1.json" \
		--filename="$DEV" --ioengine=libaio --direct=1 \
		--randseed="$RANDOM" --iodepth=8 \
		--name=mixed --rw=randwrite --bsrange=512-64k \
		--offset=0 --size=${JOB_MB}M --verify=crc32c \
		--verify_backlog=32 --verify_fatal=1 --fsync=16 \
		--name=fua --rw=randwrite --bs=4k --sync=1 \
		--offset=$r --size=$((JOB_MB / 2))M --verify=crc32c \
		--verify_fatal=1 \
		--name=trim --rw=trimwrite --bsrange=4k-64k \
		--offset=$((2 * r)) --size=$((JOB_MB / 2))M --verify=crc32c \
		--verify_fatal=1 \
		--name=read --rw=randread --bsrange=4k-128k \
		--offset=$((3 * r)) --size=${JOB_MB}M \
		>"$NBD_TMP/$1.out" 2>&1
}

# fio_loop: fio runs until $NBD_TMP/stop exists; "N rc errors ios" each.
fio_loop()
{
	local i=0 rc

	while [[ ! -e $NBD_TMP/stop ]]; do
		i=$((i + 1))
		fio_round "soak.$ROUND.$i"
		rc=$?
		echo "$ROUND.$i $rc $(fio_errors "$NBD_TMP/soak.$ROUND.$i.json") $(fio_total_ios "$NBD_TMP/soak.$ROUND.$i.json")" \
			>>"$NBD_TMP/runs"
	done
}

# fio_total_ios JSON: reads + writes + trims fio completed.
fio_total_ios()
{
	echo $(($(fio_ios "$1" read) + $(fio_ios "$1" write) + $(fio_ios "$1" trim)))
}

attach()	# attach N: nbdctl connect --persist with N connections
{
	"$NBDCTL" connect "nbd://127.0.0.1:$PORT" "$DEV" -C "$1" \
		--persist --foreground --dead-timeout "$DEAD" --timeout 60 \
		--handshake-timeout 60 \
		>>"$NBD_TMP/persist.out" 2>>"$NBD_TMP/persist.log" &
	PERSIST=$!
	track_pid "$PERSIST"
	nbd_wait_connected "$DEV" 60
}

reconnects()
{
	grep -c ': reconnected$' "$NBD_TMP/persist.log"
}

persist_alive()
{
	kill -0 "$PERSIST" 2>/dev/null
}

# persist_guarded: the persist process locked its memory and asked the
# OOM killer to leave it alone.
persist_guarded()
{
	local adj lck

	adj=$(cat "/proc/$PERSIST/oom_score_adj" 2>/dev/null)
	lck=$(awk '/^VmLck:/ { print $2 }' "/proc/$PERSIST/status" 2>/dev/null)
	ktap_info "persist process: oom_score_adj ${adj:-?}, VmLck ${lck:-?} kB"
	[[ $adj == -1000 && ${lck:-0} -gt 0 ]]
}

# inject: one fault, drawn at random.
inject()
{
	local pid pick=$((RANDOM % 10)) t

	pid=$(server_pid)
	case $pick in
	0 | 1 | 2)
		fault "SIGKILL the server"
		stop_server KILL
		sleep $((RANDOM % 3))
		start_server || echo "the server did not start again" >>"$NBD_TMP/errors" ;;
	3 | 4 | 5)
		fault "SIGTERM the server (NBD_ESHUTDOWN)"
		stop_server TERM
		sleep $((RANDOM % 3))
		start_server || echo "the server did not start again" >>"$NBD_TMP/errors" ;;
	6 | 7)
		t=$((2 + RANDOM % 7))
		fault "SIGSTOP the server for $t s"
		kill -STOP "$pid"; sleep "$t"; kill -CONT "$pid" ;;
	*)
		if [[ $size_now == "$BIG" ]]; then
			size_now=$SMALL
		else
			size_now=$BIG
		fi
		fault "resize to $size_now MiB"
		"$NBDCTL" reconfigure "$DEV" --size "${size_now}M" \
			>>"$NBD_TMP/reconfigure.log" 2>&1 ||
			echo "resize to $size_now MiB failed" >>"$NBD_TMP/errors"
		;;
	esac
}

check "start nbdkit on 127.0.0.1:$PORT" start_server || ktap_bail "no server"
dmesg_mark soak
: >"$NBD_TMP/runs"
ROUND=0
t_end=$((SECONDS + DURATION))
rounds_ok=1
persist_ok=1
while [[ $SECONDS -lt $t_end ]]; do
	ROUND=$((ROUND + 1))
	# most rounds use NBD_SOAK_CONNS connections, some fewer
	n=$CONNS
	[[ $ROUND -gt 1 && $((RANDOM % 3)) == 0 ]] && n=$((1 + RANDOM % CONNS))
	[[ $ROUND -gt 1 ]] && fault "re-attach with $n connection(s)"
	if ! attach "$n"; then
		ktap_info_file "$NBD_TMP/persist.log" 10
		rounds_ok=0
		break
	fi
	size_now=$BIG
	[[ $ROUND == 1 ]] && { persist_guarded; guarded=$?; }
	rm -f "$NBD_TMP/stop"
	fio_loop &
	loop=$!
	track_pid "$loop"
	# a round lasts 40-100 s, faults every 4-12 s
	t_round=$((SECONDS + 40 + RANDOM % 60))
	[[ $t_round -gt $t_end ]] && t_round=$t_end
	while [[ $SECONDS -lt $t_round ]]; do
		sleep $((4 + RANDOM % 9))
		inject
		persist_alive || { persist_ok=0; break; }
	done
	touch "$NBD_TMP/stop"
	wait "$loop"
	persist_alive || persist_ok=0
	"$NBDCTL" disconnect "$DEV" >>"$NBD_TMP/persist.log" 2>&1
	pid_gone "$PERSIST" 30 || { persist_ok=0; kill_pid "$PERSIST"; }
	[[ $persist_ok == 1 ]] || break
done

runs=$(wc -l <"$NBD_TMP/runs")
ios=$(awk '{ s += $4 } END { print s + 0 }' "$NBD_TMP/runs")
bad=$(awk '$2 != 0 || $3 != 0' "$NBD_TMP/runs")
nfaults=$(wc -l <"$FAULTS")
ktap_info "soak: $ROUND rounds, $runs fio runs, $ios I/Os, $nfaults faults ($(awk '{ $1 = ""; print }' "$FAULTS" | sed 's/ for [0-9]* s//; s/ to [0-9]* MiB//; s/ with [0-9]* conn.*//' | sort | uniq -c | tr -s ' ' | tr '\n' ';')), $(reconnects) reconnects"
ktap_info "runs (round.run rc errors ios): $(tr '\n' ' ' <"$NBD_TMP/runs")"
check "every round attached" test "$rounds_ok" = 1
check "the persist process survived every fault" test "$persist_ok" = 1
check "the persist process locked its memory and is not the OOM killer's" \
	test "${guarded:-1}" = 0
# at least one every two minutes (the debug kernel restarts slowly)
min_faults=$((DURATION / 120))
[[ $min_faults -ge 1 ]] || min_faults=1
check "faults were injected ($nfaults, at least $min_faults)" \
	test "$nfaults" -ge "$min_faults"
check "the persist process reconnected" test "$(reconnects)" -ge 1
if [[ $STOCK == 1 ]]; then
	# The stock module fails a request the server answers with
	# ESHUTDOWN (108) instead of resending it.
	ktap_info "stock module: fio runs with errors: $(echo "$bad" | grep -c .)"
fi
check "fio ran ($runs runs, $ios I/Os)" test "$runs" -ge 1 -a "$ios" -gt 0
check "every fio run exited 0 with zero I/O and verify errors" \
	test -z "$bad" || {
	first=$(echo "$bad" | head -n 1 | cut -d' ' -f1)
	ktap_info_file "$NBD_TMP/soak.$first.out" 10
}
check "the kernel saw no I/O error" \
	eval '! dmesg_since_mark | grep -q "I/O error, dev nbd0"'
check "every resize and server restart worked" test ! -s "$NBD_TMP/errors" ||
	ktap_info_file "$NBD_TMP/errors"
check "unload nbd" nbd_unload
ktap_finish
