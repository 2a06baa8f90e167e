#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Helpers for nbd_upstream.sh (regression tests for upstream's 2024-2026
nbd bug reports).

  nbd_upstream.py server SOCKET FILE [--pause PROB:SECS] [--batch N]
      An NBD server (fixed newstyle, simple replies, CAN_MULTI_CONN) for
      FILE on a UNIX socket, a thread per connection, that checks every
      request it gets: magic, command, flags, range, and that no cookie is
      used twice while it is in flight.  A violation is logged as a line
      starting with "BAD" and ends the connection.  --pause: after a
      request, with probability PROB, stop reading the socket for up to
      SECS seconds, so the client's sends fill the socket buffer and go
      out in parts.  --batch N: take up to N requests that are already
      readable, serve them in order, then reply in reverse order (replies
      are matched by cookie, not by order).  On SIGUSR1, and whenever a
      connection ends, it logs its totals ("stats ...").

  nbd_upstream.py connect-fail INDEX SOCKET KIND [BACKEND]
      A generic netlink CONNECT of nbdINDEX with two sockets: the first a
      connection to SOCKET past its handshake, the second of KIND (as in
      nbd_ioctl.py, or "same": the first one again, or "none": no second
      socket, the CONNECT is then expected to succeed and is disconnected
      right away).  Prints the kernel's answer ("ok" or an errno name).

  nbd_upstream.py backend-loop INDEX SOCKET ROUNDS BACKEND
      ROUNDS times: CONNECT nbdINDEX with NBD_ATTR_BACKEND_IDENTIFIER
      BACKEND-<round>, check /sys/block/nbdINDEX/backend, DISCONNECT, wait
      until the device is free again; then a CONNECT with a backend that
      fails (a bad second socket) and one on the busy device.  Prints
      counts; exits 1 when a round did not go as expected.

  nbd_upstream.py race-clear INDEX SOCKET ROUNDS
      ROUNDS CONNECTs (each DISCONNECTed again) of nbdINDEX while another
      process opens the device, issues NBD_CLEAR_SOCK and closes it, in a
      loop, until the rounds are over.  Prints counts.

  nbd_upstream.py fail-loop SOCKET ROUNDS
      ROUNDS times: a CONNECT of nbd0 (expected to be busy: EBUSY) and a
      CONNECT of nbd1 with a good socket and a bad one (kinds in turn:
      udp, pipe, bad-fd, unix-dgram, same, tcp-unconnected), which must
      be refused.  Exits 1 when one was not.

  nbd_upstream.py clear-loop INDEX SOCKET ROUNDS
      ROUNDS times: CONNECT nbdINDEX when it is free, wait 0-0.4 s, then
      NBD_CLEAR_SOCK on it.  Prints counts.

  nbd_upstream.py hog LEAVE_MB SECONDS
      Take anonymous memory until MemAvailable is about LEAVE_MB, keep it
      touched for SECONDS (giving some back whenever MemAvailable falls
      below half of LEAVE_MB, so the OOM killer stays away), then exit.
      Prints the lowest MemAvailable seen.
