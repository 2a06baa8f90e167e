#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The Debian packages of `make deb`, installed and removed with apt in
# the guest (its private overlay: the host is untouched).  NBD_DEB_DIR
# holds nbd-dkms_V_all.deb and nbdctl_V_ARCH.deb, built on the host
# before the VM starts.  After `apt-get install` (the guest has no network:
# dkms, libnl and GnuTLS must be in the host's root), the
# postinst of nbd-dkms has DKMS build the module for the running kernel
# (timed, under TCG this is most of the test) and `modprobe nbd` must
# load it from updates/dkms with the packages' version; nbdctl from the
# package attaches and detaches a device; nbdctl@nbd0 is run the way
# systemd would (the guest's init is no systemd): ExecStart= with
# /etc/nbdtab, I/O, ExecStop=.  After `apt-get remove --purge` nothing
# of the packages is left and `modprobe nbd` loads the kernel's own
# module again.
#
# DKMS's postinst (/usr/lib/dkms/common.postinst) builds for the running
# kernel and for the newest kernel it finds in /boot/config-*: booted on
# 6.1, with 6.12 installed on the host, it would build twice (minutes
# under TCG).  A machine that runs its newest kernel builds once, so the
# test shows the guest only its running kernel's config (/dev/null bound
# over the others, which the postinst's `[ -f ]` skips; unbound at exit).
# NBD_DEB_ALL_KERNELS=1 leaves them visible.
#
# NBD_DEB_CCACHE=DIR (make check): DKMS compiles through ccache with the
# cache in DIR, which tools/testing/deb/prime-ccache.sh filled on the host
# from the same package (Debian's DEBIAN_KERNEL_USE_CCACHE).  DKMS, kbuild,
# modpost and the link still run here, and whatever differs from the
# host's build is compiled here; the test reports the cache's hits and
# misses.  Unset (make deb-vm, make check-long), the guest compiles all.
#
# The module under test is the one DKMS builds, never NBD_KO: run it with
# `vm-run.sh --stock`, in a VM of its own.

source "$(dirname "$0")/lib.sh"

nbd_test_init
ktap_plan 26
require_cmds apt-get dpkg dpkg-deb dkms modinfo modprobe rmmod nbdkit dd cmp

krel=$(uname -r)
deb_dir=${NBD_DEB_DIR:-}
if [[ -z $deb_dir || ! -d $deb_dir ]]; then
	ktap_bail "NBD_DEB_DIR ('$deb_dir') is no directory of make deb's packages (run make deb on the host and pass --env NBD_DEB_DIR=...)"
fi
export DEBIAN_FRONTEND=noninteractive

# the newest file matching a glob, or nothing
newest() {
	local f

	f=$(ls -t "$@" 2>/dev/null | head -n 1)
	[[ -n $f ]] && echo "$f"
}

