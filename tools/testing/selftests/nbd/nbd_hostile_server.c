// SPDX-License-Identifier: GPL-2.0
/*
 * nbd_hostile_server - a small NBD server that misbehaves on purpose.
 *
 * It listens on a UNIX socket, performs a correct fixed-newstyle
 * handshake and serves a memory-backed export whose initial content is
 * a pattern (every 8-byte word holds its own byte offset, big-endian),
 * so a reader can check what it got (--zero makes ranges of it zero, which
 * structured replies send as holes).  One read request, selected with
 * --trigger or --trigger-offset, is answered wrongly according to
 * --mode; a comma-separated list of modes answers that many trigger
 * reads, one mode each.  Everything received from the client is
 * validated: a broken client makes the server close the connection,
 * never crash.
 *
 * NBD_OPT_STRUCTURED_REPLY is accepted (unless --sr-refuse): every read is
 * then answered with chunks, one per --sr-chunk bytes of data and one
 * per run of zero blocks (OFFSET_HOLE), in the order --sr-order asks,
 * the last one or a NONE chunk carrying NBD_REPLY_FLAG_DONE (alternately).
 * Other commands get a NONE chunk or a simple reply, alternately.  The
 * sr-* modes break the rules of structured replies, or follow the ones a
 * client is likely to get wrong (errors, holes, order).
 *
 * Connections are served one after the other; the export content is
 * kept across connections.  Messages go to stderr (or --log), one line
 * per event, so a test can tell what happened on the wire.
 *
 * Build: cc -O2 -Wall -Wextra -o nbd_hostile_server nbd_hostile_server.c
 */
#if defined(__GNUC__) && !defined(__clang__)
/*
 * The test builds this in the VM, under TCG, for every run: at -O1 GCC
 * takes half the time of -O2, and nothing here needs to be fast.
 */
#pragma GCC optimize("O1")
#endif
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>
#include <endian.h>

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
#define OPT_INFO		6
#define OPT_GO			7
#define OPT_STRUCTURED_REPLY	8

#define REP_ACK			1
#define REP_SERVER		2
#define REP_INFO		3
#define REP_ERR_UNSUP		(0x80000000U | 1)
#define REP_ERR_INVALID		(0x80000000U | 3)
#define REP_ERR_TOO_BIG		(0x80000000U | 9)

#define INFO_EXPORT		0

/* Transmission flags */
#define TFLAG_HAS_FLAGS		(1 << 0)
#define TFLAG_SEND_FLUSH	(1 << 2)

/* Transmission */
#define REQUEST_MAGIC		0x25609513U
#define SIMPLE_REPLY_MAGIC	0x67446698U
#define WRONG_REPLY_MAGIC	0x67446699U
#define CMD_READ		0
#define CMD_WRITE		1
#define CMD_DISC		2
#define CMD_FLUSH		3
#define CMD_TRIM		4
#define CMD_WRITE_ZEROES	6

/* Structured replies */
#define SR_MAGIC		0x668e33efU
#define SR_HDR_SIZE		20
#define SR_FLAG_DONE		(1 << 0)
#define SR_TYPE_NONE		0
#define SR_TYPE_OFFSET_DATA	1
#define SR_TYPE_OFFSET_HOLE	2
#define SR_TYPE_BLOCK_STATUS	5
#define SR_TYPE_ERROR		0x8001
#define SR_TYPE_ERROR_OFFSET	0x8002
#define SR_TYPE_UNKNOWN		0x0042		/* bit 15 clear: fatal */
#define SR_TYPE_UNKNOWN_ERROR	0x8007		/* bit 15 set: an error */
#define SR_MAX_MSG		4096

#define ERR_EPERM		1
#define ERR_EIO			5
#define ERR_EINVAL		22
#define ERR_ENOSPC		28
#define ERR_BOGUS		0x7fff1234U	/* not an NBD error value */

#define MAX_OPTION_LEN		4096		/* accepted option payload */
#define MAX_OPTION_DRAIN	(1U << 20)	/* bigger ones: hang up */
#define MAX_OPTIONS		64		/* per connection */
#define MAX_PAYLOAD		(32U << 20)	/* per request */
#define MAX_EXPORT_SIZE		(1ULL << 30)
#define HANDSHAKE_TIMEOUT	30		/* seconds per receive */
#define MAX_MODES		64		/* in a --mode list */
#define MAX_ZERO		8		/* --zero ranges */

enum mode {
	MODE_GOOD,
	MODE_WRONG_MAGIC,
	MODE_UNKNOWN_COOKIE,
	MODE_DOUBLE_REPLY,
	MODE_SHORT_READ,
	MODE_CLOSE_MID_REPLY,
	MODE_WRONG_ERROR,
	/* structured replies: protocol violations */
	MODE_SR_UNNEGOTIATED,
	MODE_SR_SIMPLE_DATA,
	MODE_SR_SIMPLE_AFTER_CHUNK,
	MODE_SR_OFFSET_OUTSIDE,
	MODE_SR_OVERLAP,
	MODE_SR_REPEAT,
	MODE_SR_SHORT_DATA,
	MODE_SR_HOLE_LEN,
	MODE_SR_HOLE_ZERO,
	MODE_SR_DONE_EARLY,
	MODE_SR_CHUNK_AFTER_DONE,
	MODE_SR_NONE_LEN,
	MODE_SR_NONE_NO_DONE,
	MODE_SR_TOO_LONG,
	MODE_SR_MSG_TOO_LONG,
	MODE_SR_MSG_BEYOND_CHUNK,
	MODE_SR_ERROR_PADDED,
	MODE_SR_ERROR_ZERO,
	MODE_SR_ERROR_OFFSET_OUTSIDE,
	MODE_SR_UNKNOWN_TYPE,
	MODE_SR_BLOCK_STATUS,
	/* structured replies: legal, but easy to get wrong */
	MODE_SR_ERROR,
	MODE_SR_ERROR_OFFSET,
	MODE_SR_UNKNOWN_ERROR_TYPE,
	MODE_SR_SIMPLE_ERROR,
	MODE_SR_REVERSE,
	MODE_SR_INTERLEAVE,
	MODE_COUNT
};

