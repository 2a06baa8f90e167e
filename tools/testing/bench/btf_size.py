#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Print the size of a struct from a loaded module's BTF.

    btf_size.py STRUCT [MODULE]     (MODULE defaults to nbd)

Reads /sys/kernel/btf/MODULE, which is split BTF on top of
/sys/kernel/btf/vmlinux: the module's string offsets start after the
base's strings.  The benchmark uses it for the size of each driver's
per-request data (struct nbd_cmd), which blk-mq allocates for every tag.
"""
import struct
import sys

# bytes that follow struct btf_type for each kind, given vlen
TRAILER = {
    1: lambda v: 4,        # INT
    3: lambda v: 12,       # ARRAY
    4: lambda v: 12 * v,   # STRUCT
    5: lambda v: 12 * v,   # UNION
    6: lambda v: 8 * v,    # ENUM
    13: lambda v: 8 * v,   # FUNC_PROTO
    14: lambda v: 4,       # VAR
    15: lambda v: 12 * v,  # DATASEC
    17: lambda v: 4,       # DECL_TAG
    19: lambda v: 12 * v,  # ENUM64
}


def header(data):
    magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = \
        struct.unpack_from("<HBBIIIII", data)
    if magic != 0xeb9f:
        raise ValueError("not BTF")
    return hdr_len, type_off, type_len, str_off, str_len


def struct_size(name, data, base_str_len):
    hdr_len, type_off, type_len, str_off, str_len = header(data)
    strs = data[hdr_len + str_off:hdr_len + str_off + str_len]
    pos = hdr_len + type_off
    end = pos + type_len
    while pos < end:
        name_off, info, size = struct.unpack_from("<III", data, pos)
        kind = (info >> 24) & 0x1f
        vlen = info & 0xffff
        pos += 12 + TRAILER.get(kind, lambda v: 0)(vlen)
        if kind != 4:
            continue
        off = name_off - base_str_len
        if off < 0:
            continue
        if strs[off:strs.index(b"\0", off)].decode() == name:
            return size
    return None


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    module = sys.argv[2] if len(sys.argv) == 3 else "nbd"
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        base_str_len = header(f.read(64))[4]
    try:
        with open("/sys/kernel/btf/" + module, "rb") as f:
            data = f.read()
    except OSError as e:
        sys.exit("btf_size.py: %s" % e)
    size = struct_size(sys.argv[1], data, base_str_len)
    if size is None:
        sys.exit("btf_size.py: no struct %s in %s" % (sys.argv[1], module))
    print(size)


if __name__ == "__main__":
    main()
