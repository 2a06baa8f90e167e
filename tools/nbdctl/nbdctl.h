/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nbdctl: attach NBD exports to nbd.ko over generic netlink.
 *
 * Module map:
 *   main.c       command line, dispatch, messages (nbdctl_err...)
 *   uri.c        NBD URIs and HOST [PORT] / --unix targets
 *   handshake.c  dialing the server and the NBD handshake
 *   tls.c        TLS: the GnuTLS handshake, then the keys to kernel TLS
 *   info.c       the info and list-exports commands
 *   netlink.c    the "nbd" generic netlink family (libnl-genl-3)
 *   connect.c    connect, disconnect, reconfigure, list, watch, persist
 */
#ifndef NBDCTL_H
#define NBDCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

/* Exit codes (documented in nbdctl.8) */
#define NBDCTL_EXIT_OK		0	/* success */
#define NBDCTL_EXIT_FAIL	1	/* other failure */
#define NBDCTL_EXIT_USAGE	2	/* bad command line or URI */
/* server unreachable, handshake failed, export refused */
#define NBDCTL_EXIT_SERVER	3
/* nbd.ko missing, refused the request, device busy or missing */
#define NBDCTL_EXIT_KERNEL	4
#define NBDCTL_EXIT_PERM	5	/* not allowed (needs CAP_SYS_ADMIN) */

#define NBD_DEFAULT_PORT	"10809"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif

#ifndef NBDCTL_VERSION
#define NBDCTL_VERSION		"1.0.0"
#endif

/* Messages: "nbdctl: " prefix, to stderr (main.c). */
void nbdctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void nbdctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void nbdctl_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int nbdctl_verbose;

/* Where the server is. */
struct nbd_uri {
	bool tls;		/* nbds:// or nbds+unix:// */
	char *host;		/* TCP host name or address; NULL for UNIX */
	char *port;		/* TCP port (service), NBD_DEFAULT_PORT if absent */
	char *socket;		/* UNIX socket path; NULL for TCP */
	char *export_name;	/* "" when absent */
	/* the URI's TLS query parameters (NBD URI standard), or NULL */
	char *tls_certificates;	/* tls-certificates=DIR */
	char *tls_verify_peer;	/* tls-verify-peer=true|false */
	char *tls_psk_file;	/* tls-psk-file=FILE */
	char *tls_hostname;	/* tls-hostname=NAME */
	char *tls_username;	/* tls-username=NAME */
};

/*
 * nbd_uri_parse() - parse nbd://host[:port]/export,
 * nbd+unix:///export?socket=PATH, nbds://..., nbds+unix://...
 * Returns 0, or -1 with a sentence in @err.  TLS URIs parse (u->tls set);
 * refusing them is the caller's business.
 */
int nbd_uri_parse(const char *s, struct nbd_uri *u, char *err, size_t errlen);
/*
 * nbd_uri_from_args() - a target from the plain forms: HOST [PORT], or a
 * UNIX socket path (@unix_path != NULL, then @host must be NULL).  @export
 * may be NULL ("").  Returns 0, or -1 with a sentence in @err.
 */
int nbd_uri_from_args(const char *host, const char *port,
		      const char *unix_path, const char *export,
		      struct nbd_uri *u, char *err, size_t errlen);
/* nbd_uri_format() - canonical URI text (malloc'ed), e.g. for display. */
char *nbd_uri_format(const struct nbd_uri *u);
void nbd_uri_free(struct nbd_uri *u);

/* What a server says about an export. */
struct nbd_export {
	uint64_t size;
	uint16_t flags;			/* transmission flags (NBD_FLAG_*) */
	bool have_block_size;		/* NBD_INFO_BLOCK_SIZE was sent */
	uint32_t min_block;
	uint32_t pref_block;
	uint32_t max_block;
	char *name;			/* NBD_INFO_NAME, or NULL */
	char *description;		/* NBD_INFO_DESCRIPTION, or NULL */
	bool used_go;			/* false: fell back to EXPORT_NAME */
	bool structured;		/* NBD_OPT_STRUCTURED_REPLY agreed */
	bool block_size_requested;	/* GO asked for NBD_INFO_BLOCK_SIZE:
					 * the client must keep to it */
	char tls[400];			/* the TLS session, "" without TLS */
};

