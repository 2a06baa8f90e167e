#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A hostile server (nbd_hostile_server.c) answers one read wrongly: bad
# reply magic, a cookie that was never sent, two replies to one request,
# a truncated payload, half a reply header, an undefined error value.
# The driver must fail that read (never hand out wrong data) within a
# bounded time, drop a connection whose byte stream it can no longer
# trust, keep one that only carried a well-formed error, stay
# detachable, and log no kernel splat (the VM harness checks dmesg).
# A well-behaved run of the same server is the control.
#
# Then the same with structured replies (attached with nbdctl, which
# negotiates them): a 128 KiB read at the trigger offset, whose chunks
# carry data and holes, answered in order, reversed, interleaved, with
# error chunks (EIO, ENOSPC at an offset, an unknown error type), and
# with the violations the driver must refuse (the sr-* modes of
# nbd_hostile_server.c).  Legal replies must give the right data, or the
# errno of the error, on a connection that stays; every violation must
# fail the read with EIO, drop the connection and be named in the
# kernel log.  A representative subset of the violations runs by
# default; NBD_HOSTILE_ALL=1 runs every one.
#
# Environment: NBDCTL, the nbdctl binary (the harness builds it);
# NBD_HOSTILE_ALL=1 for every structured reply violation;
# NBD_HOSTILE_SR_BAD=MODE,... for these violations only.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
BS=4096
SIZE=$((64 << 20))
TRIG_BLOCK=10240		# 40 MiB: far from what udev and blkid read
TRIG_OFF=$((TRIG_BLOCK * BS))
REQ_TIMEOUT=10			# nbd-client -t: per-request timeout
IO_BOUND=60			# every read must return within this

# name:mode:nbd-client args
RUNS=(
	good:good:
	wrong-magic:wrong-magic:
	unknown-cookie:unknown-cookie:
	double-reply:double-reply:
	short-read:short-read:
	close-mid-reply:close-mid-reply:
	wrong-error:wrong-error:
	wrong-magic-ioctl:wrong-magic:-L
)

# Structured replies.  Each group is one server, answering one trigger
# read per mode, in order, over as many connections as it takes: the
# legal modes share one, every violation ends its own (the kernel must
# drop it).  name:modes:server args
SR_BLOCKS=32			# the trigger read: 128 KiB
SR_LEN=$((SR_BLOCKS * BS))
# Zero blocks in it, sent as holes: one alone, a run of three, the last.
SR_ZERO=(2:1 10:3 31:1)
SR_LEGAL=good,sr-reverse,sr-error,sr-error-offset,sr-unknown-error-type,sr-simple-error,sr-interleave
# A representative violation of each kind of check (simple reply,
# range, overlap, hole, coverage, error chunk, chunk type; and
# sr-unnegotiated below), each on its own connection: ~2.5 s apiece on
# 6.12 under TCG, ~15 s on the debug kernel.
SR_BAD=sr-simple-data,sr-offset-outside,sr-overlap,sr-hole-zero,sr-done-early,sr-msg-beyond-chunk,sr-unknown-type
# The others, each like one above: NBD_HOSTILE_ALL=1.
SR_MORE=sr-chunk-after-done,sr-error-offset-outside,sr-simple-after-chunk,sr-repeat,sr-short-data,sr-hole-len,sr-none-len,sr-none-no-done,sr-too-long,sr-msg-too-long,sr-error-padded,sr-error-zero,sr-block-status
[[ ${NBD_HOSTILE_ALL:-0} == 1 ]] && SR_BAD+=,$SR_MORE
# NBD_HOSTILE_SR_BAD: the violations to run instead (the debug kernel
# runs two: KUnit's nbd_structured suite checks every one there).
SR_BAD=${NBD_HOSTILE_SR_BAD:-$SR_BAD}
SR_GROUPS=(
	"sr:$SR_LEGAL,$SR_BAD:"
	sr-refused:sr-unnegotiated:--sr-refuse
)

# sr_legal MODE: a reply the protocol allows (the connection stays).
sr_legal()
{
	case $1 in
	good|sr-reverse|sr-interleave|sr-error|sr-error-offset|\
	sr-unknown-error-type|sr-simple-error) return 0 ;;
	esac
	return 1
}

