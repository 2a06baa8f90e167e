#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Swap over nbd under memory pressure: the classic network block device
# deadlock, where writing pages out to free memory needs memory on the
# way (socket buffers, the server).  The server runs in this machine, so
# it must not need memory to take a swap-out: nbdkit's memory plugin with
# allocator=malloc,mlock=true (all of its store allocated and locked at
# start), or, where the server is restarted, nbdkit's file plugin on a
# file in ramfs written in full beforehand (ramfs pages are never
# reclaimed, and survive the server).  A memory hog writes a pattern
# derived from each page's index and a per-page generation, walks its
# pages for NBD_SWAP_SECONDS checking and rewriting them, then checks
# them all.  The pressure comes from the hog's memory cgroup: its
# memory.max is a third of MemAvailable and the hog is that plus half the
# swap device, so half the swap device's worth of its pages must live on
# /dev/nbd0 while the machine as a whole keeps free memory (with half of
# MemAvailable, 75 MiB in a 512 MiB VM, the machine still ran down to its
# min watermark once and nbdkit went into direct reclaim: see below).
#
# Why not pressure on the whole machine (NBD_SWAP_PRESSURE=global: a hog
# of MemAvailable + half the swap device, no memory.max)?  Then every
# task that asks for a page reclaims, nbdkit included: its threads fault
# in fresh anonymous pages (request buffers, stacks) and, in direct
# reclaim, write pages out to /dev/nbd0 and wait for a bio from the
# mempool that the writes nbdkit itself should take are holding.  The
# server deadlocks on its own device whatever the client does (seen with
# this module and the stock one alike: kswapd, nbdkit, the hog all in
# mempool_alloc < bio_alloc_bioset < __swap_writepage, no nbd worker
# blocked), until the request timeout drops the device.  A server in the
# same machine can only take swap-outs when its memory is apart from the
# memory under pressure, which is what the cgroup gives.  The global mode
# stays, to show that (it is expected to fail with a server in the VM).
#  1. swap on /dev/nbd0 over a UNIX socket;
#  2. the same over TCP;
#  3. the same over TLS (PSK, kernel TLS; skipped without the tls module);
#  4. ext4 on /dev/nbd1 under writeback pressure (vm.dirty_ratio 5,
#     dirty_background_ratio 2) while the hog swaps to /dev/nbd0:
#     buffered writes with dd, sync, md5 compared after a remount;
#  5. nbdctl connect --persist, and nbdkit killed (SIGKILL) and started
#     again on the same ramfs file while the hog swaps: the persist
#     process (it must have locked its memory) reconnects, no page is
#     lost.
# Each phase passes when the hog finished in time with every page intact,
# swap was really used (pswpout grew by at least 32 MiB), the kernel
# logged no swap or nbd I/O error, OOM kill or hung task, and swapoff and
# the detach worked.  The numbers (pswpout, pswpin, swap peak, the hog's
# time) are printed, and a table at the end.
#
# Nothing here may wait for ever: the hog runs under timeout, every wait
# is bounded, and a hog stuck in the kernel is reported, then freed by
# detaching the device.  The test itself, nbdkit and the helpers run in a
# memory cgroup with memory.swap.max = 0, so that reporting a stuck swap
# device never needs a page from it; the hog, the writers and nbdctl's
# persist process run in a sibling cgroup that may swap.  nbdkit gets
# oom_score_adj -1000, the hog 1000: an OOM kill hits the hog, and fails
# the phase.  With NBD_STOCK=1 the stock module runs the same checks.
#
# When swap makes no progress for 15 s with requests in flight, the
# watcher (nbd_swap_hog watch) has the kernel log the blocked tasks and
# the memory state (sysrq w, m; l later), and the console log level is
# raised for the test so that those stacks reach the console, which
# vm-run.sh --log keeps even when the machine has to be killed.
#
# Environment: NBDCTL, the nbdctl binary; NBD_SWAP_SECONDS, how long the
# hog runs in each phase (60); NBD_SWAP_PRESSURE, memcg (default) or
# global, see above; NBD_SWAP_MB, the swap device's size (256;
# half of it in phase 4); NBD_SWAP_FS_MB, phase 4's file system (160);
# NBD_SWAP_PHASES, which phases run (unix tcp tls fs restart); to show
# the test fails: NBD_SWAP_BREAK=1 makes the hog corrupt a page before its
# last check, NBD_SWAP_ALLOC=sparse runs the memory plugin with its
# default allocator, which allocates on write and so cannot take a
# swap-out.

source "$(dirname "$0")/lib.sh"

