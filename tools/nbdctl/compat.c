// SPDX-License-Identifier: GPL-2.0
/*
 * nbd-client's command line: the "nbd-client" symlink and "nbdctl compat
 * ARGS".
 *
 * nbd-client 3.24 parses its arguments with getopt_long_only(): long
 * options take one dash or two and may be abbreviated, positionals and
 * options mix in any order, and the positionals are HOST [PORT] DEVICE
 * (the port only when it reads as a number other than 0).  This file
 * turns such a command line into one nbdctl command (connect, disconnect,
 * check or list-exports), runs it, prints its result the way nbd-client
 * does and exits with nbd-client's code: 0 or 1, and 0/1/2 for -c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbdctl.h"
#include "compat.h"

/*
 * nbd-client's options, in its own order (which is the order glibc lists
 * the candidates of an ambiguous prefix in), then those of later
 * nbd-client versions that nbdctl can honour.
 */
static const struct option compat_options[] = {
	{ "cacertfile", required_argument, NULL, 'A' },
	{ "block-size", required_argument, NULL, 'b' },
	{ "size", required_argument, NULL, 'B' },
	{ "check", required_argument, NULL, 'c' },
	{ "connections", required_argument, NULL, 'C' },
	{ "disconnect", required_argument, NULL, 'd' },
	{ "certfile", required_argument, NULL, 'F' },
	{ "no-optgo", no_argument, NULL, 'g' },
	{ "help", no_argument, NULL, 'h' },
	{ "tlshostname", required_argument, NULL, 'H' },
	{ "keyfile", required_argument, NULL, 'K' },
	{ "list", no_argument, NULL, 'l' },
	{ "nonetlink", no_argument, NULL, 'L' },
	{ "systemd-mark", no_argument, NULL, 'm' },
	{ "nofork", no_argument, NULL, 'n' },
	{ "name", required_argument, NULL, 'N' },
	{ "persist", no_argument, NULL, 'p' },
	{ "preinit", no_argument, NULL, 'P' },
	{ "readonly", no_argument, NULL, 'R' },
	{ "sdp", no_argument, NULL, 'S' },
	{ "swap", no_argument, NULL, 's' },
	{ "timeout", required_argument, NULL, 't' },
	{ "unix", no_argument, NULL, 'u' },
	{ "version", no_argument, NULL, 'V' },
	{ "enable-tls", no_argument, NULL, 'x' },
	/* nbd-client 3.26 and 3.27 */
	{ "priority", required_argument, NULL, 'y' },
	{ "identifier", required_argument, NULL, 'i' },
	{ "dead-timeout", required_argument, NULL, 'T' },
	{ }
};

/*
 * '-': positionals come back in order (as 1); ':': a missing argument is
 * ':'.  nbd-client 3.24 lacks -F and -m though its usage names them.
 */
static const char compat_short[] = "-:A:B:b:c:C:d:F:gH:hi:K:LlmnN:PpRSst:T:uVxy:";

/* What the command line said, before it becomes nbdctl's. */
struct compat_args {
	const char *pos[3];		/* host (or socket path), port, device */
	const char *name, *disconnect;
	const char *cert, *key, *cacert, *tlshostname, *priority;
	const char *identifier, *dead_timeout;
	long block_size, timeout, connections;
	bool have_bs, have_conns;
	bool list, unix_sock, nonetlink, nofork, persist, swap, sdp;
	bool preinit, size, readonly, tls, no_optgo;
};

