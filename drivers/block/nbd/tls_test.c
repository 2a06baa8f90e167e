// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for kernel TLS sockets: suite nbd_tls.
 *
 * What a TLS record other than application data means (a table, no
 * sockets), then real kTLS sockets: a loopback TCP pair with fixed keys
 * installed on both ends in the kernel, the way nbdctl installs the keys
 * GnuTLS negotiated.  The server end sends application data and control
 * records (TLS_SET_RECORD_TYPE); the client end is what the driver would
 * be handed, and is read the way the driver reads it.
 *
 * The socket cases need CONFIG_TLS.  The UML configuration
 * (.kunitconfig) leaves it out, because adding it rebuilds the whole UML
 * kernel (13 minutes on two cores): there they are skipped with that
 * reason, and they run for real on the debug kernel (KASAN, lockdep,
 * TLS built in), where the selftest nbd_kunit.sh wants every case of
 * this suite passed and none skipped.
 */
#include <kunit/test.h>
#include <linux/delay.h>
#include <linux/in.h>
#include <linux/jiffies.h>
#include <linux/net.h>
#include <linux/netdevice.h>
#include <linux/random.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>
#include <linux/socket.h>
#include <linux/sockptr.h>
#include <linux/string.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include <net/tcp.h>
#include <uapi/linux/tls.h>

#include "nbd.h"
#include "transport.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

/* TLS content types (RFC 8446 section 5.1) */
#define CT_CCS		20
#define CT_ALERT	21
#define CT_HANDSHAKE	22
#define CT_DATA		23
#define CT_HEARTBEAT	24

#define TLS_TEXT	96	/* what nbd_tls_rx_error() gives for the text */
#define TLS_WAIT	(2 * HZ) /* no socket operation waits longer */
#define TLS_SOCKS	4

/* Which halves of a kTLS session to set up on a socket. */
#define SET_ULP		BIT(0)
#define SET_TX		BIT(1)
#define SET_RX		BIT(2)
#define SET_ALL		(SET_ULP | SET_TX | SET_RX)

/* The key material of each direction (client to server and back). */
#define SEED_C2S	0x10
#define SEED_S2C	0x60

struct tls_fixture {
	struct socket *socks[TLS_SOCKS];
	int nsocks;
	struct nbd_device *nbd;
};

/* Record verdicts, table-driven */

struct verdict_case {
	const char *desc;
	u8 type;
	u8 data[8];
	size_t len;
	int ret;
	const char *text;	/* the sentence contains this */
};

static const struct verdict_case verdict_cases[] = {
	{ "application data", CT_DATA, { 'N', 'B', 'D' }, 3, 0,
	  "application data" },
	{ "application data, empty", CT_DATA, { }, 0, 0, "application data" },
	{ "alert close_notify", CT_ALERT, { 1, 0 }, 2, -ECONNRESET,
	  "warning alert close_notify (0)" },
	{ "alert close_notify at level fatal", CT_ALERT, { 2, 0 }, 2,
	  -ECONNRESET, "fatal alert close_notify (0)" },
	{ "alert internal_error", CT_ALERT, { 2, 80 }, 2, -ECONNABORTED,
	  "fatal alert internal_error (80)" },
	{ "alert bad_record_mac", CT_ALERT, { 2, 20 }, 2, -ECONNABORTED,
	  "bad_record_mac (20)" },
	{ "alert of an unknown level", CT_ALERT, { 7, 10 }, 2, -ECONNABORTED,
	  "unknown-level alert unexpected_message (10)" },
	{ "alert of an unknown description", CT_ALERT, { 2, 201 }, 2,
	  -ECONNABORTED, "fatal alert unknown alert (201)" },
	{ "alert of 1 byte", CT_ALERT, { 2 }, 1, -ECONNABORTED,
	  "alert of 1 bytes" },
	{ "alert of 0 bytes", CT_ALERT, { }, 0, -ECONNABORTED,
	  "alert of 0 bytes" },
	{ "alert with bytes after it", CT_ALERT, { 1, 0, 0xff, 0xff }, 4,
	  -ECONNRESET, "close_notify" },
	{ "handshake KeyUpdate", CT_HANDSHAKE, { 24, 0, 0, 1, 0 }, 5,
	  -ECONNABORTED, "KeyUpdate (handshake type 24)" },
	{ "handshake NewSessionTicket", CT_HANDSHAKE, { 4, 0, 0, 9 }, 4,
	  -ECONNABORTED, "NewSessionTicket (handshake type 4)" },
	{ "handshake HelloRequest", CT_HANDSHAKE, { 0, 0, 0, 0 }, 4,
	  -ECONNABORTED, "HelloRequest (handshake type 0)" },
	{ "handshake of an unknown type", CT_HANDSHAKE, { 200, 0, 0, 0 }, 4,
	  -ECONNABORTED, "handshake message (handshake type 200)" },
	{ "handshake, empty", CT_HANDSHAKE, { }, 0, -ECONNABORTED,
	  "empty TLS handshake record" },
	{ "change_cipher_spec", CT_CCS, { 1 }, 1, -ECONNABORTED,
	  "change_cipher_spec" },
	{ "heartbeat", CT_HEARTBEAT, { 1, 0, 16 }, 3, -ECONNABORTED,
	  "heartbeat" },
	{ "unknown content type 99", 99, { 0x42 }, 1, -ECONNABORTED,
	  "unknown content type 99" },
	{ "unknown content type 0", 0, { }, 0, -ECONNABORTED,
	  "unknown content type 0" },
	{ "unknown content type 255", 255, { 1, 2, 3 }, 3, -ECONNABORTED,
	  "unknown content type 255" },
};

