#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A mutating NBD proxy: fuzz the reply path of a client through a real server.

    nbd_fuzz_proxy.py --listen unix:PATH|tcp:HOST:PORT
                      --upstream unix:PATH|tcp:HOST:PORT
                      [--rate P] [--seed N] [--paused] [--log FILE]
                      [--stats FILE] [--pidfile FILE] [--stop-file FILE]

Every accepted connection gets its own connection to the upstream server
and is forwarded both ways.  The handshake passes through unchanged, but
is parsed: transmission starts after the server's NBD_REP_ACK to
NBD_OPT_GO or its reply to NBD_OPT_EXPORT_NAME; an acknowledged
NBD_OPT_STRUCTURED_REPLY means structured replies.  (After STARTTLS or
extended headers the bytes are no longer understood: the connection is
forwarded untouched.)

In transmission the client's requests (28-byte headers, write payloads)
are parsed to learn each cookie's command and length, and the server's
replies (simple replies with read payloads, structured chunks with their
lengths) to find every reply header.  Each reply or chunk header is
corrupted with probability --rate: one header field only (magic, error,
cookie; structured flags, type, length), by a bit flip or a boundary
value, never payload bytes, so that a client's data checks keep their
meaning.  The proxy keeps parsing the server's stream as the server sent
it, and keeps forwarding (and mutating) until either side closes; then it
closes both.

Each mutation is logged (--log, one line each) and counted (--stats: a
small key=value file rewritten at every event).  SIGUSR1 stops mutating,
SIGUSR2 starts again (as does removing --stop-file, which stops mutating
while it exists); --paused starts with mutation stopped.  --seed makes
the choices of each connection reproducible for the same byte stream
(connection K uses seed N*1000003+K).

