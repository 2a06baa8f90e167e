// SPDX-License-Identifier: GPL-2.0
/*
 * Table-driven tests of compat.c: nbd-client command lines and the nbdctl
 * command each must become (or the error it must give), then cmd_compat()
 * end to end with nbdctl_run() stubbed: the argv it gets, nbd-client's
 * output made from nbdctl's, and the exit codes.  Prints TAP; exits
 * non-zero on a failure.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbdctl.h"
#include "compat.h"

/* The stub of main.c's nbdctl_run(): records, prints, returns. */
static char run_argv[1024];
static int run_calls;
static int stub_rc;
static const char *stub_out, *stub_err;

static void join(int argc, char **argv, char *buf, size_t len)
{
	size_t used = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < argc && argv[i]; i++)
		used += snprintf(buf + used, used < len ? len - used : 0,
				 "%s%s", i ? " " : "", argv[i]);
}

int nbdctl_run(int argc, char **argv)
{
	run_calls++;
	join(argc, argv, run_argv, sizeof(run_argv));
	if (argv[argc])
		strcat(run_argv, " (not NULL-terminated)");
	if (stub_out)
		printf("%s", stub_out);
	if (stub_err)
		fprintf(stderr, "%s", stub_err);
	return stub_rc;
}

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

/* @args split at blanks ("''" is an empty argument) after @argv0. */
static int split(const char *argv0, const char *args, char **argv, int max)
{
	char *copy = strdup(args), *tok, *save = NULL;
	int argc = 0;

	argv[argc++] = strdup(argv0);
	for (tok = strtok_r(copy, " ", &save); tok && argc < max - 1;
	     tok = strtok_r(NULL, " ", &save))
		argv[argc++] = strdup(strcmp(tok, "''") ? tok : "");
	argv[argc] = NULL;
	free(copy);
	return argc;
}

static void free_argv(char **argv)
{
	int i;

	for (i = 0; argv[i]; i++)
		free(argv[i]);
}

struct xcase {
	const char *desc;
	const char *args;
	int action;		/* NBD_COMPAT_* */
	/* RUN: the nbdctl command line; EXIT: a substring of the message */
	const char *want;
	int code;		/* EXIT: the exit code */
	int output;		/* RUN: NBD_COMPAT_OUT_*, or -1 */
	const char *warn;	/* a substring of the warnings, or NULL */
};

#define BS		"--block-size 512"
#define RUN(d, a, w)	{ d, a, NBD_COMPAT_RUN, w, 0, -1, NULL }
#define RUNM(d, a, w, m) { d, a, NBD_COMPAT_RUN, w, 0, m, NULL }
#define RUNW(d, a, w, x) { d, a, NBD_COMPAT_RUN, w, 0, -1, x }
#define EXIT(d, a, w)	{ d, a, NBD_COMPAT_EXIT, w, 1, -1, NULL }
#define OTHER(d, a, act) { d, a, act, NULL, 0, -1, NULL }

