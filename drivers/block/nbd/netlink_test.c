// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for the NBD generic netlink interface: suite nbd_netlink.
 *
 * Requests go through a real generic netlink socket, so the family's
 * policy, the permission check and the handlers all run as they do for
 * nbd-client.  File descriptors are installed in the test thread's table,
 * where the handlers look them up.
 */
#include <kunit/test.h>
#include <linux/anon_inodes.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/net.h>
#include <linux/netlink.h>
#include <linux/sizes.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>
#include <net/sock.h>

#include "../../../include/uapi/linux/nbd-netlink.h"
#include "nbd.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

#define NL_INDEX	7	/* the device the tests configure */
#define NL_MAX_FDS	(NBD_MAX_CONNECTIONS + 1)

struct nl_fixture {
	struct socket *nl;
	void *hdr;		/* of the request being built */
	int req_fds[NL_MAX_FDS];
	int fds[NL_MAX_FDS * 2];
	int nfds;
	struct socket *peers[NL_MAX_FDS];
	int npeers;
	u32 reply_index;
	bool got_index;
	u8 buf[8192];
};

static const struct file_operations nl_dummy_fops;

static int nl_install(struct nl_fixture *fx, struct file *file)
{
	int fd = get_unused_fd_flags(O_CLOEXEC);

	if (fd < 0) {
		fput(file);
		return fd;
	}
	fd_install(fd, file);
	fx->fds[fx->nfds++] = fd;
	return fd;
}

/* A connected AF_UNIX stream socket's fd; the peer stays in the fixture. */
static int nl_stream_fd(struct nl_fixture *fx)
{
	struct socket *a, *b;
	struct file *file;
	int err;

	err = sock_create_kern(&init_net, AF_UNIX, SOCK_STREAM, 0, &a);
	if (err)
		return err;
	err = sock_create_kern(&init_net, AF_UNIX, SOCK_STREAM, 0, &b);
	if (err) {
		sock_release(a);
		return err;
	}
	err = a->ops->socketpair(a, b);
	if (err) {
		sock_release(a);
		sock_release(b);
		return err;
	}
	fx->peers[fx->npeers++] = b;
	file = sock_alloc_file(a, 0, NULL);
	if (IS_ERR(file))
		return PTR_ERR(file);
	return nl_install(fx, file);
}

static int nl_sock_fd(struct nl_fixture *fx, int family, int type, int proto)
{
	struct socket *s;
	struct file *file;
	int err;

	err = sock_create_kern(&init_net, family, type, proto, &s);
	if (err)
		return err;
	file = sock_alloc_file(s, 0, NULL);
	if (IS_ERR(file))
		return PTR_ERR(file);
	return nl_install(fx, file);
}

static int nl_fixture_init(struct kunit *test)
{
	struct sockaddr_nl addr = { .nl_family = AF_NETLINK };
	struct nl_fixture *fx;
	struct file *file;
	int err;

	fx = kunit_kzalloc(test, sizeof(*fx), GFP_KERNEL);
	if (!fx)
		return -ENOMEM;
	err = sock_create_kern(&init_net, AF_NETLINK, SOCK_RAW,
			       NETLINK_GENERIC, &fx->nl);
	if (err)
		return err;
	/* netlink_capable() looks at the socket file's credentials */
	file = sock_alloc_file(fx->nl, 0, NULL);
	if (IS_ERR(file)) {
		fx->nl = NULL;
		return PTR_ERR(file);
	}
	err = kernel_bind(fx->nl, (struct sockaddr *)&addr, sizeof(addr));
	if (err)
		return err;
	test->priv = fx;
	return 0;
}

static bool nl_device_configured(int index)
{
	struct nbd_device *nbd = nbd_lookup_get(index);
	bool ret;

	if (!nbd)
		return false;
	ret = !!READ_ONCE(nbd->config);
	nbd_put(nbd);
	return ret;
}

