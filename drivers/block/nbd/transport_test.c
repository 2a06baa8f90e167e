// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for the NBD transport: suite nbd_transport.
 *
 * A real nbd device is connected to an in-kernel fake server over real
 * kernel sockets (an AF_UNIX stream pair, or loopback TCP), and real bios
 * are submitted to its disk.  The fake server serves a small memory disk
 * and misbehaves on demand, the way a hostile or broken server would.
 */
#include <kunit/test.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/delay.h>
#include <linux/file.h>
#include <linux/in.h>
#include <linux/kthread.h>
#include <linux/net.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/sizes.h>
#include <linux/vmalloc.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "nbd.h"
#include "transport.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

#define FAKE_SIZE	SZ_1M
#define FAKE_BS		4096
#define FAKE_CONNS	2
#define FAKE_LOG	256

enum fake_mode {
	FAKE_GOOD,
	FAKE_WRONG_MAGIC,	/* reply magic off by one bit */
	FAKE_UNKNOWN_COOKIE,	/* cookie of no request */
	FAKE_DOUBLE_REPLY,	/* the same reply twice */
	FAKE_OTHER_CONN,	/* the reply goes out on the other connection */
	FAKE_STALE_GEN,		/* the previous generation's cookie */
	FAKE_STALE_REQUEUE,	/* drop the connection, then answer the resent
				 * request with the first transmission's cookie
				 */
	FAKE_SHORT_PAYLOAD,	/* half the read data, then close */
	FAKE_LONG_PAYLOAD,	/* read data followed by 16 bytes of junk */
	FAKE_LATE_REPLY,	/* reply after the request timed out */
	FAKE_CLOSE_MID_REPLY,	/* half a reply header, then close */
	FAKE_ENOSPC,		/* a well-formed ENOSPC error */
	FAKE_REORDER,		/* hold a reply, answer the next request first */
	FAKE_STALE_RESENT,	/* (second half of FAKE_STALE_REQUEUE) */
	FAKE_ESHUTDOWN,		/* NBD_ESHUTDOWN, and go on serving */
	FAKE_EARLY_WRITE_REPLY,	/* answer a write before reading its data,
				 * then close
				 */
	FAKE_SR_SCRIPT,		/* answer with fs->script's chunks */
};

struct sr_script;

struct fake_server;

struct fake_conn {
	struct fake_server *fs;
	struct socket *sock;
	struct task_struct *thread;
	int index;
	int writes;		/* NBD_CMD_WRITE requests served */
};

struct fake_log {
	u16 type;
	u16 flags;
	u64 offset;
	u32 length;
	int conn;
};

struct fake_server {
	struct kunit *test;
	struct fake_conn conns[FAKE_CONNS];
	int nconns;
	u8 *disk;
	enum fake_mode mode;
	u16 trigger_type;
	bool armed;		/* misbehave from now on */
	bool triggered;		/* ... but only once */
	int triggered_conn;	/* ... on this connection */
	unsigned int late_ms;
	unsigned int chunk;	/* send replies this many bytes at a time */
	/* while gate_closed, connection gate_conn reads no requests */
	bool gate_closed;
	int gate_conn;
	wait_queue_head_t gate_wq;
	struct mutex lock;	/* replies, log and trigger state */
	struct fake_log log[FAKE_LOG];
	int nlog;
	u64 saved_cookie;
	/* FAKE_REORDER */
	bool holding;
	struct nbd_reply held;
	u64 held_offset;
	u32 held_length;
	int held_conn;
	/* structured replies: good reads get one OFFSET_DATA chunk */
	bool structured;
	const struct sr_script *script;
};

struct nbd_fixture {
	struct fake_server fs;
	struct nbd_device *nbd;
	bool structured;	/* the session speaks structured replies */
};

static int fake_recv(struct socket *sock, void *buf, size_t len)
{
	struct kvec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { };
	int ret;

	while (iov.iov_len) {
		ret = kernel_recvmsg(sock, &msg, &iov, 1, iov.iov_len,
				     MSG_WAITALL);
		if (ret <= 0)
			return ret ? ret : -ECONNRESET;
		iov.iov_base += ret;
		iov.iov_len -= ret;
	}
	return 0;
}

/* Send @len bytes, in separate writes of at most @chunk (0: at once). */
static int fake_send_chunked(struct socket *sock, const void *buf, size_t len,
			     size_t chunk)
{
	struct kvec iov = { .iov_base = (void *)buf };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
	int ret;

	while (len) {
		iov.iov_len = chunk ? min(len, chunk) : len;
		ret = kernel_sendmsg(sock, &msg, &iov, 1, iov.iov_len);
		if (ret <= 0)
			return ret ? ret : -EPIPE;
		iov.iov_base += ret;
		len -= ret;
		/* thousands of 1-byte writes: no RCU stall on a slow kernel */
		if (chunk)
			cond_resched();
	}
	return 0;
}

static int fake_send(struct socket *sock, const void *buf, size_t len)
{
	return fake_send_chunked(sock, buf, len, 0);
}

static int fake_chunk_hdr(struct fake_server *fs, struct socket *sock,
			  u16 flags, u16 type, u64 cookie, u32 length)
{
	struct nbd_chunk_hdr h = {
		.magic = cpu_to_be32(NBD_STRUCTURED_REPLY_MAGIC),
		.flags = cpu_to_be16(flags),
		.type = cpu_to_be16(type),
		.cookie = cpu_to_be64(cookie),
		.length = cpu_to_be32(length),
	};

	return fake_send_chunked(sock, &h, sizeof(h), fs->chunk);
}

/* Send a reply and, for a successful read, its data; under fs->lock. */
static int fake_reply(struct fake_server *fs, int conn, u64 cookie,
		      u32 error, u64 offset, u32 length)
{
	struct socket *sock = fs->conns[conn].sock;
	struct nbd_reply r = {
		.magic = cpu_to_be32(NBD_REPLY_MAGIC),
		.error = cpu_to_be32(error),
		.cookie = cpu_to_be64(cookie),
	};
	__be64 off = cpu_to_be64(offset);
	int ret;

	if (fs->structured && length && !error) {
		/* A read: one data chunk that is also the last. */
		ret = fake_chunk_hdr(fs, sock, NBD_REPLY_FLAG_DONE,
				     NBD_REPLY_TYPE_OFFSET_DATA, cookie,
				     sizeof(off) + length);
		ret = ret ?: fake_send_chunked(sock, &off, sizeof(off),
					       fs->chunk);
		return ret ?: fake_send_chunked(sock, fs->disk + offset,
						length, fs->chunk);
	}
	ret = fake_send_chunked(sock, &r, sizeof(r), fs->chunk);
	if (!ret && length)
		ret = fake_send_chunked(sock, fs->disk + offset, length,
					fs->chunk);
	return ret;
}

/* Returns true when this request is the one to misbehave on. */
static bool fake_trigger(struct fake_server *fs, u16 type)
{
	if (!fs->armed || fs->triggered || fs->mode == FAKE_GOOD ||
	    type != fs->trigger_type)
		return false;
	fs->triggered = true;
	return true;
}

static int fake_script(struct fake_server *fs, struct socket *sock,
		       u64 cookie, u64 off, u32 len);

/* Answer one request in the configured way; under fs->lock. */
static int fake_misbehave(struct fake_conn *fc, u64 cookie, u64 off, u32 len)
{
	struct fake_server *fs = fc->fs;
	struct socket *sock = fc->sock;
	struct nbd_reply r = {
		.magic = cpu_to_be32(NBD_REPLY_MAGIC),
		.cookie = cpu_to_be64(cookie),
	};
	static const u8 junk[16] = { 0xde, 0xad, 0xbe, 0xef };
	int ret;

	switch (fs->mode) {
	case FAKE_WRONG_MAGIC:
		r.magic = cpu_to_be32(NBD_REPLY_MAGIC ^ 1);
		return fake_send(sock, &r, sizeof(r));
	case FAKE_UNKNOWN_COOKIE:
		r.cookie = cpu_to_be64(~cookie);
		return fake_send(sock, &r, sizeof(r));
	case FAKE_DOUBLE_REPLY:
		ret = fake_reply(fs, fc->index, cookie, 0, off, len);
		return ret ?: fake_reply(fs, fc->index, cookie, 0, off, len);
	case FAKE_OTHER_CONN:
		return fake_reply(fs, !fc->index, cookie, 0, off, len);
	case FAKE_STALE_GEN:
		return fake_reply(fs, fc->index, cookie - (1ULL << 32), 0, off,
				  len);
	case FAKE_STALE_REQUEUE:
		/* First transmission: remember it and drop the connection. */
		fs->saved_cookie = cookie;
		fs->triggered = false;
		fs->mode = FAKE_STALE_RESENT;
		kernel_sock_shutdown(sock, SHUT_RDWR);
		return -ECONNRESET;
	case FAKE_STALE_RESENT:
		/* The resent request: answer with the old transmission. */
		return fake_reply(fs, fc->index, fs->saved_cookie, 0, off, len);
	case FAKE_SHORT_PAYLOAD:
		ret = fake_send(sock, &r, sizeof(r));
		ret = ret ?: fake_send(sock, fs->disk + off, len / 2);
		kernel_sock_shutdown(sock, SHUT_RDWR);
		return ret ?: -ECONNRESET;
	case FAKE_LONG_PAYLOAD:
		ret = fake_reply(fs, fc->index, cookie, 0, off, len);
		return ret ?: fake_send(sock, junk, sizeof(junk));
	case FAKE_LATE_REPLY:
		mutex_unlock(&fs->lock);
		msleep(fs->late_ms);
		mutex_lock(&fs->lock);
		return fake_reply(fs, fc->index, cookie, 0, off, len);
	case FAKE_CLOSE_MID_REPLY:
		ret = fake_send(sock, &r, sizeof(r) / 2);
		kernel_sock_shutdown(sock, SHUT_RDWR);
		return ret ?: -ECONNRESET;
	case FAKE_ENOSPC:
		return fake_reply(fs, fc->index, cookie, NBD_ENOSPC, 0, 0);
	case FAKE_ESHUTDOWN:
		return fake_reply(fs, fc->index, cookie, NBD_ESHUTDOWN, 0, 0);
	case FAKE_SR_SCRIPT:
		return fake_script(fs, sock, cookie, off, len);
	case FAKE_REORDER:
		/* Hold this one; the next request releases it. */
		fs->holding = true;
		fs->held = r;
		fs->held_offset = off;
		fs->held_length = len;
		fs->held_conn = fc->index;
		fs->triggered = true;
		return 0;
	default:
		return -EINVAL;
	}
}