static const struct xcase cases[] = {
	/* command lines of nbd's own tests (tests/run, tests/code) */
	RUNM("host port device -N name",
	     "localhost 10809 /dev/nbd0 -N name",
	     "connect --name name " BS " localhost 10809 nbd0",
	     NBD_COMPAT_OUT_CONNECT),
	RUN("-N export host device", "-N export 127.0.0.1 /dev/nbd0",
	    "connect --name export " BS " 127.0.0.1 nbd0"),
	RUN("-persist -dead-timeout 30 after the device",
	    "-N export 127.0.0.1 /dev/nbd0 -persist -dead-timeout 30",
	    "connect --name export " BS " --persist --dead-timeout 30 127.0.0.1 nbd0"),
	RUN("-b 1024 -timeout 30", "-N export -b 1024 -timeout 30 localhost /dev/nbd0",
	    "connect --name export --block-size 1024 --timeout 30 localhost nbd0"),
	RUN("-b 4096 -t 30 -C 4", "localhost 10809 /dev/nbd0 -b 4096 -t 30 -C 4",
	    "connect --block-size 4096 --timeout 30 --connections 4 localhost 10809 nbd0"),
	RUN("-unix path device", "-unix /run/nbd.sock /dev/nbd1 -N e",
	    "connect --name e " BS " --unix /run/nbd.sock nbd1"),
	RUN("-u: a port is ignored", "-u /run/s 10809 nbd1",
	    "connect " BS " --unix /run/s nbd1"),
	RUN("-C 4 -unix", "-C 4 -unix /s nbd0",
	    "connect " BS " --connections 4 --unix /s nbd0"),
	RUNM("-d /dev/nbd0", "-d /dev/nbd0", "disconnect nbd0", NBD_COMPAT_OUT_PLAIN),
	RUN("-d nbd3 (nbd-client 3.24 wants /dev/nbd3)", "-d nbd3", "disconnect nbd3"),
	RUN("-d ignores the rest", "-d /dev/nbd0 localhost junk -b 4096",
	    "disconnect nbd0"),
	RUN("-sdp does not matter to -d", "-sdp -d /dev/nbd0", "disconnect nbd0"),
	RUNM("-nonetlink -d", "-nonetlink -d /dev/nbd0", "disconnect nbd0",
	     NBD_COMPAT_OUT_DISCONNECT_IOCTL),
	EXIT("-d sda", "-d sda", "Invalid nbd device target 'sda'"),
	EXIT("-d 0", "-d 0", "Invalid nbd device target"),
	RUN("-c /dev/nbd1", "-c /dev/nbd1", "check nbd1"),
	RUN("-L -c /dev/nbd1", "-L -c /dev/nbd1", "check nbd1"),
	RUN("-c /dev/nbd1 -L", "-c /dev/nbd1 -L", "check nbd1"),
	RUN("-c nbd0p1: cut at the 'p'", "-c nbd0p1", "check nbd0"),
	RUN("-c reads nothing after it", "-c /dev/nbd0 -bogus", "check nbd0"),
	{ "-c /dev/sda: 1, silently", "-c /dev/sda", NBD_COMPAT_EXIT, "", 1, -1, NULL },
	RUNM("-l host", "-l localhost", "list-exports localhost", NBD_COMPAT_OUT_LIST),
	RUN("-l host port", "-l localhost 10810", "list-exports localhost 10810"),
	RUN("-list -unix", "-list -unix /run/s", "list-exports --unix /run/s"),
	RUN("-l with TLS", "-l localhost -x -A ca.pem",
	    "list-exports --tls --cacert ca.pem localhost"),
	EXIT("-l without a host", "-l", "no information specified"),
	EXIT("nothing at all", "", "no information specified"),
	/* /etc/nbdtab */
	RUN("nbd0: its nbdtab line", "nbd0", "connect nbd0"),
	RUN("/dev/nbd2: its nbdtab line", "/dev/nbd2", "connect nbd2"),
	RUN("nbdtab: -readonly -nofork -x still count",
	    "nbd0 -readonly -nofork -x", "connect --read-only --tls --foreground nbd0"),
	RUNW("nbdtab: -b is nbdtab's", "nbd0 -b 4096", "connect nbd0",
	     "decides the export"),
	EXIT("nbdtab device and a port", "nbd0 10899", "write port=10899 in nbd0's line"),
	EXIT("nbdserver: looks like a device", "nbdserver",
	     "no valid configuration for specified device found"),
	/* the device */
	RUN("no device: the kernel picks", "server", "connect " BS " server"),
	RUN("no device, a port", "server 10810", "connect " BS " server 10810"),
	EXIT("-L: a device is needed", "-L server", "not enough information specified"),
	RUNM("-L with a device", "-L server nbd0", "connect " BS " server nbd0",
	     NBD_COMPAT_OUT_CONNECT_IOCTL),
	EXIT("too many positionals", "localhost 10809 /dev/nbd0 extra",
	     "too many non-option arguments specified ('extra')"),
	EXIT("a port after the device", "host /dev/nbd0 10809",
	     "too many non-option arguments"),
	EXIT("port 0 is no port", "host 0 /dev/nbd0", "too many non-option arguments"),
	EXIT("not a device", "host foo", "Invalid nbd device target 'foo'"),
	/* numbers as nbd-client reads them */
	EXIT("-b 513", "-b 513 localhost /dev/nbd0", "multiple of 512, not '513'"),
	RUN("-b 0x1000", "-b 0x1000 h nbd0", "connect --block-size 4096 h nbd0"),
	RUN("-t 0 sets no timeout", "-t 0 h nbd0", "connect " BS " h nbd0"),
	RUN("-C twice: the last", "-C 4 -connections 2 h nbd0",
	    "connect " BS " --connections 2 h nbd0"),
	RUNW("old-style bs=", "h nbd0 bs=4096", "connect --block-size 4096 h nbd0",
	     "old-style"),
	RUN("old-style timeout=", "h nbd0 timeout=30", "connect " BS " --timeout 30 h nbd0"),
	EXIT("old-style foo=", "h nbd0 foo=1", "unknown old-style argument 'foo=1'"),
	/* getopt_long_only: dashes, '=', prefixes */
	RUN("--name=x", "--name=x h nbd0", "connect --name x " BS " h nbd0"),
	RUN("-name=x", "-name=x h nbd0", "connect --name x " BS " h nbd0"),
	RUN("--block-size=2048", "--block-size=2048 h nbd0",
	    "connect --block-size 2048 h nbd0"),
	RUN("-persi: a prefix", "-persi h nbd0", "connect " BS " --persist h nbd0"),
	RUN("--pers: a prefix, two dashes", "--pers h nbd0",
	    "connect " BS " --persist h nbd0"),
	RUN("-cert: certfile's prefix", "-cert c.pem h nbd0",
	    "connect " BS " --tls --cert c.pem --tls-insecure h nbd0"),
	EXIT("-no: ambiguous", "-no h nbd0",
	     "option '-no' is ambiguous; possibilities: '-no-optgo' '-nonetlink' '-nofork'"),
	EXIT("--no: ambiguous", "--no h nbd0",
	     "option '--no' is ambiguous; possibilities: '--no-optgo' '--nonetlink' '--nofork'"),
	EXIT("-pr: ambiguous (-preinit, -priority)", "-pr h nbd0",
	     "'-pr' is ambiguous; possibilities: '-preinit' '-priority'"),
	EXIT("-X: unrecognized", "-X h nbd0", "nbd-client: unrecognized option '-X'"),
	EXIT("--bogus: unrecognized", "--bogus h nbd0",
	     "nbd-client: unrecognized option '--bogus'"),
	EXIT("-bogus is -b ogus, as in nbd-client", "-bogus h nbd0",
	     "multiple of 512, not 'ogus'"),
	EXIT("-N without its argument", "-N", "option requires an argument -- 'N'"),
	EXIT("-name without its argument", "-name", "option '-name' requires an argument"),
	EXIT("-pq: a cluster with a bad letter", "-pq h nbd0",
	     "nbd-client: invalid option -- 'q'"),
	EXIT("-pqs: the bad letter inside", "h -pqs nbd0",
	     "nbd-client: invalid option -- 'q'"),
	EXIT("-d without its argument, at the end", "h nbd0 -d",
	     "option requires an argument -- 'd'"),
	EXIT("-persist=yes", "-persist=yes h nbd0",
	     "option '-persist' doesn't allow an argument"),
	EXIT("--persist=yes", "--persist=yes h nbd0",
	     "option '--persist' doesn't allow an argument"),
	/* what each option becomes */
	RUN("-nofork -persist", "-nofork -persist h nbd0",
	    "connect " BS " --persist --foreground h nbd0"),
	RUN("-n alone: nothing to keep in the foreground", "-n h nbd0",
	    "connect " BS " h nbd0"),
	RUN("-swap -n", "-swap -n h nbd0", "connect " BS " --swap --foreground h nbd0"),
	RUN("-s -p", "-s -p h nbd0", "connect " BS " --persist --swap h nbd0"),
	EXIT("-sdp refused", "-sdp h nbd0", "-sdp (Sockets Direct Protocol) is not supported"),
	EXIT("-S refused", "-S h nbd0", "not supported"),
	EXIT("-size refused", "-B 1048576 h nbd0", "-size and -preinit are not supported"),
	EXIT("-preinit refused", "-preinit -size 1048576 h nbd0", "not supported"),
	RUN("-systemd-mark ignored", "-systemd-mark h nbd0", "connect " BS " h nbd0"),
	RUN("-m ignored", "-m h nbd0", "connect " BS " h nbd0"),
	RUN("-no-optgo", "-no-optgo h nbd0", "connect " BS " --no-opt-go h nbd0"),
	RUN("-g", "-g h nbd0", "connect " BS " --no-opt-go h nbd0"),
	RUN("-readonly", "-readonly h nbd0", "connect " BS " --read-only h nbd0"),
	RUN("-R", "-R h nbd0", "connect " BS " --read-only h nbd0"),
	RUN("TLS files",
	    "-certfile c -keyfile k -cacertfile a -tlshostname s h nbd0",
	    "connect " BS " --tls --cert c --key k --cacert a --tls-hostname s h nbd0"),
	RUNW("-x without a CA: not verified", "-x h nbd0",
	     "connect " BS " --tls --tls-insecure h nbd0", "not verified"),
	RUN("-K alone: the key file is the certificate", "-K k.pem h nbd0",
	    "connect " BS " --tls --cert k.pem --key k.pem --tls-insecure h nbd0"),
	RUN("-enable-tls -priority -A", "-enable-tls -priority NORMAL -A ca h nbd0",
	    "connect " BS " --tls --cacert ca --tls-priority NORMAL h nbd0"),
	RUN("-F -y -H", "-F c -y P -H n h 1",
	    "connect " BS " --tls --cert c --tls-hostname n --tls-priority P --tls-insecure h 1"),
	RUN("-i (3.27) is --backend", "-i id h nbd0", "connect " BS " --backend id h nbd0"),
	RUN("-T (3.27)", "-T 60 -p h nbd0", "connect " BS " --persist --dead-timeout 60 h nbd0"),
	OTHER("-v is -version", "-v", NBD_COMPAT_VERSION),
	OTHER("-V", "-V", NBD_COMPAT_VERSION),
	OTHER("--version", "--version", NBD_COMPAT_VERSION),
	OTHER("-V before -d", "-V -d /dev/nbd0", NBD_COMPAT_VERSION),
	OTHER("-h", "-h", NBD_COMPAT_HELP),
	OTHER("-help", "-help", NBD_COMPAT_HELP),
	OTHER("--help after -d", "-d /dev/nbd0 --help", NBD_COMPAT_HELP),
};

