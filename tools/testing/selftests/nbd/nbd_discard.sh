#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Discard and write-zeroes: with a server that advertises SEND_TRIM and
# SEND_WRITE_ZEROES (nbdkit memory), the queue limits allow both,
# blkdiscard reaches the server as NBD_CMD_TRIM and blkdiscard -z as
# NBD_CMD_WRITE_ZEROES (seen in nbdkit's log filter), the range reads
# back as zeroes afterwards and the blocks around it are untouched.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
BS=4096
OFF=$((8 << 20))	# the range that gets discarded / zeroed
LEN=$((1 << 20))
REQLOG=$NBD_TMP/requests.log

nbd_test_init
ktap_plan 15
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-client blkdiscard dd cmp

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
nbdkit_start mem --filter=log memory 64M logfile="$REQLOG" ||
	ktap_bail "cannot start nbdkit"
check "attach $DEV" nbd_attach "$DEV" "$(nbd_sock mem)" ||
	ktap_bail "attach failed"

Q=/sys/block/${DEV##*/}/queue
DMAX=$(cat "$Q/discard_max_bytes")
WZMAX=$(cat "$Q/write_zeroes_max_bytes" 2>/dev/null || echo 0)
ktap_info "discard_max_bytes=$DMAX write_zeroes_max_bytes=$WZMAX"
ktap_info "server flags: $(grep -o 'trim=[0-9]* zero=[0-9]*' "$REQLOG" | head -n 1)"
ktap_result $((DMAX > 0 ? 0 : 1)) "discard_max_bytes > 0"

# The stock driver of older kernels (6.1) never sends WRITE_ZEROES: that
# is a property of the module under test, not a pass.
WZ_NA=
if [[ ${NBD_STOCK:-0} == 1 && $WZMAX -eq 0 ]]; then
	WZ_NA="the stock nbd of $(uname -r) does not implement NBD_CMD_WRITE_ZEROES"
	skip "write_zeroes_max_bytes > 0" "$WZ_NA"
else
	ktap_result $((WZMAX > 0 ? 0 : 1)) "write_zeroes_max_bytes > 0"
fi

# fill: random data over the range and one block on each side of it.
fill()
{
	head -c $((LEN + 2 * BS)) /dev/urandom >"$NBD_TMP/fill"
	dd if="$NBD_TMP/fill" of="$DEV" bs=$BS seek=$(((OFF - BS) / BS)) \
		oflag=direct conv=notrunc status=none || return 1
	dd if="$DEV" of="$NBD_TMP/back" bs=$BS skip=$(((OFF - BS) / BS)) \
		count=$((LEN / BS + 2)) iflag=direct status=none || return 1
	cmp "$NBD_TMP/fill" "$NBD_TMP/back"
}

# zeroed: the range reads back as zeroes, its neighbours as written.
zeroed()
{
	dd if="$DEV" of="$NBD_TMP/back" bs=$BS skip=$(((OFF - BS) / BS)) \
		count=$((LEN / BS + 2)) iflag=direct status=none || return 1
	cmp <(head -c $BS "$NBD_TMP/fill") <(head -c $BS "$NBD_TMP/back") ||
		{ echo "# the block before the range changed"; return 1; }
	cmp <(tail -c $BS "$NBD_TMP/fill") <(tail -c $BS "$NBD_TMP/back") ||
		{ echo "# the block after the range changed"; return 1; }
	cmp <(head -c $((LEN + BS)) "$NBD_TMP/back" | tail -c $LEN) \
		<(head -c $LEN /dev/zero) ||
		{ echo "# the range does not read back as zeroes"; return 1; }
}

# server_saw CMD [REGEX]: the server logged CMD (Trim, Zero) inside the
# range, on a line that also matches REGEX, since line $log_mark.
server_saw()
{
	tail -n +$((log_mark + 1)) "$REQLOG" |
		perl -ne 'BEGIN { ($cmd, $re, $lo, $hi) = splice(@ARGV, 0, 4) }
			$f = 1 if / connection=\d+ \Q$cmd\E id=\d+ offset=0x([0-9a-f]+)/i &&
				hex($1) >= $lo && hex($1) < $hi && /$re/;
			END { exit !$f }' "$1" "${2:-.}" $OFF $((OFF + LEN))
}

# --- trim ----------------------------------------------------------------
check "write random data around the range" fill
log_mark=$(wc -l <"$REQLOG")
check "blkdiscard of 1 MiB succeeds" \
	quiet blkdiscard -o $OFF -l $LEN "$DEV"
check "the server received NBD_CMD_TRIM for the range" server_saw Trim
# nbdkit's memory plugin frees trimmed blocks: they read as zeroes.
check "after the trim the range reads zeroes, its neighbours are intact" zeroed

# --- write zeroes ----------------------------------------------------------
check "write random data around the range again" fill
log_mark=$(wc -l <"$REQLOG")
check "blkdiscard -z of 1 MiB succeeds" \
	quiet blkdiscard -z -o $OFF -l $LEN "$DEV"
if [[ -n $WZ_NA ]]; then
	skip "the server received NBD_CMD_WRITE_ZEROES for the range" "$WZ_NA"
	skip "WRITE_ZEROES carries NBD_CMD_FLAG_NO_HOLE" "$WZ_NA"
else
	check "the server received NBD_CMD_WRITE_ZEROES for the range" \
		server_saw Zero
	# BLKZEROOUT asks not to unmap: nbdkit logs NO_HOLE as trim=0.
	check "WRITE_ZEROES carries NBD_CMD_FLAG_NO_HOLE" \
		server_saw Zero ' trim=0 '
fi
check "after blkdiscard -z the range reads zeroes, its neighbours are intact" zeroed

check "detach $DEV" nbd_detach "$DEV"
check "unload nbd" nbd_unload
ktap_finish
