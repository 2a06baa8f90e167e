// SPDX-License-Identifier: GPL-2.0
/*
 * NBD over kernel TLS (kTLS).
 *
 * The TLS handshake is userspace's (nbdctl uses GnuTLS): it negotiates
 * NBD_OPT_STARTTLS, runs the handshake and the rest of the options over
 * TLS, then installs the session's keys on the TCP socket (TCP_ULP "tls",
 * SOL_TLS TLS_TX and TLS_RX) and hands the socket over.  From then on
 * the TLS layer is the socket's: sending is an ordinary sendmsg, which
 * seals records, and receiving an ordinary recvmsg, which opens them.
 *
 * What the TLS layer does not do for us is anything other than
 * application data.  recvmsg without a control-message buffer fails with
 * -EIO at a record of another content type and leaves it queued, so the
 * data path asks for no record types and pays nothing for them; on -EIO
 * the receiver peeks at the record with a control buffer
 * (TLS_GET_RECORD_TYPE) to name it, then ends the connection: an alert
 * ends the session, and a post-handshake message (a TLS 1.3 KeyUpdate or
 * session ticket) needs a handshake layer the kernel does not have.  The
 * failed connection is handled as any other (requests requeued,
 * LINK_DEAD, nbdctl --persist reconnects with a fresh handshake).
 *
 * On TCP the receiver usually parses the socket's buffers in place with
 * ->read_sock from the data_ready callback.  Not on kTLS: Linux 6.1 has
 * no read_sock for it (the TCP one would hand over ciphertext), and
 * 6.12's stops at each control record.  kTLS connections take the
 * recvmsg receiver that AF_UNIX uses, which decrypts in its own worker.
 */
#include <kunit/visibility.h>
#include <linux/net.h>
#include <linux/socket.h>
#include <net/inet_connection_sock.h>
#include <net/sock.h>
#include <net/tcp.h>
#if IS_ENABLED(CONFIG_TLS)
#include <net/tls.h>
#endif
#include <uapi/linux/tls.h>

#include "nbd.h"
#include "transport.h"

/* TLS content types (RFC 8446 section 5.1) */
#define NBD_TLS_CHANGE_CIPHER_SPEC	20
#define NBD_TLS_ALERT			21
#define NBD_TLS_HANDSHAKE		22
#define NBD_TLS_APPLICATION_DATA	23
#define NBD_TLS_HEARTBEAT		24

struct nbd_tls_name {
	u8 value;
	const char *name;
};

/* Alerts (RFC 8446 section 6) worth naming. */
static const struct nbd_tls_name nbd_tls_alerts[] = {
	{ 0, "close_notify" },		{ 10, "unexpected_message" },
	{ 20, "bad_record_mac" },	{ 22, "record_overflow" },
	{ 40, "handshake_failure" },	{ 42, "bad_certificate" },
	{ 45, "certificate_expired" },	{ 47, "illegal_parameter" },
	{ 50, "decode_error" },		{ 51, "decrypt_error" },
	{ 70, "protocol_version" },	{ 80, "internal_error" },
	{ 90, "user_canceled" },	{ 109, "missing_extension" },
	{ 115, "unknown_psk_identity" },
};

/* Handshake messages that may come after the handshake. */
static const struct nbd_tls_name nbd_tls_handshakes[] = {
	{ 0, "HelloRequest" },
	{ 4, "NewSessionTicket" },
	{ 24, "KeyUpdate" },
};

static const char *nbd_tls_name(const struct nbd_tls_name *names, size_t n,
				u8 value, const char *unknown)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (names[i].value == value)
			return names[i].name;
	return unknown;
}

/**
 * nbd_tls_record_verdict() - what a TLS record other than data means
 * @type: its content type (TLS_GET_RECORD_TYPE)
 * @data: its first bytes as received
 * @len: how many of them there are (may be 0)
 * @buf: a sentence naming the record, for the log
 * @size: size of @buf
 *
 * Return: -ECONNRESET for a close_notify alert (the server ended the
 * session), -ECONNABORTED for anything else the connection cannot go
 * on after (other alerts, post-handshake messages, unknown types), or 0
 * for application data, which is not a control record.
 */
