// SPDX-License-Identifier: GPL-2.0
/*
 * nbdctl: /etc/nbdtab, nbd-client's table of devices.
 *
 * A line is "DEVICE HOST EXPORT [OPTIONS]", fields separated by blanks,
 * '#' starting a comment.  OPTIONS is a comma-separated list of NAME or
 * NAME=VALUE.  Each line becomes the arguments of "nbdctl connect", so
 * that an nbdtab entry means exactly what the same command line means;
 * every check that can be made here is made here, with the line number.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbdctl.h"

/* How an option's value is checked and what it becomes. */
enum tab_kind {
	TAB_FLAG,	/* no value: adds .arg */
	TAB_UINT,	/* a decimal number, at most .max: .arg VALUE */
	TAB_STRING,	/* a non-empty value: .arg VALUE */
	TAB_UNIX,	/* the host column is a UNIX socket path */
	TAB_PORT,	/* the host column's port */
	TAB_NOAUTO,	/* "up --all" skips the line */
	TAB_IGNORED,	/* accepted, means nothing here */
	TAB_REFUSED,	/* known, cannot be honoured: .why */
};

struct tab_option {
	const char *name;
	enum tab_kind kind;
	const char *arg;	/* the connect option it becomes */
	unsigned long max;	/* TAB_UINT */
	const char *why;	/* TAB_REFUSED */
};

static const struct tab_option tab_options[] = {
	/* nbd-client's */
	{ .name = "bs", .kind = TAB_UINT, .arg = "--block-size", .max = 65536 },
	{ .name = "timeout", .kind = TAB_UINT, .arg = "--timeout", .max = 2147483647UL },
	{ .name = "port", .kind = TAB_PORT },
	{ .name = "conns", .kind = TAB_UINT, .arg = "--connections", .max = 64 },
	{ .name = "persist", .kind = TAB_FLAG, .arg = "--persist" },
	{ .name = "swap", .kind = TAB_FLAG, .arg = "--swap" },
	{ .name = "unix", .kind = TAB_UNIX },
	{ .name = "no_optgo", .kind = TAB_FLAG, .arg = "--no-opt-go" },
	{ .name = "certfile", .kind = TAB_STRING, .arg = "--cert" },
	{ .name = "keyfile", .kind = TAB_STRING, .arg = "--key" },
	{ .name = "cacertfile", .kind = TAB_STRING, .arg = "--cacert" },
	{ .name = "tlshostname", .kind = TAB_STRING, .arg = "--tls-hostname" },
	{ .name = "priority", .kind = TAB_STRING, .arg = "--tls-priority" },
	{ .name = "sdp", .kind = TAB_REFUSED,
	  .why = "Sockets Direct Protocol is gone from Linux (and from nbd-client)" },
	/* nbdctl's own */
	{ .name = "dead_timeout", .kind = TAB_UINT, .arg = "--dead-timeout", .max = 2147483647UL },
	{ .name = "readonly", .kind = TAB_FLAG, .arg = "--read-only" },
	{ .name = "ro", .kind = TAB_FLAG, .arg = "--read-only" },
	{ .name = "no_structured", .kind = TAB_FLAG, .arg = "--no-structured-replies" },
	{ .name = "strict", .kind = TAB_FLAG, .arg = "--strict" },
	{ .name = "tls", .kind = TAB_FLAG, .arg = "--tls" },
	{ .name = "tls_certificates", .kind = TAB_STRING, .arg = "--tls-certificates" },
	{ .name = "tls_psk", .kind = TAB_STRING, .arg = "--tls-psk" },
	{ .name = "tls_username", .kind = TAB_STRING, .arg = "--tls-username" },
	{ .name = "tls_insecure", .kind = TAB_FLAG, .arg = "--tls-insecure" },
	{ .name = "handshake_timeout", .kind = TAB_UINT,
	  .arg = "--handshake-timeout", .max = 3600 },
	{ .name = "backend", .kind = TAB_STRING, .arg = "--backend" },
	{ .name = "noauto", .kind = TAB_NOAUTO },
	/* systemd's mount option, sometimes copied here: harmless */
	{ .name = "_netdev", .kind = TAB_IGNORED },
};

/* What nbd-client's man page calls the options, for the messages. */
#define TAB_OPTION_LIST							\
	"bs, timeout, port, conns, persist, swap, unix, no_optgo, certfile, keyfile, cacertfile, tlshostname, priority; nbdctl's own: dead_timeout, readonly (ro), no_structured, strict, tls, tls_certificates, tls_psk, tls_username, tls_insecure, handshake_timeout, backend, noauto"

