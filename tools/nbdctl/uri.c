// SPDX-License-Identifier: GPL-2.0
/*
 * nbdctl: NBD URIs and the plain HOST [PORT] / --unix targets.
 *
 *   nbd://host[:port]/export            TCP, port 10809 by default
 *   nbd+unix:///export?socket=PATH      UNIX domain socket
 *   nbds://... and nbds+unix://...      the same with TLS (u->tls)
 *
 * The export name is the path without its leading '/', percent-decoded.
 * This file stands alone (tests/uri_test links it without main.c), so it
 * reports problems only through the caller's @err buffer.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbdctl.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#endif

/* Longer input is certainly a mistake (export names stop at 4096 bytes). */
#define URI_MAX_LEN	8192
#define PORT_MAX	65535

struct uri_scheme {
	const char *name;
	bool tls;
	bool unix_socket;
};

static const struct uri_scheme schemes[] = {
	{ "nbd", false, false },
	{ "nbds", true, false },
	{ "nbd+unix", false, true },
	{ "nbds+unix", true, true },
};

/* TLS parameters from the NBD URI specification; meaningful for nbds only. */
static const char *const tls_params[] = {
	"tls-certificates", "tls-verify-peer", "tls-psk-file",
	"tls-hostname", "tls-username",
};

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Percent-decode @len bytes of @s into a new string.  @what names the part
 * of the URI for messages.  Returns NULL with @err set on a bad escape, an
 * encoded NUL or no memory.
 */
static char *pct_decode(const char *s, size_t len, const char *what,
			char *err, size_t errlen)
{
	char *out = malloc(len + 1);
	size_t i, o = 0;

	if (!out) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < len; i++) {
		int hi, lo;

		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		hi = i + 1 < len ? hex_value(s[i + 1]) : -1;
		lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			set_err(err, errlen,
				"bad percent escape in the %s: '%%' must be followed by two hex digits",
				what);
			free(out);
			return NULL;
		}
		if (hi == 0 && lo == 0) {
			set_err(err, errlen,
				"the %s contains %%00, but NUL bytes are not allowed",
				what);
			free(out);
			return NULL;
		}
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	return out;
}

/* A decimal TCP port 1..65535; a NUL-terminated copy on success. */
static char *parse_port(const char *s, size_t len, char *err, size_t errlen)
{
	unsigned long v = 0;
	size_t i;
	char *p;

	for (i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i])) {
			set_err(err, errlen,
				"bad port \"%.*s\": the port must be a number from 1 to 65535",
				len > 32 ? 32 : (int)len, s);
			return NULL;
		}
		v = v * 10 + (unsigned long)(s[i] - '0');
		if (v > PORT_MAX)
			break;
	}
	if (!len || v == 0 || v > PORT_MAX) {
		set_err(err, errlen,
			"bad port \"%.*s\": the port must be a number from 1 to 65535",
			len > 32 ? 32 : (int)len, s);
		return NULL;
	}
	p = malloc(8);
	if (!p) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(p, 8, "%lu", v);
	return p;
}

/* The authority of a TCP URI: host, [v6], host:port or [v6]:port. */
static int parse_authority(const char *a, size_t len, struct nbd_uri *u,
			   char *err, size_t errlen)
{
	const char *host = a, *port = NULL;
	size_t host_len, port_len = 0;

	if (memchr(a, '@', len)) {
		set_err(err, errlen,
			"user names in NBD URIs (user@host) are not supported");
		return -1;
	}
	if (len && a[0] == '[') {
		const char *close = memchr(a, ']', len);

		if (!close) {
			set_err(err, errlen,
				"the IPv6 address in the URI has no closing ']'");
			return -1;
		}
		host = a + 1;
		host_len = (size_t)(close - host);
		if (close + 1 < a + len) {
			if (close[1] != ':') {
				set_err(err, errlen,
					"unexpected text after the IPv6 address ']' in the URI");
				return -1;
			}
			port = close + 2;
			port_len = (size_t)(a + len - port);
		}
		if (!host_len) {
			set_err(err, errlen, "the IPv6 address in the URI is empty");
			return -1;
		}
	} else {
		const char *colon = memchr(a, ':', len);
		const char *end = a + len;

		if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1))) {
			set_err(err, errlen,
				"IPv6 addresses in URIs must be in brackets, e.g. nbd://[::1]/");
			return -1;
		}
		host_len = colon ? (size_t)(colon - a) : len;
		if (colon) {
			port = colon + 1;
			port_len = (size_t)(a + len - port);
		}
	}
	if (!host_len) {
		set_err(err, errlen,
			"the URI has no host name; write nbd://HOST/EXPORT, or nbd+unix:///EXPORT?socket=PATH for a UNIX socket");
		return -1;
	}
	u->host = pct_decode(host, host_len, "host name", err, errlen);
	if (!u->host)
		return -1;
	/* RFC 3986: an empty port ("host:") means the default. */
	if (port && port_len)
		u->port = parse_port(port, port_len, err, errlen);
	else
		u->port = strdup(NBD_DEFAULT_PORT);
	if (!u->port) {
		if (!port || !port_len)
			set_err(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* Where each TLS query parameter goes (its index in tls_params). */
static char **tls_param_slot(struct nbd_uri *u, size_t i)
{
	char **slots[] = {
		&u->tls_certificates, &u->tls_verify_peer, &u->tls_psk_file,
		&u->tls_hostname, &u->tls_username,
	};

	return slots[i];
}

static int tls_param_index(const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(tls_params); i++)
		if (strlen(tls_params[i]) == len &&
		    !memcmp(tls_params[i], key, len))
			return (int)i;
	return -1;
}

static bool is_tls_param(const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(tls_params); i++)
		if (strlen(tls_params[i]) == len &&
		    !memcmp(tls_params[i], key, len))
			return true;
	return false;
}

