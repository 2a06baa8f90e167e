// SPDX-License-Identifier: GPL-2.0
/*
 * nbdctl: the info and list-exports commands.  Both only talk to the
 * server (NBD_OPT_INFO / NBD_OPT_LIST, then NBD_OPT_ABORT); nothing is
 * attached and no privileges are needed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/nbd.h>

#include "nbdctl.h"

#define DEFAULT_TIMEOUT		30
#define MAX_TIMEOUT		86400
#define MAX_LISTED		100000	/* exports kept from one listing */

enum {
	OPT_UNIX = 0x100,
	OPT_TIMEOUT,
	OPT_JSON,
};

static const struct option info_options[] = {
	{ "name", required_argument, NULL, 'N' },
	{ "unix", required_argument, NULL, OPT_UNIX },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "json", no_argument, NULL, OPT_JSON },
	NBD_TLS_LONG_OPTIONS,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* list-exports: the same without --name. */
static const struct option list_options[] = {
	{ "unix", required_argument, NULL, OPT_UNIX },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "json", no_argument, NULL, OPT_JSON },
	NBD_TLS_LONG_OPTIONS,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct cmdline {
	struct nbd_uri uri;
	struct nbd_tls_opts tls;
	unsigned int timeout;
	bool json;
};

static void usage_info(FILE *f)
{
	fprintf(f,
		"usage: nbdctl info [options] URI\n"
		"       nbdctl info [options] HOST [PORT]\n"
		"       nbdctl info [options] --unix PATH\n"
		"\n"
		"What the server says about an export; nothing is attached.\n"
		"URI is nbd[s]://HOST[:PORT]/EXPORT or nbd[s]+unix:///EXPORT?socket=PATH.\n"
		"\n"
		"options:\n"
		"  -N, --name EXPORT    the export (overrides the one in the URI)\n"
		"      --unix PATH      the server's UNIX socket\n"
		"      --timeout SECS   handshake timeout (default %d, 0: none)\n"
		"      --json           print one JSON object\n"
		NBD_TLS_USAGE
		"  -h, --help           this text\n", DEFAULT_TIMEOUT);
}

static void usage_list(FILE *f)
{
	fprintf(f,
		"usage: nbdctl list-exports [options] URI\n"
		"       nbdctl list-exports [options] HOST [PORT]\n"
		"       nbdctl list-exports [options] --unix PATH\n"
		"\n"
		"The exports the server offers, one per line: the name, then a\n"
		"tab and the description when there is one.\n"
		"\n"
		"options:\n"
		"      --unix PATH      the server's UNIX socket\n"
		"      --timeout SECS   handshake timeout (default %d, 0: none)\n"
		"      --json           print a JSON array\n"
		NBD_TLS_USAGE
		"  -h, --help           this text\n", DEFAULT_TIMEOUT);
}

static int parse_timeout(const char *s, unsigned int *out)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > MAX_TIMEOUT)
		return -1;
	*out = (unsigned int)v;
	return 0;
}

/*
 * The command line of info and list-exports.  Returns -1 to go on, or
 * the exit code (help printed, or a usage error reported).
 */
static int parse_cmdline(int argc, char **argv, bool is_info,
			 struct cmdline *cl)
{
	const struct option *opts = is_info ? info_options : list_options;
	void (*usage)(FILE *f) = is_info ? usage_info : usage_list;
	const char *name = NULL, *unix_path = NULL;
	char err[512];
	int c, npos, rc;
	char **pos;

