// SPDX-License-Identifier: GPL-2.0
/*
 * nbdctl: TLS for the handshake (GnuTLS), then kernel TLS for the data.
 *
 * After NBD_OPT_STARTTLS the GnuTLS client handshake runs on the socket
 * and the rest of the options go through the TLS session.  Once the
 * server has agreed to NBD_OPT_GO, the session's keys and sequence
 * numbers are read from GnuTLS (gnutls_record_get_state()) and installed
 * on the socket (TCP_ULP "tls", SOL_TLS TLS_TX and TLS_RX): the kernel
 * seals and opens the records from then on and no process stays in the
 * data path.  GnuTLS' own kTLS mode is not used: Debian's GnuTLS 3.7
 * enables it only through the system-wide configuration file, and it
 * would install the keys at the end of the handshake, before the options
 * that must still be read and written here.
 *
 * Only ciphers kernel TLS implements are offered by default, so that a
 * handshake never succeeds with one the kernel cannot take.
 */
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <linux/tls.h>

#include "nbdctl.h"

#ifndef SOL_TLS
#define SOL_TLS		282
#endif
#ifndef TCP_ULP
#define TCP_ULP		31
#endif

/* Versions and ciphers that kernel TLS (6.1 and later) takes. */
#define KTLS_PRIORITY	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" \
			"-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:" \
			"+CHACHA20-POLY1305:+AES-128-CCM"
#define PSK_KX		":+ECDHE-PSK:+DHE-PSK:+PSK"
#define KTLS_CIPHERS	"AES-128-GCM, AES-256-GCM, AES-128-CCM and CHACHA20-POLY1305"

struct nbd_tls {
	gnutls_session_t session;
	gnutls_certificate_credentials_t x509;
	gnutls_psk_client_credentials_t psk;
	const struct nbd_tls_opts *o;
	char *username;		/* the PSK identity used */
	char trust[4200];	/* where the CAs came from, for messages */
	const char *verify_name; /* the host name checked, or NULL */
};

