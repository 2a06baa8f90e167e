// SPDX-License-Identifier: GPL-2.0
/*
 * nbdctl: dialing an NBD server and the fixed newstyle handshake.
 *
 * Everything the server sends is checked before it is used: magics, the
 * option echoed in each reply, every length (replies are capped at
 * NBD_MAX_REPLY bytes before anything is allocated) and the values of
 * the NBD_INFO items.  Failures become one sentence in the caller's
 * buffer; the server's own error text is appended, made printable.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/nbd.h>

#include "nbdctl.h"

/* Handshake magics */
#define NBDMAGIC		0x4e42444d41474943ULL	/* "NBDMAGIC" */
#define IHAVEOPT		0x49484156454f5054ULL	/* "IHAVEOPT" */
#define NBD_OLDSTYLE_MAGIC	0x0000420281861253ULL
#define NBD_REP_MAGIC		0x0003e889045565a9ULL

/* Handshake flags (server) and client flags */
#define NBD_FLAG_FIXED_NEWSTYLE		(1 << 0)
#define NBD_FLAG_NO_ZEROES		(1 << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE	(1 << 0)
#define NBD_FLAG_C_NO_ZEROES		(1 << 1)

/* Options */
#define NBD_OPT_EXPORT_NAME	1
#define NBD_OPT_ABORT		2
#define NBD_OPT_LIST		3
#define NBD_OPT_STARTTLS	5
#define NBD_OPT_INFO		6
#define NBD_OPT_GO		7
#define NBD_OPT_STRUCTURED_REPLY	8

/* Option reply types */
#define NBD_REP_ACK		1
#define NBD_REP_SERVER		2
#define NBD_REP_INFO		3
#define NBD_REP_FLAG_ERROR	(1U << 31)
#define NBD_REP_ERR_UNSUP	(NBD_REP_FLAG_ERROR | 1)
#define NBD_REP_ERR_POLICY	(NBD_REP_FLAG_ERROR | 2)
#define NBD_REP_ERR_INVALID	(NBD_REP_FLAG_ERROR | 3)
#define NBD_REP_ERR_PLATFORM	(NBD_REP_FLAG_ERROR | 4)
#define NBD_REP_ERR_TLS_REQD	(NBD_REP_FLAG_ERROR | 5)
#define NBD_REP_ERR_UNKNOWN	(NBD_REP_FLAG_ERROR | 6)
#define NBD_REP_ERR_SHUTDOWN	(NBD_REP_FLAG_ERROR | 7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD	(NBD_REP_FLAG_ERROR | 8)
#define NBD_REP_ERR_TOO_BIG	(NBD_REP_FLAG_ERROR | 9)
#define NBD_REP_ERR_EXT_HEADER_REQD	(NBD_REP_FLAG_ERROR | 10)

/* NBD_REP_INFO types */
#define NBD_INFO_EXPORT		0
#define NBD_INFO_NAME		1
#define NBD_INFO_DESCRIPTION	2
#define NBD_INFO_BLOCK_SIZE	3

#define NBD_MAX_STRING		4096	/* names and messages (proto.md) */
#define NBD_MAX_REPLY		65536	/* largest option reply accepted */
#define NBD_ZERO_PAD		124	/* zeroes ending an EXPORT_NAME reply */
#define SHOWN_MAX		200	/* server text quoted in messages */
#define ABORT_WAIT_MS		2000	/* for the ACK to NBD_OPT_ABORT */

/* One handshake in progress. */
struct conn {
	int fd;
	char *err;
	size_t errlen;
	bool no_zeroes;		/* NBD_FLAG_C_NO_ZEROES was sent */
	bool eof;		/* the last failure was the server closing */
	bool in_options;	/* option haggling: NBD_OPT_ABORT is allowed */
	bool block_size_refused; /* GO may not ask for NBD_INFO_BLOCK_SIZE */
	bool transmitting;	/* past GO/EXPORT_NAME: leave with DISC */
	struct nbd_tls *tls;	/* after NBD_OPT_STARTTLS: the session */
};

struct reply {
	uint32_t opt;
	uint32_t type;
	uint32_t len;
	unsigned char *data;	/* @len bytes plus a NUL */
};

__attribute__((format(printf, 2, 3)))
static void set_err(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->err || !c->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
}

/* Append to the message already in c->err. */
__attribute__((format(printf, 2, 3)))
static void add_err(struct conn *c, const char *fmt, ...)
{
	size_t used;
	va_list ap;

	if (!c->err || !c->errlen)
		return;
	used = strnlen(c->err, c->errlen);
	if (used + 1 >= c->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(c->err + used, c->errlen - used, fmt, ap);
	va_end(ap);
}

/*
 * @len bytes of untrusted text made fit to print: printable ASCII only
 * (anything else becomes '?'), at most SHOWN_MAX characters.
 */
static void printable(char *dst, size_t dstlen, const void *src, size_t len)
{
	const unsigned char *s = src;
	size_t i, o = 0;

	if (!dstlen)
		return;
	for (i = 0; i < len && o + 1 < dstlen; i++) {
		if (o == SHOWN_MAX && i < len) {
			if (o + 4 <= dstlen) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		dst[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
	}
	dst[o] = '\0';
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return be64toh(v);
}

static uint32_t get_be32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return be32toh(v);
}

static uint16_t get_be16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return be16toh(v);
}

static void put_be64(unsigned char *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, sizeof(v));
}

static void put_be32(unsigned char *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, sizeof(v));
}

static void put_be16(unsigned char *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, sizeof(v));
}

