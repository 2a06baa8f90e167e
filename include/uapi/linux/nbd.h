/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Network Block Device: ioctl interface and wire protocol constants.
 *
 * This header is ABI-compatible with the one shipped by upstream Linux:
 * the ioctl numbers, the structure layouts and every value below are part
 * of the contract with nbd-client, qemu-nbd and other userspace.  The
 * protocol itself is specified by the NBD project (doc/proto.md); all
 * integers on the wire are big-endian.
 */
#ifndef _UAPILINUX_NBD_H
#define _UAPILINUX_NBD_H

#include <linux/types.h>

/* ioctls on /dev/nbdX; all of them need CAP_SYS_ADMIN */
#define NBD_SET_SOCK		_IO(0xab, 0)	/* arg: connected socket fd */
#define NBD_SET_BLKSIZE		_IO(0xab, 1)	/* arg: block size in bytes */
#define NBD_SET_SIZE		_IO(0xab, 2)	/* arg: size in bytes */
#define NBD_DO_IT		_IO(0xab, 3)	/* run until disconnected */
#define NBD_CLEAR_SOCK		_IO(0xab, 4)	/* drop the sockets */
#define NBD_CLEAR_QUE		_IO(0xab, 5)	/* obsolete, no-op */
#define NBD_PRINT_DEBUG		_IO(0xab, 6)	/* obsolete, no-op */
#define NBD_SET_SIZE_BLOCKS	_IO(0xab, 7)	/* arg: size in blocks */
#define NBD_DISCONNECT		_IO(0xab, 8)	/* send NBD_CMD_DISC */
#define NBD_SET_TIMEOUT		_IO(0xab, 9)	/* arg: seconds */
#define NBD_SET_FLAGS		_IO(0xab, 10)	/* arg: transmission flags */

/* Request types (the low 16 bits of nbd_request.type) */
enum {
	NBD_CMD_READ = 0,
	NBD_CMD_WRITE = 1,
	NBD_CMD_DISC = 2,
	NBD_CMD_FLUSH = 3,
	NBD_CMD_TRIM = 4,
	NBD_CMD_CACHE = 5,
	NBD_CMD_WRITE_ZEROES = 6,
	NBD_CMD_BLOCK_STATUS = 7,
	NBD_CMD_RESIZE = 8,
};

/* Transmission flags sent by the server for an export */
#define NBD_FLAG_HAS_FLAGS		(1 << 0)  /* flags below are valid */
#define NBD_FLAG_READ_ONLY		(1 << 1)  /* export is read-only */
#define NBD_FLAG_SEND_FLUSH		(1 << 2)  /* NBD_CMD_FLUSH works */
#define NBD_FLAG_SEND_FUA		(1 << 3)  /* NBD_CMD_FLAG_FUA works */
#define NBD_FLAG_ROTATIONAL		(1 << 4)  /* seeks are expensive */
#define NBD_FLAG_SEND_TRIM		(1 << 5)  /* NBD_CMD_TRIM works */
#define NBD_FLAG_SEND_WRITE_ZEROES	(1 << 6)  /* NBD_CMD_WRITE_ZEROES works */
#define NBD_FLAG_SEND_DF		(1 << 7)  /* NBD_CMD_FLAG_DF works */
#define NBD_FLAG_CAN_MULTI_CONN		(1 << 8)  /* consistent across conns */
#define NBD_FLAG_SEND_RESIZE		(1 << 9)  /* NBD_CMD_RESIZE works */
#define NBD_FLAG_SEND_CACHE		(1 << 10) /* NBD_CMD_CACHE works */
#define NBD_FLAG_SEND_FAST_ZERO		(1 << 11) /* NBD_CMD_FLAG_FAST_ZERO */
#define NBD_FLAG_BLOCK_STAT_PAYLOAD	(1 << 12) /* BLOCK_STATUS has payload */

/*
 * Command flags, in the upper 16 bits of nbd_request.type (on the wire
 * they are the u16 that precedes the u16 command type).
 */
#define NBD_CMD_MASK_COMMAND		0x0000ffff
#define NBD_CMD_FLAG_FUA		(1 << 16) /* forced unit access */
#define NBD_CMD_FLAG_NO_HOLE		(1 << 17) /* WRITE_ZEROES: allocate */
#define NBD_CMD_FLAG_DF			(1 << 18) /* don't fragment reply */
#define NBD_CMD_FLAG_REQ_ONE		(1 << 19) /* BLOCK_STATUS: one extent */
#define NBD_CMD_FLAG_FAST_ZERO		(1 << 20) /* fail zeroing if slow */
#define NBD_CMD_FLAG_PAYLOAD_LEN	(1 << 21) /* length is payload size */

/* Client behaviour flags (netlink NBD_ATTR_CLIENT_FLAGS) */
#define NBD_CFLAG_DESTROY_ON_DISCONNECT	(1 << 0) /* remove the device when
						  * it is disconnected
						  */
#define NBD_CFLAG_DISCONNECT_ON_CLOSE	(1 << 1) /* disconnect when the last
						  * opener closes the device
						  */

/* userspace doesn't need the nbd_device structure */

/* Wire magics */
#define NBD_REQUEST_MAGIC		0x25609513
#define NBD_REPLY_MAGIC			0x67446698
#define NBD_STRUCTURED_REPLY_MAGIC	0x668e33ef

/*
 * A request on the wire (28 bytes, then the payload of a write).  The
 * cookie is opaque to the server and echoed in the reply; older userspace
 * calls it handle.
 */
struct nbd_request {
	__be32 magic;	/* NBD_REQUEST_MAGIC */
	__be32 type;	/* command flags << 16 | command type */
	union {
		__be64 cookie;
		char handle[8];
	};
	__be64 from;	/* offset in bytes */
	__be32 len;	/* length in bytes */
} __attribute__((packed));

/*
 * A simple reply on the wire (16 bytes); a successful read is followed by
 * exactly len bytes of data.
 */
struct nbd_reply {
	__be32 magic;	/* NBD_REPLY_MAGIC */
	__be32 error;	/* 0 or an NBD error number */
	union {
		__be64 cookie;
		char handle[8];
	};
};

#endif /* _UAPILINUX_NBD_H */
