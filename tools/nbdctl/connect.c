// SPDX-License-Identifier: GPL-2.0
/*
 * nbdctl: connect, disconnect, reconfigure, list, watch, and the persist
 * loop that reconnects dead connections.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <linux/nbd.h>
#include <linux/nbd-netlink.h>

#include "nbdctl.h"

#define STATE_DIR		"/run/nbdctl"
#define MAX_CONNECTIONS		64	/* what nbd.ko accepts */
#define PERSIST_DEFAULT_DEAD	120	/* s: dead-connection timeout */
#define BACKOFF_MIN_MS		500
#define BACKOFF_MAX_MS		30000
#define STATUS_EVERY_MS		5000

/* Linux 5.6: memory reclaim does not wait on the I/O of this process */
#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER	57
#endif

/* --- small helpers ----------------------------------------------------- */

/* parse_u64 - a decimal number with an optional K/M/G/T suffix (x1024). */
static int parse_u64(const char *s, uint64_t *out, bool suffix)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (*end && suffix) {
		static const char units[] = "KMGT";
		const char *u = strchr(units, toupper((unsigned char)*end));

		if (!u || !*u)
			return -1;
		shift = 10 * (int)(u - units + 1);
		end++;
		if (toupper((unsigned char)*end) == 'I' &&
		    toupper((unsigned char)end[1]) == 'B')
			end += 2;
		else if (toupper((unsigned char)*end) == 'B')
			end++;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *s, unsigned int max, unsigned int *out,
		      const char *what)
{
	uint64_t v;

	if (parse_u64(s, &v, false) || v > max) {
		nbdctl_err("%s must be a number from 0 to %u, not '%s'", what,
			   max, s);
		return -1;
	}
	*out = v;
	return 0;
}

static void human_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB",
					    "PiB", "EiB" };
	double v = bytes;
	int i = 0;

	while (v >= 1024 && i < 6) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, unit[i]);
}

/* parse_device - /dev/nbdN, nbdN or N; -1 if it is none of those. */
static int parse_device(const char *s, bool bare_number)
{
	const char *p = s;
	uint64_t v;

	if (!strncmp(p, "/dev/", 5))
		p += 5;
	if (!strncmp(p, "nbd", 3))
		p += 3;
	else if (!bare_number || p != s)
		return -1;
	if (parse_u64(p, &v, false) || v > INT_MAX)
		return -1;
	return (int)v;
}

static int read_sysfs(int index, const char *attr, char *buf, size_t len)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/block/nbd%d/%s", index, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	return 0;
}

static uint64_t device_bytes(int index)
{
	char buf[64];
	uint64_t sectors;

	if (read_sysfs(index, "size", buf, sizeof(buf)) ||
	    parse_u64(buf, &sectors, false))
		return 0;
	return sectors * 512;
}

/*
 * kernel_error - a sentence for a netlink refusal.  Returns the exit code.
 */
static int kernel_error(const char *what, int index, int ret, const char *msg)
{
	char dev[32] = "the device";

	if (index >= 0)
		snprintf(dev, sizeof(dev), "/dev/nbd%d", index);
	switch (-ret) {
	case EPERM:
	case EACCES:
		nbdctl_err("%s: permission denied: configuring nbd devices needs CAP_SYS_ADMIN (run as root)",
			   what);
		return NBDCTL_EXIT_PERM;
	case EBUSY:
		nbdctl_err("%s: %s is busy (already connected, or still being torn down)%s%s",
			   what, dev, *msg ? ": " : "", msg);
		return NBDCTL_EXIT_KERNEL;
	case ENOENT:
	case ENODEV:
		nbdctl_err("%s: %s does not exist%s%s", what, dev,
			   *msg ? ": " : "", msg);
		return NBDCTL_EXIT_KERNEL;
	case EINVAL:
		nbdctl_err("%s: the kernel refused the request: %s", what,
			   *msg ? msg : "invalid argument (dmesg may say why)");
		return NBDCTL_EXIT_KERNEL;
	default:
		nbdctl_err("%s: %s%s%s", what, strerror(-ret),
			   *msg ? ": " : "", msg);
		return NBDCTL_EXIT_KERNEL;
	}
}

static int open_netlink(struct nbdnl *nl)
{
	char err[512];

	if (nbdnl_open(nl, err, sizeof(err)) < 0) {
		nbdctl_err("%s", err);
		return NBDCTL_EXIT_KERNEL;
	}
	return 0;
}

/* --- the state file: what the kernel does not know about a device ------- */

struct dev_state {
	char uri[1024];
	char backend[1024];
	unsigned int connections;
	unsigned int flags;
	unsigned int block_size;
	long pid;			/* persist daemon, 0 if none */
	char replies[16];		/* "structured", "simple" */
	unsigned int min_block, pref_block, max_block;	/* 0: none kept */
	char tls[400];			/* the TLS session, "" without */
};

static void state_path(int index, char *buf, size_t len)
{
	snprintf(buf, len, STATE_DIR "/nbd%d", index);
}

static void state_write(int index, const struct dev_state *st)
{
	char path[64], tmp[80];
	FILE *f;

	if (mkdir(STATE_DIR, 0755) && errno != EEXIST)
		return;
	state_path(index, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
	f = fopen(tmp, "we");
	if (!f)
		return;
	fprintf(f, "uri=%s\nbackend=%s\nconnections=%u\nflags=0x%x\nblock_size=%u\npid=%ld\nreplies=%s\nblock_sizes=%u %u %u\ntls=%s\n",
		st->uri, st->backend, st->connections, st->flags,
		st->block_size, st->pid, st->replies, st->min_block,
		st->pref_block, st->max_block, st->tls);
	if (fclose(f) || rename(tmp, path))
		unlink(tmp);
}

static int state_read(int index, struct dev_state *st)
{
	char path[64], line[1100];
	FILE *f;

	memset(st, 0, sizeof(*st));
	state_path(index, path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "uri=", 4))
			snprintf(st->uri, sizeof(st->uri), "%.*s",
				 (int)sizeof(st->uri) - 1, line + 4);
		else if (!strncmp(line, "backend=", 8))
			snprintf(st->backend, sizeof(st->backend), "%.*s",
				 (int)sizeof(st->backend) - 1, line + 8);
		else if (!strncmp(line, "connections=", 12))
			st->connections = strtoul(line + 12, NULL, 10);
		else if (!strncmp(line, "flags=", 6))
			st->flags = strtoul(line + 6, NULL, 0);
		else if (!strncmp(line, "block_size=", 11))
			st->block_size = strtoul(line + 11, NULL, 10);
		else if (!strncmp(line, "pid=", 4))
			st->pid = strtol(line + 4, NULL, 10);
		else if (!strncmp(line, "replies=", 8))
			snprintf(st->replies, sizeof(st->replies), "%.*s",
				 (int)sizeof(st->replies) - 1, line + 8);
		else if (!strncmp(line, "tls=", 4))
			snprintf(st->tls, sizeof(st->tls), "%.*s",
				 (int)sizeof(st->tls) - 1, line + 4);
		else if (!strncmp(line, "block_sizes=", 12) &&
			 sscanf(line + 12, "%u %u %u", &st->min_block,
				&st->pref_block, &st->max_block) != 3)
			st->min_block = st->pref_block = st->max_block = 0;
	}
	fclose(f);
	return 0;
}

static void state_remove(int index)
{
	char path[64];

	state_path(index, path, sizeof(path));
	unlink(path);
}

/*
 * state_matches - the state file describes the device's current session:
 * its backend identifier is the one the kernel shows (when it shows one).
 */
static bool state_matches(int index, const struct dev_state *st)
{
	char backend[1024];

	if (read_sysfs(index, "backend", backend, sizeof(backend)))
		return true;	/* the kernel does not show it: trust the file */
	return !strcmp(backend, st->backend);
}

