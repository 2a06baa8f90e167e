# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# A throwaway Ceph cluster on the loopback, for the rbd-nbd tests:
# one monitor, one manager and N OSDs (BlueStore), all in CEPH_DIR, all
# started here and stopped by ceph_down (or the test's exit).  No cephx
# (auth none): the tests are about the nbd device, not Ceph's security.
#
#	source ceph_lib.sh
#	ceph_up DIR NOSD [COPIES [POOL]]
#				start it with a pool for rbd; CEPH_CONF
#				names its ceph.conf
#	ceph_osd_stop ID / ceph_osd_start ID
#	ceph_wait_clean SECS	every placement group active+clean
#	ceph_down
#
# Each OSD stores its data in a file of CEPH_OSD_MB (default 1024) MiB,
# sparse, opened with O_DIRECT; where the directory's file system has no
# O_DIRECT (tmpfs before Linux 6.6) the file sits behind a loop device.
# Sourced after lib.sh (track_pid, pid_gone).

CEPH_OSD_MB=${CEPH_OSD_MB:-1024}
CEPH_TIMEOUT=${CEPH_TIMEOUT:-120}
CEPH_DIR=
CEPH_CONF=
declare -A CEPH_PIDS=()
declare -A CEPH_LOOPS=()
declare -A CEPH_LOGPOS=()

# ceph_poll SECS CMD...: wait_for at one try a second (the ceph command
# is a Python program: seconds of CPU under emulation).
ceph_poll()
{
	local deadline=$((SECONDS + $1))

	shift
	until "$@"; do
		[[ $SECONDS -ge $deadline ]] && return 1
		sleep 1
	done
}

# ceph_cli: the ceph command on this cluster, bounded in time.
ceph_cli()
{
	timeout "$CEPH_TIMEOUT" ceph -c "$CEPH_CONF" \
		--connect-timeout "$CEPH_TIMEOUT" "$@"
}

_ceph_conf()
{
	local fsid=$1 copies=$2

	cat >"$CEPH_CONF" <<-EOF
	[global]
	fsid = $fsid
	mon_host = v2:127.0.0.1:3300
	auth_cluster_required = none
	auth_service_required = none
	auth_client_required = none
	run_dir = $CEPH_DIR/run
	log_file = $CEPH_DIR/log/\$name.log
	pid_file =
	osd_pool_default_size = $copies
	osd_pool_default_min_size = 1
	osd_pool_default_pg_autoscale_mode = off
	osd_crush_chooseleaf_type = 0
	mon_allow_pool_size_one = true
	mon_allow_pool_delete = true
	mon_warn_on_pool_no_redundancy = false
	mon_data_avail_warn = 1
	mon_warn_on_insecure_global_id_reclaim_allowed = false
	ms_async_op_threads = 2
	# a small machine: fewer threads, small caches
	osd_op_num_shards = 1
	osd_op_num_threads_per_shard = 2
	bluestore_cache_autotune = false
	bluestore_cache_size = 67108864
	osd_memory_target = 939524096
	mgr_initial_modules =
	# no erasure-code plugins: rbd pools are replicated, and gf-complete
	# (jerasure's field arithmetic) dies with SIGILL on QEMU's default
	# emulated CPU
	osd_erasure_code_plugins =
	[mon]
	mon_data = $CEPH_DIR/mon.\$id
	[mgr]
	mgr_data = $CEPH_DIR/mgr.\$id
	[osd]
	osd_data = $CEPH_DIR/osd.\$id
	osd_objectstore = bluestore
	bluestore_block_path = $CEPH_DIR/block.\$id
	bluestore_fsck_on_mkfs = false
	osd_max_object_name_len = 256
	osd_max_object_namespace_len = 64
	EOF
}

# _ceph_spawn NAME CMD...: start a daemon in the foreground (-f), in the
# background here, so that its pid is ours to stop.
_ceph_spawn()
{
	local name=$1

	shift
	"$@" -f -c "$CEPH_CONF" >>"$CEPH_DIR/log/$name.out" 2>&1 &
	CEPH_PIDS[$name]=$!
	track_pid "$!"
}

_ceph_odirect_ok()
{
	dd if=/dev/zero of="$CEPH_DIR/.odirect" bs=4096 count=1 \
		oflag=direct status=none 2>/dev/null
	local rc=$?

	rm -f "$CEPH_DIR/.odirect"
	return $rc
}