static void nl_fixture_exit(struct kunit *test)
{
	struct nl_fixture *fx = test->priv;
	struct nbd_device *nbd;
	int i;

	if (!fx)
		return;
	/* Leave nothing connected behind, whatever the test did. */
	nbd = nbd_lookup_get(NL_INDEX);
	if (nbd) {
		nbd_disconnect_and_put(nbd, false);
		nbd_put(nbd);
	}
	for (i = 0; i < fx->nfds; i++)
		close_fd(fx->fds[i]);
	for (i = 0; i < fx->npeers; i++)
		sock_release(fx->peers[i]);
	if (fx->nl)
		fput(fx->nl->file);
}

/* Send one request; return the error of its ack. */
static int nl_request(struct kunit *test, struct sk_buff *skb)
{
	struct nl_fixture *fx = test->priv;
	struct sockaddr_nl dst = { .nl_family = AF_NETLINK };
	struct msghdr msg = { .msg_name = &dst, .msg_namelen = sizeof(dst) };
	struct kvec iov = { .iov_base = skb->data, .iov_len = skb->len };
	struct nlmsghdr *nlh;
	int len, err = -ENODATA;

	fx->got_index = false;
	len = kernel_sendmsg(fx->nl, &msg, &iov, 1, skb->len);
	kfree_skb(skb);
	if (len < 0)
		return len;

	/* The family handles the request within sendmsg: all is queued. */
	for (;;) {
		struct msghdr rmsg = { .msg_flags = MSG_DONTWAIT };

		iov = (struct kvec) { .iov_base = fx->buf,
				      .iov_len = sizeof(fx->buf) };
		len = kernel_recvmsg(fx->nl, &rmsg, &iov, 1, sizeof(fx->buf),
				     MSG_DONTWAIT);
		if (len <= 0)
			return err;
		for (nlh = (struct nlmsghdr *)fx->buf; nlmsg_ok(nlh, len);
		     nlh = nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = nlmsg_data(nlh);

				return e->error;
			}
			if (nlh->nlmsg_type == nbd_genl_kunit_family()->id) {
				struct nlattr *a;

				a = nlmsg_find_attr(nlh, GENL_HDRLEN,
						    NBD_ATTR_INDEX);
				if (a) {
					fx->reply_index = nla_get_u32(a);
					fx->got_index = true;
				}
			}
		}
	}
}

static struct sk_buff *nl_msg(struct kunit *test, u8 cmd)
{
	struct sk_buff *skb = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	void *hdr;

	KUNIT_ASSERT_NOT_NULL(test, skb);
	hdr = genlmsg_put(skb, 0, 1, nbd_genl_kunit_family(),
			  NLM_F_REQUEST | NLM_F_ACK, cmd);
	KUNIT_ASSERT_NOT_NULL(test, hdr);
	((struct nl_fixture *)test->priv)->hdr = hdr;
	return skb;
}

static void nl_put_u64(struct kunit *test, struct sk_buff *skb, int attr,
		       u64 value)
{
	KUNIT_ASSERT_EQ(test, nla_put_u64_64bit(skb, attr, value, 0), 0);
}

static void nl_end(struct kunit *test, struct sk_buff *skb)
{
	genlmsg_end(skb, ((struct nl_fixture *)test->priv)->hdr);
}

static void nl_put_socks(struct kunit *test, struct sk_buff *skb,
			 const int *fds, int n)
{
	struct nlattr *socks, *item;
	int i;

	socks = nla_nest_start(skb, NBD_ATTR_SOCKETS);
	KUNIT_ASSERT_NOT_NULL(test, socks);
	for (i = 0; i < n; i++) {
		item = nla_nest_start(skb, NBD_SOCK_ITEM);
		KUNIT_ASSERT_NOT_NULL(test, item);
		KUNIT_ASSERT_EQ(test, nla_put_u32(skb, NBD_SOCK_FD, fds[i]), 0);
		nla_nest_end(skb, item);
	}
	nla_nest_end(skb, socks);
}

/* CONNECT rejections */

