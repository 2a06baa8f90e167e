#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# nbdctl as nbd-client (a symlink named nbd-client): nbd-client's command
# lines as scripts and units write them, their exit codes and their
# output, against real servers.  With NBD_COMPAT_REAL=1 the same checks
# run against the real nbd-client instead, to show where the two agree.
#
# Environment: NBDCTL, the nbdctl binary (the harness builds it).

source "$(dirname "$0")/lib.sh"

PORT=10898
# nbd-client's tests to run with this nbd-client, after the checks here
SUBTESTS=${NBD_COMPAT_SUBTESTS:-nbd_discard}

nbd_test_init
ktap_plan $((19 + $(wc -w <<<"$SUBTESTS")))
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit dd cmp perl
require_nbdctl

BIN=$NBD_TMP/bin
mkdir -p "$BIN"
if [[ ${NBD_COMPAT_REAL:-0} == 1 ]]; then
	CLIENT=$(command -v nbd-client)
else
	ln -s "$NBDCTL" "$BIN/nbd-client"
	CLIENT=$BIN/nbd-client
fi
ktap_info "nbd-client: $CLIENT ($("$CLIENT" -V 2>&1 | head -1))"
client()	# client NAME ARGS...: output in $NBD_TMP/NAME.{out,err,rc}
{
	local name=$1 rc

	shift
	timeout 60 "$CLIENT" "$@" >"$NBD_TMP/$name.out" 2>"$NBD_TMP/$name.err"
	rc=$?
	echo "$rc" >"$NBD_TMP/$name.rc"
	return $rc
}
two_conns()
{
	[[ $(nbd_server_conns "$SOCK") -ge 2 ]]
}
rc_of()
{
	cat "$NBD_TMP/$1.rc"
}

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
# nbdkit's file plugin with dir=: every file is an export of that name.
mkdir -p "$NBD_TMP/exports"
IMG=$NBD_TMP/exports/disk
pattern_file 0 $((8 << 20)) "$IMG"
truncate -s 4M "$NBD_TMP/exports/other"
check "nbdkit with exports 'disk' and 'other' on 127.0.0.1:$PORT" \
	nbdkit_start_tcp disk "$PORT" file dir="$NBD_TMP/exports" ||
	ktap_bail "no server"
SOCK=$(nbd_sock mem)
check "nbdkit memory on a UNIX socket" nbdkit_start mem memory 16M ||
	ktap_bail "no server"

# --- host port device -N name, -c, -d --------------------------------------
attach_tcp()
{
	client tcp 127.0.0.1 "$PORT" /dev/nbd0 -N disk -b 4096 -t 30 ||
		{ cat "$NBD_TMP/tcp.err"; return 1; }
	ktap_info "stdout: $(tr '\n' '|' <"$NBD_TMP/tcp.out") stderr: $(tr '\n' '|' <"$NBD_TMP/tcp.err")"
	nbd_wait_connected /dev/nbd0 10
}
check "nbd-client 127.0.0.1 PORT /dev/nbd0 -N disk -b 4096 -t 30: exit 0" attach_tcp
data_ok()
{
	dd if=/dev/nbd0 of="$NBD_TMP/back" bs=1M count=8 iflag=direct status=none &&
		cmp "$IMG" "$NBD_TMP/back"
}
check "/dev/nbd0 reads back the export" data_ok
check "block size 4096" test "$(cat /sys/block/nbd0/queue/logical_block_size)" = 4096
connected_c()
{
	client c0 -c /dev/nbd0 || return 1
	ktap_info "-c /dev/nbd0: '$(cat "$NBD_TMP/c0.out")'"
	grep -qE '^[0-9]+$' "$NBD_TMP/c0.out"
}
check "nbd-client -c /dev/nbd0: exit 0, a pid" connected_c
check "nbd-client -d /dev/nbd0: exit 0" client d0 -d /dev/nbd0
check "/dev/nbd0 is disconnected" nbd_wait_disconnected /dev/nbd0 10
not_c()
{
	client c1 -c /dev/nbd0
	[[ $(rc_of c1) == 1 && ! -s $NBD_TMP/c1.out ]]
}
check "nbd-client -c /dev/nbd0 when not connected: exit 1, silent" not_c

