#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Second stage of the nbd test VM. Runs as PID 1 inside the guest, from the
# host's root file system (9p, read-only, under a tmpfs overlay), after the
# initramfs switch_root'ed into it. Not meant to be run on the host.
#
# It reads its instructions from the per-run directory that vm-run.sh
# shares with the guest as the 9p tag "nbdrun" (path on the host given by
# nbd_vm.run= on the kernel command line):
#   run.env      shell assignments written by vm-run.sh (NBD_VM_*)
#   cmd.sh       the test command
#   nbd.ko       the module to test (absent with --stock)
# and writes back:
#   output.log   stdout+stderr of the test command
#   dmesg.txt    the kernel log, from boot to the end of the run
#   splat.txt    the dmesg lines that look like kernel warnings/oopses
#   status       the result line "NBD-VM-RESULT: rc=N splat=0|1 rmmod=ok|fail ..."
set -uo pipefail

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export LANG=C.UTF-8
umask 022

HOLD=/.nbd-vm
RUN=
STATUS_WRITTEN=0

log() {
	echo "nbd-vm: $*"
}

# Setup steps use the static busybox: under TCG each exec of a dynamically
# linked program costs 30-70 ms, busybox about 8 ms.
bb() {
	busybox "$@"
}

is_mounted() {
	local _dev mnt _rest
	while read -r _dev mnt _rest; do
		[[ $mnt == "$1" ]] && return 0
	done </proc/mounts
	return 1
}

uptime_s() {
	local up _
	read -r up _ </proc/uptime
	printf '%s' "$up"
}

power_off() {
	sync
	if [[ -n $RUN ]] && is_mounted "$RUN"; then
		umount "$RUN" 2>/dev/null
	fi
	busybox poweroff -f 2>/dev/null
	echo o >/proc/sysrq-trigger
	sleep 30
}

# Emergency exit: something in this script itself went wrong.
fatal() {
	log "fatal: $*"
	if [[ $STATUS_WRITTEN -eq 0 ]]; then
		echo "NBD-VM-RESULT: rc=125 splat=0 rmmod=ok stage=guest-init"
	fi
	power_off
}