"""
import errno
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbd_ioctl import make_fd  # noqa: E402
from nbd_genl import attr, family_id, transact  # noqa: E402

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OPT_REPLY_MAGIC = 0x3E889045565A9
REQ_MAGIC = 0x25609513
REPLY_MAGIC = 0x67446698
FIXED_NEWSTYLE, NO_ZEROES = 1, 2
OPT_EXPORT_NAME, OPT_ABORT, OPT_INFO, OPT_GO = 1, 2, 6, 7
REP_ACK, REP_INFO, REP_ERR_UNSUP = 1, 3, 0x80000001
# HAS_FLAGS, SEND_FLUSH, SEND_FUA, CAN_MULTI_CONN
TFLAGS = 1 | 4 | 8 | 256
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
CMD_FLAG_FUA = 1
MAX_LEN = 32 << 20

GENL_CONNECT, GENL_DISCONNECT = 1, 2
A_INDEX, A_SIZE, A_BLKSIZE, A_TIMEOUT, A_SFLAGS = 1, 2, 3, 4, 5
A_SOCKETS, A_BACKEND = 7, 10
SOCK_ITEM, SOCK_FD, NESTED = 1, 1, 0x8000
NLM_F_REQUEST, NLM_F_ACK = 1, 4


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


class Gone(Exception):
    pass


def recv_exact(sock, n, parts=None):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise Gone("end of file")
        buf += chunk
        if parts is not None:
            parts[0] += 1
    return bytes(buf)


# ---------------------------------------------------------------------------
# server
# ---------------------------------------------------------------------------

class Server:
    def __init__(self, path, pause, batch):
        self.fd = os.open(path, os.O_RDWR)
        self.size = os.fstat(self.fd).st_size
        self.pause_p, self.pause_s = pause
        self.batch = batch
        self.lock = threading.Lock()
        self.stats = dict(conns=0, requests=0, writes=0, reads=0,
                          flushes=0, pauses=0, split=0, bad=0,
                          reordered=0)

    def count(self, key, n=1):
        with self.lock:
            self.stats[key] += n

    def dump(self):
        with self.lock:
            log("stats " + " ".join(f"{k}={v}"
                                    for k, v in sorted(self.stats.items())))

    def optrep(self, sock, opt, rtype, data=b""):
        sock.sendall(struct.pack(">QIII", OPT_REPLY_MAGIC, opt, rtype,
                                 len(data)) + data)

    def handshake(self, sock):
        sock.sendall(struct.pack(">QQH", NBDMAGIC, IHAVEOPT,
                                 FIXED_NEWSTYLE | NO_ZEROES))
        (cflags,) = struct.unpack(">I", recv_exact(sock, 4))
        while True:
            magic, opt, length = struct.unpack(">QII", recv_exact(sock, 16))
            if magic != IHAVEOPT or length > 4096:
                raise Gone("bad option")
            data = recv_exact(sock, length)
            if opt == OPT_EXPORT_NAME:
                zeros = b"" if cflags & NO_ZEROES else bytes(124)
                sock.sendall(struct.pack(">QH", self.size, TFLAGS) + zeros)
                return True
            if opt == OPT_ABORT:
                self.optrep(sock, opt, REP_ACK)
                return False
            if opt in (OPT_INFO, OPT_GO):
                self.optrep(sock, opt, REP_INFO,
                            struct.pack(">HQH", 0, self.size, TFLAGS))
                self.optrep(sock, opt, REP_ACK)
                if opt == OPT_GO:
                    return True
                continue
            self.optrep(sock, opt, REP_ERR_UNSUP)
            del data

    def bad(self, name, why):
        self.count("bad")
        log(f"BAD {name}: {why}")
        raise Gone(why)

    def read_request(self, sock, name, inflight):
        """One request, checked; None for NBD_CMD_DISC."""
        parts = [0]
        hdr = recv_exact(sock, 28, parts)
        magic, flags, cmd, cookie, off, length = struct.unpack(">IHHQQI", hdr)
        if magic != REQ_MAGIC:
            self.bad(name, f"request magic {magic:#x} (cookie {cookie:#x})")
        if cmd == CMD_DISC:
            return None
        if cmd not in (CMD_READ, CMD_WRITE, CMD_FLUSH):
            self.bad(name, f"command {cmd} (cookie {cookie:#x})")
        if flags & ~CMD_FLAG_FUA:
            self.bad(name, f"flags {flags:#x} (cookie {cookie:#x})")
        if cmd != CMD_FLUSH and (length == 0 or length > MAX_LEN or
                                 off + length > self.size or off % 512 or
                                 length % 512):
            self.bad(name, f"cmd {cmd} range {off}+{length}")
        if cookie in inflight:
            self.bad(name, f"cookie {cookie:#x} reused while in flight")
        data = b""
        if cmd == CMD_WRITE:
            data = recv_exact(sock, length, parts)
        if parts[0] > 2:
            self.count("split")
        inflight.add(cookie)
        self.count("requests")
        return cmd, flags, cookie, off, length, data

    def execute(self, req):
        cmd, flags, cookie, off, length, data = req
        payload = b""
        if cmd == CMD_READ:
            self.count("reads")
            payload = os.pread(self.fd, length, off)
        elif cmd == CMD_WRITE:
            self.count("writes")
            os.pwrite(self.fd, data, off)
            if flags & CMD_FLAG_FUA:
                os.fdatasync(self.fd)
        else:
            self.count("flushes")
            os.fdatasync(self.fd)
        return struct.pack(">IIQ", REPLY_MAGIC, 0, cookie) + payload

    def serve(self, sock, name):
        inflight = set()
        while True:
            batch = []
            while True:
                req = self.read_request(sock, name, inflight)
                if req is None:
                    log(f"{name}: NBD_CMD_DISC")
                    return
                batch.append((req[2], self.execute(req)))
                if len(batch) >= self.batch:
                    break
                ready, _, _ = select.select([sock], [], [], 0)
                if not ready:
                    break
            if len(batch) > 1:
                self.count("reordered")
            for cookie, reply in reversed(batch):
                sock.sendall(reply)
                inflight.discard(cookie)
            if self.pause_p and random.random() < self.pause_p:
                self.count("pauses")
                time.sleep(random.uniform(self.pause_s / 4, self.pause_s))

    def connection(self, sock, name):
        self.count("conns")
        try:
            if self.handshake(sock):
                self.serve(sock, name)
        except (Gone, OSError) as e:
            log(f"{name}: closed ({e})")
        finally:
            sock.close()
            self.dump()

    def run(self, path):
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Bound under its own name: /proc/net/unix then shows the
        # connections a client has (nbd_server_conns).
        if os.path.exists(path):
            os.unlink(path)
        lsock.bind(path)
        lsock.listen(64)
        log(f"listening on {path}, {self.size} bytes")
        n = 0
        while True:
            sock, _ = lsock.accept()
            threading.Thread(target=self.connection, args=(sock, f"c{n}"),
                             daemon=True).start()
            n += 1


def cmd_server(args):
    pause, batch = (0.0, 0.0), 1
    path, store = args[0], args[1]
    rest = args[2:]
    while rest:
        opt, val = rest[0], rest[1]
        rest = rest[2:]
        if opt == "--pause":
            p, s = val.split(":")
            pause = (float(p), float(s))
        elif opt == "--batch":
            batch = max(1, int(val))
        else:
            raise SystemExit(f"unknown option {opt}")
    srv = Server(store, pause, batch)
    signal.signal(signal.SIGUSR1, lambda *_: srv.dump())
    srv.run(path)


# ---------------------------------------------------------------------------
# netlink clients
# ---------------------------------------------------------------------------

def client(path):
    """A connection to the server at PATH past the handshake: (sock, size,
    transmission flags)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(path)
    magic, opt, gflags = struct.unpack(">QQH", recv_exact(s, 18))
    if magic != NBDMAGIC or opt != IHAVEOPT:
        raise SystemExit("not a newstyle NBD server")
    s.sendall(struct.pack(">I", FIXED_NEWSTYLE | (gflags & NO_ZEROES)))
    s.sendall(struct.pack(">QII", IHAVEOPT, OPT_EXPORT_NAME, 0))
    size, tflags = struct.unpack(">QH", recv_exact(s, 10))
    if not gflags & NO_ZEROES:
        recv_exact(s, 124)
    s.settimeout(None)
    return s, size, tflags


