// SPDX-License-Identifier: GPL-2.0
/*
 * NBD wire protocol: encoding of requests and decoding of replies.
 */
#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/module.h>
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