enum nl_sock_kind {
	NL_STREAM,		/* connected AF_UNIX stream */
	NL_UDP,
	NL_TCP_UNCONNECTED,
	NL_NOT_A_SOCKET,
	NL_CLOSED_FD,
};

struct connect_case {
	const char *desc;
	bool no_size;
	bool no_socks;
	u64 size;
	u64 blksize;		/* 0: not sent */
	u32 index;
	u64 server_flags;
	u64 client_flags;
	enum nl_sock_kind kind;
	int nsocks;
	int err;
};

#define MB SZ_1M

static const struct connect_case connect_cases[] = {
	{ "valid", false, false, MB, 4096, NL_INDEX, 0, 0, NL_STREAM, 1, 0 },
	{ "missing NBD_ATTR_SOCKETS", false, true, MB, 4096, NL_INDEX, 0, 0,
	  NL_STREAM, 0, -EINVAL },
	{ "missing NBD_ATTR_SIZE_BYTES", true, false, 0, 4096, NL_INDEX, 0, 0,
	  NL_STREAM, 1, -EINVAL },
	{ "block size not a power of two", false, false, MB, 1000, NL_INDEX, 0,
	  0, NL_STREAM, 1, -EINVAL },
	{ "block size below 512", false, false, MB, 256, NL_INDEX, 0, 0,
	  NL_STREAM, 1, -EINVAL },
	{ "block size above PAGE_SIZE", false, false, MB, PAGE_SIZE * 2,
	  NL_INDEX, 0, 0, NL_STREAM, 1, -EINVAL },
	{ "size not a multiple of the block size", false, false, MB + 512,
	  4096, NL_INDEX, 0, 0, NL_STREAM, 1, -EINVAL },
	{ "size overflowing", false, false, U64_MAX - 4095, 4096, NL_INDEX, 0,
	  0, NL_STREAM, 1, -EINVAL },
	{ "index out of range", false, false, MB, 4096, INT_MAX, 0, 0,
	  NL_STREAM, 1, -EINVAL },
	{ "unknown client flags", false, false, MB, 4096, NL_INDEX, 0,
	  1 << 7, NL_STREAM, 1, -EINVAL },
	{ "fd that is not a socket", false, false, MB, 4096, NL_INDEX, 0, 0,
	  NL_NOT_A_SOCKET, 1, -EINVAL },
	{ "closed fd", false, false, MB, 4096, NL_INDEX, 0, 0, NL_CLOSED_FD, 1,
	  -EBADF },
	{ "UDP socket", false, false, MB, 4096, NL_INDEX, 0, 0, NL_UDP, 1,
	  -EINVAL },
	{ "unconnected TCP socket", false, false, MB, 4096, NL_INDEX, 0, 0,
	  NL_TCP_UNCONNECTED, 1, -ENOTCONN },
	{ "more sockets than allowed", false, false, MB, 4096, NL_INDEX,
	  NBD_FLAG_CAN_MULTI_CONN, 0, NL_STREAM, NBD_MAX_CONNECTIONS + 1,
	  -EINVAL },
	{ "several sockets without CAN_MULTI_CONN", false, false, MB, 4096,
	  NL_INDEX, NBD_FLAG_SEND_CACHE, 0, NL_STREAM, 2, -EINVAL },
	{ "several sockets with CAN_MULTI_CONN", false, false, MB, 4096,
	  NL_INDEX, NBD_FLAG_CAN_MULTI_CONN, 0, NL_STREAM, 4, 0 },
};