static const char *opt_name(uint32_t opt)
{
	switch (opt) {
	case NBD_OPT_EXPORT_NAME:
		return "NBD_OPT_EXPORT_NAME";
	case NBD_OPT_ABORT:
		return "NBD_OPT_ABORT";
	case NBD_OPT_LIST:
		return "NBD_OPT_LIST";
	case NBD_OPT_STARTTLS:
		return "NBD_OPT_STARTTLS";
	case NBD_OPT_INFO:
		return "NBD_OPT_INFO";
	case NBD_OPT_GO:
		return "NBD_OPT_GO";
	case NBD_OPT_STRUCTURED_REPLY:
		return "NBD_OPT_STRUCTURED_REPLY";
	default:
		return "an unknown option";
	}
}

/* The receive timeout in seconds, for "did not answer within N s". */
static long rcv_timeout(int fd)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);

	if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len))
		return 0;
	return (long)tv.tv_sec + (tv.tv_usec >= 500000);
}

static void io_error(struct conn *c, int e, bool sending)
{
	if (e == EAGAIN || e == EWOULDBLOCK) {
		if (sending)
			set_err(c, "the server did not accept data within %ld s",
				rcv_timeout(c->fd));
		else
			set_err(c, "the server did not answer within %ld s",
				rcv_timeout(c->fd));
	} else if (e == ECONNRESET || e == EPIPE) {
		c->eof = true;
		set_err(c, "the server closed the connection during the handshake (%s)",
			strerror(e));
	} else {
		set_err(c, "cannot %s the server: %s",
			sending ? "send to" : "read from", strerror(e));
	}
}

/* A failed read or write of the TLS session as a sentence. */
static void tls_io_error(struct conn *c, int rc, bool sending)
{
	if (nbd_tls_is_timeout(rc))
		io_error(c, EAGAIN, sending);
	else
		set_err(c, "cannot %s the server over TLS: %s",
			sending ? "send to" : "read from",
			nbd_tls_strerror(c->tls, rc));
}

static int recv_full(struct conn *c, void *buf, size_t len)
{
	size_t done = 0;

	while (c->tls && done < len) {
		ssize_t n = nbd_tls_recv(c->tls, (char *)buf + done,
					 len - done);

		if (n > 0) {
			done += (size_t)n;
		} else if (n == 0) {
			c->eof = true;
			set_err(c, "the server closed the connection during the handshake");
			return -1;
		} else {
			tls_io_error(c, (int)n, false);
			return -1;
		}
	}
	while (done < len) {
		ssize_t n = recv(c->fd, (char *)buf + done, len - done, 0);

		if (n > 0) {
			done += (size_t)n;
		} else if (n == 0) {
			c->eof = true;
			set_err(c, "the server closed the connection during the handshake");
			return -1;
		} else if (errno != EINTR) {
			io_error(c, errno, false);
			return -1;
		}
	}
	return 0;
}

static int send_full(struct conn *c, const void *buf, size_t len)
{
	size_t done = 0;
	int rc;

	if (c->tls) {
		rc = nbd_tls_send(c->tls, buf, len);
		if (rc)
			tls_io_error(c, rc, true);
		return rc ? -1 : 0;
	}
	while (done < len) {
		ssize_t n = send(c->fd, (const char *)buf + done, len - done,
				 MSG_NOSIGNAL);

		if (n >= 0) {
			done += (size_t)n;
		} else if (errno != EINTR) {
			io_error(c, errno, true);
			return -1;
		}
	}
	return 0;
}

static void not_nbd(struct conn *c, const unsigned char *buf, size_t got)
{
	char hex[16 * 3], text[17];
	size_t i, off = 0, n = got < 16 ? got : 16;

	hex[0] = '\0';
	for (i = 0; i < n; i++)
		off += (size_t)snprintf(hex + off, sizeof(hex) - off, "%s%02x",
					i ? " " : "", buf[i]);
	printable(text, sizeof(text), buf, n);
	set_err(c, "this is not an NBD server (got bytes %s: \"%s\")",
		hex, text);
}

/*
 * The greeting: NBDMAGIC, IHAVEOPT, u16 handshake flags.  Checked as
 * bytes arrive, so that an HTTP or SSH banner is named at once rather than
 * after the timeout.
 */
static int read_greeting(struct conn *c, uint16_t *hflags)
{
	unsigned char buf[18], want[8];
	size_t got = 0;

	put_be64(want, NBDMAGIC);
	while (got < sizeof(buf)) {
		ssize_t n = recv(c->fd, buf + got, sizeof(buf) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			io_error(c, errno, false);
			return -1;
		}
		if (n == 0) {
			c->eof = true;
			set_err(c, "the server closed the connection during the handshake");
			return -1;
		}
		got += (size_t)n;
		if (memcmp(buf, want, got < 8 ? got : 8)) {
			not_nbd(c, buf, got);
			return -1;
		}
		if (got >= 16) {
			uint64_t magic = get_be64(buf + 8);

			if (magic == NBD_OLDSTYLE_MAGIC) {
				set_err(c, "the server speaks the oldstyle protocol, which is not supported");
				return -1;
			}
			if (magic != IHAVEOPT) {
				not_nbd(c, buf, got);
				return -1;
			}
		}
	}
	*hflags = get_be16(buf + 16);
	return 0;
}

static int handshake_start(struct conn *c)
{
	unsigned char cflags[4];
	uint16_t hflags;
	uint32_t flags;

	if (read_greeting(c, &hflags))
		return -1;
	if (!(hflags & NBD_FLAG_FIXED_NEWSTYLE)) {
		set_err(c, "the server does not support the fixed newstyle handshake, which nbdctl requires");
		return -1;
	}
	flags = NBD_FLAG_C_FIXED_NEWSTYLE;
	if (hflags & NBD_FLAG_NO_ZEROES) {
		flags |= NBD_FLAG_C_NO_ZEROES;
		c->no_zeroes = true;
	}
	put_be32(cflags, flags);
	if (send_full(c, cflags, sizeof(cflags)))
		return -1;
	c->in_options = true;
	return 0;
}