/* The persist daemon of a device, if one runs. */
static pid_t persist_pid(const struct dev_state *st)
{
	char path[64], comm[32];
	int fd;
	ssize_t n;

	if (st->pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/comm", st->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	comm[n] = '\0';
	/* nbdctl, or nbdctl run as nbd-client (compat mode) */
	if (strncmp(comm, "nbdctl", 6) && strncmp(comm, "nbd-client", 10))
		return 0;
	return (pid_t)st->pid;
}

/* --- connect ------------------------------------------------------------- */

struct connect_opts {
	struct nbd_uri uri;
	int index;
	unsigned int connections;
	unsigned int block_size;		/* 0: choose */
	unsigned int timeout;
	unsigned int dead_timeout;
	bool set_timeout, set_dead_timeout;
	bool read_only;
	const char *backend;
	unsigned int client_flags;
	bool persist, foreground, strict;
	bool no_structured;
	bool swap;			/* --swap: the persist profile for swap */
	bool adopt;			/* --adopt: take over a connected device */
	bool up;			/* nbdctl up: a device up already */
	bool wait;			/* --wait: until udev is done */
	unsigned int wait_timeout;
	bool from_tab;			/* only a device: its nbdtab line */
	const char *nbdtab;		/* --nbdtab FILE */
	unsigned int hs_timeout;
	struct nbd_hs_opts hs;		/* what the module can take */
	struct nbd_tls_opts tls;	/* TLS options (hs.tls points here) */
	bool ext;			/* the module takes NBD_ATTR_EXT */
	/* the server's addresses as found at connect, for the reconnects */
	struct nbd_addrs addrs;
};

/* Both the first handshakes and the reconnects go through here. */
static int open_conn(struct connect_opts *o, struct nbd_export *ex,
		     char *err, size_t errlen)
{
	int fd;

	fd = nbd_dial_saved(&o->uri, &o->addrs, o->hs_timeout, err, errlen);
	if (fd < 0)
		return -1;
	if (nbd_negotiate(fd, o->uri.export_name, &o->hs, ex, err, errlen)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * choose_block_size - the user's block size checked against the server's
 * constraints, or the server's preferred one when it suits the kernel,
 * or 512.  Returns 0 or -1 with the reason printed.
 */
static int choose_block_size(const struct connect_opts *o,
			     const struct nbd_export *ex, unsigned int *bs)
{
	unsigned int page = sysconf(_SC_PAGESIZE);
	unsigned int b;

	if (o->block_size) {
		b = o->block_size;
		if (b < 512 || b > page || (b & (b - 1))) {
			nbdctl_err("block size %u: it must be a power of two from 512 to %u",
				   b, page);
			return -1;
		}
		if (ex->have_block_size && b < ex->min_block) {
			nbdctl_err("block size %u is below the server's minimum block size %u",
				   b, ex->min_block);
			return -1;
		}
		*bs = b;
		return 0;
	}
	if (ex->block_size_requested && ex->have_block_size &&
	    ex->max_block < page) {
		nbdctl_err("the server's maximum payload %u is smaller than a page (%u): the kernel cannot keep to it",
			   ex->max_block, page);
		return -1;
	}
	b = 512;
	if (ex->have_block_size) {
		if (ex->pref_block >= 512 && ex->pref_block <= page)
			b = ex->pref_block;
		else if (ex->min_block > b)
			b = ex->min_block;
		if (b > page) {
			nbdctl_err("the server's minimum block size %u is larger than the kernel's largest (%u)",
				   ex->min_block, page);
			return -1;
		}
	}
	*bs = b;
	return 0;
}

static void connect_usage(FILE *f)
{
	fprintf(f,
"usage: nbdctl connect URI [DEVICE] [options]\n"
"       nbdctl connect HOST [PORT] [DEVICE] [options]\n"
"       nbdctl connect --unix PATH [DEVICE] [options]\n"
"\n"
"URI: nbd[s]://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH\n"
"DEVICE: /dev/nbdN, nbdN (default: the first free device)\n"
"\n"
"  -N, --name EXPORT          export name (overrides the URI's)\n"
"  -u, --unix PATH            the server's UNIX socket\n"
"  -C, --connections N        N connections (needs the server's CAN_MULTI_CONN)\n"
"      --strict               fail instead of using one connection without it\n"
"  -b, --block-size BYTES     block size (default: the server's preferred, or 512)\n"
"  -t, --timeout SECONDS      per-request timeout (default: the kernel's)\n"
"  -D, --dead-timeout SECONDS how long I/O waits for a reconnect\n"
"                             (default 0, or %u with --persist)\n"
"  -r, --read-only            attach read-only\n"
"      --backend ID           backend identifier (default: the URI)\n"
"      --destroy-on-disconnect  remove the device when it is disconnected\n"
"      --disconnect-on-close  disconnect when the last opener closes it\n"
"  -p, --persist              stay resident and reconnect dead connections\n"
"  -f, --foreground           with --persist: do not detach, log to stderr\n"
"      --swap                 --persist for a swap device: mlockall must work,\n"
"                             and memory reclaim never waits on this process\n"
"      --adopt                take over a connected device whose persist process\n"
"                             died: the device is not touched (nbdctl persist)\n"
"  -w, --wait                 return once udev is done with the device and its\n"
"                             partitions (as nbdctl wait)\n"
"      --wait-timeout S       how long --wait waits (default 60)\n"
"      --nbdtab FILE          the table for 'connect DEVICE' (default %s)\n"
"      --handshake-timeout S  give up on a silent server after S s (30)\n"
"      --no-structured-replies  ask the server for simple replies only\n"
"      --no-opt-go            old servers: NBD_OPT_EXPORT_NAME, not NBD_OPT_GO\n"
"\n"
"With only a DEVICE, its line of the nbdtab gives the server and options;\n"
"options on the command line come after the line's, and win.\n"
"\n"
"TLS (nbds://HOST/EXPORT or --tls): the handshake runs in nbdctl, then the\n"
"session's keys go to kernel TLS on the socket (TCP only):\n"
NBD_TLS_USAGE,
		PERSIST_DEFAULT_DEAD, NBDTAB_PATH);
}

enum {
	OPT_STRICT = 0x100,
	OPT_BACKEND,
	OPT_DESTROY,
	OPT_DOC,
	OPT_HS_TIMEOUT,
	OPT_SIZE,
	OPT_ALL,
	OPT_JSON,
	OPT_COUNT,
	OPT_NO_SR,
	OPT_SWAP,
	OPT_ADOPT,
	OPT_UP,
	OPT_WAIT_TIMEOUT,
	OPT_NBDTAB,
	OPT_NO_GO,
};

static const struct option connect_options[] = {
	{ "name", required_argument, NULL, 'N' },
	{ "unix", required_argument, NULL, 'u' },
	{ "connections", required_argument, NULL, 'C' },
	{ "strict", no_argument, NULL, OPT_STRICT },
	{ "block-size", required_argument, NULL, 'b' },
	{ "timeout", required_argument, NULL, 't' },
	{ "dead-timeout", required_argument, NULL, 'D' },
	{ "read-only", no_argument, NULL, 'r' },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "destroy-on-disconnect", no_argument, NULL, OPT_DESTROY },
	{ "disconnect-on-close", no_argument, NULL, OPT_DOC },
	{ "persist", no_argument, NULL, 'p' },
	{ "foreground", no_argument, NULL, 'f' },
	{ "handshake-timeout", required_argument, NULL, OPT_HS_TIMEOUT },
	{ "no-structured-replies", no_argument, NULL, OPT_NO_SR },
	{ "swap", no_argument, NULL, OPT_SWAP },
	{ "adopt", no_argument, NULL, OPT_ADOPT },
	{ "up", no_argument, NULL, OPT_UP },	/* nbdctl up's, internal */
	{ "wait", no_argument, NULL, 'w' },
	{ "wait-timeout", required_argument, NULL, OPT_WAIT_TIMEOUT },
	{ "nbdtab", required_argument, NULL, OPT_NBDTAB },
	{ "no-opt-go", no_argument, NULL, OPT_NO_GO },
	NBD_TLS_LONG_OPTIONS,
	{ "help", no_argument, NULL, 'h' },
	{ }
};

static int parse_connect_args(int argc, char **argv, struct connect_opts *o)
{
	const char *unix_path = NULL, *name = NULL, *pos[3] = { };
	char err[512];
	uint64_t v;
	int c, npos = 0, i, ret;

	memset(o, 0, sizeof(*o));
	o->index = -1;
	o->connections = 1;
	o->hs_timeout = 30;
	o->wait_timeout = 60;
	o->nbdtab = NBDTAB_PATH;
	optind = 0;
	while ((c = getopt_long(argc, argv, "N:u:C:b:t:D:rpfwh",
				connect_options, NULL)) != -1) {
		switch (c) {
		case 'N':
			name = optarg;
			break;
		case 'u':
			unix_path = optarg;
			break;
		case 'C':
			if (parse_uint(optarg, MAX_CONNECTIONS, &o->connections,
				       "--connections") || !o->connections) {
				if (!o->connections)
					nbdctl_err("--connections must be at least 1");
				return NBDCTL_EXIT_USAGE;
			}
			break;
		case OPT_STRICT:
			o->strict = true;
			break;
		case OPT_NO_SR:
			o->no_structured = true;
			break;
		case 'b':
			if (parse_u64(optarg, &v, true) || v > UINT_MAX) {
				nbdctl_err("bad block size '%s'", optarg);
				return NBDCTL_EXIT_USAGE;
			}
			o->block_size = v;
			break;
		case 't':
			if (parse_uint(optarg, INT_MAX, &o->timeout, "--timeout"))
				return NBDCTL_EXIT_USAGE;
			o->set_timeout = true;
			break;
		case 'D':
			if (parse_uint(optarg, INT_MAX, &o->dead_timeout,
				       "--dead-timeout"))
				return NBDCTL_EXIT_USAGE;
			o->set_dead_timeout = true;
			break;
		case 'r':
			o->read_only = true;
			break;
		case OPT_BACKEND:
			o->backend = optarg;
			break;
		case OPT_DESTROY:
			o->client_flags |= NBD_CFLAG_DESTROY_ON_DISCONNECT;
			break;
		case OPT_DOC:
			o->client_flags |= NBD_CFLAG_DISCONNECT_ON_CLOSE;
			break;
		case 'p':
			o->persist = true;
			break;
		case 'f':
			o->foreground = true;
			break;
		case OPT_HS_TIMEOUT:
			if (parse_uint(optarg, 3600, &o->hs_timeout,
				       "--handshake-timeout"))
				return NBDCTL_EXIT_USAGE;
			break;
		case OPT_SWAP:
			o->swap = true;
			o->persist = true;
			break;
		case OPT_ADOPT:
			o->adopt = true;
			o->persist = true;
			break;
		case OPT_UP:
			o->up = true;
			break;
		case 'w':
			o->wait = true;
			break;
		case OPT_WAIT_TIMEOUT:
			if (parse_uint(optarg, 86400, &o->wait_timeout,
				       "--wait-timeout"))
				return NBDCTL_EXIT_USAGE;
			o->wait = true;
			break;
		case OPT_NBDTAB:
			o->nbdtab = optarg;
			break;
		case OPT_NO_GO:
			o->hs.no_go = true;
			break;
		case 'h':
			connect_usage(stdout);
			exit(NBDCTL_EXIT_OK);
		default:
			if (nbd_tls_option(c, optarg, &o->tls))
				break;
			connect_usage(stderr);
			return NBDCTL_EXIT_USAGE;
		}
	}
	for (i = optind; i < argc; i++) {
		if (npos == 3) {
			nbdctl_err("unexpected argument '%s'", argv[i]);
			return NBDCTL_EXIT_USAGE;
		}
		pos[npos++] = argv[i];
	}

	/* The last positional that names a device is the device. */
	if (npos && parse_device(pos[npos - 1], false) >= 0) {
		o->index = parse_device(pos[npos - 1], false);
		npos--;
	}
	if (unix_path) {
		if (npos) {
			nbdctl_err("--unix PATH takes no host, URI or port ('%s')",
				   pos[0]);
			return NBDCTL_EXIT_USAGE;
		}
		ret = nbd_uri_from_args(NULL, NULL, unix_path, name, &o->uri,
					err, sizeof(err));
	} else if (!npos && o->index >= 0) {
		/* connect DEVICE: the server is in the nbdtab */
		o->from_tab = true;
		return 0;
	} else if (!npos) {
		nbdctl_err("connect: which server? Give a URI, HOST [PORT], --unix PATH, or a device listed in %s",
			   o->nbdtab);
		connect_usage(stderr);
		return NBDCTL_EXIT_USAGE;
	} else if (strstr(pos[0], "://")) {
		if (npos > 1) {
			nbdctl_err("unexpected argument '%s' after the URI (a device is /dev/nbdN)",
				   pos[1]);
			return NBDCTL_EXIT_USAGE;
		}
		ret = nbd_uri_parse(pos[0], &o->uri, err, sizeof(err));
		if (!ret && name) {
			free(o->uri.export_name);
			o->uri.export_name = strdup(name);
			if (!o->uri.export_name) {
				nbdctl_err("out of memory");
				return NBDCTL_EXIT_FAIL;
			}
		}
	} else {
		if (npos > 2) {
			nbdctl_err("unexpected argument '%s' (a device is /dev/nbdN)",
				   pos[2]);
			return NBDCTL_EXIT_USAGE;
		}
		ret = nbd_uri_from_args(pos[0], npos > 1 ? pos[1] : NULL, NULL,
					name, &o->uri, err, sizeof(err));
	}
	if (ret) {
		nbdctl_err("%s", err);
		return NBDCTL_EXIT_USAGE;
	}
	ret = nbd_tls_finish(&o->tls, &o->uri);
	if (ret >= 0)
		return ret;
	if (o->tls.enabled && o->uri.socket) {
		nbdctl_err("kernel TLS works on TCP sockets only, and %s is a UNIX socket: use nbds://HOST:PORT/EXPORT (nbdctl info and list-exports do speak TLS over UNIX sockets)",
			   o->uri.socket);
		return NBDCTL_EXIT_USAGE;
	}
	o->hs.tls = &o->tls;
	o->hs.for_kernel = true;
	if (o->persist && !o->set_dead_timeout) {
		o->dead_timeout = PERSIST_DEFAULT_DEAD;
		o->set_dead_timeout = true;
	}
	return 0;
}

static int persist_loop(struct nbdnl *nl, struct nbdnl *ev,
			struct connect_opts *o, int index,
			const struct nbd_export *first);
static int start_persist(struct nbdnl *nl, struct nbdnl *ev,
			 struct connect_opts *o, int index,
			 struct dev_state *st, const struct nbd_export *ex);
static int adopt_device(struct nbdnl *nl, struct nbdnl *ev,
			struct connect_opts *o);
static int connect_from_tab(const struct connect_opts *o, int argc,
			    char **argv);
static int wait_device(int index, unsigned int timeout_s);
static int still_connected(struct nbdnl *nl, int index);

/*
 * What to negotiate, from what the loaded module understands: the stock
 * module ignores NBD_ATTR_EXT, and would break on a structured reply or
 * not keep to block sizes promised in NBD_OPT_GO, so it gets neither.
 */
static int probe_module(struct nbdnl *nl, struct connect_opts *o)
{
	char err[512], version[64];
	uint64_t feat;
	int ret;

	ret = nbdnl_features(nl, &feat, version, sizeof(version), err,
			     sizeof(err));
	if (ret) {
		nbdctl_err("cannot ask the nbd module what it supports: %s%s%s",
			   strerror(-ret), *err ? ": " : "", err);
		return NBDCTL_EXIT_KERNEL;
	}
	o->ext = feat != 0;
	o->hs.structured_replies = !o->no_structured &&
				   (feat & NBD_EXT_FEAT_STRUCTURED_REPLY);
	o->hs.block_size = feat & NBD_EXT_FEAT_BLOCK_SIZE;
	if (!o->ext)
		nbdctl_warn("the loaded nbd module does not support structured replies or block size constraints (the stock module?): using simple replies and not asking for the server's block sizes");
	if (!(feat & NBD_EXT_FEAT_KTLS) && o->tls.enabled)
		nbdctl_warn("the loaded nbd module does not know kernel TLS (the stock module?): data records pass through it, but a TLS alert, key update or session ticket from the server kills its connection with an I/O error; this project's nbd.ko names them and reconnects with --persist");
	else if (nbdctl_verbose)
		nbdctl_info("nbd module %s: features 0x%llx", version,
			    (unsigned long long)feat);
	return 0;
}

/* The reply mode and block sizes of @ex for the kernel (NBD_ATTR_EXT). */
static void ext_params(const struct connect_opts *o,
		       const struct nbd_export *ex, struct nbdnl_params *p)
{
	p->ext = o->ext;
	p->structured = ex->structured;
	p->have_blocks = ex->block_size_requested && ex->have_block_size;
	p->min_block = ex->min_block;
	p->pref_block = ex->pref_block;
	p->max_block = ex->max_block;
}

/* Every connection of a device must speak the same. */
static bool same_protocol(const struct nbd_export *a,
			  const struct nbd_export *b)
{
	if (a->structured != b->structured ||
	    a->have_block_size != b->have_block_size)
		return false;
	return !a->have_block_size ||
	       (a->min_block == b->min_block && a->pref_block == b->pref_block &&
		a->max_block == b->max_block);
}

static void protocol_text(const struct nbd_export *ex, char *buf, size_t len)
{
	if (ex->block_size_requested && ex->have_block_size)
		snprintf(buf, len, "%s replies, block sizes %u/%u/%u kept",
			 ex->structured ? "structured" : "simple",
			 ex->min_block, ex->pref_block, ex->max_block);
	else
		snprintf(buf, len, "%s replies, no block size constraints",
			 ex->structured ? "structured" : "simple");
}

int cmd_connect(int argc, char **argv)
{
	struct nbdnl_params p = { };
	struct connect_opts o;
	struct nbd_export ex = { }, ex2;
	struct dev_state st = { };
	struct nbdnl nl, ev = { };
	char err[1024], sz[32], sz2[128], flags[256], *uri_text = NULL;
	int fds[MAX_CONNECTIONS];
	unsigned int i, n = 0, bs;
	uint64_t size;
	int ret, c, index = -1;

	ret = parse_connect_args(argc, argv, &o);
	if (ret)
		goto out_uri;
	if (o.from_tab) {
		ret = connect_from_tab(&o, argc, argv);
		goto out_uri;
	}
	if ((o.adopt || o.up) && o.index < 0) {
		nbdctl_err("--adopt: which device? Give /dev/nbdN");
		ret = NBDCTL_EXIT_USAGE;
		goto out_uri;
	}
	if (o.swap && mlockall(MCL_CURRENT | MCL_FUTURE)) {
		nbdctl_err("--swap: mlockall failed (%s): the persist process of a swap device must never wait for its own pages",
			   strerror(errno));
		ret = errno == EPERM ? NBDCTL_EXIT_PERM : NBDCTL_EXIT_FAIL;
		goto out_uri;
	}
	ret = open_netlink(&nl);
	if (ret)
		goto out_uri;
	ret = probe_module(&nl, &o);
	if (ret)
		goto out_nl;
	/*
	 * Join the group first, so that no LINK_DEAD can be missed, on a
	 * socket of its own: replies to requests must not swallow events.
	 */
	if (o.persist && (nbdnl_open(&ev, err, sizeof(err)) ||
			  nbdnl_subscribe(&ev, err, sizeof(err)))) {
		nbdctl_err("%s", err);
		ret = NBDCTL_EXIT_KERNEL;
		goto out_nl;
	}

	/* nbdctl up and --adopt: a device that is connected already */
	if (o.up || o.adopt) {
		c = still_connected(&nl, o.index);
		if (c < 0) {
			nbdctl_err("cannot ask the kernel about /dev/nbd%d",
				   o.index);
			ret = NBDCTL_EXIT_KERNEL;
			goto out_nl;
		}
		if (c) {
			ret = adopt_device(&nl, &ev, &o);
			goto out_nl;
		}
		if (o.adopt) {
			nbdctl_err("/dev/nbd%d is not connected: there is nothing to adopt (nbdctl connect attaches it)",
				   o.index);
			ret = NBDCTL_EXIT_KERNEL;
			goto out_nl;
		}
	}

	fds[0] = open_conn(&o, &ex, err, sizeof(err));
	if (fds[0] < 0) {
		nbdctl_err("%s", err);
		ret = NBDCTL_EXIT_SERVER;
		goto out_nl;
	}
	n = 1;
	if (o.connections > 1 && !(ex.flags & NBD_FLAG_CAN_MULTI_CONN)) {
		if (o.strict) {
			nbdctl_err("the server does not allow several connections (no CAN_MULTI_CONN); --strict asked for %u",
				   o.connections);
			ret = NBDCTL_EXIT_SERVER;
			goto out_fds;
		}
		nbdctl_warn("the server does not allow several connections (no CAN_MULTI_CONN): using one");
		o.connections = 1;
	}
	if (choose_block_size(&o, &ex, &bs)) {
		ret = NBDCTL_EXIT_USAGE;
		goto out_fds;
	}
	size = ex.size;
	if (size % bs) {
		nbdctl_warn("the export's size %llu is not a multiple of the block size %u: the last %llu bytes are not used",
			    (unsigned long long)size, bs,
			    (unsigned long long)(size % bs));
		size -= size % bs;
	}
	if (!size) {
		nbdctl_err("the export is empty (%llu bytes): nothing to attach",
			   (unsigned long long)ex.size);
		ret = NBDCTL_EXIT_SERVER;
		goto out_fds;
	}
	for (; n < o.connections; n++) {
		memset(&ex2, 0, sizeof(ex2));
		fds[n] = open_conn(&o, &ex2, err, sizeof(err));
		if (fds[n] < 0) {
			nbdctl_err("connection %u: %s", n + 1, err);
			ret = NBDCTL_EXIT_SERVER;
			goto out_fds;
		}
		if (ex2.size != ex.size || ex2.flags != ex.flags) {
			nbdctl_err("connection %u: the server now offers %llu bytes with flags 0x%x, the first connection got %llu bytes with flags 0x%x",
				   n + 1, (unsigned long long)ex2.size,
				   ex2.flags, (unsigned long long)ex.size,
				   ex.flags);
			nbd_export_free(&ex2);
			close(fds[n]);
			ret = NBDCTL_EXIT_SERVER;
			goto out_fds;
		}
		if (!same_protocol(&ex, &ex2)) {
			nbdctl_err("connection %u: the server negotiated other reply modes or block sizes than on the first connection",
				   n + 1);
			nbd_export_free(&ex2);
			close(fds[n]);
			ret = NBDCTL_EXIT_SERVER;
			goto out_fds;
		}
		nbd_export_free(&ex2);
	}

	uri_text = nbd_uri_format(&o.uri);
	p.index = o.index;
	p.size = size;
	p.block_size = bs;
	p.set_timeout = o.set_timeout;
	p.timeout = o.timeout;
	p.set_dead_timeout = o.set_dead_timeout;
	p.dead_timeout = o.dead_timeout;
	p.set_server_flags = true;
	p.server_flags = ex.flags | (o.read_only ? NBD_FLAG_READ_ONLY : 0);
	p.set_client_flags = o.client_flags != 0;
	p.client_flags = o.client_flags;
	p.backend = o.backend ? o.backend : uri_text;
	p.fds = fds;
	p.nfds = n;
	ext_params(&o, &ex, &p);
	ret = nbdnl_connect(&nl, &p, &index, err, sizeof(err));
	if (ret) {
		ret = kernel_error("connect", o.index, ret, err);
		goto out_fds;
	}
	if (index < 0) {
		nbdctl_err("connect: the kernel did not say which device it attached");
		ret = NBDCTL_EXIT_KERNEL;
		goto out_fds;
	}
	/* The kernel holds the sockets now. */
	for (i = 0; i < n; i++)
		close(fds[i]);
	n = 0;

	human_size(size, sz, sizeof(sz));
	nbd_flags_text(p.server_flags, flags, sizeof(flags));
	printf("/dev/nbd%d: %s (%llu bytes), block size %u, %u connection%s, %s\n",
	       index, sz, (unsigned long long)size, bs, o.connections,
	       o.connections == 1 ? "" : "s", uri_text ? uri_text : "");
	nbdctl_info("flags: %s", flags);
	if (ex.tls[0])
		printf("/dev/nbd%d: kernel TLS: %s\n", index, ex.tls);
	protocol_text(&ex, sz2, sizeof(sz2));
	nbdctl_info("protocol: %s", sz2);
	fflush(stdout);

	snprintf(st.uri, sizeof(st.uri), "%s", uri_text ? uri_text : "");
	snprintf(st.backend, sizeof(st.backend), "%s", p.backend);
	st.connections = o.connections;
	st.flags = p.server_flags;
	st.block_size = bs;
	snprintf(st.replies, sizeof(st.replies), "%s",
		 ex.structured ? "structured" : "simple");
	snprintf(st.tls, sizeof(st.tls), "%s", ex.tls);
	if (p.have_blocks) {
		st.min_block = ex.min_block;
		st.pref_block = ex.pref_block;
		st.max_block = ex.max_block;
	}
	ret = 0;
	if (o.wait && wait_device(index, o.wait_timeout)) {
		nbdctl_err("/dev/nbd%d stays attached", index);
		ret = NBDCTL_EXIT_FAIL;
	}
	if (!o.persist) {
		state_write(index, &st);
		goto out_fds;
	}
	c = start_persist(&nl, &ev, &o, index, &st, &ex);
	if (c)
		ret = c;

out_fds:
	for (i = 0; i < n; i++)
		close(fds[i]);
	nbd_export_free(&ex);
	free(uri_text);
out_nl:
	nbdnl_close(&ev);
	nbdnl_close(&nl);
out_uri:
	nbd_uri_free(&o.uri);
	return ret;
}

/* --- persist --------------------------------------------------------------- */

static volatile sig_atomic_t persist_stop;
static bool persist_syslog;

static void on_stop_signal(int sig)
{
	persist_stop = sig;
}

static void plog(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void plog(int prio, const char *fmt, ...)
{
	va_list ap;
	char stamp[32];
	struct tm tm;
	time_t now;

	va_start(ap, fmt);
	if (persist_syslog) {
		vsyslog(prio, fmt, ap);
	} else {
		now = time(NULL);
		localtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
		fprintf(stderr, "%s nbdctl[%ld]: ", stamp, (long)getpid());
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}

static void notify(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct persist {
	int index;
	unsigned int dead;	/* connections the kernel reported dead */
	unsigned long events;
};

static int on_link_dead(void *arg, int index)
{
	struct persist *ps = arg;

	if (index == ps->index) {
		ps->dead++;
		ps->events++;
		plog(LOG_WARNING, "/dev/nbd%d: a connection died (LINK_DEAD)",
		     index);
	}
	return 0;
}

static int on_status_one(void *arg, int index, bool connected)
{
	bool *c = arg;

	*c = connected;
	return 0;
}

/* Is the device still connected?  1 yes, 0 no, -1 cannot tell. */
static int still_connected(struct nbdnl *nl, int index)
{
	char err[256];
	bool c = false;

	if (nbdnl_status(nl, index, on_status_one, &c, err, sizeof(err)))
		return -1;
	return c;
}

/*
 * The persist process is what brings a dead connection back: the OOM
 * killer must not pick it when memory runs out, which is when a swap
 * device or a file system on nbd needs it most (as iscsid and
 * multipathd ask systemd with OOMScoreAdjust=-1000).
 */
static void protect_from_oom(void)
{
	FILE *f = fopen("/proc/self/oom_score_adj", "w");
	int bad;

	if (!f) {
		bad = errno;
	} else {
		bad = fputs("-1000\n", f) == EOF ? errno : 0;
		if (fclose(f) == EOF && !bad)
			bad = errno;
	}
	if (bad)
		plog(LOG_WARNING, "cannot set oom_score_adj to -1000 (%s): the OOM killer may end this process",
		     strerror(bad));
}

/*
 * reconnect_one - a new connection handed to the kernel for a dead one.
 * Returns 0, 1 when the kernel has no dead connection to replace, -1 on
 * failure (logged).
 */
static int reconnect_one(struct nbdnl *nl, struct connect_opts *o,
			 int index, const struct nbd_export *first,
			 const char *backend)
{
	struct nbdnl_params p = { .index = index, .backend = backend };
	struct nbd_export ex = { };
	unsigned int lookups = o->addrs.lookups;
	char err[1024];
	int fd, ret;

	fd = open_conn(o, &ex, err, sizeof(err));
	if (o->addrs.lookups != lookups)
		plog(LOG_NOTICE, "/dev/nbd%d: no address found at connect answered: looked %s up again",
		     index, o->uri.host);
	if (fd < 0) {
		plog(LOG_WARNING, "/dev/nbd%d: reconnect failed: %s", index,
		     err);
		return -1;
	}
	if (ex.size != first->size || ex.flags != first->flags) {
		plog(LOG_ERR, "/dev/nbd%d: the server now offers %llu bytes with flags 0x%x instead of %llu bytes with flags 0x%x: not reconnecting to a different export",
		     index, (unsigned long long)ex.size, ex.flags,
		     (unsigned long long)first->size, first->flags);
		nbd_export_free(&ex);
		close(fd);
		return -1;
	}
	if (!same_protocol(first, &ex)) {
		plog(LOG_ERR, "/dev/nbd%d: the server now negotiates other reply modes or block sizes: not reconnecting",
		     index);
		nbd_export_free(&ex);
		close(fd);
		return -1;
	}
	ext_params(o, &ex, &p);
	nbd_export_free(&ex);
	p.fds = &fd;
	p.nfds = 1;
	ret = nbdnl_reconfigure(nl, &p, err, sizeof(err));
	close(fd);
	/* Every connection is alive (also what a stock nbd.ko says). */
	if (ret == -ENOSPC)
		return 1;
	if (ret) {
		plog(LOG_WARNING, "/dev/nbd%d: the kernel refused the new connection: %s%s%s",
		     index, strerror(-ret), *err ? ": " : "", err);
		return -1;
	}
	plog(LOG_NOTICE, "/dev/nbd%d: reconnected", index);
	return 0;
}

static int persist_loop(struct nbdnl *nl, struct nbdnl *ev,
			struct connect_opts *o, int index,
			const struct nbd_export *first)
{
	struct persist ps = { .index = index };
	struct sigaction sa = { .sa_handler = on_stop_signal };
	int64_t next_try = 0, next_status, backoff = BACKOFF_MIN_MS, now;
	int64_t backoff_max = BACKOFF_MAX_MS;
	const char *backend;
	char err[512], *uri_text;
	struct pollfd pfd;
	int ret, c, timeout;

	persist_syslog = !o->foreground;
	if (persist_syslog)
		openlog("nbdctl", LOG_PID, LOG_DAEMON);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/*
	 * systemd's shutdown leaves processes whose argv[0] starts with '@'
	 * to the end: file systems on the device are unmounted first.
	 */
	if (nbdctl_argv && nbdctl_argv[0] && nbdctl_argv[0][0])
		nbdctl_argv[0][0] = '@';
	/* Never wait for pages that would have to come over this device. */
	if (mlockall(MCL_CURRENT | MCL_FUTURE))
		plog(o->swap ? LOG_ERR : LOG_WARNING,
		     "mlockall failed: %s; under memory pressure reconnecting may stall",
		     strerror(errno));
	protect_from_oom();
	/*
	 * Memory reclaim must not make a reconnect wait for writeback to
	 * this very device (swap or dirty pages of a file system on it).
	 */
	if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) && (o->swap || nbdctl_verbose))
		plog(o->swap ? LOG_ERR : LOG_INFO,
		     "cannot mark this process an I/O flusher (PR_SET_IO_FLUSHER: %s): reclaim may wait on it",
		     strerror(errno));

	uri_text = nbd_uri_format(&o->uri);
	backend = o->backend ? o->backend : uri_text;
	plog(LOG_NOTICE, "/dev/nbd%d: watching %u connection%s to %s (dead-connection timeout %u s)",
	     index, o->connections, o->connections == 1 ? "" : "s",
	     uri_text ? uri_text : "?", o->dead_timeout);

	/*
	 * A server down for a while is tried again and again, less often
	 * each time, but at least four times within the dead-connection
	 * timeout: a restarted server must be found before I/O gives up.
	 */
	if (o->dead_timeout && (int64_t)o->dead_timeout * 1000 / 4 < backoff_max)
		backoff_max = (int64_t)o->dead_timeout * 1000 / 4;
	if (backoff_max < BACKOFF_MIN_MS)
		backoff_max = BACKOFF_MIN_MS;

	/*
	 * Adopted: connections may have died while nobody watched.  Try
	 * each; the kernel says ENOSPC when none is dead.
	 */
	if (o->adopt)
		ps.dead = o->connections;
	notify("READY=1\nSTATUS=/dev/nbd%d: %u connection%s to %s\nMAINPID=%ld",
	       index, o->connections, o->connections == 1 ? "" : "s",
	       uri_text ? uri_text : "?", (long)getpid());

	pfd.fd = nbdnl_fd(ev);
	pfd.events = POLLIN;
	next_status = now_ms() + STATUS_EVERY_MS;
	while (!persist_stop) {
		now = now_ms();
		timeout = next_status - now;
		if (ps.dead && next_try - now < timeout)
			timeout = next_try - now;
		if (timeout < 0)
			timeout = 0;
		ret = poll(&pfd, 1, timeout);
		if (ret < 0 && errno != EINTR) {
			plog(LOG_ERR, "poll: %s", strerror(errno));
			break;
		}
		if (ret > 0) {
			ret = nbdnl_read_events(ev, on_link_dead, &ps, err,
						sizeof(err));
			if (ret == -ENOBUFS) {
				/* Events lost: try every connection. */
				plog(LOG_WARNING, "netlink notifications were lost; checking every connection");
				ps.dead = o->connections;
			} else if (ret < 0) {
				plog(LOG_ERR, "%s", err);
				break;
			}
		}
		now = now_ms();
		if (now >= next_status) {
			next_status = now + STATUS_EVERY_MS;
			c = still_connected(nl, index);
			if (c == 0) {
				plog(LOG_NOTICE, "/dev/nbd%d was disconnected; exiting",
				     index);
				break;
			}
		}
		if (ps.dead && now >= next_try) {
			ret = reconnect_one(nl, o, index, first, backend);
			if (ret == 0 || ret == 1) {
				ps.dead = ret ? 0 : ps.dead - 1;
				backoff = BACKOFF_MIN_MS;
				next_try = now;
				if (!ps.dead)
					notify("STATUS=/dev/nbd%d: %u connection%s to %s",
					       index, o->connections,
					       o->connections == 1 ? "" : "s",
					       uri_text ? uri_text : "?");
			} else {
				notify("STATUS=/dev/nbd%d: reconnecting, %u connection%s dead",
				       index, ps.dead, ps.dead == 1 ? "" : "s");
				if (still_connected(nl, index) == 0) {
					plog(LOG_NOTICE, "/dev/nbd%d was disconnected (the dead-connection timeout may have passed); exiting",
					     index);
					break;
				}
				next_try = now + backoff;
				backoff = backoff * 2 > backoff_max ?
					  backoff_max : backoff * 2;
			}
		}
	}
	if (persist_stop)
		plog(LOG_NOTICE, "/dev/nbd%d: signal %d, exiting (the device stays attached)",
		     index, (int)persist_stop);
	notify("STOPPING=1");
	free(uri_text);
	/* gone without being asked to: a service manager may restart us */
	return persist_stop ? 0 : NBDCTL_EXIT_FAIL;
}

/* --- systemd: readiness and status (sd_notify's protocol) ------------------ */

/*
 * notify - one datagram to $NOTIFY_SOCKET ("READY=1", "STATUS=...") when a
 * service manager started us with Type=notify; nothing otherwise.
 */
static void notify(const char *fmt, ...)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char msg[512];
	size_t plen;
	va_list ap;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	plen = strlen(path);
	if (plen >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@')		/* an abstract socket */
		sa.sun_path[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   offsetof(struct sockaddr_un, sun_path) + plen) < 0)
		plog(LOG_WARNING, "cannot tell the service manager '%s': %s",
		     msg, strerror(errno));
	close(fd);
}

/*
 * start_persist - the persist process for @index: this one (--foreground)
 * or a child that detaches.  Returns the exit code for this process.
 */
static int start_persist(struct nbdnl *nl, struct nbdnl *ev,
			 struct connect_opts *o, int index,
			 struct dev_state *st, const struct nbd_export *ex)
{
	pid_t child;
	int fd;

	if (o->foreground) {
		st->pid = getpid();
		state_write(index, st);
		return persist_loop(nl, ev, o, index, ex);
	}
	child = fork();
	if (child < 0) {
		nbdctl_err("cannot fork the persist process: %s; /dev/nbd%d stays attached without it",
			   strerror(errno), index);
		state_write(index, st);
		return NBDCTL_EXIT_FAIL;
	}
	if (child) {
		st->pid = child;
		state_write(index, st);
		printf("persist process %ld keeps /dev/nbd%d connected\n",
		       (long)child, index);
		return 0;
	}
	/* Not this process's service manager's to hear from. */
	unsetenv("NOTIFY_SOCKET");
	setsid();
	/* The loop opens no relative path: a failure is harmless. */
	(void)!chdir("/");
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return persist_loop(nl, ev, o, index, ex);
}

/*
 * adopt_device - take over a device that is connected already (its persist
 * process died, or nbdctl up finds it up): the device is not touched.  The
 * backend identifier must be the one this server and export give, and a
 * handshake must find the export the device was attached to.
 */
static int adopt_device(struct nbdnl *nl, struct nbdnl *ev,
			struct connect_opts *o)
{
	struct nbd_export ex = { };
	struct dev_state st;
	char err[1024], cur[1024], *uri_text;
	const char *backend;
	uint64_t bytes, want;
	unsigned int bs;
	bool have_st;
	int fd, ret, index = o->index;
	pid_t pid;

	uri_text = nbd_uri_format(&o->uri);
	if (!uri_text) {
		nbdctl_err("out of memory");
		return NBDCTL_EXIT_FAIL;
	}
	backend = o->backend ? o->backend : uri_text;
	have_st = !state_read(index, &st);
	if (read_sysfs(index, "backend", cur, sizeof(cur))) {
		/* an old kernel without the file: the state file's word */
		snprintf(cur, sizeof(cur), "%s", have_st ? st.backend : "");
	}
	if (strcmp(cur, backend)) {
		nbdctl_err("/dev/nbd%d is connected to '%s', not '%s'%s",
			   index, *cur ? cur : "(no backend identifier)",
			   backend,
			   o->up ? ": nbdctl down it first" : ": not adopting another device's connection");
		ret = NBDCTL_EXIT_KERNEL;
		goto out;
	}
	if (have_st && strcmp(st.backend, cur))
		have_st = false;	/* a file of an earlier session */
	pid = have_st ? persist_pid(&st) : 0;
	if (pid > 0 && o->up && !o->foreground) {
		printf("/dev/nbd%d is up (%s), kept by persist process %ld\n",
		       index, backend, (long)pid);
		ret = 0;
		goto out;
	}
	if (pid > 0) {
		nbdctl_err("/dev/nbd%d is kept by persist process %ld already (nbdctl disconnect, or kill it first)",
			   index, (long)pid);
		ret = NBDCTL_EXIT_FAIL;
		goto out;
	}
	if (!o->persist) {
		printf("/dev/nbd%d is up (%s)\n", index, backend);
		ret = 0;
		goto out;
	}

	/* The server must still offer what the device was attached to. */
	fd = open_conn(o, &ex, err, sizeof(err));
	if (fd < 0) {
		nbdctl_err("cannot check the export of /dev/nbd%d: %s", index,
			   err);
		ret = NBDCTL_EXIT_SERVER;
		goto out;
	}
	close(fd);
	bs = have_st && st.block_size ? st.block_size : 512;
	bytes = device_bytes(index);
	want = ex.size - ex.size % bs;
	if (bytes != want) {
		nbdctl_err("/dev/nbd%d has %llu bytes, the export %llu (%llu in blocks of %u): not adopting a different export",
			   index, (unsigned long long)bytes,
			   (unsigned long long)ex.size,
			   (unsigned long long)want, bs);
		ret = NBDCTL_EXIT_SERVER;
		goto out;
	}
	if (have_st && ((st.flags ^ ex.flags) & ~NBD_FLAG_READ_ONLY)) {
		nbdctl_err("/dev/nbd%d was attached with flags 0x%x, the server now offers 0x%x: not adopting it",
			   index, st.flags, ex.flags);
		ret = NBDCTL_EXIT_SERVER;
		goto out;
	}
	if (have_st && st.replies[0] &&
	    strcmp(st.replies, ex.structured ? "structured" : "simple")) {
		nbdctl_err("/dev/nbd%d speaks %s replies, the server now negotiates %s ones: not adopting it",
			   index, st.replies,
			   ex.structured ? "structured" : "simple");
		ret = NBDCTL_EXIT_SERVER;
		goto out;
	}
	if (!have_st) {
		memset(&st, 0, sizeof(st));
		snprintf(st.uri, sizeof(st.uri), "%s", uri_text);
		snprintf(st.backend, sizeof(st.backend), "%s", backend);
		st.connections = o->connections;
		st.flags = ex.flags | (o->read_only ? NBD_FLAG_READ_ONLY : 0);
		st.block_size = bs;
		snprintf(st.replies, sizeof(st.replies), "%s",
			 ex.structured ? "structured" : "simple");
		snprintf(st.tls, sizeof(st.tls), "%s", ex.tls);
	}
	/* Which connections died while nobody watched, the kernel says. */
	o->adopt = true;
	o->connections = st.connections ? st.connections : o->connections;
	printf("/dev/nbd%d: adopted (%s, %u connection%s)\n", index, backend,
	       o->connections, o->connections == 1 ? "" : "s");
	fflush(stdout);
	ret = start_persist(nl, ev, o, index, &st, &ex);
out:
	nbd_export_free(&ex);
	free(uri_text);
	return ret;
}

struct tab_args {
	int argc;
	char **argv;
	/* what to free: getopt permutes argv, so not argv[0 .. owned-1] */
	char **own;
	int owned;
};

static int tab_args_cb(void *arg, struct nbdtab_entry *e)
{
	struct tab_args *t = arg;
	int i;

	/* the line's arguments without its device, which comes last */
	for (i = 0; i < e->argc - 1; i++) {
		t->argv[i] = strdup(e->argv[i]);
		if (!t->argv[i])
			return -ENOMEM;
		t->own[t->owned++] = t->argv[i];
	}
	t->argc = e->argc - 1;
	return 0;
}

static int state_args(struct tab_args *t, const struct dev_state *st)
{
	char n[16];
	const char *a[] = { "connect", st->uri, "--connections", n,
			    "--backend", st->backend };
	unsigned int i;

	snprintf(n, sizeof(n), "%u", st->connections ? st->connections : 1);
	for (i = 0; i < ARRAY_SIZE(a); i++) {
		t->argv[i] = strdup(a[i]);
		if (!t->argv[i])
			return -ENOMEM;
		t->own[t->owned++] = t->argv[i];
	}
	t->argc = i;
	return 0;
}

/*
 * connect_from_tab - "connect DEVICE [options]": the device's line of the
 * nbdtab, then the command line's options (getopt lets the last one win).
 */
static int connect_from_tab(const struct connect_opts *o, int argc,
			    char **argv)
{
	struct tab_args t = { };
	struct dev_state st;
	char dev[32], err[1024];
	size_t n;
	int i, ret;

	snprintf(dev, sizeof(dev), "nbd%d", o->index);
	n = ARRAY_SIZE(((struct nbdtab_entry *)0)->argv) + argc + 1;
	t.argv = calloc(n, sizeof(*t.argv));
	t.own = calloc(n, sizeof(*t.own));
	if (!t.argv || !t.own) {
		nbdctl_err("out of memory");
		return NBDCTL_EXIT_FAIL;
	}
	ret = nbdtab_find(o->nbdtab, dev, false, tab_args_cb, &t, err,
			  sizeof(err));
	if (ret == -ENOENT && o->adopt && !state_read(o->index, &st) &&
	    st.uri[0]) {
		/* nbdctl persist DEVICE: the server it was attached to */
		ret = state_args(&t, &st);
	}
	if (ret) {
		if (ret == -ENOMEM)
			nbdctl_err("out of memory");
		else
			nbdctl_err("%s", err);
		/* no table, no line, or a bad one: the command line's fault */
		ret = ret == -ENOMEM ? NBDCTL_EXIT_FAIL : NBDCTL_EXIT_USAGE;
		goto out;
	}
	for (i = 1; i < argc; i++)
		t.argv[t.argc++] = argv[i];
	t.argv[t.argc] = NULL;
	if (nbdctl_verbose) {
		fprintf(stderr, "nbdctl: %s:", o->nbdtab);
		for (i = 0; i < t.argc; i++)
			fprintf(stderr, " %s", t.argv[i]);
		fputc('\n', stderr);
	}
	ret = cmd_connect(t.argc, t.argv);
out:
	for (i = 0; i < t.owned; i++)
		free(t.own[i]);
	free(t.own);
	free(t.argv);
	return ret;
}

/* --- waiting for udev -------------------------------------------------------- */

static bool udev_running(void)
{
	return !access("/run/udev/control", F_OK);
}

/* The device node and one for each partition the kernel found. */
static bool nodes_present(int index, char *missing, size_t len)
{
	char path[300], node[300];
	struct stat sb;
	struct dirent *d;
	size_t plen;
	DIR *dir;
	bool ok = true;

	snprintf(node, sizeof(node), "/dev/nbd%d", index);
	if (stat(node, &sb) || !S_ISBLK(sb.st_mode)) {
		snprintf(missing, len, "%s", node);
		return false;
	}
	snprintf(path, sizeof(path), "/sys/block/nbd%d", index);
	dir = opendir(path);
	if (!dir)
		return true;
	snprintf(node, sizeof(node), "nbd%dp", index);
	plen = strlen(node);
	while (ok && (d = readdir(dir))) {
		if (strncmp(d->d_name, node, plen))
			continue;
		snprintf(path, sizeof(path), "/dev/%s", d->d_name);
		if (stat(path, &sb) || !S_ISBLK(sb.st_mode)) {
			snprintf(missing, len, "%s", path);
			ok = false;
		}
	}
	closedir(dir);
	return ok;
}

/* udevadm settle: until udev has handled every event queued so far. */
static int udev_settle(unsigned int timeout_s)
{
	char arg[32];
	pid_t pid;
	int status;

	snprintf(arg, sizeof(arg), "--timeout=%u", timeout_s ? timeout_s : 1);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		execlp("udevadm", "udevadm", "settle", arg, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * wait_device - until @index is connected, udev has processed it and the
 * nodes of the device and its partitions are there, for @timeout_s at most.
 * Returns 0, or 1 with the reason printed.
 */
static int wait_device(int index, unsigned int timeout_s)
{
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000, left;
	char buf[64], missing[300] = "";
	bool udev = udev_running(), settled = false;
	int rc;

	for (;;) {
		left = deadline - now_ms();
		if (!read_sysfs(index, "pid", buf, sizeof(buf)) &&
		    device_bytes(index)) {
			if (udev && !settled) {
				rc = udev_settle(left > 0 ? (left + 999) / 1000 : 1);
				if (rc == 127 || rc < 0) {
					nbdctl_warn("cannot run udevadm settle: not waiting for udev");
					udev = false;
				} else if (rc == 0) {
					settled = true;
				}
			}
			if ((!udev || settled) &&
			    nodes_present(index, missing, sizeof(missing)))
				return 0;
			/* a partition appeared late: settle again */
			settled = false;
		}
		if (left <= 0)
			break;
		usleep(100 * 1000);
	}
	if (read_sysfs(index, "pid", buf, sizeof(buf)))
		nbdctl_err("/dev/nbd%d is not connected after %u s", index,
			   timeout_s);
	else if (*missing)
		nbdctl_err("/dev/nbd%d: %s did not appear within %u s", index,
			   missing, timeout_s);
	else
		nbdctl_err("/dev/nbd%d: udev was not done with it within %u s",
			   index, timeout_s);
	return 1;
}

/* --- disconnect ------------------------------------------------------------ */

/* A persist process whose device went away without it: stop it. */
static void stop_orphan(int index)
{
	struct dev_state st;
	pid_t pid;

	if (state_read(index, &st))
		return;
	pid = persist_pid(&st);
	if (pid > 0 && pid != getpid())
		kill(pid, SIGTERM);
	state_remove(index);
}

static int disconnect_one(struct nbdnl *nl, int index, bool quiet_absent)
{
	struct dev_state st;
	char err[512];
	pid_t pid;
	int ret;

	/* The persist process must not reconnect what we disconnect. */
	if (!state_read(index, &st) && state_matches(index, &st)) {
		pid = persist_pid(&st);
		if (pid > 0 && pid != getpid())
			kill(pid, SIGTERM);
	}
	ret = nbdnl_disconnect(nl, index, err, sizeof(err));
	if (ret) {
		if (quiet_absent && (ret == -ENOENT || ret == -ENODEV))
			return 0;
		return kernel_error("disconnect", index, ret, err);
	}
	state_remove(index);
	return 0;
}

struct all_walk {
	struct nbdnl *nl;
	int ret;
	int count;
};

static int disconnect_walk(void *arg, int index, bool connected)
{
	struct all_walk *w = arg;
	int ret;

	if (!connected)
		return 0;
	w->count++;
	ret = disconnect_one(w->nl, index, true);
	if (ret && !w->ret)
		w->ret = ret;
	return 0;
}

int cmd_disconnect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "if-connected", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct nbdnl nl;
	bool all = false, if_connected = false;
	char err[512];
	int c, i, index, ret = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "ah", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			all = true;
			break;
		case 'i':
			if_connected = true;
			break;
		case 'h':
			printf("usage: nbdctl disconnect [--if-connected] DEVICE|INDEX...\n       nbdctl disconnect --all\n");
			return NBDCTL_EXIT_OK;
		default:
			return NBDCTL_EXIT_USAGE;
		}
	}
	if (all == (optind < argc)) {
		nbdctl_err("disconnect: give devices (/dev/nbdN, nbdN or N) or --all");
		return NBDCTL_EXIT_USAGE;
	}
	for (i = optind; i < argc; i++) {
		if (parse_device(argv[i], true) < 0) {
			nbdctl_err("'%s' is not an nbd device (/dev/nbdN, nbdN or N)",
				   argv[i]);
			return NBDCTL_EXIT_USAGE;
		}
	}
	ret = open_netlink(&nl);
	if (ret)
		return ret;
	if (all) {
		struct all_walk w = { .nl = &nl };

		ret = nbdnl_status(&nl, -1, disconnect_walk, &w, err,
				   sizeof(err));
		if (ret < 0)
			ret = kernel_error("status", -1, ret, err);
		else
			ret = w.ret;
	}
	for (i = optind; i < argc && !all; i++) {
		index = parse_device(argv[i], true);
		/* nbdctl down: one that is not connected is done already */
		if (if_connected && still_connected(&nl, index) == 0) {
			stop_orphan(index);
			nbdctl_info("/dev/nbd%d is not connected", index);
			continue;
		}
		c = disconnect_one(&nl, index, if_connected);
		if (c && !ret)
			ret = c;
	}
	nbdnl_close(&nl);
	return ret;
}

/* --- list ------------------------------------------------------------------- */

struct dev_info {
	int index;
	bool connected;
	uint64_t size;
	unsigned int block_size;
	bool read_only;
	long pid;
	char backend[1024];
	bool have_state;
	struct dev_state st;
	unsigned int flags;
	bool have_flags;
	char replies[16];		/* "" when unknown */
	unsigned int min_block, pref_block, max_block;	/* 0: none */
	char tls[400];			/* "" when none or unknown */
};

/*
 * The reply mode and block size constraints: from this driver's debugfs
 * file when it has one (what the kernel does), else the state file.
 */
static void device_protocol(struct dev_info *d)
{
	char path[96], buf[256];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/debug/nbd/nbd%d/protocol",
		 d->index);
	f = fopen(path, "re");
	if (!f) {
		if (!d->have_state)
			return;
		snprintf(d->replies, sizeof(d->replies), "%s", d->st.replies);
		snprintf(d->tls, sizeof(d->tls), "%s", d->st.tls);
		d->min_block = d->st.min_block;
		d->pref_block = d->st.pref_block;
		d->max_block = d->st.max_block;
		return;
	}
	while (fgets(buf, sizeof(buf), f)) {
		if (sscanf(buf, "replies: %15s", d->replies) == 1)
			continue;
		/* the kernel's view of the first connection's TLS */
		if (!*d->tls && sscanf(buf, "conn0: tls: %127[^\n]", d->tls) == 1) {
			if (!strcmp(d->tls, "none"))
				d->tls[0] = '\0';
			continue;
		}
		if (sscanf(buf, "block_size_constraints: minimum %u preferred %u maximum %u",
			   &d->min_block, &d->pref_block, &d->max_block) != 3)
			continue;
		if (!d->max_block)
			d->max_block = 0xffffffffU;	/* no limit */
	}
	fclose(f);
}

