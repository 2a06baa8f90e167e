// SPDX-License-Identifier: GPL-2.0
/*
 * NBD wire protocol: encoding of requests and decoding of replies.
 */
#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/bitmap.h>
#include <linux/blkdev.h>
#include <linux/module.h>
#include <linux/sizes.h>
#include <linux/string.h>
#include <kunit/visibility.h>

#include "proto.h"

static_assert(sizeof(struct nbd_request) == NBD_REQUEST_SIZE);
static_assert(sizeof(struct nbd_reply) == NBD_SIMPLE_REPLY_SIZE);

/**
 * nbd_build_wire_cmd() - map a block request to an NBD command
 * @op: the request's operation
 * @opf: the request's flags (REQ_FUA, REQ_NOUNMAP are looked at)
 * @offset: byte offset of the request
 * @length: byte length of the request
 * @server_flags: the export's transmission flags
 * @out: the command to send
 *
 * Only commands the server advertised are produced: a discard or a
 * write-zeroes the server cannot take, or a write, trim or write-zeroes
 * to a read-only export, is refused here rather than sent.  FLUSH goes to
 * a read-only export that advertises it: fsync() there must succeed.
 *
 * Return: 0, -EOPNOTSUPP for an operation the export does not support, or
 * -EROFS for one that would change a read-only export.
 */
int nbd_build_wire_cmd(enum req_op op, blk_opf_t opf, u64 offset, u32 length,
		       u32 server_flags, struct nbd_wire_cmd *out)
{
	u16 flags = 0;
	u16 type;

	switch (op) {
	case REQ_OP_READ:
		type = NBD_CMD_READ;
		break;
	case REQ_OP_WRITE:
		type = NBD_CMD_WRITE;
		break;
	case REQ_OP_FLUSH:
		if (!(server_flags & NBD_FLAG_SEND_FLUSH))
			return -EOPNOTSUPP;
		type = NBD_CMD_FLUSH;
		offset = 0;
		length = 0;
		break;
	case REQ_OP_DISCARD:
		if (!(server_flags & NBD_FLAG_SEND_TRIM))
			return -EOPNOTSUPP;
		type = NBD_CMD_TRIM;
		break;
	case REQ_OP_WRITE_ZEROES:
		if (!(server_flags & NBD_FLAG_SEND_WRITE_ZEROES))
			return -EOPNOTSUPP;
		type = NBD_CMD_WRITE_ZEROES;
		if (opf & REQ_NOUNMAP)
			flags |= NBD_CMD_FLAG_NO_HOLE >> 16;
		break;
	default:
		return -EOPNOTSUPP;
	}

	if (type != NBD_CMD_READ && type != NBD_CMD_FLUSH &&
	    (server_flags & NBD_FLAG_READ_ONLY))
		return -EROFS;
	if ((opf & REQ_FUA) && type != NBD_CMD_READ &&
	    type != NBD_CMD_FLUSH && (server_flags & NBD_FLAG_SEND_FUA))
		flags |= NBD_CMD_FLAG_FUA >> 16;

	out->type = type;
	out->flags = flags;
	out->offset = offset;
	out->length = length;
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_build_wire_cmd);

/**
 * nbd_encode_request() - fill a request header for the wire
 * @req: the 28-byte header to fill
 * @cmd: the command
 * @cookie: the cookie the server must echo
 */
void nbd_encode_request(struct nbd_request *req,
			const struct nbd_wire_cmd *cmd, u64 cookie)
{
	req->magic = cpu_to_be32(NBD_REQUEST_MAGIC);
	req->type = cpu_to_be32((u32)cmd->flags << 16 | cmd->type);
	req->cookie = cpu_to_be64(cookie);
	req->from = cpu_to_be64(cmd->offset);
	req->len = cpu_to_be32(cmd->length);
}
EXPORT_SYMBOL_IF_KUNIT(nbd_encode_request);

/**
 * nbd_decode_simple_reply() - check and decode a simple reply header
 * @reply: the 16 bytes received
 * @cookie: the cookie it names
 * @error: the error it carries (an NBD error number, 0 for success)
 *
 * Return: 0, or -EBADMSG when the magic is not the simple reply magic.
 */
