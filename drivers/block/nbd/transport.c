// SPDX-License-Identifier: GPL-2.0
/*
 * NBD transport: one connection's sender and receiver.
 *
 * Sending: blk-mq's ->queue_rq puts a request on the connection's
 * lock-free send list; at the end of the batch (bd->last, ->commit_rqs)
 * the submitting task writes the list out itself with non-blocking
 * writes and MSG_MORE on all but the last request, unless another task
 * is writing already; a request's header and its first bio's data go
 * out in one write when that bio has at most 16 segments.  What the
 * socket does not take at once is left half-written in the
 * connection's tx state and finished by the sender,
 * a work item on a per-CPU workqueue that writes with blocking sends.
 * Non-blocking writes are never cut short by a signal, and the writes
 * skip the LSM hook: the socket was vetted when userspace handed it
 * over, and the credentials of whichever task submits I/O must not
 * decide whether a request reaches the server.
 *
 * The receiver parses replies in place: the connection keeps its place
 * in the stream, so a reply may arrive cut anywhere, and read data is
 * copied straight into the request's pages.  On plain TCP the socket's
 * data_ready callback parses the socket buffers with ->read_sock right
 * there in softirq, many replies per call, and completes them; when a
 * task owns the socket it queues a short work item that does the same
 * under lock_sock().  AF_UNIX streams have no ->read_sock: there a work
 * item waits in recvmsg for the life of the connection, on a workqueue
 * of the connection's own (with a rescuer: under memory pressure it
 * needs no worker from anyone else).  The senders and the short TCP
 * runs go to the device's workqueue, which has a rescuer too.  Every reply is
 * checked before it touches a request: the magic, the cookie's hardware
 * queue and tag, that the request is on the wire on this very
 * connection, and that the cookie's generation is the one of the current
 * transmission.  Anything else is a protocol violation that closes the
 * connection.
 */
#include <linux/bio.h>
#include <linux/blk-mq.h>
#include <linux/ctype.h>
#include <linux/net.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "nbd.h"
#include "trace.h"
#include "transport.h"

#define nbd_conn_err(conn, fmt, ...)					\
	dev_err_ratelimited(nbd_to_dev((conn)->nbd), "connection %u: " fmt, \
			    (conn)->index, ##__VA_ARGS__)

/*
 * sock_sendmsg() without the security hook (see the top of the file).
 */
static int nbd_sendmsg(struct socket *sock, struct msghdr *msg)
{
	return READ_ONCE(sock->ops)->sendmsg(sock, msg, msg_data_left(msg));
}

static int nbd_send_buf(struct nbd_conn *conn, void *buf, size_t len,
			int flags)
{
	struct kvec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL | flags };
	int ret;

	iov_iter_kvec(&msg.msg_iter, ITER_SOURCE, &iov, 1, len);
	while (msg_data_left(&msg)) {
		ret = nbd_sendmsg(conn->sock, &msg);
		if (ret <= 0)
			return ret ? ret : -EPIPE;
	}
	return 0;
}

/* Point @iter at the data of @bio, in place. */
static void nbd_bio_iter(struct iov_iter *iter, unsigned int dir,
			 struct bio *bio)
{
	struct bvec_iter bi;
	struct bio_vec bv;
	unsigned int nr = 0;

	bio_for_each_bvec(bv, bio, bi)
		nr++;
	iov_iter_bvec(iter, dir, __bvec_iter_bvec(bio->bi_io_vec, bio->bi_iter),
		      nr, bio->bi_iter.bi_size);
	iter->iov_offset = bio->bi_iter.bi_bvec_done;
}

/*
 * Load the data segments of @bio into tx_vec from index @n on.  Return
 * the new count, or @n unchanged when they do not all fit.
 */
static unsigned int nbd_tx_add_bio(struct nbd_conn *conn, unsigned int n,
				   struct bio *bio)
{
	unsigned int first = n;
	struct bvec_iter bi;
	struct bio_vec bv;

	bio_for_each_bvec(bv, bio, bi) {
		if (n == ARRAY_SIZE(conn->tx_vec))
			return first;
		conn->tx_vec[n++] = bv;
	}
	return n;
}

/*
 * Whether a queued request may still go out on this connection: not once
 * it died, nor after NBD_CMD_DISC, nor when the server is shutting down
 * (those go elsewhere, or wait for a reconnect).
 */
static bool nbd_conn_sends_queued(struct nbd_conn *conn)
{
	return nbd_conn_alive(conn) &&
	       !test_bit(NBD_CONN_DISC_SENT, &conn->flags) &&
	       !test_bit(NBD_CONN_DRAIN_REQUEUE, &conn->flags);
}

/*
 * Make the next queued request the one being written: false when there
 * is none.  Requests queued on a connection that can no longer send them
 * (nbd_conn_sends_queued()) are handed back.
 */
static bool nbd_next_cmd(struct nbd_conn *conn)
{
	struct nbd_cmd *cmd;
	struct request *rq;
	unsigned int n = 1;
	size_t len;

	for (;;) {
		if (!conn->tx_next) {
			struct llist_node *batch = llist_del_all(&conn->send_list);

			conn->tx_next = llist_reverse_order(batch);
		}
		if (!conn->tx_next)
			return false;
		cmd = llist_entry(conn->tx_next, struct nbd_cmd, lentry);
		conn->tx_next = conn->tx_next->next;

		spin_lock_bh(&cmd->lock);
		if (nbd_conn_sends_queued(conn))
			break;
		WRITE_ONCE(cmd->state, NBD_CMD_IDLE);
		spin_unlock_bh(&cmd->lock);
		nbd_cmd_finish(cmd, BLK_STS_IOERR, true);
	}
	cmd->gen++;
	cmd->send_failed = false;
	cmd->sr_started = false;
	cmd->sr_error = 0;
	nbd_sr_ranges_reset(&cmd->sr_ranges);
	atomic_inc(&cmd->refs);		/* the sender's, until written */
	atomic_inc(&conn->inflight);
	WRITE_ONCE(cmd->state, NBD_CMD_SENT);
	spin_unlock_bh(&cmd->lock);

	rq = blk_mq_rq_from_pdu(cmd);
	nbd_encode_request(&conn->tx_hdr, &cmd->wire,
			   nbd_cookie_pack(cmd->gen, blk_mq_unique_tag(rq)));
	trace_nbd_send_request(&conn->tx_hdr, conn->nbd->index, rq);
	len = sizeof(conn->tx_hdr);	/* tx_vec[0] (nbd_conn_create()) */
	conn->tx_bio = NULL;
	if (cmd->wire.type == NBD_CMD_WRITE && rq->bio) {
		conn->tx_bio = rq->bio;
		n = nbd_tx_add_bio(conn, 1, rq->bio);
		if (n > 1) {
			len += rq->bio->bi_iter.bi_size;
			conn->tx_bio = rq->bio->bi_next;
		}
	}
	iov_iter_bvec(&conn->tx_iter, ITER_SOURCE, conn->tx_vec, n, len);
	conn->tx_cmd = cmd;
	return true;
}

/*
 * Write what is left of the current request.  @more: other requests
 * follow at once (MSG_MORE).  Return 0 once all of it is written,
 * -EAGAIN when @nonblock and the socket is full, or another error.
 */
