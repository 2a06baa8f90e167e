// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for the NBD wire protocol: suite nbd_proto.
 */
#include <kunit/test.h>
#include <linux/blk-mq.h>

#include "nbd.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

/* Command mapping: every operation with every flag that matters */

#define ALL_FLAGS (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | \
		   NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES)

struct wire_cmd_case {
	const char *desc;
	enum req_op op;
	blk_opf_t opf;
	u32 server_flags;
	int ret;
	u16 type;
	u16 flags;
};

static const struct wire_cmd_case wire_cmd_cases[] = {
	{ "read", REQ_OP_READ, 0, ALL_FLAGS, 0, NBD_CMD_READ, 0 },
	{ "read ignores FUA", REQ_OP_READ, REQ_FUA, ALL_FLAGS, 0,
	  NBD_CMD_READ, 0 },
	{ "read on a read-only export", REQ_OP_READ, 0,
	  NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY, 0, NBD_CMD_READ, 0 },
	{ "write", REQ_OP_WRITE, 0, ALL_FLAGS, 0, NBD_CMD_WRITE, 0 },
	{ "write FUA", REQ_OP_WRITE, REQ_FUA, ALL_FLAGS, 0, NBD_CMD_WRITE, 1 },
	{ "write FUA, server without FUA", REQ_OP_WRITE, REQ_FUA,
	  NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH, 0, NBD_CMD_WRITE, 0 },
	{ "write on a read-only export", REQ_OP_WRITE, 0,
	  ALL_FLAGS | NBD_FLAG_READ_ONLY, -EROFS },
	{ "flush on a read-only export", REQ_OP_FLUSH, 0,
	  ALL_FLAGS | NBD_FLAG_READ_ONLY, 0, NBD_CMD_FLUSH, 0 },
	{ "write zeroes on a read-only export", REQ_OP_WRITE_ZEROES, 0,
	  ALL_FLAGS | NBD_FLAG_READ_ONLY, -EROFS },
	{ "flush", REQ_OP_FLUSH, 0, ALL_FLAGS, 0, NBD_CMD_FLUSH, 0 },
	{ "flush never carries FUA", REQ_OP_FLUSH, REQ_FUA, ALL_FLAGS, 0,
	  NBD_CMD_FLUSH, 0 },
	{ "flush, server without SEND_FLUSH", REQ_OP_FLUSH, 0,
	  NBD_FLAG_HAS_FLAGS, -EOPNOTSUPP },
	{ "discard", REQ_OP_DISCARD, 0, ALL_FLAGS, 0, NBD_CMD_TRIM, 0 },
	{ "discard FUA", REQ_OP_DISCARD, REQ_FUA, ALL_FLAGS, 0, NBD_CMD_TRIM,
	  1 },
	{ "discard, server without SEND_TRIM", REQ_OP_DISCARD, 0,
	  NBD_FLAG_HAS_FLAGS, -EOPNOTSUPP },
	{ "discard on a read-only export", REQ_OP_DISCARD, 0,
	  ALL_FLAGS | NBD_FLAG_READ_ONLY, -EROFS },
	{ "write zeroes may punch holes", REQ_OP_WRITE_ZEROES, 0, ALL_FLAGS, 0,
	  NBD_CMD_WRITE_ZEROES, 0 },
	{ "write zeroes, REQ_NOUNMAP sets NO_HOLE", REQ_OP_WRITE_ZEROES,
	  REQ_NOUNMAP, ALL_FLAGS, 0, NBD_CMD_WRITE_ZEROES, 2 },
	{ "write zeroes, NO_HOLE and FUA", REQ_OP_WRITE_ZEROES,
	  REQ_NOUNMAP | REQ_FUA, ALL_FLAGS, 0, NBD_CMD_WRITE_ZEROES, 3 },
	{ "write zeroes, server without SEND_WRITE_ZEROES",
	  REQ_OP_WRITE_ZEROES, 0, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_TRIM,
	  -EOPNOTSUPP },
	{ "driver-private operation", REQ_OP_DRV_IN, 0, ALL_FLAGS,
	  -EOPNOTSUPP },
	{ "secure erase", REQ_OP_SECURE_ERASE, 0, ALL_FLAGS, -EOPNOTSUPP },
};