int nbd_decode_simple_reply(const struct nbd_reply *reply, u64 *cookie,
			    u32 *error)
{
	if (be32_to_cpu(reply->magic) != NBD_REPLY_MAGIC)
		return -EBADMSG;
	*cookie = be64_to_cpu(reply->cookie);
	*error = be32_to_cpu(reply->error);
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_decode_simple_reply);

static_assert(sizeof(struct nbd_chunk_hdr) == NBD_CHUNK_HDR_SIZE);

/**
 * nbd_decode_chunk_hdr() - decode a structured reply chunk header
 * @hdr: the 20 bytes received (the caller has checked the magic)
 * @out: the decoded header
 */
void nbd_decode_chunk_hdr(const struct nbd_chunk_hdr *hdr,
			  struct nbd_chunk *out)
{
	out->flags = be16_to_cpu(hdr->flags);
	out->type = be16_to_cpu(hdr->type);
	out->cookie = be64_to_cpu(hdr->cookie);
	out->length = be32_to_cpu(hdr->length);
}
EXPORT_SYMBOL_IF_KUNIT(nbd_decode_chunk_hdr);

/* Unknown error chunk types carry more than ERROR's fields: up to this. */
#define NBD_MAX_UNKNOWN_ERROR_CHUNK	SZ_64K

/**
 * nbd_chunk_check() - check a chunk header against its request
 * @c: the decoded chunk header
 * @cmd_type: the request's NBD_CMD_*
 * @cmd_length: the request's length
 *
 * What can be told from the header alone: the type is one this driver
 * asked for, and the length is what the type needs and no more than the
 * request allows.  Offsets are checked once they are in.
 *
 * Return: NBD_CHUNK_OK, or what is wrong (a protocol violation).
 */
enum nbd_chunk_verdict nbd_chunk_check(const struct nbd_chunk *c,
				       u16 cmd_type, u32 cmd_length)
{
	switch (c->type) {
	case NBD_REPLY_TYPE_NONE:
		if (!(c->flags & NBD_REPLY_FLAG_DONE))
			return NBD_CHUNK_NONE_NOT_DONE;
		if (c->length)
			return NBD_CHUNK_NONE_LENGTH;
		return NBD_CHUNK_OK;
	case NBD_REPLY_TYPE_OFFSET_DATA:
		if (cmd_type != NBD_CMD_READ)
			return NBD_CHUNK_DATA_NOT_READ;
		if (c->length < 9)
			return NBD_CHUNK_DATA_SHORT;
		if (c->length - 8 > cmd_length)
			return NBD_CHUNK_TOO_LONG;
		return NBD_CHUNK_OK;
	case NBD_REPLY_TYPE_OFFSET_HOLE:
		if (cmd_type != NBD_CMD_READ)
			return NBD_CHUNK_DATA_NOT_READ;
		if (c->length != 12)
			return NBD_CHUNK_HOLE_LENGTH;
		return NBD_CHUNK_OK;
	case NBD_REPLY_TYPE_BLOCK_STATUS:
	case NBD_REPLY_TYPE_BLOCK_STATUS_EXT:
		return NBD_CHUNK_BLOCK_STATUS;
	case NBD_REPLY_TYPE_ERROR:
		if (c->length < 6)
			return NBD_CHUNK_ERROR_SHORT;
		if (c->length > 6 + NBD_MAX_ERROR_MSG)
			return NBD_CHUNK_TOO_LONG;
		return NBD_CHUNK_OK;
	case NBD_REPLY_TYPE_ERROR_OFFSET:
		if (c->length < 14)
			return NBD_CHUNK_ERROR_SHORT;
		if (c->length > 14 + NBD_MAX_ERROR_MSG)
			return NBD_CHUNK_TOO_LONG;
		return NBD_CHUNK_OK;
	default:
		if (!(c->type & NBD_REPLY_TYPE_ERROR_BIT))
			return NBD_CHUNK_BAD_TYPE;
		if (c->length < 6)
			return NBD_CHUNK_ERROR_SHORT;
		if (c->length > NBD_MAX_UNKNOWN_ERROR_CHUNK)
			return NBD_CHUNK_TOO_LONG;
		return NBD_CHUNK_OK;
	}
}
EXPORT_SYMBOL_IF_KUNIT(nbd_chunk_check);

