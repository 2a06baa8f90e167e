// SPDX-License-Identifier: GPL-2.0
/*
 * Table-driven tests of uri.c: nbd_uri_parse(), nbd_uri_from_args() and
 * nbd_uri_format() round trips.  Prints TAP; exits non-zero on a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbdctl.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#endif

struct parse_case {
	const char *desc;
	const char *in;
	const char *err;	/* expected error substring, NULL: success */
	bool tls;
	const char *host;	/* NULL: expect NULL */
	const char *port;
	const char *socket;
	const char *export_name;
};

#define OK(d, i, t, h, p, s, e)	{ d, i, NULL, t, h, p, s, e }
#define BAD(d, i, e)		{ d, i, e, false, NULL, NULL, NULL, NULL }

static const struct parse_case parse_cases[] = {
	/* Arrange: good URIs and the fields they must give */
	OK("tcp host, default port, export", "nbd://example.com/disk",
	   false, "example.com", "10809", NULL, "disk"),
	OK("tcp host with port", "nbd://10.0.0.1:1234/disk",
	   false, "10.0.0.1", "1234", NULL, "disk"),
	OK("no path: default export", "nbd://host",
	   false, "host", "10809", NULL, ""),
	OK("root path: default export", "nbd://host/",
	   false, "host", "10809", NULL, ""),
	OK("export with slashes", "nbd://host/a/b/c",
	   false, "host", "10809", NULL, "a/b/c"),
	OK("double slash keeps a leading slash", "nbd://host//abs",
	   false, "host", "10809", NULL, "/abs"),
	OK("percent-decoded export", "nbd://host/my%20disk%2Fx",
	   false, "host", "10809", NULL, "my disk/x"),
	OK("lowercase hex escapes", "nbd://host/%c3%a9",
	   false, "host", "10809", NULL, "\xc3\xa9"),
	OK("IPv6 literal", "nbd://[::1]/e",
	   false, "::1", "10809", NULL, "e"),
	OK("IPv6 literal with port", "nbd://[fe80::1]:10810/e",
	   false, "fe80::1", "10810", NULL, "e"),
	OK("IPv6 zone id", "nbd://[fe80::1%25eth0]/",
	   false, "fe80::1%eth0", "10809", NULL, ""),
	OK("empty port means default", "nbd://host:/x",
	   false, "host", "10809", NULL, "x"),
	OK("port 65535", "nbd://host:65535",
	   false, "host", "65535", NULL, ""),
	OK("port 1", "nbd://host:1/",
	   false, "host", "1", NULL, ""),
	OK("scheme is case-insensitive", "NBD://host/x",
	   false, "host", "10809", NULL, "x"),
	OK("nbds sets tls", "nbds://host/x",
	   true, "host", "10809", NULL, "x"),
	OK("unix socket", "nbd+unix:///disk?socket=/tmp/s.sock",
	   false, NULL, NULL, "/tmp/s.sock", "disk"),
	OK("unix socket, default export", "nbd+unix://?socket=/run/nbd",
	   false, NULL, NULL, "/run/nbd", ""),
	OK("unix socket path percent-decoded", "nbd+unix:///?socket=/tmp/a%20b",
	   false, NULL, NULL, "/tmp/a b", ""),
	OK("nbds+unix sets tls", "nbds+unix:///e?socket=/s",
	   true, NULL, NULL, "/s", "e"),
	OK("tls parameter accepted with nbds",
	   "nbds://h/e?tls-certificates=/etc/pki",
	   true, "h", "10809", NULL, "e"),
	OK("empty query pairs ignored", "nbd+unix:///e?&socket=/s&",
	   false, NULL, NULL, "/s", "e"),

	/* Arrange: bad URIs and a word the error must contain */
	BAD("empty input", "", "empty"),
	BAD("not a URI", "example.com", "not an NBD URI"),
	BAD("unknown scheme", "http://host/x", "unknown URI scheme \"http\""),
	BAD("vsock not supported", "nbd+vsock://2:10809/", "vsock"),
	BAD("garbage scheme", "n b d://host/", "valid scheme"),
	BAD("missing host", "nbd:///disk", "no host"),
	BAD("missing host, port only", "nbd://:10809/disk", "no host"),
	BAD("non-numeric port", "nbd://host:http/x", "bad port"),
	BAD("port zero", "nbd://host:0/x", "bad port"),
	BAD("port too big", "nbd://host:65536/x", "bad port"),
	BAD("port huge", "nbd://host:99999999999999999999/x", "bad port"),
	BAD("negative port", "nbd://host:-1/x", "bad port"),
	BAD("unbracketed IPv6", "nbd://::1/x", "brackets"),
	BAD("unclosed IPv6 bracket", "nbd://[::1/x", "closing ']'"),
	BAD("junk after IPv6 bracket", "nbd://[::1]x/", "after the IPv6"),
	BAD("empty IPv6 brackets", "nbd://[]/", "empty"),
	BAD("user info", "nbd://user@host/x", "user names"),
	BAD("unix without socket", "nbd+unix:///disk", "socket=PATH"),
	BAD("unix with empty socket", "nbd+unix:///disk?socket=", "empty"),
	BAD("unix with host", "nbd+unix://host/disk?socket=/s",
	    "cannot name a host"),
	BAD("socket= on tcp", "nbd://host/x?socket=/s", "nbd+unix"),
	BAD("two socket parameters", "nbd+unix:///?socket=/a&socket=/b",
	    "more than one"),
	BAD("unknown query parameter", "nbd+unix:///x?socket=/s&foo=1",
	    "unknown query parameter \"foo\""),
	BAD("tls parameter without tls", "nbd://h/?tls-psk-file=/k",
	    "only meaningful"),
	BAD("tls-verify-peer neither true nor false",
	    "nbds://h/?tls-verify-peer=maybe", "true or false"),
	BAD("two tls-hostname parameters",
	    "nbds://h/?tls-hostname=a&tls-hostname=b", "more than one"),
	BAD("empty tls-certificates", "nbds://h/?tls-certificates=", "empty"),
	BAD("bad percent escape", "nbd://host/a%zz", "bad percent escape"),
	BAD("truncated percent escape", "nbd://host/a%4", "bad percent escape"),
	BAD("lone percent at end", "nbd://host/a%", "bad percent escape"),
	BAD("NUL via %00 in export", "nbd://host/a%00b", "%00"),
	BAD("NUL via %00 in socket", "nbd+unix:///?socket=/a%00", "%00"),
	BAD("control character", "nbd://host/a\nb", "control character"),
	BAD("fragment", "nbd://host/x#frag", "fragment"),
	BAD("export name over 4096 bytes", NULL, "too long"),
	BAD("over-long input", NULL, "too long"),
};