	memset(cl, 0, sizeof(*cl));
	cl->timeout = DEFAULT_TIMEOUT;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, is_info ? ":hN:" : ":h", opts,
				NULL)) != -1) {
		switch (c) {
		case 'N':
			name = optarg;
			break;
		case OPT_UNIX:
			unix_path = optarg;
			break;
		case OPT_TIMEOUT:
			if (parse_timeout(optarg, &cl->timeout)) {
				nbdctl_err("bad --timeout value \"%s\": give a number of seconds from 0 to %d",
					   optarg, MAX_TIMEOUT);
				return NBDCTL_EXIT_USAGE;
			}
			break;
		case OPT_JSON:
			cl->json = true;
			break;
		case 'h':
			usage(stdout);
			return NBDCTL_EXIT_OK;
		case ':':
			nbdctl_err("option '%s' needs an argument; see 'nbdctl %s --help'",
				   argv[optind - 1], argv[0]);
			return NBDCTL_EXIT_USAGE;
		default:
			if (nbd_tls_option(c, optarg, &cl->tls))
				break;
			if (optopt)
				nbdctl_err("unknown option '-%c'; see 'nbdctl %s --help'",
					   optopt, argv[0]);
			else
				nbdctl_err("unknown option '%s'; see 'nbdctl %s --help'",
					   argv[optind - 1], argv[0]);
			return NBDCTL_EXIT_USAGE;
		}
	}
	pos = argv + optind;
	npos = argc - optind;

	if (unix_path) {
		if (npos) {
			nbdctl_err("--unix cannot be combined with a URI or host (\"%s\")",
				   pos[0]);
			return NBDCTL_EXIT_USAGE;
		}
		rc = nbd_uri_from_args(NULL, NULL, unix_path, name, &cl->uri,
				       err, sizeof(err));
	} else if (!npos) {
		nbdctl_err("no server given: give a URI such as nbd://HOST/EXPORT, HOST [PORT], or --unix PATH");
		usage(stderr);
		return NBDCTL_EXIT_USAGE;
	} else if (strstr(pos[0], "://")) {
		if (npos > 1) {
			nbdctl_err("unexpected argument \"%s\" after the URI",
				   pos[1]);
			return NBDCTL_EXIT_USAGE;
		}
		rc = nbd_uri_parse(pos[0], &cl->uri, err, sizeof(err));
		if (!rc && name) {
			char *copy = strdup(name);

			if (!copy) {
				nbdctl_err("out of memory");
				nbd_uri_free(&cl->uri);
				return NBDCTL_EXIT_FAIL;
			}
			free(cl->uri.export_name);
			cl->uri.export_name = copy;
		}
	} else if (npos > 2) {
		nbdctl_err("too many arguments: give a URI, or HOST [PORT]");
		return NBDCTL_EXIT_USAGE;
	} else {
		rc = nbd_uri_from_args(pos[0], npos > 1 ? pos[1] : NULL, NULL,
				       name, &cl->uri, err, sizeof(err));
	}
	if (rc) {
		nbdctl_err("%s", err);
		return NBDCTL_EXIT_USAGE;
	}
	rc = nbd_tls_finish(&cl->tls, &cl->uri);
	if (rc >= 0)
		nbd_uri_free(&cl->uri);
	return rc;
}

/* Length of the valid UTF-8 sequence at @s, or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned int cp;
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)	/* also stops at the NUL */
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/*
 * Server text on a terminal: valid UTF-8 is kept, but control characters
 * (C0, DEL and C1, which terminals take for escapes) and invalid bytes
 * become '?'.
 */
static void put_text(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		size_t n = utf8_len(s);

		if (!n || (n == 1 && (*s < 0x20 || *s == 0x7f)) ||
		    (n == 2 && s[0] == 0xc2 && s[1] < 0xa0)) {
			fputc('?', f);
			s += n ? n : 1;
		} else {
			fwrite(s, 1, n, f);
			s += n;
		}
	}
}

/* A JSON string; invalid UTF-8 from the server becomes U+FFFD. */
static void put_json_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', f);
	while (*s) {
		size_t n = utf8_len(s);

		if (!n) {
			fputs("\\ufffd", f);
			s++;
		} else if (n > 1) {
			fwrite(s, 1, n, f);
			s += n;
		} else {
			switch (*s) {
			case '"':
				fputs("\\\"", f);
				break;
			case '\\':
				fputs("\\\\", f);
				break;
			case '\n':
				fputs("\\n", f);
				break;
			case '\r':
				fputs("\\r", f);
				break;
			case '\t':
				fputs("\\t", f);
				break;
			default:
				if (*s < 0x20 || *s == 0x7f)
					fprintf(f, "\\u%04x", *s);
				else
					fputc(*s, f);
			}
			s++;
		}
	}
	fputc('"', f);
}