static void translate_cases(const char *argv0)
{
	char *argv[32], err[512], got[1024], why[4096], desc[256];
	struct nbd_compat c;
	const struct xcase *x;
	size_t i;
	int argc, ret;
	bool ok;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		x = &cases[i];
		argc = split(argv0, x->args, argv, ARRAY_SIZE(argv));
		ret = nbd_compat_translate(argc, argv, &c, err, sizeof(err));
		join(c.argc, c.argv, got, sizeof(got));
		ok = ret == x->action && (int)c.action == x->action;
		if (ok && ret == NBD_COMPAT_RUN)
			ok = !strcmp(got, x->want) && !c.argv[c.argc] &&
			     (x->output < 0 || (int)c.output == x->output);
		if (ok && ret == NBD_COMPAT_EXIT)
			ok = c.exit_code == x->code &&
			     (*x->want ? !!strstr(err, x->want) : !*err);
		if (ok && x->warn)
			ok = !!strstr(c.warnings, x->warn);
		snprintf(why, sizeof(why),
			 "action %d (want %d), argv \"%.500s\" (want \"%s\"), output %d, code %d, err \"%.500s\", warnings \"%.500s\"",
			 ret, x->action, got, x->want ? x->want : "", c.output,
			 c.exit_code, err, c.warnings);
		snprintf(desc, sizeof(desc), "%s: %s", argv0, x->desc);
		result(ok, desc, why);
		free_argv(argv);
	}
}

