// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit fuzz suite for the receive path: suite nbd_fuzz.
 *
 * A real device is connected over a real kernel socket (an AF_UNIX stream
 * pair, whose receiver waits in recvmsg, or loopback TCP, whose replies
 * are parsed in place from the socket buffers) to a server played by the
 * test itself.  Each stream submits one to four real bios (reads, writes,
 * a flush, trims), reads the requests the driver sends, writes the valid
 * replies for them (simple replies, or structured replies: data, hole,
 * none and error chunks, interleaved) and then mutates them: bit flips
 * and boundary values in the header fields (magic, flags, type, error,
 * cookie: another request's, a stale generation, an idle tag, another
 * hardware queue; lengths 0, 1, 2^31, 2^32-1, offsets), truncation at
 * any byte, duplicated, reordered and junk units, and delivery in pieces
 * of any size down to one byte.  Payload bytes are never changed.
 *
 * After a mutated stream the server closes the connection; the driver
 * must notice (no hang), and a reconnect to a good server must complete
 * every request that is still pending.  Then, for every stream:
 *   - every bio completes, within 10 s of its last chance;
 *   - a write that completed without error is on the server's disk;
 *   - a read that completed without error holds the disk's data, unless
 *     the mutations could have made a wrong reply look right (a simple
 *     reply's cookie or error changed, or two offsets or lengths);
 *   - an unmutated stream completes with the errors its replies carried.
 * KASAN, lockdep and DEBUG_OBJECTS in the KUnit kernel catch the rest.
 *
 * Streams are generated from a seed (fuzz_seed) and their index, so the
 * same seed runs the same streams again (where the driver's receiver
 * reads an AF_UNIX stream it may cut it elsewhere).  A failure prints its
 * stream: fuzz_first starts there, with the same requests, replies and
 * mutations on a fresh device (its tags and disk contents may differ).
 *   nbd_kunit.fuzz_streams  streams over the four cases (default 100000)
 *   nbd_kunit.fuzz_seed     the seed (default 1)
 *   nbd_kunit.fuzz_first    the first stream's index (default 0)
 *   nbd_kunit.fuzz_dump     log what is sent (to study one stream)
 * Each case's streams run in slices of FZ_SLICE, one parameter each, as
 * KUnit stops a case after 300 s.
 * Under UML: tools/testing/kunit/run.sh --kernel_args=nbd_kunit.fuzz_...;
 * `make fuzz` runs a long one.
 */
#include <kunit/test.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/delay.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/in.h>
#include <linux/ktime.h>
#include <linux/moduleparam.h>
#include <linux/net.h>
#include <linux/netdevice.h>
#include <linux/panic.h>
#include <linux/rtnetlink.h>
#include <linux/sizes.h>
#include <linux/vmalloc.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "nbd.h"
#include "transport.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

static unsigned int fuzz_streams = 100000;
module_param(fuzz_streams, uint, 0444);
MODULE_PARM_DESC(fuzz_streams, "nbd_fuzz: streams over the four cases");
static ulong fuzz_seed = 1;
module_param(fuzz_seed, ulong, 0444);
MODULE_PARM_DESC(fuzz_seed, "nbd_fuzz: seed of the generated streams");
static unsigned int fuzz_first;
module_param(fuzz_first, uint, 0444);
MODULE_PARM_DESC(fuzz_first, "nbd_fuzz: index of the first stream");
static bool fuzz_dump;
module_param(fuzz_dump, bool, 0444);
MODULE_PARM_DESC(fuzz_dump, "nbd_fuzz: log every piece sent (for one stream)");

#define FZ_SLOT		SZ_16K		/* each request has a slot of its own */
#define FZ_SLOTS	64
#define FZ_SIZE		(FZ_SLOT * FZ_SLOTS)
#define FZ_MAXLEN	SZ_8K		/* so that no two requests merge */
#define FZ_MAXREQ	4
#define FZ_BASE_MAX	(48 * 1024)	/* the valid replies, and junk */
#define FZ_OUT_MAX	(96 * 1024)	/* after duplications */
#define FZ_UNITS	48
#define FZ_FIELDS	160
#define FZ_ORDER	64
#define FZ_WAIT		(10 * HZ)
#define FZ_FLAGS	(NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | \
			 NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | \
			 NBD_FLAG_CAN_MULTI_CONN)

enum fz_kind {
	FZ_MAGIC, FZ_FLAGS_F, FZ_TYPE, FZ_COOKIE, FZ_LENGTH, FZ_ERROR,
	FZ_OFFSET, FZ_HOLELEN, FZ_MSGLEN, FZ_NKINDS
};

/* A header field of the valid replies, which mutations may change. */
struct fz_field {
	u32 pos;
	u8 size;
	u8 kind;
	u8 req;
};

/* A reply or a chunk (or junk): what duplication and reordering move. */
struct fz_unit {
	u32 start;
	u32 len;
};

struct fz;

struct fz_req {
	struct fz *fz;
	u16 type;		/* NBD_CMD_* */
	u32 cmd_flags;		/* NBD_CMD_FLAG_FUA */
	u64 off;
	u32 len;
	u64 cookie;		/* of its latest transmission */
	bool seen;		/* came in on the current connection */
	bool done;
	int err;
	int want_err;		/* what its valid reply carries */
	u8 *buf;		/* FZ_MAXLEN bytes */
};

struct fz_stats {
	u64 streams;
	u64 mutated;
	u64 mutations;
	u64 closed;		/* streams after which the server closed */
	u64 requests;
	u64 completed_ok;
	u64 completed_err;
	u64 reads_checked;
	u64 writes_checked;
	u64 pieces;
	u64 foreign;		/* reads that were none of the streams' */
	u64 ns[5];		/* requests, replies, closing, reconnect, rest */
};

struct fz {
	struct kunit *test;
	struct nbd_device *nbd;
	bool structured;
	bool tcp;
	struct socket *srv;		/* the server's end */
	void (*srv_data_ready)(struct sock *sk);
	struct socket *listener;	/* TCP */
	u8 *disk;
	u8 *rxbuf;
	struct fz_req req[FZ_MAXREQ];
	int nreq;
	atomic_t pending;
	wait_queue_head_t wq;
	u64 rng;

	/* the stream being built */
	u8 *base;
	u32 blen;
	u8 *out;
	u32 olen;
	struct fz_field fields[FZ_FIELDS];
	int nfields;
	struct fz_unit units[FZ_UNITS];
	int nunits;
	int order[FZ_ORDER];
	int norder;
	unsigned int touched[FZ_NKINDS];

	unsigned int index;	/* of the stream */
	struct fz_stats st;
};