class Genl:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)
        self.sock.setsockopt(270, 11, 1)	# NETLINK_EXT_ACK
        self.fam = family_id(self.sock)
        if self.fam is None:
            raise SystemExit("no nbd netlink family")
        self.seq = 10

    def call(self, cmd, attrs):
        self.seq += 1
        body = struct.pack("=BBH", cmd, 1, 0) + b"".join(attrs)
        msg = struct.pack("=IHHII", 16 + len(body), self.fam,
                          NLM_F_REQUEST | NLM_F_ACK, self.seq, 0) + body
        err, text, _ = transact(self.sock, msg)
        if err == 0:
            return "ok"
        return errno.errorcode.get(-err, str(-err)) + (": " + text
                                                       if text else "")

    def connect(self, index, fds, size, tflags, backend=None):
        items = b"".join(attr(SOCK_ITEM | NESTED,
                              attr(SOCK_FD, struct.pack("=I", fd)))
                         for fd in fds)
        attrs = [attr(A_INDEX, struct.pack("=I", index)),
                 attr(A_SIZE, struct.pack("=Q", size)),
                 attr(A_BLKSIZE, struct.pack("=Q", 4096)),
                 attr(A_TIMEOUT, struct.pack("=Q", 30)),
                 attr(A_SFLAGS, struct.pack("=Q", tflags)),
                 attr(A_SOCKETS | NESTED, items)]
        if backend is not None:
            attrs.append(attr(A_BACKEND, backend.encode() + b"\0"))
        return self.call(GENL_CONNECT, attrs)

    def disconnect(self, index):
        return self.call(GENL_DISCONNECT,
                         [attr(A_INDEX, struct.pack("=I", index))])