SECS=${NBD_SWAP_SECONDS:-60}
SWAP_MB=${NBD_SWAP_MB:-256}
FS_MB=${NBD_SWAP_FS_MB:-160}
ALLOC=${NBD_SWAP_ALLOC:-malloc,mlock=true}
BREAK=${NBD_SWAP_BREAK:-0}
PRESSURE=${NBD_SWAP_PRESSURE:-memcg}
read -r -a PHASES <<<"${NBD_SWAP_PHASES:-unix tcp tls fs restart}"
# How long the hog may take beyond SECS: filling and the last check go
# through swap, at ~10 MiB/s with software TLS under TCG.
SLACK=${NBD_SWAP_SLACK:-180}
# Software TLS under TCG is CPU-bound: 60 s of hog took 248 s and more
# over TLS (no stall: swap moved all along), against ~100 s in plaintext.
TLS_SLACK=${NBD_SWAP_TLS_SLACK:-$((SLACK * 3))}
# The persist phase's dead-connection timeout; also the reconnect bound.
DEAD=60
RESTARTS=2
# Request timeout of the other phases: a deadlock turns into errors.
REQ_TIMEOUT=${NBD_SWAP_REQ_TIMEOUT:-120}
# Phase 4 writes two files of this size.
FS_FILE_MB=$(( (FS_MB * 3 / 4) / 2 ))

checks_of()
{
	case $1 in
	unix|tcp|tls) echo 8 ;;
	fs) echo 10 ;;
	restart) echo $((10 + 2 * RESTARTS)) ;;
	*) echo 1 ;;
	esac
}

nbd_test_init
plan=5
for p in "${PHASES[@]}"; do
	plan=$((plan + $(checks_of "$p")))
done
ktap_plan "$plan"
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit mkswap swapon swapoff mkfs.ext4 md5sum psktool timeout
require_nbdctl

CG=/sys/fs/cgroup
CGP=$CG/nbd_swap/pinned
CGF=$CG/nbd_swap/free
MNT=$NBD_TMP/mnt
RAMFS=$NBD_TMP/ramfs
mkdir -p "$MNT" "$RAMFS"

# ---------------------------------------------------------------------------
# Setup: the hog, the cgroups, the module
# ---------------------------------------------------------------------------

build_hog()
{
	local src=$NBD_SELFTEST_DIR/nbd_swap_hog.c

	HOG=$NBD_SELFTEST_DIR/nbd_swap_hog
	[[ -x $HOG && ! $src -nt $HOG ]] && return 0
	HOG=$NBD_TMP/nbd_swap_hog
	${CC:-cc} -O2 -Wall -Wextra -o "$HOG" "$src" >"$NBD_TMP/cc.log" 2>&1 ||
		{ ktap_info_file "$NBD_TMP/cc.log"; return 1; }
}
check "build the memory hog (nbd_swap_hog.c)" build_hog || ktap_bail "no hog"
ktap_info "phases: ${PHASES[*]}; hog ${SECS} s each; swap ${SWAP_MB} MiB; nbdkit memory allocator=$ALLOC; pressure $PRESSURE"
[[ $PRESSURE == memcg || $PRESSURE == global ]] || ktap_bail "NBD_SWAP_PRESSURE must be memcg or global"

cg_setup()
{
	if [[ ! -e $CG/cgroup.controllers ]]; then
		mount -t cgroup2 none "$CG" || return 1
	fi
	grep -qw memory "$CG/cgroup.controllers" || return 1
	echo +memory >"$CG/cgroup.subtree_control" || return 1
	mkdir -p "$CG/nbd_swap" || return 1
	echo +memory >"$CG/nbd_swap/cgroup.subtree_control" || return 1
	mkdir -p "$CGP" "$CGF" || return 1
	[[ -e $CGP/memory.swap.max ]] || { echo "# no memory.swap.max (swap accounting off?)"; return 1; }
	echo 0 >"$CGP/memory.swap.max" || return 1
	echo $$ >"$CGP/cgroup.procs"
}
cg_teardown()
{
	echo $$ >"$CG/cgroup.procs"
	rmdir "$CGP" "$CGF" "$CG/nbd_swap"
}
at_exit cg_teardown
CGOK=1
check "cgroups: the test and nbdkit may not swap (memory.swap.max = 0)" cg_setup ||
	{ CGOK=0; ktap_info "going on without: the test's own pages may go to the swap device"; }
if [[ $PRESSURE == memcg && $CGOK != 1 ]]; then
	ktap_info "no memory cgroups: pressure on the whole machine instead (NBD_SWAP_PRESSURE=global), which a server in this machine is not expected to survive"
	PRESSURE=global
fi

