// SPDX-License-Identifier: GPL-2.0
/*
 * nbd_tls_peer - an NBD server speaking TLS that misbehaves on purpose
 * once the TLS session is up, to test a client's kernel TLS (kTLS)
 * receive path.
 *
 * It listens on TCP and serves connections one after the other, until
 * SIGTERM or SIGINT.  Each gets a fixed-newstyle handshake in which TLS
 * is required: before NBD_OPT_STARTTLS every option but NBD_OPT_ABORT
 * is refused with NBD_REP_ERR_TLS_REQD.  STARTTLS is followed by a
 * GnuTLS server handshake (X.509 credentials in nbdkit's layout with
 * --x509, or a psktool key file with --psk); the later options
 * (STRUCTURED_REPLY, INFO, GO, ABORT) go through GnuTLS.  When GO
 * succeeds, the socket is moved to kTLS in both directions with the
 * session's keys, and from then on the peer reads and writes the socket
 * directly, which lets it send records of any content type.
 *
 * The export lives in memory (zeroes at first, kept across connections)
 * and is served with simple replies, or, once structured replies are
 * agreed, with one OFFSET_DATA chunk per read and simple replies for the
 * other commands.  Everything the client sends is validated: a broken
 * request makes the peer close the connection, never crash.
 *
 * --mode picks the hostile act, done once, after --after requests have
 * been answered, on the first connection that gets that far (on every
 * connection with --every): an alert, a close_notify, a KeyUpdate, a
 * NewSessionTicket, a heartbeat record, a record of an unknown type, a
 * fatal alert in the middle of a read reply, or (on a connection kept on
 * GnuTLS) a record of garbage written to the socket behind GnuTLS's
 * back.  After the act the peer sends nothing more and waits for the
 * client to close the connection, at most --hold seconds, then closes
 * it and goes on accepting connections, which behave.
 *
 * Messages go to stderr, one line per event, prefixed "nbd_tls_peer: ";
 * "listening" says connections are accepted, and each act is logged as
 * "hostile: sent <what> after N requests on connection K".
 *
 * Build: cc -O2 -Wall -Wextra -o nbd_tls_peer nbd_tls_peer.c \
 *		$(pkg-config --cflags --libs gnutls)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <linux/tls.h>

#ifndef SOL_TLS
#define SOL_TLS			282
#endif
#ifndef TCP_ULP
#define TCP_ULP			31
#endif

/* Handshake */
#define NBDMAGIC		0x4e42444d41474943ULL
#define IHAVEOPT		0x49484156454F5054ULL
#define REPLY_OPT_MAGIC		0x3e889045565a9ULL
#define FLAG_FIXED_NEWSTYLE	(1 << 0)
#define FLAG_NO_ZEROES		(1 << 1)
#define CFLAG_KNOWN		(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)

#define OPT_EXPORT_NAME		1
#define OPT_ABORT		2
#define OPT_LIST		3
#define OPT_STARTTLS		5
#define OPT_INFO		6
#define OPT_GO			7
#define OPT_STRUCTURED_REPLY	8

#define REP_ACK			1
#define REP_INFO		3
#define REP_ERR_UNSUP		(0x80000000U | 1)
#define REP_ERR_INVALID		(0x80000000U | 3)
#define REP_ERR_TLS_REQD	(0x80000000U | 5)
#define REP_ERR_TOO_BIG		(0x80000000U | 9)

#define INFO_EXPORT		0
#define INFO_BLOCK_SIZE		3
#define BLOCK_MIN		512U
#define BLOCK_PREF		4096U
#define BLOCK_MAX		(32U << 20)

/* Transmission flags */
#define TFLAG_HAS_FLAGS		(1 << 0)
#define TFLAG_SEND_FLUSH	(1 << 2)
#define TFLAG_SEND_FUA		(1 << 3)
#define TFLAG_CAN_MULTI_CONN	(1 << 8)
#define TFLAGS			(TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | \
				 TFLAG_SEND_FUA | TFLAG_CAN_MULTI_CONN)

/* Transmission */
#define REQUEST_MAGIC		0x25609513U
#define REQUEST_SIZE		28
#define SIMPLE_REPLY_MAGIC	0x67446698U
#define SIMPLE_REPLY_SIZE	16
#define CMD_READ		0
#define CMD_WRITE		1
#define CMD_DISC		2
#define CMD_FLUSH		3
#define CMD_TRIM		4
#define CMD_WRITE_ZEROES	6
#define CMD_FLAG_FUA		(1 << 0)
#define CMD_FLAG_NO_HOLE	(1 << 1)
#define CMD_FLAG_DF		(1 << 2)

/* Structured replies */
#define SR_MAGIC		0x668e33efU
#define SR_HDR_SIZE		20
#define SR_FLAG_DONE		(1 << 0)
#define SR_TYPE_OFFSET_DATA	1

/* TLS record content types and alerts */
#define REC_ALERT		21
#define REC_HANDSHAKE		22
#define REC_APPDATA		23
#define REC_HEARTBEAT		24
#define REC_UNKNOWN		99
#define ALERT_WARNING		1
#define ALERT_FATAL		2
#define ALERT_CLOSE_NOTIFY	0
#define ALERT_INTERNAL_ERROR	80
#define HS_NEW_SESSION_TICKET	4
#define HS_KEY_UPDATE		24

#define MAX_OPTION_LEN		4096		/* accepted option payload */
#define MAX_OPTIONS		64		/* per connection */
#define MAX_EXPORT_SIZE		(1ULL << 30)
#define HANDSHAKE_TIMEOUT	30		/* seconds per receive */
#define MAX_HOLD		86400
#define MAX_HOLD_LOG		8		/* client records logged in a hold */

#define DEFAULT_PRIORITY \
	"NORMAL:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:" \
	"+ECDHE-PSK:+DHE-PSK:+PSK"
#define TLS12_SUFFIX		":-VERS-ALL:+VERS-TLS1.2"

enum mode {
	MODE_NONE,
	MODE_ALERT,
	MODE_CLOSE_NOTIFY,
	MODE_KEYUPDATE,
	MODE_TICKET,
	MODE_HEARTBEAT,
	MODE_UNKNOWN_TYPE,
	MODE_ALERT_MID_REPLY,
	MODE_GARBAGE,
	MODE_COUNT
};

static const char *const mode_names[] = {
	[MODE_NONE]		= "none",
	[MODE_ALERT]		= "alert",
	[MODE_CLOSE_NOTIFY]	= "close-notify",
	[MODE_KEYUPDATE]	= "keyupdate",
	[MODE_TICKET]		= "ticket",
	[MODE_HEARTBEAT]	= "heartbeat",
	[MODE_UNKNOWN_TYPE]	= "unknown-type",
	[MODE_ALERT_MID_REPLY]	= "alert-mid-reply",
	[MODE_GARBAGE]		= "garbage",
};

/* How the connection's bytes travel. */
enum io {
	IO_PLAIN,		/* before STARTTLS */
	IO_GNUTLS,		/* gnutls_record_send/recv */
	IO_KTLS,		/* read/write on the socket, the kernel does TLS */
};

