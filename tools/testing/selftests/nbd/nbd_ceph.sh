#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Ceph's rbd-nbd on this driver: a one-node Ceph cluster started here
# (ceph_lib.sh: a monitor, a manager, BlueStore OSDs on the loopback), an
# RBD image mapped with rbd-nbd over netlink (--try-netlink) and over the
# ioctls (rbd-nbd's default), a file system and fio verify on it, rbd
# resize while mapped, list-mapped, unmap, SIGKILL of the rbd-nbd daemon
# and `rbd-nbd attach --cookie` within the re-attach timeout, the
# teardown once that timeout passes, and an OSD stopped and restarted
# under fio.
#
# make check runs the short version; NBD_CEPH_FULL=1 (make ceph) adds
# --exclusive, the ioctl resize, the re-attach timeout's teardown, the
# only OSD stopped and restarted under fio (I/O waits), and a second
# cluster of three OSDs whose pool keeps two copies, where I/O carries on
# while an OSD is down.
#
# Environment: NBD_CEPH_FULL (0), NBD_CEPH_MB (fio region, 24 MiB).

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ceph_lib.sh"

FULL=${NBD_CEPH_FULL:-0}
MB=${NBD_CEPH_MB:-24}
IMG_MB=128
POOL=rbd
REATTACH=${NBD_CEPH_REATTACH:-60}

nbd_test_init
if [[ $FULL == 1 ]]; then
	ktap_plan 41
else
	ktap_plan 25
fi
ktap_info "module: $(nbd_module_desc)"
require_cmds rbd-nbd rbd ceph ceph-mon ceph-mgr ceph-osd monmaptool \
	fio mkfs.ext4 md5sum python3 bc

# rbd and rbd-nbd run as clients of the cluster; rbd-nbd daemonizes, so
# every rbd-nbd left at exit is killed (SIGKILL: a device it serves is
# disconnected by lib.sh's cleanup anyway).
rbdc()
{
	timeout 120 rbd -c "$CEPH_CONF" "$@"
}

rbdnbd()
{
	timeout 180 rbd-nbd -c "$CEPH_CONF" "$@"
}
at_exit 'pkill -9 -x rbd-nbd; sleep 1; ceph_down'

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
echo 30 >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
dmesg_mark ceph
TEST_MARK=$_dmesg_mark

# --- the cluster ---------------------------------------------------------

if ceph_up "$NBD_TMP/ceph" 1; then
	ok "a one-node Ceph cluster comes up (mon, mgr, 1 OSD) in $CEPH_UP_SECS s"
	ktap_info "cluster: $CEPH_TIMES"
else
	not_ok "a one-node Ceph cluster comes up"
	ktap_info_file "$NBD_TMP/ceph/log/mon.a.out"
	ktap_bail "no cluster"
fi
t0=$SECONDS
if rbdc create --size "${IMG_MB}M" "$POOL/img"; then
	ok "a $IMG_MB MiB image in pool $POOL ($((SECONDS - t0)) s)"
else
	not_ok "pool $POOL and an image"
	ceph_cli -s | sed 's/^/# /'
	ceph_logs
	ktap_bail "no image"
fi

# map_dev NAME ARGS...: rbd-nbd map; prints the device; its output in
# $NBD_TMP/NAME.map.
map_dev()
{
	local name=$1 dev

	shift
	dev=$(rbdnbd map "$@" 2>"$NBD_TMP/$name.map") || {
		ktap_info "rbd-nbd map $* failed:" >&2
		ktap_info_file "$NBD_TMP/$name.map" >&2
		return 1
	}
	# over the ioctls map returns before its daemon is in NBD_DO_IT
	nbd_wait_connected "${dev%% *}" 30 ||
		{ ktap_info "${dev%% *} not connected 30 s after map" >&2; return 1; }
	# udev's probe of the new disk holds its open_mutex while it reads:
	# let it finish before an OSD stops, or a later open waits for it
	udev_settle
	echo "$dev"
}

# size_is DEV BYTES: the kernel reports BYTES (sysfs and the block
# device's own ioctl).
size_is()
{
	[[ $(nbd_size_bytes "$1") == "$2" ]] &&
	[[ $(blockdev --getsize64 "$1" 2>/dev/null) == "$2" ]]
}