static int send_option(struct conn *c, uint32_t opt, const void *data,
		       uint32_t len)
{
	unsigned char hdr[16];

	put_be64(hdr, IHAVEOPT);
	put_be32(hdr + 8, opt);
	put_be32(hdr + 12, len);
	if (send_full(c, hdr, sizeof(hdr)))
		return -1;
	return len ? send_full(c, data, len) : 0;
}

static void reply_free(struct reply *r)
{
	free(r->data);
	r->data = NULL;
}

/* One option reply to @opt; the payload is bounded before allocation. */
static int read_reply(struct conn *c, uint32_t opt, struct reply *r)
{
	unsigned char hdr[20];
	uint64_t magic;

	memset(r, 0, sizeof(*r));
	/* After any failure here the stream is out of step: no ABORT. */
	c->in_options = false;
	if (recv_full(c, hdr, sizeof(hdr)))
		return -1;
	magic = get_be64(hdr);
	r->opt = get_be32(hdr + 8);
	r->type = get_be32(hdr + 12);
	r->len = get_be32(hdr + 16);
	if (magic != NBD_REP_MAGIC) {
		set_err(c, "the server sent an option reply with a bad magic number (0x%016llx)",
			(unsigned long long)magic);
		return -1;
	}
	if (r->opt != opt) {
		set_err(c, "the server answered %s with a reply to option %u",
			opt_name(opt), r->opt);
		return -1;
	}
	if (r->len > NBD_MAX_REPLY) {
		set_err(c, "the server sent an oversized reply (%u bytes)",
			r->len);
		return -1;
	}
	r->data = malloc((size_t)r->len + 1);
	if (!r->data) {
		set_err(c, "out of memory");
		return -1;
	}
	if (recv_full(c, r->data, r->len)) {
		reply_free(r);
		return -1;
	}
	r->data[r->len] = '\0';
	c->in_options = true;
	return 0;
}

/* An error reply as a sentence, with the server's message if any. */
static void reply_error(struct conn *c, const struct reply *r,
			const char *export_name)
{
	char name[SHOWN_MAX + 4], msg[SHOWN_MAX + 4];
	const char *opt = opt_name(r->opt);

	printable(name, sizeof(name), export_name ? export_name : "",
		  export_name ? strlen(export_name) : 0);
	switch (r->type) {
	case NBD_REP_ERR_UNSUP:
		if (r->opt == NBD_OPT_LIST)
			set_err(c, "the server does not support listing exports");
		else
			set_err(c, "the server does not support %s", opt);
		break;
	case NBD_REP_ERR_POLICY:
		if (r->opt == NBD_OPT_LIST)
			set_err(c, "the server does not allow listing exports");
		else
			set_err(c, "the server's policy does not allow access to the export \"%s\"",
				name);
		break;
	case NBD_REP_ERR_INVALID:
		set_err(c, "the server rejected %s as invalid", opt);
		break;
	case NBD_REP_ERR_PLATFORM:
		set_err(c, "the server does not support %s on its platform",
			opt);
		break;
	case NBD_REP_ERR_TLS_REQD:
		if (c->tls)
			set_err(c, "the server requires TLS for %s even over TLS",
				opt);
		else
			set_err(c, "the server requires TLS: use an nbds:// URI or --tls, with --tls-certificates, --cacert or --tls-psk");
		break;
	case NBD_REP_ERR_UNKNOWN:
		set_err(c, "the server has no export \"%s\"", name);
		break;
	case NBD_REP_ERR_SHUTDOWN:
		set_err(c, "the server is shutting down");
		break;
	case NBD_REP_ERR_BLOCK_SIZE_REQD:
		set_err(c, "the server requires the client to keep to its block sizes, which %s",
			c->block_size_refused ? "the loaded nbd module cannot (the stock module has no support for them; load this project's nbd.ko)" :
						"nbdctl did not ask for");
		break;
	case NBD_REP_ERR_TOO_BIG:
		set_err(c, "the server says the %s request or the export name is too big",
			opt);
		break;
	case NBD_REP_ERR_EXT_HEADER_REQD:
		set_err(c, "the server requires extended headers, which nbdctl does not support");
		break;
	default:
		set_err(c, "the server refused %s with unknown error %u (0x%08x)",
			opt, r->type & ~NBD_REP_FLAG_ERROR, r->type);
		break;
	}
	if (r->len) {
		printable(msg, sizeof(msg), r->data, r->len);
		add_err(c, " (the server says: %s)", msg);
	}
}

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static int check_block_size(struct conn *c, uint32_t min, uint32_t pref,
			    uint32_t max)
{
	const char *why = NULL;

	if (!is_pow2(min) || min > 65536)
		why = "the minimum must be a power of two no larger than 64 KiB";
	else if (!is_pow2(pref) || pref < (min > 512 ? min : 512))
		why = "the preferred size must be a power of two, at least the minimum and at least 512";
	else if (max < pref)
		why = "the maximum must be at least the preferred size";
	else if (max != 0xffffffff && max % min)
		why = "the maximum must be a multiple of the minimum";
	if (!why)
		return 0;
	set_err(c, "the server sent invalid block sizes (minimum %u, preferred %u, maximum %u): %s",
		min, pref, max, why);
	return -1;
}