/* Flags from the state file, else from debugfs (both drivers show them). */
static bool device_flags(int index, unsigned int *flags)
{
	char path[96], buf[256], *p;
	FILE *f;
	bool ok = false;

	snprintf(path, sizeof(path), "/sys/kernel/debug/nbd/nbd%d/flags", index);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(buf, sizeof(buf), f)) {
		p = strstr(buf, "0x");
		if (!strncmp(buf, "Hex:", 4) && p) {
			*flags = strtoul(p, NULL, 16);
			ok = true;
			break;
		}
	}
	fclose(f);
	return ok;
}

static void collect(struct dev_info *d, int index, bool connected)
{
	char buf[64];

	memset(d, 0, sizeof(*d));
	d->index = index;
	d->connected = connected;
	if (!connected)
		return;
	d->size = device_bytes(index);
	if (!read_sysfs(index, "queue/logical_block_size", buf, sizeof(buf)))
		d->block_size = strtoul(buf, NULL, 10);
	if (!read_sysfs(index, "ro", buf, sizeof(buf)))
		d->read_only = buf[0] == '1';
	if (!read_sysfs(index, "pid", buf, sizeof(buf)))
		d->pid = strtol(buf, NULL, 10);
	read_sysfs(index, "backend", d->backend, sizeof(d->backend));
	if (!state_read(index, &d->st) && state_matches(index, &d->st))
		d->have_state = true;
	if (d->have_state && d->st.flags) {
		d->flags = d->st.flags;
		d->have_flags = true;
	} else {
		d->have_flags = device_flags(index, &d->flags);
	}
	device_protocol(d);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

struct list_walk {
	bool json;
	int only;		/* -1: every device */
	int count;
	bool found;
};

static int list_walk_one(void *arg, int index, bool connected)
{
	struct list_walk *w = arg;
	struct dev_info d;
	char sz[32], flags[256] = "";
	const char *server;
	pid_t pp;

	if (w->only >= 0 && index != w->only)
		return 0;
	w->found = true;
	collect(&d, index, connected);
	if (d.have_flags)
		nbd_flags_text(d.flags, flags, sizeof(flags));
	server = d.have_state ? d.st.uri : d.backend;
	pp = d.have_state ? persist_pid(&d.st) : 0;

	if (w->json) {
		printf("%s\n  {\"device\": \"/dev/nbd%d\", \"index\": %d, \"connected\": %s",
		       w->count ? "," : "", index, index,
		       connected ? "true" : "false");
		if (connected) {
			printf(", \"size\": %llu, \"block_size\": %u, \"read_only\": %s",
			       (unsigned long long)d.size, d.block_size,
			       d.read_only ? "true" : "false");
			printf(", \"connections\": ");
			if (d.have_state)
				printf("%u", d.st.connections);
			else
				printf("null");
			printf(", \"server\": ");
			if (*server)
				json_string(stdout, server);
			else
				printf("null");
			printf(", \"backend\": ");
			json_string(stdout, d.backend);
			printf(", \"flags\": ");
			if (d.have_flags) {
				printf("%u, \"flag_names\": ", d.flags);
				json_string(stdout, flags);
			} else {
				printf("null, \"flag_names\": null");
			}
			printf(", \"pid\": %ld, \"persist_pid\": %ld", d.pid,
			       (long)pp);
			printf(", \"replies\": ");
			if (*d.replies)
				json_string(stdout, d.replies);
			else
				printf("null");
			if (d.min_block)
				printf(", \"block_size_constraints\": {\"minimum\": %u, \"preferred\": %u, \"maximum\": %u}",
				       d.min_block, d.pref_block, d.max_block);
			else
				printf(", \"block_size_constraints\": null");
			printf(", \"tls\": ");
			if (*d.tls)
				json_string(stdout, d.tls);
			else
				printf("null");
		}
		printf("}");
	} else if (!connected) {
		printf("/dev/nbd%-4d disconnected\n", index);
	} else {
		human_size(d.size, sz, sizeof(sz));
		printf("/dev/nbd%-4d connected    %s (%llu bytes), block size %u",
		       index, sz, (unsigned long long)d.size, d.block_size);
		if (d.have_state)
			printf(", %u connection%s", d.st.connections,
			       d.st.connections == 1 ? "" : "s");
		printf("%s\n", d.read_only ? ", read-only" : "");
		printf("             server: %s\n",
		       *server ? server : "(unknown: not attached by nbdctl)");
		printf("             flags: %s\n",
		       d.have_flags ? flags : "(unknown)");
		if (*d.replies) {
			printf("             replies: %s", d.replies);
			if (d.min_block)
				printf(", block sizes kept: minimum %u, preferred %u, maximum %u",
				       d.min_block, d.pref_block, d.max_block);
			printf("\n");
		}
		if (*d.tls)
			printf("             tls: %s\n", d.tls);
		if (d.pid || pp) {
			printf("             pid: %ld", d.pid);
			if (pp)
				printf(", persist process: %ld", (long)pp);
			printf("\n");
		}
	}
	w->count++;
	return 0;
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct list_walk w = { .only = -1 };
	struct nbdnl nl;
	char err[512];
	int c, ret;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			w.json = true;
			break;
		case 'h':
			printf("usage: nbdctl list [--json] [DEVICE]\n");
			return NBDCTL_EXIT_OK;
		default:
			return NBDCTL_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		w.only = parse_device(argv[optind], true);
		if (w.only < 0 || optind + 1 < argc) {
			nbdctl_err("list: '%s' is not an nbd device (/dev/nbdN, nbdN or N)",
				   argv[optind]);
			return NBDCTL_EXIT_USAGE;
		}
	}
	ret = open_netlink(&nl);
	if (ret)
		return ret;
	if (w.json)
		printf("[");
	ret = nbdnl_status(&nl, w.only, list_walk_one, &w, err, sizeof(err));
	if (w.json)
		printf("%s]\n", w.count ? "\n" : "");
	nbdnl_close(&nl);
	if (ret)
		return kernel_error("list", w.only, ret, err);
	if (w.only >= 0 && !w.found) {
		nbdctl_err("list: /dev/nbd%d does not exist", w.only);
		return NBDCTL_EXIT_KERNEL;
	}
	return 0;
}

