#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Shared helpers for the nbd selftests: TAP output, loading the module
# under test, NBD servers on UNIX sockets, waiting for devices, kernel
# log markers and cleanup.  Source it from a test:
#
#	source "$(dirname "$0")/lib.sh"
#
# Environment (set by tools/testing/vm/vm-run.sh):
#	NBD_KO          path of the nbd.ko to test (empty with NBD_STOCK=1)
#	NBD_STOCK       1: test the kernel's own module (modprobe nbd)
#	NBD_SRCVERSION  srcversion NBD_KO must show once loaded
#	NBD_KREL        kernel release (informational)
#
# Every test gets a private directory $NBD_TMP, and an EXIT trap that
# unmounts, disconnects every nbd device, stops the servers and other
# background processes it started, and unloads the module, whatever
# happened before.

NBD_SELFTEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
NBD_TEST_NAME=${NBD_TEST_NAME:-$(basename "$0" .sh)}

# kselftest exit codes
KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4

# ---------------------------------------------------------------------------
# TAP / KTAP output
# ---------------------------------------------------------------------------

_ktap_planned=0
_ktap_num=0
_ktap_npass=0
_ktap_nfail=0
_ktap_nskip=0

# ktap_plan N: the header and the number of checks the test will report.
ktap_plan()
{
	_ktap_planned=$1
	echo "TAP version 13"
	echo "1..$1"
}

# ktap_info TEXT...: a diagnostic line.
ktap_info()
{
	local line

	while IFS= read -r line; do
		echo "# $line"
	done <<<"$*"
}

# ktap_info_file FILE [MAX_LINES]: a file's lines as diagnostics.
ktap_info_file()
{
	[[ -s $1 ]] || return 0
	tail -n "${2:-20}" "$1" | sed 's/^/#   /'
}

ok()
{
	_ktap_num=$((_ktap_num + 1))
	_ktap_npass=$((_ktap_npass + 1))
	echo "ok $_ktap_num $*"
}

not_ok()
{
	_ktap_num=$((_ktap_num + 1))
	_ktap_nfail=$((_ktap_nfail + 1))
	echo "not ok $_ktap_num $*"
}

# skip DESCRIPTION REASON: only for a check that does not apply here.
# Reported as "# SKIP", never counted as a pass.
skip()
{
	_ktap_num=$((_ktap_num + 1))
	_ktap_nskip=$((_ktap_nskip + 1))
	echo "ok $_ktap_num $1 # SKIP ${2:-}"
}

# ktap_result RC DESCRIPTION: ok when RC is 0.
ktap_result()
{
	local rc=$1

	shift
	if [[ $rc -eq 0 ]]; then
		ok "$@"
	else
		not_ok "$@"
	fi
}

# check DESCRIPTION CMD [ARGS...]: run CMD, ok when it succeeds.
check()
{
	local desc=$1

	shift
	if "$@"; then
		ok "$desc"
	else
		not_ok "$desc"
		return 1
	fi
}

# ktap_fail_rest REASON: report every check not reached yet as failed.
ktap_fail_rest()
{
	while [[ $_ktap_num -lt $_ktap_planned ]]; do
		not_ok "not reached: $*"
	done
}

# ktap_bail REASON: give up on the test; the unreached checks fail.
ktap_bail()
{
	ktap_info "giving up: $*"
	ktap_fail_rest "$*"
	ktap_finish
}

# ktap_finish: the totals, then exit with the kselftest status.
ktap_finish()
{
	local rc=$KSFT_PASS

	if [[ $_ktap_num -ne $_ktap_planned ]]; then
		ktap_info "planned $_ktap_planned checks but ran $_ktap_num"
		rc=$KSFT_FAIL
	fi
	if [[ $_ktap_nfail -gt 0 ]]; then
		rc=$KSFT_FAIL
	elif [[ $rc -eq $KSFT_PASS && $_ktap_npass -eq 0 &&
		$_ktap_nskip -gt 0 ]]; then
		rc=$KSFT_SKIP
	fi
	echo "# Totals: pass:$_ktap_npass fail:$_ktap_nfail xfail:0 xpass:0 skip:$_ktap_nskip error:0"
	exit $rc
}