/* A string NBD_INFO item: no NUL inside, at most NBD_MAX_STRING bytes. */
static int info_string(struct conn *c, const struct reply *r,
		       const char *what, char **out)
{
	size_t len = r->len - 2;

	if (len > NBD_MAX_STRING) {
		set_err(c, "the server sent an export %s of %zu bytes (the limit is %d)",
			what, len, NBD_MAX_STRING);
		return -1;
	}
	if (memchr(r->data + 2, '\0', len)) {
		set_err(c, "the server sent an export %s containing a NUL byte",
			what);
		return -1;
	}
	free(*out);
	*out = strndup((const char *)r->data + 2, len);
	if (!*out) {
		set_err(c, "out of memory");
		return -1;
	}
	return 0;
}

static int parse_info(struct conn *c, const struct reply *r,
		      struct nbd_export *ex, bool *have_export)
{
	uint16_t type;

	if (r->len < 2) {
		set_err(c, "the server sent an NBD_REP_INFO reply too short to hold an info type (length %u)",
			r->len);
		return -1;
	}
	type = get_be16(r->data);
	switch (type) {
	case NBD_INFO_EXPORT:
		if (r->len != 12) {
			set_err(c, "the server sent NBD_INFO_EXPORT with a length of %u bytes instead of 12",
				r->len);
			return -1;
		}
		ex->size = get_be64(r->data + 2);
		ex->flags = get_be16(r->data + 10);
		*have_export = true;
		return 0;
	case NBD_INFO_NAME:
		return info_string(c, r, "name", &ex->name);
	case NBD_INFO_DESCRIPTION:
		return info_string(c, r, "description", &ex->description);
	case NBD_INFO_BLOCK_SIZE:
		if (r->len != 14) {
			set_err(c, "the server sent NBD_INFO_BLOCK_SIZE with a length of %u bytes instead of 14",
				r->len);
			return -1;
		}
		ex->min_block = get_be32(r->data + 2);
		ex->pref_block = get_be32(r->data + 6);
		ex->max_block = get_be32(r->data + 10);
		if (check_block_size(c, ex->min_block, ex->pref_block,
				     ex->max_block))
			return -1;
		ex->have_block_size = true;
		return 0;
	default:
		/* Later protocol versions may add types: skip them. */
		return 0;
	}
}

/*
 * NBD_OPT_GO or NBD_OPT_INFO.  Returns 0 on NBD_REP_ACK, 1 when the
 * server does not know the option (fall back to EXPORT_NAME), -1 on
 * failure.
 */
static int opt_go_info(struct conn *c, uint32_t opt, const char *name,
		       struct nbd_export *ex)
{
	static const uint16_t want[] = {
		NBD_INFO_EXPORT, NBD_INFO_NAME, NBD_INFO_DESCRIPTION,
		NBD_INFO_BLOCK_SIZE,
	};
	unsigned char buf[4 + NBD_MAX_STRING + 2 + sizeof(want)];
	size_t nlen = strlen(name), i, off, nwant = ARRAY_SIZE(want);
	bool have_export = false;
	struct reply r;

	/*
	 * Asking for the block sizes in GO is a promise to keep to them:
	 * only when the kernel will.  INFO promises nothing.
	 */
	if (opt == NBD_OPT_GO && c->block_size_refused)
		nwant--;
	put_be32(buf, (uint32_t)nlen);
	memcpy(buf + 4, name, nlen);
	off = 4 + nlen;
	put_be16(buf + off, (uint16_t)nwant);
	off += 2;
	for (i = 0; i < nwant; i++, off += 2)
		put_be16(buf + off, want[i]);
	if (opt == NBD_OPT_GO)
		ex->block_size_requested = nwant == ARRAY_SIZE(want);
	if (send_option(c, opt, buf, (uint32_t)off))
		return -1;

	for (;;) {
		if (read_reply(c, opt, &r))
			return -1;
		if (r.type == NBD_REP_ACK) {
			reply_free(&r);
			if (!have_export) {
				set_err(c, "the server accepted %s without sending the export size (NBD_INFO_EXPORT)",
					opt_name(opt));
				return -1;
			}
			return 0;
		}
		if (r.type == NBD_REP_INFO) {
			int ret = parse_info(c, &r, ex, &have_export);

			reply_free(&r);
			if (ret)
				return -1;
			continue;
		}
		if (r.type == NBD_REP_ERR_UNSUP) {
			reply_free(&r);
			return 1;
		}
		if (r.type & NBD_REP_FLAG_ERROR)
			reply_error(c, &r, name);
		else
			set_err(c, "the server sent an unexpected reply (type %u) to %s",
				r.type, opt_name(opt));
		reply_free(&r);
		return -1;
	}
}

/* The old way in: no error replies, the server just hangs up. */
static int opt_export_name(struct conn *c, const char *name,
			   struct nbd_export *ex)
{
	unsigned char buf[8 + 2 + NBD_ZERO_PAD];
	size_t want = c->no_zeroes ? 10 : sizeof(buf);
	char shown[SHOWN_MAX + 4];

	if (send_option(c, NBD_OPT_EXPORT_NAME, name, (uint32_t)strlen(name)))
		return -1;
	c->in_options = false;
	c->transmitting = true;
	if (recv_full(c, buf, want)) {
		if (c->eof) {
			printable(shown, sizeof(shown), name, strlen(name));
			set_err(c, "the server closed the connection after NBD_OPT_EXPORT_NAME; it may have no export \"%s\"",
				shown);
		}
		return -1;
	}
	ex->size = get_be64(buf);
	ex->flags = get_be16(buf + 8);
	ex->used_go = false;
	return 0;
}

/*
 * Best effort: end option haggling politely and wait a little for the
 * ACK (the server may also just hang up, which is fine).
 */