static int nbd_send_cur(struct nbd_conn *conn, bool more, bool nonblock)
{
	int flags = MSG_NOSIGNAL | (nonblock ? MSG_DONTWAIT : 0);
	struct msghdr msg;
	int ret;

	for (;;) {
		if (!iov_iter_count(&conn->tx_iter)) {
			if (!conn->tx_bio)
				return 0;
			nbd_bio_iter(&conn->tx_iter, ITER_SOURCE, conn->tx_bio);
			conn->tx_bio = conn->tx_bio->bi_next;
			continue;
		}
		msg = (struct msghdr){ .msg_flags = flags };
		if (more || conn->tx_bio)
			msg.msg_flags |= MSG_MORE;
		msg.msg_iter = conn->tx_iter;
		ret = nbd_sendmsg(conn->sock, &msg);
		if (ret <= 0)
			return ret ? ret : -EPIPE;
		iov_iter_advance(&conn->tx_iter, ret);
	}
}

/*
 * Write the queued requests, first finishing one a non-blocking write
 * left half-written.  Called with tx_lock held.  Return -EAGAIN when
 * @nonblock and the socket is full (the sender must take over), else 0.
 */
static u64 nbd_cmd_cookie(struct nbd_cmd *cmd)
{
	return nbd_cookie_pack(cmd->gen,
			       blk_mq_unique_tag(blk_mq_rq_from_pdu(cmd)));
}

static void nbd_trace_sent(struct nbd_cmd *cmd)
{
	struct request *rq = blk_mq_rq_from_pdu(cmd);

	/* as upstream: "payload sent" once all of a request is out */
	if (trace_nbd_header_sent_enabled())
		trace_nbd_header_sent(rq, nbd_cmd_cookie(cmd));
	if (trace_nbd_payload_sent_enabled())
		trace_nbd_payload_sent(rq, nbd_cmd_cookie(cmd));
}

static int nbd_send_queued(struct nbd_conn *conn, bool nonblock)
{
	struct nbd_cmd *cmd;
	int ret;

	while (conn->tx_cmd || nbd_next_cmd(conn)) {
		bool more = conn->tx_next || !llist_empty(&conn->send_list);

		cmd = conn->tx_cmd;
		ret = nbd_send_cur(conn, more, nonblock);
		if (ret == -EAGAIN && nonblock)
			return -EAGAIN;
		if (ret) {
			if (nbd_conn_alive(conn))
				nbd_conn_err(conn, "sending %s request failed: %d\n",
					     nbd_cmd_name(cmd->wire.type), ret);
			/*
			 * The reaper hands the request back once the receiver
			 * ends.  A reply that came while it was still being
			 * written (possible only for a write whose data did
			 * not all go out) must not end it as done: the last
			 * put sees this and hands it back instead.
			 */
			cmd->send_failed = true;
			nbd_conn_fail(conn, ret);
		} else {
			conn->requests_sent++;
			nbd_trace_sent(cmd);
		}
		conn->tx_cmd = NULL;
		/* The reply may have come already: this may end it. */
		nbd_cmd_put(cmd);
		if (!nonblock)
			cond_resched();
	}
	return 0;
}

static void nbd_send_disc(struct nbd_conn *conn)
{
	struct nbd_wire_cmd disc = { .type = NBD_CMD_DISC };
	struct nbd_request hdr;
	int ret;

	if (!nbd_conn_alive(conn))
		return;
	nbd_encode_request(&hdr, &disc, 0);
	ret = nbd_send_buf(conn, &hdr, sizeof(hdr), 0);
	if (ret)
		dev_dbg(nbd_to_dev(conn->nbd),
			"connection %u: sending disconnect failed: %d\n",
			conn->index, ret);
}

/*
 * A connection ending softly is done once NBD_CMD_DISC is out and no
 * request is on the wire.  The sender (after NBD_CMD_DISC) and the
 * receiver (after a reply) both ask; each writes its half before it
 * reads the other's, so at least one of them sees both.
 */
static bool nbd_conn_drained(struct nbd_conn *conn)
{
	return test_bit(NBD_CONN_DISC_SENT, &conn->flags) &&
	       !atomic_read(&conn->inflight);
}

static void nbd_send_work(struct work_struct *work)
{
	struct nbd_conn *conn = container_of(work, struct nbd_conn, send_work);
	unsigned int noreclaim = memalloc_noreclaim_save();
	bool drained = false;

	mutex_lock(&conn->tx_lock);
	nbd_send_queued(conn, false);
	/* Caught up; a push that finds the socket full sets it again. */
	clear_bit(NBD_CONN_TX_FULL, &conn->flags);
	if (test_and_clear_bit(NBD_CONN_SEND_DISC, &conn->flags) &&
	    !test_bit(NBD_CONN_DISC_SENT, &conn->flags)) {
		nbd_send_disc(conn);
		set_bit(NBD_CONN_DISC_SENT, &conn->flags);
		smp_mb__after_atomic();	/* see nbd_conn_drained() */
		drained = nbd_conn_drained(conn);
	}
	mutex_unlock(&conn->tx_lock);
	memalloc_noreclaim_restore(noreclaim);
	if (drained)
		nbd_conn_fail(conn, 0);
}

static struct request *nbd_cookie_to_rq(struct nbd_device *nbd, u64 cookie)
{
	u32 unique = nbd_cookie_tag(cookie);
	u16 hwq = blk_mq_unique_tag_to_hwq(unique);

	if (hwq >= nbd->tag_set.nr_hw_queues)
		return NULL;
	return blk_mq_tag_to_rq(nbd->tag_set.tags[hwq],
				blk_mq_unique_tag_to_tag(unique));
}

/* A request on the wire of @conn was claimed: one fewer in flight. */
static void nbd_rx_claimed(struct nbd_conn *conn)
{
	atomic_dec(&conn->inflight);
	smp_mb__after_atomic();	/* see nbd_conn_drained() */
	conn->replies_received++;
}

/*
 * The request a reply names, checked: it must be on the wire on this
 * connection in the transmission the cookie names.  Return it, or NULL
 * (after saying why).  Only this connection's receiver changes the state
 * of a request that is on the wire on it, so the request stays so until
 * the receiver claims it (nbd_rx_claim(), or here with @claim: in the
 * same critical section, for a simple reply to a session without
 * structured replies) or the connection dies.
 */
static struct nbd_cmd *nbd_rx_lookup(struct nbd_conn *conn, u64 cookie,
				     bool claim)
{
	struct request *rq = nbd_cookie_to_rq(conn->nbd, cookie);
	const char *why = NULL;
	struct nbd_cmd *cmd;

	if (!rq) {
		nbd_conn_err(conn, "reply with unknown cookie %#llx\n", cookie);
		return NULL;
	}

	cmd = blk_mq_rq_to_pdu(rq);
	spin_lock_bh(&cmd->lock);
	if (cmd->state != NBD_CMD_SENT)
		why = "request not in flight";
	else if (cmd->conn != conn)
		why = "request was sent on another connection";
	else if (cmd->gen != nbd_cookie_gen(cookie))
		why = "stale generation";
	else if (claim)
		WRITE_ONCE(cmd->state, NBD_CMD_IDLE);
	spin_unlock_bh(&cmd->lock);

	if (why) {
		nbd_conn_err(conn, "unexpected reply, cookie %#llx: %s\n",
			     cookie, why);
		return NULL;
	}
	if (claim)
		nbd_rx_claimed(conn);
	return cmd;
}

/* The reply to @cmd is complete: it is the receiver's to end now. */
static void nbd_rx_claim(struct nbd_conn *conn, struct nbd_cmd *cmd)
{
	spin_lock_bh(&cmd->lock);
	WRITE_ONCE(cmd->state, NBD_CMD_IDLE);
	spin_unlock_bh(&cmd->lock);
	nbd_rx_claimed(conn);
}