# sr_ends MODES... INDEX: mode INDEX is the last on its connection.
sr_ends()
{
	local -a m=("${@:1:$#-1}")
	local i=${!#}

	! sr_legal "${m[i]}" || ((i + 1 == ${#m[@]})) || ! sr_legal "${m[i + 1]}"
}

# Checks: 5 per simple run; per structured mode 3, an attach for each
# connection, its after-state and detach at its end, writes after good,
# and the kernel's counters after sr-simple-error.
sr_checks=0
for group in "${SR_GROUPS[@]}"; do
	IFS=: read -r _ modes _ <<<"$group"
	IFS=, read -ra m <<<"$modes"
	for ((i = 0; i < ${#m[@]}; i++)); do
		sr_checks=$((sr_checks + 3))
		((i == 0)) || sr_ends "${m[@]}" $((i - 1)) &&
			sr_checks=$((sr_checks + 1))
		sr_ends "${m[@]}" $i && sr_checks=$((sr_checks + 2))
		[[ ${m[i]} == good || ${m[i]} == sr-simple-error ]] &&
			sr_checks=$((sr_checks + 1))
	done
done
plan=$((3 + 5 * ${#RUNS[@]} + sr_checks))

nbd_test_init
ktap_plan $plan
ktap_info "module: $(nbd_module_desc)"
ktap_info "structured reply violations: ${SR_BAD//,/ }"
require_cmds nbd-client dd cmp perl
[[ ${NBD_STOCK:-0} == 1 ]] || require_nbdctl

server_built()
{
	local bin

	bin=$(hostile_server_bin) || return 1
	ktap_info "server: $bin"
}
check "nbd_hostile_server is built" server_built ||
	ktap_bail "cannot build nbd_hostile_server"
check "load nbd" nbd_load || ktap_bail "cannot load nbd"

# elapsed START: seconds since START (an $EPOCHREALTIME), to 0.1 s.
elapsed()
{
	perl -e 'printf "%.1f", $ARGV[1] - $ARGV[0]' "$1" "$EPOCHREALTIME"
}

# server_stop NAME: stop that run's server (each holds its export in
# memory).
server_stop()
{
	local pid

	pid=$(cat "$NBD_TMP/$1.pid" 2>/dev/null) && kill_pid "$pid"
}

# read_at BLOCK OUT: dd one block; sets READ_RC, READ_ERR, READ_SECS.
read_at()
{
	local t0=$SECONDS

	rm -f "$2"
	timeout $IO_BOUND dd if="$DEV" of="$2" bs=$BS skip="$1" count=1 \
		iflag=direct status=none 2>"$NBD_TMP/dd.err"
	READ_RC=$?
	READ_SECS=$((SECONDS - t0))
	READ_ERR=$(tail -n 1 "$NBD_TMP/dd.err")
	ktap_info "read of block $1: exit $READ_RC after ${READ_SECS}s${READ_ERR:+: $READ_ERR}"
}

# expect_pattern BLOCK FILE: FILE holds the server's pattern at BLOCK.
expect_pattern()
{
	pattern_file $(($1 * BS)) $BS "$NBD_TMP/want" &&
		cmp -s "$NBD_TMP/want" "$2"
}

# trigger_read MODE: the read the server answers wrongly.
trigger_read()
{
	read_at $TRIG_BLOCK "$NBD_TMP/trig.out"
	if [[ $READ_RC -eq 124 ]]; then
		echo "# the read did not return within $IO_BOUND s"
		return 1
	fi
	case $1 in
	good)
		[[ $READ_RC -eq 0 ]] && expect_pattern $TRIG_BLOCK "$NBD_TMP/trig.out"
		;;
	double-reply)
		# The first reply is right: the data may be delivered.
		# The second must never be taken for anything.
		[[ $READ_RC -ne 0 ]] ||
			expect_pattern $TRIG_BLOCK "$NBD_TMP/trig.out"
		;;
	wrong-error)
		# A well-formed error reply; the errno is the driver's call.
		[[ $READ_RC -ne 0 ]]
		;;
	*)
		[[ $READ_RC -ne 0 && $READ_ERR == *"Input/output error"* ]]
		;;
	esac
}

# server_after_trigger REGEX: the server logged REGEX after the trigger.
server_after_trigger()
{
	awk -v re="$2" 'seen && $0 ~ re { found = 1 }
		/TRIGGER/ { seen = 1 }
		END { exit !found }' "$NBD_TMP/$1.log"
}

# io_fails: a read elsewhere on the device fails (or finds the device
# torn down) instead of returning data, within the bound.
io_fails()
{
	read_at 0 "$NBD_TMP/after.out"
	[[ $READ_RC -eq 124 ]] && { echo "# the read hung"; return 1; }
	[[ $READ_RC -ne 0 || ! -s $NBD_TMP/after.out ]]
}

# io_works: a read elsewhere returns the right data.
io_works()
{
	read_at 0 "$NBD_TMP/after.out"
	[[ $READ_RC -eq 0 ]] && expect_pattern 0 "$NBD_TMP/after.out"
}

# write_read_trigger: writes and reads at the trigger offset work.
write_read_trigger()
{
	head -c $BS /dev/urandom >"$NBD_TMP/w.in"
	dd if="$NBD_TMP/w.in" of="$DEV" bs=$BS seek=$TRIG_BLOCK count=1 \
		oflag=direct conv=notrunc status=none &&
		dd if="$DEV" of="$NBD_TMP/w.out" bs=$BS skip=$TRIG_BLOCK \
			count=1 iflag=direct status=none &&
		cmp "$NBD_TMP/w.in" "$NBD_TMP/w.out"
}

# after_state NAME MODE CLIENT_PID: what must hold once the bad reply
# has been dealt with.
after_state()
{
	local name=$1 mode=$2 pid=$3

	case $mode in
	good|wrong-error)
		# The stream is intact: the connection stays usable.
		io_works
		;;
	wrong-magic|unknown-cookie|double-reply)
		# Only the kernel can drop the connection here.
		# (The server may also notice when its reply is cut off.)
		if ! wait_for 30 server_after_trigger "$name" \
			'EOF from client|connection lost|send failed: (Broken pipe|Connection reset)'; then
			echo "# the server still has a live connection"
			return 1
		fi
		if [[ -n $pid ]] && ! pid_gone "$pid" 30; then
			echo "# nbd-client in NBD_DO_IT is still running"
			return 1
		fi
		io_fails
		;;
	*)
		# The server hung up by itself.
		io_fails
		;;
	esac
}

after_desc()
{
	case $1 in
	good|wrong-error)
		echo "the connection still works: a read elsewhere returns the right data" ;;
	wrong-magic|unknown-cookie|double-reply)
		echo "the kernel dropped the connection and later I/O fails" ;;
	*)
		echo "later I/O fails without hanging" ;;
	esac
}