/* splitmix64: a stream's generator, from the seed and its index */
static u64 fz_next(struct fz *fz)
{
	u64 z = (fz->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static u32 fz_below(struct fz *fz, u32 n)
{
	return n ? (u32)(fz_next(fz) % n) : 0;
}

static bool fz_one_in(struct fz *fz, u32 n)
{
	return fz_below(fz, n) == 0;
}

/* The disk's initial contents: a pattern with zeroed stretches (holes). */
static u8 fz_pattern(u64 off)
{
	return (u8)(off * 131 + (off >> 9) * 7 + 1) | 1;
}

static void fz_fill_disk(struct fz *fz)
{
	u64 off;

	for (off = 0; off < FZ_SIZE; off++)
		fz->disk[off] = (off / 2048) % 3 == 2 ? 0 : fz_pattern(off);
}

/* --- sockets --------------------------------------------------------- */

static int fz_lo_up(void)
{
	struct net_device *lo = init_net.loopback_dev;
	int err;

	rtnl_lock();
	err = dev_change_flags(lo, lo->flags | IFF_UP, NULL);
	rtnl_unlock();
	return err;
}

static int fz_listen(struct fz *fz)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int err;

	err = fz_lo_up();
	if (err)
		return err;
	err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP,
			       &fz->listener);
	if (err)
		return err;
	err = kernel_bind(fz->listener, (struct sockaddr *)&sin, sizeof(sin));
	return err ?: kernel_listen(fz->listener, 4);
}

/* The driver wrote to the server: wake whoever waits for it or for I/O. */
static void fz_srv_data_ready(struct sock *sk)
{
	struct fz *fz;

	read_lock_bh(&sk->sk_callback_lock);
	fz = sk->sk_user_data;
	if (fz) {
		fz->srv_data_ready(sk);
		wake_up(&fz->wq);
	}
	read_unlock_bh(&sk->sk_callback_lock);
}

static bool fz_srv_readable(struct fz *fz)
{
	return !skb_queue_empty_lockless(&fz->srv->sk->sk_receive_queue);
}

/* A connected pair: *client for the driver, fz->srv for the server. */
static int fz_pair(struct fz *fz, struct socket **client)
{
	struct sockaddr_storage ss;
	struct socket *c, *s;
	int err;

	if (!fz->tcp) {
		err = sock_create_kern(&init_net, AF_UNIX, SOCK_STREAM, 0, &c);
		if (err)
			return err;
		err = sock_create_kern(&init_net, AF_UNIX, SOCK_STREAM, 0, &s);
		if (err)
			goto out_c;
		err = c->ops->socketpair(c, s);
		if (err)
			goto out_s;
		goto done;
	}
	err = kernel_getsockname(fz->listener, (struct sockaddr *)&ss);
	if (err < 0)
		return err;
	err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP,
			       &c);
	if (err)
		return err;
	err = kernel_connect(c, (struct sockaddr *)&ss,
			     sizeof(struct sockaddr_in), 0);
	if (err)
		goto out_c;
	err = kernel_accept(fz->listener, &s, 0);
	if (err)
		goto out_c;
	tcp_sock_set_nodelay(s->sk);
done:
	/* the server's reads wake up to look at the clock */
	s->sk->sk_rcvtimeo = HZ / 5;
	s->sk->sk_sndtimeo = FZ_WAIT;
	write_lock_bh(&s->sk->sk_callback_lock);
	fz->srv_data_ready = s->sk->sk_data_ready;
	s->sk->sk_user_data = fz;
	s->sk->sk_data_ready = fz_srv_data_ready;
	write_unlock_bh(&s->sk->sk_callback_lock);
	fz->srv = s;
	*client = c;
	return 0;

out_s:
	sock_release(s);
out_c:
	sock_release(c);
	return err;
}

static void fz_close_srv(struct fz *fz)
{
	if (!fz->srv)
		return;
	kernel_sock_shutdown(fz->srv, SHUT_RDWR);
	sock_release(fz->srv);
	fz->srv = NULL;
}

/* Read @len bytes; -EAGAIN when none came for a while. */
static int fz_recv(struct fz *fz, void *buf, size_t len, bool started,
		   unsigned long until)
{
	struct kvec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { };
	int ret;

	while (iov.iov_len) {
		ret = kernel_recvmsg(fz->srv, &msg, &iov, 1, iov.iov_len,
				     MSG_WAITALL);
		if (ret == -EAGAIN && (started || iov.iov_len != len) &&
		    time_before(jiffies, until))
			continue;	/* in the middle of a request */
		if (ret <= 0)
			return ret ? ret : -ECONNRESET;
		iov.iov_base += ret;
		iov.iov_len -= ret;
	}
	return 0;
}

static int fz_send(struct fz *fz, const void *buf, size_t len)
{
	struct kvec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
	int ret;

	if (fuzz_dump)
		print_hex_dump(KERN_INFO, "nbd_fuzz sent: ", DUMP_PREFIX_OFFSET,
			       16, 1, buf, len, false);
	while (iov.iov_len) {
		ret = kernel_sendmsg(fz->srv, &msg, &iov, 1, iov.iov_len);
		if (ret <= 0)
			return ret ? ret : -EPIPE;
		iov.iov_base += ret;
		iov.iov_len -= ret;
	}
	return 0;
}

/* --- the device ------------------------------------------------------- */

static struct nbd_conn *fz_conn(struct fz *fz)
{
	return fz->nbd->config->conns[0];
}

static int fz_connect(struct fz *fz)
{
	struct nbd_config *config;
	struct nbd_device *nbd;
	struct socket *client;
	struct file *file;
	int err;

	nbd = nbd_find_or_create(-1);
	if (IS_ERR(nbd))
		return PTR_ERR(nbd);
	fz->nbd = nbd;
	mutex_lock(&nbd->config_lock);
	config = nbd_config_create(nbd);
	if (IS_ERR(config)) {
		err = PTR_ERR(config);
		goto out_unlock;
	}
	set_bit(NBD_RT_BOUND, &config->flags);
	config->server_flags = FZ_FLAGS;
	config->structured = fz->structured;
	/* requests wait for the reconnect that follows each closing */
	config->dead_conn_timeout = 120 * HZ;
	nbd_set_timeout(nbd, 120);
	err = nbd_set_size(config, FZ_SIZE, SECTOR_SIZE);
	if (err)
		goto out_unlock;
	err = fz_pair(fz, &client);
	if (err)
		goto out_unlock;
	file = sock_alloc_file(client, 0, NULL);
	if (IS_ERR(file)) {
		err = PTR_ERR(file);
		goto out_unlock;
	}
	err = nbd_check_sock(nbd, client, NULL);
	err = err ?: nbd_add_sock(config, client, NULL);
	if (err) {
		fput(file);
		goto out_unlock;
	}
	err = nbd_start_device(nbd);
out_unlock:
	mutex_unlock(&nbd->config_lock);
	return err;
}