/* --- reconfigure ------------------------------------------------------------- */

int cmd_reconfigure(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "dead-timeout", required_argument, NULL, 'D' },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct nbdnl_params p = { .index = -1 };
	struct dev_state st;
	struct nbdnl nl;
	char err[512], backend[1024], sz[32];
	unsigned int v;
	uint64_t size = 0, got;
	int c, ret;

	optind = 0;
	while ((c = getopt_long(argc, argv, "t:D:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_uint(optarg, INT_MAX, &v, "--timeout"))
				return NBDCTL_EXIT_USAGE;
			p.set_timeout = true;
			p.timeout = v;
			break;
		case 'D':
			if (parse_uint(optarg, INT_MAX, &v, "--dead-timeout"))
				return NBDCTL_EXIT_USAGE;
			p.set_dead_timeout = true;
			p.dead_timeout = v;
			break;
		case OPT_SIZE:
			if (parse_u64(optarg, &size, true) || !size) {
				nbdctl_err("bad size '%s' (bytes, or with K, M, G, T)",
					   optarg);
				return NBDCTL_EXIT_USAGE;
			}
			break;
		case 'h':
			printf("usage: nbdctl reconfigure DEVICE [--timeout S] [--dead-timeout S] [--size BYTES]\n");
			return NBDCTL_EXIT_OK;
		default:
			return NBDCTL_EXIT_USAGE;
		}
	}
	if (optind + 1 == argc)
		p.index = parse_device(argv[optind], true);
	if (p.index < 0) {
		nbdctl_err("reconfigure: give one device (/dev/nbdN, nbdN or N)");
		return NBDCTL_EXIT_USAGE;
	}
	if (!p.set_timeout && !p.set_dead_timeout && !size) {
		nbdctl_err("reconfigure: nothing to change (--timeout, --dead-timeout or --size)");
		return NBDCTL_EXIT_USAGE;
	}
	p.size = size;
	/* A device with a backend identifier wants it with every request. */
	if (!read_sysfs(p.index, "backend", backend, sizeof(backend)) &&
	    *backend)
		p.backend = backend;
	else if (!state_read(p.index, &st) && *st.backend)
		p.backend = st.backend;

	ret = open_netlink(&nl);
	if (ret)
		return ret;
	ret = nbdnl_reconfigure(&nl, &p, err, sizeof(err));
	nbdnl_close(&nl);
	if (ret)
		return kernel_error("reconfigure", p.index, ret, err);
	if (size) {
		got = device_bytes(p.index);
		if (got != size) {
			nbdctl_err("reconfigure: /dev/nbd%d still has %llu bytes: this nbd module does not resize over netlink",
				   p.index, (unsigned long long)got);
			return NBDCTL_EXIT_KERNEL;
		}
		human_size(size, sz, sizeof(sz));
		printf("/dev/nbd%d: %s (%llu bytes)\n", p.index, sz,
		       (unsigned long long)size);
	}
	return 0;
}