trigger_desc()
{
	case $1 in
	good) echo "the read at the trigger offset returns the right data" ;;
	double-reply) echo "the read returns the right data or fails, never the duplicate's data" ;;
	wrong-error) echo "the read fails" ;;
	*) echo "the read fails with EIO within $IO_BOUND s" ;;
	esac
}

for run in "${RUNS[@]}"; do
	IFS=: read -r name mode args <<<"$run"
	t_run=$EPOCHREALTIME
	# shellcheck disable=SC2086 # args is a word list
	set -- $args
	iface=netlink
	[[ " $* " == *" -L "* ]] && iface=ioctl
	ktap_info "--- $name: mode $mode over $iface"

	if ! hostile_start "$name" --mode "$mode" --size $SIZE \
		--trigger-offset $TRIG_OFF; then
		ktap_fail_rest "cannot start nbd_hostile_server"
		ktap_finish
	fi
	dmesg_mark "$name"
	if ! check "$name: attach $DEV over $iface" \
		nbd_attach "$DEV" "$(nbd_sock "$name")" -t $REQ_TIMEOUT "$@"; then
		for _ in 1 2 3 4; do
			not_ok "$name: not reached: attach failed"
		done
		nbd_detach "$DEV" >/dev/null
		continue
	fi
	client_pid=$NBD_CLIENT_PID

	check "$name: $(trigger_desc "$mode")" trigger_read "$mode"
	if [[ $mode == good ]]; then
		check "$name: a write and read back at the trigger offset work" \
			write_read_trigger
	else
		check "$name: the server misbehaved as asked" \
			grep -q "TRIGGER mode=$mode" "$NBD_TMP/$name.log"
	fi
	check "$name: $(after_desc "$mode")" after_state "$name" "$mode" "$client_pid"
	check "$name: detach $DEV" nbd_detach "$DEV"
	ktap_info "kernel messages:"
	dmesg_since_mark | grep -v 'nbd-selftest' | head -n 8 | sed 's/^/#   /'
	ktap_info "server log:"
	grep -E 'TRIGGER|cookie|EOF|lost|closes|sent|failed' "$NBD_TMP/$name.log" |
		head -n 6 | sed 's/^/#   /'
	server_stop "$name"
	ktap_info "$name took $(elapsed "$t_run") s"