--payload-rate P is for showing that a test catches corruption: it flips
a bit in a read payload with probability P per payload, and neither
SIGUSR1 nor the stop file turns it off.
"""

import argparse
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OPT_REPLY_MAGIC = 0x0003E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698
STRUCTURED_MAGIC = 0x668E33EF
EXTENDED_REQ_MAGIC = 0x21E41C71

OPT_EXPORT_NAME = 1
OPT_STARTTLS = 5
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_EXTENDED_HEADERS = 11
REP_ACK = 1

FLAG_NO_ZEROES = 1 << 1  # handshake flag and client flag alike

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLAG_PAYLOAD_LEN = 1 << 5

CHUNK_FLAG_DONE = 1

ESHUTDOWN = 108
EIO = 5

# How long to go on reading a server's replies once the client is gone.
DRAIN_SECONDS = 60


class Closed(Exception):
    """One side closed (or failed): the connection is over."""


class Passthrough(Exception):
    """The stream is no longer understood: forward it blindly."""


# ---------------------------------------------------------------------------
# Shared state
# ---------------------------------------------------------------------------

class Stats:
    """Counters for the whole proxy, written to --stats at every event."""

    def __init__(self, path, logpath):
        self.lock = threading.Lock()
        self.path = path
        self.log = open(logpath, "a", buffering=1) if logpath else sys.stderr
        self.c = {
            "connections": 0,
            "active": 0,
            "transmission": 0,
            "structured": 0,
            "passthrough": 0,
            "client_passthrough": 0,
            "replies": 0,
            "chunks": 0,
            "requests": 0,
            "mutations": 0,
            "payload_mutations": 0,
        }
        self.kinds = {}
        self.write()

    def add(self, key, n=1):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + n
            if key not in ("replies", "chunks", "requests"):
                self._write()

    def mutation(self, conn, kind, text):
        with self.lock:
            self.c["mutations"] += 1
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            n = self.c["mutations"]
            self._write()
        self.msg("mutation %d conn %d: %s: %s" % (n, conn, kind, text))

    def msg(self, text):
        try:
            self.log.write("%.3f %s\n" % (time.monotonic(), text))
        except (OSError, ValueError):
            pass

    def write(self):
        with self.lock:
            self._write()

    def _write(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w") as f:
                for k, v in self.c.items():
                    f.write("%s=%d\n" % (k, v))
                for k in sorted(self.kinds):
                    f.write("kind.%s=%d\n" % (k, self.kinds[k]))
            os.replace(tmp, self.path)
        except OSError:
            pass


class Control:
    """Whether to mutate now: signals and the stop file."""

    def __init__(self, rate, paused, stop_file):
        self.rate = rate
        self.enabled = not paused
        self.stop_file = stop_file

    def active(self):
        if not self.enabled or self.rate <= 0:
            return False
        if self.stop_file and os.path.exists(self.stop_file):
            return False
        return True


# ---------------------------------------------------------------------------
# Buffered byte streams
# ---------------------------------------------------------------------------

class Pipe:
    """Bytes from one socket to another: buffered reads, batched writes.

    Everything queued for the destination is sent before blocking on the
    source, so the proxy never sits on bytes the other side waits for.
    With "gone" (an Event), a destination that went away is no end: what
    is left is read and dropped until the source ends (draining).
    """

    def __init__(self, src, dst, gone=None):
        self.src = src
        self.dst = dst
        self.gone = gone
        self.buf = bytearray()
        self.pos = 0
        self.out = bytearray()

    def flush(self):
        if self.out:
            if self.gone is not None and self.gone.is_set():
                self.out = bytearray()
                return
            try:
                self.dst.sendall(self.out)
            except OSError as e:
                if self.gone is None:
                    raise Closed("send: %s" % e)
                self.gone.set()
            self.out = bytearray()

    def _fill(self):
        self.flush()
        if self.gone is not None and self.gone.is_set():
            # Draining: the source must end within a while.
            ready, _, _ = select.select([self.src], [], [], DRAIN_SECONDS)
            if not ready:
                raise Closed("drain timed out")
        try:
            data = self.src.recv(262144)
        except OSError as e:
            raise Closed("recv: %s" % e)
        if not data:
            raise Closed("end of stream")
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data

    def read(self, n):
        """Exactly n bytes (not yet forwarded)."""
        while len(self.buf) - self.pos < n:
            self._fill()
        b = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return b

    def send(self, b):
        self.out += b
        if len(self.out) >= 262144:
            self.flush()

    def copy(self, n, mutate=None):
        """Forward n bytes as they are; mutate(offset, view) may change the
        first piece (payload corruption for negative tests only)."""
        while n > 0:
            if self.pos >= len(self.buf):
                self._fill()
            k = min(n, len(self.buf) - self.pos)
            piece = self.buf[self.pos:self.pos + k]
            if mutate:
                mutate(piece)
                mutate = None
            self.out += piece
            self.pos += k
            n -= k
            if len(self.out) >= 262144:
                self.flush()

    def forward(self, n):
        self.send(self.read(n))

    def blind(self):
        """Forward everything until the end."""
        while True:
            if self.pos >= len(self.buf):
                self._fill()
            self.out += self.buf[self.pos:]
            self.buf = bytearray()
            self.pos = 0


# ---------------------------------------------------------------------------
# One proxied connection
# ---------------------------------------------------------------------------

class Connection:
    def __init__(self, num, client, server, args, stats, control):
        self.num = num
        self.client = client
        self.server = server
        self.args = args
        self.stats = stats
        self.control = control
        self.rng = random.Random(args.seed * 1000003 + num)
        self.lock = threading.Lock()
        self.cv = threading.Condition(self.lock)
        # handshake state, shared by the two directions
        self.client_flags = None
        self.sent_opts = []		# options the client sent, in order
        self.outcome = None		# None, "transmission", "options", "blind"
        self.structured = False
        # transmission state
        self.inflight = {}		# cookie -> (command, length)
        self.closed = False
        self.client_gone = threading.Event()
        self.mutations = 0

    # -- helpers -------------------------------------------------------
    def close(self, why):
        """Both sides are done: shut both sockets down."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.cv.notify_all()
        self.stats.msg("conn %d: closing (%s), %d mutations" %
                       (self.num, why, self.mutations))
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def client_closed(self, why):
        """The client is gone: the server gets an end of stream, and its
        replies to what is in flight are read and dropped until it closes
        (a server that gets EPIPE while it answers requests in parallel
        may fall over: nbdkit 1.32 aborts in raw_send_socket)."""
        self.stats.msg("conn %d: client side ended (%s): draining the server" %
                       (self.num, why))
        self.client_gone.set()
        with self.lock:
            self.cv.notify_all()
        try:
            self.client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.server.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def set_outcome(self, what):
        with self.lock:
            self.outcome = what
            self.cv.notify_all()

    def wait_outcome(self):
        with self.lock:
            while self.outcome is None and not self.closed:
                self.cv.wait(1.0)
            if self.closed:
                raise Closed("closed")
            return self.outcome

    def run(self):
        c2s = threading.Thread(target=self._direction, args=(self.c2s,),
                               daemon=True)
        c2s.start()
        self._direction(self.s2c)
        c2s.join()
        for s in (self.client, self.server):
            try:
                s.close()
            except OSError:
                pass
        self.stats.add("active", -1)

    def _direction(self, fn):
        why = "?"
        internal = False
        try:
            fn()
        except Closed as e:
            why = "%s: %s" % (fn.__name__, e)
        except Exception as e:  # a bug here must not kill the proxy
            why = "%s: internal error %r" % (fn.__name__, e)
            internal = True
        if fn == self.c2s and not internal:
            self.client_closed(why)
        else:
            self.close(why)

    # -- client -> server ------------------------------------------------
    def c2s(self):
        p = Pipe(self.client, self.server)
        try:
            self._c2s(p)
        except Passthrough as e:
            self.stats.msg("conn %d: client stream forwarded blindly: %s" %
                           (self.num, e))
            self.stats.add("client_passthrough")
            p.blind()
        finally:
            try:
                p.flush()
            except Closed:
                pass

    def _c2s(self, p):
        flags = p.read(4)
        with self.lock:
            self.client_flags = struct.unpack(">I", flags)[0]
        p.send(flags)
        while True:
            hdr = p.read(16)
            magic, opt, length = struct.unpack(">QII", hdr)
            if magic != IHAVEOPT:
                raise Passthrough("option magic %#x" % magic)
            with self.lock:
                self.outcome = None
                self.sent_opts.append(opt)
            p.send(hdr)
            p.copy(length)
            if opt not in (OPT_GO, OPT_EXPORT_NAME, OPT_STARTTLS,
                           OPT_EXTENDED_HEADERS):
                continue
            # The client waits for the answer to these before it sends
            # anything else: learn what the answer was.
            p.flush()
            what = self.wait_outcome()
            if what == "transmission":
                break
            if what == "blind":
                raise Passthrough("after option %d" % opt)
        self._c2s_requests(p)

    def _c2s_requests(self, p):
        while True:
            hdr = p.read(28)
            magic, flags, cmd, cookie, offset, length = \
                struct.unpack(">IHHQQI", hdr)
            if magic != REQUEST_MAGIC:
                raise Passthrough("request magic %#x" % magic)
            with self.lock:
                if cmd != CMD_DISC:
                    self.inflight[cookie] = (cmd, length, time.monotonic())
            self.stats.add("requests")
            p.send(hdr)
            if cmd == CMD_WRITE or (flags & CMD_FLAG_PAYLOAD_LEN):
                p.copy(length)

    # -- server -> client ------------------------------------------------
    def s2c(self):
        p = Pipe(self.server, self.client, self.client_gone)
        try:
            self._s2c(p)
        except Passthrough as e:
            self.stats.msg("conn %d: server stream forwarded blindly: %s" %
                           (self.num, e))
            self.stats.add("passthrough")
            self.set_outcome("blind")
            p.blind()
        finally:
            try:
                p.flush()
            except Closed:
                pass

    def _s2c(self, p):
        hdr = p.read(18)
        magic, ihave, hflags = struct.unpack(">QQH", hdr)
        if magic != NBDMAGIC or ihave != IHAVEOPT:
            raise Passthrough("not a newstyle server")
        p.send(hdr)
        p.flush()
        while True:
            # An option reply starts with its magic; the reply to
            # NBD_OPT_EXPORT_NAME does not.
            with self.lock:
                while not (self.sent_opts or self.closed or
                           self.client_gone.is_set()):
                    self.cv.wait(1.0)
                if not self.sent_opts:
                    raise Closed("closed in the handshake")
                export_name = self.sent_opts[0] == OPT_EXPORT_NAME
                cflags = self.client_flags or 0
            if export_name:
                n = 10 if (cflags & FLAG_NO_ZEROES) else 134
                p.forward(n)
                p.flush()
                self.set_outcome("transmission")
                break
            hdr = p.read(20)
            magic, opt, rtype, length = struct.unpack(">QIII", hdr)
            if magic != OPT_REPLY_MAGIC:
                raise Passthrough("option reply magic %#x" % magic)
            p.send(hdr)
            p.copy(length)
            if rtype != REP_ACK and rtype < 0x80000000:
                continue		# more replies to this option follow
            with self.lock:
                if self.sent_opts:
                    self.sent_opts.pop(0)
            p.flush()
            if rtype == REP_ACK and opt == OPT_STRUCTURED_REPLY:
                self.structured = True
            if opt == OPT_GO:
                if rtype == REP_ACK:
                    self.set_outcome("transmission")
                    break
                self.set_outcome("options")
            elif opt in (OPT_STARTTLS, OPT_EXTENDED_HEADERS):
                if rtype == REP_ACK:
                    raise Passthrough("option %d acknowledged" % opt)
                self.set_outcome("options")
        self.stats.add("transmission")
        if self.structured:
            self.stats.add("structured")
        self.stats.msg("conn %d: transmission, %s replies" %
                       (self.num, "structured" if self.structured
                        else "simple"))
        self._s2c_replies(p)

    def _lookup(self, cookie, done):
        with self.lock:
            if done:
                return self.inflight.pop(cookie, None)
            return self.inflight.get(cookie)

    def _s2c_replies(self, p):
        while True:
            magic = struct.unpack(">I", p.read(4))[0]
            if magic == SIMPLE_MAGIC:
                rest = p.read(12)
                error, cookie = struct.unpack(">IQ", rest)
                req = self._lookup(cookie, True)
                if req is None:
                    raise Passthrough("simple reply to unknown cookie %#x" %
                                      cookie)
                self.stats.add("replies")
                payload = 0
                if req[0] == CMD_READ and error == 0 and not self.structured:
                    payload = req[1]
                p.send(self._mutate_simple(magic, error, cookie, req))
                p.copy(payload, self._payload_mutator(payload))
            elif magic == STRUCTURED_MAGIC and self.structured:
                rest = p.read(16)
                flags, ctype, cookie, length = struct.unpack(">HHQI", rest)
                req = self._lookup(cookie, flags & CHUNK_FLAG_DONE)
                if req is None:
                    raise Passthrough("chunk for unknown cookie %#x" %
                                      cookie)
                self.stats.add("chunks")
                p.send(self._mutate_chunk(flags, ctype, cookie, length, req))
                pm = None
                if ctype == 1 and length > 8:	# OFFSET_DATA: keep the offset
                    pm = self._payload_mutator(length, 8)
                p.copy(length, pm)
            else:
                raise Passthrough("reply magic %#x" % magic)

    # -- mutations -------------------------------------------------------
    def _payload_mutator(self, length, skip=0):
        rate = self.args.payload_rate
        if length <= skip or rate <= 0 or self.rng.random() >= rate:
            return None
        want = skip + self.rng.randrange(length - skip)
        bit = self.rng.randrange(8)

        def flip(piece):
            # Only the first piece of the payload is offered.
            if len(piece) <= skip:
                return
            i = min(want, len(piece) - 1)
            piece[i] ^= 1 << bit
            self.stats.add("payload_mutations")
            self.stats.msg("conn %d: payload bit flipped at %d of %d" %
                           (self.num, i, length))
        return flip

    def _roll(self):
        return self.control.active() and self.rng.random() < self.control.rate

    def _other_cookie(self, cookie):
        with self.lock:
            others = sorted(c for c in self.inflight if c != cookie)
            if others:
                c = self.rng.choice(others)
                req = self.inflight[c]
                return c, ("another in-flight cookie: %s of %d bytes sent %.3f s ago" %
                           (cmd_name(req[0]), req[1],
                            time.monotonic() - req[2]))
        return cookie ^ 1, "another in-flight cookie (none: low bit flipped)"

    def _cookie(self, cookie):
        r = self.rng
        choice = r.randrange(5)
        if choice == 0:
            return self._other_cookie(cookie)
        if choice == 1:
            return (cookie + (1 << 32)) & (2**64 - 1), "generation + 1"
        if choice == 2:
            return (cookie - (1 << 32)) & (2**64 - 1), "generation - 1"
        if choice == 3:
            return r.getrandbits(64), "random"
        return cookie ^ (1 << r.randrange(64)), "bit flip"

    def _u32(self, old, values):
        r = self.rng
        if r.random() < 0.3:
            b = r.randrange(32)
            return old ^ (1 << b), "bit %d flipped" % b
        v = r.choice([x for x in values if x != old] or [old ^ 1])
        return v, "set"

    def _log(self, kind, old, new, how, req, extra=""):
        self.mutations += 1
        self.stats.mutation(self.num, kind, "%#x -> %#x (%s) in reply to %s of %d bytes%s" %
                            (old, new, how, cmd_name(req[0]), req[1], extra))

    def _mutate_simple(self, magic, error, cookie, req):
        hdr = struct.pack(">IIQ", magic, error, cookie)
        if not self._roll():
            return hdr
        field = self.rng.choice(["magic", "error", "error", "cookie",
                                 "cookie"])
        if field == "magic":
            new, how = self._u32(magic, [0, 0xFFFFFFFF, STRUCTURED_MAGIC,
                                         REQUEST_MAGIC, OPT_REPLY_MAGIC &
                                         0xFFFFFFFF])
            self._log("simple.magic", magic, new, how, req)
            magic = new
        elif field == "error":
            new, how = self._u32(error, [0, EIO, ESHUTDOWN, 0xFFFFFFFF, 22,
                                         28, 1])
            self._log("simple.error", error, new, how, req)
            error = new
        else:
            new, how = self._cookie(cookie)
            self._log("simple.cookie", cookie, new, how, req)
            cookie = new
        return struct.pack(">IIQ", magic, error, cookie)

    def _mutate_chunk(self, flags, ctype, cookie, length, req):
        hdr = struct.pack(">IHHQI", STRUCTURED_MAGIC, flags, ctype, cookie,
                          length)
        if not self._roll():
            return hdr
        magic = STRUCTURED_MAGIC
        r = self.rng
        field = r.choice(["magic", "flags", "type", "type", "cookie",
                          "cookie", "length", "length"])
        extra = " (chunk type %d, flags %#x, length %d)" % (ctype, flags,
                                                            length)
        if field == "magic":
            new, how = self._u32(magic, [0, 0xFFFFFFFF, SIMPLE_MAGIC,
                                         REQUEST_MAGIC])
            self._log("chunk.magic", magic, new, how, req, extra)
            magic = new
        elif field == "flags":
            if r.random() < 0.5:
                new, how = flags ^ CHUNK_FLAG_DONE, "DONE toggled"
            else:
                new, how = r.choice([0, 1, 2, 0x8000, 0xFFFF]), "set"
            self._log("chunk.flags", flags, new, how, req, extra)
            flags = new
        elif field == "type":
            if r.random() < 0.2:
                b = r.randrange(16)
                new, how = ctype ^ (1 << b), "bit %d flipped" % b
            else:
                new = r.choice([x for x in (0, 1, 2, 3, 5, 6, 0x7FFF,
                                            0x8000, 0x8001, 0x8002,
                                            0xFFFF) if x != ctype])
                how = "set"
            self._log("chunk.type", ctype, new, how, req, extra)
            ctype = new
        elif field == "cookie":
            new, how = self._cookie(cookie)
            self._log("chunk.cookie", cookie, new, how, req, extra)
            cookie = new
        else:
            new, how = self._u32(length, [0, 1, 2**31, 2**32 - 1,
                                          length + 1, max(length - 1, 0)])
            self._log("chunk.length", length, new, how, req, extra)
            length = new
        return struct.pack(">IHHQI", magic, flags, ctype, cookie, length)


