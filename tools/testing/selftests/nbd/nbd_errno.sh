#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The server's error numbers, one at a time, from nbdkit's error filter:
# each must reach user space as the errno of the table in
# Documentation/admin-guide/blockdev/nbd.rst (what dd says about an
# O_DIRECT write and read) and be logged with the device, the command,
# the length and the offset.  NBD_ESHUTDOWN is not an error of the
# request: it is resent, and with one connection and no dead-connection
# timeout there is nowhere to resend it, so the write fails with EIO and
# the session ends.  With NBD_STOCK=1 the stock module's answers are
# checked instead: EIO for every error, as upstream does.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
BS=4096
BLOCK=7			# the block dd writes and reads

nbd_test_init
ktap_plan $(( ${NBD_STOCK:-0} == 1 ? 27 : 26 ))
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-client dd

check "load nbd" nbd_load || ktap_bail "cannot load nbd"

# BLK_STS_INVAL (EINVAL) exists from Linux 6.11 on; before, EINVAL is EIO.
has_sts_inval()
{
	local v=${NBD_KREL:-$(uname -r)} maj min

	IFS=. read -r maj min _ <<<"$v"
	[[ $maj -gt 6 || ($maj -eq 6 && ${min%%[!0-9]*} -ge 11) ]]
}

# expected ERRNO: dd's words for what an NBD error number becomes here.
expected()
{
	if [[ ${NBD_STOCK:-0} == 1 ]]; then
		echo "Input/output error"
		return
	fi
	case $1 in
	EPERM) echo "Remote I/O error" ;;
	EIO) echo "Input/output error" ;;
	ENOMEM) echo "Cannot allocate memory" ;;
	EINVAL) if has_sts_inval; then echo "Invalid argument"; else echo "Input/output error"; fi ;;
	ENOSPC) echo "No space left on device" ;;
	ESHUTDOWN) echo "Input/output error" ;;
	esac
}

# dd_says WRITE|READ WORDS: the O_DIRECT I/O of block BLOCK fails, and
# dd's message ends with WORDS.
dd_says()
{
	local what=$1 want=$2 got

	head -c $BS /dev/urandom >"$NBD_TMP/block"
	if [[ $what == write ]]; then
		timeout 60 dd if="$NBD_TMP/block" of="$DEV" bs=$BS seek=$BLOCK \
			count=1 oflag=direct conv=notrunc status=none \
			2>"$NBD_TMP/dd.err"
	else
		timeout 60 dd if="$DEV" of=/dev/null bs=$BS skip=$BLOCK count=1 \
			iflag=direct status=none 2>"$NBD_TMP/dd.err"
	fi
	case $? in
	0) echo "# the $what succeeded"; return 1 ;;
	124) echo "# the $what hung"; return 1 ;;
	esac
	got=$(tail -n 1 "$NBD_TMP/dd.err")
	ktap_info "$what: $got"
	[[ $got == *": $want" ]]
}

# logged ERRNO NUMBER: the kernel named the error, the command, the length
# and the offset (the stock module logs only "Other side returned error").
logged()
{
	local line

	if [[ ${NBD_STOCK:-0} == 1 ]]; then
		dmesg_since_mark | grep -q -i 'returned error' && return 0
		echo "# no 'returned error' line"
		return 1
	fi
	line="server error $1 ($2) on write of $BS bytes at $((BLOCK * BS))"
	dmesg_since_mark | grep -q -F "$line" && return 0
	echo "# no '$line' in the kernel log:"
	dmesg_since_mark | tail -n 5 | sed 's/^/#   /'
	return 1
}

one_errno()
{
	local e=$1 n=$2 inject=$NBD_TMP/inject-$1

	nbdkit_start "$e" --filter=error memory 64M error="$e" \
		error-rate=100% error-file="$inject" ||
		{ not_ok "$e: start nbdkit"; return; }
	if ! nbd_attach "$DEV" "$(nbd_sock "$e")"; then
		not_ok "$e: attach"
		return
	fi
	nbd_quiesce "$DEV"
	# The error lines are rate-limited (5 s): let the last case's expire.
	sleep 5
	dmesg_mark "$e"
	touch "$inject"
	check "$e: a direct write fails with '$(expected "$e")'" \
		dd_says write "$(expected "$e")"
	# Not while udev probes the device, which it does after a write.
	rm -f "$inject"
	nbd_quiesce "$DEV"
	if [[ $e == ESHUTDOWN && ${NBD_STOCK:-0} != 1 ]]; then
		check "$e: logged as the server shutting down, the session ends" \
			eval 'dmesg_since_mark | grep -q "server is shutting down (ESHUTDOWN)" &&
			      nbd_wait_disconnected "$DEV" 30'
		check "$e: nothing was sent after NBD_CMD_DISC (the session ended cleanly)" \
			eval '! dmesg_since_mark | grep -q -E "unexpected reply|receive failed"'
		return
	fi
	touch "$inject"
	check "$e: a direct read fails with '$(expected "$e")'" \
		dd_says read "$(expected "$e")"
	rm -f "$inject"
	check "$e: logged with the command, length and offset" logged "$e" "$n"
	check "$e: the device works again once the server does" \
		dd if="$DEV" of=/dev/null bs=$BS count=1 iflag=direct status=none
	if [[ $e == ENOSPC ]]; then
		check "$e: detach" nbd_detach "$DEV"
	else
		nbd_detach "$DEV" >/dev/null || echo "# detach failed"
	fi
}

one_errno EPERM 1
one_errno EIO 5
one_errno ENOMEM 12
one_errno EINVAL 22
one_errno ENOSPC 28
one_errno ESHUTDOWN 108
nbd_wait_disconnected "$DEV" 30 >/dev/null
check "unload nbd" nbd_unload
ktap_finish