static int tab_err(char *err, size_t errlen, const char *path,
		   unsigned int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int tab_err(char *err, size_t errlen, const char *path,
		   unsigned int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(err, errlen, "%s line %u: ", path, line);
	if (n < 0 || (size_t)n >= errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - n, fmt, ap);
	va_end(ap);
	return -1;
}

static int push(struct nbdtab_entry *e, const char *s)
{
	char *copy;

	if (e->argc + 2 > (int)ARRAY_SIZE(e->argv))
		return -1;
	copy = strdup(s);
	if (!copy)
		return -1;
	e->argv[e->argc++] = copy;
	e->argv[e->argc] = NULL;
	return 0;
}

/* The device column: nbdN or /dev/nbdN. */
static int tab_device(const char *s)
{
	const char *p = s;
	unsigned long v;
	char *end;

	if (!strncmp(p, "/dev/", 5))
		p += 5;
	if (strncmp(p, "nbd", 3) || !isdigit((unsigned char)p[3]))
		return -1;
	errno = 0;
	v = strtoul(p + 3, &end, 10);
	if (errno || *end || v > 1048575 || (p[3] == '0' && p[4]))
		return -1;
	return (int)v;
}

static bool tab_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

void nbdtab_entry_free(struct nbdtab_entry *e)
{
	int i;

	for (i = 0; i < e->argc; i++)
		free(e->argv[i]);
	memset(e, 0, sizeof(*e));
}

/* Split @s at blanks into at most @max fields; returns their number. */
static int split_fields(char *s, char **f, int max)
{
	int n = 0;

	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			return n;
		if (n == max)
			return max + 1;
		f[n++] = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
		if (*s)
			*s++ = '\0';
	}
}

static int parse_line(const char *text, const char *path, unsigned int line,
		      struct nbdtab_entry *e, char *err, size_t errlen)
{
	const struct tab_option *opt;
	char buf[NBDTAB_LINE_MAX + 1], *f[5], *o, *next, *val;
	const char *port = NULL, *host;
	bool is_unix = false, is_uri;
	unsigned long v;
	size_t len, i;
	int n;

	memset(e, 0, sizeof(*e));
	e->line = line;
	e->index = -1;
	len = strlen(text);
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (len > NBDTAB_LINE_MAX)
		return tab_err(err, errlen, path, line,
			       "the line is longer than %d characters",
			       NBDTAB_LINE_MAX);
	memcpy(buf, text, len);
	buf[len] = '\0';
	for (i = 0; i < len; i++) {
		if (buf[i] == '#') {
			buf[i] = '\0';
			break;
		}
		if (iscntrl((unsigned char)buf[i]) && buf[i] != '\t')
			return tab_err(err, errlen, path, line,
				       "a control character (0x%02x) in column %zu",
				       (unsigned char)buf[i], i + 1);
	}
	n = split_fields(buf, f, 4);
	if (!n)
		return 1;
	if (n > 4)
		return tab_err(err, errlen, path, line,
			       "more than four fields (DEVICE HOST EXPORT OPTIONS); options are separated by commas, not blanks");
	if (n < 3)
		return tab_err(err, errlen, path, line,
			       "%s: a line needs at least DEVICE HOST EXPORT",
			       n == 1 ? "only a device" : "no export name");
	e->index = tab_device(f[0]);
	if (e->index < 0)
		return tab_err(err, errlen, path, line,
			       "'%s' is not an nbd device (nbdN or /dev/nbdN)",
			       f[0]);
	snprintf(e->device, sizeof(e->device), "nbd%d", e->index);
	host = f[1];
	is_uri = strstr(host, "://");

	if (push(e, "connect"))
		goto nomem;
	for (o = n == 4 ? f[3] : NULL; o; o = next) {
		next = strchr(o, ',');
		if (next)
			*next++ = '\0';
		if (!*o) {
			if (next || n == 4)
				return tab_err(err, errlen, path, line,
					       "an empty option (two commas, or a comma at the start or end)");
			break;
		}
		val = strchr(o, '=');
		if (val)
			*val++ = '\0';
		for (opt = tab_options; opt < tab_options + ARRAY_SIZE(tab_options); opt++)
			if (!strcmp(opt->name, o))
				break;
		if (opt == tab_options + ARRAY_SIZE(tab_options))
			return tab_err(err, errlen, path, line,
				       "unknown option '%s' (known: " TAB_OPTION_LIST ")",
				       o);
		if (opt->kind == TAB_REFUSED)
			return tab_err(err, errlen, path, line,
				       "option '%s' cannot be honoured: %s",
				       o, opt->why);
		if ((opt->kind == TAB_UINT || opt->kind == TAB_STRING ||
		     opt->kind == TAB_PORT) && (!val || !*val))
			return tab_err(err, errlen, path, line,
				       "option '%s' needs a value (%s=...)", o, o);
		if (opt->kind != TAB_UINT && opt->kind != TAB_STRING &&
		    opt->kind != TAB_PORT && val)
			return tab_err(err, errlen, path, line,
				       "option '%s' takes no value ('%s=%s')",
				       o, o, val);
		switch (opt->kind) {
		case TAB_FLAG:
			if (push(e, opt->arg))
				goto nomem;
			break;
		case TAB_UINT:
			if (!tab_uint(val, opt->max, &v))
				return tab_err(err, errlen, path, line,
					       "%s=%s: not a number from 0 to %lu",
					       o, val, opt->max);
			if (!strcmp(o, "conns") && !v)
				return tab_err(err, errlen, path, line,
					       "conns=0: at least one connection");
			if (!strcmp(o, "bs") &&
			    (v < 512 || (v & (v - 1))))
				return tab_err(err, errlen, path, line,
					       "bs=%s: a block size is a power of two from 512",
					       val);
			if (push(e, opt->arg) || push(e, val))
				goto nomem;
			break;
		case TAB_STRING:
			if (push(e, opt->arg) || push(e, val))
				goto nomem;
			break;
		case TAB_UNIX:
			is_unix = true;
			break;
		case TAB_PORT:
			if (!tab_uint(val, 65535, &v) || !v)
				return tab_err(err, errlen, path, line,
					       "port=%s: not a port number (1 to 65535)",
					       val);
			port = val;
			break;
		case TAB_NOAUTO:
			e->noauto = true;
			break;
		default:
			break;
		}
	}