static const char *const io_names[] = {
	[IO_PLAIN]	= "plain",
	[IO_GNUTLS]	= "GnuTLS",
	[IO_KTLS]	= "kTLS",
};

struct peer {
	/* configuration */
	enum mode mode;
	uint64_t after;
	unsigned int hold;
	bool every;
	bool no_sr;
	bool no_ktls;
	uint64_t size;
	gnutls_priority_t prio;
	gnutls_certificate_credentials_t x509;
	gnutls_psk_server_credentials_t psk;

	/* state */
	uint8_t *data;
	unsigned int conn_id;
	bool fired;			/* the act was done */

	/* per connection */
	int fd;
	gnutls_session_t tls;
	enum io io;
	bool tls13;
	bool structured;
	bool hostile;			/* the act is due on this connection */
	uint64_t answered;		/* requests answered */
	char why[256];			/* why the connection ends */
};

static volatile sig_atomic_t stop_signal;

static void logmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("nbd_tls_peer: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

/* Records why the connection ends (the first reason wins); returns -1. */
static int bye(struct peer *p, const char *fmt, ...)
{
	va_list ap;

	if (p->why[0])
		return -1;
	va_start(ap, fmt);
	vsnprintf(p->why, sizeof(p->why), fmt, ap);
	va_end(ap);
	return -1;
}

static void on_signal(int sig)
{
	stop_signal = sig;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void put_be16(uint8_t *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }
static void put_be32(uint8_t *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static void put_be64(uint8_t *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static uint16_t get_be16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return be16toh(v); }
static uint32_t get_be32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static uint64_t get_be64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }

/* "bad_record_mac", as the RFCs spell it (GnuTLS: GNUTLS_A_BAD_RECORD_MAC). */
static const char *alert_name(uint8_t desc)
{
	static char buf[64];
	const char *name = gnutls_alert_get_strname(desc);
	size_t i;

	if (!name)
		return "unknown";
	if (!strncmp(name, "GNUTLS_A_", 9))
		name += 9;
	for (i = 0; name[i] && i < sizeof(buf) - 1; i++)
		buf[i] = name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' :
			 name[i];
	buf[i] = '\0';
	return buf;
}

/* "alert fatal internal_error", "handshake type 24 length 1", ... */
static void describe_record(char *buf, size_t size, uint8_t type,
			    const uint8_t *body, size_t len)
{
	switch (type) {
	case REC_ALERT:
		if (len >= 2) {
			snprintf(buf, size, "alert %s %s (%u)",
				 body[0] == ALERT_FATAL ? "fatal" :
				 body[0] == ALERT_WARNING ? "warning" :
				 "of unknown level", alert_name(body[1]),
				 body[1]);
			return;
		}
		snprintf(buf, size, "alert record of %zu bytes", len);
		return;
	case REC_APPDATA:
		snprintf(buf, size, "application data, %zu bytes", len);
		return;
	case REC_HANDSHAKE:
		if (len >= 1) {
			snprintf(buf, size, "handshake record, message type %u, %zu bytes",
				 body[0], len);
			return;
		}
		break;
	}
	snprintf(buf, size, "record of type %u, %zu bytes", type, len);
}

/* ---- I/O on the connection, whatever carries it ---- */

/* Retry after EINTR unless a signal asks to stop. */
static bool interrupted(struct peer *p)
{
	if (!stop_signal)
		return false;
	bye(p, "interrupted by signal %d", (int)stop_signal);
	return true;
}

/*
 * One receive of at most @len bytes.  Returns the byte count, 0 on EOF,
 * -1 on error (with p->why set); *type is the record's content type
 * (REC_APPDATA for everything that is not a kTLS control record).
 */
static ssize_t conn_recv(struct peer *p, void *buf, size_t len, uint8_t *type)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(unsigned char))];
	} cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg;
	struct cmsghdr *cmsg;
	ssize_t r;

	*type = REC_APPDATA;
	for (;;) {
		switch (p->io) {
		case IO_PLAIN:
			r = read(p->fd, buf, len);
			break;
		case IO_GNUTLS:
			r = gnutls_record_recv(p->tls, buf, len);
			if (r > 0)
				return r;
			if (r == 0)
				return bye(p, "client sent close_notify");
			if (r == GNUTLS_E_INTERRUPTED) {
				if (interrupted(p))
					return -1;
				continue;
			}
			if (r == GNUTLS_E_AGAIN)
				return bye(p, "receive timed out");
			if (r == GNUTLS_E_PREMATURE_TERMINATION)
				return 0;
			if (r == GNUTLS_E_WARNING_ALERT_RECEIVED ||
			    r == GNUTLS_E_FATAL_ALERT_RECEIVED)
				return bye(p, "client sent alert %s %s",
					   r == GNUTLS_E_FATAL_ALERT_RECEIVED ?
					   "fatal" : "warning",
					   alert_name(gnutls_alert_get(p->tls)));
			return bye(p, "TLS receive failed: %s",
				   gnutls_strerror(r));
		default:
			memset(&msg, 0, sizeof(msg));
			msg.msg_iov = &iov;
			msg.msg_iovlen = 1;
			msg.msg_control = cbuf.buf;
			msg.msg_controllen = sizeof(cbuf.buf);
			r = recvmsg(p->fd, &msg, 0);
			if (r < 0)
				break;
			for (cmsg = CMSG_FIRSTHDR(&msg); cmsg;
			     cmsg = CMSG_NXTHDR(&msg, cmsg))
				if (cmsg->cmsg_level == SOL_TLS &&
				    cmsg->cmsg_type == TLS_GET_RECORD_TYPE)
					*type = *CMSG_DATA(cmsg);
			break;
		}
		if (r >= 0)
			return r;
		if (errno == EINTR) {
			if (interrupted(p))
				return -1;
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return bye(p, "receive timed out");
		return bye(p, "receive failed: %s", strerror(errno));
	}
}

/* Reads exactly @len bytes of application data; -1 otherwise. */
static int conn_read(struct peer *p, void *buf, size_t len)
{
	uint8_t *b = buf;
	size_t done = 0;
	char what[128];
	uint8_t type;
	ssize_t r;

	while (done < len) {
		r = conn_recv(p, b + done, len - done, &type);
		if (r < 0)
			return -1;
		if (r == 0)
			return done ? bye(p, "client closed the connection mid-message") :
				      bye(p, "client closed the connection");
		if (type != REC_APPDATA) {
			describe_record(what, sizeof(what), type, b + done, r);
			return bye(p, "client sent %s", what);
		}
		done += r;
	}
	return 0;
}