static const char *const mode_names[] = {
	[MODE_GOOD]		= "good",
	[MODE_WRONG_MAGIC]	= "wrong-magic",
	[MODE_UNKNOWN_COOKIE]	= "unknown-cookie",
	[MODE_DOUBLE_REPLY]	= "double-reply",
	[MODE_SHORT_READ]	= "short-read",
	[MODE_CLOSE_MID_REPLY]	= "close-mid-reply",
	[MODE_WRONG_ERROR]	= "wrong-error",
	[MODE_SR_UNNEGOTIATED]	= "sr-unnegotiated",
	[MODE_SR_SIMPLE_DATA]	= "sr-simple-data",
	[MODE_SR_SIMPLE_AFTER_CHUNK] = "sr-simple-after-chunk",
	[MODE_SR_OFFSET_OUTSIDE] = "sr-offset-outside",
	[MODE_SR_OVERLAP]	= "sr-overlap",
	[MODE_SR_REPEAT]	= "sr-repeat",
	[MODE_SR_SHORT_DATA]	= "sr-short-data",
	[MODE_SR_HOLE_LEN]	= "sr-hole-len",
	[MODE_SR_HOLE_ZERO]	= "sr-hole-zero",
	[MODE_SR_DONE_EARLY]	= "sr-done-early",
	[MODE_SR_CHUNK_AFTER_DONE] = "sr-chunk-after-done",
	[MODE_SR_NONE_LEN]	= "sr-none-len",
	[MODE_SR_NONE_NO_DONE]	= "sr-none-no-done",
	[MODE_SR_TOO_LONG]	= "sr-too-long",
	[MODE_SR_MSG_TOO_LONG]	= "sr-msg-too-long",
	[MODE_SR_MSG_BEYOND_CHUNK] = "sr-msg-beyond-chunk",
	[MODE_SR_ERROR_PADDED]	= "sr-error-padded",
	[MODE_SR_ERROR_ZERO]	= "sr-error-zero",
	[MODE_SR_ERROR_OFFSET_OUTSIDE] = "sr-error-offset-outside",
	[MODE_SR_UNKNOWN_TYPE]	= "sr-unknown-type",
	[MODE_SR_BLOCK_STATUS]	= "sr-block-status",
	[MODE_SR_ERROR]		= "sr-error",
	[MODE_SR_ERROR_OFFSET]	= "sr-error-offset",
	[MODE_SR_UNKNOWN_ERROR_TYPE] = "sr-unknown-error-type",
	[MODE_SR_SIMPLE_ERROR]	= "sr-simple-error",
	[MODE_SR_REVERSE]	= "sr-reverse",
	[MODE_SR_INTERLEAVE]	= "sr-interleave",
};

/* The order of a read's chunks (--sr-order, and two modes). */
enum sr_order {
	ORDER_INORDER,
	ORDER_REVERSE,
	ORDER_INTERLEAVE,	/* the even-numbered chunks, then the odd */
};

static const char *const order_names[] = {
	[ORDER_INORDER]		= "inorder",
	[ORDER_REVERSE]		= "reverse",
	[ORDER_INTERLEAVE]	= "interleave",
};

struct server {
	/* configuration */
	enum mode modes[MAX_MODES];	/* one per trigger read, in order */
	unsigned int nmodes;
	uint64_t size;
	uint64_t trigger_nth;		/* 0: not by count */
	uint64_t trigger_offset;
	bool have_trigger_offset;
	bool once;
	bool sr_refuse;			/* refuse NBD_OPT_STRUCTURED_REPLY */
	enum sr_order sr_order;
	uint32_t sr_chunk;		/* data bytes per OFFSET_DATA chunk */

	/* state */
	uint8_t *data;
	uint64_t reads;			/* read requests seen, all connections */
	unsigned int fired;		/* modes used up */
	unsigned int conn_id;

	/* per connection */
	bool structured;		/* NBD_OPT_STRUCTURED_REPLY agreed */
	uint64_t replies;		/* how many replies so far, to vary them */
	uint64_t chunks_sent, holes_sent, simple_sent;

	/* every cookie received, to invent one that was never sent */
	uint64_t *cookies;
	size_t ncookies, cookies_cap;
};

enum conn_result {
	CONN_CONTINUE,
	CONN_CLOSE,
};

static void logmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

/* Returns 1 on success, 0 on EOF before the first byte, -1 otherwise. */
static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t r = read(fd, p + done, len - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return done ? -1 : 0;
		done += r;
	}
	return 1;
}

/* Logs why it failed: EPIPE/ECONNRESET mean the client hung up. */
static int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t r = send(fd, p + done, len - done, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			logmsg("send failed: %s", r ? strerror(errno) : "no progress");
			return -1;
		}
		done += r;
	}
	return 0;
}

static int drain(int fd, uint64_t len)
{
	uint8_t buf[4096];

	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);

		if (read_full(fd, buf, n) != 1)
			return -1;
		len -= n;
	}
	return 0;
}

static void put_be16(uint8_t *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }
static void put_be32(uint8_t *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static void put_be64(uint8_t *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static uint16_t get_be16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return be16toh(v); }
static uint32_t get_be32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static uint64_t get_be64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }

/* ---- handshake ---- */

static int send_opt_reply(int fd, uint32_t opt, uint32_t type,
			  const void *data, uint32_t len)
{
	uint8_t hdr[20];

	put_be64(hdr, REPLY_OPT_MAGIC);
	put_be32(hdr + 8, opt);
	put_be32(hdr + 12, type);
	put_be32(hdr + 16, len);
	if (write_full(fd, hdr, sizeof(hdr)))
		return -1;
	return len ? write_full(fd, data, len) : 0;
}

static int send_opt_error(int fd, uint32_t opt, uint32_t type,
			  const char *msg)
{
	return send_opt_reply(fd, opt, type, msg, strlen(msg));
}

static uint16_t export_flags(void)
{
	return TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH;
}

/*
 * NBD_OPT_GO / NBD_OPT_INFO payload: u32 name length, name, u16 number
 * of information requests, that many u16.  Any name is accepted.
 */
static bool go_payload_valid(const uint8_t *data, uint32_t len)
{
	uint32_t namelen;
	uint16_t nreq;

	if (len < 6)
		return false;
	namelen = get_be32(data);
	if (namelen > len - 6)
		return false;
	nreq = get_be16(data + 4 + namelen);
	return len == 4 + namelen + 2 + 2 * (uint32_t)nreq;
}

static int send_info_export(int fd, uint32_t opt, uint64_t size)
{
	uint8_t info[12];

	put_be16(info, INFO_EXPORT);
	put_be64(info + 2, size);
	put_be16(info + 10, export_flags());
	return send_opt_reply(fd, opt, REP_INFO, info, sizeof(info));
}

