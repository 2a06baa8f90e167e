// SPDX-License-Identifier: GPL-2.0
/*
 * nbdctl up and down: the devices of /etc/nbdtab.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbdctl.h"

/* One nbdtab line, as connect's arguments. */
struct up_entry {
	char device[16];
	unsigned int line;
	bool noauto;
	int argc;
	char **argv;
};

struct up_list {
	struct up_entry *e;
	unsigned int n;
	bool all;		/* --all: skip noauto lines */
};

static void up_entry_free(struct up_entry *u)
{
	int i;

	for (i = 0; i < u->argc; i++)
		free(u->argv[i]);
	free(u->argv);
}

static int collect(void *arg, struct nbdtab_entry *e)
{
	struct up_list *l = arg;
	struct up_entry *u, *grown;
	int i;

	if (l->all && e->noauto)
		return 0;
	grown = realloc(l->e, (l->n + 1) * sizeof(*l->e));
	if (!grown)
		return -ENOMEM;
	l->e = grown;
	u = &l->e[l->n];
	memset(u, 0, sizeof(*u));
	snprintf(u->device, sizeof(u->device), "%s", e->device);
	u->line = e->line;
	u->noauto = e->noauto;
	/* room for "--up", "--foreground" and the terminating NULL */
	u->argv = calloc(e->argc + 3, sizeof(*u->argv));
	if (!u->argv)
		return -ENOMEM;
	l->n++;
	for (i = 0; i < e->argc; i++) {
		u->argv[i] = strdup(e->argv[i]);
		if (!u->argv[i])
			return -ENOMEM;
		u->argc = i + 1;
	}
	return 0;
}

/* A word as the shell would need it, for --dry-run. */
static void print_word(const char *w)
{
	const char *p;

	if (*w && !w[strcspn(w, " \t\n'\"\\$`*?[]{}()<>|&;#~!")]) {
		fputs(w, stdout);
		return;
	}
	putchar('\'');
	for (p = w; *p; p++) {
		if (*p == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*p);
	}
	putchar('\'');
}

static void up_usage(FILE *f)
{
	fprintf(f,
"usage: nbdctl up [options] DEVICE...\n"
"       nbdctl up [options] --all\n"
"\n"
"Connect devices as their lines of the nbdtab say (nbd-client's format:\n"
"DEVICE HOST EXPORT [OPTIONS]).  A device that is up already, on the\n"
"same server and export, is left alone; with the line's 'persist' and\n"
"no persist process alive, that device is adopted (nbdctl persist).\n"
"\n"
"  -a, --all          every line but those with 'noauto'\n"
"  -f, --foreground   one device: its persist process stays in the\n"
"                     foreground (implies persist; for nbdctl@.service)\n"
"  -w, --wait         return once udev is done with each device\n"
"  -n, --dry-run      print the connect commands, run nothing\n"
"      --nbdtab FILE  another table (default %s)\n", NBDTAB_PATH);
}

static int run_up(struct up_entry *u, bool foreground, bool wait,
		  const char *tab)
{
	char **a;
	int i, n = 0, ret;

	a = calloc(u->argc + 8, sizeof(*a));
	if (!a) {
		nbdctl_err("out of memory");
		return NBDCTL_EXIT_FAIL;
	}
	/* "connect" OPTIONS... SERVER DEVICE: ours go before the server */
	a[n++] = u->argv[0];
	a[n++] = "--up";
	if (foreground) {
		a[n++] = "--persist";
		a[n++] = "--foreground";
	}
	if (wait)
		a[n++] = "--wait";
	a[n++] = "--nbdtab";
	a[n++] = (char *)tab;
	for (i = 1; i < u->argc; i++)
		a[n++] = u->argv[i];
	a[n] = NULL;
	ret = nbdctl_run(n, a);
	free(a);
	return ret;
}

/**
 * cmd_up() - nbdctl up DEVICE...|--all
 * @argc: argument count
 * @argv: "up" and its arguments
 *
 * Return: 0, or the first failing device's NBDCTL_EXIT_* code.
 */