static int failures;
static int test_no;

static void report(bool ok, const char *desc, const char *why)
{
	test_no++;
	if (ok) {
		printf("ok %d - %s\n", test_no, desc);
		return;
	}
	failures++;
	printf("not ok %d - %s\n", test_no, desc);
	if (why)
		printf("# %s\n", why);
}

/* One string field: equal (both NULL counts), else a reason in @why. */
static bool field_ok(const char *field, const char *got, const char *want,
		     char *why, size_t len)
{
	if (got && want ? !strcmp(got, want) : got == want)
		return true;
	snprintf(why, len, "%s \"%s\", expected \"%s\"", field,
		 got ? got : "(null)", want ? want : "(null)");
	return false;
}

static bool fields_match(const struct parse_case *c, const struct nbd_uri *u,
			 char *why, size_t len)
{
	if (u->tls != c->tls) {
		snprintf(why, len, "tls %d, expected %d", u->tls, c->tls);
		return false;
	}
	return field_ok("host", u->host, c->host, why, len) &&
	       field_ok("port", u->port, c->port, why, len) &&
	       field_ok("socket", u->socket, c->socket, why, len) &&
	       field_ok("export_name", u->export_name, c->export_name,
			why, len);
}

/* nbd_uri_format() then nbd_uri_parse() must give the same fields. */
static bool round_trip(const struct nbd_uri *u, char *why, size_t len)
{
	struct parse_case again = {
		.tls = u->tls, .host = u->host, .port = u->port,
		.socket = u->socket, .export_name = u->export_name,
	};
	char err[256];
	struct nbd_uri v;
	char *text = nbd_uri_format(u);
	bool ok;

	if (!text) {
		snprintf(why, len, "nbd_uri_format() returned NULL");
		return false;
	}
	if (nbd_uri_parse(text, &v, err, sizeof(err))) {
		snprintf(why, len, "\"%s\" does not parse: %s", text, err);
		free(text);
		return false;
	}
	ok = fields_match(&again, &v, why, len);
	free(text);
	nbd_uri_free(&v);
	return ok;
}