static int conn_write(struct peer *p, const void *buf, size_t len, bool more)
{
	const uint8_t *b = buf;
	size_t done = 0;
	ssize_t r;

	while (done < len) {
		if (p->io == IO_GNUTLS) {
			r = gnutls_record_send(p->tls, b + done, len - done);
			if (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN) {
				if (interrupted(p))
					return -1;
				continue;
			}
			if (r < 0)
				return bye(p, "TLS send failed: %s",
					   gnutls_strerror(r));
		} else {
			r = send(p->fd, b + done, len - done,
				 MSG_NOSIGNAL | (more ? MSG_MORE : 0));
			if (r < 0 && errno == EINTR) {
				if (interrupted(p))
					return -1;
				continue;
			}
			if (r < 0)
				return bye(p, "send failed: %s",
					   strerror(errno));
		}
		if (r == 0)
			return bye(p, "send made no progress");
		done += r;
	}
	return 0;
}

/* A record of content type @type, on a kTLS socket. */
static int send_record(struct peer *p, uint8_t type, const void *buf,
		       size_t len)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(unsigned char))];
	} cbuf;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg;
	struct cmsghdr *cmsg;
	ssize_t r;

	memset(&cbuf, 0, sizeof(cbuf));
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_TLS;
	cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
	cmsg->cmsg_len = CMSG_LEN(sizeof(unsigned char));
	*CMSG_DATA(cmsg) = type;
	do {
		r = sendmsg(p->fd, &msg, MSG_NOSIGNAL);
	} while (r < 0 && errno == EINTR && !interrupted(p));
	if (r < 0)
		return bye(p, "sending a record of type %u failed: %s", type,
			   strerror(errno));
	if ((size_t)r != len)
		return bye(p, "record of type %u: sent %zd of %zu bytes", type,
			   r, len);
	return 0;
}

/* ---- TLS ---- */

static int start_tls(struct peer *p)
{
	const char *user;
	int r;

	r = gnutls_init(&p->tls, GNUTLS_SERVER);
	if (r < 0) {
		p->tls = NULL;
		return bye(p, "gnutls_init: %s", gnutls_strerror(r));
	}
	r = gnutls_priority_set(p->tls, p->prio);
	if (!r && p->x509)
		r = gnutls_credentials_set(p->tls, GNUTLS_CRD_CERTIFICATE,
					   p->x509);
	if (!r && p->psk)
		r = gnutls_credentials_set(p->tls, GNUTLS_CRD_PSK, p->psk);
	if (r < 0)
		return bye(p, "TLS session setup: %s", gnutls_strerror(r));
	gnutls_certificate_server_set_request(p->tls, GNUTLS_CERT_IGNORE);
	gnutls_transport_set_int(p->tls, p->fd);
	gnutls_handshake_set_timeout(p->tls, HANDSHAKE_TIMEOUT * 1000);

	do {
		r = gnutls_handshake(p->tls);
	} while (r < 0 && !gnutls_error_is_fatal(r) && !stop_signal);
	if (r < 0) {
		if (stop_signal)
			return bye(p, "interrupted by signal %d",
				   (int)stop_signal);
		if (r == GNUTLS_E_FATAL_ALERT_RECEIVED)
			return bye(p, "TLS handshake failed: client sent alert %s",
				   alert_name(gnutls_alert_get(p->tls)));
		return bye(p, "TLS handshake failed: %s", gnutls_strerror(r));
	}
	p->io = IO_GNUTLS;
	p->tls13 = gnutls_protocol_get_version(p->tls) == GNUTLS_TLS1_3;
	user = p->psk ? gnutls_psk_server_get_username(p->tls) : NULL;
	logmsg("conn %u: TLS handshake done: %s, cipher %s, key exchange %s%s%s%s",
	       p->conn_id,
	       gnutls_protocol_get_name(gnutls_protocol_get_version(p->tls)),
	       gnutls_cipher_get_name(gnutls_cipher_get(p->tls)),
	       gnutls_kx_get_name(gnutls_kx_get(p->tls)),
	       user ? ", PSK user '" : "", user ? user : "",
	       user ? "'" : "");
	return 0;
}

union crypto_info {
	struct tls_crypto_info info;
	struct tls12_crypto_info_aes_gcm_128 gcm128;
	struct tls12_crypto_info_aes_gcm_256 gcm256;
	struct tls12_crypto_info_chacha20_poly1305 chacha;
};

/*
 * Fills an AES-GCM crypto_info's fields.  TLS 1.3: the 12-byte IV is
 * salt and nonce.  TLS 1.2: the 4-byte IV is the salt, and the explicit
 * nonce GnuTLS puts in each record is the sequence number.
 */
static int fill_gcm(struct peer *p, const char *dir, unsigned char *salt,
		    unsigned char *iv, unsigned char *key, size_t key_size,
		    unsigned char *rec_seq, const gnutls_datum_t *giv,
		    const gnutls_datum_t *gkey, const unsigned char *seq)
{
	if (gkey->size != key_size || giv->size != (p->tls13 ? 12U : 4U))
		return bye(p, "kTLS: unexpected %s key/IV size %u/%u", dir,
			   gkey->size, giv->size);
	memcpy(key, gkey->data, key_size);
	memcpy(salt, giv->data, 4);
	if (p->tls13)
		memcpy(iv, giv->data + 4, 8);
	else
		memcpy(iv, seq, 8);
	memcpy(rec_seq, seq, 8);
	return 0;
}

static int get_crypto_info(struct peer *p, unsigned int read,
			   union crypto_info *ci, socklen_t *size)
{
	const char *dir = read ? "receive" : "send";
	gnutls_datum_t mac, iv, key;
	unsigned char seq[8];
	int r;

	r = gnutls_record_get_state(p->tls, read, &mac, &iv, &key, seq);
	if (r < 0)
		return bye(p, "kTLS: gnutls_record_get_state(%s): %s", dir,
			   gnutls_strerror(r));
	memset(ci, 0, sizeof(*ci));
	ci->info.version = p->tls13 ? TLS_1_3_VERSION : TLS_1_2_VERSION;
	switch (gnutls_cipher_get(p->tls)) {
	case GNUTLS_CIPHER_AES_128_GCM:
		ci->info.cipher_type = TLS_CIPHER_AES_GCM_128;
		*size = sizeof(ci->gcm128);
		r = fill_gcm(p, dir, ci->gcm128.salt, ci->gcm128.iv,
			     ci->gcm128.key, sizeof(ci->gcm128.key),
			     ci->gcm128.rec_seq, &iv, &key, seq);
		break;
	case GNUTLS_CIPHER_AES_256_GCM:
		ci->info.cipher_type = TLS_CIPHER_AES_GCM_256;
		*size = sizeof(ci->gcm256);
		r = fill_gcm(p, dir, ci->gcm256.salt, ci->gcm256.iv,
			     ci->gcm256.key, sizeof(ci->gcm256.key),
			     ci->gcm256.rec_seq, &iv, &key, seq);
		break;
	case GNUTLS_CIPHER_CHACHA20_POLY1305:
		ci->info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
		*size = sizeof(ci->chacha);
		if (key.size != sizeof(ci->chacha.key) ||
		    iv.size != sizeof(ci->chacha.iv))
			return bye(p, "kTLS: unexpected %s key/IV size %u/%u",
				   dir, key.size, iv.size);
		memcpy(ci->chacha.key, key.data, key.size);
		memcpy(ci->chacha.iv, iv.data, iv.size);
		memcpy(ci->chacha.rec_seq, seq, sizeof(seq));
		r = 0;
		break;
	default:
		return bye(p, "kTLS: cipher %s not supported by kTLS",
			   gnutls_cipher_get_name(gnutls_cipher_get(p->tls)));
	}
	return r;
}