/* Wait until the receiver saw the server close and handed back. */
static bool fz_wait_dead(struct fz *fz)
{
	struct nbd_conn *conn = fz_conn(fz);

	return wait_event_timeout(fz->nbd->config->recv_wq,
				  !test_bit(NBD_CONN_RECEIVING, &conn->flags),
				  FZ_WAIT) && !nbd_conn_alive(conn);
}

/* Replace the dead connection with a new one, as nbdctl --persist would. */
static int fz_reconnect(struct fz *fz)
{
	struct socket *client;
	struct file *file;
	int err, fd;

	err = fz_pair(fz, &client);
	if (err)
		return err;
	file = sock_alloc_file(client, 0, NULL);
	if (IS_ERR(file))
		return PTR_ERR(file);
	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0) {
		fput(file);
		return fd;
	}
	fd_install(fd, file);
	mutex_lock(&fz->nbd->config_lock);
	err = fz->nbd->config ?
	      nbd_reconnect_socket(fz->nbd->config, fd, NULL) : -ENODEV;
	mutex_unlock(&fz->nbd->config_lock);
	close_fd(fd);
	return err;
}

/* --- requests ---------------------------------------------------------- */

static void fz_end_io(struct bio *bio)
{
	struct fz_req *r = bio->bi_private;
	struct fz *fz = r->fz;

	r->err = blk_status_to_errno(bio->bi_status);
	WRITE_ONCE(r->done, true);
	bio_put(bio);
	if (atomic_dec_and_test(&fz->pending))
		wake_up(&fz->wq);
}

static void fz_submit(struct fz *fz, struct fz_req *r)
{
	struct block_device *bdev = fz->nbd->disk->part0;
	blk_opf_t opf;
	struct bio *bio;
	u32 done, n;

	switch (r->type) {
	case NBD_CMD_READ:
		opf = REQ_OP_READ;
		break;
	case NBD_CMD_WRITE:
		opf = REQ_OP_WRITE |
		      (r->cmd_flags & NBD_CMD_FLAG_FUA ? REQ_FUA : 0);
		break;
	case NBD_CMD_TRIM:
		opf = REQ_OP_DISCARD;
		break;
	default:
		opf = REQ_OP_WRITE | REQ_PREFLUSH;
		break;
	}
	bio = bio_alloc(bdev, 2, opf, GFP_KERNEL);
	bio->bi_iter.bi_sector = r->off >> SECTOR_SHIFT;
	if (r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) {
		for (done = 0; done < r->len; done += n) {
			n = min_t(u32, r->len - done, PAGE_SIZE);
			__bio_add_page(bio, vmalloc_to_page(r->buf + done), n,
				       0);
		}
	} else if (r->type == NBD_CMD_TRIM) {
		bio->bi_iter.bi_size = r->len;
	}
	bio->bi_private = r;
	bio->bi_end_io = fz_end_io;
	submit_bio(bio);
}

/* One to four requests, each in a slot of its own, at most one flush. */
static void fz_make_requests(struct fz *fz)
{
	bool flush = false;
	int i, j;

	fz->nreq = 1 + fz_below(fz, FZ_MAXREQ);
	for (i = 0; i < fz->nreq; i++) {
		struct fz_req *r = &fz->req[i];
		u32 slot, pick = fz_below(fz, 20);

		do {
			slot = 1 + fz_below(fz, FZ_SLOTS - 1);
			for (j = 0; j < i; j++)
				if (fz->req[j].off / FZ_SLOT == slot)
					break;
		} while (j < i);
		r->fz = fz;
		r->cmd_flags = 0;
		r->cookie = 0;
		r->seen = false;
		r->done = false;
		r->err = 0;
		r->want_err = 0;
		r->off = (u64)slot * FZ_SLOT +
			 fz_below(fz, 8) * SECTOR_SIZE;
		r->len = SECTOR_SIZE * (1 + fz_below(fz, FZ_MAXLEN /
							     SECTOR_SIZE));
		if (pick < 10) {
			r->type = NBD_CMD_READ;
		} else if (pick < 16) {
			r->type = NBD_CMD_WRITE;
			if (fz_one_in(fz, 4))
				r->cmd_flags = NBD_CMD_FLAG_FUA;
			for (j = 0; j < r->len; j++)
				r->buf[j] = (u8)fz_next(fz) | 1;
		} else if (pick < 18 || flush) {
			r->type = NBD_CMD_TRIM;
		} else {
			r->type = NBD_CMD_FLUSH;
			r->off = 0;
			r->len = 0;
			flush = true;
		}
	}
	atomic_set(&fz->pending, fz->nreq);
	for (i = 0; i < fz->nreq; i++)
		fz_submit(fz, &fz->req[i]);
}

static struct fz_req *fz_match(struct fz *fz, u16 type, u64 off, u32 len)
{
	int i;

	for (i = 0; i < fz->nreq; i++) {
		struct fz_req *r = &fz->req[i];

		if (!r->seen && !READ_ONCE(r->done) && r->type == type &&
		    r->off == off && r->len == len)
			return r;
	}
	return NULL;
}

/* One of the stream's requests that completed already, if any matches. */
static bool fz_match_done(struct fz *fz, u16 type, u64 off, u32 len)
{
	int i;

	for (i = 0; i < fz->nreq; i++) {
		struct fz_req *r = &fz->req[i];

		if (READ_ONCE(r->done) && r->type == type && r->off == off &&
		    r->len == len)
			return true;
	}
	return false;
}

static void fz_put_hdr(u8 *p, u64 v, u8 size);

/*
 * A read that is none of the stream's (the block layer's own, such as a
 * partition scan): answered well, outside the stream.
 */
static int fz_answer_foreign(struct fz *fz, u64 cookie, u64 off, u32 len)
{
	u8 h[NBD_CHUNK_HDR_SIZE + 8];
	u32 n;
	int ret;

	if (!fz->structured) {
		fz_put_hdr(h, NBD_REPLY_MAGIC, 4);
		fz_put_hdr(h + 4, 0, 4);
		fz_put_hdr(h + 8, cookie, 8);
		n = NBD_SIMPLE_REPLY_SIZE;
	} else {
		fz_put_hdr(h, NBD_STRUCTURED_REPLY_MAGIC, 4);
		fz_put_hdr(h + 4, NBD_REPLY_FLAG_DONE, 2);
		fz_put_hdr(h + 6, NBD_REPLY_TYPE_OFFSET_DATA, 2);
		fz_put_hdr(h + 8, cookie, 8);
		fz_put_hdr(h + 16, 8 + len, 4);
		fz_put_hdr(h + 20, off, 8);
		n = sizeof(h);
	}
	ret = fz_send(fz, h, n);
	return ret ?: fz_send(fz, fz->disk + off, len);
}

