// SPDX-License-Identifier: GPL-2.0
/*
 * nbd_hostile_server - a small NBD server that misbehaves on purpose.
 *
 * It listens on a UNIX socket, performs a correct fixed-newstyle
 * handshake and serves a memory-backed export whose initial content is
 * a pattern (every 8-byte word holds its own byte offset, big-endian),
 * so a reader can check what it got.  One read request, selected with
 * --trigger or --trigger-offset, is answered wrongly according to
 * --mode.  Everything received from the client is validated: a broken
 * client makes the server close the connection, never crash.
 *
 * Connections are served one after the other; the export content is
 * kept across connections.  Messages go to stderr (or --log), one line
 * per event, so a test can tell what happened on the wire.
 *
 * Build: cc -O2 -Wall -Wextra -o nbd_hostile_server nbd_hostile_server.c
 */
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

#define ERR_EINVAL		22
#define ERR_BOGUS		0x7fff1234U	/* not an NBD error value */

#define MAX_OPTION_LEN		4096		/* accepted option payload */
#define MAX_OPTION_DRAIN	(1U << 20)	/* bigger ones: hang up */
#define MAX_OPTIONS		64		/* per connection */
#define MAX_PAYLOAD		(32U << 20)	/* per request */
#define MAX_EXPORT_SIZE		(1ULL << 30)
#define HANDSHAKE_TIMEOUT	30		/* seconds per receive */

enum mode {
	MODE_GOOD,
	MODE_WRONG_MAGIC,
	MODE_UNKNOWN_COOKIE,
	MODE_DOUBLE_REPLY,
	MODE_SHORT_READ,
	MODE_CLOSE_MID_REPLY,
	MODE_WRONG_ERROR,
};

static const char *const mode_names[] = {
	[MODE_GOOD]		= "good",
	[MODE_WRONG_MAGIC]	= "wrong-magic",
	[MODE_UNKNOWN_COOKIE]	= "unknown-cookie",
	[MODE_DOUBLE_REPLY]	= "double-reply",
	[MODE_SHORT_READ]	= "short-read",
	[MODE_CLOSE_MID_REPLY]	= "close-mid-reply",
	[MODE_WRONG_ERROR]	= "wrong-error",
};

struct server {
	/* configuration */
	enum mode mode;
	uint64_t size;
	uint64_t trigger_nth;		/* 0: not by count */
	uint64_t trigger_offset;
	bool have_trigger_offset;
	bool once;