static int fake_serve_one(struct fake_conn *fc)
{
	struct fake_server *fs = fc->fs;
	struct nbd_request req;
	u16 type, flags;
	u64 cookie, off;
	u32 len, rlen;
	int ret;

	ret = fake_recv(fc->sock, &req, sizeof(req));
	if (ret)
		return ret;
	if (be32_to_cpu(req.magic) != NBD_REQUEST_MAGIC)
		return -EPROTO;
	type = be32_to_cpu(req.type) & 0xffff;
	flags = be32_to_cpu(req.type) >> 16;
	cookie = be64_to_cpu(req.cookie);
	off = be64_to_cpu(req.from);
	len = be32_to_cpu(req.len);
	if (type == NBD_CMD_DISC) {
		/* Logged, and reading goes on: nothing may follow it. */
		mutex_lock(&fs->lock);
		if (fs->nlog < FAKE_LOG)
			fs->log[fs->nlog++] = (struct fake_log) {
				type, flags, off, len, fc->index };
		mutex_unlock(&fs->lock);
		return 0;
	}
	if (off > FAKE_SIZE || len > FAKE_SIZE - off)
		return -EINVAL;

	if (type == NBD_CMD_WRITE) {
		bool early;

		mutex_lock(&fs->lock);
		early = fs->mode == FAKE_EARLY_WRITE_REPLY &&
			fake_trigger(fs, type);
		if (early) {
			fs->triggered_conn = fc->index;
			ret = fake_reply(fs, fc->index, cookie, 0, 0, 0);
			kernel_sock_shutdown(fc->sock, SHUT_RDWR);
		}
		mutex_unlock(&fs->lock);
		if (early)
			return ret ?: -ECONNRESET;
		ret = fake_recv(fc->sock, fs->disk + off, len);
		if (ret)
			return ret;
	}

	mutex_lock(&fs->lock);
	if (fs->nlog < FAKE_LOG)
		fs->log[fs->nlog++] = (struct fake_log) {
			type, flags, off, len, fc->index };
	if (type == NBD_CMD_WRITE)
		fc->writes++;
	if (type == NBD_CMD_TRIM || type == NBD_CMD_WRITE_ZEROES)
		memset(fs->disk + off, 0, len);
	rlen = type == NBD_CMD_READ ? len : 0;

	if (fake_trigger(fs, type)) {
		fs->triggered_conn = fc->index;
		ret = fake_misbehave(fc, cookie, off, rlen);
	} else {
		ret = fake_reply(fs, fc->index, cookie, 0, off, rlen);
		if (!ret && fs->holding) {
			fs->holding = false;
			ret = fake_reply(fs, fs->held_conn,
					 be64_to_cpu(fs->held.cookie), 0,
					 fs->held_offset, fs->held_length);
		}
	}
	mutex_unlock(&fs->lock);
	return ret;
}

static int fake_thread(void *data)
{
	struct fake_conn *fc = data;
	struct fake_server *fs = fc->fs;

	while (!kthread_should_stop()) {
		wait_event(fs->gate_wq, !READ_ONCE(fs->gate_closed) ||
			   fs->gate_conn != fc->index ||
			   kthread_should_stop());
		if (kthread_should_stop() || fake_serve_one(fc))
			break;
	}
	/* Wait to be stopped, so that the task outlives nothing it uses. */
	while (!kthread_should_stop())
		usleep_range(10000, 20000);
	return 0;
}

static int fake_socketpair(struct socket **client, struct socket **server)
{
	struct socket *a, *b;
	int err;

	err = sock_create_kern(&init_net, AF_UNIX, SOCK_STREAM, 0, &a);
	if (err)
		return err;
	err = sock_create_kern(&init_net, AF_UNIX, SOCK_STREAM, 0, &b);
	if (err)
		goto out_a;
	err = a->ops->socketpair(a, b);
	if (err)
		goto out_b;
	*client = a;
	*server = b;
	return 0;

out_b:
	sock_release(b);
out_a:
	sock_release(a);
	return err;
}

static int fake_tcp_pair(struct socket **client, struct socket **server)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct net_device *lo = init_net.loopback_dev;
	struct socket *l, *c, *s;
	int err;

	/* No init system brings lo up in a KUnit kernel. */
	rtnl_lock();
	err = dev_change_flags(lo, lo->flags | IFF_UP, NULL);
	rtnl_unlock();
	if (err)
		return err;

	err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP, &l);
	if (err)
		return err;
	err = kernel_bind(l, (struct sockaddr *)&sin, sizeof(sin));
	err = err ?: kernel_listen(l, 1);
	err = err ?: (kernel_getsockname(l, (struct sockaddr *)&sin) < 0);
	if (err)
		goto out_l;
	err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP, &c);
	if (err)
		goto out_l;
	err = kernel_connect(c, (struct sockaddr *)&sin, sizeof(sin), 0);
	err = err ?: kernel_accept(l, &s, 0);
	if (err) {
		sock_release(c);
		goto out_l;
	}
	/* Small writes (FAKE chunk) go out as they are. */
	tcp_sock_set_nodelay(s->sk);
	*client = c;
	*server = s;
out_l:
	sock_release(l);
	return err;
}

static int nbd_fixture_init(struct kunit *test)
{
	struct nbd_fixture *fx = kunit_kzalloc(test, sizeof(*fx), GFP_KERNEL);

	if (!fx)
		return -ENOMEM;
	fx->fs.disk = vzalloc(FAKE_SIZE);
	if (!fx->fs.disk)
		return -ENOMEM;
	fx->fs.test = test;
	fx->fs.trigger_type = NBD_CMD_READ;
	mutex_init(&fx->fs.lock);
	init_waitqueue_head(&fx->fs.gate_wq);
	test->priv = fx;
	return 0;
}

static void nbd_fixture_exit(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	int i;

	if (!fx || !fx->fs.disk)
		return;
	if (fx->nbd) {
		nbd_disconnect_and_put(fx->nbd, true);
		nbd_put(fx->nbd);
	}
	for (i = 0; i < fx->fs.nconns; i++) {
		struct fake_conn *fc = &fx->fs.conns[i];

		kernel_sock_shutdown(fc->sock, SHUT_RDWR);
		if (fc->thread) {
			kthread_stop(fc->thread);
			put_task_struct(fc->thread);
		}
		sock_release(fc->sock);
	}
	vfree(fx->fs.disk);
	mutex_destroy(&fx->fs.lock);
}

/* Connect a device to the fake server over @nconns connections. */
static int nbd_fixture_connect(struct kunit *test, int nconns, u32 flags,
			       unsigned int timeout, bool tcp)
{
	struct nbd_fixture *fx = test->priv;
	struct nbd_config *config;
	struct nbd_device *nbd;
	int i, err;

	nbd = nbd_find_or_create(-1);
	if (IS_ERR(nbd))
		return PTR_ERR(nbd);
	fx->nbd = nbd;

	mutex_lock(&nbd->config_lock);
	config = nbd_config_create(nbd);
	if (IS_ERR(config)) {
		err = PTR_ERR(config);
		goto out_unlock;
	}
	set_bit(NBD_RT_BOUND, &config->flags);
	config->server_flags = flags;
	config->structured = fx->structured;
	nbd_set_timeout(nbd, timeout);
	err = nbd_set_size(config, FAKE_SIZE, FAKE_BS);
	for (i = 0; !err && i < nconns; i++) {
		struct fake_conn *fc = &fx->fs.conns[i];
		struct socket *client;
		struct file *file;

		err = tcp ? fake_tcp_pair(&client, &fc->sock) :
			    fake_socketpair(&client, &fc->sock);
		if (err)
			break;
		fx->fs.nconns++;
		fc->fs = &fx->fs;
		fc->index = i;
		file = sock_alloc_file(client, 0, NULL);
		if (IS_ERR(file)) {
			err = PTR_ERR(file);
			break;
		}
		err = nbd_check_sock(nbd, client, NULL);
		err = err ?: nbd_add_sock(config, client, NULL);
		if (err) {
			fput(file);
			break;
		}
		fc->thread = kthread_run(fake_thread, fc, "nbd-fake%d", i);
		if (IS_ERR(fc->thread)) {
			err = PTR_ERR(fc->thread);
			fc->thread = NULL;
			break;
		}
		get_task_struct(fc->thread);
	}
	err = err ?: nbd_start_device(nbd);
out_unlock:
	mutex_unlock(&nbd->config_lock);
	return err;
}

static struct nbd_conn *nbd_fixture_conn(struct kunit *test, int i)
{
	struct nbd_fixture *fx = test->priv;

	return fx->nbd->config->conns[i];
}

/* Connection @i is dead, or the whole session has ended. */
static bool nbd_fixture_conn_dead(struct kunit *test, int i)
{
	struct nbd_fixture *fx = test->priv;
	bool dead;

	mutex_lock(&fx->nbd->config_lock);
	dead = !fx->nbd->config || !nbd_conn_alive(fx->nbd->config->conns[i]);
	mutex_unlock(&fx->nbd->config_lock);
	return dead;
}

static bool nbd_fixture_wait_dead(struct kunit *test, int i)
{
	int ms;

	for (ms = 0; ms < 10000; ms += 10) {
		if (nbd_fixture_conn_dead(test, i))
			return true;
		usleep_range(10000, 20000);
	}
	return false;
}

/* The session ended by itself (all connections dead, no reconnect). */
static bool nbd_fixture_wait_ended(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	int ms;

	for (ms = 0; ms < 10000; ms += 10) {
		if (!READ_ONCE(fx->nbd->config))
			return true;
		usleep_range(10000, 20000);
	}
	return false;
}

static int nbd_fixture_io(struct kunit *test, blk_opf_t opf, sector_t sector,
			  void *buf, unsigned int len)
{
	struct nbd_fixture *fx = test->priv;
	struct bio *bio;
	unsigned int done;
	int ret;

	bio = bio_alloc(fx->nbd->disk->part0, DIV_ROUND_UP(len, PAGE_SIZE),
			opf, GFP_KERNEL);
	bio->bi_iter.bi_sector = sector;
	for (done = 0; done < len; done += PAGE_SIZE)
		__bio_add_page(bio, vmalloc_to_page(buf + done), PAGE_SIZE, 0);
	ret = submit_bio_wait(bio);
	bio_put(bio);
	return ret;
}

struct bounded_io {
	struct completion done;
	int ret;
};

static void bounded_end_io(struct bio *bio)
{
	struct bounded_io *b = bio->bi_private;

	b->ret = blk_status_to_errno(bio->bi_status);
	bio_put(bio);
	complete(&b->done);
}

/*
 * Like nbd_fixture_io(), but a request that is still not done after 20 s
 * fails the test instead of hanging it: the device is then disconnected,
 * which completes the request, and -ETIMEDOUT is returned.
 */