static int install_ktls(struct peer *p)
{
	gnutls_protocol_t ver = gnutls_protocol_get_version(p->tls);
	union crypto_info tx, rx;
	socklen_t tx_size = 0, rx_size = 0;
	int r = -1;

	if (ver != GNUTLS_TLS1_2 && ver != GNUTLS_TLS1_3)
		return bye(p, "kTLS: %s not supported by kTLS",
			   gnutls_protocol_get_name(ver));
	if (gnutls_record_check_pending(p->tls))
		return bye(p, "kTLS: %zu bytes of received data still in GnuTLS",
			   gnutls_record_check_pending(p->tls));
	if (get_crypto_info(p, 0, &tx, &tx_size) ||
	    get_crypto_info(p, 1, &rx, &rx_size))
		goto out;
	if (setsockopt(p->fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls"))) {
		bye(p, "kTLS: setsockopt(TCP_ULP, \"tls\"): %s",
		    strerror(errno));
		goto out;
	}
	if (setsockopt(p->fd, SOL_TLS, TLS_TX, &tx, tx_size)) {
		bye(p, "kTLS: setsockopt(TLS_TX): %s", strerror(errno));
		goto out;
	}
	if (setsockopt(p->fd, SOL_TLS, TLS_RX, &rx, rx_size)) {
		bye(p, "kTLS: setsockopt(TLS_RX): %s", strerror(errno));
		goto out;
	}
	p->io = IO_KTLS;
	logmsg("conn %u: kTLS installed for send and receive (%s, %s)",
	       p->conn_id, gnutls_protocol_get_name(ver),
	       gnutls_cipher_get_name(gnutls_cipher_get(p->tls)));
	r = 0;
out:
	/* Do not leave keys lying around on the stack. */
	memset(&tx, 0, sizeof(tx));
	memset(&rx, 0, sizeof(rx));
	return r;
}

/* ---- handshake ---- */

static const char *option_name(uint32_t opt)
{
	switch (opt) {
	case OPT_EXPORT_NAME:		return "EXPORT_NAME";
	case OPT_ABORT:			return "ABORT";
	case OPT_LIST:			return "LIST";
	case OPT_STARTTLS:		return "STARTTLS";
	case OPT_INFO:			return "INFO";
	case OPT_GO:			return "GO";
	case OPT_STRUCTURED_REPLY:	return "STRUCTURED_REPLY";
	}
	return "unknown";
}

static int send_opt_reply(struct peer *p, uint32_t opt, uint32_t type,
			  const void *data, uint32_t len)
{
	uint8_t hdr[20];

	put_be64(hdr, REPLY_OPT_MAGIC);
	put_be32(hdr + 8, opt);
	put_be32(hdr + 12, type);
	put_be32(hdr + 16, len);
	if (conn_write(p, hdr, sizeof(hdr), len > 0))
		return -1;
	return len ? conn_write(p, data, len, false) : 0;
}

static int send_opt_error(struct peer *p, uint32_t opt, uint32_t type,
			  const char *msg)
{
	logmsg("conn %u: option %s refused: %s", p->conn_id,
	       option_name(opt), msg);
	return send_opt_reply(p, opt, type, msg, strlen(msg));
}

/*
 * NBD_OPT_GO / NBD_OPT_INFO: u32 name length, name, u16 number of
 * information requests, that many u16.  Any name is accepted.
 */
static int go_info(struct peer *p, uint32_t opt, const uint8_t *data,
		   uint32_t len)
{
	uint8_t info[14];
	uint32_t namelen, i;
	uint16_t nreq;
	bool block_size = false;

	if (len < 6)
		return send_opt_error(p, opt, REP_ERR_INVALID,
				      "malformed request: too short") ? -1 : 0;
	namelen = get_be32(data);
	if (namelen > len - 6)
		return send_opt_error(p, opt, REP_ERR_INVALID,
				      "malformed request: name length") ? -1 : 0;
	nreq = get_be16(data + 4 + namelen);
	if (len != 4 + namelen + 2 + 2 * (uint32_t)nreq)
		return send_opt_error(p, opt, REP_ERR_INVALID,
				      "malformed request: information requests") ?
		       -1 : 0;
	for (i = 0; i < nreq; i++)
		if (get_be16(data + 4 + namelen + 2 + 2 * i) == INFO_BLOCK_SIZE)
			block_size = true;

	put_be16(info, INFO_EXPORT);
	put_be64(info + 2, p->size);
	put_be16(info + 10, TFLAGS);
	if (send_opt_reply(p, opt, REP_INFO, info, 12))
		return -1;
	if (block_size) {
		put_be16(info, INFO_BLOCK_SIZE);
		put_be32(info + 2, BLOCK_MIN);
		put_be32(info + 6, BLOCK_PREF);
		put_be32(info + 10, BLOCK_MAX);
		if (send_opt_reply(p, opt, REP_INFO, info, sizeof(info)))
			return -1;
	}
	if (send_opt_reply(p, opt, REP_ACK, NULL, 0))
		return -1;
	logmsg("conn %u: %s: export of %" PRIu64 " bytes, name length %u, %u information requests%s",
	       p->conn_id, option_name(opt), p->size, namelen, nreq,
	       block_size ? ", block sizes sent" : "");
	return opt == OPT_GO;
}

/* Before STARTTLS.  Returns 1 when TLS is up, 0 to go on, -1 to close. */
static int option_plain(struct peer *p, uint32_t opt, uint32_t len)
{
	switch (opt) {
	case OPT_STARTTLS:
		if (len) {
			if (send_opt_error(p, opt, REP_ERR_INVALID,
					   "STARTTLS takes no data"))
				return -1;
			return 0;
		}
		if (send_opt_reply(p, opt, REP_ACK, NULL, 0) || start_tls(p))
			return -1;
		return 1;
	case OPT_ABORT:
		send_opt_reply(p, opt, REP_ACK, NULL, 0);
		bye(p, "client sent NBD_OPT_ABORT");
		return -1;
	case OPT_EXPORT_NAME:
		/* It cannot be refused: the spec says to hang up. */
		return bye(p, "NBD_OPT_EXPORT_NAME before TLS");
	default:
		if (send_opt_error(p, opt, REP_ERR_TLS_REQD,
				   "TLS is required: send NBD_OPT_STARTTLS first"))
			return -1;
		return 0;
	}
}

/* After STARTTLS.  Returns 1 to enter transmission, 0 to go on, -1. */
static int option_tls(struct peer *p, uint32_t opt, const uint8_t *data,
		      uint32_t len, bool no_zeroes)
{
	switch (opt) {
	case OPT_STARTTLS:
		return send_opt_error(p, opt, REP_ERR_INVALID,
				      "TLS is already in use") ? -1 : 0;
	case OPT_STRUCTURED_REPLY:
		if (len)
			return send_opt_error(p, opt, REP_ERR_INVALID,
					      "STRUCTURED_REPLY takes no data") ?
			       -1 : 0;
		if (p->no_sr)
			return send_opt_error(p, opt, REP_ERR_UNSUP,
					      "structured replies refused (--no-sr)") ?
			       -1 : 0;
		if (send_opt_reply(p, opt, REP_ACK, NULL, 0))
			return -1;
		p->structured = true;
		logmsg("conn %u: structured replies agreed", p->conn_id);
		return 0;
	case OPT_INFO:
	case OPT_GO:
		return go_info(p, opt, data, len);
	case OPT_EXPORT_NAME: {
		uint8_t rep[10 + 124] = { 0 };

		put_be64(rep, p->size);
		put_be16(rep + 8, TFLAGS);
		if (conn_write(p, rep, no_zeroes ? 10 : sizeof(rep), false))
			return -1;
		logmsg("conn %u: EXPORT_NAME: export of %" PRIu64 " bytes",
		       p->conn_id, p->size);
		return 1;
	}
	case OPT_ABORT:
		send_opt_reply(p, opt, REP_ACK, NULL, 0);
		return bye(p, "client sent NBD_OPT_ABORT");
	default:
		return send_opt_error(p, opt, REP_ERR_UNSUP,
				      "option not supported") ? -1 : 0;
	}
}

/* Returns 0 to enter transmission, -1 to close. */
static int negotiate(struct peer *p)
{
	uint8_t greet[18], buf[16], data[MAX_OPTION_LEN];
	bool no_zeroes;
	unsigned int nopts;
	uint32_t cflags;
	int r;

	put_be64(greet, NBDMAGIC);
	put_be64(greet + 8, IHAVEOPT);
	put_be16(greet + 16, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
	if (conn_write(p, greet, sizeof(greet), false) ||
	    conn_read(p, buf, 4))
		return -1;
	cflags = get_be32(buf);
	if (cflags & ~CFLAG_KNOWN)
		return bye(p, "unknown client flags 0x%x", cflags);
	if (!(cflags & FLAG_FIXED_NEWSTYLE))
		return bye(p, "client does not do fixed newstyle (flags 0x%x)",
			   cflags);
	no_zeroes = cflags & FLAG_NO_ZEROES;

	for (nopts = 0; nopts < MAX_OPTIONS; nopts++) {
		uint32_t opt, len;

		if (conn_read(p, buf, 16))
			return -1;
		if (get_be64(buf) != IHAVEOPT)
			return bye(p, "bad option magic 0x%" PRIx64,
				   get_be64(buf));
		opt = get_be32(buf + 8);
		len = get_be32(buf + 12);
		logmsg("conn %u: option %s (%u), length %u, over %s",
		       p->conn_id, option_name(opt), opt, len,
		       io_names[p->io]);
		if (len > MAX_OPTION_LEN) {
			send_opt_error(p, opt, REP_ERR_TOO_BIG,
				       "option too long");
			return bye(p, "option %u of %u bytes (at most %u)", opt,
				   len, MAX_OPTION_LEN);
		}
		if (len && conn_read(p, data, len))
			return -1;

		if (p->io == IO_PLAIN) {
			if (option_plain(p, opt, len) < 0)
				return -1;
			continue;
		}
		r = option_tls(p, opt, data, len, no_zeroes);
		if (r < 0)
			return -1;
		if (r > 0)
			return 0;
	}
	return bye(p, "more than %u options", MAX_OPTIONS);
}

/* ---- transmission ---- */

static int send_simple(struct peer *p, uint32_t error, uint64_t cookie,
		       const void *data, uint32_t len)
{
	uint8_t hdr[SIMPLE_REPLY_SIZE];

	put_be32(hdr, SIMPLE_REPLY_MAGIC);
	put_be32(hdr + 4, error);
	put_be64(hdr + 8, cookie);
	if (conn_write(p, hdr, sizeof(hdr), len > 0))
		return -1;
	return len ? conn_write(p, data, len, false) : 0;
}

/* The reply's header(s): simple, or an OFFSET_DATA chunk's, offset too. */
static size_t read_reply_header(struct peer *p, uint8_t *hdr,
				uint64_t cookie, uint64_t off, uint32_t len)
{
	if (!p->structured || !len) {
		put_be32(hdr, SIMPLE_REPLY_MAGIC);
		put_be32(hdr + 4, 0);
		put_be64(hdr + 8, cookie);
		return SIMPLE_REPLY_SIZE;
	}
	put_be32(hdr, SR_MAGIC);
	put_be16(hdr + 4, SR_FLAG_DONE);
	put_be16(hdr + 6, SR_TYPE_OFFSET_DATA);
	put_be64(hdr + 8, cookie);
	put_be32(hdr + 16, 8 + len);
	put_be64(hdr + 20, off);
	return SR_HDR_SIZE + 8;
}

static bool range_ok(const struct peer *p, uint64_t off, uint32_t len)
{
	return off <= p->size && len <= p->size - off;
}

/* ---- hostile acts ---- */

/* Half a read reply, then a fatal alert, on a kTLS socket. */
static int alert_mid_reply(struct peer *p, uint64_t cookie, uint64_t off,
			   uint32_t len)
{
	static const uint8_t alert[2] = { ALERT_FATAL, ALERT_INTERNAL_ERROR };
	uint8_t hdr[SR_HDR_SIZE + 8];
	size_t n = read_reply_header(p, hdr, cookie, off, len);

	p->fired = true;
	if (conn_write(p, hdr, n, len / 2 > 0) ||
	    (len / 2 && conn_write(p, p->data + off, len / 2, false)) ||
	    send_record(p, REC_ALERT, alert, sizeof(alert)))
		return -1;
	logmsg("hostile: sent a %s read reply header, %u of %u data bytes and a fatal internal_error alert after %" PRIu64 " requests on connection %u",
	       p->structured && len ? "structured" : "simple", len / 2, len,
	       p->answered, p->conn_id);
	return 0;
}

static int act(struct peer *p)
{
	static const uint8_t alert[2] = { ALERT_FATAL, ALERT_INTERNAL_ERROR };
	static const uint8_t close_notify[2] = { ALERT_WARNING,
						 ALERT_CLOSE_NOTIFY };
	static const uint8_t key_update[5] = { HS_KEY_UPDATE, 0, 0, 1, 0 };
	uint8_t buf[128], rnd[64];
	const char *what;
	size_t n = 0;
	int r;

	p->fired = true;
	gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd));
	switch (p->mode) {
	case MODE_ALERT:
		r = send_record(p, REC_ALERT, alert, sizeof(alert));
		what = "a fatal internal_error alert";
		break;
	case MODE_CLOSE_NOTIFY:
		r = send_record(p, REC_ALERT, close_notify,
				sizeof(close_notify));
		what = "a warning close_notify alert";
		break;
	case MODE_KEYUPDATE:
		if (!p->tls13)
			logmsg("conn %u: warning: KeyUpdate on a TLS 1.2 connection, which has no such message",
			       p->conn_id);
		r = send_record(p, REC_HANDSHAKE, key_update,
				sizeof(key_update));
		what = "a KeyUpdate (update_not_requested) handshake record";
		break;
	case MODE_TICKET:
		/* Handshake header: type, u24 length; the body follows. */
		buf[0] = HS_NEW_SESSION_TICKET;
		n = 4;
		put_be32(buf + n, 7200);		/* lifetime (hint) */
		n += 4;
		if (p->tls13) {
			memcpy(buf + n, rnd, 4);	/* ticket_age_add */
			n += 4;
			buf[n++] = 8;			/* ticket_nonce */
			memcpy(buf + n, rnd + 4, 8);
			n += 8;
		}
		put_be16(buf + n, 48);			/* ticket */
		n += 2;
		memcpy(buf + n, rnd + 12, 48);
		n += 48;
		if (p->tls13) {
			put_be16(buf + n, 0);		/* no extensions */
			n += 2;
		}
		buf[1] = 0;
		put_be16(buf + 2, n - 4);
		r = send_record(p, REC_HANDSHAKE, buf, n);
		what = p->tls13 ? "a TLS 1.3 NewSessionTicket handshake record" :
				  "a TLS 1.2 NewSessionTicket handshake record";
		break;
	case MODE_HEARTBEAT:
		/* heartbeat_request, u16 payload length, payload, padding */
		buf[0] = 1;
		put_be16(buf + 1, 16);
		memcpy(buf + 3, rnd, 16 + 16);
		n = 3 + 16 + 16;
		r = send_record(p, REC_HEARTBEAT, buf, n);
		what = "a heartbeat request record (type 24)";
		break;
	case MODE_UNKNOWN_TYPE:
		r = send_record(p, REC_UNKNOWN, rnd, 16);
		what = "a record of unknown content type 99 (16 bytes)";
		break;
	case MODE_GARBAGE:
		/* Behind GnuTLS's back: it never sees these bytes go. */
		buf[0] = REC_APPDATA;
		buf[1] = 3;
		buf[2] = 3;
		put_be16(buf + 3, sizeof(rnd));
		memcpy(buf + 5, rnd, sizeof(rnd));
		p->io = IO_PLAIN;
		r = conn_write(p, buf, 5 + sizeof(rnd), false);
		p->io = IO_GNUTLS;
		what = "an application data record of 64 random bytes, written around GnuTLS";
		break;
	default:
		return 0;
	}
	if (r)
		return -1;
	logmsg("hostile: sent %s after %" PRIu64 " requests on connection %u",
	       what, p->answered, p->conn_id);
	return 0;
}

