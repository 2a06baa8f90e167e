#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Only CAP_SYS_ADMIN may configure a device: nbd-client run without it
# (but with every other capability, CAP_NET_ADMIN included) is refused
# over netlink and over the ioctl interface and leaves the device
# unconnected; with it, the same command attaches.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0

nbd_test_init
ktap_plan 8
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-client setpriv

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
nbdkit_start mem memory 64M || ktap_bail "cannot start nbdkit"
SOCK=$(nbd_sock mem)

# no_sys_admin CMD...: run CMD as root without CAP_SYS_ADMIN.
no_sys_admin()
{
	setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin -- "$@"
}

refused()	# refused DESC ARGS...
{
	local desc=$1

	shift
	if no_sys_admin timeout 30 nbd-client -unix "$SOCK" "$DEV" -b 4096 \
		"$@" >"$NBD_TMP/out" 2>&1; then
		not_ok "$desc: nbd-client succeeded without CAP_SYS_ADMIN"
	else
		ktap_info "nbd-client: $(tail -n 1 "$NBD_TMP/out")"
		ok "$desc: nbd-client fails without CAP_SYS_ADMIN"
	fi
	sleep 1
	if nbd_connected "$DEV"; then
		not_ok "$desc: $DEV stays unconnected"
		nbd_detach "$DEV"
	else
		ok "$desc: $DEV stays unconnected"
	fi
}

refused "netlink"
refused "ioctl" -L

check "with CAP_SYS_ADMIN the same attach works" nbd_attach "$DEV" "$SOCK"
check "detach" nbd_detach "$DEV"
check "unload nbd" nbd_unload
ktap_finish