static void verdict_desc(const struct verdict_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(verdict, verdict_cases, verdict_desc);

static void nbd_tls_verdict(struct kunit *test)
{
	const struct verdict_case *c = test->param_value;
	char buf[TLS_TEXT + 8];
	int ret;

	memset(buf, 'X', sizeof(buf));

	/* Act: no bytes, no pointer: the verdict must not look */
	ret = nbd_tls_record_verdict(c->type, c->len ? c->data : NULL, c->len,
				     buf, TLS_TEXT);

	/* Assert */
	KUNIT_EXPECT_EQ(test, ret, c->ret);
	KUNIT_ASSERT_LT(test, strnlen(buf, TLS_TEXT), (size_t)TLS_TEXT);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(buf, c->text),
				  "text \"%s\" does not name \"%s\"", buf,
				  c->text);
	KUNIT_EXPECT_NULL(test, memchr_inv(buf + TLS_TEXT, 'X', 8));
}

/*
 * A buffer too small for the sentence gets its start, terminated, and
 * nothing past its end; the verdict does not depend on the room.
 */
static void nbd_tls_verdict_truncated(struct kunit *test)
{
	static const struct {
		u8 type;
		u8 data[2];
		size_t len;
		int ret;
	} recs[] = {
		{ CT_ALERT, { 1, 0 }, 2, -ECONNRESET },
		{ CT_ALERT, { 2, 80 }, 2, -ECONNABORTED },
		{ CT_HANDSHAKE, { 24 }, 1, -ECONNABORTED },
		{ 99, { }, 0, -ECONNABORTED },
		{ CT_DATA, { }, 0, 0 },
	};
	char full[TLS_TEXT], buf[32];
	size_t i, size;

	for (i = 0; i < ARRAY_SIZE(recs); i++) {
		KUNIT_ASSERT_EQ(test,
				nbd_tls_record_verdict(recs[i].type,
						       recs[i].data,
						       recs[i].len, full,
						       sizeof(full)),
				recs[i].ret);
		KUNIT_ASSERT_GE(test, strlen(full), (size_t)16);
		for (size = 0; size <= 16; size++) {
			memset(buf, 'X', sizeof(buf));

			KUNIT_EXPECT_EQ(test,
					nbd_tls_record_verdict(recs[i].type,
							       recs[i].data,
							       recs[i].len,
							       buf, size),
					recs[i].ret);

			if (size) {
				KUNIT_EXPECT_EQ_MSG(test, buf[size - 1], '\0',
						    "record %zu, size %zu", i,
						    size);
				KUNIT_EXPECT_EQ(test, strlen(buf), size - 1);
				KUNIT_EXPECT_EQ(test,
						strncmp(buf, full, size - 1),
						0);
			}
			KUNIT_EXPECT_NULL_MSG(test,
					      memchr_inv(buf + size, 'X',
							 sizeof(buf) - size),
					      "record %zu, size %zu: written past the end",
					      i, size);
		}
	}
}

/* Sockets */

static int tls_fixture_init(struct kunit *test)
{
	struct tls_fixture *fx = kunit_kzalloc(test, sizeof(*fx), GFP_KERNEL);

	if (!fx)
		return -ENOMEM;
	test->priv = fx;
	return 0;
}