/*
 * After the act: send nothing, and wait at most --hold seconds for the
 * client to close the connection.  What it sends meanwhile is logged
 * (the first few) and dropped.
 */
static void hold(struct peer *p)
{
	double start = now(), left;
	unsigned int seen = 0;
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
	uint8_t buf[16384];
	char what[128];
	uint8_t type;
	ssize_t r;

	logmsg("conn %u: holding the connection, at most %u s",
	       p->conn_id, p->hold);
	for (;;) {
		left = start + p->hold - now();
		if (left <= 0) {
			bye(p, "hold time of %u s over, the client did not close the connection",
			    p->hold);
			break;
		}
		/* Data GnuTLS holds already would not wake poll(). */
		if (p->io != IO_GNUTLS || !gnutls_record_check_pending(p->tls)) {
			r = poll(&pfd, 1, (int)(left * 1000) + 1);
			if (r < 0 && errno == EINTR) {
				if (interrupted(p))
					break;
				continue;
			}
			if (r <= 0)
				continue;
		}
		r = conn_recv(p, buf, sizeof(buf), &type);
		if (r == 0) {
			bye(p, "client closed the connection %.1f s after the hostile act",
			    now() - start);
			break;
		}
		if (r < 0 && stop_signal)
			break;
		if (r < 0) {
			logmsg("conn %u: while held: %s", p->conn_id, p->why);
			p->why[0] = '\0';
			if (p->io == IO_GNUTLS) {
				/* The session is over: wait for TCP's end. */
				p->io = IO_PLAIN;
				continue;
			}
			bye(p, "connection ended %.1f s after the hostile act",
			    now() - start);
			break;
		}
		if (++seen > MAX_HOLD_LOG)
			continue;
		if (p->io == IO_PLAIN)
			snprintf(what, sizeof(what), "%zd raw bytes", r);
		else
			describe_record(what, sizeof(what), type, buf, r);
		logmsg("conn %u: while held: client sent %s", p->conn_id, what);
	}
}