/* --- watch ------------------------------------------------------------------- */

struct watch {
	bool json;
	unsigned long left;		/* events to wait for, 0: forever */
	bool done;
};

static int print_event(void *arg, int index)
{
	struct watch *w = arg;
	char stamp[40];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	if (w->json)
		printf("{\"event\": \"link-dead\", \"device\": \"/dev/nbd%d\", \"index\": %d, \"time\": \"%s.%03ld\"}\n",
		       index, index, stamp, ts.tv_nsec / 1000000);
	else
		printf("%s.%03ld link-dead /dev/nbd%d\n", stamp,
		       ts.tv_nsec / 1000000, index);
	fflush(stdout);
	if (w->left && !--w->left)
		w->done = true;
	return 0;
}

int cmd_watch(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct sigaction sa = { .sa_handler = on_stop_signal };
	struct watch w = { };
	struct pollfd pfd;
	struct nbdnl nl;
	char err[512];
	unsigned int n;
	int c, ret;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			w.json = true;
			break;
		case OPT_COUNT:
			if (parse_uint(optarg, INT_MAX, &n, "--count"))
				return NBDCTL_EXIT_USAGE;
			w.left = n;
			break;
		case 'h':
			printf("usage: nbdctl watch [--json] [--count N]\n");
			return NBDCTL_EXIT_OK;
		default:
			return NBDCTL_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		nbdctl_err("watch: unexpected argument '%s'", argv[optind]);
		return NBDCTL_EXIT_USAGE;
	}
	ret = open_netlink(&nl);
	if (ret)
		return ret;
	if (nbdnl_subscribe(&nl, err, sizeof(err))) {
		nbdctl_err("%s", err);
		nbdnl_close(&nl);
		return NBDCTL_EXIT_KERNEL;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (!w.json)
		fprintf(stderr, "nbdctl: watching for link-dead events (Ctrl-C to stop)\n");
	pfd.fd = nbdnl_fd(&nl);
	pfd.events = POLLIN;
	ret = 0;
	while (!persist_stop && !w.done) {
		c = poll(&pfd, 1, -1);
		if (c < 0) {
			if (errno == EINTR)
				continue;
			nbdctl_err("poll: %s", strerror(errno));
			ret = NBDCTL_EXIT_FAIL;
			break;
		}
		c = nbdnl_read_events(&nl, print_event, &w, err, sizeof(err));
		if (c == -ENOBUFS) {
			nbdctl_warn("some events were lost (the socket's buffer overflowed)");
		} else if (c < 0) {
			nbdctl_err("%s", err);
			ret = NBDCTL_EXIT_FAIL;
			break;
		}
	}
	nbdnl_close(&nl);
	return ret;
}