/* TLS: what to use and check (tls.c); all strings may be NULL. */
struct nbd_tls_opts {
	bool enabled;			/* --tls, or an nbds:// URI */
	const char *certs_dir;		/* --tls-certificates DIR */
	const char *cacert;		/* --cacert FILE */
	const char *cert;		/* --cert FILE */
	const char *key;		/* --key FILE */
	const char *psk_file;		/* --tls-psk FILE (psktool's format) */
	const char *username;		/* --tls-username (default: first) */
	const char *hostname;		/* name to verify (default: URI host) */
	const char *priority;		/* --tls-priority (GnuTLS syntax) */
	bool insecure;			/* --tls-insecure: no verification */
};

/*
 * TLS command line options, shared by connect, info and list-exports:
 * NBD_TLS_LONG_OPTIONS goes into a struct option table; nbd_tls_option()
 * takes getopt's value and returns 1 when it was one of them (0 if not,
 * -1 after a message for a bad value).  nbd_tls_finish() checks the
 * combination and fills in defaults from the URI (exit code, or -1 when
 * all is well).  NBD_TLS_USAGE is the help text.
 */
enum {
	NBD_TLS_OPT_TLS = 0x200,
	NBD_TLS_OPT_CERTS,
	NBD_TLS_OPT_CACERT,
	NBD_TLS_OPT_CERT,
	NBD_TLS_OPT_KEY,
	NBD_TLS_OPT_PSK,
	NBD_TLS_OPT_USERNAME,
	NBD_TLS_OPT_HOSTNAME,
	NBD_TLS_OPT_PRIORITY,
	NBD_TLS_OPT_INSECURE,
};

#define NBD_TLS_LONG_OPTIONS						\
	{ "tls", no_argument, NULL, NBD_TLS_OPT_TLS },			\
	{ "tls-certificates", required_argument, NULL, NBD_TLS_OPT_CERTS }, \
	{ "cacert", required_argument, NULL, NBD_TLS_OPT_CACERT },	\
	{ "cert", required_argument, NULL, NBD_TLS_OPT_CERT },		\
	{ "key", required_argument, NULL, NBD_TLS_OPT_KEY },		\
	{ "tls-psk", required_argument, NULL, NBD_TLS_OPT_PSK },	\
	{ "tls-username", required_argument, NULL, NBD_TLS_OPT_USERNAME }, \
	{ "tls-hostname", required_argument, NULL, NBD_TLS_OPT_HOSTNAME }, \
	{ "tls-priority", required_argument, NULL, NBD_TLS_OPT_PRIORITY }, \
	{ "tls-insecure", no_argument, NULL, NBD_TLS_OPT_INSECURE }

#define NBD_TLS_USAGE							\
"      --tls                  TLS (implied by nbds:// URIs)\n"		\
"      --tls-certificates DIR X.509 files in nbdkit's layout: ca-cert.pem,\n" \
"                             client-cert.pem and client-key.pem\n"	\
"      --cacert FILE          CA certificates to trust (default: the system's)\n" \
"      --cert FILE, --key FILE  a client certificate and its key\n"	\
"      --tls-psk FILE         a pre-shared key file in psktool's format\n" \
"      --tls-username NAME    the PSK identity (default: the file's first)\n" \
"      --tls-hostname NAME    the name the certificate must carry\n"	\
"                             (default: the URI's host)\n"		\
"      --tls-priority STRING  GnuTLS priority string (ciphers, versions)\n" \
"      --tls-insecure         do not verify the server's certificate\n"

struct nbd_uri;
int nbd_tls_option(int opt, const char *arg, struct nbd_tls_opts *o);
int nbd_tls_finish(struct nbd_tls_opts *o, const struct nbd_uri *u);

/* tls.c: one TLS session during the handshake */
struct nbd_tls;
struct nbd_tls *nbd_tls_start(int fd, const struct nbd_tls_opts *o,
			      char *err, size_t errlen);
void nbd_tls_free(struct nbd_tls *t);
int nbd_tls_send(struct nbd_tls *t, const void *buf, size_t len);
ssize_t nbd_tls_recv(struct nbd_tls *t, void *buf, size_t len);
const char *nbd_tls_strerror(struct nbd_tls *t, int rc);
bool nbd_tls_is_timeout(int rc);
void nbd_tls_describe(struct nbd_tls *t, char *buf, size_t len);
int nbd_tls_to_kernel(struct nbd_tls *t, int fd, char *err, size_t errlen);
int nbd_tls_psk_line(char *line, char **user, char **key);