static int nbd_fixture_io_bounded(struct kunit *test, blk_opf_t opf,
				  sector_t sector, void *buf, unsigned int len)
{
	struct nbd_fixture *fx = test->priv;
	struct bounded_io b;
	struct bio *bio;
	unsigned int done;

	init_completion(&b.done);
	bio = bio_alloc(fx->nbd->disk->part0, DIV_ROUND_UP(len, PAGE_SIZE),
			opf, GFP_KERNEL);
	bio->bi_iter.bi_sector = sector;
	for (done = 0; done < len; done += PAGE_SIZE)
		__bio_add_page(bio, vmalloc_to_page(buf + done), PAGE_SIZE, 0);
	bio->bi_private = &b;
	bio->bi_end_io = bounded_end_io;
	submit_bio(bio);
	if (wait_for_completion_timeout(&b.done, 20 * HZ))
		return b.ret;

	kunit_err(test, "request still not done after 20 s\n");
	nbd_disconnect_and_put(fx->nbd, false);
	wait_for_completion(&b.done);
	nbd_put(fx->nbd);
	fx->nbd = NULL;
	return -ETIMEDOUT;
}

static void *nbd_fixture_buf(struct kunit *test, unsigned int len, u8 fill)
{
	void *buf = vmalloc(len);

	KUNIT_ASSERT_NOT_NULL(test, buf);
	memset(buf, fill, len);
	return buf;
}

static const struct fake_log *nbd_fixture_last(struct kunit *test, u16 type)
{
	struct nbd_fixture *fx = test->priv;
	int i;

	for (i = fx->fs.nlog - 1; i >= 0; i--)
		if (fx->fs.log[i].type == type)
			return &fx->fs.log[i];
	return NULL;
}

#define GOOD_FLAGS (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | \
		    NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | \
		    NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_CAN_MULTI_CONN)

struct async_io {
	atomic_t pending;
	atomic_t errors;
	struct completion done;
};

static void async_end_io(struct bio *bio)
{
	struct async_io *aio = bio->bi_private;

	if (bio->bi_status)
		atomic_inc(&aio->errors);
	bio_put(bio);
	if (atomic_dec_and_test(&aio->pending))
		complete(&aio->done);
}

/* Round trips */

static void nbd_transport_read_write(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	void *out, *in;

	/* Arrange */
	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  false), 0);
	out = nbd_fixture_buf(test, 16384, 0);
	in = nbd_fixture_buf(test, 16384, 0);
	get_random_bytes(out, 16384);

	/* Act */
	KUNIT_ASSERT_EQ(test, nbd_fixture_io(test, REQ_OP_WRITE, 64, out,
					     16384), 0);
	KUNIT_ASSERT_EQ(test, nbd_fixture_io(test, REQ_OP_READ, 64, in,
					     16384), 0);

	/* Assert */
	KUNIT_EXPECT_MEMEQ(test, in, out, 16384);
	KUNIT_EXPECT_MEMEQ(test, fx->fs.disk + 64 * 512, out, 16384);
	KUNIT_EXPECT_EQ(test, nbd_fixture_last(test, NBD_CMD_WRITE)->offset,
			64 * 512);
	vfree(out);
	vfree(in);
}

/*
 * Writes whose header and data go out in one piece (up to 16 segments)
 * and in several (17 and 64 segments, and a request of two bios, the
 * first of which goes with the header).
 */
static void nbd_transport_write_segments(struct kunit *test)
{
	static const unsigned int pages[] = { 1, 16, 17, 64 };
	struct nbd_fixture *fx = test->priv;
	const struct fake_log *last;
	struct async_io aio;
	struct blk_plug plug;
	unsigned int off = 0;
	void *out;
	int i;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  false), 0);
	out = nbd_fixture_buf(test, 128 * PAGE_SIZE, 0);
	get_random_bytes(out, 128 * PAGE_SIZE);

	for (i = 0; i < ARRAY_SIZE(pages); i++) {
		KUNIT_EXPECT_EQ(test, nbd_fixture_io(test, REQ_OP_WRITE,
						     off >> SECTOR_SHIFT,
						     out + off,
						     pages[i] * PAGE_SIZE), 0);
		off += pages[i] * PAGE_SIZE;
	}

	/* Two adjacent bios under a plug: merged into one request. */
	atomic_set(&aio.pending, 2);
	atomic_set(&aio.errors, 0);
	init_completion(&aio.done);
	blk_start_plug(&plug);
	for (i = 0; i < 2; i++) {
		struct bio *bio = bio_alloc(fx->nbd->disk->part0, 1,
					    REQ_OP_WRITE, GFP_KERNEL);

		bio->bi_iter.bi_sector = off >> SECTOR_SHIFT;
		__bio_add_page(bio, vmalloc_to_page(out + off), PAGE_SIZE, 0);
		bio->bi_private = &aio;
		bio->bi_end_io = async_end_io;
		submit_bio(bio);
		off += PAGE_SIZE;
	}
	blk_finish_plug(&plug);
	wait_for_completion(&aio.done);
	KUNIT_EXPECT_EQ(test, atomic_read(&aio.errors), 0);

	KUNIT_EXPECT_MEMEQ(test, fx->fs.disk, out, off);
	last = nbd_fixture_last(test, NBD_CMD_WRITE);
	KUNIT_ASSERT_NOT_NULL(test, last);
	KUNIT_EXPECT_EQ(test, last->length, 2 * PAGE_SIZE);
	vfree(out);
}

static void nbd_transport_tcp(struct kunit *test)
{
	void *out, *in;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  true), 0);
	out = nbd_fixture_buf(test, 8192, 0x5a);
	in = nbd_fixture_buf(test, 8192, 0);

	KUNIT_ASSERT_EQ(test, nbd_fixture_io(test, REQ_OP_WRITE, 8, out, 8192),
			0);
	KUNIT_ASSERT_EQ(test, nbd_fixture_io(test, REQ_OP_READ, 8, in, 8192),
			0);

	KUNIT_EXPECT_MEMEQ(test, in, out, 8192);
	vfree(out);
	vfree(in);
}

static void nbd_transport_flush_fua(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	const struct fake_log *w;
	void *buf;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  false), 0);
	buf = nbd_fixture_buf(test, FAKE_BS, 1);

	KUNIT_EXPECT_EQ(test, blkdev_issue_flush(fx->nbd->disk->part0), 0);
	KUNIT_EXPECT_NOT_NULL(test, nbd_fixture_last(test, NBD_CMD_FLUSH));
	KUNIT_ASSERT_EQ(test, nbd_fixture_io(test, REQ_OP_WRITE | REQ_FUA, 0,
					     buf, FAKE_BS), 0);

	w = nbd_fixture_last(test, NBD_CMD_WRITE);
	KUNIT_ASSERT_NOT_NULL(test, w);
	KUNIT_EXPECT_EQ(test, w->flags, NBD_CMD_FLAG_FUA >> 16);
	vfree(buf);
}

static void nbd_transport_trim_zeroes(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	struct block_device *bdev;
	const struct fake_log *l;
	int ret;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  false), 0);
	bdev = fx->nbd->disk->part0;
	memset(fx->fs.disk, 0xff, FAKE_SIZE);

	/* Act: discard, then write zeroes with and without NOUNMAP */
	KUNIT_EXPECT_EQ(test, blkdev_issue_discard(bdev, 0, 16, GFP_KERNEL), 0);
	l = nbd_fixture_last(test, NBD_CMD_TRIM);
	KUNIT_ASSERT_NOT_NULL(test, l);
	KUNIT_EXPECT_EQ(test, l->offset, 0);
	KUNIT_EXPECT_EQ(test, l->length, 8192);

	ret = blkdev_issue_zeroout(bdev, 64, 8, GFP_KERNEL,
				   BLKDEV_ZERO_NOUNMAP | BLKDEV_ZERO_NOFALLBACK);
	KUNIT_EXPECT_EQ(test, ret, 0);
	l = nbd_fixture_last(test, NBD_CMD_WRITE_ZEROES);
	KUNIT_ASSERT_NOT_NULL(test, l);
	KUNIT_EXPECT_EQ(test, l->flags, NBD_CMD_FLAG_NO_HOLE >> 16);
	KUNIT_EXPECT_EQ(test, l->offset, 64 * 512);

	KUNIT_EXPECT_EQ(test, blkdev_issue_zeroout(bdev, 128, 8, GFP_KERNEL,
						   BLKDEV_ZERO_NOFALLBACK), 0);
	l = nbd_fixture_last(test, NBD_CMD_WRITE_ZEROES);
	KUNIT_ASSERT_NOT_NULL(test, l);
	KUNIT_EXPECT_EQ(test, l->flags, 0);

	/* Assert: the server zeroed what it was told to */
	KUNIT_EXPECT_NULL(test, memchr_inv(fx->fs.disk, 0, 8192));
	KUNIT_EXPECT_NULL(test, memchr_inv(fx->fs.disk + 64 * 512, 0, 4096));
	KUNIT_EXPECT_EQ(test, fx->fs.disk[8192], 0xff);
}

static void nbd_transport_not_advertised(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	struct block_device *bdev;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, NBD_FLAG_HAS_FLAGS,
						  0, false), 0);
	bdev = fx->nbd->disk->part0;

	/* The block layer never sees discard or write-zeroes support ... */
	KUNIT_EXPECT_EQ(test, bdev_max_discard_sectors(bdev), 0);
	KUNIT_EXPECT_EQ(test, bdev_write_zeroes_sectors(bdev), 0);
	KUNIT_EXPECT_FALSE(test, bdev_write_cache(bdev));
	/* ... so nothing the server did not offer reaches it. */
	blkdev_issue_discard(bdev, 0, 8, GFP_KERNEL);
	blkdev_issue_flush(bdev);
	KUNIT_EXPECT_NULL(test, nbd_fixture_last(test, NBD_CMD_TRIM));
	KUNIT_EXPECT_NULL(test, nbd_fixture_last(test, NBD_CMD_FLUSH));
}

static void nbd_transport_server_error(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	void *buf;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  false), 0);
	buf = nbd_fixture_buf(test, FAKE_BS, 3);
	fx->fs.mode = FAKE_ENOSPC;
	fx->fs.trigger_type = NBD_CMD_WRITE;
	fx->fs.armed = true;

	/* The error reaches the caller as ENOSPC ... */
	KUNIT_EXPECT_EQ(test, nbd_fixture_io(test, REQ_OP_WRITE, 0, buf,
					     FAKE_BS), -ENOSPC);
	/* ... and the connection stays usable. */
	KUNIT_EXPECT_TRUE(test, nbd_conn_alive(nbd_fixture_conn(test, 0)));
	KUNIT_EXPECT_EQ(test, nbd_fixture_io(test, REQ_OP_WRITE, 0, buf,
					     FAKE_BS), 0);
	vfree(buf);
}

/*
 * Move the submitting thread to a CPU whose hardware queue is @i modulo
 * their number: blk-mq maps CPUs to queues, and with one connection per
 * queue a test that wants every connection used must submit from CPUs of
 * every queue.  Nothing to do with a single queue (UML's one CPU).
 */