static void send_abort(struct conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	unsigned char buf[20];
	char *err = c->err;

	if (!c->in_options)
		return;
	c->in_options = false;
	c->err = NULL;		/* keep the message that matters */
	if (!send_option(c, NBD_OPT_ABORT, NULL, 0) &&
	    poll(&pfd, 1, ABORT_WAIT_MS) > 0)
		(void)recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
	c->err = err;
}

/* A request to leave the transmission phase. */
static void send_disc(struct conn *c)
{
	unsigned char req[28];
	char *err = c->err;

	memset(req, 0, sizeof(req));
	put_be32(req, NBD_REQUEST_MAGIC);
	put_be16(req + 6, NBD_CMD_DISC);
	c->err = NULL;
	send_full(c, req, sizeof(req));
	c->err = err;
}

static int set_timeouts(int fd, unsigned int secs)
{
	struct timeval tv = { .tv_sec = secs };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -1;
	return 0;
}

static int check_name(struct conn *c, const char *name)
{
	size_t len = strlen(name);

	if (len > NBD_MAX_STRING) {
		set_err(c, "the export name is too long (%zu bytes; the limit is %d)",
			len, NBD_MAX_STRING);
		return -1;
	}
	return 0;
}

/*
 * nbd-server 3.24 answers NBD_OPT_INFO with a size of 0: it learns the
 * size only when NBD_OPT_GO opens the export.  So a zero size from INFO
 * is confirmed with GO on the same connection (the caller then leaves
 * with NBD_CMD_DISC).  When GO fails the INFO answer stands.
 */
static void confirm_size(struct conn *c, const char *name,
			 struct nbd_export *ex)
{
	struct nbd_export go = { 0 };
	char *err = c->err;

	c->err = NULL;		/* the INFO answer is what counts */
	if (opt_go_info(c, NBD_OPT_GO, name, &go) == 0) {
		c->in_options = false;
		c->transmitting = true;
		ex->size = go.size;
		ex->flags = go.flags;
	}
	c->err = err;
	nbd_export_free(&go);
}

/*
 * NBD_OPT_STRUCTURED_REPLY: 0 with ex->structured set when the server
 * agreed, 0 with it clear when it refused (any error reply: the server
 * then sends simple replies), -1 on failure.
 */
static int opt_structured_reply(struct conn *c, struct nbd_export *ex)
{
	struct reply r;

	if (send_option(c, NBD_OPT_STRUCTURED_REPLY, NULL, 0) ||
	    read_reply(c, NBD_OPT_STRUCTURED_REPLY, &r))
		return -1;
	if (r.type == NBD_REP_ACK && !r.len) {
		ex->structured = true;
	} else if (r.type == NBD_REP_ACK) {
		set_err(c, "the server acknowledged NBD_OPT_STRUCTURED_REPLY with %u bytes of data",
			r.len);
		reply_free(&r);
		return -1;
	} else if (!(r.type & NBD_REP_FLAG_ERROR)) {
		set_err(c, "the server sent an unexpected reply (type %u) to NBD_OPT_STRUCTURED_REPLY",
			r.type);
		reply_free(&r);
		return -1;
	}
	reply_free(&r);
	return 0;
}

/*
 * NBD_OPT_STARTTLS, then the TLS handshake: from then on every option
 * goes through c->tls.  The spec wipes what was negotiated before, and
 * nothing was.
 */
static int opt_starttls(struct conn *c, const struct nbd_tls_opts *tls)
{
	struct reply r;

	if (send_option(c, NBD_OPT_STARTTLS, NULL, 0) ||
	    read_reply(c, NBD_OPT_STARTTLS, &r))
		return -1;
	if (r.type == NBD_REP_ERR_UNSUP || r.type == NBD_REP_ERR_POLICY) {
		set_err(c, "the server does not offer TLS (it refused NBD_OPT_STARTTLS%s): connect without --tls or nbds://",
			r.type == NBD_REP_ERR_POLICY ? " by policy" : "");
		if (r.len) {
			char msg[SHOWN_MAX + 4];

			printable(msg, sizeof(msg), r.data, r.len);
			add_err(c, " (the server says: %s)", msg);
		}
		reply_free(&r);
		return -1;
	}
	if (r.type & NBD_REP_FLAG_ERROR) {
		reply_error(c, &r, NULL);
		reply_free(&r);
		return -1;
	}
	if (r.type != NBD_REP_ACK || r.len) {
		set_err(c, "the server sent an unexpected reply (type %u, %u bytes) to NBD_OPT_STARTTLS",
			r.type, r.len);
		reply_free(&r);
		return -1;
	}
	reply_free(&r);
	c->tls = nbd_tls_start(c->fd, tls, c->err, c->errlen);
	if (!c->tls) {
		c->in_options = false;	/* no ABORT in a broken session */
		return -1;
	}
	return 0;
}

/* GO or INFO with the EXPORT_NAME fallback; the common part. */
static int negotiate(struct conn *c, uint32_t opt, const char *name,
		     const struct nbd_hs_opts *o, struct nbd_export *ex)
{
	int ret;

	memset(ex, 0, sizeof(*ex));
	if (!name)
		name = "";
	c->block_size_refused = !o->block_size;
	if (check_name(c, name) || handshake_start(c))
		return -1;
	if (o->tls && o->tls->enabled) {
		if (opt_starttls(c, o->tls))
			return -1;
		nbd_tls_describe(c->tls, ex->tls, sizeof(ex->tls));
	}
	if (o->structured_replies && opt_structured_reply(c, ex))
		return -1;
	/* nbd-client's -g: for servers that mishandle GO */
	ret = o->no_go ? 1 : opt_go_info(c, opt, name, ex);
	if (ret == 0) {
		ex->used_go = true;
		if (opt == NBD_OPT_GO) {
			c->in_options = false;
			c->transmitting = true;
		} else if (!ex->size) {
			confirm_size(c, name, ex);
		}
		return 0;
	}
	if (ret > 0) {
		/* what came before GO still holds with EXPORT_NAME */
		bool structured = ex->structured;

		nbd_export_free(ex);
		ex->structured = structured;
		if (c->tls)
			nbd_tls_describe(c->tls, ex->tls, sizeof(ex->tls));
		return opt_export_name(c, name, ex);
	}
	return -1;
}

