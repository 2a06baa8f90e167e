#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A disconnect when the server has stopped reading: nbdkit is SIGSTOPped
# under fio's 1 MiB writes at queue depth 32, so the socket is full and
# the sender waits on it.  The disconnect must still return within its
# bound (no request timeout is set: disconnect_timeout, set to 15 s here
# so that a loaded debug kernel has time to show the rest), what was in
# flight must fail, no task may be left in D state, and while the
# disconnect waits, STATUS and I/O on another device must answer (they
# are done before it returns).  SIGCONT afterwards
# changes nothing.  By the ioctl interface (nbd-client -L, NBD_DISCONNECT),
# by netlink (nbd-client -d, nbdctl disconnect), and by the last close of
# a device with DISCONNECT_ON_CLOSE (there with nothing in flight: a task
# with I/O on a stuck server cannot close the device, the block layer
# waits for that I/O first).  Finally the module unloads.
#
# The stock module never returns from these disconnects: its task stays
# in D state (run with NBD_STOCK=1 and a short VM timeout to see it).
#
# Environment: NBDCTL, the nbdctl binary (the harness builds it).

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
OTHER=/dev/nbd1
DISC_TIMEOUT=15		# disconnect_timeout while the server is stopped
BOUND=${NBD_STUCK_BOUND:-$((DISC_TIMEOUT + 30))}	# room for slow kernels

nbd_test_init
ktap_plan 30
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-client fio dd

require_nbdctl

check "load nbd" nbd_load nbds_max=4 || ktap_bail "cannot load nbd"
# The stock module has no such parameter (and no bound).
if [[ -w /sys/module/nbd/parameters/disconnect_timeout ]]; then
	echo "$DISC_TIMEOUT" >/sys/module/nbd/parameters/disconnect_timeout
fi
nbdkit_start other memory 64M || ktap_bail "cannot start nbdkit"
check "attach $OTHER to a healthy server" nbd_attach "$OTHER" "$(nbd_sock other)" ||
	ktap_bail "attach failed"

FIO_PID=
start_fio()
{
	timeout 300 fio --name=stuck --filename="$DEV" --ioengine=libaio \
		--direct=1 --rw=write --bs=1M --iodepth=32 --size=512M \
		--time_based --runtime=240 >"$NBD_TMP/fio.$1.out" 2>&1 &
	FIO_PID=$!
	track_pid "$FIO_PID"
}

# D-state tasks other than kernel threads (kthreadd, pid 2, and its
# children), as "pid comm" lines: nbd-client and nbdctl count.
d_state_tasks()
{
	ps -eo pid=,ppid=,stat=,comm= |
		awk '$3 ~ /^D/ && $1 != 2 && $2 != 2 { print $1, $4 }'
}

# status_answers PID: STATUS (nbdctl list) answers and says the other
# device is connected, and a read of it works, both while the disconnect
# PID is still waiting (a STATUS or a read stuck behind the disconnect
# would only end after it).
status_answers()
{
	local disc=$1 t0=$SECONDS

	timeout 10 "$NBDCTL" list >"$NBD_TMP/list.out" 2>&1 || {
		ktap_info_file "$NBD_TMP/list.out"
		return 1
	}
	ktap_info "nbdctl list answered in $((SECONDS - t0)) s"
	grep -q "^$OTHER .*connected" "$NBD_TMP/list.out" || {
		ktap_info_file "$NBD_TMP/list.out"
		return 1
	}
	t0=$SECONDS
	timeout 30 dd if="$OTHER" of=/dev/null bs=4096 count=1 \
		iflag=direct status=none 2>"$NBD_TMP/other.err" || {
		ktap_info "reading $OTHER failed after $((SECONDS - t0)) s: $(cat "$NBD_TMP/other.err")"
		return 1
	}
	ktap_info "a read of $OTHER took $((SECONDS - t0)) s"
	kill -0 "$disc" 2>/dev/null || {
		ktap_info "but the disconnect had returned by then"
		return 1
	}
}

no_d_state_tasks()
{
	[[ -z $(d_state_tasks) ]]
}

