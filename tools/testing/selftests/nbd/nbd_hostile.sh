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

nbd_test_init
ktap_plan $((3 + 5 * ${#RUNS[@]}))
ktap_info "module: $(nbd_module_desc)"
require_cmds nbd-client dd cmp perl

server_built()
{
	local bin

	bin=$(hostile_server_bin) || return 1
	ktap_info "server: $bin"
}
check "nbd_hostile_server is built" server_built ||
	ktap_bail "cannot build nbd_hostile_server"
check "load nbd" nbd_load || ktap_bail "cannot load nbd"

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
done

check "unload nbd" nbd_unload
ktap_finish