# mapped_json DEV IMAGE: list-mapped --format json names DEV for IMAGE,
# with the pid of a live rbd-nbd.
mapped_json()
{
	rbdnbd list-mapped --format json 2>/dev/null | python3 -c '
import json, os, sys
dev, image = sys.argv[1], sys.argv[2]
for m in json.load(sys.stdin):
    if m.get("device") == dev and m.get("image") == image:
        pid = int(m.get("id", 0))
        sys.exit(0 if pid > 0 and os.path.exists("/proc/%d" % pid) else 2)
sys.exit(1)' "$1" "$2"
}

# mapped_pid DEV: the pid list-mapped gives for DEV (what a user would
# kill), or nothing.
mapped_pid()
{
	rbdnbd list-mapped --format json 2>/dev/null | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    if m.get("device") == sys.argv[1]:
        print(m.get("id", ""))' "$1" 2>/dev/null
}

# not_mapped DEV: list-mapped does not show DEV.
not_mapped()
{
	local out

	out=$(rbdnbd list-mapped --format json 2>/dev/null) &&
	! python3 -c '
import json, sys
sys.exit(0 if any(m.get("device") == sys.argv[1]
                  for m in json.loads(sys.argv[2])) else 1)' "$1" "$out"
}

# fs_round_trip DEV: mkfs.ext4, mount, write 16 MiB, unmount, mount
# again, the file's md5 is the same.
fs_round_trip()
{
	local mnt=$NBD_TMP/mnt sum1 sum2

	mkdir -p "$mnt"
	mkfs.ext4 -q -F "$1" >"$NBD_TMP/mkfs.out" 2>&1 ||
		{ ktap_info_file "$NBD_TMP/mkfs.out"; return 1; }
	mount "$1" "$mnt" || return 1
	at_exit "umount -l $mnt"
	head -c 16M /dev/urandom >"$mnt/data" && sync
	sum1=$(md5sum <"$mnt/data")
	umount "$mnt" || return 1
	mount "$1" "$mnt" || return 1
	sum2=$(md5sum <"$mnt/data")
	umount "$mnt" || return 1
	ktap_info "md5 before $sum1, after remount $sum2"
	[[ -n $sum1 && $sum1 == "$sum2" ]]
}

# fio_job NAME DEV: random writes of 4-64 KiB with crc32c verify over
# the first MB MiB, then a verify pass; ok when clean.
fio_job()
{
	fio_verify "$1" "$2" --rw=randwrite --bsrange=4k-64k --iodepth=8 \
		--size="${MB}M" && fio_verify_clean "$1" - =
}

# unmap DEV: rbd-nbd unmap; the device is disconnected and list-mapped
# no longer shows it.
unmap()
{
	rbdnbd unmap "$1" >"$NBD_TMP/unmap.out" 2>&1 ||
		{ ktap_info_file "$NBD_TMP/unmap.out"; return 1; }
	nbd_wait_disconnected "$1" 30 && ceph_poll 30 not_mapped "$1"
}

# resize_follows DEV MB: rbd resize the image to MB MiB; the device
# follows within 30 s, without unmapping.
resize_follows()
{
	rbdc resize --size "$2M" "$POOL/img" >/dev/null 2>&1 || return 1
	wait_for 30 size_is "$1" $(($2 * 1048576)) ||
		{ ktap_info "size after resize: $(nbd_size_bytes "$1") bytes"; return 1; }
	lsblk -bno SIZE "$1" | head -1 | grep -qx "$(($2 * 1048576))"
}

# --- netlink -------------------------------------------------------------

DEV=$(map_dev nl --try-netlink "$POOL/img")
check "rbd-nbd map --try-netlink (netlink) gives a device: ${DEV:-none}" \
	test -n "$DEV" || ktap_bail "no netlink mapping"
check "the device has the image's size" size_is "$DEV" $((IMG_MB * 1048576))
check "list-mapped --format json shows $DEV with its rbd-nbd" \
	mapped_json "$DEV" img
check "ext4 on $DEV: mkfs, write, unmount, remount, md5 matches" \
	fs_round_trip "$DEV"
check "fio verify on $DEV (netlink)" fio_job nl "$DEV"
check "rbd resize to $((IMG_MB * 2)) MiB: $DEV follows (sysfs, lsblk)" \
	resize_follows "$DEV" $((IMG_MB * 2))
# rbd-nbd's own resize carries no backend identifier (Ceph 16); another
# process must still give it
resize_refused()
{
	local out rc before

	before=$(nbd_size_bytes "$DEV")
	out=$(python3 "$NBD_SELFTEST_DIR/nbd_genl.py" resize "${DEV#/dev/nbd}" \
		$((IMG_MB * 3 * 1048576)))
	rc=$?
	ktap_info "size-only RECONFIGURE from another process: $out"
	[[ $rc == 0 ]] && size_is "$DEV" "$before"
}
check "the same resize request from another process is refused, size kept" \
	resize_refused