int cmd_up(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "wait", no_argument, NULL, 'w' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "nbdtab", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct up_list l = { };
	const char *tab = NBDTAB_PATH;
	bool foreground = false, dry = false, wait = false;
	char err[1024];
	unsigned int i;
	int c, j, ret = 0, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "afwnh", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			l.all = true;
			break;
		case 'f':
			foreground = true;
			break;
		case 'w':
			wait = true;
			break;
		case 'n':
			dry = true;
			break;
		case 'T':
			tab = optarg;
			break;
		case 'h':
			up_usage(stdout);
			return NBDCTL_EXIT_OK;
		default:
			up_usage(stderr);
			return NBDCTL_EXIT_USAGE;
		}
	}
	if (l.all == (optind < argc)) {
		nbdctl_err("up: give devices listed in %s, or --all", tab);
		return NBDCTL_EXIT_USAGE;
	}
	if (foreground && (l.all || argc - optind != 1)) {
		nbdctl_err("up --foreground takes one device (its persist process stays in the foreground)");
		return NBDCTL_EXIT_USAGE;
	}
	if (l.all) {
		r = nbdtab_find(tab, NULL, true, collect, &l, err, sizeof(err));
		if (r) {
			/* bad lines were each reported already */
			if (r == -ENOMEM)
				nbdctl_err("out of memory");
			else if (r != -EINVAL)
				nbdctl_err("%s", err);
			ret = r == -ENOMEM ? NBDCTL_EXIT_FAIL : NBDCTL_EXIT_USAGE;
			goto out;
		}
		if (!l.n)
			nbdctl_info("%s lists no device to bring up", tab);
	}
	for (j = optind; j < argc; j++) {
		r = nbdtab_find(tab, argv[j], false, collect, &l, err,
				sizeof(err));
		if (r) {
			nbdctl_err("%s", r == -ENOMEM ? "out of memory" : err);
			ret = r == -ENOMEM ? NBDCTL_EXIT_FAIL : NBDCTL_EXIT_USAGE;
			goto out;
		}
	}
	for (i = 0; i < l.n; i++) {
		if (dry) {
			fputs("nbdctl", stdout);
			for (j = 0; j < l.e[i].argc; j++) {
				putchar(' ');
				print_word(l.e[i].argv[j]);
			}
			putchar('\n');
			continue;
		}
		r = run_up(&l.e[i], foreground, wait, tab);
		if (r && !ret)
			ret = r;
	}
out:
	for (i = 0; i < l.n; i++)
		up_entry_free(&l.e[i]);
	free(l.e);
	return ret;
}

/**
 * cmd_down() - nbdctl down DEVICE...|--all
 * @argc: argument count
 * @argv: "down" and its arguments
 *
 * Disconnects the devices (stopping their persist processes); a device
 * that is not connected is no error.  --all: every device of the nbdtab.
 *
 * Return: 0, or the first failure's NBDCTL_EXIT_* code.
 */
int cmd_down(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "nbdtab", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct up_list l = { };
	const char *tab = NBDTAB_PATH;
	char err[1024];
	unsigned int i;
	int c, j, r, first, ret = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "ah", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			l.all = true;
			break;
		case 'T':
			tab = optarg;
			break;
		case 'h':
			printf("usage: nbdctl down DEVICE...\n"
			       "       nbdctl down --all [--nbdtab FILE]\n\n"
			       "Disconnect the devices and stop their persist processes; one that is\n"
			       "not connected is no error.  --all: every device %s lists.\n",
			       NBDTAB_PATH);
			return NBDCTL_EXIT_OK;
		default:
			return NBDCTL_EXIT_USAGE;
		}
	}
	/* the commands run below have a getopt of their own */
	first = optind;
	if (l.all == (first < argc)) {
		nbdctl_err("down: give devices, or --all (the devices %s lists)",
			   tab);
		return NBDCTL_EXIT_USAGE;
	}
	if (l.all) {
		/* --all includes noauto lines: they may have been brought up */
		l.all = false;
		r = nbdtab_find(tab, NULL, true, collect, &l, err, sizeof(err));
		if (r == -ENOMEM) {
			nbdctl_err("out of memory");
			ret = NBDCTL_EXIT_FAIL;
			goto out;
		}
		if (r && r != -EINVAL) {
			nbdctl_err("%s", err);
			ret = NBDCTL_EXIT_USAGE;
			goto out;
		}
		/* a bad line was reported; the good ones still go down */
		if (r)
			ret = NBDCTL_EXIT_USAGE;
	}
	for (i = 0; i < l.n; i++) {
		char *v[] = { "disconnect", "--if-connected", l.e[i].device,
			      NULL };

		r = nbdctl_run(3, v);
		if (r && !ret)
			ret = r;
	}
	for (j = first; j < argc; j++) {
		char *v[] = { "disconnect", "--if-connected", argv[j], NULL };

		r = nbdctl_run(3, v);
		if (r && !ret)
			ret = r;
	}
out:
	for (i = 0; i < l.n; i++)
		up_entry_free(&l.e[i]);
	free(l.e);
	return ret;
}