/* After the translation, getopt must parse the nbdctl command as usual. */
static void getopt_after(void)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'N' },
		{ }
	};
	char *argv[16], *cargv[8], err[256];
	struct nbd_compat c;
	int argc, opt;

	argc = split("nbd-client", "h nbd0 -persist", argv, ARRAY_SIZE(argv));
	nbd_compat_translate(argc, argv, &c, err, sizeof(err));
	free_argv(argv);
	split("connect", "host -N x nbd0", cargv, ARRAY_SIZE(cargv));
	optind = 1;
	opterr = 0;
	opt = getopt_long(4, cargv, "N:", opts, NULL);
	result(opt == 'N' && !strcmp(optarg, "x"),
	       "getopt_long permutes again after the translation",
	       "got the positional first: getopt's '-' ordering leaked");
	free_argv(cargv);
}

static void exit_codes(void)
{
	static const struct {
		bool check;
		int rc, want;
	} t[] = {
		{ false, 0, 0 }, { false, 1, 1 }, { false, 2, 1 },
		{ false, 3, 1 }, { false, 4, 1 }, { false, 5, 1 },
		{ true, 0, 0 }, { true, 1, 1 }, { true, 2, 2 },
		{ true, 3, 2 }, { true, 4, 2 }, { true, 5, 2 },
	};
	struct nbd_compat c = { };
	char desc[128];
	size_t i;
	int got;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		c.pass_code = t[i].check;
		got = nbd_compat_exit_code(&c, t[i].rc);
		snprintf(desc, sizeof(desc), "exit code: %s nbdctl %d is nbd-client %d",
			 t[i].check ? "check" : "connect", t[i].rc, t[i].want);
		result(got == t[i].want, desc, "mapped otherwise");
	}
}