static void tls_fixture_exit(struct kunit *test)
{
	struct tls_fixture *fx = test->priv;

	if (!fx)
		return;
	while (fx->nsocks)
		sock_release(fx->socks[--fx->nsocks]);
	if (fx->nbd)
		nbd_put(fx->nbd);
}

static void tls_keep(struct kunit *test, struct socket *sock)
{
	struct tls_fixture *fx = test->priv;

	if (WARN_ON(fx->nsocks == TLS_SOCKS)) {
		sock_release(sock);
		KUNIT_FAIL_AND_ABORT(test, "more than %d sockets", TLS_SOCKS);
	}
	fx->socks[fx->nsocks++] = sock;
}

static void tls_bound_waits(struct socket *sock)
{
	WRITE_ONCE(sock->sk->sk_rcvtimeo, TLS_WAIT);
	WRITE_ONCE(sock->sk->sk_sndtimeo, TLS_WAIT);
}

/* A connected loopback TCP pair; the fixture releases both. */
static void tls_tcp_pair(struct kunit *test, struct socket **client,
			 struct socket **server)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct net_device *lo = init_net.loopback_dev;
	struct socket *l, *c, *s;
	int err;

	/* Nothing brings lo up in a KUnit kernel. */
	rtnl_lock();
	err = dev_change_flags(lo, lo->flags | IFF_UP, NULL);
	rtnl_unlock();
	if (err)
		kunit_skip(test, "cannot bring the loopback device up: %d",
			   err);

	err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP,
			       &l);
	KUNIT_ASSERT_EQ(test, err, 0);
	tls_keep(test, l);
	tls_bound_waits(l);
	KUNIT_ASSERT_EQ(test, kernel_bind(l, (struct sockaddr *)&sin,
					  sizeof(sin)), 0);
	KUNIT_ASSERT_EQ(test, kernel_listen(l, 1), 0);
	KUNIT_ASSERT_GT(test, kernel_getsockname(l, (struct sockaddr *)&sin),
			0);

	err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP,
			       &c);
	KUNIT_ASSERT_EQ(test, err, 0);
	tls_keep(test, c);
	tls_bound_waits(c);
	KUNIT_ASSERT_EQ(test, kernel_connect(c, (struct sockaddr *)&sin,
					     sizeof(sin), 0), 0);
	KUNIT_ASSERT_EQ(test, kernel_accept(l, &s, 0), 0);
	tls_keep(test, s);
	tls_bound_waits(s);
	/* Each record goes out when sent. */
	tcp_sock_set_nodelay(s->sk);
	*client = c;
	*server = s;
}

static void tls_keys(struct tls12_crypto_info_aes_gcm_128 *ci, u16 version,
		     u8 seed)
{
	memset(ci, 0, sizeof(*ci));
	ci->info.version = version;
	ci->info.cipher_type = TLS_CIPHER_AES_GCM_128;
	memset(ci->iv, seed, sizeof(ci->iv));
	memset(ci->key, seed + 1, sizeof(ci->key));
	memset(ci->salt, seed + 2, sizeof(ci->salt));
	/* rec_seq 0: the first record of each direction */
}

static int tls_setsockopt(struct socket *sock, int level, int name,
			  void *val, unsigned int len)
{
	return sock->ops->setsockopt(sock, level, name, KERNEL_SOCKPTR(val),
				     len);
}

/*
 * Set up what @set says of a kTLS session on @sock: it sends with the
 * keys of @tx_seed and receives with those of @rx_seed.
 */
static void tls_setup(struct kunit *test, struct socket *sock, u16 version,
		      unsigned int set, u8 tx_seed, u8 rx_seed)
{
	struct tls12_crypto_info_aes_gcm_128 ci;
	int err;

	if (set & SET_ULP) {
		err = tls_setsockopt(sock, SOL_TCP, TCP_ULP, "tls",
				     sizeof("tls"));
		if (err == -ENOENT)
			kunit_skip(test, "no kernel TLS (CONFIG_TLS): TCP_ULP returned %d",
				   err);
		KUNIT_ASSERT_EQ_MSG(test, err, 0, "TCP_ULP \"tls\"");
	}
	if (set & SET_TX) {
		tls_keys(&ci, version, tx_seed);
		err = tls_setsockopt(sock, SOL_TLS, TLS_TX, &ci, sizeof(ci));
		KUNIT_ASSERT_EQ_MSG(test, err, 0,
				    "TLS_TX (CONFIG_CRYPTO_GCM, CRYPTO_AES?)");
	}
	if (set & SET_RX) {
		tls_keys(&ci, version, rx_seed);
		err = tls_setsockopt(sock, SOL_TLS, TLS_RX, &ci, sizeof(ci));
		KUNIT_ASSERT_EQ_MSG(test, err, 0, "TLS_RX");
	}
}