done

# ---------------------------------------------------------------------------
# Structured replies
# ---------------------------------------------------------------------------

SR_SERVER_ARGS=()
for z in "${SR_ZERO[@]}"; do
	IFS=: read -r b n <<<"$z"
	SR_SERVER_ARGS+=(--zero "$((TRIG_OFF + b * BS)),$((n * BS))")
done

# The trigger read's content: the pattern with the zero blocks.
sr_want()
{
	local z b n

	pattern_file $TRIG_OFF $SR_LEN "$NBD_TMP/sr.want" || return 1
	for z in "${SR_ZERO[@]}"; do
		IFS=: read -r b n <<<"$z"
		dd if=/dev/zero of="$NBD_TMP/sr.want" bs=$BS seek="$b" \
			count="$n" conv=notrunc status=none || return 1
	done
}
sr_want || ktap_bail "cannot build the expected content"

# A reader that fills its buffer with 0xa5 first, so that a hole the
# driver did not zero shows.  O_DIRECT, as dd: the read goes into the
# page-aligned part of a longer string (an unaligned one gets EINVAL).
# Perl, as python3 takes a second to start under TCG.
cat >"$NBD_TMP/sr_read.pl" <<'PL'
use strict;
use warnings;
use Fcntl;
my ($dev, $off, $len, $out) = @ARGV;
sysopen(my $fh, $dev, O_RDONLY | O_DIRECT) or die "$!\n";
my $buf = "\xa5" x ($len + 4096);
my $skip = -unpack("J", pack("p", $buf)) % 4096;
sysseek($fh, $off, 0) or die "$!\n";
my $n = sysread($fh, $buf, $len, $skip);
defined $n or die "$!\n";
$n == $len or die "short read: $n of $len bytes\n";
open(my $o, ">", $out) or die "$out: $!\n";
binmode $o;
print $o substr($buf, $skip, $len);
close($o) or die "$out: $!\n";
PL

# sr_read [dd]: the trigger read (with dd where the data does not
# matter: it starts faster); sets READ_RC, READ_ERR, READ_SECS.
sr_read()
{
	local t0=$SECONDS

	rm -f "$NBD_TMP/sr.out"
	if [[ ${1:-} == dd ]]; then
		timeout $IO_BOUND dd if="$DEV" of="$NBD_TMP/sr.out" bs=$SR_LEN \
			skip=$((TRIG_OFF / SR_LEN)) count=1 iflag=direct \
			status=none 2>"$NBD_TMP/sr.err"
	else
		timeout $IO_BOUND perl "$NBD_TMP/sr_read.pl" "$DEV" $TRIG_OFF \
			$SR_LEN "$NBD_TMP/sr.out" 2>"$NBD_TMP/sr.err"
	fi
	READ_RC=$?
	READ_SECS=$((SECONDS - t0))
	READ_ERR=$(tail -n 1 "$NBD_TMP/sr.err")
	ktap_info "read of $SR_LEN bytes at $TRIG_OFF: exit $READ_RC after ${READ_SECS}s${READ_ERR:+: $READ_ERR}"
}