# dpkg_installed PKG: dpkg knows PKG as installed (not only config-files)
dpkg_installed() {
	[[ $(dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# --- 1: the packages ----------------------------------------------------------
dkms_deb=$(newest "$deb_dir"/nbd-dkms_*_all.deb)
ctl_deb=$(newest "$deb_dir"/nbdctl_*_*.deb)
version=
[[ -n $dkms_deb ]] && version=$(dpkg-deb -f "$dkms_deb" Version 2>/dev/null)
ctl_version=
[[ -n $ctl_deb ]] && ctl_version=$(dpkg-deb -f "$ctl_deb" Version 2>/dev/null)
ktap_info "packages: ${dkms_deb:-none} ($version), ${ctl_deb:-none} ($ctl_version)"
if [[ -z $version || $version != "$ctl_version" ]]; then
	ktap_bail "NBD_DEB_DIR ($deb_dir) holds no nbd-dkms and nbdctl .deb of one version"
fi
ok "NBD_DEB_DIR has nbd-dkms and nbdctl $version"
upstream=${version#*:}
upstream=${upstream%-*}
# The tree the test comes from, when it is a checkout (for the record).
tree_conf=$NBD_SELFTEST_DIR/../../../../dkms.conf
if [[ -f $tree_conf ]]; then
	ktap_info "this tree's dkms.conf: PACKAGE_VERSION=$(sed -n 's/^PACKAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$tree_conf")"
fi

# --- 2: before: the kernel's own module ----------------------------------------
stock=$(modinfo -k "$krel" -n nbd 2>/dev/null)
ktap_info "before install, modinfo -n nbd: $stock"
if [[ $stock == /lib/modules/$krel/kernel/drivers/block/nbd.ko* ]] &&
	! dpkg_installed nbd-dkms && ! dpkg_installed nbdctl &&
	[[ ! -d /sys/module/nbd ]]; then
	ok "before install: nbd resolves to the kernel's own module, no package installed, nbd not loaded"
else
	not_ok "before install: nbd resolves to the kernel's own module, no package installed, nbd not loaded"
	ktap_bail "the guest is not clean (another test left nbd or the packages behind?)"
fi

# --- 3: apt-get install ---------------------------------------------------------
# apt reads local packages as the _apt user: a directory it can enter.
pkgs=$NBD_TMP/debs
mkdir -p "$pkgs"
chmod 755 "$NBD_TMP" "$pkgs"
cp "$dkms_deb" "$ctl_deb" "$pkgs/"
chmod 644 "$pkgs"/*.deb

hidden=()
if [[ ${NBD_DEB_ALL_KERNELS:-0} != 1 ]]; then
	for c in /boot/config-*; do
		[[ -f $c && $c != "/boot/config-$krel" ]] || continue
		mount --bind /dev/null "$c" && hidden+=("$c")
	done
	[[ ${#hidden[@]} -eq 0 ]] ||
		ktap_info "hidden from DKMS's postinst: ${hidden[*]}"
fi
for c in "${hidden[@]}"; do
	at_exit "umount '$c'"
done
# Whatever happens, leave no package behind for the next test.
at_exit "dpkg_installed nbdctl || dpkg_installed nbd-dkms && { rmmod nbd; apt-get remove --purge -y nbdctl nbd-dkms; }"

# man-db's trigger re-indexes every manual page after each install and
# removal (a minute under TCG) unless this file exists; the index is not
# under test.
if [[ -e /var/lib/man-db/auto-update ]]; then
	mv /var/lib/man-db/auto-update "$NBD_TMP/man-db.auto-update"
	at_exit "mv '$NBD_TMP/man-db.auto-update' /var/lib/man-db/auto-update"
fi

# stamp: each input line with the seconds since $t0
stamp() {
	local line

	while IFS= read -r line; do
		printf '%4d %s\n' $((SECONDS - t0)) "$line"
	done
}

ccache_dir=${NBD_DEB_CCACHE:-}
if [[ -n $ccache_dir ]]; then
	if [[ -d $ccache_dir ]] && command -v ccache >/dev/null; then
		export DEBIAN_KERNEL_USE_CCACHE=1 CCACHE_DIR=$ccache_dir
		ccache -z >/dev/null 2>&1
		ktap_info "DKMS compiles through ccache, cache $ccache_dir"
	else
		ktap_info "NBD_DEB_CCACHE=$ccache_dir: no such directory or no ccache; DKMS compiles without it"
		ccache_dir=
	fi
fi

t0=$SECONDS
# Not --no-download: with it apt 2.6 fails on local packages ("Internal
# Error, Pathname to install is not absolute"), as it skips the step that
# resolves their paths.  The guest has no network device anyway: every
# dependency must already be installed, or the install fails.
timeout 900 apt-get install -y -o Dpkg::Use-Pty=0 \
	"$pkgs/${dkms_deb##*/}" "$pkgs/${ctl_deb##*/}" 2>&1 | stamp >"$NBD_TMP/install.log"
rc=${PIPESTATUS[0]}
t_install=$((SECONDS - t0))
ktap_info "apt-get install: exit $rc after $t_install s"
grep -E '^ *[0-9]+ (Building for|Building initial|Done\.|Installing|depmod|Setting up|Processing|Error|E:)' \
	"$NBD_TMP/install.log" | sed 's/^/#   /'
[[ $rc -eq 0 ]] || ktap_info_file "$NBD_TMP/install.log" 30
ktap_result $rc "apt-get install of both packages ($t_install s)"
if [[ -n $ccache_dir ]]; then
	ktap_info "ccache: $(ccache --print-stats 2>/dev/null |
		awk -F'\t' '$1 ~ /^(direct|preprocessed)_cache_hit$/ { h += $2 }
			$1 ~ /^cache_miss$/ { m += $2 }
			END { printf "%d hits, %d misses (compiled here)", h, m }')"
	unset DEBIAN_KERNEL_USE_CCACHE CCACHE_DIR
fi
for c in "${hidden[@]}"; do
	umount "$c"
done
hidden=()

status=$(dkms status nbd 2>&1)
ktap_info "dkms status nbd: ${status:-nothing}"
if dkms status -m nbd -v "$upstream" -k "$krel" 2>/dev/null | grep -q ': installed'; then
	ok "dkms: nbd/$upstream installed for $krel"
else
	not_ok "dkms: nbd/$upstream installed for $krel"
fi

# --- 4: the module ----------------------------------------------------------------
file=$(modinfo -k "$krel" -n nbd 2>/dev/null)
ktap_info "after install, modinfo -n nbd: $file"
ktap_result "$([[ $file == /lib/modules/$krel/updates/dkms/nbd.ko* && -f $file ]]; echo $?)" \
	"modinfo -n nbd is DKMS's module under updates/dkms"

src=/usr/src/nbd-$upstream
pkg_conf=$(sed -n 's/^PACKAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$src/dkms.conf" 2>/dev/null)
drv=$(sed -n 's/^#define[[:space:]]\{1,\}NBD_DRIVER_VERSION[[:space:]]\{1,\}"\(.*\)".*/\1/p' \
	"$src/drivers/block/nbd/nbd.h" 2>/dev/null)
mod_version=$(modinfo -k "$krel" -F version nbd 2>/dev/null)
mod_src=$(modinfo -k "$krel" -F srcversion nbd 2>/dev/null)
ktap_info "modinfo nbd: version '$mod_version' srcversion '$mod_src'; $src: dkms.conf '$pkg_conf', NBD_DRIVER_VERSION '$drv'"
# The kernel's own nbd.ko has neither a version nor a srcversion.
ktap_result "$([[ -n $mod_version && $mod_version == "$upstream" && \
	$pkg_conf == "$upstream" && $drv == "$upstream" && -n $mod_src ]]; echo $?)" \
	"modinfo nbd: version $upstream (the packages', dkms.conf's, nbd.h's) and a srcversion"

_nbd_loaded_by_us=1
quiet modprobe nbd
udev_settle
sys_version=$(cat /sys/module/nbd/version 2>/dev/null)
sys_src=$(cat /sys/module/nbd/srcversion 2>/dev/null)
ktap_info "loaded: /sys/module/nbd/version '$sys_version' srcversion '$sys_src'"
ktap_result "$([[ -n $sys_src && $sys_version == "$mod_version" && $sys_src == "$mod_src" && \
	-b /dev/nbd0 ]]; echo $?)" \
	"modprobe nbd loaded DKMS's module (version and srcversion in /sys/module/nbd)"

# --- 5: nbdctl and its files ------------------------------------------------------
NBDCTL=/usr/sbin/nbdctl
ctl_out=$("$NBDCTL" --version 2>&1)
ktap_info "nbdctl --version: $ctl_out"
ktap_result "$([[ $ctl_out == *"$upstream"* ]]; echo $?)" "/usr/sbin/nbdctl --version says $upstream"

dpkg -L nbdctl >"$NBD_TMP/nbdctl.list" 2>&1
man=$(grep -E '^/usr/share/man/man8/nbdctl\.8(\.gz)?$' "$NBD_TMP/nbdctl.list")
unit=$(grep -E '^(/usr)?/lib/systemd/system/nbdctl@\.service$' "$NBD_TMP/nbdctl.list")
ktap_info "dpkg -L nbdctl: man page '${man:-none}', unit '${unit:-none}'"
ktap_result "$([[ -n $man ]] && zcat -f "$man" | grep -q '^\.TH "\{0,1\}NBDCTL'; echo $?)" \
	"the man page nbdctl(8) is in man8"
ktap_result "$([[ -n $unit && -s $unit ]]; echo $?)" "the unit nbdctl@.service is in systemd's directory"

nbdkit_start mem memory 64M || ktap_bail "cannot start nbdkit"
sock=$(nbd_sock mem)

# rw_check DEV NAME: 1 MiB of random data written with O_DIRECT reads back.
rw_check() {
	head -c 1M /dev/urandom >"$NBD_TMP/$2.in"
	{
		dd if="$NBD_TMP/$2.in" of="$1" bs=1M oflag=direct status=none &&
			dd if="$1" of="$NBD_TMP/$2.out" bs=1M count=1 iflag=direct status=none &&
			cmp "$NBD_TMP/$2.in" "$NBD_TMP/$2.out"
	} 2>"$NBD_TMP/$2.err" || { ktap_info_file "$NBD_TMP/$2.err"; return 1; }
}

if nbdctl_run conn connect "nbd+unix:///?socket=$sock" /dev/nbd0 &&
	nbd_wait_connected /dev/nbd0 20; then
	ok "nbdctl connect /dev/nbd0"
else
	not_ok "nbdctl connect /dev/nbd0"
	ktap_info_file "$NBD_TMP/conn.err"
fi
udev_settle
check "a 1 MiB O_DIRECT round trip through /dev/nbd0" rw_check /dev/nbd0 conn
if nbdctl_run disc disconnect /dev/nbd0 && nbd_wait_disconnected /dev/nbd0 20; then
	ok "nbdctl disconnect /dev/nbd0"
else
	not_ok "nbdctl disconnect /dev/nbd0"
	ktap_info_file "$NBD_TMP/disc.err"
fi
udev_settle

# --- 6: nbdctl@nbd0, run as systemd would --------------------------------------
# unit_lines KEY: the values of KEY= in the unit, one a line.
unit_lines() {
	[[ -n $unit ]] || return 0
	sed -n "s/^[[:space:]]*$1=[[:space:]]*//p" "$unit"
}

# unit_argv LINE: an Exec line as systemd reads it, NUL-separated: the
# prefixes (-@:+!) dropped, %i and %I as nbd0, %% as %, words split with
# quotes, $$ as $ (the rest of $ expansion is left to the shell it runs).
unit_argv() {
	python3 -c '
import re, shlex, sys
line = re.sub(r"^[-@:+!]+", "", sys.argv[1])
line = re.sub(r"%([%iI])", lambda m: "%" if m.group(1) == "%" else "nbd0", line)
for w in shlex.split(line):
	sys.stdout.write(w.replace("$$", "$") + "\0")' "$1"
}

# unit_exec LINE: run an Exec line in the foreground with MAINPID set, as
# for ExecStop (systemd's "-" prefix: a failure is ignored).
unit_exec() {
	local argv

	mapfile -d '' -t argv < <(unit_argv "$1")
	ktap_info "exec: ${argv[*]}"
	MAINPID=$main_pid timeout 60 "${argv[@]}" >>"$NBD_TMP/unit.log" 2>&1 ||
		[[ $1 == -* ]]
}

if [[ -f /etc/nbdtab ]]; then
	cp /etc/nbdtab "$NBD_TMP/nbdtab.orig"
	at_exit "cp '$NBD_TMP/nbdtab.orig' /etc/nbdtab"
else
	at_exit "rm -f /etc/nbdtab"
fi
echo "nbd0 $sock mem unix,bs=4096" >/etc/nbdtab
ktap_info "/etc/nbdtab: $(cat /etc/nbdtab)"

mapfile -t starts < <(unit_lines ExecStart)
mapfile -t pres < <(unit_lines ExecStartPre)
mapfile -t stops < <(unit_lines ExecStop)
ktap_info "unit: Type=$(unit_lines Type | tail -n 1) ExecStart=${starts[*]:-none} ExecStop=${stops[*]:-none}"
main_pid=
if [[ ${#starts[@]} -eq 1 ]]; then
	pre_ok=1
	for l in "${pres[@]}"; do
		unit_exec "$l" || pre_ok=0
	done
	mapfile -d '' -t argv < <(unit_argv "${starts[0]}")
	ktap_info "ExecStart: ${argv[*]}"
	"${argv[@]}" >"$NBD_TMP/unit-start.log" 2>&1 </dev/null &
	main_pid=$!
	track_pid "$main_pid"
	if [[ $pre_ok -eq 1 ]] && nbd_wait_connected /dev/nbd0 60; then
		ok "nbdctl@nbd0's ExecStart connects nbd0 from /etc/nbdtab"
	else
		not_ok "nbdctl@nbd0's ExecStart connects nbd0 from /etc/nbdtab"
		ktap_info_file "$NBD_TMP/unit-start.log"
		ktap_info_file "$NBD_TMP/unit.log"
	fi
else
	not_ok "nbdctl@nbd0's ExecStart connects nbd0 from /etc/nbdtab (the unit has ${#starts[@]} ExecStart lines)"
fi
udev_settle
if nbd_connected /dev/nbd0; then
	check "a 1 MiB O_DIRECT round trip through the unit's nbd0" rw_check /dev/nbd0 unit
	ktap_result "$(kill -0 "$main_pid" 2>/dev/null || [[ $(unit_lines Type | tail -n 1) == oneshot ]]; echo $?)" \
		"ExecStart's process is still running while nbd0 is up (or the unit is oneshot)"
else
	not_ok "a 1 MiB O_DIRECT round trip through the unit's nbd0 (not connected)"
	not_ok "ExecStart's process is still running while nbd0 is up (not connected)"
fi
if [[ ${#stops[@]} -gt 0 ]]; then
	stop_ok=1
	for l in "${stops[@]}"; do
		unit_exec "$l" || stop_ok=0
	done
elif [[ -n $main_pid ]]; then
	# no ExecStop: systemd sends SIGTERM to the main process
	ktap_info "no ExecStop: SIGTERM to ExecStart's process, as systemd does"
	kill -TERM "$main_pid" 2>/dev/null
	stop_ok=1
else
	stop_ok=0
fi
if [[ $stop_ok -eq 1 && -n $main_pid ]] && nbd_wait_disconnected /dev/nbd0 30; then
	ok "the unit's stop disconnects nbd0"
else
	not_ok "the unit's stop disconnects nbd0"
	ktap_info_file "$NBD_TMP/unit.log"
fi
if [[ -n $main_pid ]] && pid_gone "$main_pid" 30; then
	wait "$main_pid"
	rc=$?
	ktap_info "ExecStart's process exited with $rc"
	ktap_result "$([[ $rc -eq 0 || $rc -eq 143 ]]; echo $?)" \
		"ExecStart's process has exited (status 0 or SIGTERM's)"
else
	not_ok "ExecStart's process has exited"
fi
udev_settle

# --- 7: removal ------------------------------------------------------------------
unload_dkms_module() {
	nbd_disconnect_all
	nbd_unload
}
check "rmmod nbd (DKMS's module)" unload_dkms_module
t0=$SECONDS
timeout 600 apt-get remove --purge -y -o Dpkg::Use-Pty=0 nbdctl nbd-dkms \
	2>&1 | stamp >"$NBD_TMP/remove.log"
rc=${PIPESTATUS[0]}
t_remove=$((SECONDS - t0))
ktap_info "apt-get remove --purge: exit $rc after $t_remove s"
grep -E '^ *[0-9]+ (Removing|Purging|Processing|Deleting|depmod|E:)' \
	"$NBD_TMP/remove.log" | sed 's/^/#   /'
[[ $rc -eq 0 ]] || ktap_info_file "$NBD_TMP/remove.log" 30
ktap_result $rc "apt-get remove --purge nbdctl nbd-dkms"

ktap_result "$(! dpkg-query -W nbdctl nbd-dkms >/dev/null 2>&1; echo $?)" \
	"dpkg knows neither package any more (purged)"
ktap_result "$([[ ! -e /usr/sbin/nbdctl && ! -e ${man:-/usr/share/man/man8/nbdctl.8.gz} && \
	! -e ${unit:-/lib/systemd/system/nbdctl@.service} ]]; echo $?)" \
	"nbdctl, its man page and unit are gone"
status=$(dkms status nbd 2>&1)
ktap_info "dkms status nbd: ${status:-nothing}"
left=$(ls -d "/var/lib/dkms/nbd" /usr/src/nbd-* /lib/modules/*/updates/dkms/nbd.ko* 2>/dev/null)
ktap_info "left: ${left:-nothing}"
ktap_result "$([[ -z $status && -z $left ]]; echo $?)" \
	"dkms status has no nbd; no source in /usr/src, no module in updates/dkms"

file=$(modinfo -k "$krel" -n nbd 2>/dev/null)
ktap_info "after removal, modinfo -n nbd: $file"
ktap_result "$([[ $file == /lib/modules/$krel/kernel/drivers/block/nbd.ko* ]]; echo $?)" \
	"modinfo -n nbd is the kernel's own module again"

quiet modprobe nbd
_nbd_loaded_by_us=1
ktap_info "loaded: version '$(cat /sys/module/nbd/version 2>/dev/null)' srcversion '$(cat /sys/module/nbd/srcversion 2>/dev/null)'"
ktap_result "$([[ -d /sys/module/nbd && ! -e /sys/module/nbd/version && \
	! -e /sys/module/nbd/srcversion ]]; echo $?)" \
	"modprobe nbd loads the kernel's own module (no version, no srcversion)"
check "rmmod nbd (the kernel's own)" nbd_unload
ktap_info "times: install $t_install s, removal ${t_remove:-?} s, test $SECONDS s"
ktap_finish
