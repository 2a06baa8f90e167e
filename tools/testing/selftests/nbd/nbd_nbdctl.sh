#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# nbdctl, the project's netlink helper, against the module under test (or
# the stock one with NBD_STOCK=1): connect, list (text and JSON), info,
# reconfigure, watch, disconnect; -C 4 against a multi-conn server and
# against one without CAN_MULTI_CONN (one connection, or an error with
# --strict); and the errors a user must understand: not root, module not
# loaded, device busy, server unreachable, export not found.
#
# Environment: NBDCTL, the nbdctl binary (the harness builds it).

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0

nbd_test_init
ktap_plan 36
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit python3 setpriv blockdev fio perl

require_nbdctl

# expect NAME RC PATTERN: the last nbdctl_run NAME exited with RC and its
# stderr matches PATTERN (grep -E, case-insensitive).
expect()
{
	local got

	got=$(cat "$NBD_TMP/$1.rc")
	if [[ $got != "$2" ]] || ! grep -Eqi -- "$3" "$NBD_TMP/$1.err"; then
		echo "# nbdctl exited with $got (want $2); stderr:"
		sed 's/^/#   /' "$NBD_TMP/$1.err"
		return 1
	fi
	ktap_info "$(head -1 "$NBD_TMP/$1.err")"
}