/*
 * Receiving.  The parser is a state machine (enum nbd_rx_state) that
 * always wants one thing next, and conn->rx_iter says where it goes: a
 * reply header, a chunk's fixed fields, a read's data straight into the
 * pages of the request's bios, or bytes to drop.  Whatever brings bytes
 * in fills rx_iter and then calls nbd_rx_advance(), so a reply may
 * arrive cut anywhere.  A simple reply is claimed as soon as its header
 * is in; a request answered with structured reply chunks stays on the
 * wire until its DONE chunk, so that a violation anywhere before that
 * hands it back like any other request of a failed connection.
 */
enum nbd_rx_state {
	NBD_RX_HDR,		/* 16 bytes: a simple reply, or a chunk's start */
	NBD_RX_CHUNK_HDR,	/* the last 4 bytes of a chunk header */
	NBD_RX_SIMPLE_DATA,	/* a simple read reply's data */
	NBD_RX_DATA_OFFSET,	/* OFFSET_DATA: the offset */
	NBD_RX_DATA,		/* OFFSET_DATA: the data */
	NBD_RX_HOLE,		/* OFFSET_HOLE: offset and size */
	NBD_RX_ERR_HDR,		/* error chunk: error and message length */
	NBD_RX_ERR_MSG,		/* the part of the message kept */
	NBD_RX_ERR_SKIP,	/* the rest of the message */
	NBD_RX_ERR_OFFSET,	/* ERROR_OFFSET: the offset */
	NBD_RX_DISCARD,		/* what follows an unknown error type */
};

static void nbd_rx_want(struct nbd_conn *conn, void *buf, size_t len,
			enum nbd_rx_state state)
{
	conn->rx_kvec.iov_base = buf;
	conn->rx_kvec.iov_len = len;
	iov_iter_kvec(&conn->rx_iter, ITER_DEST, &conn->rx_kvec, 1, len);
	conn->rx_state = state;
}

static void nbd_rx_want_hdr(struct nbd_conn *conn)
{
	nbd_rx_want(conn, &conn->rx_hdr, NBD_SIMPLE_REPLY_SIZE, NBD_RX_HDR);
	conn->rx_cmd = NULL;
	conn->rx_sr_cmd = NULL;
	conn->rx_bio = NULL;
}

static void nbd_rx_want_discard(struct nbd_conn *conn, size_t len,
				enum nbd_rx_state state)
{
	iov_iter_discard(&conn->rx_iter, ITER_DEST, len);
	conn->rx_state = state;
}

/*
 * A reply is complete: end its request and get ready for the next
 * header.  Return -ESHUTDOWN when the connection is ending softly and
 * that was the last request on the wire: the receiver then ends it.
 */
static int nbd_rx_reply_done(struct nbd_conn *conn, struct nbd_cmd *cmd,
			     blk_status_t status, bool retry)
{
	/* as upstream: "payload received" once any reply is complete */
	if (trace_nbd_payload_received_enabled())
		trace_nbd_payload_received(blk_mq_rq_from_pdu(cmd),
					   nbd_cmd_cookie(cmd));
	nbd_rx_want_hdr(conn);
	nbd_cmd_finish(cmd, status, retry);
	return nbd_conn_drained(conn) ? -ESHUTDOWN : 0;
}

/*
 * The server answered NBD_ESHUTDOWN: it is going away and did not
 * execute the request.  The protocol asks for a soft disconnect: no new
 * request on this connection, NBD_CMD_DISC after the one being written,
 * the ones not written yet go elsewhere (or wait for a reconnect), and
 * the request itself is resent the same way.
 */
static int nbd_rx_server_shutdown(struct nbd_conn *conn, struct nbd_cmd *cmd)
{
	if (nbd_conn_drain(conn, true))
		dev_warn(nbd_to_dev(conn->nbd),
			 "connection %u: the server is shutting down (ESHUTDOWN): disconnecting it, its requests are resent\n",
			 conn->index);
	return nbd_rx_reply_done(conn, cmd, BLK_STS_IOERR, true);
}

/* End a claimed request with the error its reply carried. */
static int nbd_rx_reply_error(struct nbd_conn *conn, struct nbd_cmd *cmd,
			      u32 error)
{
	if (error == NBD_ESHUTDOWN)
		return nbd_rx_server_shutdown(conn, cmd);
	return nbd_rx_reply_done(conn, cmd, nbd_error_to_status(error), false);
}

/* A simple reply's header is in. */
static int nbd_rx_simple_done(struct nbd_conn *conn)
{
	struct nbd_cmd *cmd;
	struct request *rq;
	u32 error;
	u64 cookie;

	nbd_decode_simple_reply(&conn->rx_hdr.simple, &cookie, &error);
	/* Without structured replies: claimed at once, as it always was. */
	cmd = nbd_rx_lookup(conn, cookie, !conn->config->structured);
	if (!cmd)
		return -EPROTO;
	if (conn->config->structured) {
		/*
		 * Simple replies stay allowed where they carry no payload:
		 * for anything but a read, and for a failed read.
		 */
		if (cmd->sr_started) {
			nbd_conn_err(conn, "simple reply, cookie %#llx, to a request answered with chunks already\n",
				     cookie);
			return -EPROTO;
		}
		if (cmd->wire.type == NBD_CMD_READ && !error) {
			nbd_conn_err(conn, "simple reply with data to a read, cookie %#llx, with structured replies negotiated\n",
				     cookie);
			return -EPROTO;
		}
		nbd_rx_claim(conn, cmd);
	}
	rq = blk_mq_rq_from_pdu(cmd);
	trace_nbd_header_received(rq, cookie);

	if (error) {
		if (error != NBD_ESHUTDOWN)
			dev_err_ratelimited(nbd_to_dev(conn->nbd),
					    "server error %s (%u) on %s of %u bytes at %llu\n",
					    nbd_error_name(error), error,
					    nbd_cmd_name(cmd->wire.type),
					    cmd->wire.length, cmd->wire.offset);
		return nbd_rx_reply_error(conn, cmd, error);
	}

	if (cmd->wire.type == NBD_CMD_READ && rq->bio) {
		/* The data follows: the request is the receiver's now. */
		conn->rx_cmd = cmd;
		conn->rx_bio = rq->bio;
		nbd_bio_iter(&conn->rx_iter, ITER_DEST, rq->bio);
		conn->rx_state = NBD_RX_SIMPLE_DATA;
		return 0;
	}
	return nbd_rx_reply_done(conn, cmd, BLK_STS_OK, false);
}

/* The first 16 bytes of a reply are in: which kind is it? */
static int nbd_rx_hdr_done(struct nbd_conn *conn)
{
	u32 magic = be32_to_cpu(conn->rx_hdr.simple.magic);

	if (magic == NBD_REPLY_MAGIC)
		return nbd_rx_simple_done(conn);
	if (magic != NBD_STRUCTURED_REPLY_MAGIC) {
		nbd_conn_err(conn, "reply with bad magic %#010x\n", magic);
		return -EPROTO;
	}
	if (!conn->config->structured) {
		nbd_conn_err(conn, "structured reply, but structured replies were not negotiated\n");
		return -EPROTO;
	}
	nbd_rx_want(conn, (u8 *)&conn->rx_hdr + NBD_SIMPLE_REPLY_SIZE,
		    NBD_CHUNK_HDR_SIZE - NBD_SIMPLE_REPLY_SIZE,
		    NBD_RX_CHUNK_HDR);
	return 0;
}