static const char compat_usage_text[] =
"usage: nbd-client [options] HOST [PORT] DEVICE\n"
"       nbd-client -unix [options] SOCKET DEVICE\n"
"       nbd-client DEVICE                 connect as /etc/nbdtab says\n"
"       nbd-client -d DEVICE              disconnect\n"
"       nbd-client -c DEVICE              connected? (prints the pid; 0/1/2)\n"
"       nbd-client -l HOST [PORT]         list the server's exports\n"
"       nbd-client -h | -V\n"
"\n"
"nbdctl's nbd-client compatibility mode: nbd-client 3.24's command line,\n"
"run with nbdctl (also as 'nbdctl compat ARGS').  Long options take one\n"
"dash or two and may be shortened to a unique prefix.  PORT defaults to\n"
"10809, DEVICE is /dev/nbdN or nbdN; without DEVICE the kernel picks one.\n"
"\n"
"  -N, -name NAME          export name (default: the server's default)\n"
"  -b, -block-size BYTES   block size, a multiple of 512 (default 512)\n"
"  -t, -timeout SECONDS    request timeout (default: none set)\n"
"  -C, -connections N      N connections to the server\n"
"  -p, -persist            reconnect when the connection is lost\n"
"  -s, -swap               the device holds swap: a persist process that\n"
"                          stays in memory (implies reconnecting)\n"
"  -n, -nofork             with -persist or -swap: stay in the foreground\n"
"  -u, -unix               the first argument is a UNIX socket's path\n"
"  -R, -readonly           read-only device\n"
"  -g, -no-optgo           handshake with NBD_OPT_EXPORT_NAME only\n"
"  -x, -enable-tls         TLS; so does any of the four below\n"
"  -F, -certfile FILE      client certificate (default: the key file)\n"
"  -K, -keyfile FILE       its private key\n"
"  -A, -cacertfile FILE    CA to verify the server with; without it the\n"
"                          server's certificate is not checked\n"
"  -H, -tlshostname NAME   the name the server's certificate must carry\n"
"  -y, -priority STRING    GnuTLS priority string\n"
"  -i, -identifier ID      backend identifier (nbd-client 3.27)\n"
"  -T, -dead-timeout SECS  how long I/O waits for a reconnect (3.27)\n"
"  -L, -nonetlink          accepted; nbdctl always uses netlink, and\n"
"                          keeps ioctl mode's output\n"
"  -m, -systemd-mark       accepted; the persist process marks itself\n"
"\n"
"Not supported: -sdp, -size (-B), -preinit (-P), a PORT after an nbdtab\n"
"DEVICE.  Unlike nbd-client 3.24, -persist, -swap and -nofork work in\n"
"netlink mode (through nbdctl's persist process), -d and -c take nbdN\n"
"as well as /dev/nbdN, and TLS needs TCP (kernel TLS).\n"
"See nbdctl(8) for nbdctl's own commands.\n";

static void compat_usage(FILE *f)
{
	fputs(compat_usage_text, f);
}

/*
 * glibc keeps getopt's ordering ('-') until it is reinitialized: do that
 * (optind 0) on an empty command line, and leave optind 0 so that the
 * nbdctl command's getopt starts afresh with its own optstring too.
 */
static void getopt_reset(char **argv)
{
	optind = 0;
	opterr = 0;
	getopt(1, argv, "");
	optind = 0;
	opterr = 1;
}