/* key=value pairs separated by '&'. */
static int parse_query(const char *q, size_t len, const struct uri_scheme *sc,
		       struct nbd_uri *u, char *err, size_t errlen)
{
	const char *end = q + len;

	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *pend = amp ? amp : end;
		const char *eq = memchr(q, '=', (size_t)(pend - q));
		size_t klen = (size_t)((eq ? eq : pend) - q);
		int shown = klen > 64 ? 64 : (int)klen;
		char **slot;
		int ti;

		if (pend == q) {	/* "a=1&&b=2" or a trailing '&' */
			q = pend + 1;
			continue;
		}
		if (klen == 6 && !memcmp(q, "socket", 6)) {
			if (!sc->unix_socket) {
				set_err(err, errlen,
					"the socket= parameter needs an nbd+unix:// URI");
				return -1;
			}
			if (u->socket) {
				set_err(err, errlen,
					"the URI has more than one socket= parameter");
				return -1;
			}
			if (!eq || eq + 1 == pend) {
				set_err(err, errlen,
					"the socket= parameter in the URI is empty");
				return -1;
			}
			u->socket = pct_decode(eq + 1, (size_t)(pend - eq - 1),
					       "socket path", err, errlen);
			if (!u->socket)
				return -1;
		} else if (is_tls_param(q, klen)) {
			if (!sc->tls) {
				set_err(err, errlen,
					"the query parameter \"%.*s\" is only meaningful in an nbds:// or nbds+unix:// URI",
					shown, q);
				return -1;
			}
			ti = tls_param_index(q, klen);
			slot = tls_param_slot(u, (size_t)ti);
			if (*slot) {
				set_err(err, errlen,
					"the URI has more than one %s= parameter",
					tls_params[ti]);
				return -1;
			}
			if (!eq || eq + 1 == pend) {
				set_err(err, errlen,
					"the %s= parameter in the URI is empty",
					tls_params[ti]);
				return -1;
			}
			*slot = pct_decode(eq + 1, (size_t)(pend - eq - 1),
					   tls_params[ti], err, errlen);
			if (!*slot)
				return -1;
			if (slot == &u->tls_verify_peer &&
			    strcmp(*slot, "true") && strcmp(*slot, "false")) {
				set_err(err, errlen,
					"tls-verify-peer= in the URI must be true or false");
				return -1;
			}
		} else {
			char *key = pct_decode(q, klen, "query", err, errlen);
			size_t i;

			if (!key)
				return -1;
			/* Keep the message readable whatever the key holds. */
			for (i = 0; key[i]; i++)
				if (!isprint((unsigned char)key[i]))
					key[i] = '?';
			set_err(err, errlen,
				"unknown query parameter \"%.64s\" in the URI", key);
			free(key);
			return -1;
		}
		q = pend + 1;
	}
	return 0;
}

/**
 * nbd_uri_parse() - parse an NBD URI.
 * @s: the URI text.
 * @u: filled in on success; cleared (nothing to free) on failure.
 * @err: a sentence on failure.
 * @errlen: size of @err.
 *
 * Return: 0, or -1 with @err set.
 */
