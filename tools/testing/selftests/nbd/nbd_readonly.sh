#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Read-only exports (NBD_FLAG_READ_ONLY): the device is read-only
# (/sys/block/nbd0/ro, BLKROGET), reads return the export's content and
# writes fail without changing it.  nbdkit's pattern plugin with -r over
# netlink, nbd-server with "readonly = true" over the ioctl interface,
# and qemu-nbd -r, which advertises SEND_FLUSH: fsync() on the device
# must succeed there (the flush goes to the server), and a write fail
# with EPERM.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
BS=4096

nbd_test_init
ktap_plan 20
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-server nbd-client qemu-nbd blockdev dd cmp perl python3

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
nbdkit_start pattern -r pattern 64M || ktap_bail "cannot start nbdkit"
head -c $((32 << 20)) /dev/urandom >"$NBD_TMP/ro.img"
sha256sum <"$NBD_TMP/ro.img" >"$NBD_TMP/ro.sum"
nbdserver_start ro "$NBD_TMP/ro.img" "readonly = true" ||
	ktap_bail "cannot start nbd-server"

is_ro()
{
	local ro getro

	ro=$(cat "/sys/block/${DEV##*/}/ro")
	getro=$(blockdev --getro "$DEV")
	ktap_info "sysfs ro=$ro, BLKROGET=$getro"
	[[ $ro == 1 && $getro == 1 ]]
}

# pattern_reads: blocks at a few offsets hold nbdkit's pattern.
pattern_reads()
{
	local off

	for off in 0 1 100 4095 16383; do
		pattern_file $((off * BS)) $((2 * BS)) "$NBD_TMP/want" || return 1
		[[ $off -eq 16383 ]] && truncate -s $BS "$NBD_TMP/want"
		dd if="$DEV" of="$NBD_TMP/got" bs=$BS skip=$off count=2 \
			iflag=direct status=none || return 1
		cmp "$NBD_TMP/want" "$NBD_TMP/got" || return 1
	done
}

# write_fails OFFSET: an O_DIRECT write of one block fails.
write_fails()
{
	head -c $BS /dev/urandom >"$NBD_TMP/junk"
	if dd if="$NBD_TMP/junk" of="$DEV" bs=$BS seek="$1" count=1 \
		oflag=direct conv=notrunc status=none 2>"$NBD_TMP/dd.err"; then
		echo "# the write succeeded"
		return 1
	fi
	ktap_info "dd: $(tail -n 1 "$NBD_TMP/dd.err")"
}

# --- nbdkit pattern -r, netlink --------------------------------------------------
check "netlink: attach nbdkit pattern -r" nbd_attach "$DEV" "$(nbd_sock pattern)" ||
	ktap_bail "attach failed"
check "netlink: the device is read-only" is_ro
check "netlink: reads return the pattern" pattern_reads
check "netlink: a direct write fails" write_fails 100
check "netlink: the pattern is unchanged after the failed write" pattern_reads
check "netlink: detach" nbd_detach "$DEV"

# --- nbd-server readonly, ioctl --------------------------------------------------
whole_file_reads()
{
	dd if="$DEV" of="$NBD_TMP/got.img" bs=1M iflag=direct status=none &&
		cmp "$NBD_TMP/ro.img" "$NBD_TMP/got.img"
}

check "ioctl: attach nbd-server readonly export" \
	nbd_attach "$DEV" "$(nbd_sock ro)" -N ro -L || ktap_bail "attach failed"
check "ioctl: the device is read-only" is_ro
check "ioctl: reading the whole device returns the file" whole_file_reads
check "ioctl: a direct write fails" write_fails 0
check "ioctl: a buffered write with fsync fails" \
	expect_fail dd if="$NBD_TMP/junk" of="$DEV" bs=$BS seek=5 count=1 \
	conv=notrunc,fsync status=none
check "ioctl: detach" nbd_detach "$DEV"
check "the backing file is unchanged" \
	bash -c "sha256sum <'$NBD_TMP/ro.img' | cmp -s - '$NBD_TMP/ro.sum'"

# --- qemu-nbd -r: SEND_FLUSH on a read-only export -----------------------------
# fsync_dev: fsync() of the device opened read-only succeeds.
fsync_dev()
{
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.close(fd)' "$DEV" 2>"$NBD_TMP/fsync.err" && return 0
	ktap_info_file "$NBD_TMP/fsync.err"
	dmesg | tail -n 3 | sed 's/^/#   /'
	return 1
}

# write_eperm: a write(2) fails with "Operation not permitted".
write_eperm()
{
	write_fails 3 || return 1
	grep -q 'Operation not permitted' "$NBD_TMP/dd.err"
}

qemunbd_start qro -r -f raw "$NBD_TMP/ro.img" ||
	ktap_bail "cannot start qemu-nbd"
check "qemu-nbd -r: attach" nbd_attach "$DEV" "$(nbd_sock qro)" ||
	ktap_bail "attach failed"
check "qemu-nbd -r: it advertises SEND_FLUSH (flags $(cat /sys/kernel/debug/nbd/nbd0/flags 2>/dev/null | head -n 1))" \
	eval 'grep -q SEND_FLUSH /sys/kernel/debug/nbd/nbd0/flags'
check "qemu-nbd -r: fsync() on the device succeeds" fsync_dev
check "qemu-nbd -r: a write fails with EPERM" write_eperm
check "qemu-nbd -r: detach" nbd_detach "$DEV"
check "unload nbd" nbd_unload
ktap_finish
