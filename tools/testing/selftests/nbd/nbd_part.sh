#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Partitions on nbd (max_part > 0): a GPT written with parted shows up
# as /dev/nbd0pN, partition N maps to the right part of the disk, the
# table is found again on the next attach, and every partition device
# goes away on disconnect.  Over netlink and over the ioctl interface.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
NAME=nbd0
BS=4096

nbd_test_init
ktap_plan 18
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-client parted dd cmp

check "load nbd max_part=8" nbd_load max_part=8 || ktap_bail "cannot load nbd"
nbdkit_start mem memory 128M || ktap_bail "cannot start nbdkit"
SOCK=$(nbd_sock mem)

# parts_present N...: sysfs entries and device nodes for these partitions.
parts_present()
{
	local n

	udev_settle
	for n in "$@"; do
		wait_for 10 test -e "/sys/block/$NAME/${NAME}p$n" ||
			{ echo "# no /sys/block/$NAME/${NAME}p$n"; return 1; }
		wait_for 10 test -b "/dev/${NAME}p$n" ||
			{ echo "# no /dev/${NAME}p$n"; return 1; }
	done
}

_no_parts_sysfs()
{
	! compgen -G "/sys/block/$NAME/${NAME}p*" >/dev/null
}

_no_parts_dev()
{
	! compgen -G "/dev/${NAME}p*" >/dev/null
}

# parts_gone: no partition left in sysfs nor in /dev.
parts_gone()
{
	udev_settle
	wait_for 15 _no_parts_sysfs ||
		{ echo "# left in sysfs:" /sys/block/$NAME/${NAME}p*; return 1; }
	wait_for 15 _no_parts_dev ||
		{ echo "# left in /dev:" /dev/${NAME}p*; return 1; }
}

# maps_to PART START_MIB: a block written at the start of partition
# PART is found START_MIB into the whole disk.
maps_to()
{
	local in=$NBD_TMP/part.in out=$NBD_TMP/part.out

	head -c $BS /dev/urandom >"$in"
	dd if="$in" of="/dev/${NAME}p$1" bs=$BS count=1 oflag=direct \
		conv=notrunc status=none || return 1
	dd if="$DEV" of="$out" bs=$BS skip=$(($2 * 256)) count=1 \
		iflag=direct status=none || return 1
	cmp "$in" "$out"
}

# --- netlink: create a table ------------------------------------------------
check "netlink: attach $DEV" nbd_attach "$DEV" "$SOCK" ||
	ktap_bail "attach failed"
check "netlink: parted mklabel gpt, two partitions" \
	quiet parted -s "$DEV" -- mklabel gpt \
	mkpart one 1MiB 40MiB mkpart two 40MiB 100MiB
check "netlink: ${NAME}p1 and ${NAME}p2 appear" parts_present 1 2
check "netlink: ${NAME}p2 starts 40 MiB into the disk" maps_to 2 40
check "netlink: detach $DEV" nbd_detach "$DEV"
check "netlink: partitions gone from sysfs and /dev after detach" parts_gone

# --- ioctl: find it again, change it ------------------------------------------
check "ioctl: attach $DEV" nbd_attach "$DEV" "$SOCK" -L ||
	ktap_bail "attach failed"
CLIENT_PID=$NBD_CLIENT_PID
check "ioctl: the existing table is found on attach" parts_present 1 2
check "ioctl: parted adds a third partition" \
	quiet parted -s "$DEV" -- mkpart three 100MiB 120MiB
check "ioctl: ${NAME}p3 appears" parts_present 1 2 3
check "ioctl: ${NAME}p3 starts 100 MiB into the disk" maps_to 3 100
check "ioctl: detach $DEV" nbd_detach "$DEV"
check "ioctl: partitions gone from sysfs and /dev after detach" parts_gone
check "ioctl: nbd-client in NBD_DO_IT exited" pid_gone "$CLIENT_PID" 15

# --- netlink again: the changed table --------------------------------------
attach_find_three()
{
	nbd_attach "$DEV" "$SOCK" && parts_present 1 2 3
}

detach_all_gone()
{
	nbd_detach "$DEV" && parts_gone
}

check "netlink: reattach finds all three partitions" attach_find_three
check "netlink: detach, partitions gone" detach_all_gone
check "unload nbd" nbd_unload
ktap_finish