static void nbd_fixture_spread(struct nbd_fixture *fx, int i)
{
	struct blk_mq_queue_map *map = &fx->nbd->tag_set.map[HCTX_TYPE_DEFAULT];
	unsigned int nr = fx->nbd->tag_set.nr_hw_queues, cpu;

	if (nr < 2)
		return;
	for_each_online_cpu(cpu) {
		if (map->mq_map[cpu] == i % nr) {
			set_cpus_allowed_ptr(current, cpumask_of(cpu));
			return;
		}
	}
}

/* Submit @n reads or writes of one block each, concurrently. */
static void nbd_fixture_submit_many(struct kunit *test, blk_opf_t opf, int n,
				    void *buf, struct async_io *aio)
{
	struct nbd_fixture *fx = test->priv;
	int i;

	atomic_set(&aio->pending, n);
	atomic_set(&aio->errors, 0);
	init_completion(&aio->done);
	for (i = 0; i < n; i++) {
		struct bio *bio = bio_alloc(fx->nbd->disk->part0, 1,
					    opf | REQ_NOMERGE, GFP_KERNEL);

		bio->bi_iter.bi_sector = i * (FAKE_BS >> SECTOR_SHIFT);
		__bio_add_page(bio, vmalloc_to_page(buf + i * FAKE_BS),
			       FAKE_BS, 0);
		bio->bi_private = aio;
		bio->bi_end_io = async_end_io;
		nbd_fixture_spread(fx, i);
		submit_bio(bio);
	}
	set_cpus_allowed_ptr(current, cpu_possible_mask);
}

static int nbd_fixture_io_many(struct kunit *test, blk_opf_t opf, int n,
			       void *buf)
{
	struct async_io aio;

	nbd_fixture_submit_many(test, opf, n, buf, &aio);
	wait_for_completion(&aio.done);
	return atomic_read(&aio.errors);
}

/* Submit one request of @len bytes (whole pages of @buf) without waiting. */
static void nbd_fixture_submit(struct kunit *test, blk_opf_t opf,
			       sector_t sector, void *buf, unsigned int len,
			       struct async_io *aio)
{
	struct nbd_fixture *fx = test->priv;
	struct bio *bio;
	unsigned int done;

	atomic_set(&aio->pending, 1);
	atomic_set(&aio->errors, 0);
	init_completion(&aio->done);
	bio = bio_alloc(fx->nbd->disk->part0, DIV_ROUND_UP(len, PAGE_SIZE),
			opf, GFP_KERNEL);
	bio->bi_iter.bi_sector = sector;
	for (done = 0; done < len; done += PAGE_SIZE)
		__bio_add_page(bio, vmalloc_to_page(buf + done), PAGE_SIZE, 0);
	bio->bi_private = aio;
	bio->bi_end_io = async_end_io;
	submit_bio(bio);
}

/* Requests the server logged on connection @conn after its NBD_CMD_DISC. */
static int nbd_fixture_after_disc(struct kunit *test, int conn, bool *disc)
{
	struct nbd_fixture *fx = test->priv;
	int i, after = 0;

	*disc = false;
	mutex_lock(&fx->fs.lock);
	for (i = 0; i < fx->fs.nlog; i++) {
		if (fx->fs.log[i].conn != conn)
			continue;
		if (*disc)
			after++;
		if (fx->fs.log[i].type == NBD_CMD_DISC)
			*disc = true;
	}
	mutex_unlock(&fx->fs.lock);
	return after;
}

/* The test disconnects by itself; the fixture has nothing left to do. */
static void nbd_fixture_disconnect(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;

	nbd_disconnect_and_put(fx->nbd, true);
	nbd_put(fx->nbd);
	fx->nbd = NULL;
}

/*
 * A disconnect is soft: every request handed to the driver before it
 * gets the server's answer, NBD_CMD_DISC follows them and nothing follows
 * NBD_CMD_DISC.
 */
static void nbd_transport_disconnect_soft(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	struct async_io aio;
	bool disc;
	void *out;

	/* Arrange: 32 writes in flight */
	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  false), 0);
	out = nbd_fixture_buf(test, 32 * FAKE_BS, 0);
	get_random_bytes(out, 32 * FAKE_BS);
	nbd_fixture_submit_many(test, REQ_OP_WRITE, 32, out, &aio);

	/* Act */
	nbd_fixture_disconnect(test);

	/* Assert */
	KUNIT_ASSERT_TRUE(test, wait_for_completion_timeout(&aio.done,
							    20 * HZ));
	KUNIT_EXPECT_EQ(test, atomic_read(&aio.errors), 0);
	KUNIT_EXPECT_MEMEQ(test, fx->fs.disk, out, 32 * FAKE_BS);
	KUNIT_EXPECT_EQ(test, nbd_fixture_after_disc(test, 0, &disc), 0);
	KUNIT_EXPECT_TRUE(test, disc);
	vfree(out);
}

/*
 * A server that stops reading: the disconnect still returns, within its
 * bound (disconnect_timeout, 5 s, as no request timeout is set), and the
 * request it could not finish fails.
 */
static void nbd_transport_disconnect_stuck(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	struct async_io aio;
	unsigned long t0;
	void *out;

	/* Arrange: 1 MiB on its way to a server that reads nothing */
	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  false), 0);
	out = nbd_fixture_buf(test, FAKE_SIZE, 0x5a);
	fx->fs.gate_conn = 0;
	WRITE_ONCE(fx->fs.gate_closed, true);
	/* The server waits for this one already; then it stops at the gate. */
	KUNIT_ASSERT_EQ(test, nbd_fixture_io(test, REQ_OP_READ, 0, out,
					     FAKE_BS), 0);
	nbd_fixture_submit(test, REQ_OP_WRITE, 0, out, FAKE_SIZE, &aio);
	msleep(100);

	/* Act */
	t0 = jiffies;
	nbd_fixture_disconnect(test);

	/* Assert */
	KUNIT_EXPECT_LT(test, jiffies - t0, 20 * HZ);
	KUNIT_ASSERT_TRUE(test, wait_for_completion_timeout(&aio.done,
							    20 * HZ));
	KUNIT_EXPECT_EQ(test, atomic_read(&aio.errors), 1);
	WRITE_ONCE(fx->fs.gate_closed, false);
	wake_up_all(&fx->fs.gate_wq);
	vfree(out);
}

/*
 * NBD_ESHUTDOWN: the request was not executed.  It is sent again on the
 * other connection and succeeds; the one that got ESHUTDOWN is ended
 * softly (NBD_CMD_DISC, nothing after it) and dies.
 */
static void nbd_transport_eshutdown(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	int shut, other;
	bool disc;
	void *out;

	/* Arrange */
	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 2, GOOD_FLAGS, 0,
						  false), 0);
	out = nbd_fixture_buf(test, FAKE_BS, 0);
	get_random_bytes(out, FAKE_BS);
	mutex_lock(&fx->fs.lock);
	fx->fs.mode = FAKE_ESHUTDOWN;
	fx->fs.trigger_type = NBD_CMD_WRITE;
	fx->fs.armed = true;
	mutex_unlock(&fx->fs.lock);

	/* Act */
	KUNIT_EXPECT_EQ(test, nbd_fixture_io_bounded(test, REQ_OP_WRITE, 0,
						     out, FAKE_BS), 0);

	/* Assert */
	KUNIT_ASSERT_TRUE(test, fx->fs.triggered);
	shut = fx->fs.triggered_conn;
	other = !shut;
	KUNIT_EXPECT_MEMEQ(test, fx->fs.disk, out, FAKE_BS);
	KUNIT_EXPECT_TRUE(test, nbd_fixture_wait_dead(test, shut));
	KUNIT_EXPECT_EQ(test, nbd_fixture_after_disc(test, shut, &disc), 0);
	KUNIT_EXPECT_TRUE(test, disc);
	KUNIT_EXPECT_TRUE(test, nbd_conn_alive(nbd_fixture_conn(test, other)));
	mutex_lock(&fx->fs.lock);
	KUNIT_EXPECT_EQ(test, fx->fs.conns[other].writes, 1);
	mutex_unlock(&fx->fs.lock);
	vfree(out);
}

/*
 * A reply to a write whose data could not all be sent (the server
 * answered, then closed before reading it) must not end the write as
 * done: it is sent again, and the data is on the server.
 */
static void nbd_transport_early_write_reply(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	void *out;

	/* Arrange: more than the socket can buffer, so the send fails */
	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 2, GOOD_FLAGS, 0,
						  false), 0);
	out = nbd_fixture_buf(test, FAKE_SIZE, 0);
	get_random_bytes(out, FAKE_SIZE);
	mutex_lock(&fx->fs.lock);
	fx->fs.mode = FAKE_EARLY_WRITE_REPLY;
	fx->fs.trigger_type = NBD_CMD_WRITE;
	fx->fs.armed = true;
	mutex_unlock(&fx->fs.lock);

	/* Act */
	KUNIT_EXPECT_EQ(test, nbd_fixture_io_bounded(test, REQ_OP_WRITE, 0,
						     out, FAKE_SIZE), 0);

	/* Assert */
	KUNIT_EXPECT_TRUE(test, fx->fs.triggered);
	KUNIT_EXPECT_MEMEQ(test, fx->fs.disk, out, FAKE_SIZE);
	vfree(out);
}

/*
 * A read-only export that advertises FLUSH gets it (fsync must work
 * there); writes, trims and write-zeroes are refused without being sent.
 */
static void nbd_transport_read_only(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	void *buf;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1,
						  GOOD_FLAGS | NBD_FLAG_READ_ONLY,
						  0, false), 0);
	buf = nbd_fixture_buf(test, FAKE_BS, 1);

	KUNIT_EXPECT_EQ(test, blkdev_issue_flush(fx->nbd->disk->part0), 0);
	KUNIT_EXPECT_NOT_NULL(test, nbd_fixture_last(test, NBD_CMD_FLUSH));
	KUNIT_EXPECT_EQ(test, nbd_fixture_io(test, REQ_OP_WRITE, 0, buf,
					     FAKE_BS), -EOPNOTSUPP);
	/* (blkdev_issue_discard() hides EOPNOTSUPP from its caller) */
	blkdev_issue_discard(fx->nbd->disk->part0, 0, FAKE_BS >> SECTOR_SHIFT,
			     GFP_KERNEL);
	KUNIT_EXPECT_NULL(test, nbd_fixture_last(test, NBD_CMD_WRITE));
	KUNIT_EXPECT_NULL(test, nbd_fixture_last(test, NBD_CMD_TRIM));
	KUNIT_EXPECT_TRUE(test, nbd_conn_alive(nbd_fixture_conn(test, 0)));
	vfree(buf);
}