# _ceph_osd_block ID: the OSD's data file, or a loop device over it.
_ceph_osd_block()
{
	local id=$1 file=$CEPH_DIR/data.$1 loop

	truncate -s "${CEPH_OSD_MB}M" "$file" || return 1
	if _ceph_odirect_ok; then
		ln -sf "$file" "$CEPH_DIR/block.$id"
		return
	fi
	[[ -e /dev/loop-control ]] || modprobe loop 2>/dev/null
	loop=$(losetup -f --show "$file") ||
		{ echo "# ceph: no O_DIRECT in $CEPH_DIR and no loop device for osd.$id"; return 1; }
	CEPH_LOOPS[$id]=$loop
	ln -sf "$loop" "$CEPH_DIR/block.$id"
}

# _ceph_osd_mkfs ID UUID: make osd.ID's store (run in the background).
_ceph_osd_mkfs()
{
	local id=$1 uuid=$2

	mkdir -p "$CEPH_DIR/osd.$id" &&
	ceph-osd -c "$CEPH_CONF" -i "$id" --mkfs --osd-uuid "$uuid" \
		>>"$CEPH_DIR/log/osd.$id.out" 2>&1 ||
		{ echo "# ceph: mkfs of osd.$id failed:"; tail -n 5 "$CEPH_DIR/log/osd.$id.out" | sed 's/^/# /'; return 1; }
}

ceph_osd_start()
{
	local log=$CEPH_DIR/log/osd.$1.log

	CEPH_LOGPOS[osd.$1]=$(($( (cat "$log" 2>/dev/null || :) | wc -l) + 1))
	_ceph_spawn "osd.$1" ceph-osd -i "$1"
}

# ceph_osd_stop ID [SIGNAL]: stop osd.ID (SIGTERM by default) and wait
# until it is gone.
ceph_osd_stop()
{
	local pid=${CEPH_PIDS[osd.$1]:-}

	[[ -n $pid ]] || return 1
	kill -"${2:-TERM}" "$pid" 2>/dev/null
	pid_gone "$pid" 60 || { kill -9 "$pid" 2>/dev/null; return 1; }
	unset "CEPH_PIDS[osd.$1]"
}

# ceph_clean: every placement group is active+clean.
ceph_clean()
{
	ceph_cli pg stat -f json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
s = s.get("pg_summary", s)
total = s.get("num_pgs", 0)
clean = sum(x["num"] for x in s.get("num_pg_by_state", [])
            if set(x["name"].split("+")) == {"active", "clean"})
sys.exit(0 if total and clean == total else 1)' 2>/dev/null
}

ceph_wait_clean()
{
	ceph_poll "${1:-$CEPH_TIMEOUT}" ceph_clean
}

