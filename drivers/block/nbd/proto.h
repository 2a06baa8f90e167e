/* SPDX-License-Identifier: GPL-2.0 */
/*
 * NBD wire protocol: encoding of requests, decoding of replies, cookies.
 *
 * Pure functions with no device state, so that they can be tested on
 * their own.  All integers on the wire are big-endian.
 */
#ifndef _NBD_PROTO_H
#define _NBD_PROTO_H

#include <linux/bits.h>
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
#define NBD_CHUNK_HDR_SIZE	20

/*
 * Structured replies (NBD_OPT_STRUCTURED_REPLY).  Upstream's uapi header
 * has only the magic, and the nbd project's own nbd.h gives BLOCK_STATUS
 * a wrong number: these follow the protocol document.
 */
#define NBD_REPLY_FLAG_DONE		BIT(0)
#define NBD_REPLY_TYPE_NONE		0
#define NBD_REPLY_TYPE_OFFSET_DATA	1
#define NBD_REPLY_TYPE_OFFSET_HOLE	2
#define NBD_REPLY_TYPE_BLOCK_STATUS	5
#define NBD_REPLY_TYPE_BLOCK_STATUS_EXT	6
#define NBD_REPLY_TYPE_ERROR_BIT	BIT(15)
#define NBD_REPLY_TYPE_ERROR		(NBD_REPLY_TYPE_ERROR_BIT + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET	(NBD_REPLY_TYPE_ERROR_BIT + 2)

/* The protocol's limit on an error chunk's message. */
#define NBD_MAX_ERROR_MSG	4096

/**
 * struct nbd_chunk_hdr - a structured reply chunk header on the wire
 * @magic: NBD_STRUCTURED_REPLY_MAGIC
 * @flags: NBD_REPLY_FLAG_*
 * @type: NBD_REPLY_TYPE_*
 * @cookie: the request's cookie
 * @length: length of the payload that follows
 *
 * The first 16 bytes overlay a simple reply: the receiver reads those,
 * tells the two apart by the magic, then reads the last 4.
 */
struct nbd_chunk_hdr {
	__be32 magic;
	__be16 flags;
	__be16 type;
	__be64 cookie;
	__be32 length;
} __packed;

/**
 * struct nbd_chunk - a decoded chunk header
 * @flags: NBD_REPLY_FLAG_*
 * @type: NBD_REPLY_TYPE_*
 * @cookie: the request's cookie
 * @length: payload length
 */
struct nbd_chunk {
	u16 flags;
	u16 type;
	u64 cookie;
	u32 length;
};

/*
 * The byte ranges of a read that its chunks have covered so far, relative
 * to the start of the request: sorted, disjoint, adjacent ones merged, so
 * chunks in order (what every server sends) take one slot.  Chunks in an
 * order that leaves more gaps than that move the read to a bitmap of its
 * 512-byte sectors, allocated then (chunks that are not whole sectors
 * cannot be tracked that way, and are refused).
 */
#define NBD_SR_RANGES	8
#define NBD_SR_BITMAP_SHIFT	SECTOR_SHIFT

/**
 * struct nbd_sr_ranges - what a structured read reply has covered
 * @nr: ranges in use
 * @covered: bytes covered in all
 * @r: the ranges, as [start, end)
 * @bitmap: once the ranges overflowed: one bit per sector covered, or
 *	NULL; freed by nbd_sr_ranges_reset()
 */
struct nbd_sr_ranges {
	u8 nr;
	u32 covered;
	struct {
		u32 start;
		u32 end;
	} r[NBD_SR_RANGES];
	unsigned long *bitmap;
};

/* Why a chunk was refused: nbd_chunk_check() */
enum nbd_chunk_verdict {
	NBD_CHUNK_OK,
	NBD_CHUNK_BAD_TYPE,		/* unknown, bit 15 clear */
	NBD_CHUNK_BLOCK_STATUS,		/* never asked for */
	NBD_CHUNK_NONE_NOT_DONE,
	NBD_CHUNK_NONE_LENGTH,
	NBD_CHUNK_DATA_NOT_READ,	/* OFFSET_DATA/HOLE for a non-read */
	NBD_CHUNK_DATA_SHORT,		/* OFFSET_DATA < 9 bytes */
	NBD_CHUNK_HOLE_LENGTH,		/* OFFSET_HOLE not 12 bytes */
	NBD_CHUNK_ERROR_SHORT,		/* ERROR < 6, ERROR_OFFSET < 14 */
	NBD_CHUNK_TOO_LONG,		/* longer than the request allows */
};

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
void nbd_decode_chunk_hdr(const struct nbd_chunk_hdr *hdr,
			  struct nbd_chunk *out);
enum nbd_chunk_verdict nbd_chunk_check(const struct nbd_chunk *c,
				       u16 cmd_type, u32 cmd_length);
const char *nbd_chunk_verdict_text(enum nbd_chunk_verdict v);
const char *nbd_chunk_type_name(u16 type);
int nbd_sr_range_add(struct nbd_sr_ranges *rs, u64 req_offset, u32 req_length,
		     u64 offset, u32 length, u32 *rel);
void nbd_sr_ranges_reset(struct nbd_sr_ranges *rs);
bool nbd_wire_cmd_obeys(const struct nbd_wire_cmd *cmd, u32 min_block,
			u32 max_payload);
blk_status_t nbd_error_to_status(u32 error);
const char *nbd_error_name(u32 error);
const char *nbd_cmd_name(u16 type);

#endif /* _NBD_PROTO_H */