static bool act_due(const struct peer *p)
{
	return p->hostile && p->mode != MODE_ALERT_MID_REPLY &&
	       p->answered >= p->after;
}

/* Returns 0 to go on, 1 after NBD_CMD_DISC, 2 after the act, -1. */
static int handle_request(struct peer *p, const uint8_t *req)
{
	uint32_t magic = get_be32(req);
	uint16_t flags = get_be16(req + 4);
	uint16_t type = get_be16(req + 6);
	uint64_t cookie = get_be64(req + 8);
	uint64_t off = get_be64(req + 16);
	uint32_t len = get_be32(req + 24);
	uint16_t allowed = 0;
	uint8_t hdr[SR_HDR_SIZE + 8];
	size_t n;

	if (magic != REQUEST_MAGIC)
		return bye(p, "bad request magic 0x%08x", magic);
	switch (type) {
	case CMD_READ:
		allowed = p->structured ? CMD_FLAG_DF : 0;
		break;
	case CMD_WRITE:
	case CMD_TRIM:
		allowed = CMD_FLAG_FUA;
		break;
	case CMD_WRITE_ZEROES:
		allowed = CMD_FLAG_FUA | CMD_FLAG_NO_HOLE;
		break;
	case CMD_DISC:
	case CMD_FLUSH:
		break;
	default:
		return bye(p, "unknown command %u", type);
	}
	if (flags & ~allowed)
		return bye(p, "command %u with flags 0x%x (allowed 0x%x)",
			   type, flags, allowed);
	if (type == CMD_DISC) {
		bye(p, "NBD_CMD_DISC after %" PRIu64 " requests", p->answered);
		return 1;
	}
	if (type == CMD_FLUSH) {
		if (off || len)
			return bye(p, "FLUSH with offset %" PRIu64 " length %u",
				   off, len);
	} else if (!range_ok(p, off, len)) {
		return bye(p, "command %u beyond the export: offset %" PRIu64 " length %u",
			   type, off, len);
	}
	if ((type == CMD_READ || type == CMD_WRITE) && len > BLOCK_MAX)
		return bye(p, "command %u of %u bytes (at most %u)", type, len,
			   BLOCK_MAX);

	switch (type) {
	case CMD_READ:
		if (p->hostile && p->mode == MODE_ALERT_MID_REPLY &&
		    p->answered >= p->after)
			return alert_mid_reply(p, cookie, off, len) ? -1 : 2;
		n = read_reply_header(p, hdr, cookie, off, len);
		if (conn_write(p, hdr, n, len > 0) ||
		    (len && conn_write(p, p->data + off, len, false)))
			return -1;
		break;
	case CMD_WRITE:
		if (len && conn_read(p, p->data + off, len))
			return -1;
		if (send_simple(p, 0, cookie, NULL, 0))
			return -1;
		break;
	case CMD_TRIM:
	case CMD_WRITE_ZEROES:
		memset(p->data + off, 0, len);
		/* fall through */
	default:
		if (send_simple(p, 0, cookie, NULL, 0))
			return -1;
		break;
	}
	p->answered++;
	return 0;
}