/* A loopback pair with a complete kTLS session on both ends. */
static void tls_pair(struct kunit *test, u16 version, struct socket **client,
		     struct socket **server)
{
	tls_tcp_pair(test, client, server);
	tls_setup(test, *client, version, SET_ALL, SEED_C2S, SEED_S2C);
	tls_setup(test, *server, version, SET_ALL, SEED_S2C, SEED_C2S);
}

/* Send one record of content type @type (TLS_SET_RECORD_TYPE). */
static int tls_send_record(struct socket *sock, u8 type, const void *data,
			   size_t len)
{
	u8 cbuf[CMSG_SPACE(sizeof(u8))] __aligned(sizeof(size_t)) = { };
	struct cmsghdr *cmsg = (struct cmsghdr *)cbuf;
	struct kvec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr msg = {
		.msg_control = cbuf,
		.msg_controllen = sizeof(cbuf),
		.msg_flags = MSG_NOSIGNAL,
	};

	cmsg->cmsg_level = SOL_TLS;
	cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
	cmsg->cmsg_len = CMSG_LEN(sizeof(u8));
	*(u8 *)CMSG_DATA(cmsg) = type;
	return kernel_sendmsg(sock, &msg, &iov, 1, len);
}

static int tls_send(struct socket *sock, const void *data, size_t len)
{
	struct kvec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };

	return kernel_sendmsg(sock, &msg, &iov, 1, len);
}

/* A plain recvmsg, as the driver's receiver does it: no control buffer. */
static int tls_recv(struct socket *sock, void *buf, size_t len, int flags)
{
	struct kvec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { };

	return kernel_recvmsg(sock, &msg, &iov, 1, len, flags);
}

/* Wait, boundedly, until all @tx has sent has reached @rx. */
static void tls_wait_arrived(struct kunit *test, struct socket *rx,
			     struct socket *tx)
{
	unsigned long end = jiffies + TLS_WAIT;

	while (READ_ONCE(tcp_sk(rx->sk)->rcv_nxt) !=
	       READ_ONCE(tcp_sk(tx->sk)->write_seq)) {
		if (time_after(jiffies, end))
			KUNIT_FAIL_AND_ABORT(test,
					     "what the server sent did not arrive in %u ms",
					     jiffies_to_msecs(TLS_WAIT));
		usleep_range(1000, 2000);
	}
}

/*
 * nbd_tls_peek_record(), which must neither wait nor consume: a second
 * call sees the same record.
 */
static int tls_peek(struct kunit *test, struct socket *sock, char *what)
{
	unsigned long start = jiffies;
	int ret;

	memset(what, 0, TLS_TEXT);
	ret = nbd_tls_peek_record(sock, what, TLS_TEXT);
	KUNIT_EXPECT_LT_MSG(test, jiffies - start, (unsigned long)TLS_WAIT / 4,
			    "nbd_tls_peek_record() waited");
	KUNIT_EXPECT_LT(test, strnlen(what, TLS_TEXT), (size_t)TLS_TEXT);
	return ret;
}

/* nbd_check_sock(), the check the ioctl and netlink paths make */

struct sock_check_case {
	const char *desc;
	unsigned int set;
	int ret;
};

static const struct sock_check_case sock_check_cases[] = {
	{ "plain TCP", 0, 0 },
	{ "kTLS both ways", SET_ALL, 0 },
	{ "kTLS with TLS_TX only", SET_ULP | SET_TX, -EINVAL },
	{ "kTLS with TLS_RX only", SET_ULP | SET_RX, -EINVAL },
	{ "TCP_ULP tls without keys", SET_ULP, -EINVAL },
};