# ---------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------

# wait_for SECONDS CMD [ARGS...]: poll CMD every 0.1 s until it succeeds.
wait_for()
{
	local deadline=$((SECONDS + $1))

	shift
	while :; do
		"$@" && return 0
		[[ $SECONDS -ge $deadline ]] && break
		sleep 0.1
	done
	"$@"
}

# udev_settle: wait for udev to process pending events (no-op without it).
udev_settle()
{
	command -v udevadm >/dev/null 2>&1 || return 0
	udevadm settle --timeout="${1:-30}" >/dev/null 2>&1 || true
}

# nbd_idle DEV: no request of DEV is in flight.
nbd_idle()
{
	local r w

	read -r r w <"/sys/block/$(basename "$1")/inflight" || return 1
	[[ $((r + w)) -eq 0 ]]
}

# nbd_busy DEV: DEV has requests in flight.
nbd_busy()
{
	local r w

	read -r r w <"/sys/block/$(basename "$1")/inflight" || return 1
	[[ $((r + w)) -gt 0 ]]
}

# nbd_writing DEV: DEV has writes in flight (udev's probing only reads).
nbd_writing()
{
	local r w

	read -r r w <"/sys/block/$(basename "$1")/inflight" || return 1
	[[ $w -gt 0 ]]
}

# nbd_quiesce DEV: wait for udev, then for udev's probing reads to end
# (settle may give up first on a slow kernel).
nbd_quiesce()
{
	udev_settle
	wait_for 60 nbd_idle "$1"
}

# quiet CMD [ARGS...]: run CMD with its output in $NBD_TMP/quiet.out,
# shown as diagnostics only when it fails.
quiet()
{
	local rc

	"$@" >"$NBD_TMP/quiet.out" 2>&1
	rc=$?
	if [[ $rc -ne 0 ]]; then
		echo "# '$*' exited with $rc:"
		ktap_info_file "$NBD_TMP/quiet.out"
	fi
	return $rc
}

# expect_fail CMD [ARGS...]: succeeds when CMD fails.
expect_fail()
{
	! "$@"
}

# pattern_file OFFSET LENGTH FILE: the content nbdkit's pattern plugin
# (and nbd_hostile_server) serve at OFFSET: every 8-byte word is its own
# byte offset, big-endian.  OFFSET and LENGTH must be multiples of 8.
pattern_file()
{
	perl -e 'my ($o, $l) = @ARGV;
		 binmode STDOUT;
		 for (my $i = $o; $i < $o + $l; $i += 8) {
			print pack("Q>", $i);
		 }' "$1" "$2" >"$3"
}

# ---------------------------------------------------------------------------
# Kernel log markers
# ---------------------------------------------------------------------------

_dmesg_mark=

# dmesg_mark [TEXT]: write a unique marker line to the kernel log.
dmesg_mark()
{
	_dmesg_mark="nbd-selftest: $NBD_TEST_NAME mark $$.$RANDOM.$SECONDS${1:+ $1}"
	echo "$_dmesg_mark" >/dev/kmsg
}

# dmesg_since_mark: the kernel messages logged after the last marker.
dmesg_since_mark()
{
	dmesg | awk -v m="$_dmesg_mark" 'seen { print } index($0, m) { seen = 1 }'
}

# dmesg_has PATTERN: a kernel message since the last mark matches (grep -E).
dmesg_has()
{
	dmesg_since_mark | grep -Eq -- "$1" && return 0
	echo "# no kernel message matches '$1'; since the mark:"
	dmesg_since_mark | tail -n 5 | sed 's/^/#   /'
	return 1
}

# ---------------------------------------------------------------------------
# Cleanup
# ---------------------------------------------------------------------------

_cleanup_cmds=()
_bg_pids=()
_nbd_loaded_by_us=0
_cleanup_done=0

# at_exit CMD: run CMD (a string, eval'd) at exit, before the servers are
# stopped.  Commands run in reverse order of registration.
at_exit()
{
	_cleanup_cmds+=("$1")
}

# track_pid PID: kill PID at exit.
track_pid()
{
	_bg_pids+=("$1")
}