	/* state */
	uint8_t *data;
	uint64_t reads;			/* read requests seen, all connections */
	bool fired;
	unsigned int conn_id;

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
		default:
			/* STRUCTURED_REPLY, STARTTLS, meta contexts... */
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

static int send_simple_reply(int fd, uint32_t magic, uint32_t error,
			     uint64_t cookie, const void *data, uint32_t len)
{
	uint8_t hdr[16];

	put_be32(hdr, magic);
	put_be32(hdr + 4, error);
	put_be64(hdr + 8, cookie);
	if (write_full(fd, hdr, sizeof(hdr)))
		return -1;
	return len ? write_full(fd, data, len) : 0;
}

static bool range_ok(const struct server *s, uint64_t off, uint32_t len)
{
	return off <= s->size && len <= s->size - off;
}

static bool is_trigger(struct server *s, uint64_t off, uint32_t len)
{
	if (s->fired || s->mode == MODE_GOOD)
		return false;
	if (s->have_trigger_offset)
		return s->trigger_offset >= off &&
		       s->trigger_offset - off < len;
	return s->reads == s->trigger_nth;
}

/* Answers the selected read wrongly.  Returns what to do next. */
static enum conn_result misbehave(struct server *s, int fd, uint64_t cookie,
				  uint64_t off, uint32_t len)
{
	const uint8_t *payload = s->data + off;
	enum conn_result res = CONN_CONTINUE;
	uint8_t hdr[16];
	uint8_t *junk;
	uint64_t fake;

	s->fired = true;
	logmsg("conn %u: TRIGGER mode=%s read #%" PRIu64 " offset=%" PRIu64
	       " length=%u cookie=0x%" PRIx64, s->conn_id,
	       mode_names[s->mode], s->reads, off, len, cookie);

	switch (s->mode) {
	case MODE_WRONG_MAGIC:
		if (send_simple_reply(fd, WRONG_REPLY_MAGIC, 0, cookie,
				      payload, len))
			res = CONN_CLOSE;
		break;
	case MODE_UNKNOWN_COOKIE:
		fake = ~cookie;
		while (cookie_seen(s, fake))
			fake++;
		logmsg("conn %u: replying with cookie 0x%" PRIx64,
		       s->conn_id, fake);
		if (send_simple_reply(fd, SIMPLE_REPLY_MAGIC, 0, fake,
				      payload, len))
			res = CONN_CLOSE;
		break;
	case MODE_DOUBLE_REPLY:
		/* A correct reply, then a second one with different data. */
		junk = malloc(len ? len : 1);
		if (!junk)
			return CONN_CLOSE;
		memset(junk, 0xa5, len);
		if (send_simple_reply(fd, SIMPLE_REPLY_MAGIC, 0, cookie,
				      payload, len) ||
		    send_simple_reply(fd, SIMPLE_REPLY_MAGIC, 0, cookie,
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
		if (send_simple_reply(fd, SIMPLE_REPLY_MAGIC, ERR_BOGUS,
				      cookie, NULL, 0))
			res = CONN_CLOSE;
		break;
	case MODE_GOOD:
		break;
	}
	return res;
}

static enum conn_result handle_request(struct server *s, int fd,
				       const uint8_t *req)
{
	uint32_t magic = get_be32(req);
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

	switch (type) {
	case CMD_READ:
		s->reads++;
		if (len > MAX_PAYLOAD || !range_ok(s, off, len)) {
			logmsg("conn %u: read out of range off=%" PRIu64
			       " len=%u", s->conn_id, off, len);
			return send_simple_reply(fd, SIMPLE_REPLY_MAGIC,
						 ERR_EINVAL, cookie, NULL, 0) ?
			       CONN_CLOSE : CONN_CONTINUE;
		}
		if (is_trigger(s, off, len))
			return misbehave(s, fd, cookie, off, len);
		return send_simple_reply(fd, SIMPLE_REPLY_MAGIC, 0, cookie,
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
			return send_simple_reply(fd, SIMPLE_REPLY_MAGIC,
						 ERR_EINVAL, cookie, NULL, 0) ?
			       CONN_CLOSE : CONN_CONTINUE;
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
			return send_simple_reply(fd, SIMPLE_REPLY_MAGIC,
						 ERR_EINVAL, cookie, NULL, 0) ?
			       CONN_CLOSE : CONN_CONTINUE;
		memset(s->data + off, 0, len);
		break;
	default:
		logmsg("conn %u: unknown command %u", s->conn_id, type);
		return send_simple_reply(fd, SIMPLE_REPLY_MAGIC, ERR_EINVAL,
					 cookie, NULL, 0) ?
		       CONN_CLOSE : CONN_CONTINUE;
	}
	return send_simple_reply(fd, SIMPLE_REPLY_MAGIC, 0, cookie, NULL, 0) ?
	       CONN_CLOSE : CONN_CONTINUE;
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
	logmsg("conn %u: transmission phase, size %" PRIu64, s->conn_id,
	       s->size);
	s->ncookies = 0;

	for (;;) {
		r = read_full(fd, req, sizeof(req));
		if (r == 0) {
			logmsg("conn %u: EOF from client", s->conn_id);
			return;
		}
		if (r < 0) {
			logmsg("conn %u: connection lost mid-request (%s)",
			       s->conn_id, strerror(errno));
			return;
		}
		if (handle_request(s, fd, req) == CONN_CLOSE) {
			logmsg("conn %u: server closes the connection",
			       s->conn_id);
			return;
		}
	}
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

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"usage: nbd_hostile_server --socket PATH [options]\n"
		"  --socket PATH          UNIX socket to listen on\n"
		"  --mode MODE            misbehaviour (default good):");
	for (i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		fprintf(f, " %s", mode_names[i]);
	fprintf(f, "\n"
		"  --size BYTES           export size (default 64M, max 1G)\n"
		"  --trigger N            misbehave on the Nth read (default 1)\n"
		"  --trigger-offset BYTES misbehave on the first read covering BYTES\n"
		"  --pidfile FILE         write the pid once listening\n"
		"  --log FILE             append messages to FILE\n"
		"  --once                 exit after the first connection\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket",		required_argument, NULL, 's' },
		{ "mode",		required_argument, NULL, 'm' },
		{ "size",		required_argument, NULL, 'z' },
		{ "trigger",		required_argument, NULL, 't' },
		{ "trigger-offset",	required_argument, NULL, 'o' },
		{ "pidfile",		required_argument, NULL, 'p' },
		{ "log",		required_argument, NULL, 'l' },
		{ "once",		no_argument,	   NULL, '1' },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct server s = { .mode = MODE_GOOD, .size = 64ULL << 20,
			    .trigger_nth = 1 };
	const char *sock_path = NULL, *pidfile = NULL;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int c, lfd;
	size_t i;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock_path = optarg;
			break;
		case 'm':
			for (i = 0; i < sizeof(mode_names) / sizeof(*mode_names); i++)
				if (!strcmp(optarg, mode_names[i]))
					break;
			if (i == sizeof(mode_names) / sizeof(*mode_names)) {
				fprintf(stderr, "unknown mode '%s'\n", optarg);
				return 2;
			}
			s.mode = i;
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
	logmsg("listening on %s, mode %s, size %" PRIu64, sock_path,
	       mode_names[s.mode], s.size);

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
