#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot a Debian kernel in QEMU (TCG) with the host's root file system as a
# read-only 9p root under a tmpfs overlay, run one test command in it and
# report whether it passed: command exit status 0, nbd unloaded afterwards,
# no kernel warning/oops in dmesg.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../errtrap.sh"

PROG=${0##*/}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd "$SCRIPT_DIR/../../.." && pwd -P)

# Kernel log lines that fail a run.
SPLAT_RE='WARNING:|BUG:|Oops|KASAN|UBSAN|ODEBUG:|possible circular locking|possible recursive locking|inconsistent lock state|lockdep|hung task|blocked for more than|general protection|Call Trace'
# Lines that match SPLAT_RE but are no splat: the boot banner of a kernel
# with lockdep (the debug kernel).  NBD_VM_SPLAT_IGNORE adds to these.
# (No backslashes: the regex also goes through awk -v.)
SPLAT_IGNORE='^([[] *[0-9.]+[]] )?rcu:[[:space:]]+RCU lockdep checking is enabled[.]$'
if [[ -n ${NBD_VM_SPLAT_IGNORE:-} ]]; then
	SPLAT_IGNORE="($SPLAT_IGNORE)|($NBD_VM_SPLAT_IGNORE)"
fi

usage() {
	cat <<EOF
Usage: $PROG [OPTIONS] [--] CMD [ARGS...]

Boot a kernel in QEMU and run CMD (in the current directory, which must
be visible in the guest as it is on the host) as root in the guest.

Options:
  --kernel ALIAS|KREL  kernel to boot: 6.1, 6.12, debug (the KASAN +
                       lockdep kernel of debug-kernel.sh) or a full
                       release (default: 6.12; see kernels.sh)
  --stock              test the kernel's own nbd module (NBD_KO is empty;
                       tests use "modprobe nbd")
  --module PATH        use this nbd.ko instead of building the repository's
  --timeout SEC        kill the VM after SEC seconds (default: 900, and
                       $DEBUG_TIMEOUT for the debug kernel)
  --mem MB             guest memory (default: 2048)
  --smp N              guest CPUs (default: 2)
  --log FILE           save the console log to FILE and the guest's dmesg
                       beside it, as \${FILE%.log}.dmesg
  --env NAME=VALUE     export NAME=VALUE to CMD (repeatable)
  --no-udev            do not start udevd in the guest
  -h, --help           show this help

Unless --stock or --module is given, the repository's module is built for
the kernel with build-module.sh first.

Environment seen by CMD in the guest:
  NBD_KO          absolute path of the nbd.ko to load (empty with --stock);
                  a copy in the run directory of the module built/given
  NBD_STOCK       1 with --stock, else 0
  NBD_KREL        the running kernel release
  NBD_SRCVERSION  srcversion of NBD_KO (empty with --stock)
  NBD_VM_RUN_DIR  the per-run directory, shared with the host (writable)
nbd is NOT loaded when CMD starts; the test loads it. After CMD, a still
loaded nbd is removed with rmmod; failing to remove it fails the run.

Exit status: 0 when CMD exited 0, nbd was unloaded and dmesg shows no
kernel splat; 124 on timeout; CMD's status if it failed (1 if that was
124); 1 for a splat or rmmod failure; 2 for usage/build errors; 125 when
the VM ended without a result (panic, crash).

Environment on the host:
  NBD_BUILD_DIR, NBD_CACHE_DIR   see build-module.sh, mkinitramfs.sh
  NBD_VM_ACCEL         QEMU accelerator (default: tcg,thread=single)
  NBD_VM_QEMU_ARGS     extra QEMU arguments (word-split)
  NBD_VM_APPEND        extra kernel command line
  NBD_VM_SPLAT_IGNORE  extended regex of dmesg lines not to count as splats
  NBD_VM_UDEV_COLDPLUG=all  coldplug every device with udev at boot
                       (default: block and misc only; ~3 s faster)
  NBD_VM_TRACE=1       trace the guest's setup (set -x with timestamps)
  NBD_VM_KEEP=1        keep the run directory even when the run passed
  NBD_VM_QUIET=1       do not copy the guest console to stdout
EOF
}

die() {
	echo "$PROG: $*" >&2
	exit 2
}

KERNEL=6.12
STOCK=0
MODULE=
TIMEOUT=
# KASAN and lockdep make the debug kernel several times slower under TCG.
DEBUG_TIMEOUT=2700
MEM=2048
SMP=2
LOG=
UDEV=1
ENVS=()