/**
 * nbd_chunk_verdict_text() - what nbd_chunk_check() found, for messages
 * @v: its verdict
 *
 * Return: a static string.
 */
const char *nbd_chunk_verdict_text(enum nbd_chunk_verdict v)
{
	switch (v) {
	case NBD_CHUNK_OK:
		return "valid";
	case NBD_CHUNK_BAD_TYPE:
		return "unknown chunk type";
	case NBD_CHUNK_BLOCK_STATUS:
		return "block status chunk, never asked for";
	case NBD_CHUNK_NONE_NOT_DONE:
		return "NONE chunk without the DONE flag";
	case NBD_CHUNK_NONE_LENGTH:
		return "NONE chunk with a payload";
	case NBD_CHUNK_DATA_NOT_READ:
		return "data or hole chunk for a request other than a read";
	case NBD_CHUNK_DATA_SHORT:
		return "OFFSET_DATA chunk shorter than 9 bytes";
	case NBD_CHUNK_HOLE_LENGTH:
		return "OFFSET_HOLE chunk not 12 bytes long";
	case NBD_CHUNK_ERROR_SHORT:
		return "error chunk too short for its fields";
	case NBD_CHUNK_TOO_LONG:
		return "chunk longer than its request allows";
	}
	return "invalid";
}
EXPORT_SYMBOL_IF_KUNIT(nbd_chunk_verdict_text);

/**
 * nbd_chunk_type_name() - a chunk type's name for messages
 * @type: NBD_REPLY_TYPE_*
 *
 * Return: a static string.
 */
const char *nbd_chunk_type_name(u16 type)
{
	switch (type) {
	case NBD_REPLY_TYPE_NONE:
		return "NONE";
	case NBD_REPLY_TYPE_OFFSET_DATA:
		return "OFFSET_DATA";
	case NBD_REPLY_TYPE_OFFSET_HOLE:
		return "OFFSET_HOLE";
	case NBD_REPLY_TYPE_BLOCK_STATUS:
		return "BLOCK_STATUS";
	case NBD_REPLY_TYPE_BLOCK_STATUS_EXT:
		return "BLOCK_STATUS_EXT";
	case NBD_REPLY_TYPE_ERROR:
		return "ERROR";
	case NBD_REPLY_TYPE_ERROR_OFFSET:
		return "ERROR_OFFSET";
	default:
		return type & NBD_REPLY_TYPE_ERROR_BIT ? "unknown error" :
							"unknown";
	}
}
EXPORT_SYMBOL_IF_KUNIT(nbd_chunk_type_name);

static bool nbd_sr_sectors(u32 start, u32 end)
{
	return IS_ALIGNED(start | end, 1U << NBD_SR_BITMAP_SHIFT);
}

/* Account for [start, end) in the bitmap. */
static int nbd_sr_bitmap_add(struct nbd_sr_ranges *rs, u32 start, u32 end,
			     u32 *rel)
{
	unsigned int s = start >> NBD_SR_BITMAP_SHIFT;
	unsigned int e = end >> NBD_SR_BITMAP_SHIFT;

	if (!nbd_sr_sectors(start, end))
		return -ENOSPC;
	if (find_next_bit(rs->bitmap, e, s) < e)
		return -EEXIST;
	bitmap_set(rs->bitmap, s, e - s);
	rs->covered += end - start;
	*rel = start;
	return 0;
}

