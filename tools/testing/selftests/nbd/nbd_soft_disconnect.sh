#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A disconnect with a healthy server under load is soft, as the protocol
# asks: every request that reached the server gets its reply, so no
# write the server received fails, and every write that succeeded is in
# the backing file afterwards.  Eight writer threads write distinct 4 KiB
# blocks with O_DIRECT, each block once with its own pattern, while the
# device is disconnected under them; nbdkit's log filter records which
# writes arrived.  Over netlink (nbd-client -d) and over the ioctl
# interface (nbd-client -L, NBD_DISCONNECT).
#
# The stock module shuts its sockets down right after NBD_CMD_DISC: the
# writes still in flight fail although the server received them.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
BS=4096

nbd_test_init
ktap_plan 14
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit nbd-client python3

check "load nbd" nbd_load || ktap_bail "cannot load nbd"

# writer LOG: threads writing block after block until one fails; every
# attempt is logged as "BLOCK ok" or "BLOCK err ERRNO".
writer()
{
	python3 - "$DEV" "$1" <<-'EOF'
	import mmap, os, struct, sys, threading
	dev, log = sys.argv[1], sys.argv[2]
	BS, THREADS, PER = 4096, 8, 4096
	out, lock = [], threading.Lock()
	def pattern(b):
	    return struct.pack(">Q", b) * (BS // 8)
	def run(t):
	    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
	    buf = mmap.mmap(-1, BS)
	    for b in range(t * PER, (t + 1) * PER):
	        buf.seek(0)
	        buf.write(pattern(b))
	        try:
	            os.pwrite(fd, buf, b * BS)
	            r = "%d ok" % b
	        except OSError as e:
	            r = "%d err %d" % (b, e.errno)
	        with lock:
	            out.append(r)
	        if not r.endswith("ok"):
	            break
	    os.close(fd)
	ts = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
	for t in ts:
	    t.start()
	for t in ts:
	    t.join()
	open(log, "w").write("\n".join(out) + "\n")
	EOF
}

# verdict NAME: compare the writer's log, the server's log and the file.
verdict()
{
	python3 - "$NBD_TMP/$1.writes" "$NBD_TMP/$1.nbdkit-log" \
		"$NBD_TMP/$1.img" <<-'EOF'
	import re, struct, sys
	BS = 4096
	ok, err = set(), {}
	for line in open(sys.argv[1]):
	    f = line.split()
	    if len(f) >= 2 and f[1] == "ok":
	        ok.add(int(f[0]))
	    elif len(f) >= 3:
	        err[int(f[0])] = f[2]
	got = set()
	for line in open(sys.argv[2]):
	    m = re.search(r"\bWrite id=\d+ offset=(0x[0-9a-f]+) count=(0x[0-9a-f]+)", line)
	    if m:
	        off, cnt = int(m.group(1), 16), int(m.group(2), 16)
	        got.update(range(off // BS, (off + cnt) // BS))
	img = open(sys.argv[3], "rb")
	lost = []
	for b in sorted(ok):
	    img.seek(b * BS)
	    if img.read(BS) != struct.pack(">Q", b) * (BS // 8):
	        lost.append(b)
	failed_sent = sorted(set(err) & got)
	print("# %d writes succeeded, %d failed (%s), %d reached the server; "
	      "%d succeeded writes missing from the file, %d writes the server "
	      "got failed" % (len(ok), len(err),
	      ",".join(sorted(set(err.values()))) or "-", len(got), len(lost),
	      len(failed_sent)))
	if lost:
	    print("# missing: %s" % lost[:10])
	if failed_sent:
	    print("# failed although sent: %s" % failed_sent[:10])
	sys.exit(0 if ok and err and not lost and not failed_sent else 1)
	EOF
}

# writes_done_at_least N: the device has completed N writes.
writes_done_at_least()
{
	local n

	n=$(awk '{ print $5 }' "/sys/block/${DEV#/dev/}/stat" 2>/dev/null)
	[[ ${n:-0} -ge $1 ]]
}

soft()
{
	local name=$1 wpid

	shift
	truncate -s 256M "$NBD_TMP/$name.img"
	nbdkit_start "$name" --filter=log file "$NBD_TMP/$name.img" \
		logfile="$NBD_TMP/$name.nbdkit-log" ||
		{ ktap_bail "cannot start nbdkit"; }
	check "$name: attach" nbd_attach "$DEV" "$(nbd_sock "$name")" "$@" ||
		ktap_bail "attach failed"
	nbd_quiesce "$DEV"
	dmesg_mark "$name"
	writer "$NBD_TMP/$name.writes" &
	wpid=$!
	track_pid "$wpid"
	# Disconnect once writes are flowing (a slow kernel starts the
	# writers late): 50 completed writes, then a second more.
	wait_for 60 writes_done_at_least 50
	sleep 1
	check "$name: nbd-client -d returns" \
		quiet timeout 60 nbd-client -d "$DEV"
	check "$name: the writers stopped (their next writes failed)" \
		eval 'wait_for 60 _pid_gone "$wpid"'
	check "$name: $DEV is disconnected" nbd_wait_disconnected "$DEV" 20
	kill_pid "$(cat "$NBD_TMP/$name.pid")"
	check "$name: no write the server received failed, every write that succeeded is in the file" \
		verdict "$name"
	check "$name: the kernel logged the disconnect, no forced close" \
		eval 'dmesg_since_mark | grep -q "nbd0: disconnect requested" &&
		      ! dmesg_since_mark | grep -q "nbd0: disconnect: the server did not answer"'
}

soft netlink
soft ioctl -L
check "unload nbd" nbd_unload
ktap_finish