static void transmission(struct peer *p)
{
	uint8_t req[REQUEST_SIZE];
	int r;

	for (;;) {
		if (act_due(p)) {
			if (!act(p))
				hold(p);
			return;
		}
		if (conn_read(p, req, sizeof(req)))
			return;
		r = handle_request(p, req);
		if (r == 2)
			hold(p);
		if (r)
			return;
	}
}

static void set_rcv_timeout(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void serve(struct peer *p)
{
	bool use_ktls;

	p->io = IO_PLAIN;
	p->tls = NULL;
	p->tls13 = false;
	p->structured = false;
	p->answered = 0;
	p->why[0] = '\0';
	p->hostile = p->mode != MODE_NONE && (p->every || !p->fired);

	/* A client stalling in the handshake must not block the peer. */
	set_rcv_timeout(p->fd, HANDSHAKE_TIMEOUT);
	if (negotiate(p))
		goto out;
	set_rcv_timeout(p->fd, 0);

	use_ktls = !p->no_ktls && !(p->hostile && p->mode == MODE_GARBAGE);
	if (use_ktls && install_ktls(p))
		goto out;
	logmsg("conn %u: transmission phase over %s, %s replies%s",
	       p->conn_id, io_names[p->io],
	       p->structured ? "structured" : "simple",
	       p->hostile ? ", hostile" : "");
	transmission(p);
out:
	logmsg("conn %u: closed after %" PRIu64 " requests: %s", p->conn_id,
	       p->answered, p->why[0] ? p->why : "unknown reason");
	if (p->tls)
		gnutls_deinit(p->tls);
	p->tls = NULL;
}

/* ---- setup ---- */

static int parse_u64(const char *str, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (*str < '0' || *str > '9')
		return -1;
	errno = 0;
	v = strtoull(str, &end, 0);
	if (errno || end == str)
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end || v > (max >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"usage: nbd_tls_peer (--x509 DIR | --psk FILE) [options]\n"
		"  --port N        TCP port to listen on (default 10809; 0: any, logged)\n"
		"  --addr A        address to listen on (default 127.0.0.1)\n"
		"  --x509 DIR      DIR/server-cert.pem, DIR/server-key.pem (and\n"
		"                  DIR/ca-cert.pem if present); no client certificate\n"
		"  --psk FILE      PSK keys, psktool's format (username:hexkey lines)\n"
		"  --priority P    GnuTLS priority string (default\n"
		"                  " DEFAULT_PRIORITY ")\n"
		"  --tls12         TLS 1.2 only (appends " TLS12_SUFFIX ")\n"
		"  --mode M        the hostile act (default none):");
	for (i = 0; i < MODE_COUNT; i++)
		fprintf(f, "%s %s", i == 5 ? "\n                 " : "",
			mode_names[i]);
	fprintf(f, "\n"
		"  --after N       act after N answered requests (default 20)\n"
		"  --hold S        then wait at most S seconds for the client to\n"
		"                  close the connection (default 30)\n"
		"  --every         act on every connection, not only once\n"
		"  --size BYTES    export size (default 64M, at most 1G)\n"
		"  --no-sr         refuse NBD_OPT_STRUCTURED_REPLY\n"
		"  --no-ktls       stay on GnuTLS in transmission (modes none and\n"
		"                  garbage only; for hosts without kTLS)\n"
		"  --pidfile F     write the pid to F once listening\n"
		"  -h, --help      this text\n");
}

static int load_x509(struct peer *p, const char *dir)
{
	char ca[4096], cert[4096], key[4096];
	struct stat st;
	int r;

	if (snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir) >= (int)sizeof(ca) ||
	    snprintf(cert, sizeof(cert), "%s/server-cert.pem", dir) >= (int)sizeof(cert) ||
	    snprintf(key, sizeof(key), "%s/server-key.pem", dir) >= (int)sizeof(key)) {
		fprintf(stderr, "nbd_tls_peer: --x509 directory name too long\n");
		return -1;
	}
	r = gnutls_certificate_allocate_credentials(&p->x509);
	if (r < 0) {
		fprintf(stderr, "nbd_tls_peer: %s\n", gnutls_strerror(r));
		return -1;
	}
	if (!stat(ca, &st)) {
		r = gnutls_certificate_set_x509_trust_file(p->x509, ca,
							   GNUTLS_X509_FMT_PEM);
		if (r < 0) {
			fprintf(stderr, "nbd_tls_peer: %s: %s\n", ca,
				gnutls_strerror(r));
			return -1;
		}
	}
	r = gnutls_certificate_set_x509_key_file(p->x509, cert, key,
						 GNUTLS_X509_FMT_PEM);
	if (r < 0) {
		fprintf(stderr, "nbd_tls_peer: %s, %s: %s\n", cert, key,
			gnutls_strerror(r));
		return -1;
	}
	gnutls_certificate_set_known_dh_params(p->x509, GNUTLS_SEC_PARAM_MEDIUM);
	return 0;
}

static int load_psk(struct peer *p, const char *file)
{
	int r;

	if (access(file, R_OK)) {
		fprintf(stderr, "nbd_tls_peer: %s: %s\n", file,
			strerror(errno));
		return -1;
	}
	r = gnutls_psk_allocate_server_credentials(&p->psk);
	if (!r)
		r = gnutls_psk_set_server_credentials_file(p->psk, file);
	if (r < 0) {
		fprintf(stderr, "nbd_tls_peer: %s: %s\n", file,
			gnutls_strerror(r));
		return -1;
	}
	gnutls_psk_set_server_known_dh_params(p->psk, GNUTLS_SEC_PARAM_MEDIUM);
	return 0;
}