/*
 * More hardware queues than connections (blk_mq_update_nr_hw_queues()
 * can leave the old count): a queue without a connection of its own
 * wraps around, never past the array.
 */
static void nbd_transport_pick_conn_bounds(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	struct nbd_config *config;
	unsigned int h, tag;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 2, GOOD_FLAGS, 0,
						  false), 0);
	config = fx->nbd->config;
	for (h = 0; h < 8; h++)
		for (tag = 0; tag < 4; tag++)
			KUNIT_EXPECT_PTR_EQ(test,
					    nbd_pick_conn(config, 8, h, tag),
					    config->conns[h % 2]);
	/* ... and with a queue count of 1 both are its own */
	KUNIT_EXPECT_PTR_EQ(test, nbd_pick_conn(config, 1, 0, 0),
			    config->conns[0]);
}

/*
 * A request times out and its connection is closed: is it sent again on
 * the other connection?  A read always; a write only with a
 * dead-connection timeout, else it fails with ETIMEDOUT (the server may
 * still execute the old copy: see nbd_may_resend()).
 */
struct timeout_case {
	const char *desc;
	u16 type;
	bool dead_timeout;
	int ret;
};

static const struct timeout_case timeout_cases[] = {
	{ "read, no dead-connection timeout: resent", NBD_CMD_READ, false, 0 },
	{ "write, no dead-connection timeout: ETIMEDOUT", NBD_CMD_WRITE, false,
	  -ETIMEDOUT },
	{ "write, dead-connection timeout: resent", NBD_CMD_WRITE, true, 0 },
};

static void timeout_desc(const struct timeout_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(timeout, timeout_cases, timeout_desc);

static void nbd_transport_timeout_resend(struct kunit *test)
{
	const struct timeout_case *c = test->param_value;
	struct nbd_fixture *fx = test->priv;
	blk_opf_t op = c->type == NBD_CMD_READ ? REQ_OP_READ : REQ_OP_WRITE;
	int writes;
	void *buf;

	/* Arrange: the first request of this type is answered too late */
	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 2, GOOD_FLAGS, 1,
						  false), 0);
	if (c->dead_timeout) {
		mutex_lock(&fx->nbd->config_lock);
		fx->nbd->config->dead_conn_timeout = 10 * HZ;
		mutex_unlock(&fx->nbd->config_lock);
	}
	buf = nbd_fixture_buf(test, FAKE_BS, 0x42);
	mutex_lock(&fx->fs.lock);
	fx->fs.mode = FAKE_LATE_REPLY;
	fx->fs.trigger_type = c->type;
	fx->fs.late_ms = 3000;
	fx->fs.armed = true;
	mutex_unlock(&fx->fs.lock);

	/* Act */
	KUNIT_EXPECT_EQ(test, nbd_fixture_io_bounded(test, op, 0, buf, FAKE_BS),
			c->ret);

	/* Assert: the other connection got it, or nothing */
	KUNIT_EXPECT_TRUE(test, fx->fs.triggered);
	mutex_lock(&fx->fs.lock);
	writes = fx->fs.conns[!fx->fs.triggered_conn].writes;
	mutex_unlock(&fx->fs.lock);
	if (c->type == NBD_CMD_WRITE)
		KUNIT_EXPECT_EQ(test, writes, c->ret ? 0 : 1);
	KUNIT_EXPECT_TRUE(test,
			  nbd_conn_alive(nbd_fixture_conn(test,
							  !fx->fs.triggered_conn)));
	vfree(buf);
}

static void nbd_transport_out_of_order(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	void *out, *in;
	int i;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  false), 0);
	out = nbd_fixture_buf(test, 8 * FAKE_BS, 0);
	in = nbd_fixture_buf(test, 8 * FAKE_BS, 0);
	for (i = 0; i < 8 * FAKE_BS; i++)
		((u8 *)out)[i] = i / FAKE_BS + 1;
	memcpy(fx->fs.disk, out, 8 * FAKE_BS);

	/* The first read's reply is held until the next request is answered */
	fx->fs.mode = FAKE_REORDER;
	fx->fs.armed = true;
	KUNIT_EXPECT_EQ(test, nbd_fixture_io_many(test, REQ_OP_READ, 8, in),
			0);

	KUNIT_EXPECT_TRUE(test, fx->fs.triggered);
	KUNIT_EXPECT_MEMEQ(test, in, out, 8 * FAKE_BS);
	KUNIT_EXPECT_TRUE(test, nbd_conn_alive(nbd_fixture_conn(test, 0)));
	vfree(out);
	vfree(in);
}

/* Many replies in flight over TCP, parsed as they come in. */
static void nbd_transport_tcp_many(struct kunit *test)
{
	struct nbd_conn *conn;
	void *out, *in;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  true), 0);
	conn = nbd_fixture_conn(test, 0);
	KUNIT_EXPECT_TRUE(test, conn->rx_read_sock);
	out = nbd_fixture_buf(test, 64 * FAKE_BS, 0);
	in = nbd_fixture_buf(test, 64 * FAKE_BS, 0);
	get_random_bytes(out, 64 * FAKE_BS);

	KUNIT_EXPECT_EQ(test, nbd_fixture_io_many(test, REQ_OP_WRITE, 64, out),
			0);
	KUNIT_EXPECT_EQ(test, nbd_fixture_io_many(test, REQ_OP_READ, 64, in),
			0);

	KUNIT_EXPECT_MEMEQ(test, in, out, 64 * FAKE_BS);
	KUNIT_EXPECT_GE(test, conn->replies_received, 128);
	/* replies came in while no task held the socket: parsed in softirq */
	KUNIT_EXPECT_GT(test, conn->rx_inline_runs, 0);
	KUNIT_EXPECT_TRUE(test, nbd_conn_alive(conn));
	vfree(out);
	vfree(in);
}

/* Replies that trickle in a few bytes at a time, cut anywhere. */
struct dribble_case {
	const char *desc;
	bool tcp;
	unsigned int chunk;
};

static const struct dribble_case dribble_cases[] = {
	{ "unix, 7-byte writes", false, 7 },
	{ "tcp, 7-byte writes", true, 7 },
	{ "tcp, 1-byte writes", true, 1 },
	{ "tcp, 4100-byte writes", true, 4100 },
};

static void dribble_desc(const struct dribble_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(dribble, dribble_cases, dribble_desc);

static void nbd_transport_dribble(struct kunit *test)
{
	const struct dribble_case *c = test->param_value;
	struct nbd_fixture *fx = test->priv;
	void *out, *in;

	/* Arrange */
	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  c->tcp), 0);
	out = nbd_fixture_buf(test, 8 * FAKE_BS, 0);
	in = nbd_fixture_buf(test, 8 * FAKE_BS, 0);
	get_random_bytes(out, 8 * FAKE_BS);
	memcpy(fx->fs.disk, out, 8 * FAKE_BS);
	mutex_lock(&fx->fs.lock);
	fx->fs.chunk = c->chunk;
	mutex_unlock(&fx->fs.lock);

	/* Act: eight reads in flight, then one of several pages */
	KUNIT_EXPECT_EQ(test, nbd_fixture_io_many(test, REQ_OP_READ, 8, in),
			0);
	KUNIT_EXPECT_MEMEQ(test, in, out, 8 * FAKE_BS);
	memset(in, 0, 8 * FAKE_BS);
	KUNIT_EXPECT_EQ(test, nbd_fixture_io(test, REQ_OP_READ, 0, in,
					     8 * FAKE_BS), 0);

	/* Assert */
	KUNIT_EXPECT_MEMEQ(test, in, out, 8 * FAKE_BS);
	KUNIT_EXPECT_EQ(test, nbd_fixture_conn(test, 0)->rx_read_sock, c->tcp);
	KUNIT_EXPECT_TRUE(test, nbd_conn_alive(nbd_fixture_conn(test, 0)));
	vfree(out);
	vfree(in);
}

/* A socket a connection owns cannot be handed over again. */
static void nbd_transport_sock_in_use(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	struct nbd_conn *conn;
	void *buf;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  false), 0);
	conn = nbd_fixture_conn(test, 0);
	buf = nbd_fixture_buf(test, FAKE_BS, 0);

	KUNIT_EXPECT_EQ(test, nbd_check_sock(fx->nbd, conn->sock, NULL),
			-EBUSY);
	KUNIT_EXPECT_PTR_EQ(test, conn->sock->sk->sk_user_data, (void *)conn);
	/* ... and the connection goes on working */
	KUNIT_EXPECT_EQ(test, nbd_fixture_io(test, REQ_OP_READ, 0, buf,
					     FAKE_BS), 0);
	KUNIT_EXPECT_TRUE(test, nbd_conn_alive(conn));
	vfree(buf);
}

/*
 * The server saw @total writes over its two connections, some of them
 * on each of the first @used.
 */
static void nbd_expect_writes(struct kunit *test, int total, int used)
{
	struct nbd_fixture *fx = test->priv;
	int i;

	mutex_lock(&fx->fs.lock);
	KUNIT_EXPECT_EQ(test, fx->fs.conns[0].writes + fx->fs.conns[1].writes,
			total);
	for (i = 0; i < used && i < FAKE_CONNS; i++)
		KUNIT_EXPECT_GT_MSG(test, fx->fs.conns[i].writes, 0,
				    "connection %d carried no write", i);
	mutex_unlock(&fx->fs.lock);
}

static void nbd_transport_multi_conn(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	void *out, *in;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 2, GOOD_FLAGS, 0,
						  false), 0);
	out = nbd_fixture_buf(test, 32 * FAKE_BS, 0);
	in = nbd_fixture_buf(test, 32 * FAKE_BS, 0);
	get_random_bytes(out, 32 * FAKE_BS);

	KUNIT_EXPECT_EQ(test, nbd_fixture_io_many(test, REQ_OP_WRITE, 32, out),
			0);
	KUNIT_EXPECT_EQ(test, nbd_fixture_io_many(test, REQ_OP_READ, 32, in),
			0);

	KUNIT_EXPECT_MEMEQ(test, in, out, 32 * FAKE_BS);
	/*
	 * Count writes only: on a real system udev reads the new disk
	 * behind the test's back.  With a hardware queue per connection the
	 * writes came from the CPUs of both, so both carried some; with one
	 * queue (UML's one CPU) the first connection did (see
	 * nbd_transport_multi_conn_overflow for the second).
	 */
	nbd_expect_writes(test, 32, fx->nbd->tag_set.nr_hw_queues);
	KUNIT_EXPECT_GE(test, nbd_fixture_conn(test, 0)->requests_sent +
			nbd_fixture_conn(test, 1)->requests_sent, 64);
	KUNIT_EXPECT_EQ(test, fx->nbd->tag_set.nr_hw_queues,
			min_t(unsigned int, 2, nr_cpu_ids));
	vfree(out);
	vfree(in);
}