# ceph_up DIR NOSD [COPIES [POOL]]: start the cluster with a replicated
# pool for rbd (COPIES copies, default 1; POOL default rbd).  CEPH_UP_SECS
# is how long until the pool took I/O, CEPH_TIMES when each step ended.
# The ceph command (Python) costs seconds a call under emulation: one
# call creates the OSDs and the pool; the rest is C++ (rbd) or the logs.
ceph_up()
{
	local n=$2 copies=${3:-1} pool=${4:-rbd} t0 fsid i cmds="" out
	local uuids=() ids=()

	t0=$(date +%s.%N)
	CEPH_DIR=$1
	CEPH_CONF=$CEPH_DIR/ceph.conf
	mkdir -p "$CEPH_DIR"/{run,log,mon.a,mgr.x} || return 1
	fsid=$(cat /proc/sys/kernel/random/uuid)
	_ceph_conf "$fsid" "$copies"
	monmaptool --create --add a v2:127.0.0.1:3300 --fsid "$fsid" \
		"$CEPH_DIR/monmap" >/dev/null &&
	ceph-mon -c "$CEPH_CONF" -i a --mkfs --monmap "$CEPH_DIR/monmap" \
		>>"$CEPH_DIR/log/mon.a.out" 2>&1 ||
		{ echo "# ceph: the monitor's mkfs failed"; return 1; }
	_ceph_spawn mon.a ceph-mon -i a
	CEPH_TIMES="mon $(_ceph_since "$t0")"
	for ((i = 0; i < n; i++)); do
		uuids[i]=$(cat /proc/sys/kernel/random/uuid)
		cmds+="osd new ${uuids[i]}"$'\n'
	done
	cmds+="osd pool create $pool 16"$'\n'
	# interactive mode: one command per line, the new OSDs' ids first
	out=$(ceph_cli <<<"$cmds" 2>"$CEPH_DIR/log/cli.err")
	mapfile -t ids < <(grep -E '^[0-9]+$' <<<"$out")
	if [[ ${#ids[@]} -ne $n ]]; then
		echo "# ceph: 'osd new' gave ${#ids[@]} ids, not $n:"
		sed 's/^/#   /' "$CEPH_DIR/log/cli.err" <<<"$out" | tail -n 5
		return 1
	fi
	CEPH_TIMES+=", osd new $(_ceph_since "$t0")"
	for ((i = 0; i < n; i++)); do
		_ceph_osd_block "${ids[i]}" || return 1
		_ceph_osd_mkfs "${ids[i]}" "${uuids[i]}" &
	done
	wait_jobs_ok || return 1
	CEPH_TIMES+=", OSD mkfs $(_ceph_since "$t0")"
	for i in "${ids[@]}"; do
		ceph_osd_start "$i"
	done
	for i in "${ids[@]}"; do
		ceph_osd_wait_active "$i" "$CEPH_TIMEOUT" ||
			{ echo "# ceph: osd.$i did not become active"; ceph_logs; return 1; }
	done
	CEPH_TIMES+=", OSDs up $(_ceph_since "$t0")"
	# rbd pool init waits for the pool's placement groups to take I/O
	timeout "$CEPH_TIMEOUT" rbd -c "$CEPH_CONF" pool init "$pool" ||
		{ echo "# ceph: rbd pool init $pool failed"; ceph_logs; return 1; }
	CEPH_UP_SECS=$(_ceph_since "$t0")
	CEPH_TIMES+=", pool $CEPH_UP_SECS s"
	# the manager last: it is busy for a while at start, and nothing
	# here waits for it
	_ceph_spawn mgr.x ceph-mgr -i x
}

# ceph_osd_wait_active ID SECS: osd.ID's log says it is active, since it
# was last started.
ceph_osd_wait_active()
{
	local log=$CEPH_DIR/log/osd.$1.log deadline=$((SECONDS + $2))

	until tail -n +"${CEPH_LOGPOS[osd.$1]:-1}" "$log" 2>/dev/null |
	      grep -q 'state: booting -> active'; do
		[[ $SECONDS -ge $deadline ]] && return 1
		sleep 0.5
	done
}

# _ceph_since T0: seconds since T0 (date +%s.%N), one decimal.
_ceph_since()
{
	printf '%.1f' "$(echo "$(date +%s.%N) - $1" | bc)"
}

# wait_jobs_ok: wait for this shell's background jobs that are not
# daemons; fail if one failed.
wait_jobs_ok()
{
	local pid rc=0 d skip

	for pid in $(jobs -p); do
		skip=0
		for d in "${CEPH_PIDS[@]}"; do
			[[ $pid == "$d" ]] && skip=1
		done
		((skip)) && continue
		wait "$pid" || rc=1
	done
	return $rc
}

# ceph_logs: the end of each daemon's log, as diagnostics.
ceph_logs()
{
	local f

	for f in "$CEPH_DIR"/log/*.log; do
		[[ -s $f ]] || continue
		echo "# --- ${f##*/}"
		grep -v '^\s*$' "$f" | tail -n 8 | sed 's/^/#   /'
	done
}

ceph_down()
{
	local name id

	for name in "${!CEPH_PIDS[@]}"; do
		kill -TERM "${CEPH_PIDS[$name]}" 2>/dev/null
	done
	for name in "${!CEPH_PIDS[@]}"; do
		pid_gone "${CEPH_PIDS[$name]}" 30 >/dev/null ||
			kill -9 "${CEPH_PIDS[$name]}" 2>/dev/null
	done
	CEPH_PIDS=()
	for id in "${!CEPH_LOOPS[@]}"; do
		losetup -d "${CEPH_LOOPS[$id]}" 2>/dev/null
	done
	CEPH_LOOPS=()
	[[ -n $CEPH_DIR ]] && rm -rf "$CEPH_DIR"
	CEPH_DIR=
}