__attribute__((format(printf, 3, 4)))
static void tls_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool file_exists(const char *path)
{
	struct stat st;

	return !stat(path, &st);
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/**
 * nbd_tls_psk_line() - parse one line of a psktool key file
 * @line: "USERNAME:HEXKEY", without its newline
 * @user: set to the start of the user name (in @line, NUL-terminated)
 * @key: set to the start of the key (in @line)
 *
 * Return: 0, or -1 when the line is not in psktool's format (no colon,
 * an empty name, a key that is empty, of odd length or not hex).
 */
int nbd_tls_psk_line(char *line, char **user, char **key)
{
	char *colon = strchr(line, ':');
	size_t i, n;

	if (!colon || colon == line)
		return -1;
	*colon = '\0';
	n = strlen(colon + 1);
	if (!n || n % 2)
		return -1;
	for (i = 0; i < n; i++)
		if (hexval((unsigned char)colon[1 + i]) < 0)
			return -1;
	*user = line;
	*key = colon + 1;
	return 0;
}

/* PSK credentials from a psktool file: @o->username's line, or the first. */
static int load_psk(struct nbd_tls *t, char *err, size_t errlen)
{
	const struct nbd_tls_opts *o = t->o;
	char *line = NULL, *user, *key;
	size_t cap = 0;
	unsigned int lineno = 0;
	gnutls_datum_t kd;
	bool found = false;
	ssize_t n;
	FILE *f;
	int rc = -1;

	f = fopen(o->psk_file, "re");
	if (!f) {
		tls_err(err, errlen, "cannot read the PSK file %s: %s",
			o->psk_file, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (!n || line[0] == '#')
			continue;
		if (nbd_tls_psk_line(line, &user, &key)) {
			tls_err(err, errlen,
				"line %u of the PSK file %s is not in psktool's format USERNAME:HEXKEY",
				lineno, o->psk_file);
			goto out;
		}
		if (!o->username || !strcmp(user, o->username)) {
			found = true;
			break;
		}
	}
	if (!found) {
		if (o->username)
			tls_err(err, errlen, "the PSK file %s has no key for the user name \"%s\"",
				o->psk_file, o->username);
		else
			tls_err(err, errlen, "the PSK file %s has no keys",
				o->psk_file);
		goto out;
	}
	t->username = strdup(user);
	if (!t->username ||
	    gnutls_psk_allocate_client_credentials(&t->psk) < 0) {
		tls_err(err, errlen, "out of memory");
		goto out;
	}
	kd.data = (unsigned char *)key;
	kd.size = (unsigned int)strlen(key);
	rc = gnutls_psk_set_client_credentials(t->psk, t->username, &kd,
					       GNUTLS_PSK_KEY_HEX);
	if (rc < 0) {
		tls_err(err, errlen, "the PSK for \"%s\" in %s is not usable: %s",
			t->username, o->psk_file, gnutls_strerror(rc));
		rc = -1;
		goto out;
	}
	rc = 0;
out:
	if (line)
		explicit_bzero(line, cap);
	free(line);
	fclose(f);
	return rc;
}

/* X.509 credentials: the CAs to trust, and a client certificate if any. */
static int load_x509(struct nbd_tls *t, char *err, size_t errlen)
{
	const struct nbd_tls_opts *o = t->o;
	char ca[4096], cert[4096], key[4096];
	const char *cafile = o->cacert, *certfile = o->cert;
	const char *keyfile = o->key;
	int rc;

	if (gnutls_certificate_allocate_credentials(&t->x509) < 0) {
		tls_err(err, errlen, "out of memory");
		return -1;
	}
	if (o->certs_dir) {
		snprintf(ca, sizeof(ca), "%s/ca-cert.pem", o->certs_dir);
		snprintf(cert, sizeof(cert), "%s/client-cert.pem",
			 o->certs_dir);
		snprintf(key, sizeof(key), "%s/client-key.pem", o->certs_dir);
		if (!cafile) {
			if (!file_exists(ca)) {
				tls_err(err, errlen, "%s has no ca-cert.pem (the layout of nbdkit's and qemu's certificate directories: ca-cert.pem, and client-cert.pem with client-key.pem for a client certificate)",
					o->certs_dir);
				return -1;
			}
			cafile = ca;
		}
		if (!certfile && file_exists(cert) && file_exists(key)) {
			certfile = cert;
			keyfile = key;
		}
	}
	if (cafile) {
		rc = gnutls_certificate_set_x509_trust_file(t->x509, cafile,
							    GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			tls_err(err, errlen, "cannot read the CA certificate %s: %s",
				cafile, rc < 0 ? gnutls_strerror(rc) :
				"it holds no certificate");
			return -1;
		}
		snprintf(t->trust, sizeof(t->trust), "the CA in %s", cafile);
	} else {
		rc = gnutls_certificate_set_x509_system_trust(t->x509);
		if (rc <= 0 && !o->insecure) {
			tls_err(err, errlen, "the system has no trusted CA certificates (%s): give the server's CA with --cacert or --tls-certificates, or --tls-insecure to skip the check",
				rc < 0 ? gnutls_strerror(rc) : "none found");
			return -1;
		}
		snprintf(t->trust, sizeof(t->trust),
			 "the system's trusted CAs");
	}
	if (certfile) {
		rc = gnutls_certificate_set_x509_key_file(t->x509, certfile,
							  keyfile,
							  GNUTLS_X509_FMT_PEM);
		if (rc < 0) {
			tls_err(err, errlen, "cannot use the client certificate %s with the key %s: %s",
				certfile, keyfile, gnutls_strerror(rc));
			return -1;
		}
	}
	return 0;
}

static bool is_ip_address(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 ||
	       inet_pton(AF_INET6, s, buf) == 1;
}

/* The server certificate's subject, issuer and expiry, for a message. */
static void describe_peer(struct nbd_tls *t, char *buf, size_t len)
{
	const gnutls_datum_t *list;
	unsigned int n = 0;
	gnutls_x509_crt_t crt;
	gnutls_datum_t subj = { 0 }, iss = { 0 };
	char when[64] = "";
	time_t exp;
	struct tm tm;

	buf[0] = '\0';
	list = gnutls_certificate_get_peers(t->session, &n);
	if (!list || !n || gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &list[0], GNUTLS_X509_FMT_DER) >= 0 &&
	    gnutls_x509_crt_get_dn2(crt, &subj) >= 0 &&
	    gnutls_x509_crt_get_issuer_dn2(crt, &iss) >= 0) {
		exp = gnutls_x509_crt_get_expiration_time(crt);
		if (exp != (time_t)-1 && gmtime_r(&exp, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
		snprintf(buf, len, "; the certificate is \"%s\", issued by \"%s\"%s%s",
			 (const char *)subj.data, (const char *)iss.data,
			 *when ? ", valid until " : "", when);
	}
	gnutls_free(subj.data);
	gnutls_free(iss.data);
	gnutls_x509_crt_deinit(crt);
}

/* A failed handshake as a sentence. */
static void handshake_error(struct nbd_tls *t, int rc, char *err,
			    size_t errlen)
{
	const struct nbd_tls_opts *o = t->o;
	gnutls_alert_description_t alert;
	gnutls_datum_t text = { 0 };
	unsigned int status;
	char peer[1200];

	switch (rc) {
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
		status = gnutls_session_get_verify_cert_status(t->session);
		describe_peer(t, peer, sizeof(peer));
		if (status & GNUTLS_CERT_UNEXPECTED_OWNER) {
			tls_err(err, errlen, "the server's certificate is not for the host name \"%s\"%s (--tls-hostname sets the name to check)",
				t->verify_name ? t->verify_name : "", peer);
			return;
		}
		if (status & GNUTLS_CERT_EXPIRED) {
			tls_err(err, errlen, "the server's certificate has expired%s",
				peer);
			return;
		}
		if (status & GNUTLS_CERT_NOT_ACTIVATED) {
			tls_err(err, errlen, "the server's certificate is not valid yet%s",
				peer);
			return;
		}
		gnutls_certificate_verification_status_print(status,
							     GNUTLS_CRT_X509,
							     &text, 0);
		while (text.data && text.size &&
		       (text.data[text.size - 1] == ' ' ||
			text.data[text.size - 1] == '\0'))
			text.data[--text.size] = '\0';
		tls_err(err, errlen, "the server's certificate is not trusted by %s: %s%s (--tls-insecure skips the check)",
			t->trust, text.data ? (char *)text.data : "rejected",
			peer);
		gnutls_free(text.data);
		return;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
	case GNUTLS_E_WARNING_ALERT_RECEIVED:
		alert = gnutls_alert_get(t->session);
		if (t->psk && alert == GNUTLS_A_UNKNOWN_PSK_IDENTITY) {
			tls_err(err, errlen, "the server does not know the PSK identity \"%s\" (from %s)",
				t->username, o->psk_file);
			return;
		}
		if (t->psk && (alert == GNUTLS_A_DECRYPT_ERROR ||
			       alert == GNUTLS_A_BAD_RECORD_MAC ||
			       alert == GNUTLS_A_HANDSHAKE_FAILURE)) {
			tls_err(err, errlen, "the server refused the TLS handshake with alert %s: the key for \"%s\" in %s is probably not the server's",
				gnutls_alert_get_name(alert), t->username,
				o->psk_file);
			return;
		}
		if (alert == GNUTLS_A_CERTIFICATE_REQUIRED ||
		    alert == GNUTLS_A_BAD_CERTIFICATE ||
		    alert == GNUTLS_A_UNKNOWN_CA) {
			tls_err(err, errlen, "the server refused the TLS handshake with alert %s: it wants a client certificate it trusts (--cert and --key, or client-cert.pem and client-key.pem in --tls-certificates)",
				gnutls_alert_get_name(alert));
			return;
		}
		tls_err(err, errlen, "the server refused the TLS handshake with alert %s",
			gnutls_alert_get_name(alert));
		return;
	case GNUTLS_E_DECRYPTION_FAILED:
		if (t->psk) {
			tls_err(err, errlen, "the TLS handshake failed to decrypt: the key for \"%s\" in %s is probably not the server's",
				t->username, o->psk_file);
			return;
		}
		break;
	case GNUTLS_E_AGAIN:
		tls_err(err, errlen, "the server did not complete the TLS handshake in time");
		return;
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		if (t->psk)
			tls_err(err, errlen, "the server closed the connection during the TLS handshake: it does not know the PSK identity \"%s\", or its key for it is not the one in %s",
				t->username, o->psk_file);
		else
			tls_err(err, errlen, "the server closed the connection during the TLS handshake (it may want a client certificate: --cert and --key, or client-cert.pem in --tls-certificates)");
		return;
	case GNUTLS_E_NO_CIPHER_SUITES:
	case GNUTLS_E_INSUFFICIENT_CREDENTIALS:
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
	case GNUTLS_E_NO_COMMON_KEY_SHARE:
		tls_err(err, errlen, "the server and nbdctl have no TLS version and cipher in common (%s); nbdctl offers TLS 1.2 and 1.3 with %s, the ciphers kernel TLS can take",
			gnutls_strerror(rc), KTLS_CIPHERS);
		return;
	default:
		break;
	}
	tls_err(err, errlen, "the TLS handshake failed: %s", gnutls_strerror(rc));
}

/**
 * nbd_tls_start() - the TLS client handshake on a connected socket
 * @fd: the socket, right after the server acknowledged NBD_OPT_STARTTLS
 * @o: credentials and checks
 * @err: a sentence on failure
 * @errlen: size of @err
 *
 * Return: the session, or NULL.
 */
struct nbd_tls *nbd_tls_start(int fd, const struct nbd_tls_opts *o,
			      char *err, size_t errlen)
{
	struct nbd_tls *t = calloc(1, sizeof(*t));
	const char *prio, *where = NULL;
	char prio_buf[512];
	int rc;

	if (!t) {
		tls_err(err, errlen, "out of memory");
		return NULL;
	}
	t->o = o;
	if (o->psk_file ? load_psk(t, err, errlen) : load_x509(t, err, errlen))
		goto fail;
	if (gnutls_init(&t->session, GNUTLS_CLIENT) < 0) {
		tls_err(err, errlen, "out of memory");
		goto fail;
	}
	if (o->priority) {
		prio = o->priority;
	} else {
		snprintf(prio_buf, sizeof(prio_buf), "%s%s", KTLS_PRIORITY,
			 o->psk_file ? PSK_KX : "");
		prio = prio_buf;
	}
	rc = gnutls_priority_set_direct(t->session, prio, &where);
	if (rc < 0) {
		tls_err(err, errlen, "bad --tls-priority \"%s\" at \"%s\": %s",
			prio, where ? where : "", gnutls_strerror(rc));
		goto fail;
	}
	if (t->psk) {
		rc = gnutls_credentials_set(t->session, GNUTLS_CRD_PSK, t->psk);
	} else {
		rc = gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE,
					    t->x509);
		t->verify_name = o->hostname && *o->hostname ? o->hostname :
									 NULL;
		if (rc >= 0 && t->verify_name && !is_ip_address(t->verify_name))
			rc = gnutls_server_name_set(t->session, GNUTLS_NAME_DNS,
						    t->verify_name,
						    strlen(t->verify_name));
		if (rc >= 0 && !o->insecure)
			gnutls_session_set_verify_cert(t->session,
						       t->verify_name, 0);
	}
	if (rc < 0) {
		tls_err(err, errlen, "cannot set up TLS: %s",
			gnutls_strerror(rc));
		goto fail;
	}
	gnutls_transport_set_int(t->session, fd);
	gnutls_handshake_set_timeout(t->session, 0);
	do {
		rc = gnutls_handshake(t->session);
	} while (rc == GNUTLS_E_INTERRUPTED);
	if (rc < 0) {
		handshake_error(t, rc, err, errlen);
		goto fail;
	}
	return t;
fail:
	nbd_tls_free(t);
	return NULL;
}

/**
 * nbd_tls_free() - end a session without a word to the server
 * @t: the session, or NULL
 *
 * The socket is the caller's; after nbd_tls_to_kernel() it carries the
 * session on in the kernel.
 */
void nbd_tls_free(struct nbd_tls *t)
{
	if (!t)
		return;
	if (t->session)
		gnutls_deinit(t->session);
	if (t->x509)
		gnutls_certificate_free_credentials(t->x509);
	if (t->psk)
		gnutls_psk_free_client_credentials(t->psk);
	free(t->username);
	free(t);
}

/**
 * nbd_tls_send() - write all of @len bytes through the session
 * @t: the session
 * @buf: the bytes
 * @len: how many
 *
 * Return: 0, or a GnuTLS error code (negative) for nbd_tls_strerror().
 */
int nbd_tls_send(struct nbd_tls *t, const void *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = gnutls_record_send(t->session, (const char *)buf + done,
				       len - done);
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n < 0)
			return (int)n;
		done += (size_t)n;
	}
	return 0;
}