json_get()	# json_get FILE PYTHON-EXPR (d is the parsed document)
{
	python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
nbdkit_start mem memory 256M || ktap_bail "cannot start nbdkit"
nbdkit_start single --filter=multi-conn memory 64M multi-conn-mode=disable ||
	ktap_bail "cannot start nbdkit with the multi-conn filter"
URI="nbd+unix:///?socket=$(nbd_sock mem)"
SINGLE="nbd+unix:///?socket=$(nbd_sock single)"

# --- info --------------------------------------------------------------------
check "nbdctl info URI" nbdctl_run info info "$URI"
sed 's/^/# /' "$NBD_TMP/info.out"
check "info: size 268435456 bytes, multi-conn" \
	grep -q -e '^size: 268435456 bytes' -e '^multi-conn: yes' "$NBD_TMP/info.out"

# --- connect, list, disconnect -------------------------------------------
check "nbdctl connect URI $DEV" nbdctl_run conn connect "$URI" "$DEV"
sed 's/^/# /' "$NBD_TMP/conn.out" "$NBD_TMP/conn.err"
check "$DEV is connected with 268435456 bytes" \
	test "$(blockdev --getsize64 "$DEV")" = 268435456
roundtrip()
{
	head -c 1048576 /dev/urandom >"$NBD_TMP/in"
	dd if="$NBD_TMP/in" of="$DEV" bs=64k oflag=direct status=none &&
		dd if="$DEV" of="$NBD_TMP/back" bs=64k count=16 iflag=direct \
			status=none &&
		cmp "$NBD_TMP/in" "$NBD_TMP/back"
}
check "a dd round trip through $DEV" roundtrip

check "nbdctl list" nbdctl_run list list
sed 's/^/# /' "$NBD_TMP/list.out"
list_text()
{
	grep -Eq '^/dev/nbd0 +connected +256\.0 MiB \(268435456 bytes\)' "$NBD_TMP/list.out" &&
		grep -Fq "server: $URI" "$NBD_TMP/list.out" &&
		grep -Eq '^ +flags: .*HAS_FLAGS' "$NBD_TMP/list.out" &&
		grep -Eq '^/dev/nbd1 +disconnected' "$NBD_TMP/list.out"
}
check "list: nbd0 connected with size, server and flags; nbd1 disconnected" list_text
check "nbdctl list --json" nbdctl_run listj list --json
list_json()
{
	local got

	got=$(json_get "$NBD_TMP/listj.out" \
		'[(x["device"], x["connected"], x.get("size"), x.get("connections"), x.get("server")) for x in d if x["index"] in (0, 1)]')
	ktap_info "list --json: $got"
	[[ $got == "[('/dev/nbd0', True, 268435456, 1, '$URI'), ('/dev/nbd1', False, None, None, None)]" ]]
}
check "list --json: the same, machine-readable" list_json

check "nbdctl reconfigure $DEV --timeout 45" nbdctl_run reconf reconfigure "$DEV" --timeout 45
timeout_shown()
{
	local t hz

	# Ours shows seconds, the stock driver jiffies.
	t=$(cat /sys/kernel/debug/nbd/nbd0/timeout 2>&1)
	hz=$(sed -n 's/^CONFIG_HZ=//p' "/boot/config-$(uname -r)" 2>/dev/null)
	ktap_info "debugfs timeout: $t (CONFIG_HZ=${hz:-?})"
	[[ $t =~ ^45(s| |$) ]] || [[ -n $hz && $t == $((45 * hz)) ]]
}
check "the kernel's request timeout is 45 s" timeout_shown

# Resize over netlink: this driver does it; a driver that ignores the size
# must get a clear refusal from nbdctl, never a claimed success.
resized()
{
	local got rc

	nbdctl_run resize reconfigure "$DEV" --size 128M
	rc=$(cat "$NBD_TMP/resize.rc")
	got=$(blockdev --getsize64 "$DEV")
	ktap_info "size after reconfigure --size 128M: $got (nbdctl exit $rc)"
	if [[ $rc == 0 ]]; then
		[[ $got == 134217728 ]]
	else
		[[ ${NBD_STOCK:-0} == 1 ]] && expect resize 4 'does not resize' &&
			[[ $got == 268435456 ]]
	fi
}
check "reconfigure --size 128M: resized (or, stock, a clear refusal)" resized

nbdctl_run busy connect "$URI" "$DEV"
check "connect to a busy $DEV: exit 4, 'busy'" expect busy 4 'busy'

check "nbdctl disconnect $DEV" nbdctl_run disc disconnect "$DEV"
check "$DEV is disconnected" nbd_wait_disconnected "$DEV" 10
nbdctl_run disc2 list nbd0
check "list nbd0 after the disconnect: disconnected" \
	grep -Eq '^/dev/nbd0 +disconnected' "$NBD_TMP/disc2.out"

# --- several connections ---------------------------------------------------
check "connect -C 4 to a multi-conn server" nbdctl_run c4 connect "$URI" -C 4
four_conns()
{
	local n

	n=$(nbd_server_conns "$(nbd_sock mem)")
	ktap_info "the server has $n connections"
	[[ $n -eq 4 ]] && grep -q '4 connections' "$NBD_TMP/c4.out"
}
check "the server sees 4 connections" four_conns
fio_verify()
{
	timeout 300 fio --name=v --filename="$DEV" --ioengine=libaio --direct=1 \
		--rw=randwrite --bs=4k --iodepth=16 --numjobs=4 --size=4M \
		--offset_increment=4M --verify=crc32c --verify_fatal=1 \
		--output="$NBD_TMP/fio.out" >/dev/null 2>&1 ||
		{ ktap_info_file "$NBD_TMP/fio.out"; return 1; }
}
check "fio verify over 4 connections" fio_verify
check "disconnect --all" nbdctl_run dall disconnect --all
check "$DEV is disconnected" nbd_wait_disconnected "$DEV" 10

nbdctl_run c1 connect "$SINGLE" "$DEV" -C 4
one_conn()
{
	expect c1 0 'CAN_MULTI_CONN.*using one' &&
		[[ $(nbd_server_conns "$(nbd_sock single)") -eq 1 ]]
}
check "-C 4 without CAN_MULTI_CONN: a warning and one connection" one_conn
nbdctl_run dis1 disconnect "$DEV"
nbd_wait_disconnected "$DEV" 10
nbdctl_run strict connect "$SINGLE" "$DEV" -C 4 --strict
check "-C 4 --strict without CAN_MULTI_CONN: exit 3" expect strict 3 'CAN_MULTI_CONN'
check "... and nothing is attached" nbd_disconnected "$DEV"

# --- watch --------------------------------------------------------------------
nbdkit_start doomed memory 16M || ktap_bail "cannot start nbdkit"
nbdctl_run cw connect "nbd+unix:///?socket=$(nbd_sock doomed)" "$DEV"
timeout 60 "$NBDCTL" watch --count 1 >"$NBD_TMP/watch.out" 2>"$NBD_TMP/watch.err" &
WATCH=$!
track_pid "$WATCH"
sleep 1
kill -9 "$(cat "$NBD_TMP/doomed.pid")"
dd if="$DEV" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null
watched()
{
	wait "$WATCH"
	cat "$NBD_TMP/watch.out" | sed 's/^/# /'
	grep -Eq 'link-dead /dev/nbd0$' "$NBD_TMP/watch.out"
}
check "watch prints the link-dead event when the server dies" watched
nbdctl_run dw disconnect "$DEV"
nbd_wait_disconnected "$DEV" 10

# --- errors a user must understand -----------------------------------------
setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin -- \
	"$NBDCTL" connect "$URI" "$DEV" >"$NBD_TMP/noroot.out" 2>"$NBD_TMP/noroot.err"
echo $? >"$NBD_TMP/noroot.rc"
check "without CAP_SYS_ADMIN: exit 5, names CAP_SYS_ADMIN" expect noroot 5 'CAP_SYS_ADMIN'
check "... and nothing is attached" nbd_disconnected "$DEV"

nbdctl_run unreach connect "nbd+unix:///?socket=$NBD_TMP/nothing.sock" "$DEV"
check "server unreachable: exit 3, names the socket and the reason" \
	expect unreach 3 "nothing\.sock.*(No such file|refused)"
nbdctl_run noexp connect "nbd://127.0.0.1:1/" "$DEV"
check "TCP port with no server: exit 3, 'refused'" expect noexp 3 "127\.0\.0\.1.*refused"
nbdkit_start named --filter=exportname memory 16M exportname=wanted \
	exportname-strict=true || ktap_bail "cannot start nbdkit with the exportname filter"
nbdctl_run badexp connect "nbd+unix:///no-such-export?socket=$(nbd_sock named)" "$DEV"
check "an unknown export name: exit 3 naming the export" \
	expect badexp 3 'no-such-export'

nbdctl_run tls connect "nbds+unix:///?socket=$(nbd_sock mem)" "$DEV"
check "nbds+unix:// URI: exit 2, kernel TLS is TCP only" expect tls 2 'kernel TLS works on TCP sockets only'

# Module not loaded: no autoload either (the stock module must not sneak in).
unload_for_test()
{
	nbd_disconnect_all
	nbd_unload
}
check "unload nbd" unload_for_test
ORIG_MODPROBE=$(cat /proc/sys/kernel/modprobe)
echo /bin/false >/proc/sys/kernel/modprobe
at_exit "echo '$ORIG_MODPROBE' >/proc/sys/kernel/modprobe"
nbdctl_run nomod list
echo "$ORIG_MODPROBE" >/proc/sys/kernel/modprobe
check "module not loaded: exit 4, says modprobe nbd" expect nomod 4 'modprobe nbd'
check "reload nbd" nbd_load
check "nbdctl disconnect --all with nothing attached: exit 0" nbdctl_run dnone disconnect --all
ktap_finish