# in_free CMD... &: run CMD in the cgroup that may swap, OOM-killable
# first with OOMADJ set (default 0).  Only in the background: it execs
# CMD in the process started for it, so that $! is CMD's pid.
in_free()
{
	[[ $CGOK == 1 ]] && echo "$BASHPID" >"$CGF/cgroup.procs"
	echo "${OOMADJ:-0}" >/proc/self/oom_score_adj
	if declare -F "$1" >/dev/null; then
		"$@"
		exit
	fi
	exec "$@"
}

# The watcher's sysrq reports and the hung-task warnings print their
# stacks at KERN_INFO: let them reach the console, which vm-run.sh keeps
# (--log) even when the machine wedges and is killed.
PRINTK=$(awk '{ print $1 }' /proc/sys/kernel/printk)
echo 7 >/proc/sys/kernel/printk
at_exit "echo $PRINTK >/proc/sys/kernel/printk"
# Under TCG on a busy host a vCPU can stand still for 20 s and more: the
# soft-lockup watchdog then reports whatever was running (seen: nbdkit
# copying from its socket).  Its longest threshold (2 x 60 s) still
# catches a real lockup; the hung-task warnings stay as they are.
WATCHDOG=$(cat /proc/sys/kernel/watchdog_thresh 2>/dev/null)
if [[ -n $WATCHDOG ]]; then
	echo 60 >/proc/sys/kernel/watchdog_thresh
	at_exit "echo $WATCHDOG >/proc/sys/kernel/watchdog_thresh"
fi

DIRTY_RATIO=$(sysctl -n vm.dirty_ratio)
DIRTY_BG=$(sysctl -n vm.dirty_background_ratio)
at_exit "sysctl -q vm.dirty_ratio=$DIRTY_RATIO vm.dirty_background_ratio=$DIRTY_BG"

ktap_info "zswap: $(cat /sys/module/zswap/parameters/enabled 2>/dev/null || echo absent); swappiness $(sysctl -n vm.swappiness)"
ktap_info "memory: $(awk '/^(MemTotal|MemAvailable|SwapTotal):/ { printf "%s %d MiB  ", $1, $2 / 1024 }' /proc/meminfo)"

check "load nbd" nbd_load || ktap_bail "cannot load nbd"

# nbdkit_memory_ok: nbdkit 1.32's memory plugin takes allocator=malloc,
# mlock=true, and really locks the store (VmLck).
nbdkit_memory_ok()
{
	local pid lck

	nbdkit_start probe memory 16M allocator=malloc,mlock=true || return 1
	pid=$(cat "$NBD_TMP/probe.pid")
	lck=$(awk '/^VmLck:/ { print $2 }' "/proc/$pid/status")
	ktap_info "nbdkit memory 16M allocator=malloc,mlock=true: VmLck $lck kB"
	server_stop probe
	[[ ${lck:-0} -ge 16384 ]]
}
check "nbdkit's memory plugin locks its store (allocator=malloc,mlock=true)" nbdkit_memory_ok

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
vmstat() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }

# fail_n N REASON: N checks of a phase that could not run.
fail_n()
{
	local i

	for ((i = 0; i < $1; i++)); do
		not_ok "not reached: $2"
	done
}

# pin_server NAME: nbdkit NAME is the last process the OOM killer takes.
pin_server()
{
	local pid

	pid=$(cat "$NBD_TMP/$1.pid" 2>/dev/null) || return 1
	echo -1000 >"/proc/$pid/oom_score_adj"
	ktap_info "nbdkit $1 (pid $pid): VmLck $(awk '/^VmLck:/ { print $2 }' "/proc/$pid/status") kB, cgroup $(cut -d: -f3 "/proc/$pid/cgroup")"
}

# server_memory NAME SIZE_MB [TCP PORT [NBDKIT OPTIONS...]]: nbdkit's
# memory plugin, the allocator of $ALLOC.
server_memory()
{
	local name=$1 mb=$2 port=${3:-}

	if [[ -n $port ]]; then
		nbdkit_start_tcp "$name" "$port" "${@:4}" \
			memory "${mb}M" "allocator=$ALLOC"
	else
		nbdkit_start "$name" memory "${mb}M" "allocator=$ALLOC"
	fi && pin_server "$name"
}

server_stop()
{
	local pid

	pid=$(cat "$NBD_TMP/$1.pid" 2>/dev/null) && kill_pid "$pid"
	rm -f "$NBD_TMP/$1.pid"
}

# servers_stop: every server still up (a phase that failed half-way may
# leave its servers, and their locked memory, behind).
servers_stop()
{
	local f

	for f in "$NBD_TMP"/*.pid; do
		[[ -e $f ]] || continue
		f=${f##*/}
		server_stop "${f%.pid}"
	done
}