static void connect_desc(const struct connect_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(connect, connect_cases, connect_desc);

static int nl_make_fd(struct kunit *test, enum nl_sock_kind kind)
{
	struct nl_fixture *fx = test->priv;
	struct file *file;
	int fd;

	switch (kind) {
	case NL_STREAM:
		return nl_stream_fd(fx);
	case NL_UDP:
		return nl_sock_fd(fx, AF_INET, SOCK_DGRAM, IPPROTO_UDP);
	case NL_TCP_UNCONNECTED:
		return nl_sock_fd(fx, AF_INET, SOCK_STREAM, IPPROTO_TCP);
	case NL_NOT_A_SOCKET:
		file = anon_inode_getfile("nbd-test", &nl_dummy_fops, NULL,
					  O_RDWR);
		return IS_ERR(file) ? PTR_ERR(file) : nl_install(fx, file);
	case NL_CLOSED_FD:
		fd = nl_stream_fd(fx);
		if (fd >= 0) {
			close_fd(fd);
			fx->nfds--;
		}
		return fd;
	}
	return -EINVAL;
}

static void nbd_netlink_connect(struct kunit *test)
{
	const struct connect_case *c = test->param_value;
	struct nl_fixture *fx = test->priv;
	int *fds = fx->req_fds;
	struct sk_buff *skb;
	int i, err;

	/* Arrange */
	for (i = 0; i < c->nsocks; i++) {
		fds[i] = nl_make_fd(test, c->kind);
		KUNIT_ASSERT_GE(test, fds[i], 0);
	}
	skb = nl_msg(test, NBD_CMD_CONNECT);
	KUNIT_ASSERT_EQ(test, nla_put_u32(skb, NBD_ATTR_INDEX, c->index), 0);
	if (!c->no_size)
		nl_put_u64(test, skb, NBD_ATTR_SIZE_BYTES, c->size);
	if (c->blksize)
		nl_put_u64(test, skb, NBD_ATTR_BLOCK_SIZE_BYTES, c->blksize);
	nl_put_u64(test, skb, NBD_ATTR_SERVER_FLAGS,
		   NBD_FLAG_HAS_FLAGS | c->server_flags);
	if (c->client_flags)
		nl_put_u64(test, skb, NBD_ATTR_CLIENT_FLAGS, c->client_flags);
	if (!c->no_socks)
		nl_put_socks(test, skb, fds, c->nsocks);
	nl_end(test, skb);

	/* Act */
	err = nl_request(test, skb);

	/* Assert */
	KUNIT_EXPECT_EQ(test, err, c->err);
	if (c->err) {
		/* nothing left registered */
		KUNIT_EXPECT_FALSE(test, nl_device_configured(NL_INDEX));
		KUNIT_EXPECT_FALSE(test, fx->got_index);
		return;
	}
	KUNIT_EXPECT_TRUE(test, fx->got_index);
	KUNIT_EXPECT_EQ(test, fx->reply_index, NL_INDEX);
	KUNIT_EXPECT_TRUE(test, nl_device_configured(NL_INDEX));

	/* ... and DISCONNECT undoes it */
	skb = nl_msg(test, NBD_CMD_DISCONNECT);
	KUNIT_ASSERT_EQ(test, nla_put_u32(skb, NBD_ATTR_INDEX, NL_INDEX), 0);
	nl_end(test, skb);
	KUNIT_EXPECT_EQ(test, nl_request(test, skb), 0);
	KUNIT_EXPECT_FALSE(test, nl_device_configured(NL_INDEX));
}

/* RECONFIGURE, DISCONNECT and STATUS on bad targets */

static void nbd_netlink_reconfigure_unconnected(struct kunit *test)
{
	struct sk_buff *skb = nl_msg(test, NBD_CMD_RECONFIGURE);

	KUNIT_ASSERT_EQ(test, nla_put_u32(skb, NBD_ATTR_INDEX, NL_INDEX), 0);
	nl_put_u64(test, skb, NBD_ATTR_TIMEOUT, 5);
	nl_end(test, skb);
	KUNIT_EXPECT_EQ(test, nl_request(test, skb), -EINVAL);
}

static void nbd_netlink_missing_index(struct kunit *test)
{
	struct sk_buff *skb = nl_msg(test, NBD_CMD_DISCONNECT);

	nl_end(test, skb);
	KUNIT_EXPECT_EQ(test, nl_request(test, skb), -EINVAL);
	skb = nl_msg(test, NBD_CMD_DISCONNECT);
	KUNIT_ASSERT_EQ(test, nla_put_u32(skb, NBD_ATTR_INDEX, 999999), 0);
	nl_end(test, skb);
	KUNIT_EXPECT_EQ(test, nl_request(test, skb), -EINVAL);
}

static void nbd_netlink_backend_mismatch(struct kunit *test)
{
	struct sk_buff *skb;
	int fd;

	/* Arrange: connected with a backend identifier */
	fd = nl_make_fd(test, NL_STREAM);
	KUNIT_ASSERT_GE(test, fd, 0);
	skb = nl_msg(test, NBD_CMD_CONNECT);
	KUNIT_ASSERT_EQ(test, nla_put_u32(skb, NBD_ATTR_INDEX, NL_INDEX), 0);
	nl_put_u64(test, skb, NBD_ATTR_SIZE_BYTES, MB);
	KUNIT_ASSERT_EQ(test, nla_put_string(skb, NBD_ATTR_BACKEND_IDENTIFIER,
					     "disk-a"), 0);
	nl_put_socks(test, skb, &fd, 1);
	nl_end(test, skb);
	KUNIT_ASSERT_EQ(test, nl_request(test, skb), 0);

	/* Act + Assert: another identifier, then none, are refused */
	skb = nl_msg(test, NBD_CMD_RECONFIGURE);
	KUNIT_ASSERT_EQ(test, nla_put_u32(skb, NBD_ATTR_INDEX, NL_INDEX), 0);
	KUNIT_ASSERT_EQ(test, nla_put_string(skb, NBD_ATTR_BACKEND_IDENTIFIER,
					     "disk-b"), 0);
	nl_end(test, skb);
	KUNIT_EXPECT_EQ(test, nl_request(test, skb), -EINVAL);

	skb = nl_msg(test, NBD_CMD_RECONFIGURE);
	KUNIT_ASSERT_EQ(test, nla_put_u32(skb, NBD_ATTR_INDEX, NL_INDEX), 0);
	nl_end(test, skb);
	KUNIT_EXPECT_EQ(test, nl_request(test, skb), -EINVAL);

	/* the right one is accepted; no dead connection to replace */
	skb = nl_msg(test, NBD_CMD_RECONFIGURE);
	KUNIT_ASSERT_EQ(test, nla_put_u32(skb, NBD_ATTR_INDEX, NL_INDEX), 0);
	KUNIT_ASSERT_EQ(test, nla_put_string(skb, NBD_ATTR_BACKEND_IDENTIFIER,
					     "disk-a"), 0);
	fd = nl_make_fd(test, NL_STREAM);
	nl_put_socks(test, skb, &fd, 1);
	nl_end(test, skb);
	KUNIT_EXPECT_EQ(test, nl_request(test, skb), -ENOSPC);
	KUNIT_EXPECT_TRUE(test, nl_device_configured(NL_INDEX));
}

static void nbd_netlink_status(struct kunit *test)
{
	struct nl_fixture *fx = test->priv;
	struct sk_buff *skb = nl_msg(test, NBD_CMD_STATUS);

	KUNIT_ASSERT_EQ(test, nla_put_u32(skb, NBD_ATTR_INDEX, 0), 0);
	nl_end(test, skb);
	KUNIT_EXPECT_EQ(test, nl_request(test, skb), 0);
	KUNIT_EXPECT_FALSE(test, fx->got_index);
}

static struct kunit_case nbd_netlink_cases[] = {
	KUNIT_CASE_PARAM(nbd_netlink_connect, connect_gen_params),
	KUNIT_CASE(nbd_netlink_reconfigure_unconnected),
	KUNIT_CASE(nbd_netlink_missing_index),
	KUNIT_CASE(nbd_netlink_backend_mismatch),
	KUNIT_CASE(nbd_netlink_status),
	{}
};

static struct kunit_suite nbd_netlink_suite = {
	.name = "nbd_netlink",
	.init = nl_fixture_init,
	.exit = nl_fixture_exit,
	.test_cases = nbd_netlink_cases,
};

kunit_test_suite(nbd_netlink_suite);
