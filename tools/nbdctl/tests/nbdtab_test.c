// SPDX-License-Identifier: GPL-2.0
/*
 * Table-driven tests of nbdtab.c: each line of an nbdtab and the connect
 * command line it must stand for, or the error it must give; then
 * nbdtab_find() on a file.  Prints TAP; exits non-zero on a failure.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nbdctl.h"

/* nbdtab.c reports through these (main.c has the real ones). */
int nbdctl_verbose;
static char last_msg[1024];

static void keep(const char *fmt, va_list ap)
{
	vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
}

void nbdctl_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	keep(fmt, ap);
	va_end(ap);
}

void nbdctl_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	keep(fmt, ap);
	va_end(ap);
}

void nbdctl_info(const char *fmt, ...)
{
}

struct line_case {
	const char *desc;
	const char *line;
	int ret;		/* 0 entry, 1 nothing, -1 error */
	const char *want;	/* ret 0: the arguments after "connect";
				 * ret -1: a substring of the error */
	bool noauto;
};

#define OK(d, l, w)	{ d, l, 0, w, false }
#define NONE(d, l)	{ d, l, 1, NULL, false }
#define BAD(d, l, w)	{ d, l, -1, w, false }

static const struct line_case cases[] = {
	/* nbd-client's own lines */
	OK("plain host and export", "nbd0 server disk",
	   "server --name disk nbd0"),
	OK("/dev/ prefix", "/dev/nbd3 server disk",
	   "server --name disk nbd3"),
	OK("tabs and trailing blanks", "nbd1\tserver\t disk \t",
	   "server --name disk nbd1"),
	OK("CRLF line end", "nbd1 server disk\r\n",
	   "server --name disk nbd1"),
	OK("port option", "nbd0 10.0.0.1 disk port=10810",
	   "10.0.0.1 10810 --name disk nbd0"),
	OK("block size, timeout, connections, persist",
	   "nbd2 srv e bs=4096,timeout=30,conns=4,persist",
	   "--block-size 4096 --timeout 30 --connections 4 --persist srv --name e nbd2"),
	OK("swap", "nbd0 srv e swap", "--swap srv --name e nbd0"),
	OK("unix socket", "nbd0 /run/nbd.sock disk unix",
	   "--unix /run/nbd.sock --name disk nbd0"),
	OK("no_optgo", "nbd0 srv e no_optgo", "--no-opt-go srv --name e nbd0"),
	OK("TLS files", "nbd0 srv e certfile=/c.pem,keyfile=/k.pem,cacertfile=/ca.pem,tlshostname=srv.example,priority=NORMAL:-VERS-TLS1.2",
	   "--cert /c.pem --key /k.pem --cacert /ca.pem --tls-hostname srv.example --tls-priority NORMAL:-VERS-TLS1.2 srv --name e nbd0"),
	OK("comment after the options", "nbd0 srv e persist # the disk",
	   "--persist srv --name e nbd0"),
	OK("'-' is the default export", "nbd0 srv - ", "srv --name  nbd0"),
	OK("IPv6 address", "nbd0 fe80::1%eth0 e", "fe80::1%eth0 --name e nbd0"),
	NONE("blank line", "   \t "),
	NONE("comment line", "# nbd0 srv e"),
	NONE("empty", ""),
	/* nbdctl's extensions */
	OK("a URI in the host column", "nbd5 nbd://srv:10810/disk -",
	   "nbd://srv:10810/disk nbd5"),
	OK("a unix URI", "nbd5 nbd+unix:///e?socket=/run/s -",
	   "nbd+unix:///e?socket=/run/s nbd5"),
	OK("dead timeout, read-only, no structured, strict",
	   "nbd0 srv e dead_timeout=60,readonly,no_structured,strict",
	   "--dead-timeout 60 --read-only --no-structured-replies --strict srv --name e nbd0"),
	OK("ro and tls options", "nbd0 srv e ro,tls,tls_psk=/k.psk,tls_username=u,tls_certificates=/d,tls_insecure",
	   "--read-only --tls --tls-psk /k.psk --tls-username u --tls-certificates /d --tls-insecure srv --name e nbd0"),
	OK("backend and handshake timeout", "nbd0 srv e backend=disk-1,handshake_timeout=5",
	   "--backend disk-1 --handshake-timeout 5 srv --name e nbd0"),
	OK("_netdev is accepted", "nbd0 srv e _netdev", "srv --name e nbd0"),
	{ "noauto", "nbd0 srv e noauto", 0, "srv --name e nbd0", true },
	/* bad lines */
	BAD("only a device", "nbd0", "at least DEVICE HOST EXPORT"),
	BAD("no export", "nbd0 srv", "no export name"),
	BAD("not a device", "sda srv e", "'sda' is not an nbd device"),
	BAD("device with junk", "nbd0x srv e", "not an nbd device"),
	BAD("device with a leading zero", "nbd01 srv e", "not an nbd device"),
	BAD("options with blanks", "nbd0 srv e bs=4096, persist",
	    "separated by commas, not blanks"),
	BAD("unknown option", "nbd0 srv e bs=4096,fast", "unknown option 'fast'"),
	BAD("refused option", "nbd0 srv e sdp", "option 'sdp' cannot be honoured"),
	BAD("value missing", "nbd0 srv e bs", "option 'bs' needs a value"),
	BAD("empty value", "nbd0 srv e timeout=", "option 'timeout' needs a value"),
	BAD("value on a flag", "nbd0 srv e persist=yes", "option 'persist' takes no value"),
	BAD("not a number", "nbd0 srv e timeout=30s", "timeout=30s: not a number"),
	BAD("negative number", "nbd0 srv e timeout=-1", "timeout=-1: not a number"),
	BAD("number too large", "nbd0 srv e conns=65", "conns=65: not a number from 0 to 64"),
	BAD("no connections", "nbd0 srv e conns=0", "at least one connection"),
	BAD("block size not a power of two", "nbd0 srv e bs=1000",
	    "a block size is a power of two"),
	BAD("block size too small", "nbd0 srv e bs=256", "bs=256"),
	BAD("bad port", "nbd0 srv e port=70000", "port=70000: not a port number"),
	BAD("port 0", "nbd0 srv e port=0", "port=0"),
	BAD("empty option", "nbd0 srv e bs=512,,persist", "an empty option"),
	BAD("trailing comma", "nbd0 srv e persist,", "an empty option"),
	BAD("unix with a relative path", "nbd0 run/s e unix", "absolute path"),
	BAD("unix with a port", "nbd0 /run/s e unix,port=1", "has no port"),
	BAD("URI and an export", "nbd0 nbd://srv/x x", "write '-' in the export column"),
	BAD("URI and unix", "nbd0 nbd://srv/x - unix", "no 'unix' option"),
	BAD("URI and port", "nbd0 nbd://srv/x - port=1", "no 'port' option"),
	BAD("control character", "nbd0 srv\001 e", "a control character (0x01)"),
};