/* What to ask for in the handshake besides the export. */
struct nbd_hs_opts {
	const struct nbd_tls_opts *tls;	/* NBD_OPT_STARTTLS first, or NULL */
	bool for_kernel;		/* GO: the socket goes to the kernel,
					 * with TLS moved to kernel TLS */
	bool structured_replies;	/* NBD_OPT_STRUCTURED_REPLY */
	bool block_size;		/* NBD_INFO_BLOCK_SIZE in NBD_OPT_GO:
					 * only when the kernel keeps to it */
	bool no_go;			/* NBD_OPT_EXPORT_NAME, never GO */
};

void nbd_export_free(struct nbd_export *ex);

/*
 * nbd_dial() - a connected stream socket to the server, with send and
 * receive timeouts of @timeout_s seconds (0: none) for the handshake.
 * Returns the fd, or -1 with a sentence naming the address and the errno
 * text in @err.
 */
int nbd_dial(const struct nbd_uri *u, unsigned int timeout_s,
	     char *err, size_t errlen);

/* The server's addresses as first resolved (nbd_dial_saved()). */
#define NBD_ADDRS_MAX		16
struct nbd_addrs {
	unsigned int n;
	struct {
		struct sockaddr_storage sa;
		socklen_t len;
		int family, protocol;
	} a[NBD_ADDRS_MAX];
	unsigned int lookups;		/* name look-ups made so far */
};

/*
 * nbd_dial_saved() - nbd_dial() that tries @saved's addresses first and
 * looks the name up (refilling @saved) only when none of them answers.
 */
int nbd_dial_saved(const struct nbd_uri *u, struct nbd_addrs *saved,
		   unsigned int timeout_s, char *err, size_t errlen);

/*
 * nbd_negotiate() - fixed newstyle handshake with NO_ZEROES, then
 * NBD_OPT_STRUCTURED_REPLY when @o asks for it (a refusal just leaves
 * ex->structured clear), then NBD_OPT_GO asking for NBD_INFO_EXPORT, NAME,
 * DESCRIPTION and, when @o allows, BLOCK_SIZE (falling back to
 * NBD_OPT_EXPORT_NAME when GO is unsupported).  On success the socket is
 * in the transmission phase, its timeouts cleared, ready for the kernel.
 * Returns 0, or -1 with a sentence in @err (the server's own message
 * included when it sent one).
 */
int nbd_negotiate(int fd, const char *export_name,
		  const struct nbd_hs_opts *o, struct nbd_export *ex,
		  char *err, size_t errlen);

/*
 * nbd_query() - like nbd_negotiate() (structured replies and block sizes
 * asked for: INFO promises nothing) but with NBD_OPT_INFO, then
 * NBD_OPT_ABORT: nothing is attached (falls back to EXPORT_NAME + a
 * NBD_CMD_DISC when the server has no INFO/GO).  The caller closes @fd.
 */
int nbd_query(int fd, const char *export_name,
	      const struct nbd_tls_opts *tls, struct nbd_export *ex,
	      char *err, size_t errlen);

/*
 * nbd_list() - NBD_OPT_LIST then NBD_OPT_ABORT; @cb is called for each
 * export (description may be ""), and a non-zero return stops the walk.
 */
int nbd_list(int fd, const struct nbd_tls_opts *tls,
	     int (*cb)(void *arg, const char *name, const char *desc),
	     void *arg, char *err, size_t errlen);

/*
 * nbd_flags_text() - transmission flags by name, space separated, e.g.
 * "HAS_FLAGS SEND_FLUSH CAN_MULTI_CONN"; unknown bits as "bit13".
 */
void nbd_flags_text(uint16_t flags, char *buf, size_t len);

/* nbdtab.c: /etc/nbdtab, nbd-client's table of devices */
#define NBDTAB_PATH		"/etc/nbdtab"
#define NBDTAB_LINE_MAX		1024

struct nbdtab_entry {
	unsigned int line;
	int index;			/* the device, nbd<index> */
	char device[16];		/* "nbd<index>" */
	bool noauto;			/* up --all skips it */
	int argc;			/* the line as connect's arguments: */
	char *argv[64];			/* "connect" ... DEVICE, NULL */
};