int nbd_uri_parse(const char *s, struct nbd_uri *u, char *err, size_t errlen)
{
	const struct uri_scheme *sc = NULL;
	const char *p, *auth, *auth_end, *path, *path_end, *query = NULL;
	size_t len, i, query_len = 0;

	if (u)
		memset(u, 0, sizeof(*u));
	if (!s || !u) {
		set_err(err, errlen, "no URI given");
		return -1;
	}
	len = strnlen(s, URI_MAX_LEN + 1);
	if (!len) {
		set_err(err, errlen, "the URI is empty");
		return -1;
	}
	if (len > URI_MAX_LEN) {
		set_err(err, errlen, "the URI is too long (more than %d bytes)",
			URI_MAX_LEN);
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			set_err(err, errlen,
				"the URI contains a control character at position %zu",
				i + 1);
			return -1;
		}
	}

	p = strstr(s, "://");
	if (!p) {
		set_err(err, errlen,
			"\"%.64s%s\" is not an NBD URI (expected nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH)",
			s, len > 64 ? "..." : "");
		return -1;
	}
	for (i = 0; i < ARRAY_SIZE(schemes); i++) {
		if (strlen(schemes[i].name) == (size_t)(p - s) &&
		    !strncasecmp(schemes[i].name, s, (size_t)(p - s))) {
			sc = &schemes[i];
			break;
		}
	}
	if (!sc) {
		int n = (int)(p - s);

		for (i = 0; i < (size_t)n; i++)
			if (!isalnum((unsigned char)s[i]) && !strchr("+-.", s[i]))
				break;
		if (i < (size_t)n || n > 32)
			set_err(err, errlen,
				"the URI does not start with a valid scheme such as nbd://");
		else if ((n == 9 && !strncasecmp(s, "nbd+vsock", 9)) ||
			 (n == 10 && !strncasecmp(s, "nbds+vsock", 10)))
			set_err(err, errlen,
				"NBD over vsock (%.*s://) is not supported", n, s);
		else
			set_err(err, errlen,
				"unknown URI scheme \"%.*s\": use nbd://, nbd+unix://, nbds:// or nbds+unix://",
				n, s);
		return -1;
	}
	u->tls = sc->tls;

	auth = p + 3;
	auth_end = auth + strcspn(auth, "/?#");
	path = auth_end;
	path_end = path + strcspn(path, "?#");
	if (*path_end == '?') {
		query = path_end + 1;
		query_len = strcspn(query, "#");
	}
	if (strchr(s, '#')) {
		set_err(err, errlen, "NBD URIs cannot have a #fragment");
		goto fail;
	}

	if (sc->unix_socket) {
		if (auth_end != auth) {
			set_err(err, errlen,
				"an %s:// URI cannot name a host (\"%.*s\"); write %s:///EXPORT?socket=PATH",
				sc->name, (int)(auth_end - auth > 64 ? 64 :
						auth_end - auth),
				auth, sc->name);
			goto fail;
		}
	} else if (parse_authority(auth, (size_t)(auth_end - auth), u,
				   err, errlen)) {
		goto fail;
	}

	/* The export: the path without its leading '/'. */
	if (path < path_end && *path == '/')
		path++;
	u->export_name = pct_decode(path, (size_t)(path_end - path),
				    "export name", err, errlen);
	if (!u->export_name)
		goto fail;
	if (strlen(u->export_name) > 4096) {
		set_err(err, errlen,
			"the export name is too long (the limit is 4096 bytes)");
		goto fail;
	}

	if (query && parse_query(query, query_len, sc, u, err, errlen))
		goto fail;
	if (sc->unix_socket && !u->socket) {
		set_err(err, errlen,
			"an %s:// URI needs ?socket=PATH naming the UNIX socket",
			sc->name);
		goto fail;
	}
	return 0;

fail:
	nbd_uri_free(u);
	return -1;
}

/**
 * nbd_uri_from_args() - a target from HOST [PORT] or a UNIX socket path.
 * @host: host name or address (NULL with @unix_path).
 * @port: decimal port, or NULL for 10809.
 * @unix_path: UNIX socket path, or NULL for TCP.
 * @export: export name, or NULL for "".
 * @u: filled in on success; cleared on failure.
 * @err: a sentence on failure.
 * @errlen: size of @err.
 *
 * Return: 0, or -1 with @err set.
 */
