#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the demo VM (see demo.sh): attach, mkfs, mount, use, detach.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/errtrap.sh"

step() { printf '\n==> %s\n' "$*"; }
work=$(mktemp -d)
cleanup() {
	set +e
	mountpoint -q /mnt/nbd-demo && umount /mnt/nbd-demo
	[ -e /sys/block/nbd0/pid ] && "$NBDCTL" disconnect /dev/nbd0 >/dev/null 2>&1
	[ -f "$work/nbdkit.pid" ] && kill "$(cat "$work/nbdkit.pid")"
	rm -rf "$work"
}
trap cleanup EXIT

step "load this tree's nbd.ko"
insmod "$NBD_KO"
echo "nbd $(cat /sys/module/nbd/version), srcversion $(cat /sys/module/nbd/srcversion)"

step "start the default server: nbdkit memory 1G on $work/nbd.sock"
nbdkit -U "$work/nbd.sock" -P "$work/nbdkit.pid" memory 1G
for _ in $(seq 50); do [ -S "$work/nbd.sock" ] && break; sleep 0.1; done

uri="nbd+unix:///?socket=$work/nbd.sock"
step "what the server offers: nbdctl info $uri"
"$NBDCTL" info "$uri"

step "attach /dev/nbd0 with nbdctl (generic netlink), 2 connections"
"$NBDCTL" connect "$uri" /dev/nbd0 -C 2 -b 4096
udevadm settle
lsblk /dev/nbd0
"$NBDCTL" list nbd0

step "mkfs.ext4 and mount"
mkfs.ext4 -q /dev/nbd0
mkdir -p /mnt/nbd-demo
mount /dev/nbd0 /mnt/nbd-demo

step "write 64 MiB of random data, sync, read it back"
dd if=/dev/urandom of=/mnt/nbd-demo/data bs=1M count=64 status=none
sha_w=$(sha256sum < /mnt/nbd-demo/data)
sync
echo 3 > /proc/sys/vm/drop_caches
sha_r=$(sha256sum < /mnt/nbd-demo/data)
echo "written $sha_w"
echo "read    $sha_r"
[ "$sha_w" = "$sha_r" ]
df -h /mnt/nbd-demo

step "what the driver reports (debugfs)"
for f in /sys/kernel/debug/nbd/nbd0/*; do
	printf '%s:\n' "${f##*/}"
	sed 's/^/    /' "$f"
done

step "unmount and detach"
umount /mnt/nbd-demo
"$NBDCTL" disconnect /dev/nbd0
"$NBDCTL" list nbd0

step "kernel log"
dmesg | grep -E 'nbd' | grep -v 'Command line'
echo
echo "demo finished: /dev/nbd0 carried an ext4 filesystem and the data read back intact"
