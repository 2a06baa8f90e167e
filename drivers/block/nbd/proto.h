/* SPDX-License-Identifier: GPL-2.0 */
/*
 * NBD wire protocol: encoding of requests, decoding of replies, cookies.
 *
 * Pure functions with no device state, so that they can be tested on
 * their own.  All integers on the wire are big-endian.
 */
#ifndef _NBD_PROTO_H
#define _NBD_PROTO_H

#include <linux/types.h>
#include <linux/blk_types.h>
#include <linux/blk-mq.h>

#include "compat.h"

/*
 * Out of tree the target kernel's include/uapi/linux/nbd.h would shadow
 * ours and may lack newer constants: include this tree's copy by path.
 */
#include "../../../include/uapi/linux/nbd.h"

#define NBD_REQUEST_SIZE	28
#define NBD_SIMPLE_REPLY_SIZE	16

/* Error numbers defined by the protocol (not the host's errno values). */
#define NBD_EPERM	1
#define NBD_EIO		5
#define NBD_ENOMEM	12
#define NBD_EINVAL	22
#define NBD_ENOSPC	28
#define NBD_EOVERFLOW	75
#define NBD_ENOTSUP	95
#define NBD_ESHUTDOWN	108

/* Transmission flags this driver acts on; other bits are ignored. */
#define NBD_KNOWN_SERVER_FLAGS						\
	(NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH |	\
	 NBD_FLAG_SEND_FUA | NBD_FLAG_ROTATIONAL | NBD_FLAG_SEND_TRIM |	\
	 NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_DF |		\
	 NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_RESIZE |		\
	 NBD_FLAG_SEND_CACHE | NBD_FLAG_SEND_FAST_ZERO |		\
	 NBD_FLAG_BLOCK_STAT_PAYLOAD)

/*
 * A cookie names one transmission of one request: the blk-mq unique tag
 * (hardware queue << 16 | tag) in the low 32 bits and a generation that
 * changes at every send in the high 32 bits, so that a late reply to an
 * earlier transmission of a reused tag is recognised as stale.
 */
static inline u64 nbd_cookie_pack(u32 gen, u32 unique_tag)
{
	return (u64)gen << 32 | unique_tag;
}

static inline u32 nbd_cookie_gen(u64 cookie)
{
	return cookie >> 32;
}

static inline u32 nbd_cookie_tag(u64 cookie)
{
	return (u32)cookie;
}

/**
 * struct nbd_wire_cmd - what one block request becomes on the wire
 * @type: NBD_CMD_*
 * @flags: command flags (NBD_CMD_FLAG_* >> 16)
 * @offset: byte offset
 * @length: byte length
 */
struct nbd_wire_cmd {
	u16 type;
	u16 flags;
	u64 offset;
	u32 length;
};

int nbd_build_wire_cmd(enum req_op op, blk_opf_t opf, u64 offset, u32 length,
		       u32 server_flags, struct nbd_wire_cmd *out);
void nbd_encode_request(struct nbd_request *req,
			const struct nbd_wire_cmd *cmd, u64 cookie);
int nbd_decode_simple_reply(const struct nbd_reply *reply, u64 *cookie,
			    u32 *error);
blk_status_t nbd_error_to_status(u32 error);
const char *nbd_error_name(u32 error);
const char *nbd_cmd_name(u16 type);

#endif /* _NBD_PROTO_H */
