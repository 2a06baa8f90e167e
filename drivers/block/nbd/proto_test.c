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
	{}
};

static struct kunit_suite nbd_proto_suite = {
	.name = "nbd_proto",
	.test_cases = nbd_proto_cases,
};

kunit_test_suite(nbd_proto_suite);

MODULE_DESCRIPTION("KUnit tests for the nbd driver");
MODULE_LICENSE("GPL");
