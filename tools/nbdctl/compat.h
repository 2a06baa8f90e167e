/* SPDX-License-Identifier: GPL-2.0 */
/*
 * compat.c: nbd-client 3.24's command line, turned into nbdctl commands.
 *
 * nbd_compat_translate() is pure (no I/O), so the host test can check
 * each command line; cmd_compat() runs the result with nbdctl_run(),
 * rewrites what nbdctl prints into what nbd-client prints, and maps the
 * exit code with nbd_compat_exit_code().
 */
#ifndef NBDCTL_COMPAT_H
#define NBDCTL_COMPAT_H

#include <stdbool.h>
#include <stddef.h>

#define NBD_COMPAT_ARGV_MAX	48

/* What cmd_compat() does with a translated command line. */
enum nbd_compat_action {
	NBD_COMPAT_RUN,		/* run @argv with nbdctl_run() */
	NBD_COMPAT_EXIT,	/* print the message, exit with @exit_code */
	NBD_COMPAT_HELP,	/* the usage text on stdout, exit 0 */
	NBD_COMPAT_VERSION,	/* the version on stdout, exit 0 */
};

/* How nbdctl's stdout becomes nbd-client's. */
enum nbd_compat_output {
	NBD_COMPAT_OUT_PLAIN,		/* as it is (check, disconnect) */
	NBD_COMPAT_OUT_CONNECT,		/* "Negotiation: ..", "Connected" */
	NBD_COMPAT_OUT_CONNECT_IOCTL,	/* -nonetlink: "Negotiation", "bs=" */
	NBD_COMPAT_OUT_DISCONNECT_IOCTL, /* -nonetlink -d: "disconnect, ..." */
	NBD_COMPAT_OUT_LIST,		/* -l: "Negotiation: ..", names */
};

struct nbd_compat {
	enum nbd_compat_action action;
	int exit_code;			/* NBD_COMPAT_EXIT */
	bool usage;			/* NBD_COMPAT_EXIT: usage after it */
	bool pass_code;			/* -c: check's 0/1/2 are nbd-client's */
	enum nbd_compat_output output;
	int argc;			/* NBD_COMPAT_RUN: the nbdctl command */
	char *argv[NBD_COMPAT_ARGV_MAX];	/* NULL-terminated */
	char warnings[512];		/* lines for stderr before running */
	/* storage for the arguments that are not nbd-client's own strings */
	char buf[256];
	size_t used;
};

/*
 * nbd_compat_translate() - nbd-client's @argv (argv[0] the program name or
 * "compat") into @out.  Returns @out->action; for NBD_COMPAT_EXIT, @err
 * has what to print ("" for a silent exit, as -c of a non-nbd device).
 * Leaves getopt ready for the nbdctl command's own parsing.
 */
int nbd_compat_translate(int argc, char **argv, struct nbd_compat *out,
			 char *err, size_t errlen);
/* nbd_compat_exit_code() - nbd-client's exit code for nbdctl's @rc. */
int nbd_compat_exit_code(const struct nbd_compat *c, int rc);
/*
 * nbd_compat_stdout_line() - one line (no '\n') that the nbdctl command
 * printed on stdout, as nbd-client would print it: text for stdout in
 * @out, for stderr in @aux (each "" or whole lines ending in '\n').
 */
void nbd_compat_stdout_line(enum nbd_compat_output mode, const char *line,
			    char *out, size_t outlen, char *aux, size_t auxlen);
/* nbd_compat_stderr_line() - "nbdctl: X" to "Error: X" and the like. */
void nbd_compat_stderr_line(const char *line, char *out, size_t outlen);

#endif
