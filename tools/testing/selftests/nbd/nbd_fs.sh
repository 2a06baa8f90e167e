#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# An ext4 file system on /dev/nbd0 survives a disconnect: files written
# while attached over netlink read back with the same checksums after
# reattaching over the ioctl interface to the same nbd-server, whose
# backing file holds the data.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
EXPORT=fsdisk

nbd_test_init
ktap_plan 16
ktap_info "module: $(nbd_module_desc)"
require_cmds nbd-server nbd-client mkfs.ext4 e2fsck blkid sha256sum mount

MNT=$NBD_TMP/mnt
BACKING=$NBD_TMP/backing.img
mkdir -p "$MNT"
truncate -s 256M "$BACKING"
at_exit "mountpoint -q '$MNT' && umount '$MNT'"

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
check "start nbd-server on a 256 MiB backing file" \
	nbdserver_start "$EXPORT" "$BACKING" "flush = true" "trim = true" ||
	ktap_bail "cannot start nbd-server"
SOCK=$(nbd_sock "$EXPORT")

check "netlink: attach $DEV" nbd_attach "$DEV" "$SOCK" -N "$EXPORT" ||
	ktap_bail "attach failed"
check "mkfs.ext4 on $DEV" quiet mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$DEV"

write_files()
{
	local i

	mount "$DEV" "$MNT" || return 1
	mkdir -p "$MNT/dir/sub" || return 1
	for i in 1 2 3 4; do
		head -c $((i * 1024 * 1024 + i * 777)) /dev/urandom \
			>"$MNT/file$i" || return 1
	done
	head -c 5000 /dev/urandom >"$MNT/dir/sub/small" || return 1
	# Many small files: lots of metadata blocks.
	for i in $(seq 1 200); do
		echo "file $i $RANDOM" >"$MNT/dir/f$i" || return 1
	done
	sync || return 1
	(cd "$MNT" && find . -type f -print0 | sort -z |
		xargs -0 sha256sum) >"$NBD_TMP/sums" || return 1
	[[ $(wc -l <"$NBD_TMP/sums") -eq 205 ]]
}
check "mount, write 205 files of random data, sync, checksum" quiet write_files
check "umount" quiet umount "$MNT"
check "netlink: detach $DEV" nbd_detach "$DEV"

# nbd-server wrote everything to its backing file.
check "the backing file holds the ext4 file system" \
	bash -c "blkid -p -o value -s TYPE '$BACKING' | grep -qx ext4"

check "ioctl: reattach $DEV" nbd_attach "$DEV" "$SOCK" -N "$EXPORT" -L ||
	ktap_bail "reattach failed"
CLIENT_PID=$NBD_CLIENT_PID
check "e2fsck -fn finds the file system clean" quiet e2fsck -fn "$DEV"

verify_files()
{
	mount "$DEV" "$MNT" || return 1
	echo 3 >/proc/sys/vm/drop_caches
	(cd "$MNT" && sha256sum --quiet -c "$NBD_TMP/sums")
}
check "mount again: all 205 checksums match" quiet verify_files
check "umount" quiet umount "$MNT"
check "ioctl: detach $DEV" nbd_detach "$DEV"
check "ioctl: nbd-client in NBD_DO_IT exited" pid_gone "$CLIENT_PID" 15
check "e2fsck -fn on the backing file finds it clean" quiet e2fsck -fn "$BACKING"
check "unload nbd" nbd_unload
ktap_finish