/* --- persist, check, wait ------------------------------------------------------ */

/**
 * cmd_persist() - nbdctl persist DEVICE [URI] [options]: connect --adopt
 * @argc: argument count
 * @argv: "persist" and its arguments
 *
 * Without a server, the device's nbdtab line or, failing that, the server
 * it was attached to (/run/nbdctl) is used.
 *
 * Return: an NBDCTL_EXIT_* code.
 */
int cmd_persist(int argc, char **argv)
{
	char **a;
	int i, ret;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: nbdctl persist DEVICE [URI | HOST [PORT] | --unix PATH] [connect's options]\n\n"
			       "Take over a connected device whose persist process died (a crash, an\n"
			       "upgrade): the device and the file system on it are not touched.  The\n"
			       "device's backend identifier must be the server's; a handshake checks\n"
			       "that the export is the same.  Without a server, the device's nbdtab\n"
			       "line, or the server it was attached to, is used.\n");
			return NBDCTL_EXIT_OK;
		}
	}
	a = calloc(argc + 2, sizeof(*a));
	if (!a) {
		nbdctl_err("out of memory");
		return NBDCTL_EXIT_FAIL;
	}
	a[0] = "connect";
	a[1] = "--adopt";
	for (i = 1; i < argc; i++)
		a[i + 1] = argv[i];
	/* persist DEVICE URI: connect wants the device last */
	if (argc > 2 && parse_device(argv[1], false) >= 0) {
		memmove(&a[2], &a[3], (argc - 2) * sizeof(*a));
		a[argc] = argv[1];
	}
	ret = cmd_connect(argc + 1, a);
	free(a);
	return ret;
}