static int failed, tests;

static void result(bool ok, const char *desc, const char *why)
{
	tests++;
	if (ok) {
		printf("ok %d - %s\n", tests, desc);
	} else {
		failed++;
		printf("not ok %d - %s\n#   %s\n", tests, desc, why);
	}
}

static void join(const struct nbdtab_entry *e, char *buf, size_t len)
{
	size_t used = 0;
	int i;

	buf[0] = '\0';
	for (i = 1; i < e->argc; i++)
		used += snprintf(buf + used, used < len ? len - used : 0,
				 "%s%s", i > 1 ? " " : "", e->argv[i]);
}

static void line_cases(void)
{
	char err[1024], got[2048], why[4096];
	struct nbdtab_entry e;
	size_t i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct line_case *c = &cases[i];

		ret = nbdtab_parse_line(c->line, "nbdtab", 7, &e, err,
					sizeof(err));
		if (ret != c->ret) {
			snprintf(why, sizeof(why), "returned %d, expected %d (%s)",
				 ret, c->ret, ret < 0 ? err : "");
			result(false, c->desc, why);
		} else if (ret == 0) {
			join(&e, got, sizeof(got));
			snprintf(why, sizeof(why),
				 "got \"%s\", expected \"%s\" (noauto %d)", got,
				 c->want, e.noauto);
			result(!strcmp(e.argv[0], "connect") &&
			       !strcmp(got, c->want) && e.noauto == c->noauto &&
			       e.argv[e.argc] == NULL, c->desc, why);
		} else if (ret < 0) {
			snprintf(why, sizeof(why), "error \"%s\" lacks \"%s\" or the line number",
				 err, c->want);
			result(strstr(err, c->want) &&
			       !strncmp(err, "nbdtab line 7: ", 15), c->desc, why);
		} else {
			result(true, c->desc, "");
		}
		if (ret == 0)
			nbdtab_entry_free(&e);
	}
}

