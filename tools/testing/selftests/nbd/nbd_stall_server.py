#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""An NBD server whose requests stall on demand, for nbd_timeout.sh.

It serves a file over a UNIX socket, every connection in its own thread
and numbered in the order it was accepted: c0, c1, ...  Before a request
is served, the server looks for STALL-cN (that connection) and then
STALL-all; the first that exists and holds a number of seconds makes the
request sleep that long first.  Requests of one connection are served in
order, so one stalled request holds up those behind it: the connection
stops answering, as a hung server would.

Why not nbdkit's eval plugin: it runs a shell and dd per request, which
takes about a second per request on the debug kernel, and nbdkit 1.32
can abort when a client drops a connection with requests in flight,
which is what a request timeout does.  Here a dropped connection only
ends its thread.

Usage: nbd_stall_server.py SOCKET FILE STALL_PREFIX
"""

import os
import socket
import struct
import sys
import threading
import time

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_OPT_MAGIC = 0x3E889045565A9
FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_INFO = 6
OPT_GO = 7
REP_ACK = 1
REP_INFO = 3
REP_ERR_UNSUP = 0x80000000 | 1
REP_ERR_INVALID = 0x80000000 | 3
INFO_EXPORT = 0

TFLAG_HAS_FLAGS = 1 << 0
TFLAG_SEND_FLUSH = 1 << 2
TFLAG_CAN_MULTI_CONN = 1 << 8
TFLAGS = TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_CAN_MULTI_CONN

REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
EIO, EINVAL = 5, 22
MAX_OPTION_LEN = 4096
MAX_REQUEST_LEN = 32 << 20


class Hangup(Exception):
    """The client closed the connection or broke the protocol."""


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise Hangup("end of file")
        buf += chunk
    return bytes(buf)


class Server:
    def __init__(self, path, prefix):
        self.fd = os.open(path, os.O_RDWR)
        self.size = os.fstat(self.fd).st_size
        self.prefix = prefix
        self.count = 0

    def stall_of(self, name):
        """Seconds the next request of connection NAME sleeps first."""
        for who in (name, "all"):
            try:
                with open(f"{self.prefix}-{who}") as f:
                    text = f.read().strip()
            except OSError:
                continue
            if text:
                return float(text)
        return 0.0

    def opt_reply(self, sock, opt, rtype, data=b""):
        sock.sendall(struct.pack(">QIII", REPLY_OPT_MAGIC, opt, rtype,
                                 len(data)) + data)

    def handshake(self, sock):
        """Fixed newstyle; True once the transmission phase starts."""
        sock.sendall(struct.pack(">QQH", NBDMAGIC, IHAVEOPT,
                                 FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
        (cflags,) = struct.unpack(">I", recv_exact(sock, 4))
        if cflags & ~(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES):
            raise Hangup(f"unknown client flags {cflags:#x}")
        while True:
            magic, opt, length = struct.unpack(">QII", recv_exact(sock, 16))
            if magic != IHAVEOPT:
                raise Hangup(f"bad option magic {magic:#x}")
            if length > MAX_OPTION_LEN:
                raise Hangup(f"option {opt} of {length} bytes")
            data = recv_exact(sock, length)
            if opt == OPT_EXPORT_NAME:
                tail = b"" if cflags & FLAG_NO_ZEROES else bytes(124)
                sock.sendall(struct.pack(">QH", self.size, TFLAGS) + tail)
                return True
            if opt == OPT_ABORT:
                self.opt_reply(sock, opt, REP_ACK)
                return False
            if opt in (OPT_INFO, OPT_GO):
                if length < 6:
                    self.opt_reply(sock, opt, REP_ERR_INVALID)
                    continue
                info = struct.pack(">HQH", INFO_EXPORT, self.size, TFLAGS)
                self.opt_reply(sock, opt, REP_INFO, info)
                self.opt_reply(sock, opt, REP_ACK)
                if opt == OPT_GO:
                    return True
                continue
            self.opt_reply(sock, opt, REP_ERR_UNSUP)

    def serve(self, sock, name):
        while True:
            hdr = recv_exact(sock, 28)
            magic, flags, cmd, cookie, off, length = \
                struct.unpack(">IHHQQI", hdr)
            if magic != REQUEST_MAGIC:
                raise Hangup(f"bad request magic {magic:#x}")
            if cmd == CMD_DISC:
                log(f"{name}: NBD_CMD_DISC")
                return
            if length > MAX_REQUEST_LEN:
                raise Hangup(f"request of {length} bytes")
            data = recv_exact(sock, length) if cmd == CMD_WRITE else b""
            secs = self.stall_of(name)
            if secs > 0:
                log(f"{name}: stalling a request (cmd {cmd}, offset {off}) "
                    f"for {secs:g} s")
                time.sleep(secs)
            err, payload = 0, b""
            if cmd in (CMD_READ, CMD_WRITE) and off + length > self.size:
                err = EINVAL
            elif cmd == CMD_READ:
                payload = os.pread(self.fd, length, off)
                if len(payload) != length:
                    err, payload = EIO, b""
            elif cmd == CMD_WRITE:
                if os.pwrite(self.fd, data, off) != length:
                    err = EIO
            elif cmd == CMD_FLUSH:
                os.fsync(self.fd)
            else:
                err = EINVAL
            reply = struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, err, cookie)
            sock.sendall(reply + (payload if not err else b""))

    def connection(self, sock, name):
        log(f"{name}: connected")
        try:
            if self.handshake(sock):
                self.serve(sock, name)
        except (Hangup, OSError) as e:
            log(f"{name}: closed ({e})")
        finally:
            sock.close()

    def run(self, path):
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tmp = path + ".tmp"
        if os.path.exists(tmp):
            os.unlink(tmp)
        lsock.bind(tmp)
        lsock.listen(16)
        os.rename(tmp, path)	# the socket appears ready to accept
        log(f"listening on {path}, size {self.size}")
        while True:
            sock, _ = lsock.accept()
            name = f"c{self.count}"
            self.count += 1
            threading.Thread(target=self.connection, args=(sock, name),
                             daemon=True).start()


def main():
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} SOCKET FILE STALL_PREFIX")
    Server(sys.argv[2], sys.argv[3]).run(sys.argv[1])


if __name__ == "__main__":
    main()