int nbd_tls_record_verdict(u8 type, const u8 *data, size_t len, char *buf,
			   size_t size)
{
	switch (type) {
	case NBD_TLS_APPLICATION_DATA:
		scnprintf(buf, size, "application data");
		return 0;
	case NBD_TLS_ALERT:
		if (len < 2) {
			scnprintf(buf, size, "a TLS alert of %zu bytes", len);
			return -ECONNABORTED;
		}
		scnprintf(buf, size, "a TLS %s alert %s (%u)",
			  data[0] == 1 ? "warning" :
			  data[0] == 2 ? "fatal" : "unknown-level",
			  nbd_tls_name(nbd_tls_alerts,
				       ARRAY_SIZE(nbd_tls_alerts), data[1],
				       "unknown alert"), data[1]);
		/* TLS 1.3 sends close_notify at level warning; 1.2 too */
		return data[1] == 0 ? -ECONNRESET : -ECONNABORTED;
	case NBD_TLS_HANDSHAKE:
		if (!len) {
			scnprintf(buf, size, "an empty TLS handshake record");
			return -ECONNABORTED;
		}
		scnprintf(buf, size,
			  "a TLS %s (handshake type %u), which kernel TLS cannot take",
			  nbd_tls_name(nbd_tls_handshakes,
				       ARRAY_SIZE(nbd_tls_handshakes),
				       data[0], "handshake message"), data[0]);
		return -ECONNABORTED;
	case NBD_TLS_CHANGE_CIPHER_SPEC:
		scnprintf(buf, size, "a TLS change_cipher_spec record");
		return -ECONNABORTED;
	case NBD_TLS_HEARTBEAT:
		scnprintf(buf, size, "a TLS heartbeat record");
		return -ECONNABORTED;
	default:
		scnprintf(buf, size, "a TLS record of unknown content type %u",
			  type);
		return -ECONNABORTED;
	}
}
EXPORT_SYMBOL_IF_KUNIT(nbd_tls_record_verdict);

/**
 * nbd_tls_peek_record() - name the record that made recvmsg fail
 * @sock: a kTLS socket whose recvmsg (without a control buffer) failed
 *	with -EIO
 * @what: filled with a sentence naming the record
 * @size: size of @what
 *
 * Peeks, without waiting, at the record at the head of the socket with a
 * control buffer (TLS_GET_RECORD_TYPE); the record stays queued.
 *
 * Return: its verdict (see nbd_tls_record_verdict()), or -EIO when there
 * is no control record to blame.
 */
int nbd_tls_peek_record(struct socket *sock, char *what, size_t size)
{
	u8 cbuf[CMSG_SPACE(sizeof(u8))] __aligned(sizeof(size_t)) = { };
	struct cmsghdr *cmsg = (struct cmsghdr *)cbuf;
	u8 data[8];
	struct kvec iov = { .iov_base = data, .iov_len = sizeof(data) };
	struct msghdr msg = {
		.msg_control = cbuf,
		.msg_controllen = sizeof(cbuf),
	};
	int ret;

	iov_iter_kvec(&msg.msg_iter, ITER_DEST, &iov, 1, sizeof(data));
	ret = sock_recvmsg(sock, &msg, MSG_PEEK | MSG_DONTWAIT);
	if (ret < 0 || cmsg->cmsg_level != SOL_TLS ||
	    cmsg->cmsg_type != TLS_GET_RECORD_TYPE ||
	    cmsg->cmsg_len != CMSG_LEN(sizeof(u8)))
		return -EIO;
	ret = nbd_tls_record_verdict(*(u8 *)CMSG_DATA(cmsg), data, ret, what,
				     size);
	return ret ? ret : -EIO;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_tls_peek_record);

/**
 * nbd_tls_rx_error() - name why a kTLS connection's recvmsg failed
 * @conn: the connection, on a kTLS socket
 * @ret: what recvmsg returned (negative)
 *
 * Logs one line naming the record or the failure, rate-limited, and
 * marks the connection's failure as told (@conn->rx_told).
 *
 * Return: the error the connection fails with: -ECONNRESET after a
 * close_notify, else @ret or -ECONNABORTED.
 */
int nbd_tls_rx_error(struct nbd_conn *conn, int ret)
{
	struct device *dev = nbd_to_dev(conn->nbd);
	char what[96];

	switch (ret) {
	case -EIO:
		ret = nbd_tls_peek_record(conn->sock, what, sizeof(what));
		if (ret == -EIO)
			return ret;
		if (ret == -ECONNRESET)
			dev_warn_ratelimited(dev,
					     "connection %u: the server ended the TLS session (%s)\n",
					     conn->index, what);
		else
			dev_err_ratelimited(dev,
					    "connection %u: the server sent %s; closing the connection\n",
					    conn->index, what);
		break;
	case -EBADMSG:
		dev_err_ratelimited(dev,
				    "connection %u: a TLS record from the server failed authentication (corrupt data or wrong keys); closing the connection\n",
				    conn->index);
		break;
	case -EMSGSIZE:
		dev_err_ratelimited(dev,
				    "connection %u: the server sent a TLS record longer than the protocol allows; closing the connection\n",
				    conn->index);
		break;
	case -EKEYEXPIRED:
		dev_err_ratelimited(dev,
				    "connection %u: the server updated its TLS keys (KeyUpdate), which this driver cannot follow; closing the connection\n",
				    conn->index);
		break;
	default:
		return ret;
	}
	conn->rx_told = true;
	return ret;
}