check "rbd-nbd unmap $DEV: disconnected, list-mapped empty" unmap "$DEV"

# --- ioctl ---------------------------------------------------------------

DEV=$(map_dev io "$POOL/img")
check "rbd-nbd map (ioctl) gives a device: ${DEV:-none}" test -n "$DEV" ||
	ktap_bail "no ioctl mapping"
check "the device has the image's size" size_is "$DEV" $((IMG_MB * 2 * 1048576))
check "list-mapped --format json shows $DEV" mapped_json "$DEV" img
check "ext4 on $DEV: mkfs, write, unmount, remount, md5 matches" \
	fs_round_trip "$DEV"
check "fio verify on $DEV (ioctl)" fio_job io "$DEV"
if [[ $FULL == 1 ]]; then
	check "rbd resize to $((IMG_MB * 3)) MiB: $DEV follows (ioctl)" \
		resize_follows "$DEV" $((IMG_MB * 3))
fi
check "rbd-nbd unmap $DEV" unmap "$DEV"

if [[ $FULL == 1 ]]; then
	DEV=$(map_dev ex --try-netlink --exclusive "$POOL/img")
	check "rbd-nbd map --exclusive: ${DEV:-none}" test -n "$DEV"
	check "fio verify on $DEV (--exclusive)" fio_job ex "$DEV"
	# another client may not write while the exclusive mapping holds
	# the image's lock
	check "another client's write is refused while mapped --exclusive" \
		expect_fail rbdc bench --io-type write --io-size 4096 \
		--io-total 4096 "$POOL/img"
	check "rbd-nbd unmap $DEV" unmap "$DEV"
fi

# --- SIGKILL of rbd-nbd and attach --cookie ----------------------------

# librbd's cache would keep acknowledged writes in the killed daemon:
# the re-attach tests map with it off, so that what the kernel completed
# is in the cluster.
daemon_of()
{
	cat "/sys/block/${1##*/}/pid" 2>/dev/null
}

DEV=$(map_dev ka --try-netlink --show-cookie --rbd-cache=false \
	--reattach-timeout "$REATTACH" "$POOL/img")
read -r DEV COOKIE <<<"$DEV"
check "map --show-cookie --reattach-timeout $REATTACH: $DEV, cookie ${COOKIE:-none}" \
	test -n "$DEV" -a -n "$COOKIE"
