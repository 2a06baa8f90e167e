#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Servers restarted under fio verify, with nbdctl connect --persist: no
# write may be lost and no I/O may fail.  A graceful stop (SIGTERM) of
# nbdkit answers the requests in flight with NBD_ESHUTDOWN: the driver
# must resend them (the protocol's soft disconnect), not fail them.  Then
# SIGKILL, which just drops the connection.  nbdkit, qemu-nbd and
# nbd-server, each restarted several times on the same backing file while
# fio writes and verifies in a loop; the persist process reconnects.
# Once nbdkit stays down for 20 s, its socket path gone meanwhile: the
# persist process must keep trying, and find it within the dead-connection
# timeout (60 s, NBD_RESTART_DEAD).
#
# With NBD_STOCK=1 the stock module runs the same; it fails the nbdkit
# SIGTERM case ("Other side returned error (108)", then EIO).
#
# Environment: NBDCTL, the nbdctl binary (the harness builds it);
# NBD_RESTART_MB, MiB per fio job (2 jobs); NBD_RESTART_DEAD, the
# dead-connection timeout (a slow kernel needs more: nbd-server spends
# seconds of CPU on each new client under TCG), also the bound on each
# reconnect, and half of it the handshake timeout; NBD_RESTART_SHORT=1,
# fewer restarts (nbdkit SIGTERM, SIGKILL and down for 20 s, qemu-nbd and
# nbd-server SIGTERM once each) for the slow debug kernel.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
JOB_MB=${NBD_RESTART_MB:-8}
DEAD=${NBD_RESTART_DEAD:-60}

nbd_test_init
SHORT=${NBD_RESTART_SHORT:-0}
ktap_plan $(( SHORT == 1 ? 36 : 48 ))
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit qemu-nbd nbd-server fio perl

require_nbdctl

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
DISK=$NBD_TMP/disk.img
truncate -s 128M "$DISK"

# start_server KIND: the server of this phase on the socket of its name.
start_server()
{
	case $1 in
	nbdkit) rm -f "$(nbd_sock nbdkit)"
		nbdkit_start nbdkit file "$DISK" ;;
	qemu) qemunbd_start qemu -f raw "$DISK" ;;
	nbdserver) nbdserver_start nbdserver "$DISK" && nbdserver_ready ;;
	esac
}

# nbdserver_ready: nbd-server 3.24 computes Diffie-Hellman parameters
# before it answers its first client, which took more than 30 s (the
# attach's handshake timeout) in a loaded TCG guest: wait for an answer
# first, with room to spare.
nbdserver_ready()
{
	"$NBDCTL" info --timeout 150 \
		"nbd+unix:///nbdserver?socket=$(nbd_sock nbdserver)" \
		>"$NBD_TMP/nbdserver-ready.log" 2>&1 ||
		{ ktap_info_file "$NBD_TMP/nbdserver-ready.log"; return 1; }
}

# server_pid KIND: the process to stop (nbd-server: the one serving us).
server_pid()
{
	case $1 in
	nbdkit) cat "$NBD_TMP/nbdkit.pid" ;;
	qemu) pgrep -f -- "-k $(nbd_sock qemu)" | head -n 1 ;;
	nbdserver) cat "$NBD_TMP/nbdserver.pid" ;;
	esac
}

# stop_server KIND SIGNAL: the server is gone (nbd-server's children too).
stop_server()
{
	local pid child

	pid=$(server_pid "$1") || return 1
	[[ -n $pid ]] || return 1
	if [[ $1 == nbdserver ]]; then
		for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
			kill "-$2" "$child"
		done
	fi
	kill "-$2" "$pid" && pid_gone "$pid" 20
}

# fio_loop NAME: write and verify the device, over and over, until
# $NBD_TMP/stop exists; each run's exit status and errors are logged.
fio_loop()
{
	local name=$1 i=0

	while [[ ! -e $NBD_TMP/stop.$name ]]; do
		i=$((i + 1))
		fio_verify "$name.$i" "$DEV" --rw=randwrite --bs=4k \
			--iodepth=16 --numjobs=2 --size=${JOB_MB}M \
			--offset_increment=${JOB_MB}M >/dev/null
		echo "$i $? $(fio_errors "$NBD_TMP/$name.$i.json")" \
			>>"$NBD_TMP/$name.runs"
	done
}

# all_runs_clean NAME: every fio run exited 0 with no error.
all_runs_clean()
{
	local n bad

	n=$(wc -l <"$NBD_TMP/$1.runs")
	bad=$(awk '$2 != 0 || $3 != 0' "$NBD_TMP/$1.runs")
	ktap_info "$n fio runs: $(awk '{ printf "#%s rc=%s errors=%s  ", $1, $2, $3 }' "$NBD_TMP/$1.runs")"
	if [[ -n $bad ]]; then
		ktap_info_file "$NBD_TMP/$1.$(awk '$2 != 0 || $3 != 0 { print $1; exit }' "$NBD_TMP/$1.runs").out" 5
		return 1
	fi
	[[ $n -ge 1 ]]
}