# stuck NAME DISCONNECT-CMD...: with a stopped server under fio writes,
# run the disconnect, check STATUS meanwhile, then the outcome.
stuck()
{
	local name=$1 pid t0 rc

	shift
	nbd_quiesce "$DEV"
	start_fio "$name"
	if ! wait_for 60 nbd_writing "$DEV"; then
		not_ok "$name: fio has writes in flight"
		ktap_info_file "$NBD_TMP/fio.$name.out"
		return 1
	fi
	sleep 2
	kill -STOP "$(cat "$NBD_TMP/$name.pid")"
	sleep 1
	# Writes the stopped server holds: the disconnect must wait for them.
	if ! nbd_writing "$DEV"; then
		not_ok "$name: fio writes in flight, server stopped"
		ktap_info "in flight: $(cat "/sys/block/${DEV#/dev/}/inflight")"
		ktap_info_file "$NBD_TMP/fio.$name.out"
		ktap_bail "nothing in flight to wait for"
	fi
	ok "$name: fio writes in flight, server stopped"

	t0=$SECONDS
	"$@" >"$NBD_TMP/disc.$name.out" 2>&1 &
	pid=$!
	track_pid "$pid"
	sleep 1
	check "$name: STATUS and another device answer during the disconnect" \
		status_answers "$pid"
	if wait_for "$BOUND" _pid_gone "$pid"; then
		wait "$pid"
		rc=$?
		ok "$name: the disconnect returned after $((SECONDS - t0)) s (status $rc)"
	else
		not_ok "$name: the disconnect has not returned after $BOUND s"
		ktap_info "tasks in D state: $(d_state_tasks | tr '\n' ' ')"
		ktap_bail "disconnect hung"
	fi
	check "$name: $DEV is disconnected" nbd_wait_disconnected "$DEV" 20
	check "$name: fio ended (its writes failed)" \
		eval 'wait_for 30 _pid_gone "$FIO_PID" && ! wait "$FIO_PID"'
	# A task stuck stays in D state; one passing through a lock leaves.
	check "$name: no task in D state" wait_for 10 no_d_state_tasks ||
		ktap_info "tasks in D state: $(d_state_tasks | tr '\n' ' ')"
	kill -CONT "$(cat "$NBD_TMP/$name.pid")"
	sleep 1
	check "$name: after SIGCONT, $DEV stays disconnected and $OTHER works" \
		eval 'nbd_disconnected "$DEV" &&
		      dd if="$OTHER" of=/dev/null bs=4096 count=1 iflag=direct status=none'
}

for s in ioctl netlink nbdctl close; do
	nbdkit_start "$s" memory 1G || ktap_bail "cannot start nbdkit"
done

check "ioctl: attach (nbd-client -L)" nbd_attach "$DEV" "$(nbd_sock ioctl)" -L ||
	ktap_bail "attach failed"
stuck ioctl nbd-client -L -d "$DEV"

check "netlink: attach (nbd-client)" nbd_attach "$DEV" "$(nbd_sock netlink)" ||
	ktap_bail "attach failed"
stuck netlink nbd-client -d "$DEV"

check "nbdctl: attach" \
	quiet "$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock nbdctl)" "$DEV" ||
	ktap_bail "attach failed"
stuck nbdctl "$NBDCTL" disconnect "$DEV"

# Last close, DISCONNECT_ON_CLOSE: the server stopped, nothing in flight.
close_disconnects()
{
	local t0=$SECONDS

	exec {fd}<"$DEV"
	kill -STOP "$(cat "$NBD_TMP/close.pid")"
	exec {fd}<&-
	wait_for "$BOUND" nbd_disconnected "$DEV" || return 1
	ktap_info "disconnected $((SECONDS - t0)) s after the last close"
	kill -CONT "$(cat "$NBD_TMP/close.pid")"
}
check "close: attach with --disconnect-on-close" \
	quiet "$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock close)" "$DEV" \
	--disconnect-on-close || ktap_bail "attach failed"
nbd_quiesce "$DEV"
check "close: the last close of a stopped server's device disconnects it" \
	close_disconnects

check "detach $OTHER" nbd_detach "$OTHER"
check "unload nbd" nbd_unload
ktap_finish