/*
 * Read one request from the driver and take it in: a write's data goes
 * to the disk.  Return it, NULL when none (of the stream's) came in
 * time, or an ERR_PTR.
 */
static struct fz_req *fz_take_request(struct fz *fz, unsigned long until)
{
	struct kunit *test = fz->test;
	struct nbd_request hdr;
	struct fz_req *r;
	u32 type, len;
	u64 off;
	int ret;

	ret = fz_recv(fz, &hdr, sizeof(hdr), false, until);
	if (ret == -EAGAIN)
		return NULL;
	if (ret)
		return ERR_PTR(ret);
	type = be32_to_cpu(hdr.type);
	off = be64_to_cpu(hdr.from);
	len = be32_to_cpu(hdr.len);
	if (be32_to_cpu(hdr.magic) != NBD_REQUEST_MAGIC) {
		KUNIT_FAIL(test, "stream %u: request with magic %#x",
			   fz->index, be32_to_cpu(hdr.magic));
		return ERR_PTR(-EPROTO);
	}
	r = fz_match(fz, type & 0xffff, off, len);
	if (!r && fz_match_done(fz, type & 0xffff, off, len)) {
		KUNIT_FAIL(test, "stream %u: a completed request again: %#x at %llu, %u bytes",
			   fz->index, type, off, len);
		return ERR_PTR(-EPROTO);
	}
	if (!r && (type & 0xffff) == NBD_CMD_READ && off + len <= FZ_SIZE) {
		fz->st.foreign++;
		ret = fz_answer_foreign(fz, be64_to_cpu(hdr.cookie), off, len);
		return ret ? ERR_PTR(ret) : NULL;
	}
	if (!r) {
		KUNIT_FAIL(test, "stream %u: unexpected request: type %#x at %llu, %u bytes",
			   fz->index, type, off, len);
		return ERR_PTR(-EPROTO);
	}
	if ((type & 0xffff) == NBD_CMD_WRITE) {
		if (off + len > FZ_SIZE)
			return ERR_PTR(-EPROTO);
		ret = fz_recv(fz, fz->rxbuf, len, true, jiffies + FZ_WAIT);
		if (ret)
			return ERR_PTR(ret);
		memcpy(fz->disk + off, fz->rxbuf, len);
	} else if ((type & 0xffff) == NBD_CMD_TRIM) {
		memset(fz->disk + off, 0, len);
	}
	r->cookie = be64_to_cpu(hdr.cookie);
	r->seen = true;
	return r;
}

/* --- building the valid replies ---------------------------------------- */

static void fz_put(struct fz *fz, const void *p, u32 n)
{
	if (WARN_ON_ONCE(fz->blen + n > FZ_BASE_MAX))
		return;
	memcpy(fz->base + fz->blen, p, n);
	fz->blen += n;
}

static void fz_put_be(struct fz *fz, u64 v, u8 size, u8 kind, int req)
{
	u8 b[8];
	int i;

	for (i = 0; i < size; i++)
		b[i] = v >> (8 * (size - 1 - i));
	if (fz->nfields < FZ_FIELDS)
		fz->fields[fz->nfields++] = (struct fz_field){
			.pos = fz->blen, .size = size, .kind = kind, .req = req,
		};
	fz_put(fz, b, size);
}

static void fz_unit_start(struct fz *fz)
{
	if (fz->nunits < FZ_UNITS)
		fz->units[fz->nunits].start = fz->blen;
}

static void fz_unit_end(struct fz *fz)
{
	if (fz->nunits < FZ_UNITS) {
		fz->units[fz->nunits].len = fz->blen -
					    fz->units[fz->nunits].start;
		fz->nunits++;
	}
}

static void fz_simple(struct fz *fz, int i, u32 error, bool data)
{
	struct fz_req *r = &fz->req[i];

	fz_unit_start(fz);
	fz_put_be(fz, NBD_REPLY_MAGIC, 4, FZ_MAGIC, i);
	fz_put_be(fz, error, 4, FZ_ERROR, i);
	fz_put_be(fz, r->cookie, 8, FZ_COOKIE, i);
	if (data)
		fz_put(fz, fz->disk + r->off, r->len);
	fz_unit_end(fz);
}

static void fz_chunk_hdr(struct fz *fz, int i, u16 flags, u16 type, u32 len)
{
	fz_put_be(fz, NBD_STRUCTURED_REPLY_MAGIC, 4, FZ_MAGIC, i);
	fz_put_be(fz, flags, 2, FZ_FLAGS_F, i);
	fz_put_be(fz, type, 2, FZ_TYPE, i);
	fz_put_be(fz, fz->req[i].cookie, 8, FZ_COOKIE, i);
	fz_put_be(fz, len, 4, FZ_LENGTH, i);
}

static const char fz_msg[] = "the server could not do that (fuzz)";

static void fz_error_chunk(struct fz *fz, int i, u16 flags, u32 error)
{
	u16 mlen = fz_below(fz, sizeof(fz_msg));

	fz_unit_start(fz);
	fz_chunk_hdr(fz, i, flags, NBD_REPLY_TYPE_ERROR, 6 + mlen);
	fz_put_be(fz, error, 4, FZ_ERROR, i);
	fz_put_be(fz, mlen, 2, FZ_MSGLEN, i);
	fz_put(fz, fz_msg, mlen);
	fz_unit_end(fz);
}

static bool fz_zeroes(const u8 *p, u32 n)
{
	return !n || (!p[0] && !memcmp(p, p + 1, n - 1));
}