def device_free(index):
    """nbdINDEX has no configuration (its pid file is gone)."""
    return not os.path.exists(f"/sys/block/nbd{index}/pid")


def wait_free(index, secs):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if device_free(index):
            return True
        time.sleep(0.05)
    return device_free(index)


def connect_fail(genl, index, path, kind, backend=None):
    s, size, tflags = client(path)
    keep = [s]
    fds = [s.fileno()]
    if kind == "same":
        fds.append(s.fileno())
    elif kind != "none":
        fd, k = make_fd(kind)
        if fd is None:
            raise SystemExit(f"unknown kind {kind}")
        keep.append(k)
        fds.append(fd)
    got = genl.connect(index, fds, size, tflags, backend)
    if got == "ok" and kind == "none":
        genl.disconnect(index)
    del keep
    s.close()
    return got


def cmd_connect_fail(args):
    index, path, kind = int(args[0]), args[1], args[2]
    backend = args[3] if len(args) > 3 else None
    print(connect_fail(Genl(), index, path, kind, backend))


def cmd_backend_loop(args):
    index, path, rounds, prefix = int(args[0]), args[1], int(args[2]), args[3]
    genl = Genl()
    good = bad = retries = 0
    for r in range(rounds):
        name = f"{prefix}-{r}"
        if not wait_free(index, 20):
            print(f"round {r}: nbd{index} still configured")
            bad += 1
            break
        # The stock module lets go of a refused CONNECT's configuration
        # a little later: EBUSY for a moment is no failure.
        end = time.monotonic() + 10
        while True:
            s, size, tflags = client(path)
            got = genl.connect(index, [s.fileno()], size, tflags, name)
            s.close()	# the kernel holds its own reference
            if not got.startswith("EBUSY") or time.monotonic() > end:
                break
            retries += 1
            time.sleep(0.1)
        if got != "ok":
            print(f"round {r}: CONNECT: {got}")
            bad += 1
            continue
        try:
            with open(f"/sys/block/nbd{index}/backend") as f:
                shown = f.read().strip()
        except OSError as e:
            shown = f"({e.strerror})"
        if shown != name:
            print(f"round {r}: backend shows '{shown}', not '{name}'")
            bad += 1
        # A second CONNECT of the busy device, with a backend: EBUSY.
        busy = connect_fail(genl, index, path, "none", name + "-busy")
        if not busy.startswith("EBUSY"):
            print(f"round {r}: CONNECT of the busy device: {busy}")
            bad += 1
        got = genl.disconnect(index)
        if got != "ok":
            print(f"round {r}: DISCONNECT: {got}")
            bad += 1
        # A CONNECT with a backend that fails on its second socket.
        if not wait_free(index, 20):
            print(f"round {r}: nbd{index} still configured after DISCONNECT")
            bad += 1
            break
        got = connect_fail(genl, index, path, "udp", name + "-refused")
        if got == "ok":
            print(f"round {r}: CONNECT with a UDP socket accepted")
            bad += 1
            genl.disconnect(index)
        else:
            good += 1
    print(f"{good} rounds as expected, {bad} problems, {retries} CONNECTs "
          "retried after EBUSY")
    return 1 if bad else 0


NBD_CLEAR_SOCK = 0xab04


def clear_sock(index):
    """Open nbdINDEX, NBD_CLEAR_SOCK, close: 0 or an errno name."""
    import fcntl
    try:
        fd = os.open(f"/dev/nbd{index}", os.O_RDWR)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    try:
        fcntl.ioctl(fd, NBD_CLEAR_SOCK, 0)
        return 0
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        os.close(fd)