/*
 * nbdtab_parse_line() - one line of @path (for the messages), numbered
 * @line, into @e: the arguments of "nbdctl connect" it stands for.
 * Returns 0 for an entry (free it with nbdtab_entry_free()), 1 for a
 * blank or comment line, -1 with "PATH line N: reason" in @err (and
 * @e->index the line's device, or -1 when that column was bad).
 */
int nbdtab_parse_line(const char *text, const char *path, unsigned int line,
		      struct nbdtab_entry *e, char *err, size_t errlen);
void nbdtab_entry_free(struct nbdtab_entry *e);
/*
 * nbdtab_find() - call @cb for @device's line of @path, or for every line
 * when @device is NULL; a non-zero return of @cb stops the walk and is
 * returned.  Bad lines are reported (errors with @all, else warnings) and
 * the first is in @err.  Returns 0, -ENOENT (no such file, no line for
 * the device), -EEXIST (the device is listed twice), -EINVAL (a bad
 * line: the device's, or any with @all).
 */
int nbdtab_find(const char *path, const char *device, bool all,
		int (*cb)(void *arg, struct nbdtab_entry *e), void *arg,
		char *err, size_t errlen);

/* netlink.c: the "nbd" generic netlink family */
struct nl_sock;
struct nbdnl {
	struct nl_sock *sk;
	int family;
};

/* CONNECT / RECONFIGURE parameters; zero or unset ones are not sent. */
struct nbdnl_params {
	int index;			/* -1: any (CONNECT) */
	uint64_t size;
	uint64_t block_size;
	bool set_timeout, set_dead_timeout;
	bool set_server_flags, set_client_flags;
	uint64_t timeout;		/* seconds */
	uint64_t dead_timeout;		/* seconds */
	uint64_t server_flags;
	uint64_t client_flags;
	const char *backend;
	const int *fds;
	int nfds;
	/* NBD_ATTR_EXT: only to a module with the features (nbdnl_features) */
	bool ext;
	bool structured;
	bool have_blocks;
	uint32_t min_block, pref_block, max_block;
};

/*
 * Each returns 0 or a negative errno; on failure @err has the kernel's
 * own reason when it gave one (else it is empty).
 */
int nbdnl_open(struct nbdnl *nl, char *err, size_t errlen);
void nbdnl_close(struct nbdnl *nl);
int nbdnl_fd(struct nbdnl *nl);
int nbdnl_connect(struct nbdnl *nl, const struct nbdnl_params *p, int *index,
		  char *err, size_t errlen);
int nbdnl_reconfigure(struct nbdnl *nl, const struct nbdnl_params *p,
		      char *err, size_t errlen);
int nbdnl_disconnect(struct nbdnl *nl, int index, char *err, size_t errlen);
/*
 * nbdnl_features() - what the loaded module understands of NBD_ATTR_EXT:
 * NBD_EXT_FEAT_* bits, 0 for the stock module (its STATUS replies carry
 * no NBD_ATTR_EXT).  @version gets the module's version or "".
 */
int nbdnl_features(struct nbdnl *nl, uint64_t *features, char *version,
		   size_t versionlen, char *err, size_t errlen);
/* STATUS of one device (@index >= 0) or of all; @cb per device. */
int nbdnl_status(struct nbdnl *nl, int index,
		 int (*cb)(void *arg, int index, bool connected), void *arg,
		 char *err, size_t errlen);
/* Join the multicast group, then read what came: @cb per LINK_DEAD. */
int nbdnl_subscribe(struct nbdnl *nl, char *err, size_t errlen);
int nbdnl_read_events(struct nbdnl *nl, int (*cb)(void *arg, int index),
		      void *arg, char *err, size_t errlen);

/* connect.c */
int cmd_connect(int argc, char **argv);
int cmd_disconnect(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_reconfigure(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_persist(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_wait(int argc, char **argv);

/* nbdtab.c's commands (up.c) */
int cmd_up(int argc, char **argv);
int cmd_down(int argc, char **argv);

/* compat.c: nbd-client's command line */
int cmd_compat(int argc, char **argv);

/* main.c */
/*
 * nbdctl_run() - run nbdctl's command argv[0] ("connect", "check", ...)
 * with its arguments, as "nbdctl ARGV..." would; returns its exit code.
 */
int nbdctl_run(int argc, char **argv);
/* main()'s argv: the persist process marks argv[0] for systemd */
extern char **nbdctl_argv;

/* info.c */
int cmd_info(int argc, char **argv);
int cmd_list_exports(int argc, char **argv);

#endif