/* The chunks of a successful structured read: 1-3 pieces, any order. */
static void fz_read_chunks(struct fz *fz, int i)
{
	struct fz_req *r = &fz->req[i];
	u32 cut[4], n = 1 + fz_below(fz, 3), k, a, b, t;
	u32 sectors = r->len / SECTOR_SIZE;
	int idx[3] = { 0, 1, 2 };
	bool none = fz_one_in(fz, 4);

	if (n > sectors)
		n = sectors;
	cut[0] = 0;
	cut[n] = r->len;
	for (k = 1; k < n; k++)
		cut[k] = cut[k - 1] + SECTOR_SIZE *
			 (1 + fz_below(fz, sectors - (n - k) -
					   cut[k - 1] / SECTOR_SIZE));
	for (k = n - 1; k > 0; k--) {
		t = fz_below(fz, k + 1);
		swap(idx[k], idx[t]);
	}
	for (k = 0; k < n; k++) {
		u16 flags = (k == n - 1 && !none) ? NBD_REPLY_FLAG_DONE : 0;
		u64 off;

		a = cut[idx[k]];
		b = cut[idx[k] + 1];
		off = r->off + a;
		fz_unit_start(fz);
		if (fz_zeroes(fz->disk + off, b - a) && !fz_one_in(fz, 3)) {
			fz_chunk_hdr(fz, i, flags, NBD_REPLY_TYPE_OFFSET_HOLE,
				     12);
			fz_put_be(fz, off, 8, FZ_OFFSET, i);
			fz_put_be(fz, b - a, 4, FZ_HOLELEN, i);
		} else {
			fz_chunk_hdr(fz, i, flags, NBD_REPLY_TYPE_OFFSET_DATA,
				     8 + b - a);
			fz_put_be(fz, off, 8, FZ_OFFSET, i);
			fz_put(fz, fz->disk + off, b - a);
		}
		fz_unit_end(fz);
	}
	if (none) {
		fz_unit_start(fz);
		fz_chunk_hdr(fz, i, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
		fz_unit_end(fz);
	}
}

static const u32 fz_errors[] = { NBD_EIO, NBD_ENOSPC, NBD_EPERM, NBD_EINVAL };

/* The valid reply to request @i, as units appended to the stream. */
static void fz_reply(struct fz *fz, int i)
{
	struct fz_req *r = &fz->req[i];
	u32 error = 0;

	if (fz_one_in(fz, 12))
		error = fz_errors[fz_below(fz, ARRAY_SIZE(fz_errors))];
	r->want_err = error ? blk_status_to_errno(nbd_error_to_status(error)) : 0;

	if (!fz->structured) {
		fz_simple(fz, i, error, r->type == NBD_CMD_READ && !error);
		return;
	}
	if (error) {
		if (fz_one_in(fz, 2))
			fz_simple(fz, i, error, false);
		else
			fz_error_chunk(fz, i, NBD_REPLY_FLAG_DONE, error);
		return;
	}
	if (r->type == NBD_CMD_READ) {
		fz_read_chunks(fz, i);
	} else if (fz_one_in(fz, 2)) {
		fz_simple(fz, i, 0, false);
	} else {
		fz_unit_start(fz);
		fz_chunk_hdr(fz, i, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
		fz_unit_end(fz);
	}
}

/*
 * The valid replies to the requests in @reqs (a bit mask), their units
 * interleaved at random (each request's own in order: its last chunk
 * stays last).
 */
static void fz_build(struct fz *fz, unsigned int reqs)
{
	int first[FZ_MAXREQ + 1], next[FZ_MAXREQ], i, left = 0;

	fz->blen = 0;
	fz->nfields = 0;
	fz->nunits = 0;
	fz->norder = 0;
	memset(fz->touched, 0, sizeof(fz->touched));
	for (i = 0; i < fz->nreq; i++) {
		first[i] = fz->nunits;
		if (reqs & BIT(i))
			fz_reply(fz, i);
	}
	first[fz->nreq] = fz->nunits;
	for (i = 0; i < fz->nreq; i++) {
		next[i] = first[i];
		left += first[i + 1] - first[i];
	}
	while (left) {
		i = fz_below(fz, fz->nreq);
		while (next[i] == first[i + 1])
			i = (i + 1) % fz->nreq;
		fz->order[fz->norder++] = next[i]++;
		left--;
	}
}

/* --- mutations ----------------------------------------------------------- */

static void fz_put_hdr(u8 *p, u64 v, u8 size)
{
	int i;

	for (i = 0; i < size; i++)
		p[i] = v >> (8 * (size - 1 - i));
}

static u64 fz_get_be(const u8 *p, u8 size)
{
	u64 v = 0;
	int i;

	for (i = 0; i < size; i++)
		v = v << 8 | p[i];
	return v;
}

#define FZ_PICK(fz, ...) ({						\
	const u64 __v[] = { __VA_ARGS__ };				\
	__v[fz_below(fz, ARRAY_SIZE(__v))];				\
})

/* A boundary value for a field of @kind. */
static u64 fz_boundary(struct fz *fz, const struct fz_field *f, u64 cur)
{
	struct fz_req *r = &fz->req[f->req];
	u64 other;

	switch (f->kind) {
	case FZ_MAGIC:
		return FZ_PICK(fz, 0, 0xffffffff, NBD_REPLY_MAGIC,
			       NBD_REQUEST_MAGIC, NBD_STRUCTURED_REPLY_MAGIC,
			       NBD_REPLY_MAGIC ^ 1);
	case FZ_FLAGS_F:
		return FZ_PICK(fz, 0, NBD_REPLY_FLAG_DONE, 0xffff,
			       cur ^ NBD_REPLY_FLAG_DONE);
	case FZ_TYPE:
		return FZ_PICK(fz, NBD_REPLY_TYPE_NONE,
			       NBD_REPLY_TYPE_OFFSET_DATA,
			       NBD_REPLY_TYPE_OFFSET_HOLE,
			       NBD_REPLY_TYPE_BLOCK_STATUS,
			       NBD_REPLY_TYPE_BLOCK_STATUS_EXT,
			       NBD_REPLY_TYPE_ERROR, NBD_REPLY_TYPE_ERROR_OFFSET,
			       NBD_REPLY_TYPE_ERROR_BIT + 77, 77, 0xffff);
	case FZ_COOKIE:
		other = fz->req[fz_below(fz, fz->nreq)].cookie;
		return FZ_PICK(fz,
			       other,			/* another request's */
			       cur - BIT_ULL(32),	/* the last generation */
			       cur + BIT_ULL(32),	/* the next one */
			       cur ^ (1 + fz_below(fz, 127)),	/* another tag */
			       cur + BIT_ULL(16) * (1 + fz_below(fz, 3)),
							/* another hw queue */
			       0, U64_MAX, r->cookie ^ BIT_ULL(fz_below(fz, 64)));
	case FZ_LENGTH:
	case FZ_HOLELEN:
		return FZ_PICK(fz, 0, 1, BIT(31), U32_MAX, cur + 1, cur - 1,
			       cur + SECTOR_SIZE, cur - SECTOR_SIZE, r->len);
	case FZ_ERROR:
		return FZ_PICK(fz, 0, NBD_EIO, NBD_ESHUTDOWN, NBD_ENOSPC,
			       NBD_EOVERFLOW, NBD_ENOTSUP, 1000, BIT(31),
			       U32_MAX);
	case FZ_OFFSET:
		return FZ_PICK(fz, 0, r->off - 1, r->off, r->off + r->len,
			       r->off + r->len - 1, cur + SECTOR_SIZE,
			       cur - SECTOR_SIZE, BIT_ULL(63), U64_MAX);
	case FZ_MSGLEN:
		return FZ_PICK(fz, 0, 1, NBD_MAX_ERROR_MSG,
			       NBD_MAX_ERROR_MSG + 1, 0xffff, cur + 1, cur - 1);
	}
	return cur;
}