# --- -unix, -C, -persist, long options with one dash and prefixes -------------
attach_unix()
{
	client unix -unix "$SOCK" /dev/nbd1 -connections 2 -persist ||
		{ cat "$NBD_TMP/unix.err"; return 1; }
	nbd_wait_connected /dev/nbd1 10 &&
		wait_for 10 two_conns
}
check "nbd-client -unix SOCK /dev/nbd1 -connections 2 -persist: 2 connections" attach_unix
survives()
{
	local pid

	pid=$(cat "$NBD_TMP/mem.pid") || return 1
	kill -9 "$pid" && pid_gone "$pid" 10 || return 1
	rm -f "$SOCK"
	nbdkit_start mem memory 16M || return 1
	wait_for 60 two_conns &&
		dd if=/dev/nbd1 of=/dev/null bs=4k count=8 iflag=direct status=none
}
check "-persist: the server restarted, both connections come back" survives
check "nbd-client -d nbd1" client d1 -d /dev/nbd1
check "/dev/nbd1 is disconnected" nbd_wait_disconnected /dev/nbd1 10

# --- -l, errors ---------------------------------------------------------------
listed()
{
	client l -l 127.0.0.1 "$PORT" || return 1
	ktap_info "-l: $(tr '\n' ' ' <"$NBD_TMP/l.out")"
	grep -qx disk "$NBD_TMP/l.out"
}
check "nbd-client -l 127.0.0.1 PORT lists 'disk'" listed
refused()
{
	! client bad 127.0.0.1 "$PORT" /dev/nbd2 -N nosuch &&
		[[ $(rc_of bad) == 1 ]] && ! nbd_connected /dev/nbd2
}
check "an export the server does not have: exit 1, nothing attached" refused
ktap_info "stderr: $(tr '\n' '|' <"$NBD_TMP/bad.err")"
bad_option()
{
	! client opt 127.0.0.1 "$PORT" /dev/nbd2 --bogus-option &&
		[[ $(rc_of opt) == 1 ]] && grep -q 'bogus-option' "$NBD_TMP/opt.err"
}
check "an unknown option: exit 1, named" bad_option
ktap_info "stderr: $(head -1 "$NBD_TMP/opt.err")"

# --- DEVICE alone: /etc/nbdtab ----------------------------------------------------
from_tab()
{
	[[ ${NBD_COMPAT_REAL:-0} == 1 ]] && { ktap_info "(nbd-client reads /etc/nbdtab the same way)"; }
	cp -a /etc/nbdtab "$NBD_TMP/nbdtab.orig" 2>/dev/null
	at_exit 'if [[ -e $NBD_TMP/nbdtab.orig ]]; then cp -a "$NBD_TMP/nbdtab.orig" /etc/nbdtab; else rm -f /etc/nbdtab; fi'
	printf 'nbd3 %s disk port=%s,bs=4096\n' 127.0.0.1 "$PORT" >/etc/nbdtab
	client tab nbd3 || { cat "$NBD_TMP/tab.err"; return 1; }
	nbd_wait_connected /dev/nbd3 10 && client d3 -d /dev/nbd3 &&
		nbd_wait_disconnected /dev/nbd3 10
}
check "nbd-client nbd3 (its /etc/nbdtab line): attached, then -d" from_tab
check "unload nbd" nbd_unload

# Tests written for nbd-client, run with NBD_CLIENT=compat (lib.sh puts
# a symlink named nbd-client to nbdctl first in PATH); each loads and
# unloads the module itself.
subtest()
{
	local log=$NBD_TMP/sub-$1.log rc

	if [[ ${NBD_COMPAT_REAL:-0} == 1 ]]; then
		timeout 600 "$(dirname "$0")/$1.sh" >"$log" 2>&1
	else
		NBD_CLIENT=compat timeout 600 "$(dirname "$0")/$1.sh" >"$log" 2>&1
	fi
	rc=$?
	ktap_info "$1: $(grep -c '^ok ' "$log") ok, $(grep -c '^not ok ' "$log") not ok, exit $rc"
	[[ $rc == 0 ]] || { grep -E '^not ok|^# ' "$log" | head -20 | sed 's/^/# /'; return 1; }
	grep -q "nbd-client here is nbdctl's compat mode" "$log" ||
		[[ ${NBD_COMPAT_REAL:-0} == 1 ]]
}
for t in $SUBTESTS; do
	check "$t, written for nbd-client, passes with this nbd-client" subtest "$t"
done
ktap_finish