static void sock_check_desc(const struct sock_check_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(sock_check, sock_check_cases, sock_check_desc);

static void nbd_tls_check_sock(struct kunit *test)
{
	const struct sock_check_case *c = test->param_value;
	struct tls_fixture *fx = test->priv;
	struct socket *client, *server;
	struct nbd_device *nbd;

	/* Arrange */
	nbd = nbd_find_or_create(-1);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, nbd);
	fx->nbd = nbd;
	tls_tcp_pair(test, &client, &server);
	tls_setup(test, client, TLS_1_3_VERSION, c->set, SEED_C2S, SEED_S2C);

	/* Act, Assert: the accepted end is the same kind of socket */
	KUNIT_EXPECT_EQ(test, nbd_check_sock(nbd, client, NULL), c->ret);
	KUNIT_EXPECT_EQ(test, nbd_check_sock(nbd, server, NULL), 0);
}

/* Versions, for the cases that run on both */

static const u16 versions[] = { TLS_1_2_VERSION, TLS_1_3_VERSION };

static void version_desc(const u16 *v, char *desc)
{
	snprintf(desc, KUNIT_PARAM_DESC_SIZE, "TLS 1.%d",
		 *v == TLS_1_3_VERSION ? 3 : 2);
}

KUNIT_ARRAY_PARAM(version, versions, version_desc);

/*
 * Application data reaches a plain recvmsg; nbd_tls_peek_record() finds
 * no control record to blame in it, and leaves it for the receiver.
 */
static void nbd_tls_app_data(struct kunit *test)
{
	static const char hello[] = "NBD over kernel TLS";
	const size_t big = 40000;	/* three records */
	const u16 *version = test->param_value;
	struct socket *client, *server;
	char what[TLS_TEXT], buf[sizeof(hello)];
	u8 *out, *in;
	size_t got;
	int ret;

	tls_pair(test, *version, &client, &server);
	out = kunit_kmalloc(test, big, GFP_KERNEL);
	in = kunit_kzalloc(test, big, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, out);
	KUNIT_ASSERT_NOT_NULL(test, in);
	get_random_bytes(out, big);

	/* nothing queued: no record, and no waiting for one */
	KUNIT_EXPECT_EQ(test, tls_peek(test, client, what), -EIO);

	KUNIT_ASSERT_EQ(test, tls_send(server, hello, sizeof(hello)),
			(int)sizeof(hello));
	tls_wait_arrived(test, client, server);
	KUNIT_EXPECT_EQ(test, tls_peek(test, client, what), -EIO);
	KUNIT_EXPECT_STREQ(test, what, "application data");
	KUNIT_EXPECT_EQ(test, tls_peek(test, client, what), -EIO);

	KUNIT_ASSERT_EQ(test, tls_recv(client, buf, sizeof(buf), 0),
			(int)sizeof(hello));
	KUNIT_EXPECT_MEMEQ(test, buf, hello, sizeof(hello));

	/* more than a record's worth, in one plain recvmsg after another */
	KUNIT_ASSERT_EQ(test, tls_send(server, out, big), (int)big);
	for (got = 0; got < big; got += ret) {
		ret = tls_recv(client, in + got, big - got, 0);
		KUNIT_ASSERT_GT_MSG(test, ret, 0, "after %zu bytes", got);
	}
	KUNIT_EXPECT_MEMEQ(test, in, out, big);
}

/* A control record from the server */

struct control_case {
	const char *desc;
	u16 version;
	u8 type;
	u8 data[8];
	size_t len;
	int ret;
	const char *text;
};

static const struct control_case control_cases[] = {
	{ "TLS 1.3 alert internal_error", TLS_1_3_VERSION, CT_ALERT,
	  { 2, 80 }, 2, -ECONNABORTED, "fatal alert internal_error (80)" },
	{ "TLS 1.3 KeyUpdate", TLS_1_3_VERSION, CT_HANDSHAKE,
	  { 24, 0, 0, 1, 0 }, 5, -ECONNABORTED,
	  "KeyUpdate (handshake type 24)" },
	{ "TLS 1.3 NewSessionTicket", TLS_1_3_VERSION, CT_HANDSHAKE,
	  { 4, 0, 0, 4, 1, 2, 3, 4 }, 8, -ECONNABORTED,
	  "NewSessionTicket (handshake type 4)" },
	{ "TLS 1.3 record of type 99", TLS_1_3_VERSION, 99, { 0x42 }, 1,
	  -ECONNABORTED, "unknown content type 99" },
	{ "TLS 1.3 close_notify", TLS_1_3_VERSION, CT_ALERT, { 1, 0 }, 2,
	  -ECONNRESET, "warning alert close_notify (0)" },
	{ "TLS 1.2 alert internal_error", TLS_1_2_VERSION, CT_ALERT,
	  { 2, 80 }, 2, -ECONNABORTED, "fatal alert internal_error (80)" },
	{ "TLS 1.2 change_cipher_spec", TLS_1_2_VERSION, CT_CCS, { 1 }, 1,
	  -ECONNABORTED, "change_cipher_spec" },
	{ "TLS 1.2 close_notify", TLS_1_2_VERSION, CT_ALERT, { 1, 0 }, 2,
	  -ECONNRESET, "warning alert close_notify (0)" },
};