/* Say what is wrong with the chunk being read: a protocol violation. */
#define nbd_chunk_err(conn, fmt, ...)					\
	nbd_conn_err(conn, "%s chunk, cookie %#llx, for %s of %u bytes at %llu: " fmt, \
		     nbd_chunk_type_name((conn)->rx_chunk.type),	\
		     (conn)->rx_chunk.cookie,				\
		     nbd_cmd_name((conn)->rx_sr_cmd->wire.type),	\
		     (conn)->rx_sr_cmd->wire.length,			\
		     (conn)->rx_sr_cmd->wire.offset, ##__VA_ARGS__)

/* A whole chunk header is in: check it against its request. */
static int nbd_rx_chunk_hdr_done(struct nbd_conn *conn)
{
	struct nbd_chunk *c = &conn->rx_chunk;
	enum nbd_chunk_verdict v;
	struct nbd_cmd *cmd;

	nbd_decode_chunk_hdr(&conn->rx_hdr.chunk, c);
	cmd = nbd_rx_lookup(conn, c->cookie, false);
	if (!cmd)
		return -EPROTO;
	conn->rx_sr_cmd = cmd;
	v = nbd_chunk_check(c, cmd->wire.type, cmd->wire.length);
	if (v != NBD_CHUNK_OK) {
		nbd_chunk_err(conn, "%s (type %#x, length %u)\n",
			      nbd_chunk_verdict_text(v), c->type, c->length);
		return -EPROTO;
	}
	if (!cmd->sr_started)
		trace_nbd_header_received(blk_mq_rq_from_pdu(cmd), c->cookie);
	trace_nbd_chunk(conn->nbd->index, conn->index, c->cookie, c->flags,
			c->type, c->length);
	cmd->sr_started = true;
	conn->chunks_received++;

	switch (c->type) {
	case NBD_REPLY_TYPE_NONE:
		return 1;	/* the chunk is complete */
	case NBD_REPLY_TYPE_OFFSET_DATA:
		nbd_rx_want(conn, conn->rx_fields, 8, NBD_RX_DATA_OFFSET);
		return 0;
	case NBD_REPLY_TYPE_OFFSET_HOLE:
		nbd_rx_want(conn, conn->rx_fields, 12, NBD_RX_HOLE);
		return 0;
	default:	/* an error type (nbd_chunk_check()) */
		nbd_rx_want(conn, conn->rx_fields, 6, NBD_RX_ERR_HDR);
		return 0;
	}
}

/* The bio holding byte @rel of @rq, and where in it that byte is. */
static struct bio *nbd_rq_bio_at(struct request *rq, u32 rel, u32 *skip)
{
	struct bio *bio;

	for (bio = rq->bio; bio; bio = bio->bi_next) {
		if (rel < bio->bi_iter.bi_size)
			break;
		rel -= bio->bi_iter.bi_size;
	}
	*skip = rel;
	return bio;
}

/* Point rx_iter at the next at most rx_left bytes of rx_bio from @skip. */
static void nbd_rx_data_iter(struct nbd_conn *conn, u32 skip)
{
	nbd_bio_iter(&conn->rx_iter, ITER_DEST, conn->rx_bio);
	iov_iter_advance(&conn->rx_iter, skip);
	iov_iter_truncate(&conn->rx_iter, conn->rx_left);
	conn->rx_left -= iov_iter_count(&conn->rx_iter);
}

/*
 * Account for the range of a data or hole chunk; return where it starts
 * in the request, or -EPROTO.
 */
static s64 nbd_rx_chunk_range(struct nbd_conn *conn, u64 offset, u32 len)
{
	struct nbd_cmd *cmd = conn->rx_sr_cmd;
	u32 rel;
	int ret;

	ret = nbd_sr_range_add(&cmd->sr_ranges, cmd->wire.offset,
			       cmd->wire.length, offset, len, &rel);
	if (!ret)
		return rel;
	if (ret == -ERANGE)
		nbd_chunk_err(conn, "range %llu+%u is not inside the request\n",
			      offset, len);
	else if (ret == -EEXIST)
		nbd_chunk_err(conn, "range %llu+%u overlaps an earlier chunk\n",
			      offset, len);
	else if (ret == -ENOSPC)
		nbd_chunk_err(conn, "range %llu+%u leaves more than %d gaps and is not whole sectors\n",
			      offset, len, NBD_SR_RANGES);
	else
		nbd_chunk_err(conn, "no memory to track the chunks of a read with more than %d gaps\n",
			      NBD_SR_RANGES);
	return -EPROTO;
}

/* OFFSET_DATA's offset is in: the data goes into the request's pages. */
static int nbd_rx_data_offset_done(struct nbd_conn *conn)
{
	u64 offset = get_unaligned_be64(conn->rx_fields);
	u32 len = conn->rx_chunk.length - 8;
	struct request *rq = blk_mq_rq_from_pdu(conn->rx_sr_cmd);
	s64 rel = nbd_rx_chunk_range(conn, offset, len);
	u32 skip;

	if (rel < 0)
		return rel;
	trace_nbd_chunk_range(conn->nbd->index, conn->rx_chunk.cookie, false,
			      offset, len);
	conn->rx_bio = nbd_rq_bio_at(rq, rel, &skip);
	if (WARN_ON_ONCE(!conn->rx_bio))
		return -EPROTO;
	conn->rx_left = len;
	nbd_rx_data_iter(conn, skip);
	conn->rx_state = NBD_RX_DATA;
	return 0;
}

/* OFFSET_HOLE's fields are in: zero the range it names. */
static int nbd_rx_hole_done(struct nbd_conn *conn)
{
	u64 offset = get_unaligned_be64(conn->rx_fields);
	u32 len = get_unaligned_be32(conn->rx_fields + 8);
	struct request *rq = blk_mq_rq_from_pdu(conn->rx_sr_cmd);
	struct iov_iter iter;
	struct bio *bio;
	s64 rel;
	u32 skip, n;

	if (!len) {
		nbd_chunk_err(conn, "hole of size 0 at %llu\n", offset);
		return -EPROTO;
	}
	rel = nbd_rx_chunk_range(conn, offset, len);
	if (rel < 0)
		return rel;
	trace_nbd_chunk_range(conn->nbd->index, conn->rx_chunk.cookie, true,
			      offset, len);
	conn->holes_received++;
	conn->hole_bytes += len;
	for (bio = nbd_rq_bio_at(rq, rel, &skip); bio && len;
	     bio = bio->bi_next, skip = 0) {
		nbd_bio_iter(&iter, ITER_DEST, bio);
		iov_iter_advance(&iter, skip);
		n = min_t(u32, len, iov_iter_count(&iter));
		iov_iter_zero(n, &iter);
		len -= n;
	}
	return 1;
}

/*
 * The next part of an error chunk, after its error and message length:
 * the message (as much as is kept, then the rest dropped), the offset of
 * ERROR_OFFSET, whatever an unknown error type carries.  Return 1 when
 * nothing is left of the chunk.
 */
static int nbd_rx_err_next(struct nbd_conn *conn)
{
	u32 fixed = 6 + conn->rx_msg_total;

	switch (conn->rx_state) {
	case NBD_RX_ERR_HDR:
		if (conn->rx_msg_kept) {
			nbd_rx_want(conn, conn->rx_msg, conn->rx_msg_kept,
				    NBD_RX_ERR_MSG);
			return 0;
		}
		fallthrough;
	case NBD_RX_ERR_MSG:
		if (conn->rx_msg_total > conn->rx_msg_kept) {
			nbd_rx_want_discard(conn, conn->rx_msg_total -
					    conn->rx_msg_kept, NBD_RX_ERR_SKIP);
			return 0;
		}
		fallthrough;
	case NBD_RX_ERR_SKIP:
		if (conn->rx_chunk.type == NBD_REPLY_TYPE_ERROR_OFFSET) {
			nbd_rx_want(conn, conn->rx_fields + 8, 8,
				    NBD_RX_ERR_OFFSET);
			return 0;
		}
		if (conn->rx_chunk.length > fixed) {
			nbd_rx_want_discard(conn, conn->rx_chunk.length - fixed,
					    NBD_RX_DISCARD);
			return 0;
		}
		fallthrough;
	default:
		return 1;
	}
}

/* An error chunk has been read whole: log it, remember its error. */
static int nbd_rx_err_done(struct nbd_conn *conn)
{
	struct nbd_cmd *cmd = conn->rx_sr_cmd;
	char where[48] = "";
	unsigned int i;

	if (conn->rx_chunk.type == NBD_REPLY_TYPE_ERROR_OFFSET) {
		u64 off = get_unaligned_be64(conn->rx_fields + 8);

		if (off < cmd->wire.offset ||
		    off - cmd->wire.offset >= cmd->wire.length) {
			nbd_chunk_err(conn, "error offset %llu is not inside the request\n",
				      off);
			return -EPROTO;
		}
		snprintf(where, sizeof(where), " (at offset %llu)", off);
	}
	/* The server's text goes to the log: printable characters only. */
	for (i = 0; i < conn->rx_msg_kept; i++)
		if (!isprint(conn->rx_msg[i]))
			conn->rx_msg[i] = '?';
	conn->rx_msg[conn->rx_msg_kept] = '\0';

	if (conn->rx_err_val != NBD_ESHUTDOWN)
		dev_err_ratelimited(nbd_to_dev(conn->nbd),
				    "server error %s (%u) on %s of %u bytes at %llu%s: \"%s\"%s\n",
				    nbd_error_name(conn->rx_err_val),
				    conn->rx_err_val,
				    nbd_cmd_name(cmd->wire.type),
				    cmd->wire.length, cmd->wire.offset, where,
				    conn->rx_msg,
				    conn->rx_msg_total > conn->rx_msg_kept ?
				    " (cut)" : "");
	conn->error_chunks++;
	if (!cmd->sr_error)
		cmd->sr_error = conn->rx_err_val;
	return 1;
}

/* An error chunk's error and message length are in. */
static int nbd_rx_err_hdr_done(struct nbd_conn *conn)
{
	struct nbd_chunk *c = &conn->rx_chunk;
	u32 error = get_unaligned_be32(conn->rx_fields);
	u16 mlen = get_unaligned_be16(conn->rx_fields + 4);
	u32 want = 6 + mlen;

	if (c->type == NBD_REPLY_TYPE_ERROR_OFFSET)
		want += 8;
	if (!error) {
		nbd_chunk_err(conn, "error chunk without an error\n");
		return -EPROTO;
	}
	if (mlen > NBD_MAX_ERROR_MSG) {
		nbd_chunk_err(conn, "message of %u bytes, more than %u\n",
			      mlen, NBD_MAX_ERROR_MSG);
		return -EPROTO;
	}
	if (c->length < want ||
	    (c->length != want && (c->type == NBD_REPLY_TYPE_ERROR ||
				   c->type == NBD_REPLY_TYPE_ERROR_OFFSET))) {
		nbd_chunk_err(conn, "message of %u bytes in a chunk of %u\n",
			      mlen, c->length);
		return -EPROTO;
	}
	conn->rx_err_val = error;
	conn->rx_msg_total = mlen;
	conn->rx_msg_kept = min_t(u16, mlen, NBD_RX_MSG_KEEP);
	conn->rx_msg[0] = '\0';
	return nbd_rx_err_next(conn) ? nbd_rx_err_done(conn) : 0;
}

/*
 * A chunk has been read whole.  Unless it is the last one, the request
 * stays on the wire.  The last one ends it: with the first error a chunk
 * gave, or with success once the chunks of a read covered all of it.
 */
static int nbd_rx_chunk_done(struct nbd_conn *conn)
{
	struct nbd_cmd *cmd = conn->rx_sr_cmd;

	if (!(conn->rx_chunk.flags & NBD_REPLY_FLAG_DONE)) {
		nbd_rx_want_hdr(conn);
		return 0;
	}
	if (!cmd->sr_error && cmd->wire.type == NBD_CMD_READ &&
	    cmd->sr_ranges.covered != cmd->wire.length) {
		nbd_chunk_err(conn, "last chunk, but only %u bytes were sent\n",
			      cmd->sr_ranges.covered);
		return -EPROTO;
	}
	nbd_rx_claim(conn, cmd);
	nbd_sr_ranges_reset(&cmd->sr_ranges);
	if (cmd->sr_error)
		return nbd_rx_reply_error(conn, cmd, cmd->sr_error);
	return nbd_rx_reply_done(conn, cmd, BLK_STS_OK, false);
}

/* rx_iter is full: act on what it held.  1: the chunk is complete. */
static int nbd_rx_step(struct nbd_conn *conn)
{
	switch (conn->rx_state) {
	case NBD_RX_HDR:
		return nbd_rx_hdr_done(conn);
	case NBD_RX_CHUNK_HDR:
		return nbd_rx_chunk_hdr_done(conn);
	case NBD_RX_SIMPLE_DATA:
		conn->rx_bio = conn->rx_bio->bi_next;
		if (conn->rx_bio) {
			nbd_bio_iter(&conn->rx_iter, ITER_DEST, conn->rx_bio);
			return 0;
		}
		return nbd_rx_reply_done(conn, conn->rx_cmd, BLK_STS_OK,
					 false);
	case NBD_RX_DATA_OFFSET:
		return nbd_rx_data_offset_done(conn);
	case NBD_RX_DATA:
		if (!conn->rx_left)
			return 1;
		conn->rx_bio = conn->rx_bio->bi_next;
		if (WARN_ON_ONCE(!conn->rx_bio))
			return -EPROTO;
		nbd_rx_data_iter(conn, 0);
		return 0;
	case NBD_RX_HOLE:
		return nbd_rx_hole_done(conn);
	case NBD_RX_ERR_HDR:
		return nbd_rx_err_hdr_done(conn);
	case NBD_RX_ERR_MSG:
	case NBD_RX_ERR_SKIP:
	case NBD_RX_ERR_OFFSET:
	case NBD_RX_DISCARD:
		if (nbd_rx_err_next(conn))
			return nbd_rx_err_done(conn);
		return 0;
	}
	return -EPROTO;
}

/*
 * Act on what rx_iter holds once it is full, as many times as that
 * takes.  Return 0, -EPROTO when the server broke the protocol, or
 * -ESHUTDOWN when a connection ending softly got its last reply.
 */
static int nbd_rx_advance(struct nbd_conn *conn)
{
	int ret;

	while (!iov_iter_count(&conn->rx_iter)) {
		ret = nbd_rx_step(conn);
		if (ret > 0)
			ret = nbd_rx_chunk_done(conn);
		if (ret)
			return ret;
	}
	return 0;
}

/* read_sock actor: parse one socket buffer's worth of the stream. */
static int nbd_rx_skb(read_descriptor_t *desc, struct sk_buff *skb,
		      unsigned int offset, size_t len)
{
	struct nbd_conn *conn = desc->arg.data;
	size_t left = len;
	int ret;

	while (left) {
		size_t n = min(left, iov_iter_count(&conn->rx_iter));

		ret = skb_copy_datagram_iter(skb, offset, &conn->rx_iter, n);
		if (!ret)
			ret = nbd_rx_advance(conn);
		if (ret) {
			desc->error = ret;
			desc->count = 0;
			break;
		}
		offset += n;
		left -= n;
	}
	return len - left;
}

/*
 * Parse all a TCP socket holds.  The caller owns the socket: lock_sock(),
 * or the socket's spinlock in softirq while no task owns it.  Return 0
 * once it is empty, or the error that stopped the parser (the server
 * broke the protocol, or read_sock failed), which then stays stopped
 * (rx_err) until the receiver ends.
 */
static int nbd_rx_read_sock_locked(struct nbd_conn *conn)
{
	struct socket *sock = conn->sock;
	struct sock *sk = sock->sk;
	read_descriptor_t desc = { .arg.data = conn, .count = 1 };
	int ret;

	if (conn->rx_err)
		return conn->rx_err;
	do {
		ret = READ_ONCE(sock->ops)->read_sock(sk, &desc, nbd_rx_skb);
	} while (ret > 0 && !desc.error);
	if (desc.error)
		conn->rx_err = desc.error;
	else if (ret < 0)
		conn->rx_err = ret;	/* not a connected socket */
	return conn->rx_err;
}

/*
 * The receiver's run in process context: take in all the socket holds.
 * Return 0 once it is empty (data_ready brings the receiver back), or
 * why the connection cannot go on.
 */
static int nbd_rx_read_sock(struct nbd_conn *conn)
{
	struct sock *sk = conn->sock->sk;
	int ret;

	lock_sock(sk);
	conn->rx_runs++;
	ret = nbd_rx_read_sock_locked(conn);
	if (!ret && READ_ONCE(sk->sk_err))
		ret = -READ_ONCE(sk->sk_err);
	else if (!ret && (READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN))
		ret = -ECONNRESET;
	release_sock(sk);
	return ret;
}

/*
 * For sockets without read_sock: read into the same parser until the
 * connection fails, waiting for each piece.  Return why it failed.
 */
static int nbd_rx_recvmsg(struct nbd_conn *conn)
{
	struct msghdr msg;
	int ret;

	for (;;) {
		msg = (struct msghdr){ .msg_flags = MSG_NOSIGNAL };
		msg.msg_iter = conn->rx_iter;
		ret = sock_recvmsg(conn->sock, &msg, MSG_NOSIGNAL);
		if (ret < 0 && conn->rx_tls)
			return nbd_tls_rx_error(conn, ret);
		if (ret <= 0)
			return ret ? ret : -ECONNRESET;
		conn->rx_iter = msg.msg_iter;
		ret = nbd_rx_advance(conn);
		if (ret)
			return ret;
	}
}

/*
 * Whether a request that was on the wire of a failed connection may be
 * sent again.  Not a write, trim or write-zeroes whose connection was
 * closed because a request timed out: the server may still hold it and
 * execute it late, after a newer write to the same blocks, which the
 * resent copy would then have made look safe.  Such a request fails with
 * ETIMEDOUT, so that the filesystem knows, unless the user chose a
 * dead-connection timeout: that is the choice of availability over this
 * risk (nbdctl --persist, where the server is restarted).  Reads and
 * flushes are always resent; so is what a server closed or reset, or a
 * request whose data never went out whole.
 */
static bool nbd_may_resend(struct nbd_conn *conn, struct nbd_cmd *cmd)
{
	u16 type = cmd->wire.type;

	if (READ_ONCE(conn->fail_err) != -ETIMEDOUT ||
	    (type != NBD_CMD_WRITE && type != NBD_CMD_TRIM &&
	     type != NBD_CMD_WRITE_ZEROES))
		return true;
	return conn->config->dead_conn_timeout;
}

static bool nbd_reap_one(struct request *rq, void *data)
{
	struct nbd_cmd *cmd = blk_mq_rq_to_pdu(rq);
	struct nbd_conn *conn = data;
	bool mine;

	if (READ_ONCE(cmd->conn) != conn)
		return true;

	spin_lock_bh(&cmd->lock);
	mine = cmd->conn == conn && cmd->state == NBD_CMD_SENT;
	if (mine)
		WRITE_ONCE(cmd->state, NBD_CMD_IDLE);
	spin_unlock_bh(&cmd->lock);

	if (!mine)
		return true;
	atomic_dec(&conn->inflight);
	if (nbd_may_resend(conn, cmd)) {
		nbd_cmd_finish(cmd, BLK_STS_IOERR, true);
		return true;
	}
	nbd_conn_err(conn, "%s of %u bytes at %llu not resent: its connection timed out and the server may still execute it (no dead-connection timeout)\n",
		     nbd_cmd_name(cmd->wire.type), cmd->wire.length,
		     cmd->wire.offset);
	nbd_cmd_finish(cmd, BLK_STS_TIMEOUT, false);
	return true;
}

/*
 * Socket callbacks, then a chain to the callback replaced.  New data is
 * parsed on the spot when the callback runs in softirq with the socket's
 * spinlock held and no task owns the socket (the way strparser does):
 * the replies complete without waking a worker.  Otherwise (a task owns
 * the socket and data_ready runs from its backlog, the parser stopped,
 * the connection is dying) and on every state change, the receiver's
 * work item runs and takes it from there.  The parser's state is thus
 * only ever touched by the socket's owner; sk_callback_lock, held
 * across the parse, keeps nbd_rx_unhook() waiting until it is done.
 */
static void nbd_rx_data_ready(struct sock *sk)
{
	struct nbd_conn *conn;

	read_lock_bh(&sk->sk_callback_lock);
	conn = sk->sk_user_data;
	if (likely(conn && conn->rx_data_ready)) {
		if (!in_softirq() || sock_owned_by_user_nocheck(sk) ||
		    !nbd_conn_alive(conn) || nbd_rx_read_sock_locked(conn))
			queue_work(conn->nbd->io_wq, &conn->recv_work);
		else
			conn->rx_inline_runs++;
		conn->rx_data_ready(sk);
	}
	read_unlock_bh(&sk->sk_callback_lock);
}

static void nbd_rx_state_change(struct sock *sk)
{
	struct nbd_conn *conn;

	read_lock_bh(&sk->sk_callback_lock);
	conn = sk->sk_user_data;
	if (likely(conn && conn->rx_state_change)) {
		queue_work(conn->nbd->io_wq, &conn->recv_work);
		conn->rx_state_change(sk);
	}
	read_unlock_bh(&sk->sk_callback_lock);
}

static void nbd_rx_hook(struct nbd_conn *conn)
{
	struct sock *sk = conn->sock->sk;

	write_lock_bh(&sk->sk_callback_lock);
	conn->rx_data_ready = sk->sk_data_ready;
	conn->rx_state_change = sk->sk_state_change;
	sk->sk_data_ready = nbd_rx_data_ready;
	sk->sk_state_change = nbd_rx_state_change;
	write_unlock_bh(&sk->sk_callback_lock);
}

static void nbd_rx_unhook(struct nbd_conn *conn)
{
	struct sock *sk = conn->sock->sk;

	write_lock_bh(&sk->sk_callback_lock);
	if (conn->rx_data_ready) {
		sk->sk_data_ready = conn->rx_data_ready;
		sk->sk_state_change = conn->rx_state_change;
		conn->rx_data_ready = NULL;
		conn->rx_state_change = NULL;
	}
	write_unlock_bh(&sk->sk_callback_lock);
}

/* The receiver is done for good: the connection is dead. */
static void nbd_recv_end(struct nbd_conn *conn, int ret)
{
	struct nbd_config *config = conn->config;
	struct nbd_device *nbd = conn->nbd;

	/*
	 * No callback queues the receiver once unhooked; drop a run queued
	 * before, which would find the connection freed.
	 */
	nbd_rx_unhook(conn);
	cancel_work(&conn->recv_work);

	/* -ESHUTDOWN: a soft disconnect is complete, nothing to report */
	if (nbd_conn_alive(conn) && ret != -ESHUTDOWN && !conn->rx_told &&
	    !test_bit(NBD_RT_DISCONNECT_REQUESTED, &config->flags)) {
		if (ret == -ECONNRESET)
			dev_warn_ratelimited(nbd_to_dev(nbd),
					     "connection %u: closed by the server\n",
					     conn->index);
		else if (ret != -EPROTO)
			dev_warn_ratelimited(nbd_to_dev(nbd),
					     "connection %u: receive failed: %d\n",
					     conn->index, ret);
		if (conn->rx_cmd && ret != -EPROTO)
			nbd_conn_err(conn, "read reply data cut short\n");
		else if (conn->rx_sr_cmd && ret != -EPROTO)
			nbd_conn_err(conn, "reply chunk cut short\n");
	}
	if (ret == -EPROTO)
		trace_nbd_protocol_violation(nbd->index, conn->index,
					     conn->rx_state, conn->rx_chunk.type,
					     conn->rx_chunk.cookie);
	nbd_conn_fail(conn, ret);

	/* A read whose data stopped coming, then the rest on the wire. */
	if (conn->rx_cmd)
		nbd_cmd_finish(conn->rx_cmd, BLK_STS_IOERR, true);
	nbd_rx_want_hdr(conn);
	/*
	 * Requests the sender has not written yet are handed back by the
	 * sender, which sees the connection dead.
	 */
	blk_mq_tagset_busy_iter(&nbd->tag_set, nbd_reap_one, conn);

	clear_bit(NBD_CONN_RECEIVING, &conn->flags);
	atomic_dec(&config->recv_threads);
	wake_up(&config->recv_wq);
	nbd_config_put(nbd);
}

/*
 * The receiver.  On TCP the socket's callbacks queue it; each run takes
 * in what the socket holds and returns.  On other sockets it runs for
 * the life of the connection, waiting in recvmsg.
 */
static void nbd_recv_work(struct work_struct *work)
{
	struct nbd_conn *conn = container_of(work, struct nbd_conn, recv_work);
	unsigned int noreclaim;
	int ret = -ESHUTDOWN;

	if (!test_bit(NBD_CONN_RECEIVING, &conn->flags))
		return;
	if (nbd_conn_alive(conn)) {
		noreclaim = memalloc_noreclaim_save();
		if (conn->rx_read_sock)
			ret = nbd_rx_read_sock(conn);
		else
			ret = nbd_rx_recvmsg(conn);
		memalloc_noreclaim_restore(noreclaim);
		if (!ret)
			return;
	}
	nbd_recv_end(conn, ret);
}

/*
 * Replies are parsed in place from the socket's buffers on plain TCP
 * only: a ULP (kernel TLS) may leave the TCP read_sock in place, which
 * would hand over the raw stream (see tls.c).
 */
static bool nbd_sock_parses_in_place(struct socket *sock)
{
	struct sock *sk = sock->sk;

	return sk->sk_protocol == IPPROTO_TCP && sk_is_tcp(sk) &&
	       !inet_csk_has_ulp(sk) && sock->ops->read_sock;
}

/*
 * A receiver that waits in recvmsg gets a workqueue of its own, once:
 * the connection keeps it across reconnects.
 */
static int nbd_conn_alloc_rx_wq(struct nbd_conn *conn, struct socket *sock)
{
	if (conn->rx_wq || nbd_sock_parses_in_place(sock))
		return 0;
	conn->rx_wq = alloc_workqueue("nbd%d-rx%u",
				      WQ_MEM_RECLAIM | WQ_HIGHPRI | WQ_UNBOUND,
				      1, conn->nbd->index, conn->index);
	return conn->rx_wq ? 0 : -ENOMEM;
}

static void nbd_conn_setup_socket(struct socket *sock)
{
	struct sock *sk = sock->sk;

	/* Swap and filesystems on nbd: socket memory must not recurse. */
	sk->sk_allocation = GFP_NOIO | __GFP_MEMALLOC;
	sk_set_memalloc(sk);
	if (sk->sk_protocol == IPPROTO_TCP && sk_is_tcp(sk))
		tcp_sock_set_nodelay(sk);
}

/*
 * The connection owns the socket's sk_user_data, which its callbacks
 * use to find it; a socket some other kernel user owns is refused.
 */
static int nbd_conn_claim_sock(struct nbd_conn *conn, struct socket *sock)
{
	struct sock *sk = sock->sk;
	int ret = 0;

	write_lock_bh(&sk->sk_callback_lock);
	if (sk->sk_user_data)
		ret = -EBUSY;
	else
		sk->sk_user_data = conn;
	write_unlock_bh(&sk->sk_callback_lock);
	return ret;
}

static void nbd_conn_release_sock(struct nbd_conn *conn, struct socket *sock)
{
	struct sock *sk = sock->sk;

	write_lock_bh(&sk->sk_callback_lock);
	if (sk->sk_user_data == conn)
		sk->sk_user_data = NULL;
	write_unlock_bh(&sk->sk_callback_lock);
}

/**
 * nbd_conn_create() - set up a connection around a connected socket
 * @config: the session
 * @index: the connection's number
 * @sock: a connected stream socket; the connection owns the reference
 *
 * Return: the connection, ERR_PTR(-ENOMEM), or ERR_PTR(-EBUSY) when
 * another kernel user owns the socket (sk_user_data).  On error the
 * caller still owns @sock.
 */
struct nbd_conn *nbd_conn_create(struct nbd_config *config,
				 unsigned int index, struct socket *sock)
{
	struct nbd_conn *conn = kzalloc(sizeof(*conn), GFP_KERNEL);
	int ret;

	if (!conn)
		return ERR_PTR(-ENOMEM);
	conn->config = config;
	conn->nbd = config->nbd;
	conn->index = index;
	ret = nbd_conn_alloc_rx_wq(conn, sock);
	if (ret)
		goto out_free;
	ret = nbd_conn_claim_sock(conn, sock);
	if (ret)
		goto out_destroy_wq;
	init_llist_head(&conn->send_list);
	INIT_WORK(&conn->send_work, nbd_send_work);
	INIT_WORK(&conn->recv_work, nbd_recv_work);
	mutex_init(&conn->tx_lock);
	conn->sock = sock;
	/* Every request's header; the connection is kmalloc()ed memory. */
	bvec_set_page(&conn->tx_vec[0], virt_to_page(&conn->tx_hdr),
		      sizeof(conn->tx_hdr), offset_in_page(&conn->tx_hdr));
	nbd_rx_want_hdr(conn);
	nbd_conn_setup_socket(sock);
	return conn;

out_destroy_wq:
	if (conn->rx_wq)
		destroy_workqueue(conn->rx_wq);
out_free:
	kfree(conn);
	return ERR_PTR(ret);
}

/**
 * nbd_conn_destroy() - free a connection and drop its socket
 * @conn: a connection whose workers are idle and that takes no requests
 */
void nbd_conn_destroy(struct nbd_conn *conn)
{
	if (conn->sock) {
		nbd_rx_unhook(conn);
		nbd_conn_release_sock(conn, conn->sock);
		sockfd_put(conn->sock);
	}
	if (conn->rx_wq)
		destroy_workqueue(conn->rx_wq);
	mutex_destroy(&conn->tx_lock);
	kfree(conn);
}

/**
 * nbd_conn_start() - start receiving on a connection
 * @conn: the connection
 *
 * The caller has taken a config reference and counted the worker in
 * recv_threads; the receiver drops both when it ends.
 *
 * On plain TCP the socket's data_ready callback parses replies in
 * softirq, or queues a short receiver run on the device's workqueue
 * when it cannot (nbd_rx_data_ready()); state changes always queue one,
 * and the first run takes what came before.  Other sockets get a
 * receiver that waits in recvmsg on the connection's own workqueue:
 * AF_UNIX streams have no read_sock, and measured under QEMU short runs
 * there cost a context switch for a reply's header and another for its
 * data, where a waiting reader gets both at once.
 */
void nbd_conn_start(struct nbd_conn *conn)
{
	conn->rx_read_sock = nbd_sock_parses_in_place(conn->sock);
	conn->rx_tls = nbd_tls_sock_active(conn->sock);
	conn->rx_told = false;
	nbd_tls_describe(conn->sock, conn->tls_desc, sizeof(conn->tls_desc));
	nbd_rx_want_hdr(conn);
	conn->rx_err = 0;
	if (conn->rx_read_sock) {
		nbd_rx_hook(conn);
		queue_work(conn->nbd->io_wq, &conn->recv_work);
	} else {
		/* nbd_conn_create() or nbd_conn_replace_socket() made it */
		queue_work(conn->rx_wq, &conn->recv_work);
	}
}

/**
 * nbd_conn_flush_recv() - wait until the receiver's last run has returned
 * @conn: a connection whose receiver has ended
 */
void nbd_conn_flush_recv(struct nbd_conn *conn)
{
	flush_work(&conn->recv_work);
}

/**
 * nbd_conn_kick() - make the sender run
 * @conn: the connection
 */
void nbd_conn_kick(struct nbd_conn *conn)
{
	queue_work(conn->nbd->io_wq, &conn->send_work);
}

/**
 * nbd_conn_push() - write a connection's queued requests now
 * @conn: the connection
 *
 * For blk-mq's ->queue_rq and ->commit_rqs at the end of a batch: the
 * caller writes what the socket takes without blocking, unless another
 * task is writing already; the sender finishes what is left.  The
 * socket was vetted when userspace handed it over; a signal cannot cut
 * a non-blocking write short.
 */
void nbd_conn_push(struct nbd_conn *conn)
{
	unsigned int noio;
	int ret;

	if (!mutex_trylock(&conn->tx_lock)) {
		nbd_conn_kick(conn);
		return;
	}
	noio = memalloc_noio_save();
	ret = nbd_send_queued(conn, true);
	memalloc_noio_restore(noio);
	if (ret)
		set_bit(NBD_CONN_TX_FULL, &conn->flags);
	mutex_unlock(&conn->tx_lock);
	if (ret)
		nbd_conn_kick(conn);
}

/**
 * nbd_conn_queue() - hand a started request to a connection
 * @conn: the connection
 * @cmd: the request, in state NBD_CMD_QUEUED
 *
 * The request is sent once the caller pushes the connection at the end
 * of the batch (nbd_conn_push()).
 */
void nbd_conn_queue(struct nbd_conn *conn, struct nbd_cmd *cmd)
{
	llist_add(&cmd->lentry, &conn->send_list);
}

/**
 * nbd_conn_drain() - end a connection softly
 * @conn: the connection
 * @requeue: hand the requests not written yet back (the server is going
 *	away), instead of sending them before NBD_CMD_DISC (the user
 *	disconnects)
 *
 * The connection takes no new request; its sender writes NBD_CMD_DISC
 * after the request it is writing (and, unless @requeue, after those
 * queued), and nothing after it; once the last request on the wire has
 * its reply the connection shuts down, which its receiver or sender
 * notices (nbd_conn_drained()).  A server that never answers is the
 * caller's to bound: nbd_conn_fail() ends the wait.  Any context.
 *
 * Return: true for the call that started the drain.
 */
bool nbd_conn_drain(struct nbd_conn *conn, bool requeue)
{
	if (requeue)
		set_bit(NBD_CONN_DRAIN_REQUEUE, &conn->flags);
	if (test_and_set_bit(NBD_CONN_DRAINING, &conn->flags))
		return false;
	set_bit(NBD_CONN_SEND_DISC, &conn->flags);
	nbd_conn_kick(conn);
	return true;
}

/**
 * nbd_conn_fail() - mark a connection dead and shut its socket down
 * @conn: the connection
 * @err: why, for the core's bookkeeping (0 for a requested shutdown)
 *
 * Safe from any context that may sleep, any number of times: the first
 * call wins.  Shutting the socket down wakes the sender and the receiver;
 * the receiver then hands back the requests on the wire.
 */
void nbd_conn_fail(struct nbd_conn *conn, int err)
{
	/*
	 * The first error is the reason (nbd_may_resend()), recorded before
	 * the connection is marked dead and its socket shut down, which is
	 * what sets the receiver and the reaper going.
	 */
	if (err)
		cmpxchg(&conn->fail_err, 0, err);
	if (test_and_set_bit(NBD_CONN_DEAD, &conn->flags))
		return;
	kernel_sock_shutdown(conn->sock, SHUT_RDWR);
	nbd_conn_lost(conn);
}

/**
 * nbd_conn_sync() - wait until the sender is idle
 * @conn: the connection
 */
void nbd_conn_sync(struct nbd_conn *conn)
{
	flush_work(&conn->send_work);
}
EXPORT_SYMBOL_IF_KUNIT(nbd_conn_sync);

/**
 * nbd_conn_replace_socket() - give a dead connection a new socket
 * @conn: a dead connection whose receiver has ended
 * @sock: the new connected socket; on success the connection owns the
 *	reference
 *
 * The caller counts the connection live before (the connection can fail
 * again as soon as it is usable, and that failure is counted) and starts
 * it after.
 *
 * Return: 0, -EBUSY when another kernel user owns @sock, or -ENOMEM.
 */
int nbd_conn_replace_socket(struct nbd_conn *conn, struct socket *sock)
{
	struct socket *old;
	int ret;

	ret = nbd_conn_alloc_rx_wq(conn, sock);
	if (ret)
		return ret;
	ret = nbd_conn_claim_sock(conn, sock);
	if (ret)
		return ret;
	nbd_conn_setup_socket(sock);
	mutex_lock(&conn->tx_lock);
	/* The sender handed back everything when the connection died. */
	WARN_ON_ONCE(conn->tx_cmd || conn->tx_next);
	/* The reaper took every request off the wire. */
	WARN_ON_ONCE(atomic_read(&conn->inflight));
	atomic_set(&conn->inflight, 0);
	old = conn->sock;
	conn->sock = sock;
	conn->fail_err = 0;
	clear_bit(NBD_CONN_SEND_DISC, &conn->flags);
	clear_bit(NBD_CONN_TX_FULL, &conn->flags);
	clear_bit(NBD_CONN_DISC_SENT, &conn->flags);
	clear_bit(NBD_CONN_DRAIN_REQUEUE, &conn->flags);
	clear_bit(NBD_CONN_DRAINING, &conn->flags);
	clear_bit(NBD_CONN_DEAD, &conn->flags);
	mutex_unlock(&conn->tx_lock);
	nbd_conn_release_sock(conn, old);
	sockfd_put(old);
	return 0;
}
