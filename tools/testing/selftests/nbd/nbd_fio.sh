#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fio with data verification on /dev/nbd0: 4 KiB random writes at queue
# depth 16 from 4 jobs on disjoint regions, then 1 MiB sequential writes,
# each followed by a crc32c verify pass.  Every I/O must complete and
# every block must read back as written.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
JOBS=4
REGION_MB=${NBD_FIO_REGION_MB:-32}	# per random-write job
SEQ_MB=${NBD_FIO_SEQ_MB:-64}	# a multiple of REGION_MB, < JOBS * REGION_MB

nbd_test_init
ktap_plan 12
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-client fio perl

check "load nbd" nbd_load || ktap_bail "cannot load nbd"
nbdkit_start mem memory 1G || ktap_bail "cannot start nbdkit"
check "attach $DEV" nbd_attach "$DEV" "$(nbd_sock mem)" ||
	ktap_bail "attach failed"

run_fio()
{
	fio_verify "$1" "$DEV" "${@:2}"
}

# reverify NAME WANT_READS FIO-ARGS...: a verify-only pass over data
# written earlier, described by the workload that wrote it (fio counts
# the skipped writes too, so only the reads are checked).
reverify()
{
	local name=$1 want=$2

	shift 2
	run_fio "$name" --verify_only=1 "$@" && fio_verify_clean "$name" - "$want"
}

check "fio 4k randwrite QD16 x$JOBS jobs, verify crc32c: exit status 0" \
	run_fio randwrite --rw=randwrite --bs=4k --iodepth=16 \
	--numjobs=$JOBS --size=${REGION_MB}M --offset_increment=${REGION_MB}M
check "fio randwrite: no errors, every block written and verified" \
	fio_verify_clean randwrite $((JOBS * REGION_MB * 256)) $((JOBS * REGION_MB * 256))

check "fio 1M sequential write QD4, verify crc32c: exit status 0" \
	run_fio seqwrite --rw=write --bs=1M --iodepth=4 --size=${SEQ_MB}M
check "fio seqwrite: no errors, every block written and verified" \
	fio_verify_clean seqwrite "$SEQ_MB" "$SEQ_MB"

# The sequential pass overwrote the start of the random-write regions;
# the rest still holds the random writes' blocks.
REST_MB=$((JOBS * REGION_MB - SEQ_MB))
check "random-write data beyond the sequential pass still verifies" \
	reverify rest $((REST_MB * 256)) --rw=randwrite --bs=4k --iodepth=16 \
	--numjobs=$((REST_MB / REGION_MB)) --offset=${SEQ_MB}M \
	--size=${REGION_MB}M --offset_increment=${REGION_MB}M

check "detach $DEV" nbd_detach "$DEV"
check "reattach $DEV" nbd_attach "$DEV" "$(nbd_sock mem)"
check "sequential data verifies after the reattach" \
	reverify seq-again "$SEQ_MB" --rw=write --bs=1M --iodepth=4 \
	--size=${SEQ_MB}M
check "detach $DEV again" nbd_detach "$DEV"
check "unload nbd" nbd_unload
ktap_finish