static void run_parse_case(const struct parse_case *c, const char *in)
{
	char err[512], why[1024], desc[256];
	struct nbd_uri u;
	int rc;

	/* Act */
	memset(err, 0, sizeof(err));
	rc = nbd_uri_parse(in, &u, err, sizeof(err));

	/* Assert */
	why[0] = '\0';
	if (c->err) {
		bool ok = rc == -1 && strstr(err, c->err) &&
			  !u.host && !u.port && !u.socket && !u.export_name;

		if (!ok)
			snprintf(why, sizeof(why),
				 "rc %d, error \"%s\", expected one containing \"%s\"",
				 rc, err, c->err);
		report(ok, c->desc, why);
		return;
	}
	if (rc) {
		snprintf(why, sizeof(why), "rc %d: %s", rc, err);
		report(false, c->desc, why);
		return;
	}
	report(fields_match(c, &u, why, sizeof(why)), c->desc, why);
	snprintf(desc, sizeof(desc), "round trip: %s", c->desc);
	why[0] = '\0';
	report(round_trip(&u, why, sizeof(why)), desc, why);
	nbd_uri_free(&u);
}

/* "nbd://host/" then @fill up to @total bytes; NULL if out of memory. */
static char *long_uri(char fill, size_t total)
{
	char *s = malloc(total + 1);

	if (!s)
		return NULL;
	memcpy(s, "nbd://host/", 11);
	memset(s + 11, fill, total - 11);
	s[total] = '\0';
	return s;
}

static void test_parse(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		char *in = NULL;

		if (c->in) {
			run_parse_case(c, c->in);
			continue;
		}
		/* The two generated inputs: 5000 and 20000 bytes long. */
		if (!strcmp(c->desc, "over-long input"))
			in = long_uri('a', 20000);
		else
			in = long_uri('b', 5000);
		if (!in) {
			report(false, c->desc, "out of memory");
			continue;
		}
		run_parse_case(c, in);
		free(in);
	}
}

/* Bytes that are not a URI must never crash the parser. */
static void test_no_crash(void)
{
	static const char *const odd[] = {
		"://", "nbd://", "nbd:", "nbd:/", "nbd://[", "nbd://]",
		"nbd://[:", "nbd://[]:", "nbd://h:", "nbd+unix://",
		"nbd+unix:///?", "nbd+unix:///?=", "nbd+unix:///?socket",
		"nbd://h/?%", "nbd://%", "nbd://h%2", "%%%://",
		"nbd://h/\x7f", "nbd://h/\xff\xfe", "nbds+unix:///?&&&&",
	};
	char err[64];
	struct nbd_uri u;
	bool ok = true;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(odd); i++) {
		if (!nbd_uri_parse(odd[i], &u, err, sizeof(err)))
			nbd_uri_free(&u);
		/* a tiny error buffer truncates; never overflows */
		if (nbd_uri_parse(odd[i], &u, err, 1) == 0)
			nbd_uri_free(&u);
		if (nbd_uri_parse(odd[i], &u, NULL, 0) == 0)
			nbd_uri_free(&u);
	}
	ok = nbd_uri_parse(NULL, &u, err, sizeof(err)) == -1;
	report(ok, "odd inputs and tiny error buffers do not crash", NULL);
}