/* Returns 1 to enter transmission, 0 to close quietly, -1 on error. */
static int handshake(struct server *s, int fd)
{
	uint8_t greet[18], buf[16], data[MAX_OPTION_LEN];
	uint32_t cflags;
	bool no_zeroes;
	unsigned int nopts;

	s->structured = false;
	put_be64(greet, NBDMAGIC);
	put_be64(greet + 8, IHAVEOPT);
	put_be16(greet + 16, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
	if (write_full(fd, greet, sizeof(greet)))
		return -1;

	if (read_full(fd, buf, 4) != 1)
		return -1;
	cflags = get_be32(buf);
	if (cflags & ~CFLAG_KNOWN) {
		logmsg("conn %u: unknown client flags 0x%x, closing",
		       s->conn_id, cflags);
		return -1;
	}
	no_zeroes = cflags & FLAG_NO_ZEROES;

	for (nopts = 0; nopts < MAX_OPTIONS; nopts++) {
		uint32_t opt, len;

		if (read_full(fd, buf, 16) != 1)
			return -1;
		if (get_be64(buf) != IHAVEOPT) {
			logmsg("conn %u: bad option magic, closing",
			       s->conn_id);
			return -1;
		}
		opt = get_be32(buf + 8);
		len = get_be32(buf + 12);
		logmsg("conn %u: option %u length %u", s->conn_id, opt, len);

		if (len > MAX_OPTION_LEN) {
			if (len > MAX_OPTION_DRAIN || drain(fd, len))
				return -1;
			if (send_opt_error(fd, opt, REP_ERR_TOO_BIG,
					   "option too long"))
				return -1;
			continue;
		}
		if (len && read_full(fd, data, len) != 1)
			return -1;

		switch (opt) {
		case OPT_EXPORT_NAME: {
			uint8_t rep[10 + 124] = { 0 };

			put_be64(rep, s->size);
			put_be16(rep + 8, export_flags());
			if (write_full(fd, rep, no_zeroes ? 10 : sizeof(rep)))
				return -1;
			return 1;
		}
		case OPT_ABORT:
			send_opt_reply(fd, opt, REP_ACK, NULL, 0);
			return 0;
		case OPT_LIST: {
			uint8_t entry[4] = { 0 };	/* the empty name */

			if (len) {
				if (send_opt_error(fd, opt, REP_ERR_INVALID,
						   "LIST takes no data"))
					return -1;
				break;
			}
			if (send_opt_reply(fd, opt, REP_SERVER, entry,
					   sizeof(entry)) ||
			    send_opt_reply(fd, opt, REP_ACK, NULL, 0))
				return -1;
			break;
		}
		case OPT_INFO:
		case OPT_GO:
			if (!go_payload_valid(data, len)) {
				if (send_opt_error(fd, opt, REP_ERR_INVALID,
						   "malformed GO/INFO request"))
					return -1;
				break;
			}
			if (send_info_export(fd, opt, s->size) ||
			    send_opt_reply(fd, opt, REP_ACK, NULL, 0))
				return -1;
			if (opt == OPT_GO)
				return 1;
			break;
		case OPT_STRUCTURED_REPLY:
			if (len) {
				if (send_opt_error(fd, opt, REP_ERR_INVALID,
						   "STRUCTURED_REPLY takes no data"))
					return -1;
				break;
			}
			if (s->sr_refuse) {
				logmsg("conn %u: structured replies refused (--sr-refuse)",
				       s->conn_id);
				if (send_opt_error(fd, opt, REP_ERR_UNSUP,
						   "structured replies refused"))
					return -1;
				break;
			}
			if (send_opt_reply(fd, opt, REP_ACK, NULL, 0))
				return -1;
			s->structured = true;
			logmsg("conn %u: structured replies negotiated",
			       s->conn_id);
			break;
		default:
			/* STARTTLS, meta contexts, extended headers... */
			if (send_opt_error(fd, opt, REP_ERR_UNSUP,
					   "option not supported"))
				return -1;
			break;
		}
	}
	logmsg("conn %u: too many options, closing", s->conn_id);
	return -1;
}

/* ---- transmission ---- */

static void remember_cookie(struct server *s, uint64_t cookie)
{
	if (s->ncookies == s->cookies_cap) {
		size_t cap = s->cookies_cap ? s->cookies_cap * 2 : 1024;
		uint64_t *n;

		if (cap > (1U << 22))	/* 32 MiB of cookies is plenty */
			return;
		n = realloc(s->cookies, cap * sizeof(*n));
		if (!n)
			return;
		s->cookies = n;
		s->cookies_cap = cap;
	}
	s->cookies[s->ncookies++] = cookie;
}

static bool cookie_seen(const struct server *s, uint64_t cookie)
{
	size_t i;

	for (i = 0; i < s->ncookies; i++)
		if (s->cookies[i] == cookie)
			return true;
	return false;
}

static int send_simple_reply(struct server *s, int fd, uint32_t magic,
			     uint32_t error, uint64_t cookie,
			     const void *data, uint32_t len)
{
	uint8_t hdr[16];

	put_be32(hdr, magic);
	put_be32(hdr + 4, error);
	put_be64(hdr + 8, cookie);
	s->simple_sent++;
	if (write_full(fd, hdr, sizeof(hdr)))
		return -1;
	return len ? write_full(fd, data, len) : 0;
}

/* ---- structured replies ---- */

/*
 * One chunk: the header says @length, and what follows is @n1 bytes at
 * @p1 and @n2 at @p2 (fields, then data).  The modes that lie about a
 * length make the two disagree.
 */
static int send_chunk(struct server *s, int fd, uint16_t flags,
		      uint16_t type, uint64_t cookie, uint32_t length,
		      const void *p1, size_t n1, const void *p2, size_t n2)
{
	uint8_t hdr[SR_HDR_SIZE];

	put_be32(hdr, SR_MAGIC);
	put_be16(hdr + 4, flags);
	put_be16(hdr + 6, type);
	put_be64(hdr + 8, cookie);
	put_be32(hdr + 16, length);
	s->chunks_sent++;
	if (write_full(fd, hdr, sizeof(hdr)))
		return -1;
	if (n1 && write_full(fd, p1, n1))
		return -1;
	return n2 ? write_full(fd, p2, n2) : 0;
}

static int send_none_chunk(struct server *s, int fd, uint16_t flags,
			   uint64_t cookie)
{
	return send_chunk(s, fd, flags, SR_TYPE_NONE, cookie, 0,
			  NULL, 0, NULL, 0);
}

static int send_data_chunk(struct server *s, int fd, uint16_t flags,
			   uint64_t cookie, uint64_t off, const void *data,
			   uint32_t len)
{
	uint8_t f[8];

	put_be64(f, off);
	return send_chunk(s, fd, flags, SR_TYPE_OFFSET_DATA, cookie, 8 + len,
			  f, sizeof(f), data, len);
}

static int send_hole_chunk(struct server *s, int fd, uint16_t flags,
			   uint64_t cookie, uint64_t off, uint32_t size)
{
	uint8_t f[12];

	put_be64(f, off);
	put_be32(f + 8, size);
	s->holes_sent++;
	return send_chunk(s, fd, flags, SR_TYPE_OFFSET_HOLE, cookie, 12,
			  f, sizeof(f), NULL, 0);
}

/*
 * An error chunk as the modes need it: the header says @length, the
 * fields say @error and @mlen, and @sent bytes of @msg follow, then
 * @tail_len bytes of @tail (ERROR_OFFSET's offset, an unknown type's
 * own fields, padding).
 */
static int send_error_raw(struct server *s, int fd, uint16_t flags,
			  uint16_t type, uint64_t cookie, uint32_t length,
			  uint32_t error, uint16_t mlen, const char *msg,
			  size_t sent, const uint8_t *tail, size_t tail_len)
{
	size_t n = 6 + sent + tail_len;
	uint8_t *buf = malloc(n);
	int r;

	if (!buf)
		return -1;
	put_be32(buf, error);
	put_be16(buf + 4, mlen);
	memcpy(buf + 6, msg, sent);
	if (tail_len)
		memcpy(buf + 6 + sent, tail, tail_len);
	r = send_chunk(s, fd, flags, type, cookie, length, buf, n, NULL, 0);
	free(buf);
	return r;
}

/* A well-formed ERROR, or ERROR_OFFSET at @off. */
static int send_error_chunk(struct server *s, int fd, uint16_t flags,
			    uint16_t type, uint64_t cookie, uint32_t error,
			    const char *msg, uint64_t off)
{
	size_t mlen = strlen(msg);
	uint8_t f[8];

	if (type != SR_TYPE_ERROR_OFFSET)
		return send_error_raw(s, fd, flags, type, cookie, 6 + mlen,
				      error, mlen, msg, mlen, NULL, 0);
	put_be64(f, off);
	return send_error_raw(s, fd, flags, type, cookie, 6 + mlen + 8, error,
			      mlen, msg, mlen, f, sizeof(f));
}

/* What a read's reply is made of: data, or a run of zero blocks. */
struct piece {
	uint64_t off;
	uint32_t len;
	bool hole;
};

static bool all_zero(const uint8_t *p, size_t n)
{
	return !n || (!p[0] && !memcmp(p, p + 1, n - 1));
}

/*
 * Cut a read into pieces at every multiple of sr_chunk in the export:
 * each piece of data is one chunk, a run of zero pieces one hole.
 * Returns how many, or -1 (*out is then NULL).
 */
static int read_pieces(const struct server *s, uint64_t off, uint32_t len,
		       struct piece **out)
{
	uint64_t pos = off, end = off + len;
	struct piece *p;
	int n = 0;

	p = calloc(len / s->sr_chunk + 2, sizeof(*p));
	*out = p;
	if (!p)
		return -1;
	while (pos < end) {
		uint64_t next = (pos / s->sr_chunk + 1) * s->sr_chunk;
		uint32_t l;
		bool zero;

		if (next > end)
			next = end;
		l = next - pos;
		zero = all_zero(s->data + pos, l);
		if (zero && n && p[n - 1].hole)
			p[n - 1].len += l;
		else
			p[n++] = (struct piece){ .off = pos, .len = l,
						 .hole = zero };
		pos = next;
	}
	return n;
}

static int order_pieces(struct piece *p, int n, enum sr_order order)
{
	struct piece *tmp;
	int i, j = 0;

	switch (order) {
	case ORDER_INORDER:
		break;
	case ORDER_REVERSE:
		for (i = 0; i < n / 2; i++) {
			struct piece t = p[i];

			p[i] = p[n - 1 - i];
			p[n - 1 - i] = t;
		}
		break;
	case ORDER_INTERLEAVE:
		tmp = malloc(n * sizeof(*p) + 1);
		if (!tmp)
			return -1;
		for (i = 0; i < n; i += 2)
			tmp[j++] = p[i];
		for (i = 1; i < n; i += 2)
			tmp[j++] = p[i];
		memcpy(p, tmp, n * sizeof(*p));
		free(tmp);
		break;
	}
	return 0;
}

static int send_piece(struct server *s, int fd, uint16_t flags,
		      uint64_t cookie, const struct piece *p)
{
	if (p->hole)
		return send_hole_chunk(s, fd, flags, cookie, p->off, p->len);
	return send_data_chunk(s, fd, flags, cookie, p->off, s->data + p->off,
			       p->len);
}

/*
 * Pieces [from, to) as chunks; with @done the last one carries DONE (or,
 * when there is none, a NONE chunk does).
 */
static int send_pieces(struct server *s, int fd, uint64_t cookie,
		       const struct piece *p, int from, int to, bool done)
{
	int i;

	if (done && from >= to)
		return send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
	for (i = from; i < to; i++)
		if (send_piece(s, fd, done && i == to - 1 ? SR_FLAG_DONE : 0,
			       cookie, &p[i]))
			return -1;
	return 0;
}

/*
 * A good structured read reply: the pieces in @order, then DONE on the
 * last one or on a NONE chunk after it, every other reply.
 */
static int send_structured_read(struct server *s, int fd, uint64_t cookie,
				uint64_t off, uint32_t len,
				enum sr_order order)
{
	bool done_on_last = s->replies++ % 2;
	struct piece *p;
	int n, r = -1;

	n = read_pieces(s, off, len, &p);
	if (n >= 0 && !order_pieces(p, n, order))
		r = send_pieces(s, fd, cookie, p, 0, n, done_on_last) ||
		    (!done_on_last &&
		     send_none_chunk(s, fd, SR_FLAG_DONE, cookie));
	free(p);
	return r ? -1 : 0;
}

/* Success without data: a NONE chunk or a simple reply, alternately. */
static enum conn_result send_ok(struct server *s, int fd, uint64_t cookie)
{
	int r;

	if (s->structured && s->replies++ % 2)
		r = send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
	else
		r = send_simple_reply(s, fd, SIMPLE_REPLY_MAGIC, 0, cookie,
				      NULL, 0);
	return r ? CONN_CLOSE : CONN_CONTINUE;
}

/* An error: an ERROR chunk or a simple reply, alternately. */
static enum conn_result send_err(struct server *s, int fd, uint64_t cookie,
				 uint32_t error, const char *why)
{
	int r;

	if (s->structured && s->replies++ % 2)
		r = send_error_chunk(s, fd, SR_FLAG_DONE, SR_TYPE_ERROR,
				     cookie, error, why, 0);
	else
		r = send_simple_reply(s, fd, SIMPLE_REPLY_MAGIC, error, cookie,
				      NULL, 0);
	return r ? CONN_CLOSE : CONN_CONTINUE;
}

static bool range_ok(const struct server *s, uint64_t off, uint32_t len)
{
	return off <= s->size && len <= s->size - off;
}

static bool is_trigger(struct server *s, uint64_t off, uint32_t len)
{
	if (s->fired >= s->nmodes ||
	    (s->nmodes == 1 && s->modes[0] == MODE_GOOD))
		return false;
	if (s->have_trigger_offset)
		return s->trigger_offset >= off &&
		       s->trigger_offset - off < len;
	return s->reads == s->trigger_nth + s->fired;
}

static bool is_sr_mode(enum mode mode)
{
	return mode >= MODE_SR_UNNEGOTIATED;
}

/*
 * The structured reply modes.  Where the rules allow, the violation is
 * wrapped in an otherwise complete reply, so that a client that let it
 * pass would complete the read (and a test would notice).
 */
static int sr_misbehave(struct server *s, int fd, enum mode mode,
			uint64_t cookie, uint64_t off, uint32_t len)
{
	static const char long_text[] = "this message is longer than the chunk that carries it";
	uint64_t end = off + len, eoff;
	struct piece *p = NULL;
	uint8_t f[16] = { 0 };
	uint8_t *junk = NULL;
	char msg[SR_MAX_MSG + 2];
	int n, half, h, r = -1;
	size_t mlen;

	n = read_pieces(s, off, len, &p);
	junk = malloc((size_t)len + s->sr_chunk);
	if (n < 0 || !junk)
		goto out;
	if (!n) {			/* a read of nothing */
		r = send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
		goto out;
	}
	memset(junk, 0xa5, (size_t)len + s->sr_chunk);
	half = n / 2 ? n / 2 : n;

	switch (mode) {
	case MODE_SR_UNNEGOTIATED:
		/* Good chunks, but the client never asked for them. */
		r = send_pieces(s, fd, cookie, p, 0, n, true);
		break;
	case MODE_SR_SIMPLE_DATA:
		r = send_simple_reply(s, fd, SIMPLE_REPLY_MAGIC, 0, cookie,
				      s->data + off, len);
		break;
	case MODE_SR_SIMPLE_AFTER_CHUNK:
		/* A simple error reply: wrong only because chunks came. */
		r = send_pieces(s, fd, cookie, p, 0, half, false) ||
		    send_simple_reply(s, fd, SIMPLE_REPLY_MAGIC, ERR_EIO,
				      cookie, NULL, 0);
		break;
	case MODE_SR_OFFSET_OUTSIDE:
		/* A block of junk just past the end of the read first. */
		logmsg("conn %u: data chunk at %" PRIu64 "+%u", s->conn_id,
		       end, s->sr_chunk);
		r = send_data_chunk(s, fd, 0, cookie, end, junk,
				    s->sr_chunk) ||
		    send_pieces(s, fd, cookie, p, 0, n, true);
		break;
	case MODE_SR_OVERLAP:
		/* The second half of the first chunk and as much after it. */
		eoff = p[0].off + p[0].len / 2;
		mlen = p[0].len < end - eoff ? p[0].len : end - eoff;
		logmsg("conn %u: data chunk at %" PRIu64 "+%zu after %" PRIu64
		       "+%u", s->conn_id, eoff, mlen, p[0].off, p[0].len);
		r = send_pieces(s, fd, cookie, p, 0, 1, false) ||
		    send_data_chunk(s, fd, 0, cookie, eoff, s->data + eoff,
				    mlen) ||
		    send_pieces(s, fd, cookie, p, 1, n, true);
		break;
	case MODE_SR_REPEAT:
		r = send_pieces(s, fd, cookie, p, 0, 1, false) ||
		    send_pieces(s, fd, cookie, p, 0, n, true);
		break;
	case MODE_SR_SHORT_DATA:
		/* OFFSET_DATA with an offset and no data. */
		put_be64(f, off);
		r = send_chunk(s, fd, 0, SR_TYPE_OFFSET_DATA, cookie, 8,
			       f, 8, NULL, 0) ||
		    send_pieces(s, fd, cookie, p, 0, n, true);
		break;
	case MODE_SR_HOLE_LEN:
		/* The first hole (or chunk) as a 16-byte OFFSET_HOLE. */
		for (h = 0; h < n - 1 && !p[h].hole; h++)
			;
		put_be64(f, p[h].off);
		put_be32(f + 8, p[h].len);
		s->holes_sent++;
		r = send_pieces(s, fd, cookie, p, 0, h, false) ||
		    send_chunk(s, fd, 0, SR_TYPE_OFFSET_HOLE, cookie, 16,
			       f, 16, NULL, 0) ||
		    send_pieces(s, fd, cookie, p, h + 1, n, true);
		break;
	case MODE_SR_HOLE_ZERO:
		r = send_hole_chunk(s, fd, 0, cookie, off, 0) ||
		    send_pieces(s, fd, cookie, p, 0, n, true);
		break;
	case MODE_SR_DONE_EARLY:
		/* DONE after the first half; the rest is never sent. */
		r = send_pieces(s, fd, cookie, p, 0, n / 2, true);
		break;
	case MODE_SR_CHUNK_AFTER_DONE:
		r = send_pieces(s, fd, cookie, p, 0, n, true) ||
		    send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
		break;
	case MODE_SR_NONE_LEN:
		r = send_pieces(s, fd, cookie, p, 0, n, false) ||
		    send_chunk(s, fd, SR_FLAG_DONE, SR_TYPE_NONE, cookie, 4,
			       f, 4, NULL, 0);
		break;
	case MODE_SR_NONE_NO_DONE:
		r = send_pieces(s, fd, cookie, p, 0, half, false) ||
		    send_none_chunk(s, fd, 0, cookie) ||
		    send_pieces(s, fd, cookie, p, half, n, true);
		break;
	case MODE_SR_TOO_LONG:
		/* The whole read in one chunk, and a block of junk more. */
		memcpy(junk, s->data + off, len);
		r = send_data_chunk(s, fd, SR_FLAG_DONE, cookie, off, junk,
				    len + s->sr_chunk);
		break;
	case MODE_SR_MSG_TOO_LONG:
		mlen = SR_MAX_MSG + 1;
		memset(msg, 'x', mlen);
		r = send_pieces(s, fd, cookie, p, 0, n, false) ||
		    send_error_raw(s, fd, 0, SR_TYPE_ERROR, cookie, 6 + mlen,
				   ERR_ENOSPC, mlen, msg, mlen, NULL, 0) ||
		    send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
		break;
	case MODE_SR_MSG_BEYOND_CHUNK:
		/* The message length says more than the chunk holds. */
		mlen = strlen(long_text);
		r = send_pieces(s, fd, cookie, p, 0, n, false) ||
		    send_error_raw(s, fd, 0, SR_TYPE_ERROR, cookie,
				   6 + mlen / 2, ERR_ENOSPC, mlen, long_text,
				   mlen / 2, NULL, 0) ||
		    send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
		break;
	case MODE_SR_ERROR_PADDED:
		/* ERROR with 4 bytes after its message. */
		mlen = strlen(long_text);
		r = send_pieces(s, fd, cookie, p, 0, n, false) ||
		    send_error_raw(s, fd, 0, SR_TYPE_ERROR, cookie,
				   6 + mlen + 4, ERR_ENOSPC, mlen, long_text,
				   mlen, f, 4) ||
		    send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
		break;
	case MODE_SR_ERROR_ZERO:
		r = send_pieces(s, fd, cookie, p, 0, n, false) ||
		    send_error_chunk(s, fd, 0, SR_TYPE_ERROR, cookie, 0,
				     "sr-error-zero: error 0", 0) ||
		    send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
		break;
	case MODE_SR_ERROR_OFFSET_OUTSIDE:
		r = send_pieces(s, fd, cookie, p, 0, n, false) ||
		    send_error_chunk(s, fd, 0, SR_TYPE_ERROR_OFFSET, cookie,
				     ERR_ENOSPC, "sr-error-offset-outside",
				     end) ||
		    send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
		break;
	case MODE_SR_UNKNOWN_TYPE:
		r = send_pieces(s, fd, cookie, p, 0, n, false) ||
		    send_chunk(s, fd, 0, SR_TYPE_UNKNOWN, cookie, 4, f, 4,
			       NULL, 0) ||
		    send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
		break;
	case MODE_SR_BLOCK_STATUS:
		/* Context 1, one extent over the whole read. */
		put_be32(f, 1);
		put_be32(f + 4, len);
		r = send_pieces(s, fd, cookie, p, 0, n, false) ||
		    send_chunk(s, fd, 0, SR_TYPE_BLOCK_STATUS, cookie, 12,
			       f, 12, NULL, 0) ||
		    send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
		break;
	case MODE_SR_ERROR:
		/* Half the read, the error, the other half, then NONE. */
		r = send_pieces(s, fd, cookie, p, 0, half, false) ||
		    send_error_chunk(s, fd, 0, SR_TYPE_ERROR, cookie, ERR_EIO,
				     "sr-error: injected EIO", 0) ||
		    send_pieces(s, fd, cookie, p, half, n, false) ||
		    send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
		break;
	case MODE_SR_ERROR_OFFSET:
		/* Half the read, then an error inside it that ends it. */
		eoff = p[half - 1].off;
		snprintf(msg, sizeof(msg), "sr-error-offset: ENOSPC at %" PRIu64,
			 eoff);
		r = send_pieces(s, fd, cookie, p, 0, half, false) ||
		    send_error_chunk(s, fd, SR_FLAG_DONE, SR_TYPE_ERROR_OFFSET,
				     cookie, ERR_ENOSPC, msg, eoff);
		break;
	case MODE_SR_UNKNOWN_ERROR_TYPE:
		/* The error fields, then 10 bytes of the type's own. */
		mlen = strlen("sr-unknown-error-type: EPERM");
		memset(f, 0x5a, sizeof(f));
		r = send_pieces(s, fd, cookie, p, 0, n, false) ||
		    send_error_raw(s, fd, 0, SR_TYPE_UNKNOWN_ERROR, cookie,
				   6 + mlen + 10, ERR_EPERM, mlen,
				   "sr-unknown-error-type: EPERM", mlen, f,
				   10) ||
		    send_none_chunk(s, fd, SR_FLAG_DONE, cookie);
		break;
	case MODE_SR_SIMPLE_ERROR:
		r = send_simple_reply(s, fd, SIMPLE_REPLY_MAGIC, ERR_EIO,
				      cookie, NULL, 0);
		break;
	case MODE_SR_REVERSE:
		r = send_structured_read(s, fd, cookie, off, len,
					 ORDER_REVERSE);
		break;
	case MODE_SR_INTERLEAVE:
		r = send_structured_read(s, fd, cookie, off, len,
					 ORDER_INTERLEAVE);
		break;
	default:
		break;
	}
out:
	free(junk);
	free(p);
	return r ? -1 : 0;
}

/* Answers the selected read wrongly.  Returns what to do next. */
static enum conn_result misbehave(struct server *s, int fd, uint64_t cookie,
				  uint64_t off, uint32_t len)
{
	enum mode mode = s->modes[s->fired++];
	const uint8_t *payload = s->data + off;
	enum conn_result res = CONN_CONTINUE;
	uint8_t hdr[16];
	uint8_t *junk;
	uint64_t fake;

	logmsg("conn %u: TRIGGER mode=%s read #%" PRIu64 " offset=%" PRIu64
	       " length=%u cookie=0x%" PRIx64 "%s", s->conn_id,
	       mode_names[mode], s->reads, off, len, cookie,
	       s->structured ? " (structured)" : "");
	if (is_sr_mode(mode) &&
	    s->structured == (mode == MODE_SR_UNNEGOTIATED))
		logmsg("conn %u: warning: mode %s is meant for a connection %s structured replies",
		       s->conn_id, mode_names[mode],
		       s->structured ? "without" : "with");

	switch (mode) {
	case MODE_WRONG_MAGIC:
		if (send_simple_reply(s, fd, WRONG_REPLY_MAGIC, 0, cookie,
				      payload, len))
			res = CONN_CLOSE;
		break;
	case MODE_UNKNOWN_COOKIE:
		fake = ~cookie;
		while (cookie_seen(s, fake))
			fake++;
		logmsg("conn %u: replying with cookie 0x%" PRIx64,
		       s->conn_id, fake);
		if (send_simple_reply(s, fd, SIMPLE_REPLY_MAGIC, 0, fake,
				      payload, len))
			res = CONN_CLOSE;
		break;
	case MODE_DOUBLE_REPLY:
		/* A correct reply, then a second one with different data. */
		junk = malloc(len ? len : 1);
		if (!junk)
			return CONN_CLOSE;
		memset(junk, 0xa5, len);
		if (send_simple_reply(s, fd, SIMPLE_REPLY_MAGIC, 0, cookie,
				      payload, len) ||
		    send_simple_reply(s, fd, SIMPLE_REPLY_MAGIC, 0, cookie,
				      junk, len))
			res = CONN_CLOSE;
		free(junk);
		break;
	case MODE_SHORT_READ:
		put_be32(hdr, SIMPLE_REPLY_MAGIC);
		put_be32(hdr + 4, 0);
		put_be64(hdr + 8, cookie);
		if (!write_full(fd, hdr, sizeof(hdr)))
			write_full(fd, payload, len / 2);
		logmsg("conn %u: sent %u of %u payload bytes, closing",
		       s->conn_id, len / 2, len);
		res = CONN_CLOSE;
		break;
	case MODE_CLOSE_MID_REPLY:
		put_be32(hdr, SIMPLE_REPLY_MAGIC);
		put_be32(hdr + 4, 0);
		put_be64(hdr + 8, cookie);
		write_full(fd, hdr, 8);
		logmsg("conn %u: sent half a reply header, closing",
		       s->conn_id);
		res = CONN_CLOSE;
		break;
	case MODE_WRONG_ERROR:
		/* Well-framed error reply with a value NBD does not define. */
		if (send_simple_reply(s, fd, SIMPLE_REPLY_MAGIC, ERR_BOGUS,
				      cookie, NULL, 0))
			res = CONN_CLOSE;
		break;
	case MODE_GOOD:
		/* A list's "good": this trigger read is answered properly. */
		if (s->structured ?
		    send_structured_read(s, fd, cookie, off, len, s->sr_order) :
		    send_simple_reply(s, fd, SIMPLE_REPLY_MAGIC, 0, cookie,
				      payload, len))
			res = CONN_CLOSE;
		break;
	default:
		if (sr_misbehave(s, fd, mode, cookie, off, len))
			res = CONN_CLOSE;
		break;
	}
	return res;
}

static enum conn_result handle_request(struct server *s, int fd,
				       const uint8_t *req)
{
	uint32_t magic = get_be32(req);
	uint16_t flags = get_be16(req + 4);
	uint16_t type = get_be16(req + 6);
	uint64_t cookie = get_be64(req + 8);
	uint64_t off = get_be64(req + 16);
	uint32_t len = get_be32(req + 24);

	if (magic != REQUEST_MAGIC) {
		logmsg("conn %u: bad request magic 0x%x, closing",
		       s->conn_id, magic);
		return CONN_CLOSE;
	}
	remember_cookie(s, cookie);

	if (flags) {
		/* No command flag was offered (no FUA, DF, ...). */
		logmsg("conn %u: command %u with flags 0x%x never offered",
		       s->conn_id, type, flags);
		if (type == CMD_WRITE && (len > MAX_PAYLOAD || drain(fd, len)))
			return CONN_CLOSE;
		return send_err(s, fd, cookie, ERR_EINVAL, "command flags");
	}

	switch (type) {
	case CMD_READ:
		s->reads++;
		if (len > MAX_PAYLOAD || !range_ok(s, off, len)) {
			logmsg("conn %u: read out of range off=%" PRIu64
			       " len=%u", s->conn_id, off, len);
			return send_err(s, fd, cookie, ERR_EINVAL,
					"read out of range");
		}
		if (is_trigger(s, off, len))
			return misbehave(s, fd, cookie, off, len);
		if (s->structured)
			return send_structured_read(s, fd, cookie, off, len,
						    s->sr_order) ?
			       CONN_CLOSE : CONN_CONTINUE;
		return send_simple_reply(s, fd, SIMPLE_REPLY_MAGIC, 0, cookie,
					 s->data + off, len) ?
		       CONN_CLOSE : CONN_CONTINUE;
	case CMD_WRITE:
		if (len > MAX_PAYLOAD) {
			logmsg("conn %u: write payload too big (%u), closing",
			       s->conn_id, len);
			return CONN_CLOSE;
		}
		if (!range_ok(s, off, len)) {
			if (drain(fd, len))
				return CONN_CLOSE;
			return send_err(s, fd, cookie, ERR_EINVAL,
					"write out of range");
		}
		if (len && read_full(fd, s->data + off, len) != 1)
			return CONN_CLOSE;
		break;
	case CMD_DISC:
		logmsg("conn %u: NBD_CMD_DISC received", s->conn_id);
		return CONN_CLOSE;
	case CMD_FLUSH:
		break;
	case CMD_TRIM:
	case CMD_WRITE_ZEROES:
		if (!range_ok(s, off, len))
			return send_err(s, fd, cookie, ERR_EINVAL,
					"range out of the export");
		memset(s->data + off, 0, len);
		break;
	default:
		logmsg("conn %u: unknown command %u", s->conn_id, type);
		return send_err(s, fd, cookie, ERR_EINVAL, "unknown command");
	}
	return send_ok(s, fd, cookie);
}

static void set_rcv_timeout(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void serve(struct server *s, int fd)
{
	uint8_t req[28];
	int r;

	/* A client stalling in the handshake must not block the server. */
	set_rcv_timeout(fd, HANDSHAKE_TIMEOUT);
	r = handshake(s, fd);
	set_rcv_timeout(fd, 0);
	if (r <= 0) {
		logmsg("conn %u: handshake ended (%s)", s->conn_id,
		       r ? "error" : "abort");
		return;
	}
	logmsg("conn %u: transmission phase, size %" PRIu64 ", %s replies",
	       s->conn_id, s->size, s->structured ? "structured" : "simple");
	s->ncookies = 0;
	s->replies = 0;
	s->chunks_sent = 0;
	s->holes_sent = 0;
	s->simple_sent = 0;

	for (;;) {
		r = read_full(fd, req, sizeof(req));
		if (r == 0) {
			logmsg("conn %u: EOF from client", s->conn_id);
			break;
		}
		if (r < 0) {
			logmsg("conn %u: connection lost mid-request (%s)",
			       s->conn_id, strerror(errno));
			break;
		}
		if (handle_request(s, fd, req) == CONN_CLOSE) {
			logmsg("conn %u: server closes the connection",
			       s->conn_id);
			break;
		}
	}
	logmsg("conn %u: sent %" PRIu64 " chunks (%" PRIu64 " holes), %"
	       PRIu64 " simple replies", s->conn_id, s->chunks_sent,
	       s->holes_sent, s->simple_sent);
}

/* ---- setup ---- */

static void fill_pattern(uint8_t *p, uint64_t size)
{
	uint64_t off;

	for (off = 0; off + 8 <= size; off += 8)
		put_be64(p + off, off);
}

static int parse_u64(const char *str, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(str, &end, 0);
	if (errno || end == str)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

/* --mode MODE[,MODE...] */
static int parse_modes(struct server *s, char *arg)
{
	char *tok, *save = NULL;
	size_t i;

	s->nmodes = 0;
	for (tok = strtok_r(arg, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < MODE_COUNT; i++)
			if (!strcmp(tok, mode_names[i]))
				break;
		if (i == MODE_COUNT) {
			fprintf(stderr, "unknown mode '%s'\n", tok);
			return -1;
		}
		if (s->nmodes == MAX_MODES) {
			fprintf(stderr, "more than %d modes\n", MAX_MODES);
			return -1;
		}
		s->modes[s->nmodes++] = i;
	}
	if (!s->nmodes) {
		fprintf(stderr, "no mode given\n");
		return -1;
	}
	return 0;
}

/* --zero OFFSET,LENGTH: zero that range of the initial content. */
static int parse_zero(const struct server *s, const char *arg,
		      uint64_t *off, uint64_t *len)
{
	char buf[64], *comma;

	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
		return -1;
	comma = strchr(buf, ',');
	if (!comma)
		return -1;
	*comma = '\0';
	if (parse_u64(buf, off) || parse_u64(comma + 1, len))
		return -1;
	return *off <= s->size && *len <= s->size - *off ? 0 : -1;
}

static void usage(FILE *f)
{
	size_t i, col = 80;

	fprintf(f,
		"usage: nbd_hostile_server --socket PATH [options]\n"
		"  --socket PATH          UNIX socket to listen on\n"
		"  --mode MODE[,MODE...]  misbehaviour, one per trigger read (default good):");
	for (i = 0; i < MODE_COUNT; i++) {
		if (col + 1 + strlen(mode_names[i]) > 78)
			col = fprintf(f, "\n                        ");
		col += fprintf(f, " %s", mode_names[i]);
	}
	fprintf(f, "\n"
		"  --size BYTES           export size (default 64M, max 1G)\n"
		"  --trigger N            misbehave on the Nth read (default 1)\n"
		"                         and, with a list, on the reads after it\n"
		"  --trigger-offset BYTES misbehave on the reads covering BYTES\n"
		"  --zero OFFSET,LENGTH   start with zeroes there (up to %d times)\n"
		"  --sr-refuse            refuse NBD_OPT_STRUCTURED_REPLY\n"
		"  --sr-order ORDER       chunks of a read: inorder (default), reverse,\n"
		"                         interleave (the even-numbered, then the odd)\n"
		"  --sr-chunk BYTES       data per OFFSET_DATA chunk (default 4096, at least 512)\n"
		"  --pidfile FILE         write the pid once listening\n"
		"  --log FILE             append messages to FILE\n"
		"  --once                 exit after the first connection\n",
		MAX_ZERO);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket",		required_argument, NULL, 's' },
		{ "mode",		required_argument, NULL, 'm' },
		{ "size",		required_argument, NULL, 'z' },
		{ "trigger",		required_argument, NULL, 't' },
		{ "trigger-offset",	required_argument, NULL, 'o' },
		{ "zero",		required_argument, NULL, '0' },
		{ "sr-refuse",		no_argument,	   NULL, 'R' },
		{ "sr-order",		required_argument, NULL, 'O' },
		{ "sr-chunk",		required_argument, NULL, 'c' },
		{ "pidfile",		required_argument, NULL, 'p' },
		{ "log",		required_argument, NULL, 'l' },
		{ "once",		no_argument,	   NULL, '1' },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct server s = { .modes = { MODE_GOOD }, .nmodes = 1,
			    .size = 64ULL << 20, .trigger_nth = 1,
			    .sr_chunk = 4096 };
	const char *sock_path = NULL, *pidfile = NULL;
	const char *zero[MAX_ZERO];
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	unsigned int nzero = 0;
	uint64_t v, zoff, zlen;
	char modes_text[256] = "";
	int c, lfd;
	size_t i;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock_path = optarg;
			break;
		case 'm':
			if (parse_modes(&s, optarg))
				return 2;
			break;
		case '0':
			if (nzero == MAX_ZERO) {
				fprintf(stderr, "more than %d --zero\n",
					MAX_ZERO);
				return 2;
			}
			zero[nzero++] = optarg;
			break;
		case 'R':
			s.sr_refuse = true;
			break;
		case 'O':
			for (i = 0; i < sizeof(order_names) / sizeof(*order_names); i++)
				if (!strcmp(optarg, order_names[i]))
					break;
			if (i == sizeof(order_names) / sizeof(*order_names)) {
				fprintf(stderr, "unknown --sr-order '%s'\n",
					optarg);
				return 2;
			}
			s.sr_order = i;
			break;
		case 'c':
			if (parse_u64(optarg, &v) || v < 512 || v > MAX_PAYLOAD) {
				fprintf(stderr, "bad --sr-chunk '%s'\n", optarg);
				return 2;
			}
			s.sr_chunk = v;
			break;
		case 'z':
			if (parse_u64(optarg, &s.size) || s.size < 4096 ||
			    s.size > MAX_EXPORT_SIZE || s.size % 512) {
				fprintf(stderr, "bad --size '%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
			if (parse_u64(optarg, &s.trigger_nth) ||
			    !s.trigger_nth) {
				fprintf(stderr, "bad --trigger '%s'\n", optarg);
				return 2;
			}
			break;
		case 'o':
			if (parse_u64(optarg, &s.trigger_offset)) {
				fprintf(stderr, "bad --trigger-offset '%s'\n",
					optarg);
				return 2;
			}
			s.have_trigger_offset = true;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'l':
			if (!freopen(optarg, "a", stderr)) {
				perror(optarg);
				return 2;
			}
			break;
		case '1':
			s.once = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!sock_path || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (strlen(sock_path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "socket path too long\n");
		return 2;
	}
	if (s.have_trigger_offset && s.trigger_offset >= s.size) {
		fprintf(stderr, "--trigger-offset beyond the export\n");
		return 2;
	}

	s.data = malloc(s.size);
	if (!s.data) {
		perror("malloc");
		return 1;
	}
	fill_pattern(s.data, s.size);
	for (i = 0; i < nzero; i++) {
		if (parse_zero(&s, zero[i], &zoff, &zlen)) {
			fprintf(stderr, "bad --zero '%s'\n", zero[i]);
			return 2;
		}
		memset(s.data + zoff, 0, zlen);
	}
	for (i = 0; i < s.nmodes; i++)
		snprintf(modes_text + strlen(modes_text),
			 sizeof(modes_text) - strlen(modes_text), "%s%s",
			 i ? "," : "", mode_names[s.modes[i]]);
	signal(SIGPIPE, SIG_IGN);

	strcpy(addr.sun_path, sock_path);
	unlink(sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(lfd, 16)) {
		perror(sock_path);
		return 1;
	}
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");

		if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f)) {
			perror(pidfile);
			return 1;
		}
	}
	logmsg("listening on %s, mode %s, size %" PRIu64 ", chunks %s of %u bytes%s",
	       sock_path, modes_text, s.size, order_names[s.sr_order],
	       s.sr_chunk, s.sr_refuse ? ", structured replies refused" : "");

	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("accept");
			return 1;
		}
		s.conn_id++;
		logmsg("conn %u: accepted", s.conn_id);
		serve(&s, fd);
		close(fd);
		logmsg("conn %u: closed", s.conn_id);
		if (s.once)
			break;
	}
	close(lfd);
	unlink(sock_path);
	return 0;
}