static void fz_mutate_field(struct fz *fz, bool flip)
{
	struct fz_field *f;
	u8 *p;
	u64 v;

	if (!fz->nfields)
		return;
	f = &fz->fields[fz_below(fz, fz->nfields)];
	p = fz->base + f->pos;
	if (flip) {
		p[fz_below(fz, f->size)] ^= BIT(fz_below(fz, 8));
	} else {
		v = fz_get_be(p, f->size);
		fz_put_hdr(p, fz_boundary(fz, f, v), f->size);
	}
	fz->touched[f->kind]++;
}

/* Junk: 1-32 random bytes, a unit of their own, anywhere in the order. */
static void fz_insert(struct fz *fz, int unit)
{
	int at, i;

	if (fz->norder >= FZ_ORDER)
		return;
	at = fz_below(fz, fz->norder + 1);
	for (i = fz->norder; i > at; i--)
		fz->order[i] = fz->order[i - 1];
	fz->order[at] = unit;
	fz->norder++;
}

static void fz_junk(struct fz *fz)
{
	u32 n = 1 + fz_below(fz, 32), i;
	u8 b;

	if (fz->nunits >= FZ_UNITS || fz->blen + n > FZ_BASE_MAX)
		return;
	fz_unit_start(fz);
	for (i = 0; i < n; i++) {
		b = fz_next(fz);
		fz_put(fz, &b, 1);
	}
	fz_unit_end(fz);
	fz_insert(fz, fz->nunits - 1);
}

/*
 * Mutate the valid stream: 0 (one stream in eight) to 3 mutations.
 * Return how many, and set *cut to where the stream is truncated.
 */
static int fz_mutate(struct fz *fz, u32 *cut)
{
	int n = fz_one_in(fz, 8) ? 0 : 1 + fz_below(fz, 3), k, a, b;

	*cut = U32_MAX;
	for (k = 0; k < n; k++) {
		switch (fz_below(fz, 9)) {
		case 0:
		case 1:
			fz_mutate_field(fz, true);
			break;
		case 2:
		case 3:
		case 4:
			fz_mutate_field(fz, false);
			break;
		case 5:
			*cut = U32_MAX - 1;	/* where: once assembled */
			break;
		case 6:
			if (fz->norder)
				fz_insert(fz, fz->order[fz_below(fz,
								 fz->norder)]);
			break;
		case 7:
			if (fz->norder > 1) {
				a = fz_below(fz, fz->norder);
				b = fz_below(fz, fz->norder);
				swap(fz->order[a], fz->order[b]);
			}
			break;
		default:
			fz_junk(fz);
			break;
		}
	}
	return n;
}

static void fz_assemble(struct fz *fz, u32 cut)
{
	int i;

	fz->olen = 0;
	for (i = 0; i < fz->norder; i++) {
		const struct fz_unit *u = &fz->units[fz->order[i]];

		if (fz->olen + u->len > FZ_OUT_MAX)
			break;
		memcpy(fz->out + fz->olen, fz->base + u->start, u->len);
		fz->olen += u->len;
	}
	if (cut == U32_MAX - 1 && fz->olen)
		fz->olen = fz_below(fz, fz->olen);
}

/* Write the stream in pieces: at once, up to 4 KiB, up to 32, or 1 byte. */
static int fz_deliver(struct fz *fz)
{
	u32 mode = fz_below(fz, 8), done, n, max;
	int ret;

	max = mode < 3 ? fz->olen : mode < 6 ? 4096 : mode < 7 ? 32 : 1;
	if (max == 1 && fz->olen > 2048)
		max = 32;
	for (done = 0; done < fz->olen; done += n) {
		n = max == fz->olen ? max : 1 + fz_below(fz, max);
		n = min(n, fz->olen - done);
		ret = fz_send(fz, fz->out + done, n);
		if (ret)
			return ret;
		fz->st.pieces++;
	}
	return 0;
}

/* --- one stream ---------------------------------------------------------- */

static bool fz_all_done(struct fz *fz)
{
	return !atomic_read(&fz->pending);
}

/*
 * A good server after the reconnect: answer every request that comes in
 * until all are done.  Return 0, or why not.
 */
static int fz_serve_rest(struct fz *fz)
{
	unsigned long until = jiffies + FZ_WAIT;
	struct fz_req *r;
	int i, ret;

	while (!fz_all_done(fz)) {
		if (time_after(jiffies, until))
			return -ETIMEDOUT;
		/* the last reply's completion may still be on its way */
		wait_event_timeout(fz->wq, fz_all_done(fz) ||
				   fz_srv_readable(fz), HZ / 5);
		if (fz_all_done(fz))
			break;
		r = fz_take_request(fz, until);
		if (IS_ERR(r))
			return PTR_ERR(r);
		if (!r)
			continue;
		i = r - fz->req;
		fz->blen = 0;
		fz->nfields = 0;
		fz->nunits = 0;
		fz->norder = 0;
		/* the valid reply, with no error this time */
		if (!fz->structured || r->type != NBD_CMD_READ)
			fz_simple(fz, i, 0, r->type == NBD_CMD_READ);
		else
			fz_read_chunks(fz, i);
		for (ret = 0; ret < fz->nunits; ret++)
			fz->order[fz->norder++] = ret;
		fz_assemble(fz, U32_MAX);
		ret = fz_send(fz, fz->out, fz->olen);
		if (ret)
			return ret;
		until = jiffies + FZ_WAIT;
	}
	return 0;
}

static void fz_report(struct fz *fz, const char *what)
{
	struct kunit *test = fz->test;
	int i;

	KUNIT_FAIL(test, "stream %u: %s; again: nbd_kunit.fuzz_seed=%lu nbd_kunit.fuzz_first=%u",
		   fz->index, what, fuzz_seed, fz->index);
	kunit_err(test, "  fields changed: magic %u, flags %u, type %u, cookie %u, length %u, error %u, offset %u, hole %u, message %u\n",
		  fz->touched[FZ_MAGIC], fz->touched[FZ_FLAGS_F],
		  fz->touched[FZ_TYPE], fz->touched[FZ_COOKIE],
		  fz->touched[FZ_LENGTH], fz->touched[FZ_ERROR],
		  fz->touched[FZ_OFFSET], fz->touched[FZ_HOLELEN],
		  fz->touched[FZ_MSGLEN]);
	for (i = 0; i < fz->nreq; i++)
		kunit_err(test, "  request %d: %s at %llu, %u bytes, cookie %#llx: %s, error %d\n",
			  i, nbd_cmd_name(fz->req[i].type), fz->req[i].off,
			  fz->req[i].len, fz->req[i].cookie,
			  READ_ONCE(fz->req[i].done) ? "done" : "pending",
			  fz->req[i].err);
}