/* One address: a connected socket, or -1 with the errno in @e. */
/* How long a look-up during a reconnect may take. */
#define LOOKUP_TIMEOUT_S	10

/* lookup - getaddrinfo() into @out.  Returns 0, or -1 with the reason. */
static int lookup(const char *host, const char *port, struct nbd_addrs *out,
		  struct conn *c)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	};
	struct addrinfo *res, *ai;
	int rc;

	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		set_err(c, "cannot resolve the host name \"%s\": %s", host,
			rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	out->n = 0;
	for (ai = res; ai && out->n < NBD_ADDRS_MAX; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(out->a[0].sa))
			continue;
		memcpy(&out->a[out->n].sa, ai->ai_addr, ai->ai_addrlen);
		out->a[out->n].len = ai->ai_addrlen;
		out->a[out->n].family = ai->ai_family;
		out->a[out->n].protocol = ai->ai_protocol;
		out->n++;
	}
	freeaddrinfo(res);
	if (!out->n) {
		set_err(c, "the host name \"%s\" has no usable address", host);
		return -1;
	}
	return 0;
}

/*
 * lookup_bounded - lookup() in a child process, LOOKUP_TIMEOUT_S at most.
 * The child writes the addresses, or its error text, to a pipe.
 */
static int lookup_bounded(const char *host, const char *port,
			  struct nbd_addrs *out, struct conn *c)
{
	struct pollfd pfd = { .events = POLLIN };
	char msg[512], *p = (char *)out;
	size_t want = sizeof(*out), got = 0;
	int pfds[2], status;
	unsigned int i;
	ssize_t n;
	pid_t pid;

	/* children of earlier look-ups that were given up on */
	while (waitpid(-1, &status, WNOHANG) > 0)
		;
	if (pipe2(pfds, O_CLOEXEC)) {
		set_err(c, "cannot look up \"%s\": pipe: %s", host,
			strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		set_err(c, "cannot look up \"%s\": fork: %s", host,
			strerror(errno));
		close(pfds[0]);
		close(pfds[1]);
		return -1;
	}
	if (!pid) {
		struct conn cc = { .fd = -1, .err = msg, .errlen = sizeof(msg) };

		close(pfds[0]);
		memset(out, 0, sizeof(*out));
		if (lookup(host, port, out, &cc)) {
			/* n == 0 and the message after it */
			out->n = 0;
			snprintf((char *)out->a, sizeof(out->a), "%s", msg);
		}
		_exit(write(pfds[1], out, sizeof(*out)) == sizeof(*out) ? 0 : 1);
	}
	close(pfds[1]);
	pfd.fd = pfds[0];
	while (got < want) {
		n = poll(&pfd, 1, LOOKUP_TIMEOUT_S * 1000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		n = read(pfds[0], p + got, want - got);
		if (n <= 0)
			break;
		got += n;
	}
	close(pfds[0]);
	if (got < want) {
		/* it may hang where it is; it is reaped at a later look-up */
		kill(pid, SIGKILL);
		waitpid(pid, &status, WNOHANG);
		set_err(c, "looking up \"%s\" took over %d s; given up", host,
			LOOKUP_TIMEOUT_S);
		return -1;
	}
	waitpid(pid, &status, 0);
	if (!out->n) {
		set_err(c, "%.*s", (int)sizeof(out->a) - 1, (char *)out->a);
		return -1;
	}
	/* the child is this program, but its reply is checked all the same */
	if (out->n > NBD_ADDRS_MAX)
		goto bad;
	for (i = 0; i < out->n; i++)
		if (!out->a[i].len || out->a[i].len > sizeof(out->a[i].sa))
			goto bad;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	set_err(c, "cannot look up \"%s\": the look-up process replied with nonsense",
		host);
	return -1;
}

static int dial_one(int family, int protocol, const struct sockaddr *sa,
		    socklen_t len, unsigned int timeout_s, int *e)
{
	int fd;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, protocol);
	if (fd < 0) {
		*e = errno;
		return -1;
	}
	if (set_timeouts(fd, timeout_s) || connect(fd, sa, len)) {
		*e = errno == EINPROGRESS ? ETIMEDOUT : errno;
		close(fd);
		return -1;
	}
	return fd;
}

/**
 * nbd_dial_saved() - connect to the server named by @u.
 * @u: the target.
 * @saved: the addresses of an earlier look-up, tried first; a look-up is
 *	made (and its addresses saved here) only when none answers.  May
 *	be NULL: always look up.
 * @timeout_s: send and receive timeout for the handshake (0: none).
 * @err: a sentence on failure.
 * @errlen: size of @err.
 *
 * Return: a connected stream socket (close-on-exec), or -1.
 */
int nbd_dial_saved(const struct nbd_uri *u, struct nbd_addrs *saved,
		   unsigned int timeout_s, char *err, size_t errlen)
{
	struct conn c = { .fd = -1, .err = err, .errlen = errlen };
	struct nbd_addrs fresh = { };
	const char *lb, *rb;
	int fd, e = 0, one = 1, rc;
	unsigned int i;

	if (u->socket) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		size_t len = strlen(u->socket);

		if (!len || len >= sizeof(sun.sun_path)) {
			set_err(&c, "the socket path \"%.64s%s\" is %s (the limit is %zu bytes)",
				u->socket, len > 64 ? "..." : "",
				len ? "too long" : "empty",
				sizeof(sun.sun_path) - 1);
			return -1;
		}
		memcpy(sun.sun_path, u->socket, len + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			set_err(&c, "cannot create a socket: %s",
				strerror(errno));
			return -1;
		}
		if (set_timeouts(fd, timeout_s)) {
			set_err(&c, "cannot set the socket timeouts: %s",
				strerror(errno));
			close(fd);
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
			e = errno == EINPROGRESS ? ETIMEDOUT : errno;
			set_err(&c, "cannot connect to %s: %s", u->socket,
				strerror(e));
			close(fd);
			return -1;
		}
		return fd;
	}