static int fail(struct nbd_compat *c, char *err, size_t errlen, bool usage,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(struct nbd_compat *c, char *err, size_t errlen, bool usage,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	c->action = NBD_COMPAT_EXIT;
	c->exit_code = 1;
	c->usage = usage;
	c->argc = 0;
	c->argv[0] = NULL;
	return NBD_COMPAT_EXIT;
}

static void warn(struct nbd_compat *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void warn(struct nbd_compat *c, const char *fmt, ...)
{
	size_t n = strlen(c->warnings), left = sizeof(c->warnings) - n;
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(c->warnings + n, left, fmt, ap);
	va_end(ap);
	if (len >= 0 && (size_t)len + 1 < left)
		snprintf(c->warnings + n + len, left - len, "\n");
}

/* Append @s to the nbdctl command line; false when it is full. */
static bool add(struct nbd_compat *c, const char *s)
{
	if (c->argc + 1 >= NBD_COMPAT_ARGV_MAX)
		return false;
	c->argv[c->argc++] = (char *)s;
	c->argv[c->argc] = NULL;
	return true;
}

static bool add2(struct nbd_compat *c, const char *opt, const char *val)
{
	return add(c, opt) && add(c, val);
}

/* @v in decimal, kept in @c->buf; NULL when that is full. */
static const char *number(struct nbd_compat *c, long v)
{
	char *p = c->buf + c->used;
	size_t left = sizeof(c->buf) - c->used;
	int n;

	n = snprintf(p, left, "%ld", v);
	if (n < 0 || (size_t)n >= left)
		return NULL;
	c->used += n + 1;
	return p;
}

static bool add_number(struct nbd_compat *c, const char *opt, long v)
{
	const char *s = number(c, v);

	return s && add2(c, opt, s);
}

/* "nbdN" of /dev/nbdN or nbdN (N digits), or NULL. */
static const char *nbd_name(const char *s)
{
	const char *p;

	if (!strncmp(s, "/dev/", 5))
		s += 5;
	if (strncmp(s, "nbd", 3) || !s[3])
		return NULL;
	for (p = s + 3; *p; p++)
		if (*p < '0' || *p > '9')
			return NULL;
	return s;
}

/* The number nbd-client reads with strtol(s, NULL, 0). */
static long cnum(const char *s)
{
	return strtol(s, NULL, 0);
}

/* The option name in @arg ("-name=x" -> "name"), its dashes in @dashes. */
static void opt_name(const char *arg, char *name, size_t len,
		     const char **dashes)
{
	size_t n;

	*dashes = !strncmp(arg, "--", 2) ? "--" : "-";
	arg += strlen(*dashes);
	n = strcspn(arg, "=");
	if (n >= len)
		n = len - 1;
	memcpy(name, arg, n);
	name[n] = '\0';
}

/*
 * getopt said '?' about @arg: say why the way glibc would have.  A
 * single-dash word that is no long option is a cluster of short ones
 * when its first letter is one (so "-bogus" is -b ogus, as in nbd-client).
 */
static int bad_option(struct nbd_compat *c, const char *arg, char *err,
		      size_t errlen)
{
	const struct option *o, *found = NULL;
	char name[64], list[512] = "";
	const char *dashes;
	size_t len, used = 0;
	int matches = 0;

	opt_name(arg, name, sizeof(name), &dashes);
	len = strlen(name);
	for (o = compat_options; len && o->name; o++) {
		if (strncmp(o->name, name, len))
			continue;
		if (strlen(o->name) == len) {
			found = o;
			matches = 1;
			break;
		}
		found = o;
		matches++;
		used += snprintf(list + used, used < sizeof(list) ?
				 sizeof(list) - used : 0, " '%s%s'", dashes,
				 o->name);
	}
	if (matches > 1)
		return fail(c, err, errlen, true,
			    "nbd-client: option '%s%s' is ambiguous; possibilities:%s",
			    dashes, name, list);
	if (matches)
		return fail(c, err, errlen, true,
			    "nbd-client: option '%s%s' doesn't allow an argument",
			    dashes, found->name);
	if (dashes[1] || !len || !strchr(compat_short + 2, name[0]) ||
	    !optopt)
		return fail(c, err, errlen, true,
			    "nbd-client: unrecognized option '%s%s'", dashes,
			    name);
	return fail(c, err, errlen, true, "nbd-client: invalid option -- '%c'",
		    optopt);
}

/* getopt said ':': @arg lacks its argument. */
static int missing_arg(struct nbd_compat *c, const char *arg, char *err,
		       size_t errlen)
{
	const struct option *o;
	char name[64];
	const char *dashes;
	size_t len;

	if (strlen(arg) == 2 && arg[0] == '-' && arg[1] == optopt)
		return fail(c, err, errlen, true,
			    "nbd-client: option requires an argument -- '%c'",
			    optopt);
	opt_name(arg, name, sizeof(name), &dashes);
	len = strlen(name);
	for (o = compat_options; o->name; o++)
		if (o->val == optopt && !strncmp(o->name, name, len))
			return fail(c, err, errlen, true,
				    "nbd-client: option '%s%s' requires an argument",
				    dashes, o->name);
	return fail(c, err, errlen, true,
		    "nbd-client: option requires an argument -- '%c'", optopt);
}

static int set_block_size(struct nbd_compat *c, struct compat_args *a,
			  const char *s, char *err, size_t errlen)
{
	a->block_size = cnum(s);
	a->have_bs = true;
	if (!a->block_size || a->block_size % 512)
		return fail(c, err, errlen, false,
			    "Error: the block size must be a multiple of 512, not '%s'",
			    s);
	return NBD_COMPAT_RUN;
}

/* A positional argument, in nbd-client's order. */
static int positional(struct nbd_compat *c, struct compat_args *a, int *npos,
		      const char *s, char *err, size_t errlen)
{
	if (strchr(s, '=')) {
		warn(c, "Warning: '%s': old-style arguments are deprecated; use -b or -t",
		     s);
		if (!strncmp(s, "bs=", 3))
			return set_block_size(c, a, s + 3, err, errlen);
		if (!strncmp(s, "timeout=", 8)) {
			a->timeout = cnum(s + 8);
			return NBD_COMPAT_RUN;
		}
		return fail(c, err, errlen, true,
			    "ERROR: unknown old-style argument '%s' (only bs= and timeout= exist)",
			    s);
	}
	/* The second is the port only if it reads as a number but 0. */
	if (*npos == 1 && !cnum(s))
		(*npos)++;
	if (*npos > 2)
		return fail(c, err, errlen, true,
			    "ERROR: too many non-option arguments specified ('%s')",
			    s);
	a->pos[(*npos)++] = s;
	return NBD_COMPAT_RUN;
}

/* nbd-client -c: its name mangling, then nbdctl check or a silent 1. */
static int do_check(struct nbd_compat *c, const char *dev)
{
	const char *base = strrchr(dev, '/');
	char name[32];
	size_t n;

	base = base ? base + 1 : dev;
	/* nbd-client cuts the name at its first 'p' (nbd0p1 -> nbd0) */
	n = strcspn(base, "p");
	c->pass_code = true;
	c->output = NBD_COMPAT_OUT_PLAIN;
	if (n < sizeof(name)) {
		memcpy(name, base, n);
		name[n] = '\0';
	}
	/* Not an nbd device: no /sys/block/NAME/pid, which is a 1. */
	if (n >= sizeof(name) || !nbd_name(name) || n + 1 > sizeof(c->buf)) {
		c->action = NBD_COMPAT_EXIT;
		c->exit_code = 1;
		return NBD_COMPAT_EXIT;
	}
	memcpy(c->buf, name, n + 1);
	c->used = n + 1;
	add(c, "check");
	add(c, c->buf);
	c->action = NBD_COMPAT_RUN;
	return NBD_COMPAT_RUN;
}

static bool add_tls(struct nbd_compat *c, const struct compat_args *a)
{
	const char *cert = a->cert ? a->cert : a->key;
	bool ok = true;

	if (!a->tls && !a->cert && !a->key && !a->cacert && !a->tlshostname)
		return true;
	ok &= add(c, "--tls");
	if (cert)
		ok &= add2(c, "--cert", cert);
	if (a->key)
		ok &= add2(c, "--key", a->key);
	if (a->cacert)
		ok &= add2(c, "--cacert", a->cacert);
	if (a->tlshostname)
		ok &= add2(c, "--tls-hostname", a->tlshostname);
	if (a->priority)
		ok &= add2(c, "--tls-priority", a->priority);
	/* nbd-client checks the server's certificate only against -A. */
	if (!a->cacert) {
		ok &= add(c, "--tls-insecure");
		warn(c,
		     "Warning: TLS without -cacertfile: the server's certificate is not verified");
	}
	return ok;
}

static int do_list(struct nbd_compat *c, const struct compat_args *a,
		   char *err, size_t errlen)
{
	bool ok;

	c->output = NBD_COMPAT_OUT_LIST;
	ok = add(c, "list-exports") && add_tls(c, a);
	if (a->unix_sock)
		ok &= add2(c, "--unix", a->pos[0]);
	else
		ok &= add(c, a->pos[0]) && (!a->pos[1] || add(c, a->pos[1]));
	if (!ok)
		return fail(c, err, errlen, false, "Error: too many arguments");
	return NBD_COMPAT_RUN;
}

/* HOST [PORT] DEVICE, -unix SOCKET DEVICE, or an nbdtab DEVICE. */
static int do_connect(struct nbd_compat *c, const struct compat_args *a,
		      char *err, size_t errlen)
{
	const char *dev = NULL, *tab = NULL;
	bool ok;

	if (a->sdp)
		return fail(c, err, errlen, false,
			    "Error: -sdp (Sockets Direct Protocol) is not supported: nbdctl connects over TCP or a UNIX socket");
	if (a->size || a->preinit)
		return fail(c, err, errlen, false,
			    "Error: -size and -preinit are not supported: the size is the one the server gives");
	if (a->pos[2]) {
		dev = nbd_name(a->pos[2]);
		if (!dev)
			return fail(c, err, errlen, false,
				    "Error: Invalid nbd device target '%s' (give /dev/nbdN or nbdN)",
				    a->pos[2]);
	} else if (!strncmp(a->pos[0], "nbd", 3) ||
		   !strncmp(a->pos[0], "/dev/nbd", 8)) {
		tab = nbd_name(a->pos[0]);
		if (!tab)
			return fail(c, err, errlen, true,
				    "ERROR: no valid configuration for specified device found ('%s' is not /dev/nbdN or nbdN)",
				    a->pos[0]);
		if (a->pos[1])
			return fail(c, err, errlen, false,
				    "Error: a port after an /etc/nbdtab device is not supported: write port=%s in %s's line",
				    a->pos[1], tab);
	} else if (a->nonetlink) {
		return fail(c, err, errlen, true,
			    "ERROR: not enough information specified, and argument didn't look like an nbd device");
	}

	c->output = a->nonetlink ? NBD_COMPAT_OUT_CONNECT_IOCTL :
				   NBD_COMPAT_OUT_CONNECT;
	ok = add(c, "connect");
	if (tab) {
		/* nbdtab decides all but these (as nbd-client's does) */
		if (a->name || a->have_bs || a->timeout || a->have_conns ||
		    a->persist || a->swap || a->unix_sock || a->cert ||
		    a->key || a->cacert || a->tlshostname || a->no_optgo)
			warn(c,
			     "Warning: /etc/nbdtab's line for %s decides the export, server and options: those on the command line are ignored",
			     tab);
		if (a->readonly)
			ok &= add(c, "--read-only");
		if (a->tls)
			ok &= add(c, "--tls");
		if (a->nofork)
			ok &= add(c, "--foreground");
		ok &= add(c, tab);
		goto out;
	}
	if (a->name)
		ok &= add2(c, "--name", a->name);
	/* nbd-client's default, not the server's preferred size */
	ok &= add_number(c, "--block-size", a->have_bs ? a->block_size : 512);
	if (a->timeout)
		ok &= add_number(c, "--timeout", a->timeout);
	if (a->have_conns)
		ok &= add_number(c, "--connections", a->connections);
	if (a->persist)
		ok &= add(c, "--persist");
	if (a->swap)
		ok &= add(c, "--swap");
	if (a->nofork && (a->persist || a->swap))
		ok &= add(c, "--foreground");
	if (a->dead_timeout)
		ok &= add2(c, "--dead-timeout", a->dead_timeout);
	if (a->no_optgo)
		ok &= add(c, "--no-opt-go");
	if (a->readonly)
		ok &= add(c, "--read-only");
	if (a->identifier)
		ok &= add2(c, "--backend", a->identifier);
	ok &= add_tls(c, a);
	if (a->unix_sock) {
		/* nbd-client ignores a port with -unix */
		ok &= add2(c, "--unix", a->pos[0]);
	} else {
		ok &= add(c, a->pos[0]);
		if (a->pos[1])
			ok &= add(c, a->pos[1]);
	}
	if (dev)
		ok &= add(c, dev);
out:
	if (!ok)
		return fail(c, err, errlen, false, "Error: too many arguments");
	return NBD_COMPAT_RUN;
}

static int parse(int argc, char **argv, struct nbd_compat *c,
		 struct compat_args *a, char *err, size_t errlen)
{
	int opt, npos = 0, ret, elem;

	for (;;) {
		/* the word getopt looks at (optind stays on a cluster) */
		elem = optind ? optind : 1;
		opt = getopt_long_only(argc, argv, compat_short,
				       compat_options, NULL);
		if (opt == -1)
			break;
		ret = NBD_COMPAT_RUN;
		switch (opt) {
		case 1:
			if (optarg)
				ret = positional(c, a, &npos, optarg, err,
						 errlen);
			break;
		case 'A':
			a->cacert = optarg;
			break;
		case 'b':
			ret = set_block_size(c, a, optarg, err, errlen);
			break;
		case 'B':
			if (!cnum(optarg))
				return fail(c, err, errlen, false,
					    "Error: invalid size '%s'", optarg);
			a->size = true;
			break;
		case 'c':
			/* nbd-client checks at once: the rest is not read */
			return do_check(c, optarg);
		case 'C':
			a->connections = cnum(optarg);
			a->have_conns = true;
			break;
		case 'd':
			a->disconnect = optarg;
			break;
		case 'F':
			a->cert = optarg;
			break;
		case 'g':
			a->no_optgo = true;
			break;
		case 'h':
			c->action = NBD_COMPAT_HELP;
			return NBD_COMPAT_HELP;
		case 'H':
			a->tlshostname = optarg;
			break;
		case 'i':
			a->identifier = optarg;
			break;
		case 'K':
			a->key = optarg;
			break;
		case 'l':
			a->list = true;
			break;
		case 'L':
			a->nonetlink = true;
			break;
		case 'm':
			/* nbdctl's persist process marks itself anyway */
			break;
		case 'n':
			a->nofork = true;
			break;
		case 'N':
			a->name = optarg;
			break;
		case 'p':
			a->persist = true;
			break;
		case 'P':
			a->preinit = true;
			break;
		case 'R':
			a->readonly = true;
			break;
		case 's':
			a->swap = true;
			break;
		case 'S':
			a->sdp = true;
			break;
		case 't':
			a->timeout = cnum(optarg);
			break;
		case 'T':
			a->dead_timeout = optarg;
			break;
		case 'u':
			a->unix_sock = true;
			break;
		case 'V':
			c->action = NBD_COMPAT_VERSION;
			return NBD_COMPAT_VERSION;
		case 'x':
			a->tls = true;
			break;
		case 'y':
			a->priority = optarg;
			break;
		case ':':
			return missing_arg(c, argv[elem], err, errlen);
		default:
			return bad_option(c, argv[elem], err, errlen);
		}
		if (ret != NBD_COMPAT_RUN)
			return ret;
	}
	return NBD_COMPAT_RUN;
}

/**
 * nbd_compat_translate() - nbd-client's command line as an nbdctl command
 * @argc: argument count
 * @argv: nbd-client's arguments; argv[0] is the program or "compat"
 * @out: the nbdctl command, and what to do with its output and exit code
 * @err: for NBD_COMPAT_EXIT, the message to print (may be "")
 * @errlen: size of @err
 *
 * Return: @out->action.
 */
int nbd_compat_translate(int argc, char **argv, struct nbd_compat *out,
			 char *err, size_t errlen)
{
	struct compat_args a = { };
	int ret;

	memset(out, 0, sizeof(*out));
	if (errlen)
		err[0] = '\0';
	optind = 0;
	opterr = 0;
	ret = parse(argc, argv, out, &a, err, errlen);
	getopt_reset(argv);
	if (ret != NBD_COMPAT_RUN || out->argc)
		return ret;

	if (a.disconnect) {
		const char *dev = nbd_name(a.disconnect);

		if (!dev)
			return fail(out, err, errlen, false,
				    "Error: Invalid nbd device target '%s' (give /dev/nbdN or nbdN)",
				    a.disconnect);
		out->output = a.nonetlink ? NBD_COMPAT_OUT_DISCONNECT_IOCTL :
					    NBD_COMPAT_OUT_PLAIN;
		add(out, "disconnect");
		add(out, dev);
		return NBD_COMPAT_RUN;
	}
	if (!a.pos[0])
		return fail(out, err, errlen, true,
			    "ERROR: no information specified");
	if (a.list)
		return do_list(out, &a, err, errlen);
	return do_connect(out, &a, err, errlen);
}

/**
 * nbd_compat_exit_code() - nbd-client's exit code for an nbdctl command's
 * @c: the translated command line
 * @rc: the nbdctl command's exit code (NBDCTL_EXIT_*)
 *
 * Return: 0 or 1; for -c, check's own 0, 1 or 2 (2 for anything else).
 */
int nbd_compat_exit_code(const struct nbd_compat *c, int rc)
{
	if (c->pass_code)
		return rc >= 0 && rc <= 2 ? rc : 2;
	return rc ? 1 : 0;
}

static size_t append(char *buf, size_t len, size_t used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static size_t append(char *buf, size_t len, size_t used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (used >= len)
		return used;
	va_start(ap, fmt);
	n = vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
	return n < 0 ? used : used + n;
}

/* connect's "/dev/nbdN: SIZE (BYTES bytes), block size BS, C connections" */
static bool parse_connected(const char *line, int *index,
			    unsigned long long *bytes, unsigned int *bs,
			    unsigned int *conns)
{
	const char *p;
	char *end;

	if (sscanf(line, "/dev/nbd%d: ", index) != 1 || *index < 0)
		return false;
	p = strchr(line, '(');
	if (!p)
		return false;
	errno = 0;
	*bytes = strtoull(p + 1, &end, 10);
	if (errno || end == p + 1 || strncmp(end, " bytes)", 7))
		return false;
	*bs = 0;
	*conns = 1;
	p = strstr(end, "block size ");
	if (p)
		*bs = strtoul(p + 11, &end, 10);
	p = strstr(end, ", ");
	if (p && strstr(p, " connection"))
		*conns = strtoul(p + 2, NULL, 10);
	if (!*conns || *conns > 256)
		*conns = 1;
	return true;
}

/**
 * nbd_compat_stdout_line() - an nbdctl command's stdout line as
 * nbd-client would print it
 * @mode: which command printed it
 * @line: the line, without its '\n'
 * @out: text for stdout (whole lines, or "")
 * @outlen: size of @out
 * @aux: text for stderr (whole lines, or "")
 * @auxlen: size of @aux
 *
 * connect's device line becomes "Negotiation: ..size = NMB" (once per
 * connection, as nbd-client negotiates each) and, over netlink,
 * "Connected /dev/nbdN"; its other lines go to stderr.  list-exports'
 * "NAME<tab>DESCRIPTION" becomes "NAME: DESCRIPTION".
 */
void nbd_compat_stdout_line(enum nbd_compat_output mode, const char *line,
			    char *out, size_t outlen, char *aux, size_t auxlen)
{
	unsigned long long bytes;
	unsigned int bs, conns, i;
	size_t used = 0;
	const char *tab;
	int index;

	out[0] = '\0';
	aux[0] = '\0';
	switch (mode) {
	case NBD_COMPAT_OUT_CONNECT:
	case NBD_COMPAT_OUT_CONNECT_IOCTL:
		if (!parse_connected(line, &index, &bytes, &bs, &conns)) {
			append(aux, auxlen, 0, "%s\n", line);
			return;
		}
		for (i = 0; i < conns; i++)
			used = append(out, outlen, used,
				      "Negotiation: ..size = %lluMB\n",
				      bytes >> 20);
		if (mode == NBD_COMPAT_OUT_CONNECT)
			append(out, outlen, used, "Connected /dev/nbd%d\n",
			       index);
		else
			append(aux, auxlen, 0, "bs=%u, sz=%llu bytes\n", bs,
			       bytes);
		return;
	case NBD_COMPAT_OUT_LIST:
		if (!strcmp(line, "(default)")) {
			append(out, outlen, 0, "\n");
			return;
		}
		tab = strchr(line, '\t');
		if (tab)
			append(out, outlen, 0, "%.*s: %s\n", (int)(tab - line),
			       line, tab + 1);
		else
			append(out, outlen, 0, "%s\n", line);
		return;
	default:
		append(out, outlen, 0, "%s\n", line);
		return;
	}
}

/**
 * nbd_compat_stderr_line() - an nbdctl message in nbd-client's words
 * @line: the line, without its '\n'
 * @out: the line for stderr, with its '\n'
 * @outlen: size of @out
 *
 * "nbdctl: warning: X" becomes "Warning: X", "nbdctl: X" "Error: X";
 * other lines (the persist process's log) stay as they are.
 */
void nbd_compat_stderr_line(const char *line, char *out, size_t outlen)
{
	static const char pfx[] = "nbdctl: ", wpfx[] = "nbdctl: warning: ";

	if (!strncmp(line, wpfx, sizeof(wpfx) - 1))
		append(out, outlen, 0, "Warning: %s\n", line + sizeof(wpfx) - 1);
	else if (!strncmp(line, pfx, sizeof(pfx) - 1))
		append(out, outlen, 0, "Error: %s\n", line + sizeof(pfx) - 1);
	else
		append(out, outlen, 0, "%s\n", line);
}

/*
 * While the nbdctl command runs, stdout and stderr are streams of ours
 * (glibc lets a program assign them) that pass each line through the
 * functions above to the real ones, as it comes: connect -persist
 * -nofork prints and then stays.
 */
struct compat_stream {
	enum nbd_compat_output mode;
	bool is_err;
	bool started;			/* list: "Negotiation: .." printed */
	FILE *out, *err;		/* the real stdout and stderr */
	size_t len;
	char line[2048];
};

static void stream_line(struct compat_stream *s)
{
	char out[4096], aux[4096];

	s->line[s->len] = '\0';
	s->len = 0;
	if (s->is_err) {
		nbd_compat_stderr_line(s->line, out, sizeof(out));
		fputs(out, s->err);
		fflush(s->err);
		return;
	}
	nbd_compat_stdout_line(s->mode, s->line, out, sizeof(out), aux,
			       sizeof(aux));
	if (s->mode == NBD_COMPAT_OUT_LIST && !s->started) {
		fputs("Negotiation: ..\n", s->out);
		s->started = true;
	}
	fputs(out, s->out);
	fflush(s->out);
	fputs(aux, s->err);
	fflush(s->err);
}

static ssize_t stream_write(void *cookie, const char *buf, size_t size)
{
	struct compat_stream *s = cookie;
	size_t i;

	for (i = 0; i < size; i++) {
		if (buf[i] == '\n') {
			stream_line(s);
			continue;
		}
		s->line[s->len++] = buf[i];
		if (s->len == sizeof(s->line) - 1)
			stream_line(s);
	}
	return size;
}

static int stream_close(void *cookie)
{
	struct compat_stream *s = cookie;

	if (s->len)
		stream_line(s);
	return 0;
}

static FILE *stream_open(struct compat_stream *s)
{
	static const cookie_io_functions_t io = {
		.write = stream_write,
		.close = stream_close,
	};
	FILE *f = fopencookie(s, "w", io);

	if (f)
		setvbuf(f, NULL, _IONBF, 0);
	return f;
}

/* Run @c's command with stdout and stderr in nbd-client's words. */
static int run_filtered(struct nbd_compat *c)
{
	struct compat_stream so = { .mode = c->output }, se = { .is_err = true };
	FILE *real_out = stdout, *real_err = stderr, *fo, *fe;
	int rc;

	fflush(real_out);
	fflush(real_err);
	so.out = real_out;
	so.err = real_err;
	se.out = real_out;
	se.err = real_err;
	fo = stream_open(&so);
	fe = stream_open(&se);
	if (fo)
		stdout = fo;
	if (fe)
		stderr = fe;
	rc = nbdctl_run(c->argc, c->argv);
	stdout = real_out;
	stderr = real_err;
	if (fo)
		fclose(fo);
	if (fe)
		fclose(fe);
	if (!rc && c->output == NBD_COMPAT_OUT_LIST && !so.started)
		fputs("Negotiation: ..\n", real_out);
	if (!rc && c->output == NBD_COMPAT_OUT_DISCONNECT_IOCTL)
		fputs("disconnect, sock, done\n", real_out);
	fflush(real_out);
	return rc;
}

/**
 * cmd_compat() - nbd-client's command line (nbd-client 3.24)
 * @argc: argument count
 * @argv: nbd-client's arguments; argv[0] is the program or "compat"
 *
 * Return: nbd-client's exit code: 0 or 1, and 0/1/2 for -c.
 */
int cmd_compat(int argc, char **argv)
{
	struct nbd_compat c;
	char err[512];
	int rc;

	switch (nbd_compat_translate(argc, argv, &c, err, sizeof(err))) {
	case NBD_COMPAT_HELP:
		compat_usage(stdout);
		return 0;
	case NBD_COMPAT_VERSION:
		printf("This is nbd-client, from nbdctl %s (nbd 3.24's command line)\n",
		       NBDCTL_VERSION);
		return 0;
	case NBD_COMPAT_EXIT:
		fputs(c.warnings, stderr);
		if (err[0])
			fprintf(stderr, "%s\n", err);
		if (c.usage) {
			fputc('\n', stderr);
			compat_usage(stderr);
		}
		return c.exit_code;
	default:
		break;
	}
	fputs(c.warnings, stderr);
	rc = run_filtered(&c);
	return nbd_compat_exit_code(&c, rc);
}