/*
 * Whether a wrong reply could have looked right after these mutations.
 * In a structured reply one changed length can make one: the DONE chunk
 * of the request's start, reordered before the chunk of its end, grown
 * over that chunk's header and data, is a well-formed reply covering the
 * request, with that header in its data (nbd_fuzz found it, stream
 * 173946 of seed 20261202).  Setting DONE early is geometry too.
 */
static bool fz_data_checkable(struct fz *fz)
{
	unsigned int geometry = fz->touched[FZ_OFFSET] +
				fz->touched[FZ_HOLELEN] +
				fz->touched[FZ_LENGTH] + fz->touched[FZ_TYPE] +
				fz->touched[FZ_FLAGS_F];

	if (!fz->structured &&
	    (fz->touched[FZ_COOKIE] || fz->touched[FZ_ERROR]))
		return false;
	if (fz->structured && fz->touched[FZ_LENGTH])
		return false;
	return geometry < 2;
}

static int fz_check(struct fz *fz, bool mutated)
{
	bool data = fz_data_checkable(fz);
	int i;

	for (i = 0; i < fz->nreq; i++) {
		struct fz_req *r = &fz->req[i];

		if (r->err) {
			fz->st.completed_err++;
			if (!mutated && r->err != r->want_err) {
				fz_report(fz, "a valid stream gave a request the wrong error");
				return -EINVAL;
			}
			continue;
		}
		fz->st.completed_ok++;
		if (!mutated && r->want_err) {
			fz_report(fz, "a valid error reply ended a request without error");
			return -EINVAL;
		}
		if (r->type == NBD_CMD_WRITE) {
			fz->st.writes_checked++;
			if (memcmp(fz->disk + r->off, r->buf, r->len)) {
				fz_report(fz, "a write that succeeded is not on the disk");
				return -EINVAL;
			}
		} else if (r->type == NBD_CMD_READ && data) {
			fz->st.reads_checked++;
			if (memcmp(fz->disk + r->off, r->buf, r->len)) {
				fz_report(fz, "a read that succeeded returned other data");
				return -EINVAL;
			}
		}
	}
	return 0;
}

static int fz_stream(struct fz *fz, unsigned int index, int cas)
{
	unsigned long until = jiffies + FZ_WAIT;
	unsigned int reqs = 0;
	struct fz_req *r;
	bool close;
	int n, ret;
	u32 cut;

	u64 t = ktime_get_ns(), t1;

	fz->index = index;
	fz->rng = fuzz_seed ^ ((u64)cas << 56) ^ (u64)index * 0x100000001b3ULL;
	fz_make_requests(fz);
	fz->st.requests += fz->nreq;

	/* the requests as the driver sent them */
	while (hweight32(reqs) < fz->nreq) {
		r = fz_take_request(fz, until);
		if (!r && time_before(jiffies, until))
			continue;
		if (IS_ERR_OR_NULL(r)) {
			fz_report(fz, r ? "the server's socket failed" :
				  "the driver did not send every request");
			return -EIO;
		}
		reqs |= BIT(r - fz->req);
	}

	t1 = ktime_get_ns();
	fz->st.ns[0] += t1 - t;
	t = t1;
	fz_build(fz, reqs);
	n = fz_mutate(fz, &cut);
	fz_assemble(fz, cut);
	fz->st.mutations += n;
	fz->st.mutated += !!n;
	/* a send fails when the driver closed already: no matter */
	fz_deliver(fz);

	close = n || fz_one_in(fz, 16);
	if (!close) {
		if (!wait_event_timeout(fz->wq, fz_all_done(fz), FZ_WAIT)) {
			fz_report(fz, "a valid stream left requests pending");
			return -ETIMEDOUT;
		}
		if (!nbd_conn_alive(fz_conn(fz))) {
			fz_report(fz, "a valid stream ended the connection");
			return -EPROTO;
		}
		fz->st.streams++;
		return fz_check(fz, false);
	}

	fz->st.closed++;
	t1 = ktime_get_ns();
	fz->st.ns[1] += t1 - t;
	t = t1;
	fz_close_srv(fz);
	if (!fz_wait_dead(fz)) {
		fz_report(fz, "the driver did not notice the server closing");
		return -ETIMEDOUT;
	}
	t1 = ktime_get_ns();
	fz->st.ns[2] += t1 - t;
	t = t1;
	for (n = 0; n < fz->nreq; n++)
		fz->req[n].seen = false;
	ret = fz_reconnect(fz);
	if (ret) {
		fz_report(fz, "reconnecting failed");
		return ret;
	}
	t1 = ktime_get_ns();
	fz->st.ns[3] += t1 - t;
	t = t1;
	ret = fz_serve_rest(fz);
	fz->st.ns[4] += ktime_get_ns() - t;
	if (ret) {
		fz_report(fz, ret == -ETIMEDOUT ?
			  "requests still pending 10 s after a reconnect to a good server" :
			  "serving after the reconnect failed");
		return ret;
	}
	fz->st.streams++;
	/* what the good server answered carried no error: not checked */
	return fz_check(fz, true);
}

struct fz_case {
	const char *name;
	bool structured;
	bool tcp;
};

static const struct fz_case fz_cases[] = {
	{ "simple replies over AF_UNIX", false, false },
	{ "simple replies over TCP", false, true },
	{ "structured replies over AF_UNIX", true, false },
	{ "structured replies over TCP", true, true },
};

/*
 * KUnit gives a case 300 s (lib/kunit/try-catch.c), so a case's streams
 * run as slices of at most FZ_SLICE streams, each a parameter of its own
 * with a fresh device: a million streams fit in one boot.  A parameter
 * is a pointer into fz_params; its index is case * slices + slice.
 */
#define FZ_SLICE	4000
#define FZ_MAX_PARAMS	4096
#define FZ_DEADLINE_S	270U

static const u8 fz_params[FZ_MAX_PARAMS];

struct fz_slice {
	const struct fz_case *c;
	unsigned int first;	/* index of its first stream */
	unsigned int n;		/* streams in it */
};

/* streams per case, and per slice so that the slices fit fz_params */
static unsigned int fz_per_case(void)
{
	return max(1U, fuzz_streams / (unsigned int)ARRAY_SIZE(fz_cases));
}