/*
 * One hardware queue owning both connections, as on a machine with fewer
 * CPUs than connections.
 */
static void nbd_fixture_one_hwq(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;

	blk_mq_update_nr_hw_queues(&fx->nbd->tag_set, 1);
	KUNIT_ASSERT_EQ(test, fx->nbd->tag_set.nr_hw_queues, 1);
}

/* A queue whose first connection keeps up sends everything on it. */
static void nbd_transport_multi_conn_primary(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	void *out;
	int i;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 2, GOOD_FLAGS, 0,
						  false), 0);
	nbd_fixture_one_hwq(test);
	out = nbd_fixture_buf(test, 8 * FAKE_BS, 0);
	get_random_bytes(out, 8 * FAKE_BS);

	for (i = 0; i < 8; i++)
		KUNIT_EXPECT_EQ(test, nbd_fixture_io(test, REQ_OP_WRITE,
						     i * (FAKE_BS >> SECTOR_SHIFT),
						     out + i * FAKE_BS,
						     FAKE_BS), 0);
	KUNIT_EXPECT_MEMEQ(test, fx->fs.disk, out, 8 * FAKE_BS);
	mutex_lock(&fx->fs.lock);
	KUNIT_EXPECT_EQ(test, fx->fs.conns[0].writes, 8);
	KUNIT_EXPECT_EQ(test, fx->fs.conns[1].writes, 0);
	mutex_unlock(&fx->fs.lock);
	KUNIT_EXPECT_FALSE(test, nbd_conn_backed_up(nbd_fixture_conn(test, 0)));
	vfree(out);
}

/*
 * When the first connection's socket pushes back, the queue moves on to
 * the second; once the first catches up it is no longer backed up.
 */
static void nbd_transport_multi_conn_overflow(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	struct nbd_conn *first;
	struct async_io aio;
	void *out, *in;

	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 2, GOOD_FLAGS, 0,
						  false), 0);
	nbd_fixture_one_hwq(test);
	first = nbd_fixture_conn(test, 0);
	out = nbd_fixture_buf(test, 32 * FAKE_BS, 0);
	in = nbd_fixture_buf(test, 32 * FAKE_BS, 0);
	get_random_bytes(out, 32 * FAKE_BS);

	/* A small send buffer the server does not read from: it fills. */
	lock_sock(first->sock->sk);
	first->sock->sk->sk_userlocks |= SOCK_SNDBUF_LOCK;
	WRITE_ONCE(first->sock->sk->sk_sndbuf, SOCK_MIN_SNDBUF);
	release_sock(first->sock->sk);
	fx->fs.gate_conn = 0;
	WRITE_ONCE(fx->fs.gate_closed, true);
	nbd_fixture_submit_many(test, REQ_OP_WRITE, 32, out, &aio);
	KUNIT_EXPECT_TRUE(test, nbd_conn_backed_up(first));
	WRITE_ONCE(fx->fs.gate_closed, false);
	wake_up_all(&fx->fs.gate_wq);
	wait_for_completion(&aio.done);
	KUNIT_EXPECT_EQ(test, atomic_read(&aio.errors), 0);

	nbd_conn_sync(first);
	KUNIT_EXPECT_FALSE(test, nbd_conn_backed_up(first));
	KUNIT_EXPECT_EQ(test, nbd_fixture_io_many(test, REQ_OP_READ, 32, in),
			0);
	KUNIT_EXPECT_MEMEQ(test, in, out, 32 * FAKE_BS);
	nbd_expect_writes(test, 32, 2);
	vfree(out);
	vfree(in);
}

static void nbd_transport_multi_conn_refused(struct kunit *test)
{
	u32 flags = GOOD_FLAGS & ~NBD_FLAG_CAN_MULTI_CONN;

	/* Without CAN_MULTI_CONN a second connection is refused. */
	KUNIT_EXPECT_EQ(test, nbd_fixture_connect(test, 2, flags, 0, false),
			-EINVAL);
}

/* Hostile replies */

struct hostile_case {
	const char *desc;
	enum fake_mode mode;
	int conns;
	unsigned int timeout;
	int read_ret;		/* what the triggering read returns */
	bool tcp;		/* loopback TCP (read_sock), else AF_UNIX */
};

static const struct hostile_case hostile_cases[] = {
	{ "wrong magic", FAKE_WRONG_MAGIC, 1, 0, -EIO },
	{ "unknown cookie", FAKE_UNKNOWN_COOKIE, 1, 0, -EIO },
	{ "double reply", FAKE_DOUBLE_REPLY, 1, 0, 0 },
	{ "reply on another connection", FAKE_OTHER_CONN, 2, 2, -EIO },
	{ "stale generation", FAKE_STALE_GEN, 1, 0, -EIO },
	{ "stale generation after a requeue", FAKE_STALE_REQUEUE, 2, 0, -EIO },
	{ "short payload", FAKE_SHORT_PAYLOAD, 1, 0, -EIO },
	{ "payload longer than asked", FAKE_LONG_PAYLOAD, 1, 0, 0 },
	{ "reply after the request timed out", FAKE_LATE_REPLY, 1, 1, -EIO },
	{ "server closes mid-reply", FAKE_CLOSE_MID_REPLY, 1, 0, -EIO },
	{ "tcp: wrong magic", FAKE_WRONG_MAGIC, 1, 0, -EIO, true },
	{ "tcp: unknown cookie", FAKE_UNKNOWN_COOKIE, 1, 0, -EIO, true },
	{ "tcp: double reply", FAKE_DOUBLE_REPLY, 1, 0, 0, true },
	{ "tcp: stale generation", FAKE_STALE_GEN, 1, 0, -EIO, true },
	{ "tcp: short payload", FAKE_SHORT_PAYLOAD, 1, 0, -EIO, true },
	{ "tcp: payload longer than asked", FAKE_LONG_PAYLOAD, 1, 0, 0, true },
	{ "tcp: reply after the request timed out", FAKE_LATE_REPLY, 1, 1,
	  -EIO, true },
	{ "tcp: server closes mid-reply", FAKE_CLOSE_MID_REPLY, 1, 0, -EIO,
	  true },
};

static void hostile_desc(const struct hostile_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(hostile, hostile_cases, hostile_desc);

static void nbd_transport_hostile(struct kunit *test)
{
	const struct hostile_case *c = test->param_value;
	struct nbd_fixture *fx = test->priv;
	void *buf, *want;
	int i, ret;

	/* Arrange */
	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, c->conns, GOOD_FLAGS,
						  c->timeout, c->tcp), 0);
	buf = nbd_fixture_buf(test, FAKE_BS, 0);
	want = nbd_fixture_buf(test, FAKE_BS, 0x77);
	memcpy(fx->fs.disk + 8 * FAKE_BS, want, FAKE_BS);
	mutex_lock(&fx->fs.lock);
	fx->fs.mode = c->mode;
	fx->fs.late_ms = (c->timeout + 2) * 1000;
	fx->fs.armed = true;
	mutex_unlock(&fx->fs.lock);

	/* Act */
	ret = nbd_fixture_io_bounded(test, REQ_OP_READ,
				     8 * FAKE_BS >> SECTOR_SHIFT, buf, FAKE_BS);

	/* Assert: the read failed, or got the right data and nothing else */
	KUNIT_EXPECT_TRUE(test, fx->fs.triggered);
	KUNIT_EXPECT_EQ(test, ret, c->read_ret);
	if (ret == -ETIMEDOUT) {
		vfree(buf);
		vfree(want);
		return;
	}
	if (!ret)
		KUNIT_EXPECT_MEMEQ(test, buf, want, FAKE_BS);
	/* every connection is closed ... */
	for (i = 0; i < c->conns; i++)
		KUNIT_EXPECT_TRUE_MSG(test, nbd_fixture_wait_dead(test, i),
				      "connection %d still alive", i);
	/* ... and later I/O fails at once */
	KUNIT_EXPECT_EQ(test, nbd_fixture_io_bounded(test, REQ_OP_READ, 0, buf,
						     FAKE_BS), -EIO);
	/* ... and with no dead-connection timeout the session ends */
	KUNIT_EXPECT_TRUE_MSG(test, nbd_fixture_wait_ended(test),
			      "the session outlived its last connection");
	vfree(buf);
	vfree(want);
}

/* Structured replies: chunk sequences, valid and not */

#define SR_STEPS	34
#define SR_READ_OFF	(8 * FAKE_BS)
#define SR_READ_LEN	(4 * FAKE_BS)
#define SR_MSG		"the fake server failed this on purpose"

/**
 * struct sr_step - one chunk (or simple reply) of a scripted answer
 * @type: NBD_REPLY_TYPE_*
 * @flags: NBD_REPLY_FLAG_*
 * @off: where the chunk starts, from the read's start (may be outside)
 * @len: OFFSET_DATA's data or OFFSET_HOLE's size; what follows the
 *	error fields of an unknown error type; the payload of other types
 * @error: an error chunk's error (or a simple reply's)
 * @msglen: an error chunk's message, bytes sent
 * @msgadj: added to the message length field
 * @adj: added to the chunk's length field
 * @err_off: ERROR_OFFSET's offset, from the read's start
 * @simple: a simple reply (with the read's data when @error is 0)
 */
struct sr_step {
	u16 type;
	u16 flags;
	int off;
	u32 len;
	u32 error;
	u16 msglen;
	int msgadj;
	int adj;
	int err_off;
	bool simple;
};

struct sr_script {
	struct sr_step step[SR_STEPS];
};