/* The ranges are full: move them to a bitmap, then add [start, end). */
static int nbd_sr_to_bitmap(struct nbd_sr_ranges *rs, u32 req_length,
			    u32 start, u32 end, u32 *rel)
{
	unsigned int i;
	int ret;

	if (!nbd_sr_sectors(start, end) ||
	    !IS_ALIGNED(req_length, 1U << NBD_SR_BITMAP_SHIFT))
		return -ENOSPC;
	for (i = 0; i < rs->nr; i++)
		if (!nbd_sr_sectors(rs->r[i].start, rs->r[i].end))
			return -ENOSPC;
	rs->bitmap = bitmap_zalloc(req_length >> NBD_SR_BITMAP_SHIFT,
				   GFP_ATOMIC | __GFP_NOWARN);
	if (!rs->bitmap)
		return -ENOMEM;
	for (i = 0; i < rs->nr; i++)
		bitmap_set(rs->bitmap, rs->r[i].start >> NBD_SR_BITMAP_SHIFT,
			   (rs->r[i].end - rs->r[i].start) >>
			   NBD_SR_BITMAP_SHIFT);
	ret = nbd_sr_bitmap_add(rs, start, end, rel);
	if (ret) {	/* cannot be: the ranges were disjoint from it */
		nbd_sr_ranges_reset(rs);
		return ret;
	}
	return 0;
}

/**
 * nbd_sr_ranges_reset() - forget what a read's chunks covered
 * @rs: the read's ranges (freeing the bitmap, if any)
 */
void nbd_sr_ranges_reset(struct nbd_sr_ranges *rs)
{
	bitmap_free(rs->bitmap);
	rs->bitmap = NULL;
	rs->nr = 0;
	rs->covered = 0;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_sr_ranges_reset);

/**
 * nbd_sr_range_add() - account for a data or hole chunk of a read
 * @rs: what the read's chunks have covered so far
 * @req_offset: the read's offset
 * @req_length: the read's length
 * @offset: the chunk's offset (from the wire)
 * @length: the chunk's data or hole length (not zero)
 * @rel: where the chunk starts in the read, on success
 *
 * The ranges live in @rs until they would leave more than NBD_SR_RANGES
 * separate gaps (no server sends that: they go in order); then a bitmap
 * of the read's sectors takes over (GFP_ATOMIC: this runs in softirq).
 *
 * Return: 0; -ERANGE when the chunk is not inside the read; -EEXIST when
 * it overlaps (or repeats) a chunk before it; -ENOSPC when the bitmap is
 * needed but a chunk is not made of whole sectors; -ENOMEM when the
 * bitmap cannot be allocated.  Nothing is recorded on failure.
 */
int nbd_sr_range_add(struct nbd_sr_ranges *rs, u64 req_offset, u32 req_length,
		     u64 offset, u32 length, u32 *rel)
{
	unsigned int i, pos = 0;
	u32 start, end;
	bool left, right;

	if (offset < req_offset || offset - req_offset > req_length ||
	    !length || length > req_length - (u32)(offset - req_offset))
		return -ERANGE;
	start = offset - req_offset;
	end = start + length;
	if (rs->bitmap)
		return nbd_sr_bitmap_add(rs, start, end, rel);

	for (i = 0; i < rs->nr; i++) {
		if (rs->r[i].start < end && start < rs->r[i].end)
			return -EEXIST;
		if (rs->r[i].end <= start)
			pos = i + 1;
	}
	left = pos > 0 && rs->r[pos - 1].end == start;
	right = pos < rs->nr && rs->r[pos].start == end;

	if (left && right) {
		rs->r[pos - 1].end = rs->r[pos].end;
		memmove(&rs->r[pos], &rs->r[pos + 1],
			(rs->nr - pos - 1) * sizeof(rs->r[0]));
		rs->nr--;
	} else if (left) {
		rs->r[pos - 1].end = end;
	} else if (right) {
		rs->r[pos].start = start;
	} else {
		if (rs->nr == NBD_SR_RANGES)
			return nbd_sr_to_bitmap(rs, req_length, start, end, rel);
		memmove(&rs->r[pos + 1], &rs->r[pos],
			(rs->nr - pos) * sizeof(rs->r[0]));
		rs->r[pos].start = start;
		rs->r[pos].end = end;
		rs->nr++;
	}
	rs->covered += length;
	*rel = start;
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_sr_range_add);

/**
 * nbd_wire_cmd_obeys() - whether a command keeps the server's block sizes
 * @cmd: the command about to be sent
 * @min_block: the export's minimum block size (0: no constraints)
 * @max_payload: the export's maximum payload (0: no limit)
 *
 * The queue limits already make every request fit; this is the last
 * check before the wire, since the protocol forbids sending one that
 * does not once the constraints were asked for in NBD_OPT_GO.
 *
 * Return: true when @cmd may be sent.
 */
