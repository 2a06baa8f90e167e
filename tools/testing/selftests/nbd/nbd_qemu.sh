#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# qemu-nbd as the client (its own NBD_SET_SOCK/NBD_DO_IT ioctl use):
# a qcow2 image attached with qemu-nbd -c carries an ext4 file system
# across qemu-nbd -d and a second attach; the image stays consistent,
# and the same image served by qemu-nbd to nbd-client over netlink reads
# back the same files.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0

nbd_test_init
ktap_plan 16
ktap_info "module: $(nbd_module_desc)"
require_cmds qemu-img qemu-nbd nbd-client mkfs.ext4 sha256sum mount

IMG=$NBD_TMP/disk.qcow2
MNT=$NBD_TMP/mnt
mkdir -p "$MNT"
at_exit "mountpoint -q '$MNT' && umount '$MNT'"
at_exit "nbd_connected $DEV && qemu-nbd -d $DEV"

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
check "qemu-img create -f qcow2 256M" quiet qemu-img create -f qcow2 "$IMG" 256M ||
	ktap_bail "cannot create the image"

QEMU_PID=
# qemu_attach: qemu-nbd -c, then wait for the device; remembers the
# qemu-nbd process that serves it.
qemu_attach()
{
	quiet timeout 60 qemu-nbd -c "$DEV" -f qcow2 "$IMG" || return 1
	nbd_wait_connected "$DEV" 20 || { echo "# $DEV not connected"; return 1; }
	QEMU_PID=$(cat "/sys/block/${DEV##*/}/pid" 2>/dev/null)
	if [[ $(cat "/proc/$QEMU_PID/comm" 2>/dev/null) != qemu-nbd ]]; then
		echo "# /sys/block/${DEV##*/}/pid ($QEMU_PID) is not qemu-nbd"
		return 1
	fi
	track_pid "$QEMU_PID"
	udev_settle
}

qemu_detach()
{
	quiet timeout 60 qemu-nbd -d "$DEV" &&
		nbd_wait_disconnected "$DEV" 20 &&
		pid_gone "$QEMU_PID" 20
}

write_files()
{
	local i

	mount "$DEV" "$MNT" || return 1
	for i in 1 2 3; do
		head -c $((i * 3 * 1024 * 1024 + 4321)) /dev/urandom \
			>"$MNT/data$i" || return 1
	done
	mkdir -p "$MNT/d" && cp "$MNT/data1" "$MNT/d/copy" || return 1
	sync || return 1
	(cd "$MNT" && find . -type f -print0 | sort -z | xargs -0 sha256sum) \
		>"$NBD_TMP/sums" || return 1
	umount "$MNT"
}

verify_files()
{
	mount "$DEV" "$MNT" || return 1
	echo 3 >/proc/sys/vm/drop_caches
	(cd "$MNT" && sha256sum --quiet -c "$NBD_TMP/sums") || return 1
	umount "$MNT"
}

check "qemu-nbd -c $DEV attaches the image" qemu_attach ||
	ktap_bail "qemu-nbd attach failed"
# 4 KiB blocks: the nbd-client attach below uses 4 KiB sectors.
check "mkfs.ext4 -b 4096" quiet mkfs.ext4 -q -F -b 4096 "$DEV"
check "mount, write files, sync, checksum, umount" quiet write_files
check "qemu-nbd -d detaches and its process exits" qemu_detach
check "qemu-img check finds the image clean" quiet qemu-img check -f qcow2 "$IMG"

check "qemu-nbd -c attaches the image again" qemu_attach ||
	ktap_bail "second qemu-nbd attach failed"
check "e2fsck -fn finds the file system clean" quiet e2fsck -fn "$DEV"
check "mount again: the checksums match" quiet verify_files
check "qemu-nbd -d again" qemu_detach

# The same image through qemu-nbd's server and nbd-client (netlink).
check "qemu-nbd serves the image on a socket" \
	qemunbd_start qsrv -f qcow2 "$IMG"
check "nbd-client attaches it over netlink" \
	nbd_attach "$DEV" "$(nbd_sock qsrv)"
check "the checksums match through nbd-client too" quiet verify_files
check "detach" nbd_detach "$DEV"
check "unload nbd" nbd_unload
ktap_finish