/**
 * nbd_tls_recv() - read up to @len bytes from the session
 * @t: the session
 * @buf: where they go
 * @len: at most this many
 *
 * Return: the bytes read, 0 when the server ended the session, or a
 * GnuTLS error code (negative).
 */
ssize_t nbd_tls_recv(struct nbd_tls *t, void *buf, size_t len)
{
	ssize_t n;

	do {
		n = gnutls_record_recv(t->session, buf, len);
	} while (n == GNUTLS_E_INTERRUPTED);
	if (n == GNUTLS_E_PREMATURE_TERMINATION)
		return 0;
	return n;
}

/**
 * nbd_tls_strerror() - a GnuTLS error code from nbd_tls_send/recv() as text
 * @t: the session
 * @rc: the code
 *
 * Return: a static string; GNUTLS_E_AGAIN means the socket timed out.
 */
const char *nbd_tls_strerror(struct nbd_tls *t, int rc)
{
	static char buf[160];

	if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED ||
	    rc == GNUTLS_E_WARNING_ALERT_RECEIVED) {
		snprintf(buf, sizeof(buf), "the server sent the TLS alert %s",
			 gnutls_alert_get_name(gnutls_alert_get(t->session)));
		return buf;
	}
	return gnutls_strerror(rc);
}

/**
 * nbd_tls_is_timeout() - whether a GnuTLS error code means a timeout
 * @rc: the code
 *
 * Return: true for GNUTLS_E_AGAIN (SO_RCVTIMEO or SO_SNDTIMEO expired).
 */
