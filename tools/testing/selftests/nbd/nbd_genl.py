#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Send an nbd generic netlink CONNECT with a socket of a given kind,
which no client tool does on purpose, and print the kernel's answer.

  nbd_genl.py connect INDEX KIND [SIZE]

KIND as in nbd_ioctl.py: udp, udp-connected, unix-dgram, netlink,
tcp-unconnected, pipe, file, bad-fd; or unix-twice, one connected UNIX
stream socket listed twice.

  nbd_genl.py resize INDEX SIZE

A RECONFIGURE with nothing but NBD_ATTR_INDEX and NBD_ATTR_SIZE_BYTES,
as Ceph 16's rbd-nbd resizes (without the backend identifier).

Both print "ok" or the errno name, followed by the extended ACK message
when the kernel sent one; exit 0 when the kernel refused the request, 1
when it accepted it, 2 on a usage or protocol error.
"""
import errno
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbd_ioctl import make_fd  # noqa: E402

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NLM_F_ACK_TLVS = 0x200
NLM_F_CAPPED = 0x100
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11

NBD_CMD_CONNECT = 1
NBD_CMD_RECONFIGURE = 3
NBD_ATTR_INDEX = 1
NBD_ATTR_SIZE_BYTES = 2
NBD_ATTR_SOCKETS = 7
NBD_SOCK_ITEM = 1
NBD_SOCK_FD = 1
NLA_F_NESTED = 0x8000


def attr(kind, payload):
    length = 4 + len(payload)
    pad = (4 - length % 4) % 4
    return struct.pack("=HH", length, kind) + payload + b"\0" * pad


def message(family, cmd, attrs, seq):
    body = struct.pack("=BBH", cmd, 1, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), family,
                       NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def parse_attrs(data):
    out = {}
    while len(data) >= 4:
        length, kind = struct.unpack("=HH", data[:4])
        if length < 4:
            break
        out[kind & 0x3fff] = data[4:length]
        data = data[(length + 3) & ~3:]
    return out


def transact(sock, msg):
    """Send MSG; return (error, ext-ack message, reply payloads)."""
    sock.send(msg)
    replies = []
    while True:
        data = sock.recv(65536)
        while len(data) >= 16:
            length, mtype, flags, _, _ = struct.unpack("=IHHII", data[:16])
            payload = data[16:length]
            if mtype == NLMSG_ERROR:
                err = struct.unpack("=i", payload[:4])[0]
                text = ""
                if flags & NLM_F_ACK_TLVS:
                    off = 4 + 16
                    if not flags & NLM_F_CAPPED:
                        inner = struct.unpack("=I", payload[4:8])[0]
                        off = 4 + ((inner + 3) & ~3)
                    tlvs = parse_attrs(payload[off:])
                    text = tlvs.get(NLMSGERR_ATTR_MSG, b"").rstrip(b"\0").decode()
                return err, text, replies
            replies.append(payload)
            data = data[(length + 3) & ~3:]


def family_id(sock):
    msg = message(GENL_ID_CTRL, CTRL_CMD_GETFAMILY,
                  [attr(CTRL_ATTR_FAMILY_NAME, b"nbd\0")], 1)
    err, text, replies = transact(sock, msg)
    if err:
        return None
    for r in replies:
        a = parse_attrs(r[4:])
        if CTRL_ATTR_FAMILY_ID in a:
            return struct.unpack("=H", a[CTRL_ATTR_FAMILY_ID][:2])[0]
    return None


def answer(err, text):
    if err == 0:
        print("ok")
        return 1
    name = errno.errorcode.get(-err, str(-err))
    print(name + (": " + text if text else ""))
    return 0


def genl_socket():
    """A generic netlink socket with extended ACKs, and nbd's family."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    fam = family_id(sock)
    if fam is None:
        print("no nbd netlink family", file=sys.stderr)
    return sock, fam


def resize(argv):
    index, size = int(argv[2]), int(argv[3])
    sock, fam = genl_socket()
    if fam is None:
        return 2
    msg = message(fam, NBD_CMD_RECONFIGURE, [
        attr(NBD_ATTR_INDEX, struct.pack("=I", index)),
        attr(NBD_ATTR_SIZE_BYTES, struct.pack("=Q", size)),
    ], 3)
    err, text, _ = transact(sock, msg)
    return answer(err, text)


def main(argv):
    if len(argv) == 4 and argv[1] == "resize":
        return resize(argv)
    if len(argv) not in (4, 5) or argv[1] != "connect":
        print(__doc__, file=sys.stderr)
        return 2
    index, kind = int(argv[2]), argv[3]
    size = int(argv[4]) if len(argv) == 5 else 64 << 20
    twice = kind == "unix-twice"
    if twice:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fd, keep = a.fileno(), [a, b]
    else:
        fd, keep = make_fd(kind)
    if fd is None:
        print("unknown kind %s" % kind, file=sys.stderr)
        return 2
    sock, fam = genl_socket()
    if fam is None:
        return 2
    item = attr(NBD_SOCK_ITEM | NLA_F_NESTED,
                attr(NBD_SOCK_FD, struct.pack("=I", fd)))
    if twice:
        item += item
    msg = message(fam, NBD_CMD_CONNECT, [
        attr(NBD_ATTR_INDEX, struct.pack("=I", index)),
        attr(NBD_ATTR_SIZE_BYTES, struct.pack("=Q", size)),
        attr(NBD_ATTR_SOCKETS | NLA_F_NESTED, item),
    ], 2)
    err, text, _ = transact(sock, msg)
    del keep
    return answer(err, text)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