	if (is_uri) {
		if (is_unix || port)
			return tab_err(err, errlen, path, line,
				       "the URI '%s' says where the server is: no '%s' option with it",
				       host, is_unix ? "unix" : "port");
		if (strcmp(f[2], "-"))
			return tab_err(err, errlen, path, line,
				       "the URI names the export: write '-' in the export column, not '%s'",
				       f[2]);
		if (push(e, host))
			goto nomem;
	} else if (is_unix) {
		if (port)
			return tab_err(err, errlen, path, line,
				       "a UNIX socket has no port ('unix' and 'port=%s')",
				       port);
		if (host[0] != '/')
			return tab_err(err, errlen, path, line,
				       "with 'unix' the host column is the socket's absolute path, not '%s'",
				       host);
		if (push(e, "--unix") || push(e, host))
			goto nomem;
	} else {
		if (push(e, host) || (port && push(e, port)))
			goto nomem;
	}
	/* "-" is an empty export name (the server's default export). */
	if (!is_uri && (push(e, "--name") ||
			push(e, strcmp(f[2], "-") ? f[2] : "")))
		goto nomem;
	if (push(e, e->device))
		goto nomem;
	return 0;
nomem:
	return tab_err(err, errlen, path, line, "out of memory");
}

int nbdtab_parse_line(const char *text, const char *path, unsigned int line,
		      struct nbdtab_entry *e, char *err, size_t errlen)
{
	int ret = parse_line(text, path, line, e, err, errlen);
	int index = e->index;

	if (ret) {
		/* what a bad line was for, when its device column was good */
		nbdtab_entry_free(e);
		e->index = index;
		e->line = line;
	}
	return ret;
}

int nbdtab_find(const char *path, const char *device, bool all,
		int (*cb)(void *arg, struct nbdtab_entry *e), void *arg,
		char *err, size_t errlen)
{
	char text[NBDTAB_LINE_MAX + 2], lerr[512];
	struct nbdtab_entry e;
	unsigned int line = 0, bad = 0, found = 0;
	int want = -1, ret;
	FILE *f;

	if (device) {
		want = tab_device(device);
		if (want < 0) {
			snprintf(err, errlen, "'%s' is not an nbd device (nbdN or /dev/nbdN)",
				 device);
			return -EINVAL;
		}
	}
	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "cannot read %s: %s%s", path,
			 strerror(errno),
			 errno == ENOENT ? " (nbdctl connect URI DEVICE works without it)" : "");
		return ret;
	}
	*err = '\0';
	while (fgets(text, sizeof(text), f)) {
		line++;
		if (!strchr(text, '\n') && !feof(f)) {
			int c;

			/* the rest of an over-long line */
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			text[NBDTAB_LINE_MAX + 1] = '\0';
		}
		ret = nbdtab_parse_line(text, path, line, &e, lerr,
					sizeof(lerr));
		if (ret > 0)
			continue;
		if (ret < 0) {
			/*
			 * Every bad line is reported; with one device asked
			 * for, other devices' lines only warn.
			 */
			if (want >= 0 && e.index >= 0 && e.index != want) {
				nbdctl_warn("%s", lerr);
				continue;
			}
			if (!bad++)
				snprintf(err, errlen, "%s", lerr);
			if (want < 0)
				nbdctl_err("%s", lerr);
			else
				nbdctl_warn("%s", lerr);
			continue;
		}
		if (want >= 0 && e.index != want) {
			nbdtab_entry_free(&e);
			continue;
		}
		found++;
		if (want >= 0 && found > 1) {
			snprintf(err, errlen, "%s line %u: nbd%d is listed a second time",
				 path, line, want);
			nbdtab_entry_free(&e);
			fclose(f);
			return -EEXIST;
		}
		ret = cb(arg, &e);
		nbdtab_entry_free(&e);
		if (ret) {
			fclose(f);
			return ret;
		}
	}
	fclose(f);
	if (bad && (all || !found))
		return -EINVAL;
	if (want >= 0 && !found) {
		snprintf(err, errlen, "%s has no line for nbd%d", path, want);
		return -ENOENT;
	}
	return 0;
}
