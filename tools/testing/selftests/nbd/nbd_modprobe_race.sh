#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Module load/unload racing netlink connect/disconnect: for a few
# seconds one loop loads and unloads nbd while another attaches and
# detaches /dev/nbd0 with nbd-client against one nbdkit server.  Nothing
# may hang, the module must unload cleanly afterwards and work again
# when reloaded.  Kernel warnings are caught by the VM harness.  On a
# slow kernel (KASAN, lockdep) both loops go on past RACE_SECONDS, up to
# three times as long, until the module was unloaded twice in the race.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
RACE_SECONDS=${NBD_RACE_SECONDS:-10}
RACE_MAX=$((3 * RACE_SECONDS))	# ... or longer, until two unloads
BOUND=$((RACE_MAX + 90))	# both loops must be done this long after the start

nbd_test_init
ktap_plan 12
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-client rmmod

nbdkit_start mem memory 64M || ktap_bail "cannot start nbdkit"
SOCK=$(nbd_sock mem)

# nbd-client opening /dev/nbd0 or asking for the "nbd" genl family makes
# the kernel autoload the module.  Route those requests to the module
# under test (the stock one must never sneak in) and count them.
ORIG_MODPROBE=$(cat /proc/sys/kernel/modprobe)
cat >"$NBD_TMP/modprobe" <<EOF
#!/bin/bash
# kernel module autoloader for $NBD_TEST_NAME: nbd means the module under test
for a in "\$@"; do
	case \$a in
	nbd|block-major-43-*|net-pf-16-proto-16-family-nbd)
		echo "\$a" >>'$NBD_TMP/autoload.log'
		if [[ '${NBD_STOCK:-0}' == 1 ]]; then
			exec '$ORIG_MODPROBE' -q nbd
		else
			exec insmod '${NBD_KO:-/nonexistent}'
		fi
		;;
	esac
done
exec '$ORIG_MODPROBE' "\$@"
EOF
chmod +x "$NBD_TMP/modprobe"
echo "$NBD_TMP/modprobe" >/proc/sys/kernel/modprobe
at_exit "echo '$ORIG_MODPROBE' >/proc/sys/kernel/modprobe"

# Load once with the checks (right module), then hand over to the loops.
check "load nbd (the module under test)" nbd_load || ktap_bail "cannot load nbd"
check "unload nbd" nbd_unload || ktap_bail "cannot unload nbd"

# race_on END MAX: the race goes on (RACE_SECONDS, then until two unloads)
race_on()
{
	[[ $SECONDS -lt $2 ]] &&
		{ [[ $SECONDS -lt $1 ]] || [[ ! -e $NBD_TMP/race.enough ]]; }
}

load_loop()
{
	local end=$((SECONDS + RACE_SECONDS)) max=$((SECONDS + RACE_MAX))
	local loads=0 unloads=0

	while race_on "$end" "$max"; do
		timeout 30 bash -c "$(declare -f _nbd_insmod); _nbd_insmod" \
			>/dev/null 2>&1 && loads=$((loads + 1))
		sleep "0.$((RANDOM % 5))"
		# EBUSY while the device is open is fine; try a few times.
		for _ in 1 2 3 4 5; do
			if timeout 30 rmmod nbd >/dev/null 2>&1; then
				unloads=$((unloads + 1))
				((unloads < 2)) || touch "$NBD_TMP/race.enough"
				break
			fi
			sleep 0.05
		done
		sleep "0.0$((RANDOM % 10))"
	done
	echo "$loads $unloads" >"$NBD_TMP/load.count"
}

connect_loop()
{
	local end=$((SECONDS + RACE_SECONDS)) max=$((SECONDS + RACE_MAX))
	local conns=0 tries=0

	while race_on "$end" "$max"; do
		tries=$((tries + 1))
		timeout 30 nbd-client -unix "$SOCK" "$DEV" -b 4096 \
			>/dev/null 2>&1 && conns=$((conns + 1))
		sleep "0.0$((RANDOM % 10))"
		timeout 30 nbd-client -d "$DEV" >/dev/null 2>&1
	done
	echo "$conns $tries" >"$NBD_TMP/connect.count"
}

_nbd_loaded_by_us=1	# whatever the loops leave loaded gets unloaded
load_loop &
LOAD_PID=$!
track_pid "$LOAD_PID"
connect_loop &
CONNECT_PID=$!
track_pid "$CONNECT_PID"

loops_done()
{
	_pid_gone "$LOAD_PID" && _pid_gone "$CONNECT_PID"
}

# stacks PID: kernel stacks of PID's process tree, to show a hang.
stacks()
{
	local p

	for p in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
		echo "# pid $p ($(cat "/proc/$p/comm" 2>/dev/null)):"
		sed 's/^/#   /' "/proc/$p/stack" 2>/dev/null
	done
}

if wait_for "$BOUND" loops_done; then
	ok "both loops finished (no hang)"
else
	stacks "$LOAD_PID"
	stacks "$CONNECT_PID"
	not_ok "both loops finished (no hang)"
fi
wait "$LOAD_PID" "$CONNECT_PID" 2>/dev/null

read -r loads unloads 2>/dev/null <"$NBD_TMP/load.count"
read -r conns tries 2>/dev/null <"$NBD_TMP/connect.count"
autoloads=$(cat "$NBD_TMP/autoload.log" 2>/dev/null | wc -l)
echo "$ORIG_MODPROBE" >/proc/sys/kernel/modprobe
ktap_info "loads=${loads:-?} autoloads=$autoloads unloads=${unloads:-?} connects=${conns:-?}/${tries:-?}"
ktap_result $(( ${loads:-0} + autoloads >= 2 && ${unloads:-0} >= 2 ? 0 : 1 )) \
	"the module was loaded and unloaded at least twice during the race"
ktap_result $(( ${conns:-0} >= 1 ? 0 : 1 )) \
	"at least one connect succeeded during the race"

settle_after_race()
{
	if [[ -d /sys/module/nbd && ${NBD_STOCK:-0} != 1 &&
	      $(cat /sys/module/nbd/srcversion 2>/dev/null) != "$NBD_SRCVERSION" ]]; then
		echo "# a different nbd module got loaded during the race"
		return 1
	fi
	if [[ -d /sys/module/nbd ]]; then
		nbd_disconnect_all
		nbd_unload
	fi
}
check "nbd unloads cleanly after the race" settle_after_race
check "the module is gone" test ! -d /sys/module/nbd

# The module still works after all that.
roundtrip()
{
	head -c 16384 /dev/urandom >"$NBD_TMP/in"
	dd if="$NBD_TMP/in" of="$DEV" bs=4096 oflag=direct status=none &&
		dd if="$DEV" of="$NBD_TMP/out" bs=4096 count=4 iflag=direct \
			status=none &&
		cmp "$NBD_TMP/in" "$NBD_TMP/out"
}
check "reload nbd" nbd_load || ktap_bail "cannot reload nbd"
check "attach $DEV" nbd_attach "$DEV" "$SOCK"
check "a dd round trip works" roundtrip
check "detach $DEV" nbd_detach "$DEV"
check "unload nbd" nbd_unload
ktap_finish