struct seen {
	char list[256];
};

static int note(void *arg, struct nbdtab_entry *e)
{
	struct seen *s = arg;
	size_t n = strlen(s->list);

	snprintf(s->list + n, sizeof(s->list) - n, "%s%s:%u", n ? " " : "",
		 e->device, e->line);
	return 0;
}

static void file_cases(void)
{
	char path[] = "/tmp/nbdtab_test.XXXXXX", err[1024], why[2048];
	struct seen s = { };
	FILE *f;
	int fd, ret;

	fd = mkstemp(path);
	if (fd < 0) {
		result(false, "a temporary nbdtab", strerror(errno));
		return;
	}
	f = fdopen(fd, "w");
	fputs("# devices\n"
	      "nbd0 srv a\n"
	      "\n"
	      "nbd1 srv b bogus\n"
	      "nbd2 srv c persist\n"
	      "nbd2 srv d\n", f);
	fclose(f);

	ret = nbdtab_find(path, "nbd0", false, note, &s, err, sizeof(err));
	snprintf(why, sizeof(why), "ret %d, seen \"%s\", err \"%s\"", ret,
		 s.list, err);
	result(ret == 0 && !strcmp(s.list, "nbd0:2"),
	       "find one device past a bad line of another", why);

	s.list[0] = '\0';
	ret = nbdtab_find(path, "/dev/nbd1", false, note, &s, err, sizeof(err));
	snprintf(why, sizeof(why), "ret %d, err \"%s\"", ret, err);
	result(ret == -EINVAL && strstr(err, "line 4: unknown option 'bogus'"),
	       "the device's own line is bad: its error, with the line", why);

	ret = nbdtab_find(path, "nbd2", false, note, &s, err, sizeof(err));
	snprintf(why, sizeof(why), "ret %d, err \"%s\"", ret, err);
	result(ret == -EEXIST && strstr(err, "line 6: nbd2 is listed a second time"),
	       "a device listed twice", why);

	ret = nbdtab_find(path, "nbd9", false, note, &s, err, sizeof(err));
	snprintf(why, sizeof(why), "ret %d, err \"%s\"", ret, err);
	result(ret == -ENOENT && strstr(err, "has no line for nbd9"),
	       "a device not listed", why);

	s.list[0] = '\0';
	ret = nbdtab_find(path, NULL, true, note, &s, err, sizeof(err));
	snprintf(why, sizeof(why), "ret %d, seen \"%s\", err \"%s\"", ret,
		 s.list, err);
	result(ret == -EINVAL && !strcmp(s.list, "nbd0:2 nbd2:5 nbd2:6") &&
	       strstr(err, "line 4"),
	       "all: the good lines, then the bad one's error", why);

	unlink(path);
	ret = nbdtab_find(path, "nbd0", false, note, &s, err, sizeof(err));
	snprintf(why, sizeof(why), "ret %d, err \"%s\"", ret, err);
	result(ret == -ENOENT && strstr(err, "cannot read"), "no nbdtab", why);
}

int main(void)
{
	line_cases();
	file_cases();
	printf("1..%d\n", tests);
	return failed ? 1 : 0;
}