/**
 * cmd_check() - nbdctl check DEVICE: nbd-client -c's answer
 * @argc: argument count
 * @argv: "check" and its arguments
 *
 * Prints the pid of the device's persist process (or of the process that
 * attached it) and exits 0 when it is connected; exits 1 without a word
 * when it is not; 2 on a bad device name or another error.
 *
 * Return: 0, 1 or 2.
 */
int cmd_check(int argc, char **argv)
{
	struct dev_state st;
	char buf[64];
	int index;
	pid_t pid = 0;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: nbdctl check DEVICE\n\n"
		       "Exit 0 and print a pid if DEVICE is connected, 1 if not, 2 on error\n"
		       "(nbd-client -c's codes).\n");
		return 0;
	}
	if (argc != 2) {
		nbdctl_err("check: give one device (/dev/nbdN or nbdN)");
		return 2;
	}
	index = parse_device(argv[1], false);
	if (index < 0) {
		nbdctl_err("'%s' is not an nbd device (/dev/nbdN or nbdN)",
			   argv[1]);
		return 2;
	}
	/* The kernel shows pid while the device is started (as nbd-client reads). */
	if (read_sysfs(index, "pid", buf, sizeof(buf))) {
		if (errno == ENOENT)
			return 1;
		nbdctl_err("cannot read /sys/block/nbd%d/pid: %s", index,
			   strerror(errno));
		return 2;
	}
	if (!state_read(index, &st) && state_matches(index, &st))
		pid = persist_pid(&st);
	if (pid > 0)
		printf("%ld\n", (long)pid);
	else
		printf("%s\n", buf);
	return 0;
}