# reconnects KIND: how many reconnects the persist process of KIND logged.
reconnects()
{
	grep -c ': reconnected$' "$NBD_TMP/persist.$1.log"
}

# reconnects_above KIND N: it logged more than N.
reconnects_above()
{
	[[ $(reconnects "$1") -gt $2 ]]
}

# phase KIND SIGNAL[:DOWN]...: attach with --persist, run fio in a loop
# and stop and restart the server once per SIGNAL, after DOWN seconds
# (default 2) without it.
phase()
{
	local kind=$1 sig n=0 persist loop export= down seen=0

	shift
	check "$kind: start the server" start_server "$kind" ||
		{ ktap_bail "no server"; }
	dmesg_mark "$kind"
	# nbd-server names its export; the others serve the default one.
	[[ $kind == nbdserver ]] && export=$kind
	"$NBDCTL" connect "nbd+unix:///$export?socket=$(nbd_sock "$kind")" "$DEV" \
		--persist --foreground --dead-timeout "$DEAD" \
		--handshake-timeout $((DEAD / 2)) \
		>"$NBD_TMP/persist.$kind.out" 2>"$NBD_TMP/persist.$kind.log" &
	persist=$!
	track_pid "$persist"
	check "$kind: nbdctl connect --persist attaches $DEV" \
		nbd_wait_connected "$DEV" "$DEAD" || {
		ktap_info_file "$NBD_TMP/persist.$kind.log"
		ktap_info "nbdctl list: $("$NBDCTL" list 2>&1 | tr '\n' ';')"
		ktap_bail "attach failed"
	}
	nbd_quiesce "$DEV"
	fio_loop "$kind" &
	loop=$!
	track_pid "$loop"
	for sig in "$@"; do
		n=$((n + 1))
		down=2
		[[ $sig == *:* ]] && down=${sig#*:}
		sig=${sig%%:*}
		sleep 3
		check "$kind: restart $n: stop the server with SIG$sig while fio runs" \
			stop_server "$kind" "$sig"
		# The socket path is gone while the server is down (nbdkit
		# leaves it behind after SIGKILL).
		rm -f "$(nbd_sock "$kind")"
		sleep "$down"
		check "$kind: restart $n: start it again on the same file after $down s" \
			start_server "$kind"
		# The next stop only once this restart was survived: stops
		# that come faster than the persist process retries would
		# only test how they line up.
		check "$kind: restart $n: the persist process reconnects" \
			wait_for "$DEAD" reconnects_above "$kind" "$seen"
		seen=$(reconnects "$kind")
	done
	sleep 3
	touch "$NBD_TMP/stop.$kind"
	wait "$loop"
	check "$kind: every fio run exited 0 with zero I/O and verify errors" \
		all_runs_clean "$kind" || {
		ktap_info "server processes: $(pgrep -a -f "$(nbd_sock "$kind")" | tr '\n' ';')"
		ktap_info_file "$NBD_TMP/$kind.log" 15
	}
	check "$kind: the kernel saw no I/O error" \
		eval '! dmesg_since_mark | grep -q "I/O error, dev nbd0"'
	dmesg_since_mark | grep -E 'nbd0|nbd:' | sed 's/^/# kernel: /' | tail -n 12
	sed 's/^/# persist: /' "$NBD_TMP/persist.$kind.log" | tail -n 8
	check "$kind: nbdctl disconnect" quiet "$NBDCTL" disconnect "$DEV"
	check "$kind: the persist process ended" pid_gone "$persist" 15
}

if [[ $SHORT == 1 ]]; then
	phase nbdkit TERM KILL TERM:20
else
	phase nbdkit TERM TERM TERM KILL TERM:20
fi
eshutdown_seen()
{
	# Only ours says so; the stock module fails those requests.
	[[ ${NBD_STOCK:-0} == 1 ]] && return 0
	grep -q 'ESHUTDOWN' "$NBD_TMP/nbdkit.dmesg"
}
dmesg_since_mark >"$NBD_TMP/nbdkit.dmesg"
check "nbdkit: its SIGTERMs came as ESHUTDOWN, resent" eshutdown_seen
if [[ $SHORT == 1 ]]; then
	phase qemu TERM
	phase nbdserver TERM
else
	phase qemu TERM TERM
	phase nbdserver TERM KILL
fi
check "unload nbd" nbd_unload
ktap_finish