def cmd_name(cmd):
    names = {0: "READ", 1: "WRITE", 2: "DISC", 3: "FLUSH", 4: "TRIM",
             5: "CACHE", 6: "WRITE_ZEROES", 7: "BLOCK_STATUS"}
    return names.get(cmd, "command %d" % cmd)


# ---------------------------------------------------------------------------
# Sockets and the accept loop
# ---------------------------------------------------------------------------

def parse_addr(s):
    if s.startswith("unix:"):
        return socket.AF_UNIX, s[5:]
    if s.startswith("tcp:"):
        host, _, port = s[4:].rpartition(":")
        return socket.AF_INET, (host or "127.0.0.1", int(port))
    raise argparse.ArgumentTypeError("%s: want unix:PATH or tcp:HOST:PORT" % s)


def connect_upstream(addr):
    fam, a = addr
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(a)
    s.settimeout(None)
    if fam == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, type=parse_addr)
    ap.add_argument("--upstream", required=True, type=parse_addr)
    ap.add_argument("--rate", type=float, default=0.01,
                    help="probability of mutating a reply/chunk header")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--paused", action="store_true",
                    help="start with mutation stopped (SIGUSR2 starts it)")
    ap.add_argument("--stop-file",
                    help="no mutation while this file exists")
    ap.add_argument("--payload-rate", type=float, default=0.0,
                    help="negative tests only: corrupt read payloads")
    ap.add_argument("--log")
    ap.add_argument("--stats")
    ap.add_argument("--pidfile")
    args = ap.parse_args()

    stats = Stats(args.stats, args.log)
    control = Control(args.rate, args.paused, args.stop_file)

    def on_usr1(_sig, _frm):
        control.enabled = False
        stats.msg("SIGUSR1: mutation stopped")

    def on_usr2(_sig, _frm):
        control.enabled = True
        stats.msg("SIGUSR2: mutation started")

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, on_usr2)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    fam, a = args.listen
    ls = socket.socket(fam, socket.SOCK_STREAM)
    if fam == socket.AF_UNIX:
        try:
            os.unlink(a)
        except FileNotFoundError:
            pass
    else:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(a)
    ls.listen(64)
    stats.msg("listening on %s, upstream %s, rate %g, seed %d%s" %
              (a, args.upstream[1], args.rate, args.seed,
               ", paused" if args.paused else ""))
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.replace(args.pidfile + ".tmp", args.pidfile)

    def tick():
        while True:
            time.sleep(2)
            stats.write()

    threading.Thread(target=tick, daemon=True).start()
    num = 0
    while True:
        client, _ = ls.accept()
        num += 1
        if fam == socket.AF_INET:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            server = connect_upstream(args.upstream)
        except OSError as e:
            stats.msg("conn %d: upstream connect failed: %s" % (num, e))
            client.close()
            continue
        stats.add("connections")
        stats.add("active")
        stats.msg("conn %d: accepted" % num)
        conn = Connection(num, client, server, args, stats, control)
        threading.Thread(target=conn.run, daemon=True).start()


if __name__ == "__main__":
    main()