/**
 * cmd_wait() - nbdctl wait DEVICE [--timeout S]
 * @argc: argument count
 * @argv: "wait" and its arguments
 *
 * Returns once the device is connected, udev has processed it and the
 * nodes of the device and its partitions exist.
 *
 * Return: 0, 1 on timeout, 2 on a bad command line.
 */
int cmd_wait(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	unsigned int timeout = 60;
	int c, index;

	optind = 0;
	while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_uint(optarg, 86400, &timeout, "--timeout"))
				return NBDCTL_EXIT_USAGE;
			break;
		case 'h':
			printf("usage: nbdctl wait DEVICE [--timeout SECONDS]\n\n"
			       "Wait until DEVICE is connected, udev has processed it and the nodes of\n"
			       "its partitions exist (default: 60 s at most).  Exit 0, or 1 on timeout.\n");
			return NBDCTL_EXIT_OK;
		default:
			return NBDCTL_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		nbdctl_err("wait: give one device (/dev/nbdN or nbdN)");
		return NBDCTL_EXIT_USAGE;
	}
	index = parse_device(argv[optind], false);
	if (index < 0) {
		nbdctl_err("'%s' is not an nbd device (/dev/nbdN or nbdN)",
			   argv[optind]);
		return NBDCTL_EXIT_USAGE;
	}
	if (access("/sys/block", F_OK) == 0) {
		char path[64];

		snprintf(path, sizeof(path), "/sys/block/nbd%d", index);
		if (access(path, F_OK)) {
			nbdctl_err("/dev/nbd%d does not exist (is nbd loaded? nbds_max?)",
				   index);
			return NBDCTL_EXIT_KERNEL;
		}
	}
	return wait_device(index, timeout) ? NBDCTL_EXIT_FAIL : 0;
}