def genl_attach(genl, index, path):
    s, size, tflags = client(path)
    got = genl.connect(index, [s.fileno()], size, tflags)
    s.close()
    return got


def cmd_race_clear(args):
    index, path, rounds = int(args[0]), args[1], int(args[2])
    rfd, wfd = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(wfd)
        n = 0
        os.set_blocking(rfd, False)
        while True:
            try:
                if os.read(rfd, 1) == b"":
                    break
            except BlockingIOError:
                pass
            clear_sock(index)
            n += 1
        print(f"{n} open + CLEAR_SOCK + close", flush=True)
        os._exit(0)
    os.close(rfd)
    genl = Genl()
    res = {}
    for r in range(rounds):
        got = genl_attach(genl, index, path)
        res[got] = res.get(got, 0) + 1
        time.sleep(random.uniform(0, 0.2))
        if got == "ok":
            genl.disconnect(index)
        wait_free(index, 20)
    os.close(wfd)
    os.waitpid(child, 0)
    print("CONNECT results: " + ", ".join(f"{k} x{v}" for k, v in res.items()))
    return 0


def cmd_fail_loop(args):
    path, rounds = args[0], int(args[1])
    kinds = ["udp", "pipe", "bad-fd", "unix-dgram", "same", "tcp-unconnected"]
    genl = Genl()
    busy = refused = bad = 0
    for r in range(rounds):
        got = connect_fail(genl, 0, path, "none")
        if got.startswith("EBUSY"):
            busy += 1
        else:
            print(f"round {r}: CONNECT of the busy nbd0: {got}")
            bad += 1
        kind = kinds[r % len(kinds)]
        got = connect_fail(genl, 1, path, kind)
        if got.startswith("E"):
            refused += 1
        else:
            print(f"round {r}: CONNECT of nbd1 with a good and a {kind} "
                  f"socket: {got}")
            genl.disconnect(1)
            bad += 1
    print(f"{busy} EBUSY on nbd0, {refused} refused on nbd1, {bad} problems")
    return 1 if bad else 0


def cmd_clear_loop(args):
    index, path, rounds = int(args[0]), args[1], int(args[2])
    genl = Genl()
    attached = cleared = 0
    errs = {}
    for r in range(rounds):
        if device_free(index):
            if genl_attach(genl, index, path) == "ok":
                attached += 1
        time.sleep(random.uniform(0, 0.4))
        got = clear_sock(index)
        if got == 0:
            cleared += 1
        else:
            errs[got] = errs.get(got, 0) + 1
        wait_free(index, 2)
    print(f"{attached} CONNECTs, {cleared} CLEAR_SOCK returned 0, errors: "
          + (", ".join(f"{k} x{v}" for k, v in errs.items()) or "none"))
    return 0


# ---------------------------------------------------------------------------
# memory hog
# ---------------------------------------------------------------------------

def mem_available_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def cmd_hog(args):
    leave, secs = int(args[0]), float(args[1])
    chunk = 16 << 20
    held = []
    lowest = mem_available_mb()
    end = time.monotonic() + secs
    page = b"\x5a" * 4096
    while time.monotonic() < end:
        avail = mem_available_mb()
        lowest = min(lowest, avail)
        if avail < leave // 2 and held:
            del held[-4:]
        elif avail > leave + 16:
            b = bytearray(chunk)
            for off in range(0, chunk, 4096):
                b[off:off + 4096] = page
            held.append(b)
            continue
        for b in held:	# keep them recently used
            for off in range(0, chunk, 65536):
                b[off] ^= 1
        time.sleep(0.2)
    print(f"held {len(held) * chunk >> 20} MiB at the end, lowest "
          f"MemAvailable {lowest} MiB")
    return 0


def main(argv):
    cmds = {"server": (cmd_server, 2), "connect-fail": (cmd_connect_fail, 3),
            "backend-loop": (cmd_backend_loop, 4), "hog": (cmd_hog, 2),
            "race-clear": (cmd_race_clear, 3), "fail-loop": (cmd_fail_loop, 2),
            "clear-loop": (cmd_clear_loop, 3)}
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 < cmds[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[argv[1]][0](argv[2:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