/* Send one scripted step; under fs->lock. */
static int fake_sr_step(struct fake_server *fs, struct socket *sock,
			u64 cookie, u64 roff, u32 rlen, const struct sr_step *st)
{
	u8 *buf, *p;
	u64 off = roff + st->off;
	u32 length;
	int ret;

	if (st->simple) {
		struct nbd_reply r = {
			.magic = cpu_to_be32(NBD_REPLY_MAGIC),
			.error = cpu_to_be32(st->error),
			.cookie = cpu_to_be64(cookie),
		};

		ret = fake_send_chunked(sock, &r, sizeof(r), fs->chunk);
		if (!ret && !st->error)
			ret = fake_send_chunked(sock, fs->disk + roff, rlen,
						fs->chunk);
		return ret;
	}

	buf = kzalloc(16 + NBD_MAX_ERROR_MSG + 64 + rlen, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	p = buf;
	switch (st->type) {
	case NBD_REPLY_TYPE_NONE:
		break;
	case NBD_REPLY_TYPE_OFFSET_DATA:
		put_unaligned_be64(off, p);
		p += 8;
		if (off < FAKE_SIZE && st->len <= FAKE_SIZE - off)
			memcpy(p, fs->disk + off, st->len);
		else
			memset(p, 0xaa, st->len);
		p += st->len;
		break;
	case NBD_REPLY_TYPE_OFFSET_HOLE:
		put_unaligned_be64(off, p);
		put_unaligned_be32(st->len, p + 8);
		p += 12;
		break;
	default:
		if (!(st->type & NBD_REPLY_TYPE_ERROR_BIT)) {
			p += st->len;	/* zeros */
			break;
		}
		put_unaligned_be32(st->error, p);
		put_unaligned_be16(st->msglen + st->msgadj, p + 4);
		p += 6;
		memset(p, 'm', st->msglen);
		memcpy(p, SR_MSG, min_t(size_t, st->msglen, strlen(SR_MSG)));
		p += st->msglen;
		if (st->type == NBD_REPLY_TYPE_ERROR_OFFSET) {
			put_unaligned_be64(roff + st->err_off, p);
			p += 8;
		} else if (st->type != NBD_REPLY_TYPE_ERROR) {
			p += st->len;
		}
		break;
	}
	length = p - buf + st->adj;
	ret = fake_chunk_hdr(fs, sock, st->flags, st->type, cookie, length);
	/* a length cut short: send what it says (a longer one: all) */
	ret = ret ?: fake_send_chunked(sock, buf, min_t(u32, length, p - buf),
				       fs->chunk);
	kfree(buf);
	return ret;
}

static int fake_script(struct fake_server *fs, struct socket *sock,
		       u64 cookie, u64 off, u32 len)
{
	const struct sr_script *sc = fs->script;
	int i, ret = 0;

	for (i = 0; !ret && i < SR_STEPS; i++) {
		const struct sr_step *st = &sc->step[i];

		if (!memchr_inv(st, 0, sizeof(*st)))
			break;	/* the end of the script */
		ret = fake_sr_step(fs, sock, cookie, off, len, st);
	}
	return ret;
}

#define DONE		NBD_REPLY_FLAG_DONE
#define T_NONE		NBD_REPLY_TYPE_NONE
#define T_DATA		NBD_REPLY_TYPE_OFFSET_DATA
#define T_HOLE		NBD_REPLY_TYPE_OFFSET_HOLE
#define T_ERR		NBD_REPLY_TYPE_ERROR
#define T_ERR_OFF	NBD_REPLY_TYPE_ERROR_OFFSET
#define K4		FAKE_BS

/* Data or a hole at [@o, @o + @l) of the read. */
#define DATA(o, l)	{ .type = T_DATA, .off = (o), .len = (l) }
#define DATA_DONE(o, l)	{ .type = T_DATA, .flags = DONE, .off = (o), .len = (l) }
#define HOLE(o, l)	{ .type = T_HOLE, .off = (o), .len = (l) }
#define HOLE_DONE(o, l)	{ .type = T_HOLE, .flags = DONE, .off = (o), .len = (l) }
#define NONE_DONE	{ .type = T_NONE, .flags = DONE }
#define ERROR(e, m)	{ .type = T_ERR, .error = (e), .msglen = (m) }

enum sr_outcome {
	SR_OK,		/* the read returns the data, the connection stays */
	SR_ERROR,	/* the read fails with @ret, the connection stays */
	SR_VIOLATION,	/* the connection is closed, the read fails (EIO) */
	SR_LATE,	/* the read succeeded, then a violation closed it */
};

struct sr_case {
	const char *desc;
	struct sr_script script;
	enum sr_outcome outcome;
	int ret;		/* SR_ERROR: the read's errno */
	bool simple_mode;	/* structured replies not negotiated */
	bool tcp;
	unsigned int chunk;	/* the server's writes, in bytes */
	unsigned int timeout;
	bool write;		/* the script answers a write, not a read */
};

#define W	0, false, false, 0, 0, true	/* after .ret: a write */

static const struct sr_case sr_cases[] = {
	/* valid sequences */
	{ "one data chunk", { { DATA_DONE(0, 4 * K4) } }, SR_OK },
	{ "four chunks in order, then NONE", { { DATA(0, K4), DATA(K4, K4),
	  DATA(2 * K4, K4), DATA(3 * K4, K4), NONE_DONE } }, SR_OK },
	{ "four chunks in reverse order", { { DATA(3 * K4, K4),
	  DATA(2 * K4, K4), DATA(K4, K4), DATA_DONE(0, K4) } }, SR_OK },
	{ "chunks in any order", { { DATA(2 * K4, K4), DATA(0, K4),
	  DATA(3 * K4, K4), DATA_DONE(K4, K4) } }, SR_OK },
	{ "holes and data mixed", { { DATA(0, K4), HOLE(K4, 2 * K4),
	  DATA(3 * K4, K4), NONE_DONE } }, SR_OK },
	{ "one hole", { { HOLE_DONE(0, 4 * K4) } }, SR_OK },
	/* (a bitmap of sectors takes over after eight gaps) */
	{ "even sectors, then the odd ones (16 gaps)", { {
	  DATA(0, 512), DATA(1024, 512), HOLE(2048, 512), DATA(3072, 512),
	  DATA(4096, 512), DATA(5120, 512), DATA(6144, 512), HOLE(7168, 512),
	  DATA(8192, 512), DATA(9216, 512), DATA(10240, 512),
	  DATA(11264, 512), HOLE(12288, 512), DATA(13312, 512),
	  DATA(14336, 512), DATA(15360, 512), DATA(512, 512), DATA(1536, 512),
	  DATA(2560, 512), HOLE(3584, 512), DATA(4608, 512), DATA(5632, 512),
	  DATA(6656, 512), DATA(7680, 512), DATA(8704, 512), DATA(9728, 512),
	  HOLE(10752, 512), DATA(11776, 512), DATA(12800, 512),
	  DATA(13824, 512), DATA(14848, 512), DATA(15872, 512), NONE_DONE } }, SR_OK },
	{ "chunks not on page boundaries", { { DATA(0, 1000),
	  HOLE(1000, 5000), DATA(6000, 4 * K4 - 6000), NONE_DONE } }, SR_OK },
	{ "holes and data, 5-byte writes", { { DATA(0, K4), HOLE(K4, K4),
	  DATA(2 * K4, 2 * K4), NONE_DONE } }, SR_OK, 0, false, false, 5 },
	{ "tcp: holes and data, 3-byte writes", { { HOLE(0, 100),
	  DATA(100, 4 * K4 - 100), NONE_DONE } }, SR_OK, 0, false, true, 3 },
	{ "error chunk, then NONE", { { ERROR(NBD_EPERM, 20), NONE_DONE } },
	  SR_ERROR, -EREMOTEIO },
	{ "data, error, data: the error wins", { { DATA(0, K4),
	  ERROR(NBD_ENOSPC, 0), DATA_DONE(K4, 3 * K4) } }, SR_ERROR, -ENOSPC },
	{ "ERROR_OFFSET inside the read", { { DATA(0, K4),
	  { .type = T_ERR_OFF, .error = NBD_EIO, .msglen = 8, .err_off = K4 },
	  NONE_DONE } }, SR_ERROR, -EIO },
	{ "error with a 4096-byte message", { { ERROR(NBD_EPERM, 4096),
	  NONE_DONE } }, SR_ERROR, -EREMOTEIO },
	{ "unknown error type, bit 15 set", { { { .type = 0x8005,
	  .error = NBD_EPERM, .msglen = 6, .len = 10 }, NONE_DONE } },
	  SR_ERROR, -EREMOTEIO },
	{ "simple error reply to a read", { { { .simple = true,
	  .error = NBD_ENOSPC } } }, SR_ERROR, -ENOSPC },
	{ "tcp: error chunk, 1-byte writes", { { ERROR(NBD_ENOSPC, 30),
	  NONE_DONE } }, SR_ERROR, -ENOSPC, false, true, 1 },
	/* violations */
	{ "structured reply not negotiated", { { DATA_DONE(0, 4 * K4) } },
	  SR_VIOLATION, 0, true },
	{ "simple reply with data", { { { .simple = true } } }, SR_VIOLATION },
	{ "simple reply after a chunk", { { DATA(0, K4), { .simple = true,
	  .error = NBD_EIO } } }, SR_VIOLATION },
	{ "data before the read", { { DATA_DONE(-512, 4 * K4) } },
	  SR_VIOLATION },
	{ "data beyond the read", { { DATA(0, 3 * K4),
	  DATA_DONE(3 * K4, K4 + 512) } }, SR_VIOLATION },
	{ "hole beyond the read", { { DATA(0, 3 * K4),
	  HOLE_DONE(3 * K4, K4 + 1) } }, SR_VIOLATION },
	{ "overlapping chunks", { { DATA(0, 2 * K4), DATA(K4, 2 * K4),
	  NONE_DONE } }, SR_VIOLATION },
	{ "repeated chunk", { { DATA(0, 2 * K4), DATA(0, 2 * K4),
	  NONE_DONE } }, SR_VIOLATION },
	{ "hole overlapping data", { { DATA(0, 2 * K4), HOLE(K4, 3 * K4),
	  NONE_DONE } }, SR_VIOLATION },
	{ "OFFSET_DATA of 8 bytes", { { { .type = T_DATA, .flags = DONE } } },
	  SR_VIOLATION },
	{ "OFFSET_HOLE of 11 bytes", { { { .type = T_HOLE, .flags = DONE,
	  .len = 4 * K4, .adj = -1 } } }, SR_VIOLATION },
	{ "OFFSET_HOLE of 13 bytes", { { { .type = T_HOLE, .flags = DONE,
	  .len = 4 * K4, .adj = 1 } } }, SR_VIOLATION },
	{ "hole of size 0", { { HOLE(0, 0), DATA_DONE(0, 4 * K4) } },
	  SR_VIOLATION },
	{ "DONE without the whole read", { { DATA(0, K4),
	  DATA_DONE(2 * K4, 2 * K4) } }, SR_VIOLATION },
	/* (.err_off only tells it from the end of the script) */
	{ "NONE without DONE", { { DATA(0, 4 * K4), { .type = T_NONE,
	  .err_off = 1 } } }, SR_VIOLATION },
	{ "no DONE: the read times out", { { DATA(0, 4 * K4) } },
	  SR_VIOLATION, 0, false, false, 0, 1 },
	{ "NONE with a payload", { { DATA(0, 4 * K4), { .type = T_NONE,
	  .flags = DONE, .adj = 4 } } }, SR_VIOLATION },
	{ "chunk longer than the read", { { { .type = T_DATA, .flags = DONE,
	  .len = 4 * K4, .adj = 1 } } }, SR_VIOLATION },
	{ "error message of 4097 bytes", { { { .type = T_ERR,
	  .flags = DONE, .error = NBD_EIO, .msglen = 4097 } } },
	  SR_VIOLATION },
	{ "error message longer than its chunk", { { { .type = T_ERR,
	  .flags = DONE, .error = NBD_EIO, .msglen = 10, .msgadj = 5 } } },
	  SR_VIOLATION },
	{ "error chunk longer than its message", { { { .type = T_ERR,
	  .flags = DONE, .error = NBD_EIO, .msglen = 10, .msgadj = -5 } } },
	  SR_VIOLATION },
	{ "error chunk without an error", { { { .type = T_ERR,
	  .flags = DONE, .msglen = 4 } } }, SR_VIOLATION },
	{ "ERROR_OFFSET outside the read", { { { .type = T_ERR_OFF,
	  .flags = DONE, .error = NBD_EIO, .err_off = 4 * K4 } } },
	  SR_VIOLATION },
	{ "ERROR of 5 bytes", { { { .type = T_ERR, .flags = DONE,
	  .error = NBD_EIO, .adj = -1 } } }, SR_VIOLATION },
	{ "unknown type, bit 15 clear", { { { .type = 3, .flags = DONE,
	  .len = 8 } } }, SR_VIOLATION },
	{ "BLOCK_STATUS chunk", { { { .type = NBD_REPLY_TYPE_BLOCK_STATUS,
	  .flags = DONE, .len = 8 } } }, SR_VIOLATION },
	{ "more gaps than ranges, not whole sectors", { { DATA(0, 256),
	  DATA(1024, 256), DATA(2048, 256), DATA(3072, 256), DATA(4096, 256),
	  DATA(5120, 256), DATA(6144, 256), DATA(7168, 256), DATA(8192, 256),
	  DATA_DONE(9216, 4 * K4 - 9216) } }, SR_VIOLATION },
	{ "more gaps than ranges: a bitmap, then an overlap", { { DATA(0, 512),
	  DATA(1024, 512), DATA(2048, 512), DATA(3072, 512), DATA(4096, 512),
	  DATA(5120, 512), DATA(6144, 512), DATA(7168, 512), DATA(8192, 512),
	  HOLE(1024, 1024), NONE_DONE } }, SR_VIOLATION },
	{ "chunk after DONE", { { DATA_DONE(0, 4 * K4), NONE_DONE } },
	  SR_LATE },
	{ "tcp: overlapping chunks, 7-byte writes", { { DATA(0, 2 * K4),
	  DATA(K4, 2 * K4), NONE_DONE } }, SR_VIOLATION, 0, false, true, 7 },
	{ "tcp: chunk longer than the read", { { { .type = T_DATA,
	  .flags = DONE, .len = 4 * K4, .adj = 1 } } }, SR_VIOLATION, 0,
	  false, true },
	/* answers to a write */
	{ "write: NONE", { { NONE_DONE } }, SR_OK, W },
	{ "write: error chunk", { { { .type = T_ERR, .flags = DONE,
	  .error = NBD_ENOSPC, .msglen = 12 } } }, SR_ERROR, -ENOSPC, false,
	  false, 0, 0, true },
	{ "write: error chunk without an error", { { { .type = T_ERR,
	  .flags = DONE, .msglen = 4 } } }, SR_VIOLATION, W },
	{ "write: data chunk", { { DATA_DONE(0, K4) } }, SR_VIOLATION, W },
	{ "write: hole chunk", { { HOLE_DONE(0, K4) } }, SR_VIOLATION, W },
};

#undef W

static void sr_desc(const struct sr_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(sr, sr_cases, sr_desc);

/* What a read of the scripted answer must return: holes are zeros. */
static void sr_expected(const struct sr_case *c, const u8 *disk, u8 *want)
{
	int i;

	memcpy(want, disk + SR_READ_OFF, SR_READ_LEN);
	for (i = 0; i < SR_STEPS; i++) {
		const struct sr_step *st = &c->script.step[i];

		if (st->type == T_HOLE && st->off >= 0 &&
		    st->off + st->len <= SR_READ_LEN)
			memset(want + st->off, 0, st->len);
	}
}

static void nbd_structured_replies(struct kunit *test)
{
	const struct sr_case *c = test->param_value;
	struct nbd_fixture *fx = test->priv;
	void *buf, *want;
	int i, ret;

	/* Arrange: a disk that is nowhere zero, so holes show */
	for (i = 0; i < FAKE_SIZE; i++)
		fx->fs.disk[i] = i % 255 + 1;
	fx->structured = !c->simple_mode;
	fx->fs.structured = true;
	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS,
						  c->timeout, c->tcp), 0);
	buf = nbd_fixture_buf(test, SR_READ_LEN, 0x55);
	want = nbd_fixture_buf(test, SR_READ_LEN, 0);
	sr_expected(c, fx->fs.disk, want);
	mutex_lock(&fx->fs.lock);
	fx->fs.mode = FAKE_SR_SCRIPT;
	fx->fs.script = &c->script;
	fx->fs.chunk = c->chunk;
	fx->fs.trigger_type = c->write ? NBD_CMD_WRITE : NBD_CMD_READ;
	fx->fs.armed = true;
	mutex_unlock(&fx->fs.lock);

	/* Act */
	if (c->write)
		memcpy(buf, want, SR_READ_LEN);	/* writes what is there */
	ret = nbd_fixture_io_bounded(test, c->write ? REQ_OP_WRITE :
				     REQ_OP_READ, SR_READ_OFF >> SECTOR_SHIFT,
				     buf, SR_READ_LEN);

	/* Assert */
	KUNIT_EXPECT_TRUE(test, fx->fs.triggered);
	if (ret == -ETIMEDOUT) {
		KUNIT_FAIL(test, "the read never completed");
		goto out;
	}
	switch (c->outcome) {
	case SR_OK:
		KUNIT_EXPECT_EQ(test, ret, 0);
		if (!c->write)
			KUNIT_EXPECT_MEMEQ(test, buf, want, SR_READ_LEN);
		break;
	case SR_ERROR:
		KUNIT_EXPECT_EQ(test, ret, c->ret);
		break;
	case SR_VIOLATION:
		KUNIT_EXPECT_EQ(test, ret, -EIO);
		break;
	case SR_LATE:
		KUNIT_EXPECT_EQ(test, ret, 0);
		KUNIT_EXPECT_MEMEQ(test, buf, want, SR_READ_LEN);
		break;
	}
	if (c->outcome == SR_OK || c->outcome == SR_ERROR) {
		/* the connection stays, and the next read is answered */
		if (nbd_fixture_conn_dead(test, 0)) {
			KUNIT_FAIL(test, "the connection was closed");
			goto out;
		}
		mutex_lock(&fx->fs.lock);
		fx->fs.chunk = 0;	/* the next reply at full speed */
		mutex_unlock(&fx->fs.lock);
		memset(buf, 0x55, SR_READ_LEN);
		KUNIT_EXPECT_EQ(test, nbd_fixture_io_bounded(test, REQ_OP_READ,
				SR_READ_OFF >> SECTOR_SHIFT, buf, SR_READ_LEN),
				0);
		KUNIT_EXPECT_MEMEQ(test, buf, fx->fs.disk + SR_READ_OFF,
				   SR_READ_LEN);
	} else {
		KUNIT_EXPECT_TRUE_MSG(test, nbd_fixture_wait_dead(test, 0),
				      "the connection outlived the violation");
	}
out:
	vfree(buf);
	vfree(want);
}