t_init=$(uptime_s)
for arg in $(</proc/cmdline); do
	case $arg in
	nbd_vm.run=*) RUN=${arg#nbd_vm.run=} ;;
	esac
done
[[ -n $RUN ]] || fatal "no nbd_vm.run= on the kernel command line"

# --- the per-run directory (read-write 9p share) ---------------------------
bb mkdir -p "$HOLD/run" "$HOLD/keep"
bb mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=262144 \
	nbdrun "$HOLD/run" || fatal "cannot mount the run directory"
# shellcheck source=/dev/null
source "$HOLD/run/run.env" || fatal "cannot read run.env"
: "${NBD_VM_CWD:?}" "${NBD_VM_KREL:?}" "${NBD_VM_STOCK:?}" "${NBD_VM_SPLAT_RE:?}"
NBD_VM_KO=${NBD_VM_KO:-}
NBD_VM_REPO=${NBD_VM_REPO:-$NBD_VM_CWD}
NBD_VM_SPLAT_IGNORE=${NBD_VM_SPLAT_IGNORE:-}
NBD_VM_UDEV=${NBD_VM_UDEV:-1}
NBD_VM_MODDIR=${NBD_VM_MODDIR:-}
if [[ ${NBD_VM_TRACE:-0} == 1 ]]; then
	PS4='+ ${EPOCHREALTIME} '
	set -x
fi

# --- modules of a kernel that is not installed on the host -----------------
# The debug kernel's modules live in the cache: show them where modprobe
# looks.  Bound from the overlay, so the tree stays writable (depmod, a
# test's make install) and the host's copy untouched.  Done before the
# tmpfs mounts below, which could hide a cache under /tmp.
if [[ -n $NBD_VM_MODDIR ]]; then
	bb mkdir -p "/lib/modules/$NBD_VM_KREL"
	bb mount --bind "$NBD_VM_MODDIR" "/lib/modules/$NBD_VM_KREL" ||
		log "cannot mount $NBD_VM_MODDIR on /lib/modules/$NBD_VM_KREL"
fi

# --- tmpfs on the scratch directories --------------------------------------
# Host paths the test needs (cwd, repository) may lie under one of
# the directories that get a fresh tmpfs (e.g. a checkout in /tmp): set them
# aside with bind mounts and put them back on top of the tmpfs.
TMPFS_DIRS=(/tmp /run /var/tmp /dev/shm)
under_tmpfs() {
	local d
	for d in "${TMPFS_DIRS[@]}"; do
		[[ $1 == "$d" || $1 == "$d"/* ]] && return 0
	done
	return 1
}

keep=()
for p in "$NBD_VM_CWD" "$NBD_VM_REPO"; do
	if [[ ! -d $p ]] || ! under_tmpfs "$p"; then
		continue
	fi
	dup=0
	for k in "${keep[@]}"; do
		# Skip paths inside (or equal to) one that is kept already.
		[[ $p == "$k" || $p == "$k"/* ]] && dup=1
	done
	[[ $dup -eq 1 ]] && continue
	# Drop kept paths inside this one.
	new=()
	for k in "${keep[@]}"; do
		[[ $k == "$p"/* ]] || new+=("$k")
	done
	keep=("${new[@]}" "$p")
done
for i in "${!keep[@]}"; do
	bb mkdir -p "$HOLD/keep/$i"
	bb mount --bind "${keep[$i]}" "$HOLD/keep/$i" ||
		log "cannot keep ${keep[$i]} visible"
done

bb mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
bb mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
bb mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
bb mkdir -p /dev/shm /dev/pts
bb mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
bb mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
[[ -e /dev/ptmx ]] || ln -s pts/ptmx /dev/ptmx
bb ln -sfn /proc/self/fd /dev/fd
bb ln -sfn /proc/self/fd/0 /dev/stdin
bb ln -sfn /proc/self/fd/1 /dev/stdout
bb ln -sfn /proc/self/fd/2 /dev/stderr
[[ -e /dev/core ]] || ln -s /proc/kcore /dev/core
bb mkdir -p /run/lock

for i in "${!keep[@]}"; do
	bb mkdir -p "${keep[$i]}"
	bb mount --move "$HOLD/keep/$i" "${keep[$i]}" ||
		log "cannot restore ${keep[$i]}"
done

# Move the run directory to the same path as on the host.
bb mkdir -p "$RUN"
bb mount --move "$HOLD/run" "$RUN" || fatal "cannot move the run directory"

is_mounted /sys/kernel/debug || bb mount -t debugfs debugfs /sys/kernel/debug
is_mounted /sys/kernel/config ||
	bb mount -t configfs configfs /sys/kernel/config 2>/dev/null
bb ip link set lo up
echo nbd-vm >/proc/sys/kernel/hostname

# --- udev (partition scanning, by-id links, ...) ---------------------------
t_udev=$(uptime_s)
if [[ $NBD_VM_UDEV == 1 ]]; then
	if [[ -x /lib/systemd/systemd-udevd ]]; then
		/lib/systemd/systemd-udevd --daemon --resolve-names=never
		# Coldplug only what block tests care about unless asked for
		# everything: a full coldplug autoloads a dozen hardware
		# drivers over 9p and costs ~3 s.
		if [[ ${NBD_VM_UDEV_COLDPLUG:-block} == all ]]; then
			udevadm trigger --type=subsystems --action=add
			udevadm trigger --type=devices --action=add
		else
			udevadm trigger --type=devices --action=add \
				--subsystem-match=block --subsystem-match=misc
		fi
		udevadm settle --timeout=60 || log "udevadm settle timed out"
	else
		log "warning: /lib/systemd/systemd-udevd not found; running without udev"
	fi
fi

# --- the test command --------------------------------------------------------
export NBD_KO=$NBD_VM_KO
export NBD_STOCK=$NBD_VM_STOCK
export NBD_KREL=$NBD_VM_KREL
export NBD_VM_RUN_DIR=$RUN
NBD_SRCVERSION=
if [[ -n $NBD_KO ]]; then
	NBD_SRCVERSION=$(modinfo -F srcversion "$NBD_KO" 2>/dev/null)
fi
export NBD_SRCVERSION
test_cwd=$NBD_VM_CWD
unset NBD_VM_CWD NBD_VM_REPO NBD_VM_KO NBD_VM_KREL NBD_VM_STOCK NBD_VM_MODDIR
set +x

running=$(</proc/sys/kernel/osrelease)
[[ $running == "$NBD_KREL" ]] ||
	log "warning: running kernel $running, expected $NBD_KREL"

t_boot=$(uptime_s)
log "booted in ${t_boot}s (guest-init at ${t_init}s, udev ${t_udev}s..${t_boot}s); running test (kernel $NBD_KREL, module ${NBD_KO:-stock})"

fifo=/run/nbd-vm-output.fifo
bb mkfifo -m 0600 "$fifo"
tee "$RUN/output.log" <"$fifo" &
tee_pid=$!
rc=0
(
	cd "$test_cwd" || { echo "nbd-vm: cannot cd to $test_cwd"; exit 126; }
	exec /bin/bash "$RUN/cmd.sh"
) </dev/null >"$fifo" 2>&1
rc=$?
bb rm -f "$fifo"
# Let tee drain the pipe; background children of the test that keep the
# pipe open must not hang the run.
for _ in {1..20}; do
	kill -0 "$tee_pid" 2>/dev/null || break
	sleep 0.1
done
kill "$tee_pid" 2>/dev/null
t_test=$(uptime_s)
log "test command exited with rc=$rc"

# --- unload nbd -------------------------------------------------------------
rmmod_res=ok
if [[ -d /sys/module/nbd && -e /sys/module/nbd/initstate ]]; then
	rmmod_res=fail
	for _ in {1..20}; do
		if rmmod nbd 2>/dev/null; then
			rmmod_res=ok
			break
		fi
		udevadm settle --timeout=2 >/dev/null 2>&1
		sleep 0.5
	done
	if [[ $rmmod_res == fail ]]; then
		log "rmmod nbd failed:"
		rmmod nbd
		lsmod | grep -E '^nbd\b'
	fi
fi

# --- kernel splats ----------------------------------------------------------
dmesg >"$RUN/dmesg.txt"
splat=0
grep -E -- "$NBD_VM_SPLAT_RE" "$RUN/dmesg.txt" |
	if [[ -n $NBD_VM_SPLAT_IGNORE ]]; then
		grep -v -E -- "$NBD_VM_SPLAT_IGNORE"
	else
		cat
	fi >"$RUN/splat.txt"
if [[ -s $RUN/splat.txt ]]; then
	splat=1
	log "kernel splat in dmesg:"
	head -n 20 "$RUN/splat.txt"
fi

result="NBD-VM-RESULT: rc=$rc splat=$splat rmmod=$rmmod_res boot=${t_boot} test=${t_test}"
echo "$result" >"$RUN/status"
STATUS_WRITTEN=1
echo "$result"
power_off
