#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# dd round trips of random data through /dev/nbd0 with O_DIRECT, at
# block offsets 0 and 100, 1 to 3 blocks of 4096 bytes, with the device
# configured over generic netlink and over the ioctl interface.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
BS=4096
OFFSETS=(0 100)
COUNTS=(1 2 3)

nbd_test_init
ktap_plan 20
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-client dd cmp

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
nbdkit_start mem memory 64M || ktap_bail "cannot start nbdkit"
SOCK=$(nbd_sock mem)

# roundtrip OFFSET COUNT TAG: write random blocks, read them back, compare.
roundtrip()
{
	local off=$1 count=$2 tag=$3
	local in=$NBD_TMP/in.$tag.$off.$count out=$NBD_TMP/out.$tag.$off.$count

	head -c $((count * BS)) /dev/urandom >"$in"
	if ! dd if="$in" of="$DEV" bs=$BS seek="$off" count="$count" \
		oflag=direct conv=notrunc status=none; then
		echo "# write failed"
		return 1
	fi
	if ! dd if="$DEV" of="$out" bs=$BS skip="$off" count="$count" \
		iflag=direct status=none; then
		echo "# read failed"
		return 1
	fi
	cmp "$in" "$out"
}

# readback OFFSET COUNT FILE: the device holds FILE's content at OFFSET.
readback()
{
	local out=$NBD_TMP/readback

	dd if="$DEV" of="$out" bs=$BS skip="$1" count="$2" iflag=direct \
		status=none && cmp "$3" "$out"
}

# run_interface NAME PREVIOUS [NBD-CLIENT ARGS]
run_interface()
{
	local name=$1 prev=$2 off count client_pid

	shift 2
	if ! check "$name: attach $DEV" nbd_attach "$DEV" "$SOCK" "$@"; then
		ktap_bail "$name: attach failed"
	fi
	client_pid=$NBD_CLIENT_PID
	if [[ -n $prev ]]; then
		# What the previous attachment wrote is on the server.
		check "$name: reads the data written over $prev" \
			readback 100 3 "$NBD_TMP/in.$prev.100.3"
	fi
	for off in "${OFFSETS[@]}"; do
		for count in "${COUNTS[@]}"; do
			check "$name: dd round trip offset $off count $count" \
				roundtrip "$off" "$count" "$name"
		done
	done
	check "$name: detach $DEV" nbd_detach "$DEV"
	if [[ $name == ioctl ]]; then
		# The nbd-client sitting in NBD_DO_IT must return.
		check "$name: nbd-client in NBD_DO_IT exited after detach" \
			pid_gone "$client_pid" 15
	fi
}

run_interface netlink ""
run_interface ioctl netlink -L

check "unload nbd" nbd_unload
ktap_finish