struct run_case {
	const char *desc;
	const char *args;
	int rc;			/* what nbdctl_run() returns */
	const char *out, *err;	/* and prints */
	int code;		/* cmd_compat()'s exit code */
	const char *argv;	/* nbdctl_run()'s argv, or NULL: not called */
	const char *want_out;	/* stdout, exactly */
	const char *want_err;	/* a substring of stderr, or "": empty */
};

#define DEVLINE(bs, n, s) \
	"/dev/nbd0: 8.0 MiB (8388608 bytes), block size " bs ", " n " connection" s ", nbd://h/\n"

static const struct run_case run_cases[] = {
	{ "connect: nbd-client's two lines", "h nbd0", 0,
	  DEVLINE("512", "1", ""), NULL, 0, "connect " BS " h nbd0",
	  "Negotiation: ..size = 8MB\nConnected /dev/nbd0\n", "" },
	{ "connect fails with 3: 1, \"Error: \"", "h nbd0 -N x", 3, NULL,
	  "nbdctl: the server has no export \"x\"\n", 1,
	  "connect --name x " BS " h nbd0", "",
	  "Error: the server has no export \"x\"\n" },
	{ "connect: a warning is \"Warning: \"", "h nbd0", 0,
	  DEVLINE("512", "1", ""), "nbdctl: warning: the stock module\n", 0,
	  "connect " BS " h nbd0",
	  "Negotiation: ..size = 8MB\nConnected /dev/nbd0\n",
	  "Warning: the stock module\n" },
	{ "connect -persist: the persist line goes to stderr", "h nbd0 -p", 0,
	  DEVLINE("512", "1", "") "persist process 42 keeps /dev/nbd0 connected\n",
	  NULL, 0, "connect " BS " --persist h nbd0",
	  "Negotiation: ..size = 8MB\nConnected /dev/nbd0\n",
	  "persist process 42 keeps /dev/nbd0 connected\n" },
	{ "connect -L -C 2: ioctl mode's lines", "-L -C 2 -b 4096 h nbd0", 0,
	  DEVLINE("4096", "2", "s"), NULL, 0,
	  "connect --block-size 4096 --connections 2 h nbd0",
	  "Negotiation: ..size = 8MB\nNegotiation: ..size = 8MB\n",
	  "bs=4096, sz=8388608 bytes\n" },
	{ "-l: names, descriptions, the default export", "-l h", 0,
	  "disk1\tscratch\n(default)\nfoo\n", NULL, 0, "list-exports h",
	  "Negotiation: ..\ndisk1: scratch\n\nfoo\n", "" },
	{ "-l refused: 1", "-l h", 3, NULL, "nbdctl: listing refused\n", 1,
	  "list-exports h", "", "Error: listing refused" },
	{ "-c connected: the pid, 0", "-c /dev/nbd0", 0, "1234\n", NULL, 0,
	  "check nbd0", "1234\n", "" },
	{ "-c not connected: 1", "-c /dev/nbd0", 1, NULL, NULL, 1,
	  "check nbd0", "", "" },
	{ "-c error: 2", "-c /dev/nbd0", 2, NULL, NULL, 2, "check nbd0", "", "" },
	{ "-c and nbdctl's 4: 2", "-c nbd0", 4, NULL, NULL, 2, "check nbd0", "", "" },
	{ "-c /dev/sda: 1 without nbdctl", "-c /dev/sda", 0, NULL, NULL, 1,
	  NULL, "", "" },
	{ "-d: nothing printed, 0", "-d /dev/nbd0", 0, NULL, NULL, 0,
	  "disconnect nbd0", "", "" },
	{ "-d fails with 4: 1", "-d /dev/nbd0", 4, NULL, NULL, 1,
	  "disconnect nbd0", "", "" },
	{ "-d not allowed (5): 1", "-d nbd0", 5, NULL, NULL, 1,
	  "disconnect nbd0", "", "" },
	{ "-L -d: ioctl mode's line", "-L -d /dev/nbd0", 0, NULL, NULL, 0,
	  "disconnect nbd0", "disconnect, sock, done\n", "" },
	{ "unknown option: message and usage, 1", "-X h nbd0", 0, NULL, NULL,
	  1, NULL, "", "nbd-client: unrecognized option '-X'\n\nusage: nbd-client" },
	{ "usage error of nbdctl (2): 1", "-C 0 h nbd0", 2, NULL,
	  "nbdctl: --connections must be at least 1\n", 1,
	  "connect " BS " --connections 0 h nbd0", "",
	  "Error: --connections must be at least 1" },
	{ "-h: the usage on stdout, 0", "-h", 0, NULL, NULL, 0, NULL,
	  NULL, "" },
	{ "-V: the version, 0", "-V", 0, NULL, NULL, 0, NULL,
	  "This is nbd-client, from nbdctl " NBDCTL_VERSION " (nbd 3.24's command line)\n",
	  "" },
};