# connect NAME URI DEV [ARGS...]: nbdctl connect, bounded.
connect()
{
	local name=$1 uri=$2 dev=$3

	shift 3
	if ! nbdctl_run "connect.$name" connect "$uri" "$dev" "$@"; then
		ktap_info_file "$NBD_TMP/connect.$name.err"
		return 1
	fi
	nbd_wait_connected "$dev" 20 && nbd_quiesce "$dev"
}

detach()
{
	local dev=$1

	nbdctl_run "disconnect.${dev##*/}" disconnect "$dev" ||
		ktap_info_file "$NBD_TMP/disconnect.${dev##*/}.err"
	nbd_wait_disconnected "$dev" 30
}

swap_on()
{
	quiet timeout 60 mkswap "$1" && quiet timeout 60 swapon "$1" &&
		grep -q "^$1 " /proc/swaps
}

swap_off()
{
	grep -q "^$1 " /proc/swaps || return 0
	quiet timeout -k 5 180 swapoff "$1"
}

# Processes a phase started that must not outlive it (hog, writer).
WORKERS=()

# descendants PID: PID's children, grandchildren..., deepest first.
descendants()
{
	local c

	for c in $(pgrep -P "$1"); do
		descendants "$c"
		echo "$c"
	done
}

# kill_workers: SIGKILL them and their children and wait, bounded (a
# process stuck in the kernel is left behind, said so).
kill_workers()
{
	local pid

	for pid in "${WORKERS[@]}"; do
		# shellcheck disable=SC2046 # a list of pids
		kill -KILL $(descendants "$pid") "$pid" 2>/dev/null
	done
	for pid in "${WORKERS[@]}"; do
		if pid_gone "$pid" 20; then
			wait "$pid" 2>/dev/null
		else
			echo "# process $pid is stuck: $(proc_state "$pid")"
		fi
	done
	WORKERS=()
}

# swap_cleanup: what a phase leaves when it fails half-way.
swap_cleanup()
{
	local dev

	kill_workers
	mountpoint -q "$MNT" && timeout 60 umount "$MNT"
	for dev in $(awk '$1 ~ /^\/dev\/nbd/ { print $1 }' /proc/swaps); do
		timeout -k 5 180 swapoff "$dev"
	done
	[[ -x ${NBDCTL:-} ]] && timeout 60 "$NBDCTL" disconnect --all
	mountpoint -q "$RAMFS" && umount -l "$RAMFS"
}
at_exit swap_cleanup

# proc_state PID: state, kernel wait channel and stack of PID.
proc_state()
{
	local st

	st=$(awk '/^State:/ { print $2 $3 }' "/proc/$1/status" 2>/dev/null)
	echo "state $st wchan $(cat "/proc/$1/wchan" 2>/dev/null)" \
		"stack: $(awk '{ print $2 }' "/proc/$1/stack" 2>/dev/null | head -n 8 | tr '\n' ' ')"
}

# stall_watch TAG DEV HOGPID: once swap I/O made no progress for 20 s
# with requests in flight on DEV, show once where the server's threads,
# the hog and the nbd workers wait.
stall_watch()
{
	local io r w t

	io="$(vmstat pswpout) $(vmstat pswpin) $(vmstat pgpgout)"
	read -r r w <"/sys/block/${2##*/}/inflight"
	if [[ $io != "$STALL_IO" || $((r + w)) -eq 0 ]]; then
		STALL_IO=$io
		STALL_T=$SECONDS
		return
	fi
	[[ $STALL_SHOWN == 1 || $((SECONDS - STALL_T)) -lt 20 ]] && return
	STALL_SHOWN=1
	ktap_info "$1: no swap progress for $((SECONDS - STALL_T)) s with $r reads and $w writes in flight on $2:"
	ktap_info "$1: $(awk '/^(MemFree|MemAvailable|SwapFree|Dirty|Writeback):/ { printf "%s %d MiB  ", $1, $2 / 1024 }' /proc/meminfo)"
	for t in /proc/[0-9]*/task/[0-9]*; do
		case $(<"$t/comm") in
		nbdkit|nbd_swap_hog|nbdctl|kswapd*|*nbd*|kworker*) ;;
		*) continue ;;
		esac
		[[ $(awk '/^State:/ { print $2 }' "$t/status" 2>/dev/null) == [DR] ]] ||
			[[ $(<"$t/comm") == nbdkit ]] || continue
		ktap_info "$1:   ${t#/proc/} $(<"$t/comm") $(proc_state "${t#/proc/}")"
	done 2>/dev/null
}