check "the device's backend is the cookie" \
	test "$(cat "/sys/block/${DEV##*/}/backend" 2>/dev/null)" = "$COOKIE"
PID=$(mapped_pid "$DEV")
(fio_verify ka "$DEV" --rw=randwrite --bsrange=4k-64k --iodepth=8 \
	--size="${MB}M"; echo $? >"$NBD_TMP/ka.rc") &
FIO=$!
track_pid $FIO
sleep 3
kill -9 "$PID" 2>/dev/null
pid_gone "$PID" 10 >/dev/null
ktap_info "killed rbd-nbd $PID; attaching"
# The kernel replaces only a connection it has seen die: an attach that
# comes first is refused ("no dead connection to replace"), as upstream
# does, so try again as a unit's Restart= would.
attach_tries=0
attach()
{
	attach_tries=$((attach_tries + 1))
	rbdnbd attach --device "$DEV" --cookie "$COOKIE" "$POOL/img" \
		--rbd-cache=false --reattach-timeout "$REATTACH" \
		>"$NBD_TMP/attach.out" 2>&1
}
sleep 2
if ceph_poll 30 attach; then
	ok "rbd-nbd attach --cookie after SIGKILL, within the re-attach timeout"
	ktap_info "attached at try $attach_tries"
else
	not_ok "rbd-nbd attach --cookie after SIGKILL"
	ktap_info_file "$NBD_TMP/attach.out"
fi
wait $FIO
check "fio verify across the SIGKILL and attach: clean" \
	eval '[[ $(cat "$NBD_TMP/ka.rc") == 0 ]] && fio_verify_clean ka - ='
check "the new rbd-nbd serves $DEV (list-mapped)" mapped_json "$DEV" img
check "no I/O error in the kernel log" \
	eval '! dmesg_since_mark | grep -q "I/O error, dev ${DEV##*/}"'

if [[ $FULL == 1 ]]; then
	# upstream keeps the first daemon's pid in sysfs after an attach
	PID=$(mapped_pid "$DEV")
	check "sysfs pid names the re-attached daemon ($PID)" \
		test -n "$PID" -a "$(daemon_of "$DEV")" = "$PID"
	kill -9 "$PID" 2>/dev/null
	t0=$SECONDS
	if nbd_wait_disconnected "$DEV" $((REATTACH + 60)); then
		ok "SIGKILL, no attach: $DEV torn down after the re-attach timeout"
		ktap_info "disconnected $((SECONDS - t0)) s after SIGKILL (timeout $REATTACH s)"
	else
		not_ok "SIGKILL, no attach: $DEV torn down after the re-attach timeout"
		ktap_info "still connected $((SECONDS - t0)) s after SIGKILL (timeout $REATTACH s)"
	fi
	# torn down: the device is empty (a read ends at once, with 0 bytes);
	# left attached: I/O must fail, not hang
	check "I/O on $DEV now returns at once (no data, or an error)" \
		eval 'timeout 10 dd if="$DEV" of=/dev/null bs=4k count=1 iflag=direct \
			status=none 2>/dev/null; [[ $? != 124 ]]'
else
	check "rbd-nbd unmap $DEV" unmap "$DEV"
fi

# --- an OSD stopped under fio --------------------------------------------

# osd_bounce NAME DEV ID [SIZE2]: fio verify on DEV while osd.ID stops for
# 15 s and comes back.
osd_bounce()
{
	local name=$1 dev=$2 id=$3 fio

	# under a shared lock on the device, as systemd documents for
	# tools that own a disk: udev's reply to fio's close-after-write is
	# BLKRRPART, whose partition read would hold the disk's open_mutex
	# across the outage (and fio's next open would wait for it)
	(exec 9<"$dev"
	 flock -s 9
	 fio_verify "$name" "$dev" --rw=randwrite --bsrange=4k-64k \
		--iodepth=8 --size="${MB}M"
	 echo $? >"$NBD_TMP/$name.rc") &
	fio=$!
	sleep 3
	ceph_osd_stop "$id" || ktap_info "osd.$id did not stop"
	ktap_info "osd.$id stopped"
	sleep 15
	ceph_osd_start "$id"
	wait $fio
	[[ $(cat "$NBD_TMP/$name.rc") == 0 ]] && fio_verify_clean "$name" - =
}

# make check stops short of the OSD restart (an OSD takes a minute to
# start again under TCG)
if [[ $FULL == 1 ]]; then
	# the teardown above logged I/O errors on a device of the same name
	dmesg_mark osd
	DEV=$(map_dev osd --try-netlink --io-timeout 120 "$POOL/img")
	check "map for the OSD restart: ${DEV:-none}" test -n "$DEV"
	check "fio verify while the only OSD stops 15 s and restarts (I/O waits): clean" \
		osd_bounce osd1 "$DEV" 0
	check "no hung task and no I/O error in the kernel log" \
		eval '! dmesg_since_mark | grep -E -q "blocked for more than|I/O error, dev ${DEV##*/}"'
	check "rbd-nbd unmap $DEV" unmap "$DEV"
fi

if [[ $FULL == 1 ]]; then
	pkill -9 -x rbd-nbd
	ceph_down
	if ceph_up "$NBD_TMP/ceph3" 3 2 rbd2; then
		ok "a cluster of three OSDs and a pool of two copies comes up in $CEPH_UP_SECS s"
		ktap_info "cluster: $CEPH_TIMES"
	else
		not_ok "a cluster of three OSDs comes up"
	fi
	# two copies of every placement group before an OSD stops
	check "an image in the pool of two copies, all placement groups clean" \
		eval 'rbdc create --size ${IMG_MB}M rbd2/img && ceph_wait_clean 300' ||
		ceph_cli -s | sed 's/^/# /'
	POOL=rbd2
	DEV=$(map_dev osd3 --try-netlink --io-timeout 120 "$POOL/img")
	check "map rbd2/img: ${DEV:-none}" test -n "$DEV"
	check "fio verify while osd.1 of 3 stops and restarts (I/O carries on): clean" \
		osd_bounce osd3 "$DEV" 1
	check "rbd-nbd unmap $DEV" unmap "$DEV"
fi

check "no kernel warning or hung task during the test" \
	eval '_dmesg_mark=$TEST_MARK; ! dmesg_since_mark | grep -E -q "WARNING:|BUG:|blocked for more than|Call Trace"'
ktap_finish