# sr_expect MODE: what MODE's trigger read must give (no subshells: they
# are slow on the debug kernel).  Sets SR_ERRNO (what the read must fail
# with, "" for the right data), SR_DESC, SR_RE (what the kernel must
# log, grep -E; "" for nothing) and SR_RE_DESC.
sr_expect()
{
	local c='chunk, cookie 0x[0-9a-f]+, for read of [0-9]+ bytes at [0-9]+'
	local at="on read of $SR_LEN bytes at $TRIG_OFF"

	case $1 in
	good|sr-reverse|sr-interleave) SR_ERRNO= ;;
	sr-error-offset) SR_ERRNO="No space left on device" ;;
	sr-unknown-error-type) SR_ERRNO="Remote I/O error" ;;	# NBD_EPERM
	*) SR_ERRNO="Input/output error" ;;
	esac
	if [[ $1 == sr-chunk-after-done ]]; then
		SR_DESC="the read returns the right data or fails with EIO"
	elif [[ -n $SR_ERRNO ]]; then
		SR_DESC="the read fails with \"$SR_ERRNO\" within $IO_BOUND s"
	else
		SR_DESC="the read returns the right data, holes as zeroes, within $IO_BOUND s"
	fi
	SR_RE_DESC="the kernel named the violation"
	case $1 in
	good|sr-reverse|sr-interleave)
		SR_RE=
		SR_RE_DESC="the kernel logged no error" ;;
	sr-unnegotiated) SR_RE='structured reply, but structured replies were not negotiated' ;;
	sr-simple-data) SR_RE='simple reply with data to a read' ;;
	sr-simple-after-chunk) SR_RE='simple reply, cookie 0x[0-9a-f]+, to a request answered with chunks already' ;;
	sr-offset-outside) SR_RE="OFFSET_DATA $c: range [0-9]+\\+4096 is not inside the request" ;;
	sr-overlap|sr-repeat) SR_RE="OFFSET_DATA $c: range [0-9]+\\+4096 overlaps an earlier chunk" ;;
	sr-short-data) SR_RE="OFFSET_DATA $c: OFFSET_DATA chunk shorter than 9 bytes" ;;
	sr-hole-len) SR_RE="OFFSET_HOLE $c: OFFSET_HOLE chunk not 12 bytes long" ;;
	sr-hole-zero) SR_RE="OFFSET_HOLE $c: hole of size 0" ;;
	sr-done-early) SR_RE="$c: last chunk, but only [0-9]+ bytes were sent" ;;
	sr-chunk-after-done) SR_RE='unexpected reply, cookie 0x[0-9a-f]+: (request not in flight|stale generation)' ;;
	sr-none-len) SR_RE="NONE $c: NONE chunk with a payload" ;;
	sr-none-no-done) SR_RE="NONE $c: NONE chunk without the DONE flag" ;;
	sr-too-long) SR_RE="OFFSET_DATA $c: chunk longer than its request allows" ;;
	sr-msg-too-long) SR_RE="ERROR $c: (chunk longer than its request allows|message of 4097 bytes, more than 4096)" ;;
	sr-msg-beyond-chunk) SR_RE="ERROR $c: message of 53 bytes in a chunk of 32" ;;
	sr-error-padded) SR_RE="ERROR $c: message of 53 bytes in a chunk of 63" ;;
	sr-error-zero) SR_RE="ERROR $c: error chunk without an error" ;;
	sr-error-offset-outside) SR_RE="ERROR_OFFSET $c: error offset [0-9]+ is not inside the request" ;;
	sr-unknown-type) SR_RE="unknown $c: unknown chunk type \\(type 0x42" ;;
	sr-block-status) SR_RE="BLOCK_STATUS $c: block status chunk, never asked for" ;;
	sr-error|sr-error-offset|sr-unknown-error-type|sr-simple-error)
		SR_RE_DESC="the kernel logged the server's error" ;;&
	sr-error) SR_RE="server error EIO \\(5\\) $at: \"sr-error: injected EIO\"" ;;
	sr-error-offset) SR_RE="server error ENOSPC \\(28\\) $at \\(at offset [0-9]+\\): \"sr-error-offset: ENOSPC at [0-9]+\"" ;;
	sr-unknown-error-type) SR_RE="server error EPERM \\(1\\) $at: \"sr-unknown-error-type: EPERM\"" ;;
	sr-simple-error) SR_RE="server error EIO \\(5\\) $at\$" ;;
	*) SR_RE="no message known for $1" ;;
	esac
}

# sr_trigger_read MODE: the read, as sr_expect MODE says.
sr_trigger_read()
{
	if [[ -n $SR_ERRNO && $1 != sr-chunk-after-done ]]; then
		sr_read dd
	else
		sr_read
	fi
	if [[ $READ_RC -eq 124 ]]; then
		echo "# the read did not return within $IO_BOUND s"
		return 1
	fi
	if [[ $READ_RC -eq 0 ]] && [[ -z $SR_ERRNO || $1 == sr-chunk-after-done ]]; then
		cmp "$NBD_TMP/sr.want" "$NBD_TMP/sr.out" && return 0
		cmp -l "$NBD_TMP/sr.want" "$NBD_TMP/sr.out" | head -n 3 |
			sed 's/^/#   differs (offset, want, got in octal): /'
		return 1
	fi
	[[ -n $SR_ERRNO && $READ_RC -ne 0 && $READ_ERR == *"$SR_ERRNO" ]]
}

