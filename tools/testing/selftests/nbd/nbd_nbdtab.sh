#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# nbdctl for every day: devices from an nbdtab (up, down, connect DEVICE),
# the persist process re-attached after SIGKILL while fio verifies (nbdctl
# persist), check and wait, readiness for systemd (sd_notify), and the
# server's address resolved once (a reconnect makes no look-up).
#
# Environment: NBDCTL, the nbdctl binary (the harness builds it).

source "$(dirname "$0")/lib.sh"

JOB_MB=${NBD_NBDTAB_MB:-4}	# per fio job (2 jobs)
PORT=10899

nbd_test_init
ktap_plan 33
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit fio perl parted python3 getent
require_nbdctl

check "load nbd max_part=8" nbd_load max_part=8 || ktap_bail "cannot load nbd"
dmesg_mark nbdtab

# A disk with one partition, so that --wait has a partition to wait for.
DISK=$NBD_TMP/disk.img
truncate -s 64M "$DISK"
# MBR: its sector numbers hold for any block size (in blocks), a GPT not
parted -s "$DISK" -- mklabel msdos mkpart primary 1MiB 8MiB >/dev/null 2>&1
SOCK=$(nbd_sock tab)
start_server()
{
	rm -f "$SOCK"
	nbdkit_start tab file "$DISK"
}
check "start nbdkit on a partitioned image" start_server || ktap_bail "no server"

TAB=$NBD_TMP/nbdtab
cat >"$TAB" <<EOF
# nbd-client's format: DEVICE HOST EXPORT OPTIONS
nbd0	$SOCK	-	unix,bs=4096,conns=2,persist,dead_timeout=120

nbd1	127.0.0.1	none	port=1,noauto
nbd2	nbd+unix:///?socket=$SOCK	-	bs=4096
EOF
pid_of()	# pid_of DEV: the persist process the state file names
{
	sed -n 's/^pid=//p' "/run/nbdctl/${1#/dev/}" 2>/dev/null
}
lbs()
{
	cat "/sys/block/${1#/dev/}/queue/logical_block_size"
}

# --- up / down -------------------------------------------------------------
up_all()
{
	nbdctl_run up up --nbdtab "$TAB" --all || { cat "$NBD_TMP/up.err"; return 1; }
	nbd_wait_connected /dev/nbd0 20 && nbd_connected /dev/nbd2 &&
		! nbd_connected /dev/nbd1
}
check "up --all: nbd0 and nbd2 connected, noauto nbd1 not" up_all
with_options()
{
	local c

	c=$(nbd_server_conns "$SOCK")
	ktap_info "nbd0: block size $(lbs nbd0), $c connections at the server"
	[[ $(lbs nbd0) == 4096 && $c -ge 2 ]]
}
check "nbd0 has the line's options: bs=4096, conns=2" with_options
P1=$(pid_of nbd0)
marked()
{
	local argv0 adj lck

	argv0=$(tr '\0' '\n' <"/proc/$P1/cmdline" | head -1)
	adj=$(cat "/proc/$P1/oom_score_adj")
	lck=$(awk '/^VmLck:/ { print $2 }' "/proc/$P1/status")
	ktap_info "persist process $P1: argv[0] '$argv0', oom_score_adj $adj, VmLck $lck kB"
	[[ $argv0 == @* && $adj == -1000 && $lck -gt 0 ]]
}
check "the persist process: argv[0] '@...', oom_score_adj -1000, mlocked" marked
check_pid()
{
	local out

	out=$("$NBDCTL" check nbd0) || return 1
	ktap_info "check nbd0: '$out'"
	[[ $out == "$P1" ]]
}
check "check nbd0: exit 0, prints the persist pid" check_pid
up_again()
{
	nbdctl_run up2 up --nbdtab "$TAB" nbd0 || return 1
	ktap_info "$(cat "$NBD_TMP/up2.out")"
	grep -q 'is up' "$NBD_TMP/up2.out" && [[ $(pid_of nbd0) == "$P1" ]]
}
check "up nbd0 again: left alone, same persist process" up_again