struct args_case {
	const char *desc;
	const char *host, *port, *unix_path, *export_name;
	const char *err;
	const char *uri;	/* expected nbd_uri_format() */
};

static const struct args_case args_cases[] = {
	{ "host only", "server", NULL, NULL, NULL, NULL, "nbd://server/" },
	{ "host and port", "server", "10810", NULL, "e", NULL,
	  "nbd://server:10810/e" },
	{ "default port left out", "server", "10809", NULL, "e", NULL,
	  "nbd://server/e" },
	{ "IPv6 host gets brackets", "::1", "2000", NULL, NULL, NULL,
	  "nbd://[::1]:2000/" },
	{ "bracketed IPv6 host", "[::1]", NULL, NULL, NULL, NULL,
	  "nbd://[::1]/" },
	{ "export encoded", "h", NULL, NULL, "a b/c%", NULL,
	  "nbd://h/a%20b/c%25" },
	{ "unix socket", NULL, NULL, "/tmp/x y", "disk", NULL,
	  "nbd+unix:///disk?socket=/tmp/x%20y" },
	{ "unix socket with host", "h", NULL, "/s", NULL, "not both", NULL },
	{ "empty unix socket", NULL, NULL, "", NULL, "empty", NULL },
	{ "no host", NULL, NULL, NULL, NULL, "no server", NULL },
	{ "bad port", "h", "nbd", NULL, NULL, "bad port", NULL },
	{ "port zero", "h", "0", NULL, NULL, "bad port", NULL },
	{ "port too big", "h", "70000", NULL, NULL, "bad port", NULL },
};

static void test_from_args(void)
{
	char err[256], why[1024];
	struct nbd_uri u;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(args_cases); i++) {
		const struct args_case *c = &args_cases[i];
		char desc[256];
		char *text;
		int rc;

		snprintf(desc, sizeof(desc), "from_args: %s", c->desc);
		err[0] = '\0';
		why[0] = '\0';
		rc = nbd_uri_from_args(c->host, c->port, c->unix_path,
				       c->export_name, &u, err, sizeof(err));
		if (c->err) {
			snprintf(why, sizeof(why), "rc %d, error \"%s\"", rc,
				 err);
			report(rc == -1 && strstr(err, c->err), desc, why);
			continue;
		}
		if (rc) {
			snprintf(why, sizeof(why), "rc %d: %s", rc, err);
			report(false, desc, why);
			continue;
		}
		text = nbd_uri_format(&u);
		snprintf(why, sizeof(why), "formatted \"%s\", expected \"%s\"",
			 text ? text : "(null)", c->uri);
		report(text && !strcmp(text, c->uri), desc, why);
		free(text);

		snprintf(desc, sizeof(desc), "from_args round trip: %s",
			 c->desc);
		why[0] = '\0';
		report(round_trip(&u, why, sizeof(why)), desc, why);
		nbd_uri_free(&u);
	}
}

static void test_format_tls(void)
{
	struct nbd_uri u = {
		.tls = true, .host = "h", .port = "99", .export_name = "x",
	};
	char *text = nbd_uri_format(&u);

	report(text && !strcmp(text, "nbds://h:99/x"), "format: nbds://",
	       text);
	free(text);
	u.host = NULL;
	u.port = NULL;
	u.socket = "/s";
	text = nbd_uri_format(&u);
	report(text && !strcmp(text, "nbds+unix:///x?socket=/s"),
	       "format: nbds+unix://", text);
	free(text);
}

int main(void)
{
	test_parse();
	test_no_crash();
	test_from_args();
	test_format_tls();
	printf("1..%d\n", test_no);
	if (failures)
		printf("# %d of %d failed\n", failures, test_no);
	return failures ? 1 : 0;
}