/* A structured session keeps simple replies for other commands legal. */
static void nbd_structured_writes(struct kunit *test)
{
	struct nbd_fixture *fx = test->priv;
	void *buf, *back;

	fx->structured = true;
	fx->fs.structured = true;
	KUNIT_ASSERT_EQ(test, nbd_fixture_connect(test, 1, GOOD_FLAGS, 0,
						  false), 0);
	buf = nbd_fixture_buf(test, 2 * FAKE_BS, 0x3c);
	back = nbd_fixture_buf(test, 2 * FAKE_BS, 0);
	KUNIT_EXPECT_EQ(test, nbd_fixture_io(test, REQ_OP_WRITE, 16, buf,
					     2 * FAKE_BS), 0);
	KUNIT_EXPECT_EQ(test, blkdev_issue_flush(fx->nbd->disk->part0), 0);
	KUNIT_EXPECT_NOT_NULL(test, nbd_fixture_last(test, NBD_CMD_FLUSH));
	KUNIT_EXPECT_EQ(test, nbd_fixture_io(test, REQ_OP_READ, 16, back,
					     2 * FAKE_BS), 0);
	KUNIT_EXPECT_MEMEQ(test, back, buf, 2 * FAKE_BS);
	KUNIT_EXPECT_TRUE(test, nbd_conn_alive(nbd_fixture_conn(test, 0)));
	vfree(buf);
	vfree(back);
}

static struct kunit_case nbd_structured_cases[] = {
	KUNIT_CASE_PARAM(nbd_structured_replies, sr_gen_params),
	KUNIT_CASE(nbd_structured_writes),
	{}
};

static struct kunit_suite nbd_structured_suite = {
	.name = "nbd_structured",
	.init = nbd_fixture_init,
	.exit = nbd_fixture_exit,
	.test_cases = nbd_structured_cases,
};

static struct kunit_case nbd_transport_cases[] = {
	KUNIT_CASE(nbd_transport_read_write),
	KUNIT_CASE(nbd_transport_tcp),
	KUNIT_CASE(nbd_transport_write_segments),
	KUNIT_CASE(nbd_transport_flush_fua),
	KUNIT_CASE(nbd_transport_trim_zeroes),
	KUNIT_CASE(nbd_transport_not_advertised),
	KUNIT_CASE(nbd_transport_server_error),
	KUNIT_CASE(nbd_transport_disconnect_soft),
	KUNIT_CASE(nbd_transport_disconnect_stuck),
	KUNIT_CASE(nbd_transport_eshutdown),
	KUNIT_CASE(nbd_transport_early_write_reply),
	KUNIT_CASE(nbd_transport_read_only),
	KUNIT_CASE(nbd_transport_pick_conn_bounds),
	KUNIT_CASE_PARAM(nbd_transport_timeout_resend, timeout_gen_params),
	KUNIT_CASE(nbd_transport_out_of_order),
	KUNIT_CASE(nbd_transport_multi_conn),
	KUNIT_CASE(nbd_transport_multi_conn_primary),
	KUNIT_CASE(nbd_transport_multi_conn_overflow),
	KUNIT_CASE(nbd_transport_multi_conn_refused),
	KUNIT_CASE(nbd_transport_tcp_many),
	KUNIT_CASE_PARAM(nbd_transport_dribble, dribble_gen_params),
	KUNIT_CASE(nbd_transport_sock_in_use),
	KUNIT_CASE_PARAM(nbd_transport_hostile, hostile_gen_params),
	{}
};

static struct kunit_suite nbd_transport_suite = {
	.name = "nbd_transport",
	.init = nbd_fixture_init,
	.exit = nbd_fixture_exit,
	.test_cases = nbd_transport_cases,
};

kunit_test_suites(&nbd_transport_suite, &nbd_structured_suite);