bool nbd_tls_is_timeout(int rc)
{
	return rc == GNUTLS_E_AGAIN;
}

/**
 * nbd_tls_describe() - the session's version, cipher and authentication
 * @t: the session
 * @buf: filled with e.g. "TLS1.3, AES-256-GCM, X.509 (verified for localhost)"
 * @len: size of @buf
 */
void nbd_tls_describe(struct nbd_tls *t, char *buf, size_t len)
{
	const char *auth;
	char name[4600] = "";

	if (t->psk) {
		snprintf(name, sizeof(name), "PSK identity \"%s\"",
			 t->username);
		auth = name;
	} else if (t->o->insecure) {
		auth = "X.509 (not verified: --tls-insecure)";
	} else {
		snprintf(name, sizeof(name), "X.509 (verified by %s%s%s)",
			 t->trust, t->verify_name ? " for " : "",
			 t->verify_name ? t->verify_name : "");
		auth = name;
	}
	snprintf(buf, len, "%s, %s, %s",
		 gnutls_protocol_get_name(gnutls_protocol_get_version(t->session)),
		 gnutls_cipher_get_name(gnutls_cipher_get(t->session)), auth);
}

/* One direction's keys in the kernel's layout. */
static int ktls_set(int fd, struct nbd_tls *t, bool rx, char *err,
		    size_t errlen)
{
	union {
		struct tls12_crypto_info_aes_gcm_128 gcm128;
		struct tls12_crypto_info_aes_gcm_256 gcm256;
		struct tls12_crypto_info_aes_ccm_128 ccm128;
		struct tls12_crypto_info_chacha20_poly1305 chacha;
	} ci;
	struct tls_crypto_info *info = &ci.gcm128.info;
	gnutls_cipher_algorithm_t cipher = gnutls_cipher_get(t->session);
	gnutls_protocol_t ver = gnutls_protocol_get_version(t->session);
	gnutls_datum_t iv, key;
	unsigned char seq[8];
	unsigned char *c_iv, *c_salt, *c_key, *c_seq;
	size_t iv_len, salt_len, key_len, size;
	bool tls13 = ver == GNUTLS_TLS1_3;
	int rc;

	memset(&ci, 0, sizeof(ci));
	rc = gnutls_record_get_state(t->session, rx, NULL, &iv, &key, seq);
	if (rc < 0) {
		tls_err(err, errlen, "cannot read the TLS session's keys: %s",
			gnutls_strerror(rc));
		return -1;
	}
	info->version = tls13 ? TLS_1_3_VERSION : TLS_1_2_VERSION;
/* the fields and sizes of one crypto_info layout with a salt */
#define KTLS_LAYOUT(ci_member, NAME)					\
	do {								\
		info->cipher_type = TLS_CIPHER_##NAME;			\
		c_iv = (ci_member).iv;					\
		c_salt = (ci_member).salt;				\
		c_key = (ci_member).key;				\
		c_seq = (ci_member).rec_seq;				\
		iv_len = TLS_CIPHER_##NAME##_IV_SIZE;			\
		salt_len = TLS_CIPHER_##NAME##_SALT_SIZE;		\
		key_len = TLS_CIPHER_##NAME##_KEY_SIZE;			\
		size = sizeof(ci_member);				\
	} while (0)
	switch (cipher) {
	case GNUTLS_CIPHER_AES_128_GCM:
		KTLS_LAYOUT(ci.gcm128, AES_GCM_128);
		break;
	case GNUTLS_CIPHER_AES_256_GCM:
		KTLS_LAYOUT(ci.gcm256, AES_GCM_256);
		break;
	case GNUTLS_CIPHER_AES_128_CCM:
		KTLS_LAYOUT(ci.ccm128, AES_CCM_128);
		break;
	case GNUTLS_CIPHER_CHACHA20_POLY1305:
		/* no salt: the whole 12-byte IV is the kernel's iv */
		info->cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
		c_iv = ci.chacha.iv;
		c_salt = NULL;
		c_key = ci.chacha.key;
		c_seq = ci.chacha.rec_seq;
		iv_len = TLS_CIPHER_CHACHA20_POLY1305_IV_SIZE;
		salt_len = 0;
		key_len = TLS_CIPHER_CHACHA20_POLY1305_KEY_SIZE;
		size = sizeof(ci.chacha);
		break;
	default:
		tls_err(err, errlen, "the server chose the cipher %s, which kernel TLS cannot take (it takes %s): leave it out with --tls-priority",
			gnutls_cipher_get_name(cipher), KTLS_CIPHERS);
		return -1;
	}
#undef KTLS_LAYOUT
	if (key.size != key_len ||
	    (salt_len ? iv.size != (tls13 ? salt_len + iv_len : salt_len) :
			iv.size != iv_len)) {
		tls_err(err, errlen, "the TLS session's key material has unexpected sizes (key %u, IV %u bytes)",
			key.size, iv.size);
		return -1;
	}
	memcpy(c_key, key.data, key_len);
	memcpy(c_seq, seq, sizeof(seq));
	if (!salt_len) {
		memcpy(c_iv, iv.data, iv_len);		/* ChaCha20: all of it */
	} else if (tls13) {
		memcpy(c_salt, iv.data, salt_len);	/* 12-byte IV split */
		memcpy(c_iv, iv.data + salt_len, iv_len);
	} else {
		memcpy(c_salt, iv.data, salt_len);	/* implicit part */
		memcpy(c_iv, seq, iv_len);		/* explicit nonce */
	}
	rc = setsockopt(fd, SOL_TLS, rx ? TLS_RX : TLS_TX, &ci, (socklen_t)size);
	explicit_bzero(&ci, sizeof(ci));
	if (rc) {
		tls_err(err, errlen, "the kernel refused the TLS %s keys (%s, %s): %s",
			rx ? "receive" : "send",
			gnutls_protocol_get_name(ver),
			gnutls_cipher_get_name(cipher), strerror(errno));
		return -1;
	}
	return 0;
}