	if (!u->host || !*u->host) {
		set_err(&c, "no server to connect to");
		return -1;
	}
	/*
	 * The addresses found at connect are tried first: a reconnect must
	 * not depend on /etc/hosts, DNS or an NSS module that may live on
	 * the very device that waits for it.
	 */
	fd = -1;
	for (i = 0; saved && i < saved->n && fd < 0; i++)
		fd = dial_one(saved->a[i].family, saved->a[i].protocol,
			      (struct sockaddr *)&saved->a[i].sa,
			      saved->a[i].len, timeout_s, &e);
	if (fd >= 0)
		goto connected;
	/*
	 * A look-up during a reconnect runs in a child process that may
	 * take LOOKUP_TIMEOUT_S at most: if it hangs on a file system that
	 * waits for this very reconnect, the saved addresses are tried
	 * again later instead.
	 */
	if (saved && saved->n)
		rc = lookup_bounded(u->host, u->port ? u->port : NBD_DEFAULT_PORT,
				    &fresh, &c);
	else
		rc = lookup(u->host, u->port ? u->port : NBD_DEFAULT_PORT,
			    &fresh, &c);
	if (saved)
		saved->lookups++;
	if (rc) {
		if (saved && saved->n)
			add_err(&c, " (and no address found earlier answers)");
		return -1;
	}
	for (i = 0; i < fresh.n && fd < 0; i++)
		fd = dial_one(fresh.a[i].family, fresh.a[i].protocol,
			      (struct sockaddr *)&fresh.a[i].sa, fresh.a[i].len,
			      timeout_s, &e);
	/*
	 * The new addresses replace the saved ones only once one of them
	 * answers: a server that is down for a while keeps its old ones.
	 */
	if (saved && (fd >= 0 || !saved->n)) {
		fresh.lookups = saved->lookups;
		*saved = fresh;
	}
	if (fd < 0) {
		lb = strchr(u->host, ':') ? "[" : "";
		rb = *lb ? "]" : "";
		set_err(&c, "cannot connect to %s%s%s:%s: %s", lb, u->host, rb,
			u->port ? u->port : NBD_DEFAULT_PORT,
			strerror(e ? e : EHOSTUNREACH));
		return -1;
	}
connected:
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))) {
		set_err(&c, "cannot set TCP_NODELAY: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/**
 * nbd_dial() - nbd_dial_saved() with a fresh look-up.
 * @u: the target.
 * @timeout_s: send and receive timeout for the handshake (0: none).
 * @err: a sentence on failure.
 * @errlen: size of @err.
 *
 * Return: a connected stream socket (close-on-exec), or -1.
 */
int nbd_dial(const struct nbd_uri *u, unsigned int timeout_s,
	     char *err, size_t errlen)
{
	return nbd_dial_saved(u, NULL, timeout_s, err, errlen);
}

/**
 * nbd_negotiate() - handshake up to the transmission phase.
 * @fd: from nbd_dial().
 * @export_name: the export ("" or NULL: the default one).
 * @o: what to ask for beyond the export.
 * @ex: filled in; free with nbd_export_free() on success.
 * @err: a sentence on failure.
 * @errlen: size of @err.
 *
 * Return: 0 with the socket ready for the kernel (timeouts cleared), or -1.
 */
int nbd_negotiate(int fd, const char *export_name,
		  const struct nbd_hs_opts *o, struct nbd_export *ex,
		  char *err, size_t errlen)
{
	struct conn c = { .fd = fd, .err = err, .errlen = errlen };

	if (negotiate(&c, NBD_OPT_GO, export_name, o, ex)) {
		send_abort(&c);
		goto fail;
	}
	if (c.tls && o->for_kernel &&
	    nbd_tls_to_kernel(c.tls, fd, err, errlen))
		goto fail;
	nbd_tls_free(c.tls);
	c.tls = NULL;
	if (set_timeouts(fd, 0)) {
		set_err(&c, "cannot clear the socket timeouts: %s",
			strerror(errno));
		nbd_export_free(ex);
		return -1;
	}
	return 0;
fail:
	nbd_tls_free(c.tls);
	nbd_export_free(ex);
	return -1;
}

/**
 * nbd_query() - what the server says about an export; nothing attached.
 * @fd: from nbd_dial(); the caller closes it.
 * @export_name: the export ("" or NULL: the default one).
 * @tls: TLS to start first, or NULL.
 * @ex: filled in; free with nbd_export_free() on success.
 * @err: a sentence on failure.
 * @errlen: size of @err.
 *
 * Return: 0, or -1.
 */
int nbd_query(int fd, const char *export_name,
	      const struct nbd_tls_opts *tls, struct nbd_export *ex,
	      char *err, size_t errlen)
{
	const struct nbd_hs_opts all = {
		.tls = tls,
		.structured_replies = true,
		.block_size = true,
	};
	struct conn c = { .fd = fd, .err = err, .errlen = errlen };

	if (negotiate(&c, NBD_OPT_INFO, export_name, &all, ex)) {
		send_abort(&c);
		nbd_tls_free(c.tls);
		nbd_export_free(ex);
		return -1;
	}
	if (c.transmitting)
		send_disc(&c);
	else
		send_abort(&c);
	nbd_tls_free(c.tls);
	return 0;
}

/**
 * nbd_list() - the server's exports.
 * @fd: from nbd_dial(); the caller closes it.
 * @tls: TLS to start first, or NULL.
 * @cb: called with each export's name and description ("" if none);
 *	a non-zero return stops the walk.
 * @arg: passed to @cb.
 * @err: a sentence on failure.
 * @errlen: size of @err.
 *
 * Return: 0, or -1.
 */
int nbd_list(int fd, const struct nbd_tls_opts *tls,
	     int (*cb)(void *arg, const char *name, const char *desc),
	     void *arg, char *err, size_t errlen)
{
	struct conn c = { .fd = fd, .err = err, .errlen = errlen };
	struct reply r;
	int ret = -1;

	if (handshake_start(&c))
		goto out;
	if (tls && tls->enabled && opt_starttls(&c, tls))
		goto out;
	if (send_option(&c, NBD_OPT_LIST, NULL, 0))
		goto out;
	for (;;) {
		uint32_t nlen;
		char *name;

		if (read_reply(&c, NBD_OPT_LIST, &r))
			goto out;
		if (r.type == NBD_REP_ACK) {
			reply_free(&r);
			ret = 0;
			goto out;
		}
		if (r.type & NBD_REP_FLAG_ERROR) {
			reply_error(&c, &r, NULL);
			reply_free(&r);
			goto out;
		}
		if (r.type != NBD_REP_SERVER) {
			set_err(&c, "the server sent an unexpected reply (type %u) to NBD_OPT_LIST",
				r.type);
			reply_free(&r);
			goto out;
		}
		if (r.len < 4) {
			set_err(&c, "the server sent an NBD_REP_SERVER reply too short to hold a name length (length %u)",
				r.len);
			reply_free(&r);
			goto out;
		}
		nlen = get_be32(r.data);
		if (nlen > r.len - 4) {
			set_err(&c, "the server sent an export name length of %u bytes in a reply of %u bytes",
				nlen, r.len);
			reply_free(&r);
			goto out;
		}
		if (nlen > NBD_MAX_STRING ||
		    memchr(r.data + 4, '\0', r.len - 4)) {
			set_err(&c, "the server sent an export name or description that is too long or contains a NUL byte");
			reply_free(&r);
			goto out;
		}
		name = strndup((const char *)r.data + 4, nlen);
		if (!name) {
			set_err(&c, "out of memory");
			reply_free(&r);
			goto out;
		}
		/* The description runs to the end of the reply (NUL there). */
		ret = cb(arg, name, (const char *)r.data + 4 + nlen);
		free(name);
		reply_free(&r);
		if (ret) {
			ret = 0;
			goto out;
		}
		ret = -1;
	}
out:
	send_abort(&c);
	nbd_tls_free(c.tls);
	return ret;
}

/**
 * nbd_export_free() - free what nbd_negotiate() or nbd_query() filled in.
 * @ex: may be NULL.
 */
void nbd_export_free(struct nbd_export *ex)
{
	if (!ex)
		return;
	free(ex->name);
	free(ex->description);
	memset(ex, 0, sizeof(*ex));
}

static const char *const flag_names[16] = {
	[0] = "HAS_FLAGS",
	[1] = "READ_ONLY",
	[2] = "SEND_FLUSH",
	[3] = "SEND_FUA",
	[4] = "ROTATIONAL",
	[5] = "SEND_TRIM",
	[6] = "SEND_WRITE_ZEROES",
	[7] = "SEND_DF",
	[8] = "CAN_MULTI_CONN",
	[9] = "SEND_RESIZE",
	[10] = "SEND_CACHE",
	[11] = "SEND_FAST_ZERO",
	[12] = "BLOCK_STATUS_PAYLOAD",
};

/* The uapi header and the table above must agree bit for bit. */
_Static_assert(NBD_FLAG_CAN_MULTI_CONN == 1 << 8, "CAN_MULTI_CONN is bit 8");
_Static_assert(NBD_FLAG_SEND_CACHE == 1 << 10, "SEND_CACHE is bit 10");
_Static_assert(NBD_FLAG_BLOCK_STAT_PAYLOAD == 1 << 12,
	       "BLOCK_STATUS_PAYLOAD is bit 12");

/**
 * nbd_flags_text() - transmission flags by name, space separated.
 * @flags: NBD_FLAG_* bits.
 * @buf: output, always NUL-terminated when @len > 0.
 * @len: size of @buf; names that do not fit are left out whole.
 */
void nbd_flags_text(uint16_t flags, char *buf, size_t len)
{
	size_t used = 0;
	unsigned int bit;

	if (!buf || !len)
		return;
	buf[0] = '\0';
	for (bit = 0; bit < 16; bit++) {
		char unknown[8];
		const char *name = flag_names[bit];
		size_t need;

		if (!(flags & (1U << bit)))
			continue;
		if (!name) {
			snprintf(unknown, sizeof(unknown), "bit%u", bit);
			name = unknown;
		}
		need = strlen(name) + (used ? 1 : 0);
		if (used + need >= len)
			break;
		snprintf(buf + used, len - used, "%s%s", used ? " " : "",
			 name);
		used += need;
	}
}
