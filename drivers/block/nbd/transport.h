/* SPDX-License-Identifier: GPL-2.0 */
/*
 * NBD transport: sending requests and receiving replies on one connection.
 *
 * The rest of the driver sees a connection through this interface only.
 * A request handed to nbd_conn_queue() is written by the connection's
 * sender; replies are matched to requests and completed by its receiver;
 * a connection that fails for any reason stops taking requests, and every
 * request it had on the wire is handed back to nbd_cmd_retry_or_fail().
 *
 * A connection ends softly, as the protocol asks, when the user
 * disconnects or the server answers NBD_ESHUTDOWN (nbd_conn_drain()): it
 * takes no new request, NBD_CMD_DISC follows what it has to send and
 * nothing follows NBD_CMD_DISC, and once every request on the wire has
 * its reply the connection shuts itself down.
 */
#ifndef _NBD_TRANSPORT_H
#define _NBD_TRANSPORT_H

#include <linux/net.h>
#include <linux/bvec.h>
#include <linux/workqueue.h>
#include <linux/llist.h>
#include <linux/mutex.h>
#include <linux/uio.h>

#include "proto.h"

struct nbd_config;
struct nbd_device;
struct nbd_cmd;

/* How much of a server's error message is kept for the kernel log. */
#define NBD_RX_MSG_KEEP	200

/* A header and up to 16 data segments go out in one write. */
#define NBD_TX_VECS	17

/* nbd_conn.flags */
enum {
	NBD_CONN_DEAD,		/* failed or shut down: takes no requests */
	NBD_CONN_SEND_DISC,	/* send NBD_CMD_DISC after queued requests */
	NBD_CONN_RECEIVING,	/* the receiver has not handed back yet */
	NBD_CONN_TX_FULL,	/* the socket pushed back: the sender drains */
	NBD_CONN_DRAINING,	/* ending softly: takes no new requests */
	NBD_CONN_DRAIN_REQUEUE,	/* ... and hands back those not sent yet */
	NBD_CONN_DISC_SENT,	/* NBD_CMD_DISC is out: nothing may follow */
};

/**
 * struct nbd_conn - one connection to the server
 * @send_list: requests waiting to be sent, newest first
 * @send_work: the sender: drains @send_list onto the socket
 * @tx_lock: held while writing to the socket or replacing it
 * @sock: the socket
 * @flags: NBD_CONN_* bits
 * @tx_next: requests taken off @send_list, oldest first (under @tx_lock)
 * @tx_cmd: the request being written, or NULL (under @tx_lock)
 * @tx_hdr: its header on the wire
 * @tx_vec: @tx_hdr, then the data of the request's first bio when it
 *	has few enough segments: one write for a whole small request
 * @tx_bio: the next bio whose data is to be written, or NULL
 * @tx_iter: what is left of what is being written: @tx_vec, or a bio
 * @recv_work: the receiver (see nbd_conn_start())
 * @rx_wq: where @recv_work waits in recvmsg (sockets not parsed in
 *	place), with a rescuer of its own; NULL for TCP
 * @rx_read_sock: parse the socket's buffers in place (plain TCP), from
 *	the socket's callbacks
 * @rx_tls: the socket carries kernel TLS (tls.c): records other than
 *	data are named when recvmsg stops at one
 * @rx_told: the receiver has logged why the connection failed
 * @tls_desc: the socket's TLS version and cipher, or "none", for debugfs
 * @rx_data_ready: the socket's data_ready callback before ours, or NULL
 * @rx_state_change: the same for state_change
 * @rx_state: what the parser reads now (enum nbd_rx_state)
 * @rx_hdr: the reply header being read: a simple reply, or the first 16
 *	bytes of a structured reply chunk's header and then the rest
 * @rx_kvec: where a header or a chunk's fixed fields go, for @rx_iter
 * @rx_cmd: the read whose simple reply's data is being read (claimed:
 *	the receiver ends it), or NULL
 * @rx_sr_cmd: the request whose chunk is being read (still on the wire:
 *	the reaper hands it back if the connection dies), or NULL
 * @rx_chunk: that chunk's header, decoded
 * @rx_left: bytes of that chunk's data still to come after @rx_iter's
 * @rx_bio: the bio being filled with read data
 * @rx_iter: where the next bytes received go
 * @rx_fields: a chunk's fixed fields (offset, hole size, error, message
 *	length, error offset)
 * @rx_err_val: the error of the error chunk being read
 * @rx_msg_total: its message length on the wire
 * @rx_msg_kept: how much of the message is kept in @rx_msg for the log
 * @rx_msg: the message (NUL terminated)
 * @rx_err: the error that stopped the parser, or 0
 * @rx_runs: receiver runs in the work item on TCP, for debugfs
 * @rx_inline_runs: parses in the socket's data_ready callback, for debugfs
 * @inflight: requests on the wire (state NBD_CMD_SENT) on this connection
 * @fail_err: the first error a nbd_conn_fail() gave (0: none yet, or
 *	shut down on purpose)
 * @config: the session this connection belongs to
 * @nbd: the device
 * @index: the connection's number (and hardware queue)
 * @requests_sent: requests written, for debugfs
 * @replies_received: replies matched, for debugfs
 * @chunks_received: structured reply chunks taken, for debugfs
 * @holes_received: of them OFFSET_HOLE chunks, for debugfs
 * @hole_bytes: the bytes those holes covered, for debugfs
 * @error_chunks: error chunks, for debugfs
 */