drop_worker()
{
	local w keep=()

	for w in "${WORKERS[@]}"; do
		[[ $w == "$1" ]] || keep+=("$w")
	done
	WORKERS=("${keep[@]}")
}

# Results of the last hog_run, for the checks and the table.
H_RC="" H_MB="" H_SECS="" H_PASSES="" H_OUT=0 H_IN=0 H_PEAK=0 H_LINE=""

# hog_run TAG DEV [WAITER]: the hog, sized from MemAvailable and the swap
# of DEV, in the cgroup that may swap; waits for it, bounded, sampling
# SwapFree.  WAITER (a command) is run once a second while it runs (phase
# 5 restarts the server from there).  Sets the H_* results; H_RC is the
# hog's exit status, "stuck" when it did not end.
hog_run()
{
	local tag=$1 dev=$2 waiter=${3:-} slack=${H_SLACK:-$SLACK} avail swapkb limit out0 in0 pid t0 free minfree deadline brk=

	avail=$(meminfo MemAvailable)
	swapkb=$(awk -v d="$dev" '$1 == d { print $3 }' /proc/swaps)
	if [[ $PRESSURE == memcg ]]; then
		limit=$((avail / 3 / 1024))
		H_MB=$((limit + ${swapkb:-0} / 2 / 1024))
		echo $((limit * 1024 * 1024)) >"$CGF/memory.max"
		limit="memory.max of its cgroup $limit MiB"
	else
		H_MB=$(( (avail + ${swapkb:-0} / 2) / 1024 ))
		[[ $CGOK == 1 ]] && echo max >"$CGF/memory.max"
		limit="no memory.max: pressure on the whole machine"
	fi
	[[ $BREAK == 1 ]] && brk=--break
	out0=$(vmstat pswpout)
	in0=$(vmstat pswpin)
	minfree=$(meminfo SwapFree)
	ktap_info "$tag: MemAvailable $((avail / 1024)) MiB, swap $((${swapkb:-0} / 1024)) MiB: hog of $H_MB MiB for $SECS s, $limit"
	dmesg_mark "$tag hog"
	t0=$SECONDS
	OOMADJ=1000 in_free timeout -k 10 $((SECS + slack)) "$HOG" hog "$H_MB" "$SECS" $brk \
		>"$NBD_TMP/$tag.hog" 2>&1 &
	pid=$!
	WORKERS+=("$pid")
	# Where things wait when swap stalls, in the kernel log; it also
	# locks the servers' program files in memory.
	# shellcheck disable=SC2046 # a list of pids
	"$HOG" watch "${dev##*/}" $(cat "$NBD_TMP"/*.pid 2>/dev/null) >"$NBD_TMP/$tag.watch" 2>&1 &
	WORKERS+=("$!")
	deadline=$((SECONDS + SECS + slack + 30))
	STALL_T=$SECONDS STALL_IO="" STALL_SHOWN=0
	while ! _pid_gone "$pid" && [[ $SECONDS -lt $deadline ]]; do
		free=$(meminfo SwapFree)
		[[ $free -lt $minfree ]] && minfree=$free
		[[ -n $waiter ]] && $waiter "$pid" $((SECONDS - t0))
		stall_watch "$tag" "$dev" "$pid"
		sleep 1
	done
	H_SECS=$((SECONDS - t0))
	H_OUT=$(( ($(vmstat pswpout) - out0) ))
	H_IN=$(( ($(vmstat pswpin) - in0) ))
	H_PEAK=$(( (${swapkb:-0} - minfree) / 1024 ))
	if _pid_gone "$pid"; then
		wait "$pid"
		H_RC=$?
		drop_worker "$pid"
	else
		H_RC=stuck
		ktap_info "$tag: the hog did not end within $((SECS + slack + 30)) s:" \
			"$(proc_state "$(pgrep -P "$pid" | head -n 1)")"
		ktap_info "$tag: $dev in flight: $(cat "/sys/block/${dev##*/}/inflight")"
	fi
	H_LINE=$(grep '^hog: result:' "$NBD_TMP/$tag.hog")
	H_PASSES=$(sed -n 's/.*MiB, \([0-9]*\) passes.*/\1/p' <<<"$H_LINE")
	ktap_info "$tag: hog exit $H_RC after $H_SECS s; pswpout +$H_OUT pages ($((H_OUT / 256)) MiB), pswpin +$H_IN pages ($((H_IN / 256)) MiB), swap used at most $H_PEAK MiB"
	grep -E 'bad pages so far|^hog: (last|result|--break|.*word)' "$NBD_TMP/$tag.hog" |
		grep -v ' 0 bad pages so far' | head -n 12 | sed 's/^/#   /'
	[[ -n $H_LINE ]] || ktap_info_file "$NBD_TMP/$tag.hog" 5
	RESULTS+=("$(printf '%-8s %-5s %6s %6s %7s %8s %8s %8s' "$tag" "${H_RC}" "$H_MB" "$H_SECS" \
		"${H_PASSES:--}" "$((H_OUT / 256))" "$((H_IN / 256))" "$H_PEAK")")
}
RESULTS=()