# kill_pid PID: SIGTERM, then SIGKILL after 5 s; reaps our own children.
kill_pid()
{
	local pid=$1 i

	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for i in {1..50}; do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# nbd_devices: the nbd block devices that exist now.
nbd_devices()
{
	local d

	for d in /sys/block/nbd*; do
		[[ -e $d ]] && echo "/dev/${d##*/}"
	done
}

# nbd_disconnect_all: detach every connected nbd device.
nbd_disconnect_all()
{
	local dev

	for dev in $(nbd_devices); do
		nbd_connected "$dev" || continue
		timeout 30 nbd-client -d "$dev" >/dev/null 2>&1
		nbd_wait_disconnected "$dev" 15 || echo "# cleanup: $dev still connected"
	done
}

_nbd_cleanup()
{
	local rc=$? i pid

	[[ $_cleanup_done -eq 1 ]] && return
	_cleanup_done=1
	set +e
	for ((i = ${#_cleanup_cmds[@]} - 1; i >= 0; i--)); do
		eval "${_cleanup_cmds[$i]}" >/dev/null 2>&1
	done
	if [[ -d /sys/module/nbd ]]; then
		nbd_disconnect_all
	fi
	for ((i = ${#_bg_pids[@]} - 1; i >= 0; i--)); do
		kill_pid "${_bg_pids[$i]}"
	done
	if [[ $_nbd_loaded_by_us -eq 1 && -d /sys/module/nbd ]]; then
		if ! nbd_unload; then
			echo "# cleanup: could not unload nbd"
			[[ $rc -eq 0 ]] && rc=$KSFT_FAIL
		fi
	fi
	if [[ -n ${NBD_TMP:-} && -d $NBD_TMP ]]; then
		if [[ ${NBD_SELFTEST_KEEP:-0} == 1 ]]; then
			echo "# kept $NBD_TMP"
		else
			rm -rf "$NBD_TMP"
		fi
	fi
	exit $rc
}

# nbd_test_init: per-test directory and exit trap.  Call it first.
nbd_test_init()
{
	if [[ $(id -u) -ne 0 ]]; then
		echo "TAP version 13"
		echo "1..0 # SKIP $NBD_TEST_NAME must run as root"
		exit $KSFT_SKIP
	fi
	NBD_TMP=$(mktemp -d "/tmp/nbd-selftest.$NBD_TEST_NAME.XXXXXX") || exit 1
	trap _nbd_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	export LC_ALL=C
	# NBD_CLIENT=compat: "nbd-client" is nbdctl's compat mode (a
	# symlink named nbd-client), so tests written for nbd-client run it
	if [[ ${NBD_CLIENT:-} == compat ]]; then
		[[ -x ${NBDCTL:-} ]] || { echo "# NBD_CLIENT=compat needs NBDCTL"; exit 1; }
		mkdir -p "$NBD_TMP/compat-bin"
		ln -sf "$NBDCTL" "$NBD_TMP/compat-bin/nbd-client"
		export PATH=$NBD_TMP/compat-bin:$PATH
		echo "# nbd-client here is nbdctl's compat mode: $(nbd-client -V 2>&1 | head -1)"
	fi
}

# require_nbdctl: bail out unless NBDCTL (set by the harness) is the
# nbdctl binary to test.
require_nbdctl()
{
	NBDCTL=${NBDCTL:-}
	[[ -x $NBDCTL ]] || ktap_bail "NBDCTL ('$NBDCTL') is not an executable"
}

# nbdctl_run NAME ARGS...: run nbdctl, output in $NBD_TMP/NAME.{out,err},
# exit status in $NBD_TMP/NAME.rc; returns that status.
nbdctl_run()
{
	local name=$1 rc

	shift
	timeout 120 "$NBDCTL" "$@" >"$NBD_TMP/$name.out" 2>"$NBD_TMP/$name.err"
	rc=$?
	echo "$rc" >"$NBD_TMP/$name.rc"
	return $rc
}

# require_cmds CMD...: bail out when a program the test needs is missing.
require_cmds()
{
	local c missing=()

	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	ktap_bail "missing programs: ${missing[*]}"
}

# ---------------------------------------------------------------------------
# The module under test
# ---------------------------------------------------------------------------

# _nbd_insmod [PARAMS...]: load the module, no checks (for race loops);
# fails when it is loaded already.
_nbd_insmod()
{
	if [[ ${NBD_STOCK:-0} == 1 ]]; then
		modprobe --first-time nbd "$@"
	else
		insmod "$NBD_KO" "$@"
	fi
}

# nbd_load [PARAMS...]: load the module under test with PARAMS and check
# it is the one meant: NBD_KO's srcversion, or the stock module only
# when NBD_STOCK=1.
nbd_load()
{
	local want got

	if [[ -d /sys/module/nbd ]]; then
		echo "# nbd is already loaded; unloading it first"
		nbd_disconnect_all
		nbd_unload || { echo "# FATAL: cannot unload the nbd module already loaded"; return 1; }
	fi
	if [[ ${NBD_STOCK:-0} == 1 ]]; then
		modprobe nbd "$@" || { echo "# modprobe nbd $* failed"; return 1; }
	else
		if [[ -z ${NBD_KO:-} || ! -f ${NBD_KO:-} ]]; then
			echo "# FATAL: NBD_KO ('${NBD_KO:-}') is not a module file and NBD_STOCK is not 1;"
			echo "# FATAL: refusing to fall back to the kernel's own nbd module"
			return 1
		fi
		insmod "$NBD_KO" "$@" || { echo "# insmod $NBD_KO $* failed"; return 1; }
		want=${NBD_SRCVERSION:-$(modinfo -F srcversion "$NBD_KO" 2>/dev/null)}
		got=$(cat /sys/module/nbd/srcversion 2>/dev/null)
		if [[ -z $want || $got != "$want" ]]; then
			echo "# FATAL: loaded nbd has srcversion '$got', expected '$want' from $NBD_KO"
			echo "# FATAL: this is not the module under test; unloading it"
			rmmod nbd
			return 1
		fi
	fi
	_nbd_loaded_by_us=1
	udev_settle
	wait_for 10 test -b /dev/nbd0 ||
		{ echo "# /dev/nbd0 did not appear after loading nbd"; return 1; }
	return 0
}

# nbd_unload: rmmod nbd, retrying while something still holds it.
nbd_unload()
{
	local i

	[[ -d /sys/module/nbd ]] || return 0
	for i in {1..20}; do
		rmmod nbd 2>/dev/null && break
		udev_settle 2
		sleep 0.5
	done
	if [[ -d /sys/module/nbd ]]; then
		rmmod nbd	# once more, to show the error
		return 1
	fi
	_nbd_loaded_by_us=0
	return 0
}

# nbd_module_desc: which module is being tested, for the log.
nbd_module_desc()
{
	if [[ ${NBD_STOCK:-0} == 1 ]]; then
		echo "stock nbd of ${NBD_KREL:-$(uname -r)}"
	else
		echo "${NBD_KO:-?} (srcversion ${NBD_SRCVERSION:-?}) on ${NBD_KREL:-$(uname -r)}"
	fi
}

# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------

_nbd_sysfs()
{
	echo "/sys/block/${1##*/}"
}

# nbd_size_bytes DEV: the size the kernel reports (0 when unknown).
nbd_size_bytes()
{
	local s

	s=$(cat "$(_nbd_sysfs "$1")/size" 2>/dev/null) || { echo 0; return; }
	echo $((s * 512))
}

# nbd_connected DEV: the device has a live configuration.
nbd_connected()
{
	local sys

	sys=$(_nbd_sysfs "$1")
	[[ -e $sys/pid ]] && [[ $(cat "$sys/size" 2>/dev/null || echo 0) -gt 0 ]]
}

nbd_disconnected()
{
	local sys

	sys=$(_nbd_sysfs "$1")
	[[ ! -e $sys ]] && return 0
	[[ ! -e $sys/pid ]] && [[ $(cat "$sys/size" 2>/dev/null || echo 0) -eq 0 ]]
}

# nbd_wait_connected DEV [SECONDS]
nbd_wait_connected()
{
	wait_for "${2:-20}" nbd_connected "$1"
}

# nbd_wait_disconnected DEV [SECONDS]
nbd_wait_disconnected()
{
	wait_for "${2:-20}" nbd_disconnected "$1"
}

# Set by nbd_attach: the nbd-client that stays in NBD_DO_IT (ioctl), or
# empty (netlink).
# shellcheck disable=SC2034 # read by the tests
NBD_CLIENT_PID=

# nbd_attach DEV SOCKET [NBD-CLIENT ARGS...]: nbd-client over netlink
# (its default), block size 4096, then wait until the device is live.
# SOCKET is a UNIX socket's path, or tcp:HOST:PORT.
# With -L among the arguments it uses the ioctl interface; the
# nbd-client that then stays in NBD_DO_IT is killed at exit if it is
# still around.
nbd_attach()
{
	local dev=$1 sock=$2 pid host port
	local target=(-unix "$sock")

	shift 2
	if [[ $sock == tcp:* ]]; then
		IFS=: read -r _ host port <<<"$sock"
		target=("$host" "$port")
	fi
	if ! timeout 60 nbd-client "${target[@]}" "$dev" -b 4096 "$@" \
		>"$NBD_TMP/nbd-client.out" 2>&1; then
		echo "# nbd-client ${target[*]} $dev -b 4096 $* failed:"
		ktap_info_file "$NBD_TMP/nbd-client.out"
		echo "# last kernel messages:"
		dmesg | tail -n 8 | sed 's/^/#   /'
		if [[ -e ${sock%.sock}.log ]]; then
			echo "# server log ${sock%.sock}.log:"
			ktap_info_file "${sock%.sock}.log" 10
		fi
		return 1
	fi
	if ! nbd_wait_connected "$dev" 20; then
		echo "# $dev not connected 20 s after nbd-client returned"
		return 1
	fi
	pid=$(cat "$(_nbd_sysfs "$dev")/pid" 2>/dev/null)
	if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == nbd-client ]]; then
		NBD_CLIENT_PID=$pid
		track_pid "$pid"
	else
		# shellcheck disable=SC2034 # read by the tests
		NBD_CLIENT_PID=
	fi
	udev_settle
	return 0
}

# nbd_detach DEV: nbd-client -d and wait until the device is down.
nbd_detach()
{
	local dev=$1

	if ! timeout 30 nbd-client -d "$dev" >"$NBD_TMP/nbd-client-d.out" 2>&1; then
		echo "# nbd-client -d $dev failed:"
		ktap_info_file "$NBD_TMP/nbd-client-d.out"
	fi
	nbd_wait_disconnected "$dev" 20 || { echo "# $dev still connected"; return 1; }
	udev_settle
	return 0
}

# nbd_client_check DEV: nbd-client -c says the device is connected.
nbd_client_check()
{
	timeout 10 nbd-client -c "$1" >/dev/null 2>&1
}

# pid_gone PID [SECONDS]: PID exited (a zombie counts as gone).
pid_gone()
{
	local pid=$1

	if [[ -z $pid ]]; then
		echo "# pid_gone: no pid"
		return 1
	fi
	wait_for "${2:-10}" _pid_gone "$pid"
}

_pid_gone()
{
	[[ ! -d /proc/$1 ]] && return 0
	[[ $(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) == Z ]]
}

# ---------------------------------------------------------------------------
# Servers.  Each listens on $NBD_TMP/NAME.sock (or a TCP port) and logs to
# $NBD_TMP/NAME.log.
# ---------------------------------------------------------------------------

# nbd_server_conns SOCKET: connected server-side sockets on a UNIX socket
# path (how many connections a server has from us).
nbd_server_conns()
{
	awk -v p="$1" '$NF == p && $6 == "03"' /proc/net/unix | wc -l
}

nbd_sock()
{
	echo "$NBD_TMP/$1.sock"
}

# nbdkit_start NAME [NBDKIT ARGS...]: nbdkit in the foreground (child of
# the test), ready once its pid file exists.
nbdkit_start()
{
	local name=$1

	shift
	_nbdkit_start "$name" -U "$(nbd_sock "$name")" "$@"
}

# nbdkit_start_tcp NAME PORT [NBDKIT ARGS...]: the same on 127.0.0.1:PORT
# (clients attach to tcp:127.0.0.1:PORT).
nbdkit_start_tcp()
{
	local name=$1 port=$2

	shift 2
	_nbdkit_start "$name" -i 127.0.0.1 -p "$port" "$@"
}

_nbdkit_start()
{
	local name=$1 pidf=$NBD_TMP/$1.pid pid

	shift
	rm -f "$pidf"
	nbdkit -f --exit-with-parent -P "$pidf" "$@" \
		>"$NBD_TMP/$name.log" 2>&1 &
	pid=$!
	track_pid "$pid"
	if ! wait_for 20 test -s "$pidf" || ! kill -0 "$pid" 2>/dev/null; then
		echo "# nbdkit $* did not start:"
		ktap_info_file "$NBD_TMP/$name.log"
		return 1
	fi
	return 0
}

# nbdserver_start NAME FILE [CONFIG LINES...]: nbd-server exporting FILE
# as export NAME (clients use -N NAME) with extra per-export settings
# such as "readonly = true".
nbdserver_start()
{
	local name=$1 file=$2 conf=$NBD_TMP/$1.conf pidf=$NBD_TMP/$1.pid line pid

	shift 2
	{
		echo "[generic]"
		echo "unixsock = $(nbd_sock "$name")"
		echo "[$name]"
		echo "exportname = $file"
		for line in "$@"; do
			echo "$line"
		done
	} >"$conf"
	rm -f "$pidf" "$(nbd_sock "$name")"
	if ! nbd-server -C "$conf" -p "$pidf" >"$NBD_TMP/$name.log" 2>&1; then
		echo "# nbd-server failed to start:"
		ktap_info_file "$NBD_TMP/$name.log"
		return 1
	fi
	if ! wait_for 20 test -s "$pidf" || ! wait_for 10 test -S "$(nbd_sock "$name")"; then
		echo "# nbd-server did not come up:"
		ktap_info_file "$NBD_TMP/$name.log"
		return 1
	fi
	pid=$(cat "$pidf")
	# nbd-server daemonizes and forks one child per client.
	at_exit "nbd_server_stop $pid"
	return 0
}

nbd_server_stop()
{
	local pid=$1 child

	for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
		kill -TERM "$child" 2>/dev/null
	done
	kill_pid "$pid"
}

# server_start NAME CMD [ARGS...]: run CMD in the background (its output
# in $NBD_TMP/NAME.log, killed at exit) and wait for it to create the
# socket $(nbd_sock NAME), which it is expected to listen on.
server_start()
{
	local name=$1 sock pid

	shift
	sock=$(nbd_sock "$name")
	rm -f "$sock"
	"$@" >"$NBD_TMP/$name.log" 2>&1 &
	pid=$!
	track_pid "$pid"
	if ! wait_for 20 test -S "$sock" || ! kill -0 "$pid" 2>/dev/null; then
		echo "# ${1##*/} did not start:"
		ktap_info_file "$NBD_TMP/$name.log"
		return 1
	fi
	return 0
}

# qemunbd_start NAME [QEMU-NBD ARGS...] FILE: qemu-nbd serving on a socket.
qemunbd_start()
{
	local name=$1

	shift
	server_start "$name" qemu-nbd -t -k "$(nbd_sock "$name")" "$@"
}

# hostile_server_bin: path of nbd_hostile_server, built into $NBD_TMP
# when the selftest directory has no up-to-date binary.
hostile_server_bin()
{
	local src=$NBD_SELFTEST_DIR/nbd_hostile_server.c
	local bin=$NBD_SELFTEST_DIR/nbd_hostile_server

	if [[ -x $bin && ! $src -nt $bin ]]; then
		echo "$bin"
		return 0
	fi
	bin=$NBD_TMP/nbd_hostile_server
	if [[ ! -x $bin ]]; then
		${CC:-cc} -O2 -Wall -Wextra -o "$bin" "$src" \
			>"$NBD_TMP/cc.log" 2>&1 || { ktap_info_file "$NBD_TMP/cc.log" >&2; return 1; }
	fi
	echo "$bin"
}

# hostile_start NAME [SERVER ARGS...]: nbd_hostile_server on a socket.
hostile_start()
{
	local name=$1 bin pidf=$NBD_TMP/$1.pid pid

	shift
	bin=$(hostile_server_bin) || { echo "# cannot build nbd_hostile_server"; return 1; }
	rm -f "$pidf"
	"$bin" --socket "$(nbd_sock "$name")" --pidfile "$pidf" \
		--log "$NBD_TMP/$name.log" "$@" >"$NBD_TMP/$name.err" 2>&1 &
	pid=$!
	track_pid "$pid"
	# Filling its memory with the pattern takes seconds on a loaded
	# debug kernel (a page fault per page under KASAN and TCG).
	if ! wait_for 90 test -s "$pidf" || ! kill -0 "$pid" 2>/dev/null; then
		ktap_info_file "$NBD_TMP/$name.err"
		echo "# nbd_hostile_server $* did not start:"
		ktap_info_file "$NBD_TMP/$name.log"
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------------------
# fio
# ---------------------------------------------------------------------------

# fio_errors JSON_FILE: the sum of the jobs' error fields (or "bad").
fio_errors()
{
	perl -MJSON::PP -e '
		local $/; open(my $f, "<", $ARGV[0]) or do { print "bad\n"; exit };
		my $t = <$f>;
		$t =~ s/^[^{]*//s;	# fio may print notes before the JSON
		my $j = eval { JSON::PP->new->decode($t) } or do { print "bad\n"; exit };
		my $n = 0;
		for my $job (@{$j->{jobs} || []}) {
			$n += $job->{error} || 0;
			for my $d (qw(read write trim)) {
				$n += $job->{$d}{total_err} || 0 if ref $job->{$d};
			}
			$n += $job->{total_err} || 0;
		}
		print scalar(@{$j->{jobs} || []}) ? "$n\n" : "bad\n";
	' "$1"
}

# fio_ios JSON_FILE DIR: total I/Os fio completed in direction DIR.
fio_ios()
{
	perl -MJSON::PP -e '
		local $/; open(my $f, "<", $ARGV[0]) or do { print "0\n"; exit };
		my $t = <$f>; $t =~ s/^[^{]*//s;
		my $j = eval { JSON::PP->new->decode($t) } or do { print "0\n"; exit };
		my $n = 0;
		$n += $_->{$ARGV[1]}{total_ios} || 0 for @{$j->{jobs} || []};
		print "$n\n";
	' "$1" "$2"
}

# fio_verify NAME DEV [FIO ARGS...]: fio with libaio, O_DIRECT and crc32c
# verification of what it writes, JSON output in $NBD_TMP/NAME.json;
# fio's exit status (its output is shown when it fails).
fio_verify()
{
	local name=$1 dev=$2 t0 rc

	shift 2
	t0=$SECONDS
	timeout 300 fio --name="$name" --filename="$dev" --ioengine=libaio \
		--direct=1 --verify=crc32c --verify_fatal=1 --do_verify=1 \
		--output-format=json --output="$NBD_TMP/$name.json" "$@" \
		>"$NBD_TMP/$name.out" 2>&1
	rc=$?
	ktap_info "fio $name: exit $rc after $((SECONDS - t0)) s"
	[[ $rc -eq 0 ]] || ktap_info_file "$NBD_TMP/$name.out"
	return $rc
}

# fio_verify_clean NAME WRITES READS: fio_verify NAME had no errors and
# did the expected numbers of I/Os written and read back (verified);
# "-" for WRITES: any number; "=" for READS: as many as the writes (and
# at least one).
fio_verify_clean()
{
	local json=$NBD_TMP/$1.json errs w r want=$3

	errs=$(fio_errors "$json")
	w=$(fio_ios "$json" write)
	r=$(fio_ios "$json" read)
	ktap_info "fio $1: errors=$errs writes=$w reads=$r (want $2 writes, $3 reads)"
	[[ $want == = ]] && { [[ $w -gt 0 ]] || return 1; want=$w; }
	[[ $errs == 0 && ($2 == - || $w -eq $2) && $r -eq $want ]]
}