/**
 * nbd_tls_sock_check() - check a socket's kernel TLS state
 * @nbd: the device, for messages
 * @sock: a connected TCP or UNIX stream socket
 * @extack: netlink extended ack, or NULL
 *
 * A TCP socket may carry the "tls" upper-layer protocol only with keys
 * in both directions: a half-configured session would send plaintext one
 * way, or hand ciphertext to the parser.  Other upper-layer protocols
 * are refused.
 *
 * Return: 0 (plain or complete kTLS), or -EINVAL with a message.
 */
int nbd_tls_sock_check(struct nbd_device *nbd, struct socket *sock,
		       struct netlink_ext_ack *extack)
{
	struct sock *sk = sock->sk;
	const char *ulp, *missing = NULL;
	int ret = 0;

	if (sk->sk_family == AF_UNIX)
		return 0;
	lock_sock(sk);
	if (!inet_csk_has_ulp(sk))
		goto out;
	ulp = inet_csk(sk)->icsk_ulp_ops->name;
	if (strcmp(ulp, "tls")) {
		dev_err(nbd_to_dev(nbd),
			"socket has the TCP upper-layer protocol \"%s\", which nbd cannot carry\n",
			ulp);
		NL_SET_ERR_MSG(extack,
			       "nbd: socket has a TCP upper-layer protocol other than tls");
		ret = -EINVAL;
		goto out;
	}
#if IS_ENABLED(CONFIG_TLS)
	{
		struct tls_context *ctx = tls_get_ctx(sk);

		if (!ctx || (ctx->tx_conf == TLS_BASE &&
			     ctx->rx_conf == TLS_BASE))
			missing = "send and receive keys (TLS_TX, TLS_RX)";
		else if (ctx->tx_conf == TLS_BASE)
			missing = "send keys (TLS_TX)";
		else if (ctx->rx_conf == TLS_BASE)
			missing = "receive keys (TLS_RX)";
	}
#else
	missing = "support in this kernel";
#endif
	if (missing) {
		dev_err(nbd_to_dev(nbd),
			"kernel TLS socket without %s: set both directions up before handing it over\n",
			missing);
		NL_SET_ERR_MSG(extack,
			       "nbd: kernel TLS socket needs both TLS_TX and TLS_RX");
		ret = -EINVAL;
	}
out:
	release_sock(sk);
	return ret;
}

/**
 * nbd_tls_sock_active() - whether a socket carries kernel TLS
 * @sock: a socket that passed nbd_tls_sock_check()
 *
 * Return: true for a kTLS socket.
 */
bool nbd_tls_sock_active(struct socket *sock)
{
	struct sock *sk = sock->sk;

	return sk->sk_family != AF_UNIX && inet_csk_has_ulp(sk);
}

/**
 * nbd_tls_describe() - a kTLS socket's protocol version and cipher
 * @sock: the socket
 * @buf: filled with e.g. "TLS 1.3, AES-128-GCM", or "none"
 * @size: size of @buf
 */
void nbd_tls_describe(struct socket *sock, char *buf, size_t size)
{
#if IS_ENABLED(CONFIG_TLS)
	struct sock *sk = sock->sk;
	const char *cipher;
	u16 version, type;

	if (!nbd_tls_sock_active(sock)) {
		scnprintf(buf, size, "none");
		return;
	}
	lock_sock(sk);
	version = tls_get_ctx(sk)->prot_info.version;
	type = tls_get_ctx(sk)->prot_info.cipher_type;
	release_sock(sk);
	switch (type) {
	case TLS_CIPHER_AES_GCM_128:
		cipher = "AES-128-GCM";
		break;
	case TLS_CIPHER_AES_GCM_256:
		cipher = "AES-256-GCM";
		break;
	case TLS_CIPHER_AES_CCM_128:
		cipher = "AES-128-CCM";
		break;
	case TLS_CIPHER_CHACHA20_POLY1305:
		cipher = "CHACHA20-POLY1305";
		break;
	default:
		cipher = "another cipher";
		break;
	}
	scnprintf(buf, size, "TLS 1.%u, %s (cipher %u)",
		  version == TLS_1_3_VERSION ? 3 : 2, cipher, type);
#else
	scnprintf(buf, size, "none");
#endif
}