hog_ok() { [[ $H_RC == 0 ]]; }
# At least 32 MiB went out to swap during the run.
swap_used() { [[ $H_OUT -ge $((32 * 256)) && $H_PEAK -gt 0 ]]; }

# log_clean: no swap or nbd I/O error, OOM kill or hung task since the
# hog's mark.
log_clean()
{
	local bad

	bad=$(dmesg_since_mark | grep -E 'Write-error on swap|Read-error on swap|I/O error, dev nbd|Out of memory|oom-kill|blocked for more than|hung task')
	dmesg_since_mark | grep -E 'nbd[0-9]|nbd:|swap' | grep -v 'Adding .*swap' | tail -n 6 | sed 's/^/# kernel: /'
	[[ -z $bad ]] && return 0
	sed 's/^/# bad: /' <<<"$bad" | head -n 8
	return 1
}

# hog_checks TAG: the three checks on the run.
hog_checks()
{
	check "$1: the hog ended in time with every page intact" hog_ok
	check "$1: swap was used (pswpout +$((H_OUT / 256)) MiB, peak $H_PEAK MiB)" swap_used
	check "$1: kernel log: no swap/nbd I/O error, OOM kill or hung task" log_clean
}

# ---------------------------------------------------------------------------
# Phases 1-3: swap on /dev/nbd0
# ---------------------------------------------------------------------------

# swap_phase TAG URI [CONNECT ARGS...]: the server is up; 7 checks.
swap_phase()
{
	local tag=$1 uri=$2 dev=/dev/nbd0

	shift 2
	check "$tag: nbdctl connect $uri" connect "$tag" "$uri" "$dev" \
		--timeout "$REQ_TIMEOUT" "$@" || { fail_n 6 "no device"; return; }
	check "$tag: mkswap and swapon $dev" swap_on "$dev" ||
		{ fail_n 5 "no swap"; detach "$dev"; return; }
	hog_run "$tag" "$dev"
	kill_workers
	hog_checks "$tag"
	check "$tag: swapoff $dev" swap_off "$dev"
	check "$tag: nbdctl disconnect $dev" detach "$dev"
}

phase_unix()
{
	check "unix: nbdkit memory ${SWAP_MB}M allocator=$ALLOC on a UNIX socket" \
		server_memory unix "$SWAP_MB" || { fail_n 7 "no server"; return; }
	swap_phase unix "nbd+unix:///?socket=$(nbd_sock unix)"
	server_stop unix
}

phase_tcp()
{
	check "tcp: nbdkit memory ${SWAP_MB}M allocator=$ALLOC on 127.0.0.1:10931" \
		server_memory tcp "$SWAP_MB" 10931 || { fail_n 7 "no server"; return; }
	swap_phase tcp "nbd://127.0.0.1:10931/"
	server_stop tcp
}

tls_ok()
{
	modprobe tls 2>/dev/null
	grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp
}

phase_tls()
{
	local i

	if ! tls_ok; then
		for ((i = 0; i < 8; i++)); do
			skip "tls: swap over kernel TLS" "no kernel TLS (tls not in tcp_available_ulp)"
		done
		return
	fi
	check "tls: nbdkit memory ${SWAP_MB}M --tls=require with a PSK on 127.0.0.1:10932" \
		eval 'quiet psktool -u swap -p "$NBD_TMP/keys.psk" &&
		      server_memory tls "$SWAP_MB" 10932 --tls=require --tls-psk="$NBD_TMP/keys.psk"' ||
		{ fail_n 7 "no server"; return; }
	H_SLACK=$TLS_SLACK swap_phase tls "nbds://127.0.0.1:10932/" --tls-psk "$NBD_TMP/keys.psk"
	server_stop tls
}

# ---------------------------------------------------------------------------
# Phase 4: ext4 on /dev/nbd1 under writeback pressure, swap on /dev/nbd0
# ---------------------------------------------------------------------------