need_arg() {
	[[ $# -ge 2 && -n $2 ]] || die "option $1 needs an argument"
}

while [[ $# -gt 0 ]]; do
	case $1 in
	--kernel) need_arg "$@"; KERNEL=$2; shift ;;
	--kernel=*) KERNEL=${1#*=} ;;
	--stock) STOCK=1 ;;
	--module) need_arg "$@"; MODULE=$2; shift ;;
	--module=*) MODULE=${1#*=} ;;
	--timeout) need_arg "$@"; TIMEOUT=$2; shift ;;
	--timeout=*) TIMEOUT=${1#*=} ;;
	--mem) need_arg "$@"; MEM=$2; shift ;;
	--mem=*) MEM=${1#*=} ;;
	--smp) need_arg "$@"; SMP=$2; shift ;;
	--smp=*) SMP=${1#*=} ;;
	--log) need_arg "$@"; LOG=$2; shift ;;
	--log=*) LOG=${1#*=} ;;
	--env) need_arg "$@"; ENVS+=("$2"); shift ;;
	--env=*) ENVS+=("${1#*=}") ;;
	--no-udev) UDEV=0 ;;
	-h|--help) usage; exit 0 ;;
	--) shift; break ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) break ;;
	esac
	shift
done

[[ $# -gt 0 ]] || die "no command given (see --help)"
[[ -z $TIMEOUT || $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive number of seconds"
[[ $MEM =~ ^[1-9][0-9]*$ ]] || die "--mem must be a number of MiB"
[[ $SMP =~ ^[1-9][0-9]*$ ]] || die "--smp must be a positive number"
[[ $STOCK -eq 0 || -z $MODULE ]] || die "--stock and --module exclude each other"
for e in "${ENVS[@]}"; do
	[[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants NAME=VALUE, got '$e'"
done
command -v qemu-system-x86_64 >/dev/null ||
	die "qemu-system-x86_64 not found (run $SCRIPT_DIR/setup.sh)"

# KREL, VMLINUZ, KDIR, MODROOT (empty unless the debug kernel), MODDIR
kvars=$("$SCRIPT_DIR/kernels.sh" --vars "$KERNEL") || exit 2
eval "$kvars"
if [[ -z $TIMEOUT ]]; then
	TIMEOUT=900
	[[ -z $MODROOT ]] || TIMEOUT=$DEBUG_TIMEOUT
fi

# --- the module ---------------------------------------------------------------
KO=
if [[ $STOCK -eq 1 ]]; then
	modprobe -d "${MODROOT:-/}" -S "$KREL" --show-depends nbd >/dev/null 2>&1 ||
		echo "$PROG: warning: kernel $KREL seems to have no stock nbd module" >&2
elif [[ -n $MODULE ]]; then
	[[ -f $MODULE ]] || die "no such module file: $MODULE"
	KO=$(realpath "$MODULE")
else
	KO=$("$SCRIPT_DIR/build-module.sh" "$KREL") || die "module build failed for $KREL"
fi
if [[ -n $KO ]]; then
	vermagic=$(modinfo -F vermagic "$KO" 2>/dev/null) ||
		die "$KO is not a kernel module"
	[[ ${vermagic%% *} == "$KREL" ]] ||
		die "$KO was built for '${vermagic%% *}', not for $KREL"
fi

INITRD=$("$SCRIPT_DIR/mkinitramfs.sh" "$KREL") || die "cannot build the initramfs"

# --- the per-run directory ----------------------------------------------------
CWD=$(pwd -P)
RUN=$(mktemp -d /tmp/nbd-vm.XXXXXX)
for p in "$RUN" "$SCRIPT_DIR"; do
	[[ $p != *[[:space:]]* ]] || die "path '$p' contains white space"
done

{
	printf 'NBD_VM_CWD=%q\n' "$CWD"
	printf 'NBD_VM_REPO=%q\n' "$REPO_ROOT"
	# The guest loads a private copy: a concurrent run that rebuilds the
	# module cannot swap it under this one.
	if [[ -n $KO ]]; then
		cp "$KO" "$RUN/nbd.ko"
		printf 'NBD_VM_KO=%q\n' "$RUN/nbd.ko"
	else
		printf 'NBD_VM_KO=\n'
	fi
	printf 'NBD_VM_STOCK=%q\n' "$STOCK"
	printf 'NBD_VM_KREL=%q\n' "$KREL"
	# A kernel whose modules are not in the host's /lib/modules: the
	# guest mounts them there.
	if [[ -n $MODROOT ]]; then
		printf 'NBD_VM_MODDIR=%q\n' "$MODDIR"
	fi
	printf 'NBD_VM_UDEV=%q\n' "$UDEV"
	printf 'NBD_VM_UDEV_COLDPLUG=%q\n' "${NBD_VM_UDEV_COLDPLUG:-block}"
	printf 'NBD_VM_SPLAT_RE=%q\n' "$SPLAT_RE"
	printf 'NBD_VM_SPLAT_IGNORE=%q\n' "$SPLAT_IGNORE"
	printf 'NBD_VM_TRACE=%q\n' "${NBD_VM_TRACE:-0}"
} >"$RUN/run.env"
{
	echo "# generated by $PROG"
	for e in "${ENVS[@]}"; do
		printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"
	done
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$RUN/cmd.sh"

# --- QEMU ---------------------------------------------------------------------
APPEND="console=ttyS0 quiet panic=-1 nbd_vm.init=$SCRIPT_DIR/guest-init.sh nbd_vm.run=$RUN"
[[ -n ${NBD_VM_APPEND:-} ]] && APPEND+=" $NBD_VM_APPEND"

# One TCG thread for all vCPUs.  With thread=multi, a vCPU can run a stale
# translation of code that another vCPU has just patched (static keys,
# text_poke_bp): the guest then dies with "Oops: int3" in a random place
# (seen in about one boot in ten with -smp 4 on 6.12).  thread=single costs
# little here: the whole suite ran 2m56s against about 2m30s.
# shellcheck disable=SC2054 # the commas are QEMU's
QEMU=(
	qemu-system-x86_64
	-accel "${NBD_VM_ACCEL:-tcg,thread=single}"
	-m "$MEM" -smp "$SMP"
	-nographic -nodefaults -no-reboot
	-chardev "stdio,id=console,signal=off,logfile=$RUN/console.log"
	-serial chardev:console -monitor none
	# Keep SeaBIOS off the serial line: its console resets the terminal.
	-fw_cfg "name=etc/sercon-port,file=$RUN/sercon-port"
	-kernel "$VMLINUZ" -initrd "$INITRD"
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
	-virtfs "local,path=$RUN,mount_tag=nbdrun,security_model=none,multidevs=remap"
	-append "$APPEND"
)
if [[ -n ${NBD_VM_QEMU_ARGS:-} ]]; then
	# shellcheck disable=SC2206 # word-splitting wanted
	QEMU+=(${NBD_VM_QEMU_ARGS})
fi

printf '\0\0' >"$RUN/sercon-port"

qemu_pid=
interrupted=0
# shellcheck disable=SC2317 # called from traps
stop_vm() {
	if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill -TERM "$qemu_pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$qemu_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
}
# shellcheck disable=SC2317 # called from traps
on_signal() {
	interrupted=1
	echo "$PROG: interrupted by SIG$1, stopping the VM" >&2
	stop_vm
	if [[ ${NBD_VM_KEEP:-0} == 1 ]]; then
		echo "$PROG: run directory kept: $RUN" >&2
	else
		rm -rf "$RUN"
	fi
	case $1 in
	INT) exit 130 ;;
	HUP) exit 129 ;;
	*) exit 143 ;;
	esac
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP
trap stop_vm EXIT

echo "$PROG: kernel $KREL, module ${KO:-stock}, run dir $RUN" >&2
t0=$(date +%s.%N)
if [[ ${NBD_VM_QUIET:-0} == 1 ]]; then
	exec 3>/dev/null
else
	exec 3>&1
fi
timeout -k 10 "$TIMEOUT" "${QEMU[@]}" </dev/null >&3 2>"$RUN/qemu.err" &
qemu_pid=$!
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
qemu_pid=
t1=$(date +%s.%N)
elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
exec 3>&-
[[ $interrupted -eq 0 ]] || exit 130
# QEMU's own messages, less the warning about the fw_cfg name above.
grep -v 'etc/sercon-port' "$RUN/qemu.err" >&2 || true

# --- results --------------------------------------------------------------------
result=
if [[ -s $RUN/status ]]; then
	result=$(grep -a -m1 '^NBD-VM-RESULT:' "$RUN/status" || true)
fi
if [[ -z $result && -f $RUN/console.log ]]; then
	result=$(tr -d '\r' <"$RUN/console.log" |
		grep -a -o 'NBD-VM-RESULT:.*' | tail -n 1 || true)
fi

field() {
	local f
	for f in $result; do
		[[ $f == "$1"=* ]] && { printf '%s' "${f#*=}"; return; }
	done
}

rc=$(field rc)
splat=$(field splat)
rmmod=$(field rmmod)
boot=$(field boot)

# Look for splats on the host too: in dmesg, or on the console when the
# guest could not save dmesg (panic).
scan=$RUN/dmesg.txt
[[ -s $scan ]] || scan=$RUN/console.log
host_splat=0
if [[ -s $scan ]]; then
	if tr -d '\r' <"$scan" | grep -E -- "$SPLAT_RE" |
		{ if [[ -n $SPLAT_IGNORE ]]; then
			grep -v -E -- "$SPLAT_IGNORE"
		else cat; fi; } | grep -q .; then
		host_splat=1
	fi
fi

# Print the dmesg sections around the splat lines.
show_splats() {
	echo "$PROG: kernel splat(s) in ${scan##*/}:" >&2
	tr -d '\r' <"$scan" | awk -v re="$SPLAT_RE" -v ign="$SPLAT_IGNORE" '
		{ line[NR] = $0 }
		$0 ~ re && !(ign != "" && $0 ~ ign) { hit[NR] = 1 }
		END {
			last = 0; shown = 0
			for (i = 1; i <= NR; i++) {
				if (!(i in hit))
					continue
				from = i - 3 > last ? i - 3 : last + 1
				if (from < 1)
					from = 1
				if (last && from > last + 1)
					print "    ..."
				to = i + 40 > NR ? NR : i + 40
				for (j = from; j <= to && shown < 400; j++) {
					print "    " line[j]; shown++
				}
				if (to > last)
					last = to
				i = last
			}
		}' >&2
}

status=0
reason=
if [[ $qemu_rc -eq 124 || $qemu_rc -eq 137 ]] && [[ -z $result ]]; then
	status=124
	reason="timeout after ${TIMEOUT}s"
elif [[ -z $result || -z $rc ]]; then
	status=125
	reason="no result from the VM (qemu exit $qemu_rc)"
elif [[ $rc != 0 ]]; then
	status=$rc
	[[ $status =~ ^[0-9]+$ && $status -le 255 ]] || status=1
	[[ $status -ne 124 ]] || status=1
	reason="command exited with $rc"
fi
if [[ $splat == 1 || $host_splat == 1 ]]; then
	[[ $status -ne 0 ]] || status=1
	reason+="${reason:+, }kernel splat"
	splat=1
fi
if [[ $rmmod == fail ]]; then
	[[ $status -ne 0 ]] || status=1
	reason+="${reason:+, }rmmod nbd failed"
fi

shown_console=0
if [[ $splat == 1 ]]; then
	show_splats
	[[ $scan == "$RUN/console.log" ]] && shown_console=1
fi
if [[ $status -eq 124 || $status -eq 125 ]] && [[ $shown_console -eq 0 && -f $RUN/console.log ]]; then
	echo "$PROG: last console lines:" >&2
	tr -d '\r' <"$RUN/console.log" | tail -n 30 | sed 's/^/    /' >&2
fi

if [[ -n $LOG ]]; then
	mkdir -p "$(dirname "$LOG")"
	if [[ -f $RUN/console.log ]]; then
		tr -d '\r' <"$RUN/console.log" >"$LOG"
	else
		: >"$LOG"
	fi
	if [[ -f $RUN/dmesg.txt ]]; then
		cp "$RUN/dmesg.txt" "${LOG%.log}.dmesg"
	fi
fi

summary="kernel=$KREL module=${KO:-stock} rc=${rc:-none} splat=${splat:-?} rmmod=${rmmod:-?} boot=${boot:-?}s total=${elapsed}s"
if [[ $status -eq 0 ]]; then
	echo "$PROG: PASS $summary" >&2
	if [[ ${NBD_VM_KEEP:-0} != 1 ]]; then
		rm -rf "$RUN"
	else
		echo "$PROG: run directory kept: $RUN" >&2
	fi
else
	echo "$PROG: FAIL ($reason) $summary; run dir $RUN" >&2
fi
exit "$status"