static void wire_cmd_desc(const struct wire_cmd_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(wire_cmd, wire_cmd_cases, wire_cmd_desc);

static void nbd_proto_build_wire_cmd(struct kunit *test)
{
	const struct wire_cmd_case *c = test->param_value;
	struct nbd_wire_cmd out = { .type = 0xffff, .flags = 0xffff };
	int ret;

	/* Act */
	ret = nbd_build_wire_cmd(c->op, c->opf, 4096, 8192, c->server_flags,
				 &out);

	/* Assert */
	KUNIT_ASSERT_EQ(test, ret, c->ret);
	if (ret)
		return;
	KUNIT_EXPECT_EQ(test, out.type, c->type);
	KUNIT_EXPECT_EQ(test, out.flags, c->flags);
	if (c->type == NBD_CMD_FLUSH) {
		KUNIT_EXPECT_EQ(test, out.offset, 0);
		KUNIT_EXPECT_EQ(test, out.length, 0);
	} else {
		KUNIT_EXPECT_EQ(test, out.offset, 4096);
		KUNIT_EXPECT_EQ(test, out.length, 8192);
	}
}

/* Request encoding, byte-exact */

struct encode_case {
	const char *desc;
	struct nbd_wire_cmd cmd;
	u64 cookie;
	u8 bytes[NBD_REQUEST_SIZE];
};

static const struct encode_case encode_cases[] = {
	{ "read", { NBD_CMD_READ, 0, 0x1122334455667788ULL, 0x0a0b0c0d },
	  0x0102030405060708ULL,
	  { 0x25, 0x60, 0x95, 0x13, 0x00, 0x00, 0x00, 0x00,
	    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
	    0x0a, 0x0b, 0x0c, 0x0d } },
	{ "write FUA", { NBD_CMD_WRITE, 1, 512, 4096 }, 0xffffffff00000000ULL,
	  { 0x25, 0x60, 0x95, 0x13, 0x00, 0x01, 0x00, 0x01,
	    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
	    0x00, 0x00, 0x10, 0x00 } },
	{ "flush", { NBD_CMD_FLUSH, 0, 0, 0 }, 0x00000001ffff007fULL,
	  { 0x25, 0x60, 0x95, 0x13, 0x00, 0x00, 0x00, 0x03,
	    0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0x00, 0x7f,
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x00, 0x00, 0x00 } },
	{ "trim at the end of a 2^63 byte export",
	  { NBD_CMD_TRIM, 0, 0x7ffffffffffff000ULL, 0xfffff000 }, 42,
	  { 0x25, 0x60, 0x95, 0x13, 0x00, 0x00, 0x00, 0x04,
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,
	    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0x00,
	    0xff, 0xff, 0xf0, 0x00 } },
	{ "write zeroes NO_HOLE FUA", { NBD_CMD_WRITE_ZEROES, 3, 1 << 20,
	  1 << 16 }, 7,
	  { 0x25, 0x60, 0x95, 0x13, 0x00, 0x03, 0x00, 0x06,
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
	    0x00, 0x01, 0x00, 0x00 } },
	{ "disconnect", { NBD_CMD_DISC, 0, 0, 0 }, 0,
	  { 0x25, 0x60, 0x95, 0x13, 0x00, 0x00, 0x00, 0x02,
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x00, 0x00, 0x00 } },
};

static void encode_desc(const struct encode_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(encode, encode_cases, encode_desc);

static void nbd_proto_encode_request(struct kunit *test)
{
	const struct encode_case *c = test->param_value;
	struct nbd_request req;

	/* Arrange */
	memset(&req, 0xa5, sizeof(req));

	/* Act */
	nbd_encode_request(&req, &c->cmd, c->cookie);

	/* Assert */
	KUNIT_EXPECT_MEMEQ(test, &req, c->bytes, NBD_REQUEST_SIZE);
}

/* Reply decoding, and the rejection table */

struct reply_case {
	const char *desc;
	u8 bytes[NBD_SIMPLE_REPLY_SIZE];
	int ret;
	u64 cookie;
	u32 error;
};

static const struct reply_case reply_cases[] = {
	{ "success", { 0x67, 0x44, 0x66, 0x98, 0, 0, 0, 0,
		       1, 2, 3, 4, 5, 6, 7, 8 }, 0, 0x0102030405060708ULL, 0 },
	{ "EIO", { 0x67, 0x44, 0x66, 0x98, 0, 0, 0, 5,
		   0, 0, 0, 0, 0, 0, 0, 1 }, 0, 1, NBD_EIO },
	{ "error beyond the protocol's list", { 0x67, 0x44, 0x66, 0x98,
		0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0 }, 0, 0,
		0xffffffff },
	{ "zero magic", { 0 }, -EBADMSG },
	{ "request magic", { 0x25, 0x60, 0x95, 0x13 }, -EBADMSG },
	{ "byte-swapped magic", { 0x98, 0x66, 0x44, 0x67 }, -EBADMSG },
	{ "structured reply magic (not negotiated)",
	  { 0x66, 0x8e, 0x33, 0xef }, -EBADMSG },
	{ "magic off by one bit", { 0x67, 0x44, 0x66, 0x99 }, -EBADMSG },
	{ "extended reply magic (not negotiated)",
	  { 0x6e, 0x8a, 0x27, 0x8c }, -EBADMSG },
};

static void reply_desc(const struct reply_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(reply, reply_cases, reply_desc);

static void nbd_proto_decode_reply(struct kunit *test)
{
	const struct reply_case *c = test->param_value;
	u64 cookie = 0xdead;
	u32 error = 0xbeef;
	int ret;

	/* Act */
	ret = nbd_decode_simple_reply((const struct nbd_reply *)c->bytes,
				      &cookie, &error);

	/* Assert */
	KUNIT_ASSERT_EQ(test, ret, c->ret);
	if (ret)
		return;
	KUNIT_EXPECT_EQ(test, cookie, c->cookie);
	KUNIT_EXPECT_EQ(test, error, c->error);
}

/* Cookies */

struct cookie_case {
	const char *desc;
	u32 gen;
	u16 hwq;
	u16 tag;
};

static const struct cookie_case cookie_cases[] = {
	{ "first send", 1, 0, 0 },
	{ "generation 0 (after wrapping)", 0, 0, 5 },
	{ "largest generation", U32_MAX, 3, 127 },
	{ "largest queue and tag", 77, 0xffff, 0xffff },
	{ "queue 1 tag 0", 2, 1, 0 },
};

static void cookie_desc(const struct cookie_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(cookie, cookie_cases, cookie_desc);

static void nbd_proto_cookie_roundtrip(struct kunit *test)
{
	const struct cookie_case *c = test->param_value;
	u32 unique = (u32)c->hwq << BLK_MQ_UNIQUE_TAG_BITS | c->tag;
	u64 cookie;

	/* Act */
	cookie = nbd_cookie_pack(c->gen, unique);

	/* Assert */
	KUNIT_EXPECT_EQ(test, nbd_cookie_gen(cookie), c->gen);
	KUNIT_EXPECT_EQ(test, nbd_cookie_tag(cookie), unique);
	KUNIT_EXPECT_EQ(test, blk_mq_unique_tag_to_hwq(nbd_cookie_tag(cookie)),
			c->hwq);
	KUNIT_EXPECT_EQ(test, blk_mq_unique_tag_to_tag(nbd_cookie_tag(cookie)),
			c->tag);
}

static void nbd_proto_cookie_generation_wrap(struct kunit *test)
{
	u32 gen = U32_MAX;
	u64 before, after;

	/* Arrange */
	before = nbd_cookie_pack(gen, 0x00010002);

	/* Act: the generation wraps at the next send */
	gen++;
	after = nbd_cookie_pack(gen, 0x00010002);

	/* Assert: the two transmissions stay distinguishable */
	KUNIT_EXPECT_NE(test, before, after);
	KUNIT_EXPECT_EQ(test, nbd_cookie_gen(after), 0);
	KUNIT_EXPECT_EQ(test, nbd_cookie_tag(before), nbd_cookie_tag(after));
}

/* Errors and names */

struct errno_case {
	const char *desc;
	u32 error;
	blk_status_t status;
	int host_errno;		/* what the application sees */
	const char *name;
};

/* The table of Documentation/admin-guide/blockdev/nbd.rst. */
static const struct errno_case errno_cases[] = {
	{ "success", 0, BLK_STS_OK, 0, "unknown" },
	{ "EPERM", NBD_EPERM, BLK_STS_TARGET, -EREMOTEIO, "EPERM" },
	{ "EIO", NBD_EIO, BLK_STS_IOERR, -EIO, "EIO" },
	{ "ENOMEM", NBD_ENOMEM, BLK_STS_RESOURCE, -ENOMEM, "ENOMEM" },
	{ "EINVAL", NBD_EINVAL, NBD_STS_INVAL, -EINVAL, "EINVAL" },
	{ "ENOSPC", NBD_ENOSPC, BLK_STS_NOSPC, -ENOSPC, "ENOSPC" },
	{ "EOVERFLOW", NBD_EOVERFLOW, BLK_STS_IOERR, -EIO, "EOVERFLOW" },
	{ "ENOTSUP", NBD_ENOTSUP, BLK_STS_NOTSUPP, -EOPNOTSUPP, "ENOTSUP" },
	{ "ESHUTDOWN", NBD_ESHUTDOWN, BLK_STS_IOERR, -EIO, "ESHUTDOWN" },
	{ "unknown is EINVAL", 12345, NBD_STS_INVAL, -EINVAL, "unknown" },
};

static void errno_desc(const struct errno_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(errno, errno_cases, errno_desc);

static void nbd_proto_error_to_status(struct kunit *test)
{
	const struct errno_case *c = test->param_value;

	KUNIT_EXPECT_EQ(test, nbd_error_to_status(c->error), c->status);
	KUNIT_EXPECT_EQ(test, blk_status_to_errno(nbd_error_to_status(c->error)),
			c->host_errno);
	KUNIT_EXPECT_STREQ(test, nbd_error_name(c->error), c->name);
}

static void nbd_proto_cmd_names(struct kunit *test)
{
	KUNIT_EXPECT_STREQ(test, nbd_cmd_name(NBD_CMD_READ), "read");
	KUNIT_EXPECT_STREQ(test, nbd_cmd_name(NBD_CMD_WRITE), "write");
	KUNIT_EXPECT_STREQ(test, nbd_cmd_name(NBD_CMD_DISC), "disconnect");
	KUNIT_EXPECT_STREQ(test, nbd_cmd_name(NBD_CMD_FLUSH), "flush");
	KUNIT_EXPECT_STREQ(test, nbd_cmd_name(NBD_CMD_TRIM), "trim");
	KUNIT_EXPECT_STREQ(test, nbd_cmd_name(NBD_CMD_CACHE), "cache");
	KUNIT_EXPECT_STREQ(test, nbd_cmd_name(NBD_CMD_WRITE_ZEROES),
			   "write-zeroes");
	KUNIT_EXPECT_STREQ(test, nbd_cmd_name(NBD_CMD_BLOCK_STATUS),
			   "block-status");
	KUNIT_EXPECT_STREQ(test, nbd_cmd_name(NBD_CMD_RESIZE), "resize");
	KUNIT_EXPECT_STREQ(test, nbd_cmd_name(99), "unknown");
}

/* Transmission flags to queue limits */

struct limits_case {
	const char *desc;
	u32 flags;
	unsigned int blksize;
	struct nbd_qlimits want;
};

#define MAX_SECTORS(bs) (round_down(U32_MAX, (bs)) >> SECTOR_SHIFT)

static const struct limits_case limits_cases[] = {
	{ "no flags", NBD_FLAG_HAS_FLAGS, 512,
	  { 512, NBD_MAX_HW_SECTORS, 0, 0, false, false, false } },
	{ "flush only", NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH, 4096,
	  { 4096, NBD_MAX_HW_SECTORS, 0, 0, true, false, false } },
	{ "flush and FUA", NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA, 4096,
	  { 4096, NBD_MAX_HW_SECTORS, 0, 0, true, true, false } },
	{ "FUA without flush is ignored", NBD_FLAG_SEND_FUA, 1024,
	  { 1024, NBD_MAX_HW_SECTORS, 0, 0, false, false, false } },
	{ "trim", NBD_FLAG_SEND_TRIM, 4096,
	  { 4096, NBD_MAX_HW_SECTORS, MAX_SECTORS(4096), 0, false, false,
	    false } },
	{ "write zeroes", NBD_FLAG_SEND_WRITE_ZEROES, 512,
	  { 512, NBD_MAX_HW_SECTORS, 0, MAX_SECTORS(512), false, false,
	    false } },
	{ "rotational", NBD_FLAG_ROTATIONAL, 2048,
	  { 2048, NBD_MAX_HW_SECTORS, 0, 0, false, false, true } },
	{ "bit 10 (SEND_CACHE) is not CAN_MULTI_CONN and changes nothing",
	  NBD_FLAG_SEND_CACHE, 4096,
	  { 4096, NBD_MAX_HW_SECTORS, 0, 0, false, false, false } },
};

static void limits_desc(const struct limits_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(limits, limits_cases, limits_desc);

static void nbd_proto_flags_to_limits(struct kunit *test)
{
	const struct limits_case *c = test->param_value;
	struct nbd_qlimits l;

	/* Act */
	nbd_flags_to_qlimits(c->flags, c->blksize, &l);

	/* Assert */
	KUNIT_EXPECT_EQ(test, l.blksize, c->want.blksize);
	KUNIT_EXPECT_EQ(test, l.max_hw_sectors, c->want.max_hw_sectors);
	KUNIT_EXPECT_EQ(test, l.max_discard_sectors,
			c->want.max_discard_sectors);
	KUNIT_EXPECT_EQ(test, l.max_write_zeroes_sectors,
			c->want.max_write_zeroes_sectors);
	KUNIT_EXPECT_EQ(test, l.write_cache, c->want.write_cache);
	KUNIT_EXPECT_EQ(test, l.fua, c->want.fua);
	KUNIT_EXPECT_EQ(test, l.rotational, c->want.rotational);
	/* A discard or write-zeroes never overflows the 32-bit length. */
	KUNIT_EXPECT_LE(test, (u64)l.max_discard_sectors << SECTOR_SHIFT,
			(u64)U32_MAX);
}

static void nbd_proto_multi_conn_bit(struct kunit *test)
{
	/* A QEMU release once put SEND_CACHE at bit 8: test the values. */
	KUNIT_EXPECT_EQ(test, NBD_FLAG_CAN_MULTI_CONN, 1 << 8);
	KUNIT_EXPECT_EQ(test, NBD_FLAG_SEND_CACHE, 1 << 10);
	KUNIT_EXPECT_EQ(test, NBD_CMD_FLAG_FUA, 1 << 16);
	KUNIT_EXPECT_EQ(test, NBD_CMD_FLAG_NO_HOLE, 1 << 17);
}

/* Structured reply chunk headers */

struct chunk_hdr_case {
	const char *desc;
	u8 bytes[NBD_CHUNK_HDR_SIZE];
	u16 flags;
	u16 type;
	u64 cookie;
	u32 length;
};

static const struct chunk_hdr_case chunk_hdr_cases[] = {
	{ "OFFSET_DATA with DONE",
	  { 0x66, 0x8e, 0x33, 0xef, 0x00, 0x01, 0x00, 0x01,
	    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	    0x0a, 0x0b, 0x0c, 0x0d },
	  NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
	  0x0102030405060708ULL, 0x0a0b0c0d },
	{ "every byte different",
	  { 0x66, 0x8e, 0x33, 0xef, 0x12, 0x34, 0x56, 0x78,
	    0x9a, 0xbc, 0xde, 0xf0, 0x11, 0x22, 0x33, 0x44,
	    0x55, 0x66, 0x77, 0x88 },
	  0x1234, 0x5678, 0x9abcdef011223344ULL, 0x55667788 },
	{ "ERROR_OFFSET, high bits set",
	  { 0x66, 0x8e, 0x33, 0xef, 0x80, 0x00, 0x80, 0x02,
	    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
	    0xff, 0xff, 0xff, 0xff },
	  0x8000, NBD_REPLY_TYPE_ERROR_OFFSET, 0xffffffff00000000ULL,
	  0xffffffff },
	{ "NONE, all zero", { 0x66, 0x8e, 0x33, 0xef }, 0,
	  NBD_REPLY_TYPE_NONE, 0, 0 },
};

static void chunk_hdr_desc(const struct chunk_hdr_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(chunk_hdr, chunk_hdr_cases, chunk_hdr_desc);

static void nbd_proto_decode_chunk_hdr(struct kunit *test)
{
	const struct chunk_hdr_case *c = test->param_value;
	struct nbd_chunk out;

	/* Arrange */
	memset(&out, 0xa5, sizeof(out));

	/* Act */
	nbd_decode_chunk_hdr((const struct nbd_chunk_hdr *)c->bytes, &out);

	/* Assert */
	KUNIT_EXPECT_EQ(test, out.flags, c->flags);
	KUNIT_EXPECT_EQ(test, out.type, c->type);
	KUNIT_EXPECT_EQ(test, out.cookie, c->cookie);
	KUNIT_EXPECT_EQ(test, out.length, c->length);
}

static void nbd_proto_chunk_hdr_layout(struct kunit *test)
{
	/* 20 bytes; the first 16 overlay a simple reply (see proto.h). */
	KUNIT_EXPECT_EQ(test, sizeof(struct nbd_chunk_hdr), 20);
	KUNIT_EXPECT_EQ(test, sizeof(struct nbd_chunk_hdr), NBD_CHUNK_HDR_SIZE);
	KUNIT_EXPECT_EQ(test, offsetof(struct nbd_chunk_hdr, magic), 0);
	KUNIT_EXPECT_EQ(test, offsetof(struct nbd_chunk_hdr, flags), 4);
	KUNIT_EXPECT_EQ(test, offsetof(struct nbd_chunk_hdr, type), 6);
	KUNIT_EXPECT_EQ(test, offsetof(struct nbd_chunk_hdr, cookie), 8);
	KUNIT_EXPECT_EQ(test, offsetof(struct nbd_chunk_hdr, length),
			NBD_SIMPLE_REPLY_SIZE);
}

/* Chunk headers against their request: one case per verdict at least */

#define CHUNK_REQ_LEN	4096	/* the length of the read in the table */

struct chunk_check_case {
	const char *desc;
	u16 flags;
	u16 type;
	u32 length;
	u16 cmd_type;
	u32 cmd_length;
	enum nbd_chunk_verdict want;
};

static const struct chunk_check_case chunk_check_cases[] = {
	{ "NONE with DONE, no payload", NBD_REPLY_FLAG_DONE,
	  NBD_REPLY_TYPE_NONE, 0, NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_OK },
	{ "NONE with DONE for a write", NBD_REPLY_FLAG_DONE,
	  NBD_REPLY_TYPE_NONE, 0, NBD_CMD_WRITE, CHUNK_REQ_LEN, NBD_CHUNK_OK },
	{ "NONE without DONE", 0, NBD_REPLY_TYPE_NONE, 0, NBD_CMD_READ,
	  CHUNK_REQ_LEN, NBD_CHUNK_NONE_NOT_DONE },
	{ "NONE with a payload", NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 4,
	  NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_NONE_LENGTH },
	{ "OFFSET_DATA of 1 byte (9)", 0, NBD_REPLY_TYPE_OFFSET_DATA, 9,
	  NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_OK },
	{ "OFFSET_DATA without data (8)", 0, NBD_REPLY_TYPE_OFFSET_DATA, 8,
	  NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_DATA_SHORT },
	{ "OFFSET_DATA of nothing (0)", NBD_REPLY_FLAG_DONE,
	  NBD_REPLY_TYPE_OFFSET_DATA, 0, NBD_CMD_READ, CHUNK_REQ_LEN,
	  NBD_CHUNK_DATA_SHORT },
	{ "OFFSET_DATA of the whole read (8 + length)", NBD_REPLY_FLAG_DONE,
	  NBD_REPLY_TYPE_OFFSET_DATA, 8 + CHUNK_REQ_LEN, NBD_CMD_READ,
	  CHUNK_REQ_LEN, NBD_CHUNK_OK },
	{ "OFFSET_DATA 1 byte longer than the read (9 + length)", 0,
	  NBD_REPLY_TYPE_OFFSET_DATA, 9 + CHUNK_REQ_LEN, NBD_CMD_READ,
	  CHUNK_REQ_LEN, NBD_CHUNK_TOO_LONG },
	{ "OFFSET_DATA of 4 GiB for a read of 4 KiB", 0,
	  NBD_REPLY_TYPE_OFFSET_DATA, U32_MAX, NBD_CMD_READ, CHUNK_REQ_LEN,
	  NBD_CHUNK_TOO_LONG },
	{ "OFFSET_DATA for a write", 0, NBD_REPLY_TYPE_OFFSET_DATA,
	  9, NBD_CMD_WRITE, CHUNK_REQ_LEN, NBD_CHUNK_DATA_NOT_READ },
	{ "OFFSET_HOLE (12)", 0, NBD_REPLY_TYPE_OFFSET_HOLE, 12, NBD_CMD_READ,
	  CHUNK_REQ_LEN, NBD_CHUNK_OK },
	{ "OFFSET_HOLE of 11", 0, NBD_REPLY_TYPE_OFFSET_HOLE, 11,
	  NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_HOLE_LENGTH },
	{ "OFFSET_HOLE of 13", 0, NBD_REPLY_TYPE_OFFSET_HOLE, 13,
	  NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_HOLE_LENGTH },
	{ "OFFSET_HOLE for a flush", NBD_REPLY_FLAG_DONE,
	  NBD_REPLY_TYPE_OFFSET_HOLE, 12, NBD_CMD_FLUSH, 0,
	  NBD_CHUNK_DATA_NOT_READ },
	{ "BLOCK_STATUS (5)", 0, NBD_REPLY_TYPE_BLOCK_STATUS, 12,
	  NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_BLOCK_STATUS },
	{ "BLOCK_STATUS_EXT (6)", NBD_REPLY_FLAG_DONE,
	  NBD_REPLY_TYPE_BLOCK_STATUS_EXT, 20, NBD_CMD_READ, CHUNK_REQ_LEN,
	  NBD_CHUNK_BLOCK_STATUS },
	{ "ERROR without a message (6)", NBD_REPLY_FLAG_DONE,
	  NBD_REPLY_TYPE_ERROR, 6, NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_OK },
	{ "ERROR for a write", NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, 6,
	  NBD_CMD_WRITE, CHUNK_REQ_LEN, NBD_CHUNK_OK },
	{ "ERROR of 5", 0, NBD_REPLY_TYPE_ERROR, 5, NBD_CMD_READ,
	  CHUNK_REQ_LEN, NBD_CHUNK_ERROR_SHORT },
	{ "ERROR with the longest message (6 + 4096)", 0,
	  NBD_REPLY_TYPE_ERROR, 6 + NBD_MAX_ERROR_MSG, NBD_CMD_READ,
	  CHUNK_REQ_LEN, NBD_CHUNK_OK },
	{ "ERROR with a message too long (6 + 4097)", 0,
	  NBD_REPLY_TYPE_ERROR, 6 + NBD_MAX_ERROR_MSG + 1, NBD_CMD_READ,
	  CHUNK_REQ_LEN, NBD_CHUNK_TOO_LONG },
	{ "ERROR_OFFSET without a message (14)", 0,
	  NBD_REPLY_TYPE_ERROR_OFFSET, 14, NBD_CMD_READ, CHUNK_REQ_LEN,
	  NBD_CHUNK_OK },
	{ "ERROR_OFFSET of 13", 0, NBD_REPLY_TYPE_ERROR_OFFSET, 13,
	  NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_ERROR_SHORT },
	{ "ERROR_OFFSET with the longest message (14 + 4096)", 0,
	  NBD_REPLY_TYPE_ERROR_OFFSET, 14 + NBD_MAX_ERROR_MSG, NBD_CMD_READ,
	  CHUNK_REQ_LEN, NBD_CHUNK_OK },
	{ "ERROR_OFFSET with a message too long (14 + 4097)", 0,
	  NBD_REPLY_TYPE_ERROR_OFFSET, 14 + NBD_MAX_ERROR_MSG + 1,
	  NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_TOO_LONG },
	{ "unknown type 3 (bit 15 clear)", 0, 3, 0, NBD_CMD_READ,
	  CHUNK_REQ_LEN, NBD_CHUNK_BAD_TYPE },
	{ "unknown type 0x7fff (bit 15 clear)", NBD_REPLY_FLAG_DONE, 0x7fff,
	  6, NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_BAD_TYPE },
	{ "unknown error type 0x8003 of 6", 0, 0x8003, 6, NBD_CMD_READ,
	  CHUNK_REQ_LEN, NBD_CHUNK_OK },
	{ "unknown error type 0x8003 of 5", 0, 0x8003, 5, NBD_CMD_READ,
	  CHUNK_REQ_LEN, NBD_CHUNK_ERROR_SHORT },
	{ "unknown error type 0x8003 of 65536", 0, 0x8003, 65536,
	  NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_OK },
	{ "unknown error type 0x8003 of 65537", 0, 0x8003, 65537,
	  NBD_CMD_READ, CHUNK_REQ_LEN, NBD_CHUNK_TOO_LONG },
};

static void chunk_check_desc(const struct chunk_check_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(chunk_check, chunk_check_cases, chunk_check_desc);

static void nbd_proto_chunk_check(struct kunit *test)
{
	const struct chunk_check_case *c = test->param_value;
	struct nbd_chunk chunk;
	enum nbd_chunk_verdict v;

	/* Arrange */
	chunk = (struct nbd_chunk) {
		.flags = c->flags,
		.type = c->type,
		.cookie = 0x0102030405060708ULL,
		.length = c->length,
	};

	/* Act */
	v = nbd_chunk_check(&chunk, c->cmd_type, c->cmd_length);

	/* Assert */
	KUNIT_EXPECT_EQ_MSG(test, v, c->want, "got \"%s\", want \"%s\"",
			    nbd_chunk_verdict_text(v),
			    nbd_chunk_verdict_text(c->want));
}

static void nbd_proto_chunk_verdict_text(struct kunit *test)
{
	bool tested[NBD_CHUNK_TOO_LONG + 1] = { false };
	const char *text[NBD_CHUNK_TOO_LONG + 1];
	unsigned int i, j;

	/* Act */
	for (i = NBD_CHUNK_OK; i <= NBD_CHUNK_TOO_LONG; i++)
		text[i] = nbd_chunk_verdict_text(i);

	/* Assert: every verdict has its own text */
	KUNIT_EXPECT_STREQ(test, text[NBD_CHUNK_OK], "valid");
	for (i = NBD_CHUNK_OK + 1; i <= NBD_CHUNK_TOO_LONG; i++) {
		KUNIT_ASSERT_NOT_NULL(test, text[i]);
		KUNIT_EXPECT_GT_MSG(test, strlen(text[i]), 0, "verdict %u", i);
		KUNIT_EXPECT_STRNEQ_MSG(test, text[i], "valid", "verdict %u", i);
		/* the fallback for values outside the enum */
		KUNIT_EXPECT_STRNEQ_MSG(test, text[i], "invalid",
					"verdict %u", i);
		for (j = NBD_CHUNK_OK; j < i; j++)
			KUNIT_EXPECT_STRNEQ_MSG(test, text[i], text[j],
						"verdicts %u and %u", j, i);
	}

	/* Assert: nbd_proto_chunk_check's table reaches every verdict */
	for (i = 0; i < ARRAY_SIZE(chunk_check_cases); i++)
		tested[chunk_check_cases[i].want] = true;
	for (i = NBD_CHUNK_OK; i <= NBD_CHUNK_TOO_LONG; i++)
		KUNIT_EXPECT_TRUE_MSG(test, tested[i],
				      "no case for verdict %u (\"%s\")", i,
				      text[i]);
}

static void nbd_proto_chunk_type_names(struct kunit *test)
{
	KUNIT_EXPECT_STREQ(test, nbd_chunk_type_name(NBD_REPLY_TYPE_NONE),
			   "NONE");
	KUNIT_EXPECT_STREQ(test,
			   nbd_chunk_type_name(NBD_REPLY_TYPE_OFFSET_DATA),
			   "OFFSET_DATA");
	KUNIT_EXPECT_STREQ(test,
			   nbd_chunk_type_name(NBD_REPLY_TYPE_OFFSET_HOLE),
			   "OFFSET_HOLE");
	KUNIT_EXPECT_STREQ(test, nbd_chunk_type_name(5), "BLOCK_STATUS");
	KUNIT_EXPECT_STREQ(test, nbd_chunk_type_name(6), "BLOCK_STATUS_EXT");
	KUNIT_EXPECT_STREQ(test, nbd_chunk_type_name(0x8001), "ERROR");
	KUNIT_EXPECT_STREQ(test, nbd_chunk_type_name(0x8002), "ERROR_OFFSET");
	KUNIT_EXPECT_STREQ(test, nbd_chunk_type_name(3), "unknown");
	KUNIT_EXPECT_STREQ(test, nbd_chunk_type_name(0x8003),
			   "unknown error");
}

/* What the chunks of a structured read have covered */

#define SR_OFF		BIT_ULL(40)	/* the read's offset, above 2^32 */
#define SR_MAX_STEPS	12

struct sr_step {
	u64 offset;	/* the chunk's, as on the wire */
	u32 length;
	int ret;
	u8 nr;		/* ranges after the step */
};

struct sr_case {
	const char *desc;
	u64 req_offset;
	u32 req_length;
	unsigned int nr_steps;
	struct sr_step steps[SR_MAX_STEPS];
	u32 covered;
	u8 nr;
};

static const struct sr_case sr_cases[] = {
	{ "one chunk covers the read", SR_OFF, 16384, 1,
	  { { SR_OFF, 16384, 0, 1 } }, 16384, 1 },
	{ "four chunks in order", SR_OFF, 16384, 4,
	  { { SR_OFF, 4096, 0, 1 }, { SR_OFF + 4096, 4096, 0, 1 },
	    { SR_OFF + 8192, 4096, 0, 1 }, { SR_OFF + 12288, 4096, 0, 1 } },
	  16384, 1 },
	{ "four chunks in reverse order", SR_OFF, 16384, 4,
	  { { SR_OFF + 12288, 4096, 0, 1 }, { SR_OFF + 8192, 4096, 0, 1 },
	    { SR_OFF + 4096, 4096, 0, 1 }, { SR_OFF, 4096, 0, 1 } },
	  16384, 1 },
	{ "middle, first, last", SR_OFF, 12288, 3,
	  { { SR_OFF + 4096, 4096, 0, 1 }, { SR_OFF, 4096, 0, 1 },
	    { SR_OFF + 8192, 4096, 0, 1 } },
	  12288, 1 },
	{ "first, last, middle", SR_OFF, 12288, 3,
	  { { SR_OFF, 4096, 0, 1 }, { SR_OFF + 8192, 4096, 0, 2 },
	    { SR_OFF + 4096, 4096, 0, 1 } },
	  12288, 1 },
	{ "a chunk between two separate ones is kept in order", SR_OFF, 8192,
	  4,
	  { { SR_OFF + 6144, 512, 0, 1 }, { SR_OFF, 512, 0, 2 },
	    { SR_OFF + 2048, 512, 0, 3 }, { SR_OFF + 4096, 512, 0, 4 } },
	  2048, 4 },
	{ "data and holes of any length interleaved", SR_OFF, 16384, 4,
	  { { SR_OFF, 4096, 0, 1 }, { SR_OFF + 4096, 8192, 0, 1 },
	    { SR_OFF + 12288, 1, 0, 1 }, { SR_OFF + 12289, 4095, 0, 1 } },
	  16384, 1 },
	{ "a read at offset 0", 0, 4096, 2,
	  { { 2048, 2048, 0, 1 }, { 0, 2048, 0, 1 } }, 4096, 1 },
	{ "overlap with the previous chunk", SR_OFF, 16384, 3,
	  { { SR_OFF, 8192, 0, 1 }, { SR_OFF + 4096, 8192, -EEXIST, 1 },
	    { SR_OFF + 8192, 8192, 0, 1 } },
	  16384, 1 },
	{ "overlap by one byte with the next chunk", SR_OFF, 16384, 3,
	  { { SR_OFF + 8192, 8192, 0, 1 }, { SR_OFF, 8193, -EEXIST, 1 },
	    { SR_OFF, 8192, 0, 1 } },
	  16384, 1 },
	{ "exact repeat", SR_OFF, 16384, 2,
	  { { SR_OFF, 4096, 0, 1 }, { SR_OFF, 4096, -EEXIST, 1 } },
	  4096, 1 },
	{ "overlap inside a merged range", SR_OFF, 16384, 4,
	  { { SR_OFF, 4096, 0, 1 }, { SR_OFF + 4096, 4096, 0, 1 },
	    { SR_OFF + 2048, 4096, -EEXIST, 1 },
	    { SR_OFF + 5000, 100, -EEXIST, 1 } },
	  8192, 1 },
	{ "a chunk over two ranges and the gap between", SR_OFF, 16384, 3,
	  { { SR_OFF, 4096, 0, 1 }, { SR_OFF + 8192, 4096, 0, 2 },
	    { SR_OFF, 16384, -EEXIST, 2 } },
	  8192, 2 },
	{ "chunk starting before the read", SR_OFF, 16384, 3,
	  { { SR_OFF - 512, 1024, -ERANGE, 0 },
	    { SR_OFF - 1, 1, -ERANGE, 0 },
	    { 0, 4096, -ERANGE, 0 } },
	  0, 0 },
	{ "chunk ending after the read", SR_OFF, 16384, 4,
	  { { SR_OFF + 12288, 8192, -ERANGE, 0 },
	    { SR_OFF, 16385, -ERANGE, 0 },
	    { SR_OFF + 16384, 1, -ERANGE, 0 },
	    { SR_OFF + 16383, 1, 0, 1 } },
	  1, 1 },
	{ "offset 2^32 past the read (u32 wrap)", SR_OFF, 16384, 4,
	  { { SR_OFF + (1ULL << 32), 4096, -ERANGE, 0 },
	    { SR_OFF + (1ULL << 32) + 4096, 4096, -ERANGE, 0 },
	    { U64_MAX, 1, -ERANGE, 0 },
	    { SR_OFF, 4096, 0, 1 } },
	  4096, 1 },
	{ "chunk ending 2^32 past the read's start (u32 wrap)", SR_OFF,
	  0xfffff000, 2,
	  { { SR_OFF + 0xffffe000, 0x2000, -ERANGE, 0 },
	    { SR_OFF + 0xffffe000, 0x1000, 0, 1 } },
	  0x1000, 1 },
	{ "zero length", SR_OFF, 16384, 4,
	  { { SR_OFF, 0, -ERANGE, 0 }, { SR_OFF, 4096, 0, 1 },
	    { SR_OFF + 4096, 0, -ERANGE, 1 },
	    { SR_OFF + 16384, 0, -ERANGE, 1 } },
	  4096, 1 },
	{ "nine separate chunks, not whole sectors: no slot for the ninth",
	  SR_OFF, 9216, 12,
	  { { SR_OFF, 256, 0, 1 }, { SR_OFF + 1024, 256, 0, 2 },
	    { SR_OFF + 2048, 256, 0, 3 }, { SR_OFF + 3072, 256, 0, 4 },
	    { SR_OFF + 4096, 256, 0, 5 }, { SR_OFF + 5120, 256, 0, 6 },
	    { SR_OFF + 6144, 256, 0, 7 }, { SR_OFF + 7168, 256, 0, 8 },
	    { SR_OFF + 8192, 256, -ENOSPC, 8 },
	    /* growing a range needs no slot */
	    { SR_OFF + 7424, 256, 0, 8 },
	    /* filling a gap frees one */
	    { SR_OFF + 256, 768, 0, 7 },
	    { SR_OFF + 8192, 256, 0, 8 } },
	  8 * 256 + 256 + 768 + 256, 8 },
	{ "nine separate sectors: the ninth moves the read to a bitmap",
	  SR_OFF, 9216, 12,
	  { { SR_OFF, 512, 0, 1 }, { SR_OFF + 1024, 512, 0, 2 },
	    { SR_OFF + 2048, 512, 0, 3 }, { SR_OFF + 3072, 512, 0, 4 },
	    { SR_OFF + 4096, 512, 0, 5 }, { SR_OFF + 5120, 512, 0, 6 },
	    { SR_OFF + 6144, 512, 0, 7 }, { SR_OFF + 7168, 512, 0, 8 },
	    { SR_OFF + 8192, 512, 0, 8 },
	    /* the bitmap still sees overlaps, and wants whole sectors */
	    { SR_OFF + 1024, 1024, -EEXIST, 8 },
	    { SR_OFF + 512, 256, -ENOSPC, 8 },
	    { SR_OFF + 512, 512, 0, 8 } },
	  10 * 512, 8 },
	{ "a chunk between two ranges merges them", SR_OFF, 12288, 3,
	  { { SR_OFF, 4096, 0, 1 }, { SR_OFF + 8192, 4096, 0, 2 },
	    { SR_OFF + 4096, 4096, 0, 1 } },
	  12288, 1 },
	{ "merging the first two of three ranges, then the rest", SR_OFF,
	  5120, 5,
	  { { SR_OFF, 1024, 0, 1 }, { SR_OFF + 2048, 1024, 0, 2 },
	    { SR_OFF + 4096, 1024, 0, 3 }, { SR_OFF + 1024, 1024, 0, 2 },
	    { SR_OFF + 3072, 1024, 0, 1 } },
	  5120, 1 },
};

static void sr_desc(const struct sr_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(sr, sr_cases, sr_desc);

/* Sorted, disjoint, adjacent ones merged, inside the read, summing up. */
static void sr_expect_consistent(struct kunit *test,
				 const struct nbd_sr_ranges *rs,
				 u32 req_length, unsigned int step)
{
	u64 sum = 0;
	unsigned int i;

	KUNIT_ASSERT_LE_MSG(test, rs->nr, NBD_SR_RANGES, "step %u", step);
	if (rs->bitmap) {
		/* the ranges stay as they were: the bitmap counts */
		KUNIT_EXPECT_EQ_MSG(test,
				    (u64)bitmap_weight(rs->bitmap,
						       req_length >> SECTOR_SHIFT)
				    << SECTOR_SHIFT, (u64)rs->covered,
				    "step %u", step);
		return;
	}
	for (i = 0; i < rs->nr; i++) {
		KUNIT_EXPECT_LT_MSG(test, rs->r[i].start, rs->r[i].end,
				    "step %u range %u", step, i);
		KUNIT_EXPECT_LE_MSG(test, rs->r[i].end, req_length,
				    "step %u range %u", step, i);
		if (i)
			KUNIT_EXPECT_LT_MSG(test, rs->r[i - 1].end,
					    rs->r[i].start,
					    "step %u range %u", step, i);
		sum += rs->r[i].end - rs->r[i].start;
	}
	KUNIT_EXPECT_EQ_MSG(test, sum, rs->covered, "step %u", step);
}

static void nbd_proto_sr_ranges(struct kunit *test)
{
	const struct sr_case *c = test->param_value;
	struct nbd_sr_ranges rs, before;
	unsigned int i;
	u32 rel;
	int ret;

	/* Arrange: nr_steps counts the steps (a used one is never all 0) */
	KUNIT_ASSERT_LE(test, c->nr_steps, SR_MAX_STEPS);
	for (i = 0; i < SR_MAX_STEPS; i++)
		KUNIT_ASSERT_EQ_MSG(test, i < c->nr_steps,
				    c->steps[i].ret || c->steps[i].nr,
				    "step %u: nr_steps is wrong", i);
	memset(&rs, 0, sizeof(rs));

	for (i = 0; i < c->nr_steps; i++) {
		const struct sr_step *s = &c->steps[i];

		memcpy(&before, &rs, sizeof(rs));
		rel = 0xdeadbeef;

		/* Act */
		ret = nbd_sr_range_add(&rs, c->req_offset, c->req_length,
				       s->offset, s->length, &rel);

		/* Assert */
		KUNIT_EXPECT_EQ_MSG(test, ret, s->ret, "step %u", i);
		KUNIT_EXPECT_EQ_MSG(test, rs.nr, s->nr, "step %u", i);
		if (ret) {
			/* nothing recorded */
			KUNIT_EXPECT_EQ_MSG(test, rs.covered, before.covered,
					    "step %u", i);
			KUNIT_EXPECT_EQ_MSG(test, rs.nr, before.nr,
					    "step %u", i);
			KUNIT_EXPECT_MEMEQ_MSG(test, &rs, &before, sizeof(rs),
					       "step %u", i);
		} else {
			KUNIT_EXPECT_EQ_MSG(test, rel,
					    (u32)(s->offset - c->req_offset),
					    "step %u", i);
			KUNIT_EXPECT_EQ_MSG(test, rs.covered,
					    before.covered + s->length,
					    "step %u", i);
		}
		sr_expect_consistent(test, &rs, c->req_length, i);
	}

	KUNIT_EXPECT_EQ(test, rs.covered, c->covered);
	KUNIT_EXPECT_EQ(test, rs.nr, c->nr);
	nbd_sr_ranges_reset(&rs);
}

/* The server's block sizes, before the wire */

struct obeys_case {
	const char *desc;
	struct nbd_wire_cmd cmd;
	u32 min_block;
	u32 max_payload;
	bool want;
};

static const struct obeys_case obeys_cases[] = {
	{ "no constraints: misaligned read", { NBD_CMD_READ, 0, 1, 3 }, 0, 0,
	  true },
	{ "no constraints: write of 4 GiB - 1", { NBD_CMD_WRITE, 0, 7,
	  U32_MAX }, 0, 0, true },
	{ "no constraints: misaligned trim", { NBD_CMD_TRIM, 0, 511, 1 }, 0,
	  0, true },
	{ "aligned read", { NBD_CMD_READ, 0, 8192, 4096 }, 4096, 65536,
	  true },
	{ "aligned write FUA", { NBD_CMD_WRITE, 1, 4096, 8192 }, 4096, 65536,
	  true },
	{ "aligned trim", { NBD_CMD_TRIM, 0, 0, 4096 }, 4096, 65536, true },
	{ "aligned write zeroes", { NBD_CMD_WRITE_ZEROES, 2, 1ULL << 40,
	  65536 }, 4096, 65536, true },
	{ "minimum 1: any byte", { NBD_CMD_READ, 0, 1, 3 }, 1, 65536, true },
	{ "minimum 512: one sector", { NBD_CMD_WRITE, 0, 512, 512 }, 512,
	  65536, true },
	{ "read at a misaligned offset", { NBD_CMD_READ, 0, 512, 4096 }, 4096,
	  65536, false },
	{ "write at a misaligned offset", { NBD_CMD_WRITE, 0, 4097, 4096 },
	  4096, 65536, false },
	{ "trim at a misaligned offset", { NBD_CMD_TRIM, 0, 2048, 4096 },
	  4096, 65536, false },
	{ "write zeroes at a misaligned offset above 2^32",
	  { NBD_CMD_WRITE_ZEROES, 0, (1ULL << 32) + 512, 4096 }, 4096, 65536,
	  false },
	{ "read of a misaligned length", { NBD_CMD_READ, 0, 4096, 4095 },
	  4096, 65536, false },
	{ "write of a misaligned length", { NBD_CMD_WRITE, 0, 0, 512 }, 4096,
	  65536, false },
	{ "trim of a misaligned length", { NBD_CMD_TRIM, 0, 0, 6144 }, 4096,
	  65536, false },
	{ "write zeroes of a misaligned length",
	  { NBD_CMD_WRITE_ZEROES, 0, 0, 4097 }, 4096, 65536, false },
	{ "read of exactly the maximum", { NBD_CMD_READ, 0, 0, 65536 }, 4096,
	  65536, true },
	{ "read longer than the maximum", { NBD_CMD_READ, 0, 0, 69632 },
	  4096, 65536, false },
	{ "write of exactly the maximum", { NBD_CMD_WRITE, 0, 4096, 65536 },
	  4096, 65536, true },
	{ "write longer than the maximum", { NBD_CMD_WRITE, 0, 0, 69632 },
	  4096, 65536, false },
	{ "trim longer than the maximum (a payload limit)",
	  { NBD_CMD_TRIM, 0, 0, 1 << 24 }, 4096, 65536, true },
	{ "write zeroes longer than the maximum (a payload limit)",
	  { NBD_CMD_WRITE_ZEROES, 0, 0, 0xfffff000 }, 4096, 65536, true },
	{ "flush", { NBD_CMD_FLUSH, 0, 0, 0 }, 4096, 65536, true },
	{ "disconnect", { NBD_CMD_DISC, 0, 0, 0 }, 4096, 65536, true },
	{ "maximum 0: no limit on a read", { NBD_CMD_READ, 0, 0, 1 << 24 },
	  4096, 0, true },
	{ "maximum 0: no limit on a write", { NBD_CMD_WRITE, 0, 4096,
	  0xfffff000 }, 4096, 0, true },
	{ "maximum 0 keeps the minimum", { NBD_CMD_WRITE, 0, 4096, 512 },
	  4096, 0, false },
};

static void obeys_desc(const struct obeys_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(obeys, obeys_cases, obeys_desc);

static void nbd_proto_wire_cmd_obeys(struct kunit *test)
{
	const struct obeys_case *c = test->param_value;

	/* Act, Assert */
	KUNIT_EXPECT_EQ(test, nbd_wire_cmd_obeys(&c->cmd, c->min_block,
						 c->max_payload), c->want);
}

/* The server's block sizes to queue limits */

struct constraints_case {
	const char *desc;
	u32 flags;
	unsigned int blksize;
	u32 min, pref, max;
	unsigned int max_hw_sectors;
	unsigned int physical;
	unsigned int io_opt;
};

static const struct constraints_case constraints_cases[] = {
	{ "minimum 0 changes nothing", NBD_FLAG_SEND_FLUSH |
	  NBD_FLAG_SEND_TRIM, 4096, 0, 65536, 65536, NBD_MAX_HW_SECTORS, 0,
	  0 },
	{ "preferred above the block size", 0, 512, 512, 4096, 0,
	  NBD_MAX_HW_SECTORS, 4096, 4096 },
	{ "preferred equal to the block size", 0, 4096, 4096, 4096, 0,
	  NBD_MAX_HW_SECTORS, 0, 0 },
	{ "preferred below the block size", 0, 4096, 512, 512, 0,
	  NBD_MAX_HW_SECTORS, 0, 0 },
	{ "maximum 64 KiB, block size 4096", 0, 4096, 4096, 4096, 65536,
	  128, 0, 0 },
	{ "maximum 0: no limit", 0, 4096, 4096, 4096, 0, NBD_MAX_HW_SECTORS,
	  0, 0 },
	{ "maximum at the driver's limit", 0, 4096, 4096, 4096,
	  NBD_MAX_HW_SECTORS * 512, NBD_MAX_HW_SECTORS, 0, 0 },
	{ "maximum above the driver's limit", 0, 4096, 4096, 4096,
	  NBD_MAX_HW_SECTORS * 512 + 4096, NBD_MAX_HW_SECTORS, 0, 0 },
	{ "maximum far above the driver's limit", 0, 512, 512, 512,
	  0xfffffe00, NBD_MAX_HW_SECTORS, 0, 0 },
	{ "maximum not a multiple of the block size rounds down", 0, 4096,
	  2048, 2048, 65536 + 2048, 128, 0, 0 },
	{ "maximum 3.5 blocks rounds down to 3", 0, 4096, 512, 512,
	  3 * 4096 + 2048, 24, 0, 0 },
	{ "all three, with flags", NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
	  NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
	  NBD_FLAG_ROTATIONAL, 4096, 4096, 65536, 1 << 20, 2048, 65536,
	  65536 },
};

static void constraints_desc(const struct constraints_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(constraints, constraints_cases, constraints_desc);

static void nbd_proto_constraints_to_qlimits(struct kunit *test)
{
	const struct constraints_case *c = test->param_value;
	struct nbd_qlimits l, flags_only;

	/* Arrange */
	nbd_flags_to_qlimits(c->flags, c->blksize, &l);
	flags_only = l;

	/* Act */
	nbd_constraints_to_qlimits(c->min, c->pref, c->max, &l);

	/* Assert */
	KUNIT_EXPECT_EQ(test, l.max_hw_sectors, c->max_hw_sectors);
	KUNIT_EXPECT_EQ(test, l.physical, c->physical);
	KUNIT_EXPECT_EQ(test, l.io_opt, c->io_opt);
	/* what the flags decide stays */
	KUNIT_EXPECT_EQ(test, l.blksize, flags_only.blksize);
	KUNIT_EXPECT_EQ(test, l.max_discard_sectors,
			flags_only.max_discard_sectors);
	KUNIT_EXPECT_EQ(test, l.max_write_zeroes_sectors,
			flags_only.max_write_zeroes_sectors);
	KUNIT_EXPECT_EQ(test, l.write_cache, flags_only.write_cache);
	KUNIT_EXPECT_EQ(test, l.fua, flags_only.fua);
	KUNIT_EXPECT_EQ(test, l.rotational, flags_only.rotational);
}

static struct kunit_case nbd_proto_cases[] = {
	KUNIT_CASE_PARAM(nbd_proto_build_wire_cmd, wire_cmd_gen_params),
	KUNIT_CASE_PARAM(nbd_proto_encode_request, encode_gen_params),
	KUNIT_CASE_PARAM(nbd_proto_decode_reply, reply_gen_params),
	KUNIT_CASE_PARAM(nbd_proto_cookie_roundtrip, cookie_gen_params),
	KUNIT_CASE(nbd_proto_cookie_generation_wrap),
	KUNIT_CASE_PARAM(nbd_proto_error_to_status, errno_gen_params),
	KUNIT_CASE(nbd_proto_cmd_names),
	KUNIT_CASE_PARAM(nbd_proto_flags_to_limits, limits_gen_params),
	KUNIT_CASE(nbd_proto_multi_conn_bit),
	KUNIT_CASE_PARAM(nbd_proto_decode_chunk_hdr, chunk_hdr_gen_params),
	KUNIT_CASE(nbd_proto_chunk_hdr_layout),
	KUNIT_CASE_PARAM(nbd_proto_chunk_check, chunk_check_gen_params),
	KUNIT_CASE(nbd_proto_chunk_verdict_text),
	KUNIT_CASE(nbd_proto_chunk_type_names),
	KUNIT_CASE_PARAM(nbd_proto_sr_ranges, sr_gen_params),
	KUNIT_CASE_PARAM(nbd_proto_wire_cmd_obeys, obeys_gen_params),
	KUNIT_CASE_PARAM(nbd_proto_constraints_to_qlimits,
			 constraints_gen_params),
	{}
};

static struct kunit_suite nbd_proto_suite = {
	.name = "nbd_proto",
	.test_cases = nbd_proto_cases,
};

kunit_test_suite(nbd_proto_suite);

MODULE_DESCRIPTION("KUnit tests for the nbd driver");
MODULE_LICENSE("GPL");