/**
 * nbd_tls_to_kernel() - move the session to kernel TLS on its socket
 * @t: the session, with nothing unread in GnuTLS' buffers
 * @fd: its TCP socket
 * @err: a sentence on failure
 * @errlen: size of @err
 *
 * Return: 0 with the socket sealing and opening records by itself, or -1.
 */
int nbd_tls_to_kernel(struct nbd_tls *t, int fd, char *err, size_t errlen)
{
	if (gnutls_record_check_pending(t->session)) {
		tls_err(err, errlen, "the server sent data after its reply to NBD_OPT_GO");
		return -1;
	}
	if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls"))) {
		if (errno == ENOENT)
			tls_err(err, errlen, "kernel TLS is not available: the tls module is not loaded and could not be (modprobe tls; it needs CONFIG_TLS)");
		else
			tls_err(err, errlen, "cannot switch the socket to kernel TLS: %s",
				strerror(errno));
		return -1;
	}
	if (ktls_set(fd, t, false, err, errlen) ||
	    ktls_set(fd, t, true, err, errlen))
		return -1;
	return 0;
}

/**
 * nbd_tls_option() - take one of the TLS command line options
 * @opt: getopt_long's value
 * @arg: its argument
 * @o: the options being filled in
 *
 * Return: 1 when @opt was a TLS option, 0 when it was not.
 */
