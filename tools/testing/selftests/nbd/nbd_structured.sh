#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Structured replies and the server's block size constraints, attached
# with nbdctl:
#  1. nbdkit memory: structured replies negotiated (nbdctl -v, debugfs,
#     dmesg, list --json), fio verify, the reads came as chunks;
#  2. a sparse file over qemu-nbd, which answers reads of holes with
#     OFFSET_HOLE chunks: read back O_DIRECT it equals the file, and
#     debugfs counted holes; the same file over nbdkit's file plugin
#     (nbdkit 1.32 sends no OFFSET_HOLE with any plugin: recorded);
#  3. nbdkit's blocksize-policy filter with the error policy: queue limits
#     from the server's minimum, preferred and maximum, fio with 4k-1M
#     requests, mkfs.ext4 and a file round trip, and not one request
#     refused by the server nor a server error in dmesg;
#  4. --no-structured-replies: simple replies, what fio wrote in 1 reads
#     back the same;
#  5. nbd-server (3.24 offers no structured replies: recorded), a dd
#     round trip.
# With the stock module (NBD_STOCK=1) nbdctl must warn that it falls back
# to simple replies and the device must still work; the checks of what
# only this driver does are skipped.
#
# Environment: NBDCTL, the nbdctl binary (the harness passes it).

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
STOCK=${NBD_STOCK:-0}
DBG=/sys/kernel/debug/nbd/${DEV##*/}
QUEUE=/sys/block/${DEV##*/}/queue

nbd_test_init
ktap_plan 34
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit qemu-nbd nbd-server fio mkfs.ext4 perl cmp truncate
require_nbdctl

mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
MNT=$NBD_TMP/mnt
mkdir -p "$MNT"
at_exit "mountpoint -q '$MNT' && umount '$MNT'"

# connect NAME URI [ARGS...]: nbdctl -v connect URI $DEV ARGS, then wait
# for udev's probing reads to end.
connect()
{
	local name=$1 uri=$2

	shift 2
	if ! nbdctl_run "$name" -v connect "$uri" "$DEV" "$@"; then
		echo "# nbdctl connect $uri $* exited with $(cat "$NBD_TMP/$name.rc"):"
		ktap_info_file "$NBD_TMP/$name.err"
		return 1
	fi
	ktap_info "$(grep -h 'protocol:' "$NBD_TMP/$name.err")"
	nbd_wait_connected "$DEV" 20 && nbd_quiesce "$DEV"
}

disconnect()
{
	nbdctl_run disc disconnect "$DEV" || ktap_info_file "$NBD_TMP/disc.err"
	nbd_wait_disconnected "$DEV" 20 && udev_settle
}

# err_has NAME PATTERN: nbdctl's stderr of NAME matches PATTERN (grep -E).
err_has()
{
	grep -Eq -- "$2" "$NBD_TMP/$1.err" && return 0
	echo "# nbdctl's stderr has no '$2':"
	ktap_info_file "$NBD_TMP/$1.err"
	return 1
}

# protocol_is PATTERN: debugfs's protocol file matches PATTERN (grep -E).
protocol_is()
{
	local p

	p=$(cat "$DBG/protocol" 2>&1)
	ktap_info "debugfs protocol: $(tr "\n" " " <<<"$p")"
	grep -Eq -- "$1" <<<"$p"
}

# chunks: "CHUNKS HOLES HOLE_BYTES ERRORS" from debugfs, summed over the
# connections; nothing when the file has no chunk line (simple replies).
chunks()
{
	sed -nE 's/.* ([0-9]+) structured reply chunks, ([0-9]+) holes \(([0-9]+) bytes\), ([0-9]+) error chunks.*/\1 \2 \3 \4/p' \
		"$DBG/tasks" 2>/dev/null |
		awk '{ c += $1; h += $2; b += $3; e += $4; n++ }
		     END { if (n) print c, h, b, e }'
}

# roundtrip MIB: 1 MiB of random data written at MIB MiB and read back.
roundtrip()
{
	head -c 1048576 /dev/urandom >"$NBD_TMP/rt.in"
	dd if="$NBD_TMP/rt.in" of="$DEV" bs=64k seek=$(($1 * 16)) oflag=direct \
		status=none &&
		dd if="$DEV" of="$NBD_TMP/rt.back" bs=64k skip=$(($1 * 16)) \
			count=16 iflag=direct status=none &&
		cmp "$NBD_TMP/rt.in" "$NBD_TMP/rt.back"
}

# readback FILE: the whole device read with O_DIRECT in 1 MiB requests
# equals FILE.  dd reuses its buffer: a hole not zeroed by the driver
# would show the data read before it.
readback()
{
	dd if="$DEV" of="$NBD_TMP/back" bs=1M iflag=direct status=none &&
		cmp "$1" "$NBD_TMP/back"
}

# fio_clean NAME: fio NAME's JSON shows no error and every write verified.
fio_clean()
{
	local errs w r

	# One perl (JSON::PP takes most of a second to start under TCG).
	read -r errs w r < <(perl -MJSON::PP -e '
		local $/; open(my $f, "<", $ARGV[0]) or do { print "bad 0 0\n"; exit };
		my $t = <$f>; $t =~ s/^[^{]*//s;
		my $j = eval { JSON::PP->new->decode($t) } or do { print "bad 0 0\n"; exit };
		my ($e, %n) = (0);
		for my $job (@{$j->{jobs} || []}) {
			$e += ($job->{error} || 0) + ($job->{total_err} || 0);
			for my $d (qw(read write)) {
				$e += $job->{$d}{total_err} || 0;
				$n{$d} += $job->{$d}{total_ios} || 0;
			}
		}
		print "$e ", $n{write} || 0, " ", $n{read} || 0, "\n";
	' "$NBD_TMP/$1.json")
	ktap_info "fio $1: errors=$errs writes=$w reads (verify)=$r"
	[[ $errs == 0 && $w -gt 0 && $r -eq $w ]]
}

# json_field FILE KEY: KEY's value in nbdctl's JSON line for $DEV (nbdctl
# prints one object a line).
json_field()
{
	grep -F "\"device\": \"$DEV\"" "$1" | grep -oE "\"$2\": (\"[^\"]*\"|[a-z]+)" |
		sed -E 's/^"[^"]*": "?//; s/"$//'
}

# holes_info SERVER: record whether SERVER's reads came with holes.
holes_info()
{
	local c

	[[ $STOCK == 1 ]] && return 0
	read -r -a c <<<"$(chunks)"
	ktap_info "$1: ${c[0]:-?} structured reply chunks, ${c[1]:-?} OFFSET_HOLE (${c[2]:-?} bytes), ${c[3]:-?} error chunks"
}

# only_ours DESCRIPTION CMD...: check on this driver, skip on the stock one.
only_ours()
{
	if [[ $STOCK == 1 ]]; then
		skip "$1" "the stock module has no structured replies or block sizes"
	else
		check "$@"
	fi
}

check "load nbd" nbd_load || ktap_bail "cannot load nbd"

# nbd-server 3.24 computes Diffie-Hellman parameters (GMP) before it
# accepts its first client, TLS or not: a second on the host, 7 s and
# more in a TCG guest.  Start it now; part 5 uses it.
truncate -s 64M "$NBD_TMP/ns.img"
nbdserver_start ns "$NBD_TMP/ns.img" || ktap_bail "cannot start nbd-server"
NS="nbd+unix:///ns?socket=$(nbd_sock ns)"

# --- 1. nbdkit memory: structured replies (stock: the fallback) ---------
nbdkit_start mem memory 64M || ktap_bail "cannot start nbdkit"
MEM="nbd+unix:///?socket=$(nbd_sock mem)"
dmesg_mark "memory"
check "nbdctl connect to nbdkit memory" connect c-mem "$MEM" ||
	ktap_bail "cannot attach nbdkit memory"
if [[ $STOCK == 1 ]]; then
	check "stock: nbdctl warns it does not support structured replies, negotiates simple ones" \
		eval 'err_has c-mem "does not support structured replies" &&
		      err_has c-mem "protocol: simple replies, no block size constraints"'
else
	no_fallback()
	{
		if grep -q 'does not support' "$NBD_TMP/c-mem.err"; then
			echo "# nbdctl fell back:"
			ktap_info_file "$NBD_TMP/c-mem.err"
			return 1
		fi
		err_has c-mem "protocol: structured replies"
	}
	check "nbdctl negotiated structured replies, no fallback warning" no_fallback
fi
only_ours "debugfs protocol: replies: structured" protocol_is '^replies: structured$'
only_ours "dmesg: connected with structured replies" \
	dmesg_has "connected: .*flags 0x[0-9a-f]+, structured replies"
check "a dd round trip" roundtrip 3
check "fio randwrite + verify" fio_verify fio-mem "$DEV" --rw=randwrite --bs=4k \
	--iodepth=16 --size=2M --offset=8M
check "fio: no error, every write read back" fio_clean fio-mem
# What fio wrote, read back here and again with simple replies (part 4).
dd if="$DEV" of="$NBD_TMP/region.1" bs=1M skip=8 count=2 iflag=direct status=none
structured_used()
{
	local c

	read -r -a c <<<"$(chunks)"
	ktap_info "debugfs tasks: $(grep -h chunks "$DBG/tasks")"
	[[ ${#c[@]} -eq 4 && ${c[0]} -ge 512 && ${c[3]} -eq 0 ]]
}
only_ours "reads came as structured reply chunks, no error chunk" structured_used
holes_info "nbdkit memory"
list_replies()
{
	local got want=structured

	[[ $STOCK == 1 ]] && want=simple
	nbdctl_run list list --json || return 1
	got=$(json_field "$NBD_TMP/list.out" replies)
	ktap_info "list --json: replies $got"
	[[ $got == "$want" ]]
}
check "nbdctl list --json: \"replies\": \"$([[ $STOCK == 1 ]] && echo simple || echo structured)\"" \
	list_replies
check "nbdctl disconnect" disconnect

# --- 2. a sparse file: qemu-nbd sends OFFSET_HOLE -------------------------
# 64 MiB with data at 5-8 MiB, 40 MiB and 4 KiB inside the 1 MiB at 32
# MiB (one read of data and holes); the rest are holes.
IMG=$NBD_TMP/sparse.img
truncate -s 64M "$IMG"
head -c $((3 << 20)) /dev/urandom |
	dd of="$IMG" bs=1M seek=5 conv=notrunc iflag=fullblock status=none
head -c $((1 << 20)) /dev/urandom |
	dd of="$IMG" bs=1M seek=40 conv=notrunc iflag=fullblock status=none
head -c 4096 /dev/urandom |
	dd of="$IMG" bs=4k seek=$((32 * 256 + 2)) conv=notrunc status=none
ktap_info "sparse file: $(du -k "$IMG" | cut -f1) KiB allocated of 65536"
qemunbd_start qsparse -f raw "$IMG" || ktap_bail "cannot start qemu-nbd"
check "nbdctl connect to qemu-nbd serving the sparse file" \
	connect c-q "nbd+unix:///?socket=$(nbd_sock qsparse)"
check "qemu-nbd: the device read O_DIRECT equals the file" readback "$IMG"
qemu_holes()
{
	local c

	read -r -a c <<<"$(chunks)"
	holes_info "qemu-nbd $(qemu-nbd --version | sed -n '1s/^qemu-nbd //p')"
	[[ ${#c[@]} -eq 4 && ${c[1]} -gt 0 && ${c[3]} -eq 0 ]]
}
only_ours "qemu-nbd answered with OFFSET_HOLE chunks (debugfs holes > 0)" qemu_holes
check "nbdctl disconnect" disconnect
# nbdkit's file plugin on the same file: holes or not?
nbdkit_start nkfile file "$IMG" || ktap_bail "cannot start nbdkit file"
check "nbdkit file: the device read O_DIRECT equals the file" \
	eval 'connect c-nkfile "nbd+unix:///?socket=$(nbd_sock nkfile)" &&
	      readback "$IMG"'
holes_info "nbdkit $(nbdkit --version | cut -d" " -f2) file"
disconnect

# --- 3. nbdkit's blocksize-policy filter, error policy ---------------------
nbdkit_start bs --filter=blocksize-policy memory 64M blocksize-minimum=4096 \
	blocksize-preferred=16384 blocksize-maximum=65536 \
	blocksize-error-policy=error || ktap_bail "cannot start nbdkit blocksize-policy"
BS="nbd+unix:///?socket=$(nbd_sock bs)"
rejected()
{
	grep -c 'request rejected' "$NBD_TMP/bs.log"
}
bs_connect()
{
	connect c-bs "$BS" &&
		err_has c-bs "protocol: structured replies, block sizes 4096/16384/65536 kept"
}
qlimits()
{
	local l p h o

	l=$(cat "$QUEUE/logical_block_size")
	p=$(cat "$QUEUE/physical_block_size")
	h=$(cat "$QUEUE/max_hw_sectors_kb")
	o=$(cat "$QUEUE/optimal_io_size")
	ktap_info "queue: logical_block_size $l physical_block_size $p max_hw_sectors_kb $h optimal_io_size $o max_sectors_kb $(cat "$QUEUE/max_sectors_kb")"
	[[ $l == 4096 && $p == 16384 && $h == 64 && $o == 16384 ]]
}
bs_shown()
{
	protocol_is "^block_size_constraints: minimum 4096 preferred 16384 maximum 65536$" &&
		dmesg_has "keeping to the server.s block sizes: minimum 4096, preferred 16384, maximum 65536"
}
fs_roundtrip()
{
	head -c $((3 << 20)) /dev/urandom >"$NBD_TMP/f1"
	head -c 12345 /dev/urandom >"$NBD_TMP/f2"
	quiet mkfs.ext4 -q -F "$DEV" && mount "$DEV" "$MNT" &&
		cp "$NBD_TMP/f1" "$NBD_TMP/f2" "$MNT/" && umount "$MNT" &&
		echo 3 >/proc/sys/vm/drop_caches && mount "$DEV" "$MNT" &&
		cmp "$NBD_TMP/f1" "$MNT/f1" && cmp "$NBD_TMP/f2" "$MNT/f2" &&
		umount "$MNT"
}
# obeyed: nbdkit refused nothing (with the error policy it answers a
# request that breaks its block sizes with EINVAL and logs "request
# rejected"), and the kernel logged no server error and refused nothing
# itself.
obeyed()
{
	local n

	n=$(rejected)
	ktap_info "nbdkit refused $n requests"
	ktap_info_file "$NBD_TMP/bs.log" 3
	dmesg_since_mark | grep -E "server error|breaks the server.s block sizes" |
		head -n 5 | sed 's/^/#   dmesg: /' | grep . && return 1
	[[ $n -eq 0 ]]
}
# only_bs DESCRIPTION CMD...: check on this driver, skip on the stock one.
only_bs()
{
	if [[ $STOCK == 1 ]]; then
		skip "$1" "the stock module does not keep to block sizes"
	else
		check "$@"
	fi
}
if [[ $STOCK == 1 ]] && connect c-bs "$BS"; then
	# What the stock module does with such a server: record it.
	dd if="$DEV" of=/dev/null bs=512 count=1 skip=1 iflag=direct status=none 2>/dev/null
	ktap_info "stock: nbdkit refused $(rejected) requests of the stock module, e.g.:"
	ktap_info_file "$NBD_TMP/bs.log" 2
	disconnect
fi
dmesg_mark "blocksize-policy"
only_bs "nbdctl connect: block sizes 4096/16384/65536 kept" bs_connect
only_bs "queue limits: logical 4096, physical 16384, max_hw 64 KiB, optimal 16384" qlimits
only_bs "debugfs and dmesg show the block sizes kept" bs_shown
only_bs "fio randwrite 4k-1M + verify" fio_verify fio-bs "$DEV" --rw=randwrite \
	--bsrange=4k-1M --iodepth=8 --size=8M
only_bs "fio: no error, every write read back" fio_clean fio-bs
only_bs "mkfs.ext4, mount, a file round trip" fs_roundtrip
only_bs "the server refused no request, no server error in dmesg" obeyed
only_bs "nbdctl disconnect" disconnect

# --- 4. --no-structured-replies -----------------------------------------------
check "nbdctl connect --no-structured-replies" \
	eval 'connect c-nosr "$MEM" --no-structured-replies &&
	      err_has c-nosr "protocol: simple replies"'
only_ours "debugfs protocol: replies: simple, no chunk counters" \
	eval 'protocol_is "^replies: simple$" && [[ -z $(chunks) ]]'
region_same()
{
	dd if="$DEV" of="$NBD_TMP/region.2" bs=1M skip=8 count=2 iflag=direct \
		status=none && cmp "$NBD_TMP/region.1" "$NBD_TMP/region.2"
}
check "simple replies: what fio wrote reads back the same" region_same
check "simple replies: a dd round trip" roundtrip 20
check "nbdctl disconnect" disconnect

# --- 5. nbd-server -------------------------------------------------------------
NS_SR=
ns_offer()
{
	if ! nbdctl_run nsinfo info --json --timeout 100 "$NS"; then
		echo "# nbdctl info --json $NS failed:"
		ktap_info_file "$NBD_TMP/nsinfo.err"
		return 1
	fi
	NS_SR=$(grep -oE '"structured_replies": [a-z]+' "$NBD_TMP/nsinfo.out")
	NS_SR=${NS_SR##* }
	ktap_info "$(nbd-server -V 2>&1 | head -n 1): structured replies offered: $NS_SR"
	[[ $NS_SR == true || $NS_SR == false ]]
}
check "nbdctl info --json: does nbd-server offer structured replies?" ns_offer
ns_mode()
{
	local want=simple

	[[ $NS_SR == true && $STOCK != 1 ]] && want=structured
	connect c-ns "$NS" && err_has c-ns "protocol: $want replies"
}
check "nbdctl connect to nbd-server: the reply mode it offers" ns_mode
check "nbd-server: a dd round trip" roundtrip 7
check "nbdctl disconnect" disconnect

check "unload nbd" nbd_unload
ktap_finish