static unsigned int fz_slice_len(void)
{
	unsigned int per_slot = FZ_MAX_PARAMS / ARRAY_SIZE(fz_cases);

	return max_t(unsigned int, FZ_SLICE,
		     DIV_ROUND_UP(fz_per_case(), per_slot));
}

static unsigned int fz_slices(void)
{
	return DIV_ROUND_UP(fz_per_case(), fz_slice_len());
}

static void fz_slice_of(const void *param, struct fz_slice *sl)
{
	unsigned int k = (const u8 *)param - fz_params;
	unsigned int len = fz_slice_len(), slice = k % fz_slices();

	sl->c = &fz_cases[k / fz_slices()];
	sl->first = fuzz_first + slice * len;
	sl->n = min(len, fz_per_case() - slice * len);
}

static const void *fz_gen_params(const void *prev, char *desc)
{
	const u8 *p = prev ? (const u8 *)prev + 1 : fz_params;
	struct fz_slice sl;

	if (p - fz_params >= ARRAY_SIZE(fz_cases) * fz_slices())
		return NULL;
	fz_slice_of(p, &sl);
	snprintf(desc, KUNIT_PARAM_DESC_SIZE, "%s, streams %u-%u",
		 sl.c->name, sl.first, sl.first + sl.n - 1);
	return p;
}

static void fz_teardown(struct fz *fz)
{
	int i;

	if (fz->nbd) {
		nbd_disconnect_and_put(fz->nbd, false);
		/* whatever a failed stream left pending ends with the session */
		if (!wait_event_timeout(fz->wq, fz_all_done(fz), FZ_WAIT)) {
			kunit_err(fz->test, "requests still pending after the disconnect: their buffers are leaked\n");
			for (i = 0; i < FZ_MAXREQ; i++)
				fz->req[i].buf = NULL;
		}
		nbd_put(fz->nbd);
		fz->nbd = NULL;
	}
	fz_close_srv(fz);
	if (fz->listener)
		sock_release(fz->listener);
	for (i = 0; i < FZ_MAXREQ; i++)
		vfree(fz->req[i].buf);
	vfree(fz->disk);
	vfree(fz->rxbuf);
	vfree(fz->base);
	vfree(fz->out);
}

static void nbd_fuzz_replies(struct kunit *test)
{
	const struct fz_case *c;
	unsigned int n, cas, i;
	struct fz_slice sl;
	struct fz *fz;
	bool warned;
	u64 t0, ms;
	int err = 0;

	fz_slice_of(test->param_value, &sl);
	c = sl.c;
	n = sl.n;
	cas = c - fz_cases;

	fz = kunit_kzalloc(test, sizeof(*fz), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, fz);
	fz->test = test;
	fz->structured = c->structured;
	fz->tcp = c->tcp;
	init_waitqueue_head(&fz->wq);
	fz->disk = vmalloc(FZ_SIZE);
	fz->rxbuf = vmalloc(FZ_MAXLEN);
	fz->base = vmalloc(FZ_BASE_MAX);
	fz->out = vmalloc(FZ_OUT_MAX);
	for (i = 0; i < FZ_MAXREQ; i++)
		fz->req[i].buf = vmalloc(FZ_MAXLEN);
	if (!fz->disk || !fz->rxbuf || !fz->base || !fz->out ||
	    !fz->req[0].buf || !fz->req[1].buf || !fz->req[2].buf ||
	    !fz->req[3].buf) {
		fz_teardown(fz);
		KUNIT_FAIL(test, "no memory for the fuzz buffers");
		return;
	}
	fz_fill_disk(fz);
	if (c->tcp)
		err = fz_listen(fz);
	err = err ?: fz_connect(fz);
	if (err) {
		fz_teardown(fz);
		KUNIT_FAIL(test, "cannot connect the device: %d", err);
		return;
	}

	/*
	 * A WARN names its stream where the kernel was not tainted before
	 * (UML warns at boot; run.sh then finds the WARN in the log).
	 */
	warned = test_taint(TAINT_WARN);
	t0 = ktime_get_ns();
	for (i = 0; i < n && !err; i++) {
		err = fz_stream(fz, sl.first + i, cas);
		if (!err && !warned && test_taint(TAINT_WARN)) {
			fz_report(fz, "the kernel warned (see above)");
			err = -EINVAL;
		}
		if (!err && i + 1 < n &&
		    ktime_get_ns() - t0 > (u64)FZ_DEADLINE_S * NSEC_PER_SEC) {
			KUNIT_FAIL(test,
				   "stopped after %u of %u streams: past %u s of KUnit's 300 s for a case (a slow host?)",
				   i + 1, n, FZ_DEADLINE_S);
			err = -ETIMEDOUT;
		}
	}
	ms = max_t(u64, 1, div_u64(ktime_get_ns() - t0, NSEC_PER_MSEC));
	kunit_info(test, "%s: %llu streams (seed %lu, from %u) in %llu ms: %llu streams/s\n",
		   c->name, fz->st.streams, fuzz_seed, sl.first, ms,
		   div64_u64(fz->st.streams * 1000, ms));
	kunit_info(test, "  %llu mutated (%llu mutations), %llu closed by the server and reconnected, %llu pieces written, %llu other reads\n",
		   fz->st.mutated, fz->st.mutations, fz->st.closed,
		   fz->st.pieces, fz->st.foreign);
	kunit_info(test, "  %llu requests: %llu completed, %llu failed; %llu reads and %llu writes checked against the disk\n",
		   fz->st.requests, fz->st.completed_ok, fz->st.completed_err,
		   fz->st.reads_checked, fz->st.writes_checked);
	kunit_info(test, "  ms: requests %llu, replies %llu, closing %llu, reconnect %llu, rest %llu\n",
		   fz->st.ns[0] / NSEC_PER_MSEC, fz->st.ns[1] / NSEC_PER_MSEC,
		   fz->st.ns[2] / NSEC_PER_MSEC, fz->st.ns[3] / NSEC_PER_MSEC,
		   fz->st.ns[4] / NSEC_PER_MSEC);
	fz_teardown(fz);
	KUNIT_EXPECT_EQ(test, err, 0);
	KUNIT_EXPECT_EQ(test, fz->st.streams, (u64)n);
}

static struct kunit_case nbd_fuzz_cases[] = {
	KUNIT_CASE_PARAM(nbd_fuzz_replies, fz_gen_params),
	{}
};

static struct kunit_suite nbd_fuzz_suite = {
	.name = "nbd_fuzz",
	.test_cases = nbd_fuzz_cases,
};

kunit_test_suites(&nbd_fuzz_suite);
