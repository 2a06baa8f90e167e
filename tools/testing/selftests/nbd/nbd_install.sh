#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make install` puts nbd.ko where modprobe prefers it over the kernel's
# own module.  The harness ran `make install INSTALL_MOD_PATH=STAGE` on the
# host, over a stage that links to the kernel's own modules (building and
# running depmod in this slow VM takes minutes).  This test puts what it
# installed, updates/ and the modules.* files its depmod wrote, into
# /lib/modules (the VM's private overlay: the host is untouched) and checks
# that `modprobe nbd nbds_max=N max_part=M` loads this tree's module, with
# N devices of major 43 and the partition count asked for.

source "$(dirname "$0")/lib.sh"

nbd_test_init
ktap_plan 6
ktap_info "module: $(nbd_module_desc)"
require_cmds modprobe modinfo

if [[ ${NBD_STOCK:-0} == 1 ]]; then
	ktap_info "testing the stock module: nothing to install"
	for _ in 1 2 3 4 5 6; do
		skip "make install" "stock module"
	done
	ktap_finish
fi

stage=${NBD_INSTALL_STAGE:-}
krel=${NBD_KREL:-$(uname -r)}
if [[ -z $stage || ! -d $stage/lib/modules/$krel ]]; then
	ktap_bail "NBD_INSTALL_STAGE ('$stage') holds no make install output for $krel"
fi

# The harness keeps the host's modules.dep: make sure the stock module is
# what modprobe would load before the install, so the test can fail.
before=$(modprobe -n -v nbd 2>/dev/null | awk '/insmod/ {print $2}' | tail -1)
ktap_info "before install, modprobe would load: $before"
if [[ $before == */updates/* ]]; then
	not_ok "an updates/ nbd.ko was already installed"
else
	ok "modprobe resolves nbd to the kernel's own module before install"
fi

staged=$(cd "$stage/lib/modules/$krel" && find . -name 'nbd.ko*' | head -1)
ktap_info "make install staged: $staged"
if [[ $staged == ./updates/* ]] &&
	cp -a "$stage/lib/modules/$krel/updates" "/lib/modules/$krel/" &&
	cp "$stage/lib/modules/$krel"/modules.* "/lib/modules/$krel/"; then
	ok "make install put nbd.ko under updates/ and ran depmod"
else
	not_ok "make install put nbd.ko under updates/ and ran depmod"
fi

installed=$(find "/lib/modules/$krel/updates" -name 'nbd.ko*' 2>/dev/null | head -1)
after=$(modprobe -n -v nbd 2>/dev/null | awk '/insmod/ {print $2}' | tail -1)
ktap_info "installed: $installed; modprobe would load: $after"
if [[ -n $installed && $after == "$installed" ]]; then
	ok "modprobe prefers updates/nbd.ko"
else
	not_ok "modprobe prefers updates/nbd.ko"
fi

_nbd_loaded_by_us=1
modprobe nbd nbds_max=5 max_part=3
got=$(cat /sys/module/nbd/srcversion 2>/dev/null)
want=${NBD_SRCVERSION:-}
ktap_result "$([[ -n $want && $got == "$want" ]]; echo $?)" \
	"modprobe nbd loaded this tree's module (srcversion $got)"

udev_settle
devs=$(ls -d /sys/block/nbd* 2>/dev/null | wc -l)
major=$(cut -d: -f1 /sys/block/nbd0/dev 2>/dev/null)
ktap_result "$([[ $devs == 5 && $major == 43 ]]; echo $?)" \
	"nbds_max=5 gives nbd0..nbd4 with major 43 (got $devs devices, major $major)"

# max_part=3 rounds to 3 partitions: 4 minors per device
minor1=$(cut -d: -f2 /sys/block/nbd1/dev 2>/dev/null)
ktap_result "$([[ $minor1 == 4 ]]; echo $?)" \
	"max_part=3 spaces minors by 4 (nbd1 minor $minor1)"

nbd_unload
ktap_finish
