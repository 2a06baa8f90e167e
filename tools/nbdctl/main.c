// SPDX-License-Identifier: GPL-2.0
/*
 * nbdctl: the command line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbdctl.h"

int nbdctl_verbose;
char **nbdctl_argv;

static void vmsg(const char *prefix, const char *fmt, va_list ap)
{
	fprintf(stderr, "nbdctl: %s", prefix);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void nbdctl_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

void nbdctl_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("warning: ", fmt, ap);
	va_end(ap);
}

void nbdctl_info(const char *fmt, ...)
{
	va_list ap;

	if (!nbdctl_verbose)
		return;
	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "connect", cmd_connect, "URI [DEVICE] [options]  attach an export" },
	{ "disconnect", cmd_disconnect, "DEVICE|INDEX|--all  detach" },
	{ "list", cmd_list, "[--json] [DEVICE]  nbd devices and their state" },
	{ "status", cmd_list, "same as list" },
	{ "info", cmd_info, "URI  what the server offers (nothing attached)" },
	{ "list-exports", cmd_list_exports, "URI  the server's exports" },
	{ "reconfigure", cmd_reconfigure, "DEVICE [options]  change a live device" },
	{ "watch", cmd_watch, "[--json]  print link-dead events" },
	{ "up", cmd_up, "DEVICE...|--all  connect devices listed in /etc/nbdtab" },
	{ "down", cmd_down, "DEVICE...|--all  disconnect nbdtab's devices" },
	{ "persist", cmd_persist, "DEVICE [URI]  keep a connected device up (re-attach)" },
	{ "check", cmd_check, "DEVICE  exit 0 if connected (nbd-client -c)" },
	{ "wait", cmd_wait, "DEVICE  until connected and udev is done with it" },
	{ "compat", cmd_compat, "ARGS  nbd-client's command line" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: nbdctl [-v] COMMAND [ARGS]\n\ncommands:\n");
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-13s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\n'nbdctl COMMAND --help' for a command's options; "
		"man nbdctl for the rest.\n");
}

int nbdctl_run(int argc, char **argv)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[0], commands[i].name))
			return commands[i].fn(argc, argv);
	nbdctl_err("unknown command '%s'", argv[0]);
	usage(stderr);
	return NBDCTL_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	const char *base;

	nbdctl_argv = argv;
	/* Installed as nbd-client (a symlink): nbd-client's command line. */
	base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	if (!strcmp(base, "nbd-client"))
		return cmd_compat(argc, argv);
	while (argc > 1 && argv[1][0] == '-') {
		if (!strcmp(argv[1], "-v") || !strcmp(argv[1], "--verbose")) {
			nbdctl_verbose++;
		} else if (!strcmp(argv[1], "-h") ||
			   !strcmp(argv[1], "--help")) {
			usage(stdout);
			return NBDCTL_EXIT_OK;
		} else if (!strcmp(argv[1], "--version")) {
			printf("nbdctl %s\n", NBDCTL_VERSION);
			return NBDCTL_EXIT_OK;
		} else {
			nbdctl_err("unknown option '%s'", argv[1]);
			usage(stderr);
			return NBDCTL_EXIT_USAGE;
		}
		argc--;
		argv++;
	}
	if (argc < 2) {
		usage(stderr);
		return NBDCTL_EXIT_USAGE;
	}
	return nbdctl_run(argc - 1, argv + 1);
}