static int listen_on(const char *addr, unsigned int port, char *desc,
		     size_t desc_size)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICHOST |
					      AI_NUMERICSERV };
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct addrinfo *ai;
	char portstr[16], host[INET6_ADDRSTRLEN], serv[16];
	int fd, one = 1, r;

	snprintf(portstr, sizeof(portstr), "%u", port);
	r = getaddrinfo(addr, portstr, &hints, &ai);
	if (r) {
		fprintf(stderr, "nbd_tls_peer: --addr %s: %s\n", addr,
			gai_strerror(r));
		return -2;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 16) ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) ||
	    getnameinfo((struct sockaddr *)&ss, sslen, host, sizeof(host),
			serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV)) {
		fprintf(stderr, "nbd_tls_peer: listening on %s port %u: %s\n",
			addr, port, strerror(errno));
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	freeaddrinfo(ai);
	snprintf(desc, desc_size, "%s port %s", host, serv);
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port",	required_argument, NULL, 'P' },
		{ "addr",	required_argument, NULL, 'a' },
		{ "x509",	required_argument, NULL, 'x' },
		{ "psk",	required_argument, NULL, 'k' },
		{ "priority",	required_argument, NULL, 'r' },
		{ "tls12",	no_argument,	   NULL, '2' },
		{ "mode",	required_argument, NULL, 'm' },
		{ "after",	required_argument, NULL, 'n' },
		{ "hold",	required_argument, NULL, 'H' },
		{ "every",	no_argument,	   NULL, 'e' },
		{ "size",	required_argument, NULL, 'z' },
		{ "no-sr",	no_argument,	   NULL, 'S' },
		{ "no-ktls",	no_argument,	   NULL, 'K' },
		{ "pidfile",	required_argument, NULL, 'p' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct peer p = { .mode = MODE_NONE, .after = 20, .hold = 30,
			  .size = 64ULL << 20, .fd = -1 };
	const char *addr = "127.0.0.1", *x509_dir = NULL, *psk_file = NULL;
	const char *priority = DEFAULT_PRIORITY, *pidfile = NULL, *err_pos;
	char *prio_str, listen_desc[128];
	struct sigaction sa;
	bool tls12 = false;
	uint64_t v, port = 10809;
	int c, lfd, r, one = 1;
	size_t i;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'P':
			if (parse_u64(optarg, 65535, &port) || strpbrk(optarg, "kKmMgG")) {
				fprintf(stderr, "nbd_tls_peer: bad --port '%s': a number from 0 to 65535 is needed.\n",
					optarg);
				return 2;
			}
			break;
		case 'a':
			addr = optarg;
			break;
		case 'x':
			x509_dir = optarg;
			break;
		case 'k':
			psk_file = optarg;
			break;
		case 'r':
			priority = optarg;
			break;
		case '2':
			tls12 = true;
			break;
		case 'm':
			for (i = 0; i < MODE_COUNT; i++)
				if (!strcmp(optarg, mode_names[i]))
					break;
			if (i == MODE_COUNT) {
				fprintf(stderr, "nbd_tls_peer: unknown --mode '%s' (see --help).\n",
					optarg);
				return 2;
			}
			p.mode = i;
			break;
		case 'n':
			if (parse_u64(optarg, 1000000000, &p.after)) {
				fprintf(stderr, "nbd_tls_peer: bad --after '%s': a number of requests is needed.\n",
					optarg);
				return 2;
			}
			break;
		case 'H':
			if (parse_u64(optarg, MAX_HOLD, &v)) {
				fprintf(stderr, "nbd_tls_peer: bad --hold '%s': seconds from 0 to %d are needed.\n",
					optarg, MAX_HOLD);
				return 2;
			}
			p.hold = v;
			break;
		case 'e':
			p.every = true;
			break;
		case 'z':
			if (parse_u64(optarg, MAX_EXPORT_SIZE, &p.size) ||
			    p.size < BLOCK_PREF || p.size % BLOCK_MIN) {
				fprintf(stderr, "nbd_tls_peer: bad --size '%s': a multiple of 512 from 4K to 1G is needed.\n",
					optarg);
				return 2;
			}
			break;
		case 'S':
			p.no_sr = true;
			break;
		case 'K':
			p.no_ktls = true;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "nbd_tls_peer: unexpected argument '%s'.\n",
			argv[optind]);
		return 2;
	}
	if (!x509_dir && !psk_file) {
		fprintf(stderr, "nbd_tls_peer: credentials are needed: --x509 DIR or --psk FILE.\n");
		return 2;
	}
	if (p.no_ktls && p.mode != MODE_NONE && p.mode != MODE_GARBAGE) {
		fprintf(stderr, "nbd_tls_peer: --mode %s needs kTLS, not --no-ktls.\n",
			mode_names[p.mode]);
		return 2;
	}
	if (tls12 && p.mode == MODE_KEYUPDATE) {
		fprintf(stderr, "nbd_tls_peer: --mode keyupdate needs TLS 1.3, not --tls12.\n");
		return 2;
	}

	r = gnutls_global_init();
	if (r < 0) {
		fprintf(stderr, "nbd_tls_peer: gnutls_global_init: %s\n",
			gnutls_strerror(r));
		return 1;
	}
	if (asprintf(&prio_str, "%s%s", priority, tls12 ? TLS12_SUFFIX : "") < 0) {
		perror("nbd_tls_peer: asprintf");
		return 1;
	}
	r = gnutls_priority_init(&p.prio, prio_str, &err_pos);
	if (r < 0) {
		fprintf(stderr, "nbd_tls_peer: bad priority string '%s' at '%s': %s\n",
			prio_str, r == GNUTLS_E_INVALID_REQUEST && err_pos ?
			err_pos : "", gnutls_strerror(r));
		return 2;
	}
	if ((x509_dir && load_x509(&p, x509_dir)) ||
	    (psk_file && load_psk(&p, psk_file)))
		return 1;

	p.data = calloc(1, p.size);
	if (!p.data) {
		perror("nbd_tls_peer: calloc");
		return 1;
	}

	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: end blocking calls */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	lfd = listen_on(addr, port, listen_desc, sizeof(listen_desc));
	if (lfd < 0)
		return lfd == -2 ? 2 : 1;
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");

		if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f)) {
			perror(pidfile);
			return 1;
		}
	}
	logmsg("listening on %s, mode %s after %" PRIu64 " requests%s, hold %u s, size %" PRIu64 ", %s%s%s, priority %s",
	       listen_desc, mode_names[p.mode], p.after,
	       p.every ? " on every connection" : " once", p.hold, p.size,
	       x509_dir ? "X.509" : "", x509_dir && psk_file ? " and " : "",
	       psk_file ? "PSK" : "", prio_str);

	while (!stop_signal) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		char host[INET6_ADDRSTRLEN] = "?", serv[16] = "?";
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sslen,
				 SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			logmsg("accept failed: %s", strerror(errno));
			break;
		}
		getnameinfo((struct sockaddr *)&ss, sslen, host, sizeof(host),
			    serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV);
		/* A reply's header and data go as two records. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		p.conn_id++;
		p.fd = fd;
		logmsg("conn %u: accepted from %s port %s", p.conn_id, host,
		       serv);
		serve(&p);
		close(fd);
		p.fd = -1;
	}
	if (stop_signal)
		logmsg("signal %d, exiting", (int)stop_signal);
	close(lfd);
	if (pidfile)
		unlink(pidfile);
	gnutls_priority_deinit(p.prio);
	if (p.x509)
		gnutls_certificate_free_credentials(p.x509);
	if (p.psk)
		gnutls_psk_free_server_credentials(p.psk);
	free(prio_str);
	free(p.data);
	gnutls_global_deinit();
	return stop_signal ? 0 : 1;
}
