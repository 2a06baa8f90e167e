#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Issue nbd ioctls that no client tool issues on purpose.

  nbd_ioctl.py DEV clear-sock [COUNT]   NBD_CLEAR_SOCK COUNT times (default 1);
                                        prints how many returned 0 and the
                                        errors seen
  nbd_ioctl.py DEV set-sock KIND...     NBD_SET_SOCK with an fd of each KIND:
                                        udp, udp-connected, pipe, file,
                                        netlink, tcp-unconnected, unix-dgram,
                                        bad-fd; prints "ok" or the errno name
                                        (with one KIND) or "KIND ok|ERRNO"
                                        lines (with more), exits 0 if the
                                        kernel refused every one
  nbd_ioctl.py DEV set-size BYTES       NBD_SET_SIZE; prints "ok" or the errno
                                        name, exits 0 if it was accepted
  nbd_ioctl.py DEV two-closes MODE      open DEV twice and read 4 KiB through
                                        each, then close both: MODE "race"
                                        closes them in two threads at once,
                                        "seq" one after the other, checking
                                        that the device is still connected
                                        (its sysfs size is not 0) after the
                                        first; exits 0 if the reads and that
                                        check succeeded

Exit status 2 on a usage error.
"""
import errno
import fcntl
import mmap
import os
import socket
import sys
import tempfile
import threading

NBD_SET_SOCK = 0xab00
NBD_SET_SIZE = 0xab02
NBD_CLEAR_SOCK = 0xab04


def open_dev(path):
    return os.open(path, os.O_RDWR)


def clear_sock(dev, count):
    fd = open_dev(dev)
    good = 0
    errs = {}
    try:
        for _ in range(count):
            try:
                fcntl.ioctl(fd, NBD_CLEAR_SOCK)
                good += 1
            except OSError as e:
                name = errno.errorcode.get(e.errno, str(e.errno))
                errs[name] = errs.get(name, 0) + 1
    finally:
        os.close(fd)
    print("clear-sock: %d ok, errors %s" % (good, errs or "none"))
    return 0


def make_fd(kind):
    """Return (fd, keep) for KIND; keep holds objects that must stay open."""
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        return s.fileno(), [s]
    if kind == "udp-connected":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", 9))
        return s.fileno(), [s]
    if kind == "unix-dgram":
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        return a.fileno(), [a, b]
    if kind == "tcp-unconnected":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        return s.fileno(), [s]
    if kind == "netlink":
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        return s.fileno(), [s]
    if kind == "pipe":
        r, w = os.pipe()
        return r, [r, w]
    if kind == "file":
        f = tempfile.TemporaryFile()
        return f.fileno(), [f]
    if kind == "bad-fd":
        return 1000000, []
    return None, None


def set_sock(dev, kinds):
    # One process for every kind: a Python start costs seconds on the
    # debug kernel under TCG.
    rc = 0
    for kind in kinds:
        fd, keep = make_fd(kind)
        if fd is None:
            print("unknown kind %s" % kind, file=sys.stderr)
            return 2
        dfd = open_dev(dev)
        try:
            fcntl.ioctl(dfd, NBD_SET_SOCK, fd)
            got = "ok"
            rc = 1
        except OSError as e:
            got = errno.errorcode.get(e.errno, str(e.errno))
        finally:
            os.close(dfd)
            del keep
        print(got if len(kinds) == 1 else "%s %s" % (kind, got))
    return rc


def set_size(dev, size):
    dfd = open_dev(dev)
    try:
        fcntl.ioctl(dfd, NBD_SET_SIZE, size)
        print("ok")
        return 0
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
        return 1
    finally:
        os.close(dfd)


def sysfs_size(dev):
    name = os.path.basename(os.path.realpath(dev))
    with open("/sys/block/%s/size" % name) as f:
        return int(f.read())


def two_closes(dev, mode):
    fds = [os.open(dev, os.O_RDONLY | os.O_DIRECT) for _ in range(2)]
    # O_DIRECT needs an aligned buffer: an mmap'd page is one.
    page = mmap.mmap(-1, 4096)
    try:
        for i, fd in enumerate(fds):
            n = os.preadv(fd, [page], i * 8 * 4096)
            if n != len(page):
                raise OSError(errno.EIO, "read %d of %d bytes through opener %d"
                              % (n, len(page), i + 1))
    except OSError as e:
        for fd in fds:
            os.close(fd)
        print("read failed: %s" % e.strerror)
        return 1
    finally:
        page.close()
    if mode == "seq":
        os.close(fds[0])
        size = sysfs_size(dev)
        os.close(fds[1])
        if size == 0:
            print("the first of two closes disconnected the device")
            return 1
        return 0
    gate = threading.Barrier(2)

    def closer(fd):
        gate.wait()
        os.close(fd)
    threads = [threading.Thread(target=closer, args=(fd,)) for fd in fds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    dev, cmd = argv[1], argv[2]
    if cmd == "clear-sock":
        return clear_sock(dev, int(argv[3]) if len(argv) > 3 else 1)
    if cmd == "set-sock" and len(argv) >= 4:
        return set_sock(dev, argv[3:])
    if cmd == "set-size" and len(argv) == 4:
        return set_size(dev, int(argv[3]))
    if cmd == "two-closes" and len(argv) == 4 and argv[3] in ("race", "seq"):
        return two_closes(dev, argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