# writer: two files of pattern data written through the page cache, then
# sync; each step bounded.  Its log says how far it got.
writer()
{
	local i

	for i in 1 2; do
		"$HOG" pattern "$FS_FILE_MB" "$i" |
			timeout 400 dd of="$MNT/data.$i" bs=1M iflag=fullblock status=none ||
			{ echo "dd $i failed"; return 1; }
		echo "dd $i done at $SECONDS"
	done
	timeout 300 sync || { echo "sync failed or timed out"; return 1; }
	echo "sync done at $SECONDS"
}

fs_md5_ok()
{
	local i want got rc=0

	timeout 120 umount "$MNT" || return 1
	echo 3 >/proc/sys/vm/drop_caches
	quiet timeout 60 mount /dev/nbd1 "$MNT" || return 1
	for i in 1 2; do
		want=$("$HOG" pattern "$FS_FILE_MB" "$i" | md5sum | cut -d' ' -f1)
		got=$(timeout 120 md5sum "$MNT/data.$i" | cut -d' ' -f1)
		ktap_info "fs: data.$i: md5 $got, want $want"
		[[ -n $got && $got == "$want" ]] || rc=1
	done
	return $rc
}

phase_fs()
{
	local half=$((SWAP_MB / 2)) wpid wrc

	check "fs: nbdkit memory ${half}M (swap) and ${FS_MB}M (ext4), allocator=$ALLOC" \
		eval 'server_memory fsswap "$half" && server_memory fsdata "$FS_MB"' ||
		{ fail_n 9 "no server"; return; }
	check "fs: nbdctl connect /dev/nbd0 and /dev/nbd1" \
		eval 'connect fsswap "nbd+unix:///?socket=$(nbd_sock fsswap)" /dev/nbd0 --timeout "$REQ_TIMEOUT" &&
		      connect fsdata "nbd+unix:///?socket=$(nbd_sock fsdata)" /dev/nbd1 --timeout "$REQ_TIMEOUT"' ||
		{ fail_n 8 "no devices"; swap_cleanup; return; }
	check "fs: mkfs.ext4 + mount /dev/nbd1, swapon /dev/nbd0" \
		eval 'quiet timeout 120 mkfs.ext4 -q -F /dev/nbd1 &&
		      quiet timeout 60 mount /dev/nbd1 "$MNT" && swap_on /dev/nbd0' ||
		{ fail_n 7 "no file system or swap"; swap_cleanup; return; }
	sysctl -q vm.dirty_ratio=5 vm.dirty_background_ratio=2
	ktap_info "fs: vm.dirty_ratio 5, vm.dirty_background_ratio 2; writing 2 x $FS_FILE_MB MiB while the hog runs"
	in_free writer >"$NBD_TMP/writer.log" 2>&1 &
	wpid=$!
	WORKERS+=("$wpid")
	hog_run fs /dev/nbd0
	if pid_gone "$wpid" $((SLACK + 60)); then
		wait "$wpid"
		wrc=$?
		drop_worker "$wpid"
	else
		wrc=stuck
		ktap_info "fs: the writer did not end: $(proc_state "$(pgrep -P "$wpid" | tail -n 1)")"
	fi
	kill_workers
	sysctl -q vm.dirty_ratio="$DIRTY_RATIO" vm.dirty_background_ratio="$DIRTY_BG"
	ktap_info "fs: writer exit $wrc: $(tr '\n' ';' <"$NBD_TMP/writer.log")"
	hog_checks fs
	check "fs: dd of 2 x $FS_FILE_MB MiB and sync ended in time" test "$wrc" = 0
	check "fs: md5 of both files right after umount and mount" fs_md5_ok
	check "fs: swapoff /dev/nbd0" swap_off /dev/nbd0
	check "fs: umount and disconnect both" \
		eval 'timeout 120 umount "$MNT" && detach /dev/nbd0 && detach /dev/nbd1'
	server_stop fsswap
	server_stop fsdata
}

# ---------------------------------------------------------------------------
# Phase 5: --persist, the server killed and restarted while swapping
# ---------------------------------------------------------------------------

PERSIST=
RESTARTED=0

reconnects() { grep -c ': reconnected$' "$NBD_TMP/persist.log"; }
reconnects_above() { [[ $(reconnects) -gt $1 ]]; }

restart_start()
{
	rm -f "$(nbd_sock restart)"
	nbdkit_start restart file "$RAMFS/disk.img" &&
		pin_server restart
}