static void control_desc(const struct control_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(control, control_cases, control_desc);

/*
 * A plain recvmsg fails with -EIO at the record; nbd_tls_peek_record()
 * names it, as often as asked, and the record stays at the head.
 */
static void nbd_tls_control_record(struct kunit *test)
{
	const struct control_case *c = test->param_value;
	struct socket *client, *server;
	char what[TLS_TEXT], again[TLS_TEXT];
	u8 buf[64];

	/* Arrange */
	tls_pair(test, c->version, &client, &server);
	KUNIT_ASSERT_EQ(test, tls_send_record(server, c->type, c->data,
					      c->len), (int)c->len);
	tls_wait_arrived(test, client, server);

	/* Act, Assert */
	KUNIT_EXPECT_EQ(test, tls_recv(client, buf, sizeof(buf), 0), -EIO);
	KUNIT_EXPECT_EQ(test, tls_peek(test, client, what), c->ret);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(what, c->text),
				  "text \"%s\" does not name \"%s\"", what,
				  c->text);
	KUNIT_EXPECT_EQ(test, tls_peek(test, client, again), c->ret);
	KUNIT_EXPECT_STREQ(test, again, what);
	/* still there for the receiver, which fails the same way */
	KUNIT_EXPECT_EQ(test, tls_recv(client, buf, sizeof(buf), MSG_DONTWAIT),
			-EIO);
	KUNIT_EXPECT_EQ(test, tls_peek(test, client, again), c->ret);
}

/*
 * Data queued before a control record comes out first, in full; the
 * next recvmsg stops at the record.
 */
static void nbd_tls_data_then_control(struct kunit *test)
{
	static const char data[] = "the last reply before the alert";
	static const u8 alert[] = { 2, 80 };
	const u16 *version = test->param_value;
	struct socket *client, *server;
	char what[TLS_TEXT], buf[128];

	/* Arrange: both records wait at the client */
	tls_pair(test, *version, &client, &server);
	KUNIT_ASSERT_EQ(test, tls_send(server, data, sizeof(data)),
			(int)sizeof(data));
	KUNIT_ASSERT_EQ(test, tls_send_record(server, CT_ALERT, alert,
					      sizeof(alert)),
			(int)sizeof(alert));
	tls_wait_arrived(test, client, server);

	/* Act, Assert */
	memset(buf, 0, sizeof(buf));
	KUNIT_ASSERT_EQ(test, tls_recv(client, buf, sizeof(buf), 0),
			(int)sizeof(data));
	KUNIT_EXPECT_MEMEQ(test, buf, data, sizeof(data));
	KUNIT_EXPECT_EQ(test, tls_recv(client, buf, sizeof(buf), 0), -EIO);
	KUNIT_EXPECT_EQ(test, tls_peek(test, client, what), -ECONNABORTED);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(what, "internal_error"),
				  "text \"%s\"", what);
}

static struct kunit_case nbd_tls_cases[] = {
	KUNIT_CASE_PARAM(nbd_tls_verdict, verdict_gen_params),
	KUNIT_CASE(nbd_tls_verdict_truncated),
	KUNIT_CASE_PARAM(nbd_tls_check_sock, sock_check_gen_params),
	KUNIT_CASE_PARAM(nbd_tls_app_data, version_gen_params),
	KUNIT_CASE_PARAM(nbd_tls_control_record, control_gen_params),
	KUNIT_CASE_PARAM(nbd_tls_data_then_control, version_gen_params),
	{}
};

static struct kunit_suite nbd_tls_suite = {
	.name = "nbd_tls",
	.init = tls_fixture_init,
	.exit = tls_fixture_exit,
	.test_cases = nbd_tls_cases,
};

kunit_test_suite(nbd_tls_suite);