static void run_cases_check(void)
{
	char *argv[32], why[4096], *obuf, *ebuf;
	const struct run_case *r;
	FILE *real_out, *real_err, *fo, *fe;
	size_t olen, elen, i;
	int argc, code;
	bool ok;

	for (i = 0; i < ARRAY_SIZE(run_cases); i++) {
		r = &run_cases[i];
		argc = split("nbd-client", r->args, argv, ARRAY_SIZE(argv));
		run_calls = 0;
		run_argv[0] = '\0';
		stub_rc = r->rc;
		stub_out = r->out;
		stub_err = r->err;
		obuf = NULL;
		ebuf = NULL;
		fo = open_memstream(&obuf, &olen);
		fe = open_memstream(&ebuf, &elen);
		fflush(stdout);
		real_out = stdout;
		real_err = stderr;
		stdout = fo;
		stderr = fe;
		code = cmd_compat(argc, argv);
		stdout = real_out;
		stderr = real_err;
		fclose(fo);
		fclose(fe);

		ok = code == r->code &&
		     (r->argv ? run_calls == 1 && !strcmp(run_argv, r->argv) :
		      run_calls == 0);
		if (ok && r->want_out)
			ok = !strcmp(obuf, r->want_out);
		else if (ok)		/* -h */
			ok = strstr(obuf, "usage: nbd-client") &&
			     strstr(obuf, "-sdp");
		if (ok)
			ok = *r->want_err ? !!strstr(ebuf, r->want_err) :
			     !*ebuf;
		snprintf(why, sizeof(why),
			 "exit %d (want %d), nbdctl_run %d time(s) with \"%s\", stdout \"%.200s\", stderr \"%.300s\"",
			 code, r->code, run_calls, run_argv, obuf, ebuf);
		result(ok, r->desc, why);
		free(obuf);
		free(ebuf);
		free_argv(argv);
	}
}

int main(void)
{
	translate_cases("nbd-client");
	translate_cases("compat");
	getopt_after();
	exit_codes();
	run_cases_check();
	printf("%d passed, %d failed\n", tests - failed, failed);
	return failed ? 1 : 0;
}
