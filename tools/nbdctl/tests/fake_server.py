#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A scripted NBD server that misbehaves on purpose, for nbdctl's tests.

    fake_server.py --mode MODE SOCKET_PATH

Listens on the UNIX socket SOCKET_PATH, serves one connection the way
MODE says, and exits.  The exit status is 0 when the client behaved
(legal client flags, well-formed options, NBD_CMD_DISC after an
EXPORT_NAME fallback), 1 when it did not (the reason goes to stderr), and
2 on a usage error.  Only the Python standard library is used.
"""

import argparse
import os
import socket
import struct
import sys

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OLDSTYLE_MAGIC = 0x00420281861253
REP_MAGIC = 0x0003E889045565A9
REQUEST_MAGIC = 0x25609513

FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_INFO = 6
OPT_GO = 7

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
ERR = 1 << 31
REP_ERR_UNSUP = ERR | 1
REP_ERR_POLICY = ERR | 2
REP_ERR_TLS_REQD = ERR | 5
REP_ERR_UNKNOWN = ERR | 6

INFO_EXPORT = 0
INFO_NAME = 1
INFO_DESCRIPTION = 2
INFO_BLOCK_SIZE = 3

# HAS_FLAGS SEND_FLUSH SEND_FUA CAN_MULTI_CONN SEND_CACHE
EXPORT_FLAGS = 0x0001 | 0x0004 | 0x0008 | 0x0100 | 0x0400
EXPORT_SIZE = 1 << 20
CMD_DISC = 2

MODES = {
    "good": "a well-behaved server with every NBD_INFO item",
    "oldstyle": "oldstyle greeting",
    "garbage": "an HTTP banner instead of a greeting",
    "truncated-greeting": "the greeting cut short, then close",
    "no-fixed-newstyle": "handshake flags without FIXED_NEWSTYLE",
    "bad-reply-magic": "option reply with a wrong magic",
    "option-mismatch": "option reply naming another option",
    "huge-reply": "option reply length 0xffffffff",
    "truncated-info": "NBD_REP_INFO payload cut short, then close",
    "short-info": "NBD_REP_INFO with a 1-byte payload",
    "info-export-bad-length": "NBD_INFO_EXPORT 11 bytes long",
    "bad-block-size": "NBD_INFO_BLOCK_SIZE with minimum 3",
    "bad-block-size-max": "NBD_INFO_BLOCK_SIZE with maximum < preferred",
    "no-export-info": "NBD_REP_ACK without NBD_INFO_EXPORT",
    "unknown-export": "NBD_REP_ERR_UNKNOWN with a message",
    "tls-required": "NBD_REP_ERR_TLS_REQD",
    "policy": "NBD_REP_ERR_POLICY for everything",
    "unknown-error": "an error reply type the client cannot know",
    "hostile-message": "an error message with escapes, 60 KiB long",
    "go-unsupported": "NBD_REP_ERR_UNSUP to INFO/GO; EXPORT_NAME works",
    "go-unsupported-zeroes": "as go-unsupported, NO_ZEROES not offered",
    "close-mid-reply": "close in the middle of a reply header",
    "silence": "accept, then never send anything",
    "list-bad-namelen": "NBD_REP_SERVER whose name length exceeds it",
    "info-size-zero": "INFO says size 0, GO the real size (nbd-server 3.24)",
}


class ClientError(Exception):
    """The client broke the protocol."""


class Server:
    def __init__(self, conn, mode):
        self.conn = conn
        self.mode = mode
        self.no_zeroes = False
        self.offered = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES

    def send(self, data):
        self.conn.sendall(data)

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def reply(self, opt, rtype, data=b"", length=None):
        if length is None:
            length = len(data)
        self.send(struct.pack(">QIII", REP_MAGIC, opt, rtype, length) + data)

    def info(self, opt, itype, data):
        self.reply(opt, REP_INFO, struct.pack(">H", itype) + data)

    def greeting(self):
        flags = self.offered
        if self.mode == "no-fixed-newstyle":
            flags = 0
        if self.mode == "go-unsupported-zeroes":
            flags = FLAG_FIXED_NEWSTYLE
            self.offered = flags
        self.send(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, flags))
        cflags = self.recv(4)
        if cflags is None:
            return False
        (cflags,) = struct.unpack(">I", cflags)
        if cflags & ~self.offered:
            raise ClientError("client flags 0x%x include flags not offered "
                              "(0x%x)" % (cflags, self.offered))
        if not cflags & FLAG_FIXED_NEWSTYLE:
            raise ClientError("client did not set C_FIXED_NEWSTYLE")
        self.no_zeroes = bool(cflags & FLAG_NO_ZEROES)
        return True

    def read_option(self):
        hdr = self.recv(16)
        if hdr is None:
            return None
        magic, opt, length = struct.unpack(">QII", hdr)
        if magic != IHAVEOPT:
            raise ClientError("option magic 0x%x" % magic)
        if length > 65536:
            raise ClientError("option length %d" % length)
        data = self.recv(length) if length else b""
        if data is None:
            raise ClientError("client closed in the middle of an option")
        return opt, data

    def check_info_request(self, data):
        if len(data) < 6:
            raise ClientError("INFO/GO data too short")
        (nlen,) = struct.unpack(">I", data[:4])
        if nlen + 6 > len(data):
            raise ClientError("INFO/GO name length %d too big" % nlen)
        name = data[4:4 + nlen]
        (count,) = struct.unpack(">H", data[4 + nlen:6 + nlen])
        if 6 + nlen + 2 * count != len(data):
            raise ClientError("INFO/GO request count %d does not match "
                              "length %d" % (count, len(data)))
        return name

    def export_info(self, opt):
        self.info(opt, INFO_EXPORT, struct.pack(">QH", EXPORT_SIZE,
                                                EXPORT_FLAGS))

    def handle_info(self, opt, data):
        """INFO or GO; returns True when the transmission phase starts."""
        name = self.check_info_request(data)
        m = self.mode
        if m == "bad-reply-magic":
            self.send(struct.pack(">QIII", 0x1122334455667788, opt,
                                  REP_ACK, 0))
        elif m == "option-mismatch":
            self.reply(OPT_LIST, REP_ACK)
        elif m == "huge-reply":
            self.reply(opt, REP_INFO, b"\0\0", length=0xFFFFFFFF)
        elif m == "truncated-info":
            self.reply(opt, REP_INFO, b"\0\0\0\0\0", length=12)
            self.close()
        elif m == "short-info":
            self.reply(opt, REP_INFO, b"\0")
        elif m == "info-export-bad-length":
            self.info(opt, INFO_EXPORT, struct.pack(">QB", EXPORT_SIZE, 1))
        elif m == "bad-block-size":
            self.export_info(opt)
            self.info(opt, INFO_BLOCK_SIZE, struct.pack(">III", 3, 4096,
                                                        65536))
        elif m == "bad-block-size-max":
            self.export_info(opt)
            self.info(opt, INFO_BLOCK_SIZE, struct.pack(">III", 512, 4096,
                                                        1024))
        elif m == "no-export-info":
            self.info(opt, INFO_NAME, b"x")
            self.reply(opt, REP_ACK)
        elif m == "unknown-export":
            self.reply(opt, REP_ERR_UNKNOWN,
                       b"export '" + name + b"' not found here")
        elif m == "tls-required":
            self.reply(opt, REP_ERR_TLS_REQD, b"start TLS first")
        elif m == "policy":
            self.reply(opt, REP_ERR_POLICY, b"go away")
        elif m == "unknown-error":
            self.reply(opt, ERR | 42)
        elif m == "hostile-message":
            self.reply(opt, ERR | 3,
                       b"\x1b[2J\x1b]0;pwned\x07bad\r\n" + b"A" * 61000)
        elif m in ("go-unsupported", "go-unsupported-zeroes"):
            self.reply(opt, REP_ERR_UNSUP)
        elif m == "info-size-zero":
            size = 0 if opt == OPT_INFO else EXPORT_SIZE
            self.info(opt, INFO_EXPORT, struct.pack(">QH", size,
                                                    EXPORT_FLAGS))
            self.reply(opt, REP_ACK)
            if opt == OPT_GO:
                self.transmission()
                return True
        elif m == "close-mid-reply":
            self.send(struct.pack(">QI", REP_MAGIC, opt))
            self.close()
        else:
            # good: canonical name, description with a terminal escape,
            # block sizes, an unknown info type that must be skipped.
            self.export_info(opt)
            self.info(opt, 42, b"future")
            self.info(opt, INFO_NAME, b"canonical")
            self.info(opt, INFO_DESCRIPTION,
                      b"fake \"disk\"\\ \x1b[31mred\xff")
            self.info(opt, INFO_BLOCK_SIZE, struct.pack(">III", 512, 4096,
                                                        1 << 20))
            self.reply(opt, REP_ACK)
            return opt == OPT_GO
        return False

    def handle_list(self, opt):
        m = self.mode
        if m == "policy":
            self.reply(opt, REP_ERR_POLICY)
        elif m == "list-bad-namelen":
            self.reply(opt, REP_SERVER, struct.pack(">I", 100) + b"short")
        else:
            self.reply(opt, REP_SERVER, struct.pack(">I", 3) + b"one")
            self.reply(opt, REP_SERVER,
                       struct.pack(">I", 3) + b"two" + b"second export")
            self.reply(opt, REP_SERVER, struct.pack(">I", 0))
            self.reply(opt, REP_ACK)

    def export_name(self, data):
        if self.mode not in ("go-unsupported", "go-unsupported-zeroes"):
            self.close()
            return
        reply = struct.pack(">QH", EXPORT_SIZE, EXPORT_FLAGS)
        if not self.no_zeroes:
            reply += bytes(124)
        self.send(reply)
        self.transmission()

    def transmission(self):
        """The client must leave with NBD_CMD_DISC (nbdctl info)."""
        req = self.recv(28)
        if req is None:
            raise ClientError("client closed without NBD_CMD_DISC")
        magic, _flags, cmd = struct.unpack(">IHH", req[:8])
        if magic != REQUEST_MAGIC or cmd != CMD_DISC:
            raise ClientError("expected NBD_CMD_DISC, got magic 0x%x "
                              "type %d" % (magic, cmd))

    def close(self):
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def run(self):
        m = self.mode
        if m == "silence":
            # Wait until the client gives up (or the test's timeout).
            while self.conn.recv(4096):
                pass
            return
        if m == "oldstyle":
            self.send(struct.pack(">QQQH", NBDMAGIC, OLDSTYLE_MAGIC,
                                  EXPORT_SIZE, 0) + bytes(124 + 2))
            return
        if m == "garbage":
            self.send(b"HTTP/1.1 400 Bad Request\r\nServer: fake\r\n\r\n")
            return
        if m == "truncated-greeting":
            self.send(struct.pack(">Q", NBDMAGIC) + b"IHAV")
            return
        if not self.greeting():
            return
        if m == "no-fixed-newstyle":
            return
        while True:
            got = self.read_option()
            if got is None:
                return
            opt, data = got
            if opt == OPT_ABORT:
                self.reply(opt, REP_ACK)
                return
            if opt in (OPT_INFO, OPT_GO):
                if self.handle_info(opt, data):
                    return
            elif opt == OPT_LIST:
                if data:
                    raise ClientError("NBD_OPT_LIST with data")
                self.handle_list(opt)
            elif opt == OPT_EXPORT_NAME:
                self.export_name(data)
                return
            else:
                self.reply(opt, REP_ERR_UNSUP)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", required=True, choices=sorted(MODES))
    ap.add_argument("--timeout", type=float, default=30,
                    help="give up after this many seconds")
    ap.add_argument("socket")
    args = ap.parse_args()

    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.unlink(args.socket)
    except FileNotFoundError:
        pass
    lsock.bind(args.socket)
    lsock.listen(1)
    lsock.settimeout(args.timeout)
    status = 0
    try:
        conn, _ = lsock.accept()
        conn.settimeout(args.timeout)
        with conn:
            Server(conn, args.mode).run()
    except ClientError as e:
        print("fake_server: client error: %s" % e, file=sys.stderr)
        status = 1
    except socket.timeout:
        print("fake_server: timed out", file=sys.stderr)
        status = 1
    except (BrokenPipeError, ConnectionResetError):
        pass    # the client hung up on a misbehaving server: fine
    finally:
        lsock.close()
        try:
            os.unlink(args.socket)
        except FileNotFoundError:
            pass
    return status


if __name__ == "__main__":
    sys.exit(main())