# sr_dmesg: the kernel log since the mark (kept in $NBD_TMP/k.log) says
# what sr_expect said it must.
sr_dmesg()
{
	local re=$SR_RE

	if [[ -z $re ]]; then
		dmesg_since_mark | grep -v nbd-selftest >"$NBD_TMP/k.log"
		if grep -Eq 'nbd0: (connection [0-9]+:|server error)|I/O error' "$NBD_TMP/k.log"; then
			echo "# the kernel logged an error for a good reply"
			return 1
		fi
		return 0
	fi
	wait_for 10 _sr_dmesg_has "$re" && return 0
	echo "# no kernel message matches: $re"
	return 1
}

_sr_dmesg_has()
{
	dmesg_since_mark | grep -v nbd-selftest >"$NBD_TMP/k.log"
	grep -Eq -- "$1" "$NBD_TMP/k.log"
}

# sr_attach NAME REPLIES: nbdctl connect; debugfs must show REPLIES
# (structured or simple) replies.
sr_attach()
{
	local name=$1 want=$2
	local -a got

	if ! timeout 60 "$NBDCTL" connect --unix "$(nbd_sock "$name")" \
		"$DEV" -b $BS -t $REQ_TIMEOUT >"$NBD_TMP/nbdctl.out" 2>&1; then
		echo "# nbdctl connect failed:"
		ktap_info_file "$NBD_TMP/nbdctl.out"
		ktap_info_file "$NBD_TMP/$name.log" 10
		return 1
	fi
	nbd_wait_connected "$DEV" 20 || { echo "# $DEV not connected"; return 1; }
	udev_settle
	mapfile -t got </sys/kernel/debug/nbd/nbd0/protocol
	if [[ " ${got[*]} " != *" replies: $want "* ]]; then
		echo "# debugfs protocol does not say $want replies: ${got[*]}"
		return 1
	fi
}

sr_detach()
{
	timeout 30 "$NBDCTL" disconnect "$DEV" >"$NBD_TMP/nbdctl-d.out" 2>&1 ||
		nbd_disconnected "$DEV" || ktap_info_file "$NBD_TMP/nbdctl-d.out"
	nbd_wait_disconnected "$DEV" 20 || { echo "# $DEV still connected"; return 1; }
	udev_settle
}

# sr_counters: debugfs's counts of holes and error chunks are sane (the
# legal run sends holes, and three error chunks).
sr_counters()
{
	local line holes errs

	line=$(grep -m1 'structured reply chunks' /sys/kernel/debug/nbd/nbd0/tasks 2>/dev/null)
	ktap_info "debugfs: ${line:-nothing}"
	holes=$(sed -n 's/.*chunks, \([0-9]*\) holes.*/\1/p' <<<"$line")
	errs=$(sed -n 's/.*, \([0-9]*\) error chunks.*/\1/p' <<<"$line")
	[[ -n $holes && $holes -gt 0 && $errs == 3 ]]
}

# sr_write_read: two 4 KiB writes and a flush away from the trigger
# read (non-reads: the server answers with NONE chunks and simple
# replies, alternately), read back.
sr_write_read()
{
	head -c $((2 * BS)) /dev/urandom >"$NBD_TMP/w.in"
	dd if="$NBD_TMP/w.in" of="$DEV" bs=$BS seek=100 count=2 \
		oflag=direct conv=notrunc,fsync status=none &&
		dd if="$DEV" of="$NBD_TMP/w.out" bs=$BS skip=100 count=2 \
			iflag=direct status=none &&
		cmp "$NBD_TMP/w.in" "$NBD_TMP/w.out"
}

# sr_dropped NAME MODE: the server lost the connection MODE was sent on,
# and later I/O fails.
sr_dropped()
{
	if ! wait_for 30 _sr_server_lost "$1" "$2"; then
		echo "# the server still has a live connection"
		return 1
	fi
	io_fails
}

_sr_server_lost()
{
	awk -v t="TRIGGER mode=$2 read" \
		'seen && /EOF from client|connection lost|send failed: (Broken pipe|Connection reset)/ { found = 1 }
		index($0, t) { seen = 1 }
		END { exit !found }' "$NBD_TMP/$1.log"
}