static void print_size(uint64_t size)
{
	static const char *const units[] = {
		"KiB", "MiB", "GiB", "TiB", "PiB", "EiB",
	};
	double v = (double)size;
	int u = -1;

	printf("size: %llu bytes", (unsigned long long)size);
	if (size < 1024) {
		putchar('\n');
		return;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	printf(" (%.1f %s)\n", v, units[u]);
}

static void print_info_text(const struct nbd_export *ex, const char *name)
{
	char flags[256];

	printf("export: ");
	if (*name)
		put_text(stdout, name);
	else
		printf("(default)");
	putchar('\n');
	print_size(ex->size);
	nbd_flags_text(ex->flags, flags, sizeof(flags));
	printf("flags: 0x%04x%s%s\n", ex->flags, *flags ? " " : "", flags);
	printf("read-only: %s\n",
	       ex->flags & NBD_FLAG_READ_ONLY ? "yes" : "no");
	printf("multi-conn: %s\n",
	       ex->flags & NBD_FLAG_CAN_MULTI_CONN ? "yes" : "no");
	if (ex->have_block_size)
		printf("block size: minimum %u, preferred %u, maximum %u\n",
		       ex->min_block, ex->pref_block, ex->max_block);
	else
		printf("block size: not advertised\n");
	printf("structured replies: %s\n", ex->structured ? "yes" : "no");
	if (ex->description && *ex->description) {
		printf("description: ");
		put_text(stdout, ex->description);
		putchar('\n');
	}
	printf("negotiated with: %s\n",
	       ex->used_go ? "NBD_OPT_INFO" : "NBD_OPT_EXPORT_NAME");
	printf("tls: %s\n", ex->tls[0] ? ex->tls : "no");
}

static void print_info_json(const struct nbd_export *ex, const char *name)
{
	char flags[256], *tok, *save = NULL;
	bool first = true;

	printf("{\"export\": ");
	put_json_string(stdout, name);
	printf(", \"size\": %llu, \"flags\": %u, \"flag_names\": [",
	       (unsigned long long)ex->size, ex->flags);
	nbd_flags_text(ex->flags, flags, sizeof(flags));
	for (tok = strtok_r(flags, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		printf("%s\"%s\"", first ? "" : ", ", tok);
		first = false;
	}
	printf("], \"read_only\": %s, \"multi_conn\": %s, \"block_size\": ",
	       ex->flags & NBD_FLAG_READ_ONLY ? "true" : "false",
	       ex->flags & NBD_FLAG_CAN_MULTI_CONN ? "true" : "false");
	if (ex->have_block_size)
		printf("{\"minimum\": %u, \"preferred\": %u, \"maximum\": %u}",
		       ex->min_block, ex->pref_block, ex->max_block);
	else
		printf("null");
	printf(", \"structured_replies\": %s",
	       ex->structured ? "true" : "false");
	printf(", \"description\": ");
	if (ex->description)
		put_json_string(stdout, ex->description);
	else
		printf("null");
	printf(", \"negotiated_with\": \"%s\", \"tls\": ",
	       ex->used_go ? "NBD_OPT_INFO" : "NBD_OPT_EXPORT_NAME");
	if (ex->tls[0])
		put_json_string(stdout, ex->tls);
	else
		printf("null");
	printf("}\n");
}

static int finish_output(void)
{
	if (fflush(stdout) || ferror(stdout)) {
		nbdctl_err("cannot write the output: %s", strerror(errno));
		return NBDCTL_EXIT_FAIL;
	}
	return NBDCTL_EXIT_OK;
}

/**
 * cmd_info() - nbdctl info: what the server says about an export.
 * @argc: argument count; @argv[0] is "info".
 * @argv: arguments.
 *
 * Return: an NBDCTL_EXIT_* code.
 */
int cmd_info(int argc, char **argv)
{
	struct nbd_export ex;
	struct cmdline cl;
	char err[1024];
	const char *name;
	int fd, rc;

	rc = parse_cmdline(argc, argv, true, &cl);
	if (rc >= 0)
		return rc;
	fd = nbd_dial(&cl.uri, cl.timeout, err, sizeof(err));
	if (fd < 0) {
		nbdctl_err("%s", err);
		rc = NBDCTL_EXIT_SERVER;
		goto out_uri;
	}
	if (nbd_query(fd, cl.uri.export_name, &cl.tls, &ex, err,
		      sizeof(err))) {
		nbdctl_err("%s", err);
		rc = NBDCTL_EXIT_SERVER;
		goto out_close;
	}
	name = ex.name ? ex.name : cl.uri.export_name;
	if (cl.json)
		print_info_json(&ex, name);
	else
		print_info_text(&ex, name);
	rc = finish_output();
	nbd_export_free(&ex);
out_close:
	close(fd);
out_uri:
	nbd_uri_free(&cl.uri);
	return rc;
}

struct export_list {
	struct {
		char *name;
		char *desc;
	} *items;
	size_t count;
	size_t alloc;
	bool truncated;
	bool nomem;
};

static int collect_export(void *arg, const char *name, const char *desc)
{
	struct export_list *l = arg;

	if (l->count == MAX_LISTED) {
		l->truncated = true;
		return 1;
	}
	if (l->count == l->alloc) {
		size_t n = l->alloc ? l->alloc * 2 : 16;
		void *p = reallocarray(l->items, n, sizeof(*l->items));

		if (!p) {
			l->nomem = true;
			return 1;
		}
		l->items = p;
		l->alloc = n;
	}
	l->items[l->count].name = strdup(name);
	l->items[l->count].desc = strdup(desc);
	if (!l->items[l->count].name || !l->items[l->count].desc) {
		free(l->items[l->count].name);
		free(l->items[l->count].desc);
		l->nomem = true;
		return 1;
	}
	l->count++;
	return 0;
}

static void print_list(const struct export_list *l, bool json)
{
	size_t i;

	if (json)
		putchar('[');
	for (i = 0; i < l->count; i++) {
		const char *name = l->items[i].name;
		const char *desc = l->items[i].desc;

		if (json) {
			printf("%s{\"name\": ", i ? ", " : "");
			put_json_string(stdout, name);
			printf(", \"description\": ");
			if (*desc)
				put_json_string(stdout, desc);
			else
				printf("null");
			putchar('}');
			continue;
		}
		if (*name)
			put_text(stdout, name);
		else
			printf("(default)");
		if (*desc) {
			putchar('\t');
			put_text(stdout, desc);
		}
		putchar('\n');
	}
	if (json)
		printf("]\n");
}

/**
 * cmd_list_exports() - nbdctl list-exports: the server's exports.
 * @argc: argument count; @argv[0] is "list-exports".
 * @argv: arguments.
 *
 * Return: an NBDCTL_EXIT_* code.
 */
int cmd_list_exports(int argc, char **argv)
{
	struct export_list l = { 0 };
	struct cmdline cl;
	char err[1024];
	size_t i;
	int fd, rc;

	rc = parse_cmdline(argc, argv, false, &cl);
	if (rc >= 0)
		return rc;
	fd = nbd_dial(&cl.uri, cl.timeout, err, sizeof(err));
	if (fd < 0) {
		nbdctl_err("%s", err);
		rc = NBDCTL_EXIT_SERVER;
		goto out_uri;
	}
	if (nbd_list(fd, &cl.tls, collect_export, &l, err, sizeof(err))) {
		nbdctl_err("%s", err);
		rc = NBDCTL_EXIT_SERVER;
		goto out_free;
	}
	if (l.nomem) {
		nbdctl_err("out of memory");
		rc = NBDCTL_EXIT_FAIL;
		goto out_free;
	}
	if (l.truncated)
		nbdctl_warn("the server listed more than %d exports; showing the first %d",
			    MAX_LISTED, MAX_LISTED);
	print_list(&l, cl.json);
	rc = finish_output();
out_free:
	for (i = 0; i < l.count; i++) {
		free(l.items[i].name);
		free(l.items[i].desc);
	}
	free(l.items);
	close(fd);
out_uri:
	nbd_uri_free(&cl.uri);
	return rc;
}