int nbd_uri_from_args(const char *host, const char *port,
		      const char *unix_path, const char *export,
		      struct nbd_uri *u, char *err, size_t errlen)
{
	if (u)
		memset(u, 0, sizeof(*u));
	if (!u) {
		set_err(err, errlen, "no target given");
		return -1;
	}
	if (export && strlen(export) > 4096) {
		set_err(err, errlen,
			"the export name is too long (the limit is 4096 bytes)");
		return -1;
	}
	if (unix_path) {
		if (host || port) {
			set_err(err, errlen,
				"give either a UNIX socket path or a host and port, not both");
			return -1;
		}
		if (!*unix_path) {
			set_err(err, errlen, "the UNIX socket path is empty");
			return -1;
		}
		u->socket = strdup(unix_path);
		if (!u->socket)
			goto nomem;
	} else {
		if (!host || !*host) {
			set_err(err, errlen, "no server given");
			return -1;
		}
		if (port && *port) {
			u->port = parse_port(port, strlen(port), err, errlen);
			if (!u->port)
				goto fail;
		} else {
			u->port = strdup(NBD_DEFAULT_PORT);
			if (!u->port)
				goto nomem;
		}
		/* Accept "[::1]" as well as "::1". */
		if (host[0] == '[' && host[strlen(host) - 1] == ']' &&
		    strlen(host) > 2)
			u->host = strndup(host + 1, strlen(host) - 2);
		else
			u->host = strdup(host);
		if (!u->host)
			goto nomem;
	}
	u->export_name = strdup(export ? export : "");
	if (!u->export_name)
		goto nomem;
	return 0;

nomem:
	set_err(err, errlen, "out of memory");
fail:
	nbd_uri_free(u);
	return -1;
}

/*
 * Write @s percent-encoded to @out (or just count when @out is NULL): all
 * but RFC 3986 unreserved characters and those in @keep.
 */
static size_t pct_encode(char *out, const char *s, const char *keep)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr("-._~", c) || strchr(keep, c)) {
			if (out)
				out[o] = (char)c;
			o++;
		} else {
			if (out) {
				out[o] = '%';
				out[o + 1] = hex[c >> 4];
				out[o + 2] = hex[c & 15];
			}
			o += 3;
		}
	}
	return o;
}

/**
 * nbd_uri_format() - the canonical URI for @u.
 * @u: a parsed or built target.
 *
 * The port is left out when it is the default.  nbd_uri_parse() of the
 * result gives back the same fields.
 *
 * Return: a malloc'ed string, or NULL when out of memory.
 */
char *nbd_uri_format(const struct nbd_uri *u)
{
	const char *export = u->export_name ? u->export_name : "";
	const char *scheme;
	size_t len;
	char *out, *o;
	bool v6;

	if (u->socket)
		scheme = u->tls ? "nbds+unix" : "nbd+unix";
	else
		scheme = u->tls ? "nbds" : "nbd";
	v6 = u->host && strchr(u->host, ':');

	len = strlen(scheme) + 4 + pct_encode(NULL, export, "/") + 1;
	if (u->socket) {
		len += strlen("?socket=") + pct_encode(NULL, u->socket, "/");
	} else {
		len += pct_encode(NULL, u->host ? u->host : "", ":") + 2;
		if (u->port)
			len += 1 + strlen(u->port);
	}
	out = malloc(len + 1);
	if (!out)
		return NULL;

	o = out + sprintf(out, "%s://", scheme);
	if (!u->socket) {
		if (v6)
			*o++ = '[';
		o += pct_encode(o, u->host ? u->host : "", ":");
		if (v6)
			*o++ = ']';
		if (u->port && strcmp(u->port, NBD_DEFAULT_PORT))
			o += sprintf(o, ":%s", u->port);
	}
	*o++ = '/';
	o += pct_encode(o, export, "/");
	if (u->socket) {
		o += sprintf(o, "?socket=");
		o += pct_encode(o, u->socket, "/");
	}
	*o = '\0';
	return out;
}

/**
 * nbd_uri_free() - free the fields of @u and clear it.
 * @u: a target; may be NULL or already freed.
 */
void nbd_uri_free(struct nbd_uri *u)
{
	if (!u)
		return;
	free(u->host);
	free(u->port);
	free(u->socket);
	free(u->export_name);
	free(u->tls_certificates);
	free(u->tls_verify_peer);
	free(u->tls_psk_file);
	free(u->tls_hostname);
	free(u->tls_username);
	memset(u, 0, sizeof(*u));
}