# sr_server NAME MODES ARGS...: (re)start NAME's server for MODES, with
# a new log (the old one goes to NAME.log.old).
sr_server()
{
	local name=$1 modes=$2

	shift 2
	server_stop "$name"
	if [[ -e $NBD_TMP/$name.log ]]; then
		cat "$NBD_TMP/$name.log" >>"$NBD_TMP/$name.log.old"
		rm -f "$NBD_TMP/$name.log"
	fi
	hostile_start "$name" --mode "$modes" --size $SIZE \
		--trigger-offset $TRIG_OFF "${SR_SERVER_ARGS[@]}" "$@"
}

# sr_group NAME MODES ARGS...: one group's checks.
sr_group()
{
	local name=$1 modes=$2 replies=structured attached=0 base=0 i n mode
	local -a m

	shift 2
	[[ " $* " == *" --sr-refuse "* ]] && replies=simple
	IFS=, read -ra m <<<"$modes"
	ktap_info "--- $name: ${#m[@]} modes, $replies replies"
	sr_server "$name" "$modes" "$@" || return 1
	for ((i = 0; i < ${#m[@]}; i++)); do
		mode=${m[i]}
		if [[ $attached == 0 ]]; then
			# In step with the server: one trigger read per mode.
			n=$(grep -c 'TRIGGER mode=' "$NBD_TMP/$name.log")
			if [[ $n != $((i - base)) ]]; then
				ktap_info "the server answered $n trigger reads, not $((i - base)): restarting it"
				modes=$(IFS=,; echo "${m[*]:i}")
				sr_server "$name" "$modes" "$@" || return 1
				base=$i
			fi
			if check "$name: attach $DEV with nbdctl for $mode, $replies replies" \
				sr_attach "$name" $replies; then
				attached=1
			else
				attached=-1	# fail what needs the connection
			fi
		fi
		dmesg_mark "$name $mode"
		sr_expect "$mode"
		if [[ $attached == 1 ]]; then
			check "$name: $mode: $SR_DESC" sr_trigger_read "$mode"
			check "$name: $mode: the server answered as asked" \
				grep -q "TRIGGER mode=$mode read" "$NBD_TMP/$name.log"
			check "$name: $mode: $SR_RE_DESC" sr_dmesg
			grep -v 'nbd-selftest' "$NBD_TMP/k.log" 2>/dev/null |
				head -n 3 | sed 's/^/#   /'
			rm -f "$NBD_TMP/k.log"
		else
			for _ in 1 2 3; do
				not_ok "$name: $mode: not reached: attach failed"
			done
		fi
		if [[ $mode == good && $attached == 1 ]]; then
			check "$name: writes and a flush work and read back (NONE chunks and simple replies)" \
				sr_write_read
		elif [[ $mode == good ]]; then
			not_ok "$name: writes: not reached: attach failed"
		fi
		if [[ $mode == sr-simple-error ]]; then
			check "$name: debugfs counted holes and the 3 error chunks" \
				sr_counters
		fi
		sr_ends "${m[@]}" $i || continue
		if [[ $attached != 1 ]]; then
			not_ok "$name: $mode: not reached: attach failed"
		elif sr_legal "$mode"; then
			check "$name: the connection still works after $mode: a read elsewhere returns the right data" \
				io_works
		else
			check "$name: $mode: the kernel dropped the connection and later I/O fails" \
				sr_dropped "$name" "$mode"
		fi
		check "$name: detach $DEV after $mode" sr_detach
		attached=0
	done
	grep -E 'TRIGGER|warning|closes|sent [0-9]' "$NBD_TMP/$name.log" |
		tail -n 4 | sed 's/^/#   /'
	server_stop "$name"
}

if [[ ${NBD_STOCK:-0} == 1 ]]; then
	for ((i = 0; i < sr_checks; i++)); do
		skip "structured replies" "the stock module has none"
	done
	SR_GROUPS=()
fi
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
for group in "${SR_GROUPS[@]}"; do
	IFS=: read -r name modes args <<<"$group"
	t_run=$EPOCHREALTIME
	# shellcheck disable=SC2086 # args is a word list
	if ! sr_group "$name" "$modes" $args; then
		ktap_fail_rest "cannot start nbd_hostile_server"
		ktap_finish
	fi
	ktap_info "$name took $(elapsed "$t_run") s"
done

check "unload nbd" nbd_unload
ktap_finish