bool nbd_wire_cmd_obeys(const struct nbd_wire_cmd *cmd, u32 min_block,
			u32 max_payload)
{
	if (cmd->type == NBD_CMD_FLUSH || cmd->type == NBD_CMD_DISC)
		return true;
	if (min_block &&
	    (!IS_ALIGNED(cmd->offset, min_block) ||
	     !IS_ALIGNED(cmd->length, min_block)))
		return false;
	if (max_payload && cmd->length > max_payload &&
	    (cmd->type == NBD_CMD_READ || cmd->type == NBD_CMD_WRITE))
		return false;
	return true;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_wire_cmd_obeys);

/**
 * nbd_error_to_status() - map an NBD error number to a block status
 * @error: the error from a reply
 *
 * Upstream maps every error to EIO; telling "no space" and "not
 * supported" apart lets filesystems react sensibly (ENOSPC instead of a
 * read-only remount, for example).  The table, with the errno each
 * status becomes, is in Documentation/admin-guide/blockdev/nbd.rst.
 * Unknown numbers are EINVAL's, as the protocol says.  NBD_ESHUTDOWN
 * never gets here: that request is resent (the receiver's business).
 *
 * Return: the block status to complete the request with.
 */
blk_status_t nbd_error_to_status(u32 error)
{
	switch (error) {
	case 0:
		return BLK_STS_OK;
	case NBD_EPERM:
		return BLK_STS_TARGET;		/* EREMOTEIO: refused */
	case NBD_EIO:
	case NBD_EOVERFLOW:			/* only for NBD_CMD_FLAG_DF */
	case NBD_ESHUTDOWN:
		return BLK_STS_IOERR;
	case NBD_ENOMEM:
		return BLK_STS_RESOURCE;	/* ENOMEM */
	case NBD_ENOSPC:
		return BLK_STS_NOSPC;
	case NBD_ENOTSUP:
		return BLK_STS_NOTSUPP;		/* EOPNOTSUPP */
	case NBD_EINVAL:
	default:
		return NBD_STS_INVAL;		/* EINVAL; EIO before 6.11 */
	}
}
EXPORT_SYMBOL_IF_KUNIT(nbd_error_to_status);

/**
 * nbd_error_name() - an NBD error number's name for messages
 * @error: the error from a reply
 *
 * Return: a static string ("unknown" for numbers the protocol does not
 * define).
 */
const char *nbd_error_name(u32 error)
{
	switch (error) {
	case NBD_EPERM:
		return "EPERM";
	case NBD_EIO:
		return "EIO";
	case NBD_ENOMEM:
		return "ENOMEM";
	case NBD_EINVAL:
		return "EINVAL";
	case NBD_ENOSPC:
		return "ENOSPC";
	case NBD_EOVERFLOW:
		return "EOVERFLOW";
	case NBD_ENOTSUP:
		return "ENOTSUP";
	case NBD_ESHUTDOWN:
		return "ESHUTDOWN";
	default:
		return "unknown";
	}
}
EXPORT_SYMBOL_IF_KUNIT(nbd_error_name);

/**
 * nbd_cmd_name() - a command's name for messages
 * @type: NBD_CMD_*
 *
 * Return: a static string.
 */
const char *nbd_cmd_name(u16 type)
{
	switch (type) {
	case NBD_CMD_READ:
		return "read";
	case NBD_CMD_WRITE:
		return "write";
	case NBD_CMD_DISC:
		return "disconnect";
	case NBD_CMD_FLUSH:
		return "flush";
	case NBD_CMD_TRIM:
		return "trim";
	case NBD_CMD_CACHE:
		return "cache";
	case NBD_CMD_WRITE_ZEROES:
		return "write-zeroes";
	case NBD_CMD_BLOCK_STATUS:
		return "block-status";
	case NBD_CMD_RESIZE:
		return "resize";
	default:
		return "unknown";
	}
}
EXPORT_SYMBOL_IF_KUNIT(nbd_cmd_name);