# restart_once N: SIGKILL nbdkit, start it again 2 s later on the same
# file; the persist process must reconnect within DEAD.
restart_once()
{
	local n=$1 seen pid t0 ok=0

	seen=$(reconnects)
	pid=$(cat "$NBD_TMP/restart.pid")
	t0=$SECONDS
	kill -KILL "$pid" && pid_gone "$pid" 20 && sleep 2 && restart_start && ok=1
	ktap_result $((1 - ok)) "restart: $n: nbdkit killed (SIGKILL) and started again on the ramfs file while swapping"
	if wait_for "$DEAD" reconnects_above "$seen"; then
		ok "restart: $n: the persist process reconnected ($((SECONDS - t0)) s after the kill)"
	else
		not_ok "restart: $n: the persist process reconnected"
		sed 's/^/# persist: /' "$NBD_TMP/persist.log" | tail -n 5
	fi
}

# restart_waiter HOGPID T: at a third and at two thirds of the run.
restart_waiter()
{
	if [[ $RESTARTED -lt $RESTARTS && $2 -ge $(( SECS * (RESTARTED + 1) / (RESTARTS + 1) )) ]]; then
		RESTARTED=$((RESTARTED + 1))
		restart_once "$RESTARTED"
	fi
}

persist_locked()
{
	local lck adj

	lck=$(awk '/^VmLck:/ { print $2 }' "/proc/$PERSIST/status")
	adj=$(cat "/proc/$PERSIST/oom_score_adj")
	ktap_info "persist process $PERSIST: VmLck $lck kB, oom_score_adj $adj, cgroup $(cut -d: -f3 "/proc/$PERSIST/cgroup")"
	[[ $adj -lt 0 ]] || ktap_info "note: nbdctl does not lower its oom_score_adj; the OOM killer may pick it"
	[[ ${lck:-0} -gt 0 ]]
}

persist_alive() { [[ -n $PERSIST ]] && ! _pid_gone "$PERSIST"; }

phase_restart()
{
	local dev=/dev/nbd0 i

	RESTARTED=0
	check "restart: ramfs file of ${SWAP_MB} MiB written in full, nbdkit file plugin on it" \
		eval 'mount -t ramfs ramfs "$RAMFS" &&
		      quiet timeout 120 dd if=/dev/zero of="$RAMFS/disk.img" bs=1M count="$SWAP_MB" &&
		      restart_start' || { fail_n $((9 + 2 * RESTARTS)) "no server"; swap_cleanup; return; }
	in_free "$NBDCTL" connect "nbd+unix:///?socket=$(nbd_sock restart)" "$dev" \
		--persist --foreground --dead-timeout "$DEAD" --handshake-timeout 30 \
		>"$NBD_TMP/persist.out" 2>"$NBD_TMP/persist.log" &
	PERSIST=$!
	track_pid "$PERSIST"
	check "restart: nbdctl connect --persist attaches $dev" nbd_wait_connected "$dev" 60 || {
		ktap_info_file "$NBD_TMP/persist.log"
		fail_n $((8 + 2 * RESTARTS)) "no device"; swap_cleanup; return
	}
	nbd_quiesce "$dev"
	check "restart: the persist process locked its memory (mlockall)" persist_locked
	check "restart: mkswap and swapon $dev" swap_on "$dev" ||
		{ fail_n $((6 + 2 * RESTARTS)) "no swap"; swap_cleanup; return; }
	hog_run restart "$dev" restart_waiter
	kill_workers
	for ((i = RESTARTED; i < RESTARTS; i++)); do
		not_ok "restart: $((i + 1)): not reached (the hog ended first)"
		not_ok "restart: $((i + 1)): no reconnect to check"
	done
	hog_checks restart
	check "restart: the persist process survived" persist_alive
	check "restart: swapoff $dev" swap_off "$dev"
	check "restart: nbdctl disconnect $dev; the persist process ends" \
		eval 'detach "$dev" && pid_gone "$PERSIST" 20'
	sed 's/^/# persist: /' "$NBD_TMP/persist.log" | tail -n 8
	server_stop restart
	umount "$RAMFS"
}

# ---------------------------------------------------------------------------

t_all=$SECONDS
for p in "${PHASES[@]}"; do
	case $p in
	unix|tcp|tls|fs|restart)
		ktap_info "--- phase $p"
		"phase_$p"
		# A phase that failed half-way leaves no swap, device or server.
		swap_cleanup >/dev/null 2>&1
		servers_stop
		;;
	*) not_ok "no such phase: $p" ;;
	esac
done
ktap_info "results ($(nbd_module_desc); $((SECONDS - t_all)) s):"
ktap_info "$(printf '%-8s %-5s %6s %6s %7s %8s %8s %8s' phase hogrc hogMiB secs passes outMiB inMiB peakMiB)"
for r in "${RESULTS[@]}"; do
	ktap_info "$r"
done
check "unload nbd" nbd_unload
ktap_finish