struct nbd_conn {
	/* submission side */
	struct llist_head send_list;
	struct work_struct send_work;
	struct mutex tx_lock;		/* socket writes and swaps */
	struct socket *sock;
	unsigned long flags;

	/* a write in progress, resumed by whoever takes tx_lock next */
	struct llist_node *tx_next;
	struct nbd_cmd *tx_cmd;
	struct nbd_request tx_hdr;
	struct bio_vec tx_vec[NBD_TX_VECS];
	struct bio *tx_bio;
	struct iov_iter tx_iter;

	/*
	 * receive side: the parser's state is touched only by whoever owns
	 * the socket (see nbd_rx_data_ready())
	 */
	struct work_struct recv_work;
	struct workqueue_struct *rx_wq;
	bool rx_read_sock;
	bool rx_tls;
	bool rx_told;
	char tls_desc[48];
	void (*rx_data_ready)(struct sock *sk);
	void (*rx_state_change)(struct sock *sk);
	u8 rx_state;
	union {
		struct nbd_reply simple;
		struct nbd_chunk_hdr chunk;
	} rx_hdr;
	struct kvec rx_kvec;
	struct nbd_cmd *rx_cmd;
	struct nbd_cmd *rx_sr_cmd;
	struct nbd_chunk rx_chunk;
	u32 rx_left;
	struct bio *rx_bio;
	struct iov_iter rx_iter;
	u8 rx_fields[16];
	u32 rx_err_val;
	u16 rx_msg_total;
	u16 rx_msg_kept;
	char rx_msg[NBD_RX_MSG_KEEP + 1];
	int rx_err;
	u64 rx_runs;
	u64 rx_inline_runs;

	atomic_t inflight;
	int fail_err;

	struct nbd_config *config;
	struct nbd_device *nbd;
	unsigned int index;

	u64 requests_sent;
	u64 replies_received;
	u64 chunks_received;
	u64 holes_received;
	u64 hole_bytes;
	u64 error_chunks;
};

static inline bool nbd_conn_alive(struct nbd_conn *conn)
{
	return !test_bit(NBD_CONN_DEAD, &conn->flags);
}

/* Alive and not ending softly: new requests may go on it. */
static inline bool nbd_conn_usable(struct nbd_conn *conn)
{
	return !test_bit(NBD_CONN_DEAD, &conn->flags) &&
	       !test_bit(NBD_CONN_DRAINING, &conn->flags);
}

/*
 * The socket took less than was queued and the sender has not caught up
 * yet: new requests do better on a sibling connection, if there is one.
 */
static inline bool nbd_conn_backed_up(struct nbd_conn *conn)
{
	return test_bit(NBD_CONN_TX_FULL, &conn->flags);
}

struct nbd_conn *nbd_conn_create(struct nbd_config *config,
				 unsigned int index, struct socket *sock);
void nbd_conn_destroy(struct nbd_conn *conn);
void nbd_conn_start(struct nbd_conn *conn);
void nbd_conn_flush_recv(struct nbd_conn *conn);
void nbd_conn_queue(struct nbd_conn *conn, struct nbd_cmd *cmd);
void nbd_conn_kick(struct nbd_conn *conn);
void nbd_conn_push(struct nbd_conn *conn);
bool nbd_conn_drain(struct nbd_conn *conn, bool requeue);
void nbd_conn_fail(struct nbd_conn *conn, int err);
void nbd_conn_sync(struct nbd_conn *conn);
int nbd_conn_replace_socket(struct nbd_conn *conn, struct socket *sock);

/* tls.c: kernel TLS sockets */
struct netlink_ext_ack;
int nbd_tls_sock_check(struct nbd_device *nbd, struct socket *sock,
		       struct netlink_ext_ack *extack);
bool nbd_tls_sock_active(struct socket *sock);
void nbd_tls_describe(struct socket *sock, char *buf, size_t size);
int nbd_tls_rx_error(struct nbd_conn *conn, int ret);
int nbd_tls_peek_record(struct socket *sock, char *what, size_t size);
int nbd_tls_record_verdict(u8 type, const u8 *data, size_t len, char *buf,
			   size_t size);

#endif /* _NBD_TRANSPORT_H */