int nbd_tls_option(int opt, const char *arg, struct nbd_tls_opts *o)
{
	switch (opt) {
	case NBD_TLS_OPT_TLS:
		o->enabled = true;
		break;
	case NBD_TLS_OPT_CERTS:
		o->certs_dir = arg;
		break;
	case NBD_TLS_OPT_CACERT:
		o->cacert = arg;
		break;
	case NBD_TLS_OPT_CERT:
		o->cert = arg;
		break;
	case NBD_TLS_OPT_KEY:
		o->key = arg;
		break;
	case NBD_TLS_OPT_PSK:
		o->psk_file = arg;
		break;
	case NBD_TLS_OPT_USERNAME:
		o->username = arg;
		break;
	case NBD_TLS_OPT_HOSTNAME:
		o->hostname = arg;
		break;
	case NBD_TLS_OPT_PRIORITY:
		o->priority = arg;
		break;
	case NBD_TLS_OPT_INSECURE:
		o->insecure = true;
		break;
	default:
		return 0;
	}
	return 1;
}

/**
 * nbd_tls_finish() - check the TLS options against each other and the URI
 * @o: the options; TLS is enabled by an nbds:// URI or any credential
 * @u: the target: its TLS query parameters (tls-certificates,
 *	tls-psk-file, tls-hostname, tls-username, tls-verify-peer) fill in
 *	what the command line left out; its host is the default name to
 *	verify
 *
 * Return: -1 when they make sense, else NBDCTL_EXIT_USAGE after a message.
 */