# --- re-attach: the persist process killed, then the server ------------------
fio_job()
{
	timeout 600 fio --name=adopt --filename=/dev/nbd0 --ioengine=libaio \
		--direct=1 --rw=randwrite --bs=4k --iodepth=16 --numjobs=2 \
		--size=${JOB_MB}M --offset_increment=${JOB_MB}M --offset=1M \
		--verify=crc32c --verify_fatal=1 --do_verify=1 \
		--output-format=json --output="$NBD_TMP/fio.json" \
		>"$NBD_TMP/fio.out" 2>&1
	echo $? >"$NBD_TMP/fio.rc"
}
fio_job &
FIO=$!
track_pid "$FIO"
wait_for 30 test -s "$NBD_TMP/fio.json" 2>/dev/null
sleep 1
kill_daemon()
{
	kill -9 "$P1" && pid_gone "$P1" 10
}
check "SIGKILL the persist process while fio runs" kill_daemon
server_bounced()
{
	local pid

	pid=$(cat "$NBD_TMP/tab.pid") || return 1
	kill -9 "$pid" && pid_gone "$pid" 10 || return 1
	sleep 2
	start_server
}
check "SIGKILL the server and restart it: nobody reconnects" server_bounced
wrong_backend()
{
	! nbdctl_run wrong persist nbd0 "nbd+unix:///other?socket=$SOCK" &&
		grep -q 'is connected to' "$NBD_TMP/wrong.err" &&
		nbd_connected /dev/nbd0
}
check "persist nbd0 with another export: refused, nbd0 untouched" wrong_backend
ktap_info "$(cat "$NBD_TMP/wrong.err")"
adopt()
{
	nbdctl_run adopt persist nbd0 --nbdtab "$TAB" || { cat "$NBD_TMP/adopt.err"; return 1; }
	ktap_info "$(cat "$NBD_TMP/adopt.out")"
	P2=$(pid_of nbd0)
	[[ -n $P2 && $P2 != "$P1" ]] && kill -0 "$P2"
}
check "nbdctl persist nbd0: adopted by a new persist process" adopt
conns_back()
{
	[[ $(nbd_server_conns "$SOCK") -ge 2 ]]
}
check "both dead connections replaced" wait_for 60 conns_back
fio_done()
{
	local errs

	wait "$FIO"
	errs=$(fio_errors "$NBD_TMP/fio.json")
	ktap_info "fio: rc $(cat "$NBD_TMP/fio.rc"), errors $errs"
	[[ $(cat "$NBD_TMP/fio.rc") == 0 && $errs == 0 ]] ||
		{ ktap_info_file "$NBD_TMP/fio.out"; return 1; }
}
check "fio verify finishes: no I/O or verify error" fio_done
no_io_error()
{
	! dmesg_since_mark | grep -q 'I/O error, dev nbd0'
}
check "the kernel saw no I/O error on nbd0" no_io_error
twice()
{
	! nbdctl_run twice persist nbd0 --nbdtab "$TAB" &&
		grep -q 'kept by persist process' "$NBD_TMP/twice.err"
}
check "persist nbd0 while one runs: refused" twice

# --- down ----------------------------------------------------------------------
down_all()
{
	nbdctl_run down down --nbdtab "$TAB" --all
	ktap_info "down --all: rc $(cat "$NBD_TMP/down.rc") $(cat "$NBD_TMP/down.err")"
	nbd_wait_disconnected /dev/nbd0 10 || { ktap_info "nbd0 still connected"; return 1; }
	nbd_wait_disconnected /dev/nbd2 10 || { ktap_info "nbd2 still connected"; return 1; }
	pid_gone "$P2" 10 || { ktap_info "persist process $P2 still there"; return 1; }
	[[ $(cat "$NBD_TMP/down.rc") == 0 ]]
}
check "down --all: both disconnected, the persist process ended" down_all
not_connected()
{
	local out rc

	out=$("$NBDCTL" check nbd0 2>&1)
	rc=$?
	[[ $rc == 1 && -z $out ]]
}
check "check nbd0: exit 1, silent" not_connected
check "down nbd0 again: exit 0" "$NBDCTL" down nbd0
bad_line()
{
	printf 'nbd3 host exp bs=4096\nnbd3x host\nnbd4 host exp bogus=1\n' >"$NBD_TMP/bad"
	nbdctl_run bad up --nbdtab "$NBD_TMP/bad" nbd4
	[[ $(cat "$NBD_TMP/bad.rc") == 2 ]] &&
		grep -q 'line 3' "$NBD_TMP/bad.err" &&
		grep -q 'line 2' "$NBD_TMP/bad.err" &&
		! nbd_connected /dev/nbd4
}
check "a bad nbdtab line: exit 2, the line's number, nothing attached" bad_line
ktap_info_file "$NBD_TMP/bad.err"