int nbd_tls_finish(struct nbd_tls_opts *o, const struct nbd_uri *u)
{
	bool x509;

	/* the URI's query parameters, where the command line is silent */
	if (!o->certs_dir && !o->cacert && !o->psk_file) {
		o->certs_dir = u->tls_certificates;
		o->psk_file = u->tls_psk_file;
	}
	if (!o->hostname)
		o->hostname = u->tls_hostname;
	if (!o->username)
		o->username = u->tls_username;
	if (u->tls_verify_peer && !strcmp(u->tls_verify_peer, "false"))
		o->insecure = true;
	x509 = o->certs_dir || o->cacert || o->cert || o->key;

	if (u->tls || x509 || o->psk_file)
		o->enabled = true;
	if (!o->enabled) {
		if (o->username || o->hostname || o->priority || o->insecure) {
			nbdctl_err("--tls-username, --tls-hostname, --tls-priority and --tls-insecure need TLS: add --tls or use an nbds:// URI");
			return NBDCTL_EXIT_USAGE;
		}
		return -1;
	}
	if (o->psk_file && x509) {
		nbdctl_err("--tls-psk cannot be combined with certificates (--tls-certificates, --cacert, --cert, --key): choose PSK or X.509");
		return NBDCTL_EXIT_USAGE;
	}
	if (o->username && !o->psk_file) {
		nbdctl_err("--tls-username names a PSK identity: it needs --tls-psk");
		return NBDCTL_EXIT_USAGE;
	}
	if (!o->cert != !o->key) {
		nbdctl_err("%s needs %s too", o->cert ? "--cert" : "--key",
			   o->cert ? "--key" : "--cert");
		return NBDCTL_EXIT_USAGE;
	}
	if (o->psk_file && (o->hostname || o->insecure)) {
		nbdctl_err("--tls-hostname and --tls-insecure are about certificates; with --tls-psk the key itself authenticates the server");
		return NBDCTL_EXIT_USAGE;
	}
	if (!o->hostname && u->host)
		o->hostname = u->host;
	return -1;
}