# --- connect DEVICE (options appended), --wait, wait ----------------------------
connect_tab()
{
	nbdctl_run ctab connect --nbdtab "$TAB" nbd2 -b 512 --wait ||
		{ cat "$NBD_TMP/ctab.err"; return 1; }
	# no sleep, no udevadm: --wait returned after udev made the node
	[[ -b /dev/nbd2p1 ]] && return 0
	ktap_info "$(cat "$NBD_TMP/ctab.out" "$NBD_TMP/ctab.err")"
	ktap_info "nodes: $(echo /dev/nbd2*), sysfs: $(echo /sys/block/nbd2/nbd2*)"
	return 1
}
check "connect --wait nbd2 (from the table): /dev/nbd2p1 exists on return" connect_tab
check "the command line's -b 512 wins over bs=4096" test "$(lbs nbd2)" = 512
check "wait nbd2: exit 0" "$NBDCTL" wait nbd2 --timeout 10
check "disconnect nbd2" "$NBDCTL" disconnect nbd2
wait_times_out()
{
	local t0=$SECONDS rc

	"$NBDCTL" wait nbd5 --timeout 2 2>"$NBD_TMP/wait.err"
	rc=$?
	ktap_info "wait nbd5: rc $rc after $((SECONDS - t0)) s: $(cat "$NBD_TMP/wait.err")"
	[[ $rc == 1 && $((SECONDS - t0)) -le 8 ]]
}
check "wait on an unconnected device: exit 1 after its timeout" wait_times_out

# --- systemd: Type=notify --------------------------------------------------------
NSOCK=$NBD_TMP/notify.sock
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", " ") + "\n")
        f.flush()
' "$NSOCK" "$NBD_TMP/notify.log" &
track_pid $!
wait_for 10 test -S "$NSOCK"
: >"$NBD_TMP/notify.log"
NOTIFY_SOCKET=$NSOCK "$NBDCTL" up --nbdtab "$TAB" --foreground nbd2 \
	>"$NBD_TMP/fg.out" 2>"$NBD_TMP/fg.log" &
FG=$!
track_pid "$FG"
ready()
{
	wait_for 30 grep -q 'READY=1' "$NBD_TMP/notify.log" || return 1
	ktap_info "notify: $(head -1 "$NBD_TMP/notify.log")"
	nbd_connected /dev/nbd2 && grep -q "MAINPID=$FG" "$NBD_TMP/notify.log"
}
check "up --foreground: READY=1 with MAINPID once nbd2 is connected" ready
stopped()
{
	local rc

	"$NBDCTL" down nbd2 || return 1
	pid_gone "$FG" 15 || return 1
	wait "$FG"
	rc=$?
	ktap_info "foreground process: exit $rc; notify: $(tail -1 "$NBD_TMP/notify.log")"
	[[ $rc == 0 ]] && grep -q 'STOPPING=1' "$NBD_TMP/notify.log" &&
		nbd_disconnected /dev/nbd2
}
check "down nbd2 (ExecStop): the process says STOPPING=1 and exits 0" stopped

# --- the server's name is resolved once ------------------------------------------
cp /etc/hosts "$NBD_TMP/hosts.orig"
at_exit 'cat "$NBD_TMP/hosts.orig" >/etc/hosts'
echo "127.0.0.1 nbdtab-test-server" >>/etc/hosts
TDISK=$NBD_TMP/tcp.img
truncate -s 16M "$TDISK"
check "start nbdkit on 127.0.0.1:$PORT" nbdkit_start_tcp tcp "$PORT" file "$TDISK"
"$NBDCTL" connect "nbd://nbdtab-test-server:$PORT/" nbd3 --persist \
	--foreground --dead-timeout 60 >/dev/null 2>"$NBD_TMP/dns.log" &
DNS=$!
track_pid "$DNS"
check "connect nbd://nbdtab-test-server:$PORT/ --persist" nbd_wait_connected /dev/nbd3 30
# Now the name leads nowhere (nothing listens on 127.0.0.2): only the
# address saved at connect reaches the server.
name_moved()
{
	{ cat "$NBD_TMP/hosts.orig"; echo "127.0.0.2 nbdtab-test-server"; } >/etc/hosts
	[[ $(getent hosts nbdtab-test-server | awk '{ print $1 }') == 127.0.0.2 ]]
}
check "the name now resolves to 127.0.0.2, where nothing listens" name_moved
tcp_bounced()
{
	local pid

	pid=$(cat "$NBD_TMP/tcp.pid") || return 1
	kill -9 "$pid" && pid_gone "$pid" 10 || return 1
	sleep 1
	nbdkit_start_tcp tcp "$PORT" file "$TDISK"
}
check "restart the server" tcp_bounced
reconnected_by_address()
{
	wait_for 60 grep -q 'reconnected' "$NBD_TMP/dns.log" || return 1
	dd if=/dev/nbd3 of=/dev/null bs=4k count=16 iflag=direct status=none
}
check "reconnected through the saved address, I/O works" reconnected_by_address
sed 's/^/# persist: /' "$NBD_TMP/dns.log"
check "disconnect nbd3" "$NBDCTL" disconnect nbd3
check "unload nbd" nbd_unload
ktap_finish
