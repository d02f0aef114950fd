/* tls: the BearSSL client engine behind the transport (wss://).
 *
 * Profile (configured by hand so only these parts of BearSSL are linked):
 * TLS 1.2 with ECDHE_ECDSA and ECDHE_RSA, AES-128/256-GCM and
 * ChaCha20-Poly1305 (see set_ciphers() for the order and the AES code
 * used), curves X25519, P-256, P-384 (and P-521, which comes with the
 * generic prime-curve code), SHA-256/384 for the PRF and signatures
 * (SHA-512 too for certificates), RSA and ECDSA with the i31 big-integer
 * code. BearSSL 0.6 has no TLS 1.3, and these AEAD suites exist only in
 * TLS 1.2, so 1.0/1.1 are not offered.
 *
 * Verification, decided once in tls_config_load():
 * - CA (default): br_x509_minimal against --ca-file or the first system
 *   bundle found; SNI and DNS name check against --tls-server-name or the
 *   URL host; dates against the clock, or the build date when the clock is
 *   older (a router at 1970 before NTP). BearSSL matches DNS names only,
 *   so an IP-address URL needs --tls-server-name (a DNS name in the
 *   certificate) or a pin; tls_config_load() says so instead of failing
 *   every handshake. SNI is never sent for an IP address.
 * - pin (--tls-pin): our engine below hashes the end-entity certificate's
 *   SubjectPublicKeyInfo and accepts the chain only if it matches a pin;
 *   no CA, name or date check (the pin names the key). --ca-file and
 *   --insecure are then not used.
 * - none (--insecure): our engine accepts any chain; warns at every connect.
 *
 * Buffers: one bidirectional buffer of BR_SSL_BUFSIZE_BIDI (33178 bytes)
 * per connection, allocated with the engine in tls_new() and freed in
 * tls_free(). Half-duplex (BR_SSL_BUFSIZE_MONO) cannot send while an
 * unread incoming record sits in the buffer, which would stall PONGs and
 * control messages whenever backpressure stops us reading. The input half
 * must hold a full 16 KiB record (servers need not honour the maximum
 * fragment length extension); a full-size output half keeps BearSSL from
 * advertising that extension at all and sends 16 KiB records.
 */
#include "tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bearssl.h>

#include "config.h"
#include "fmt.h"
#include "log.h"
#include "pem.h"
#include "pin.h"
#include "rand.h"
#include "url.h"

#ifndef TC_BUILD_EPOCH
#define TC_BUILD_EPOCH 0
#endif

/* Implementations: one big-integer family (i31) for RSA, ECDSA and the
 * prime curves, so its code is linked once. pem.c uses the same family. */
#define TLS_EC (&tls_ec)
#define TLS_RSA_VRFY br_rsa_i31_pkcs1_vrfy
#define TLS_RSA_SIGN br_rsa_i31_pkcs1_sign
#define TLS_ECDSA_VRFY br_ecdsa_i31_vrfy_asn1
#define TLS_ECDSA_SIGN br_ecdsa_i31_sign_asn1

#define TLS_C25519 br_ec_c25519_i31
#define TLS_PRIME br_ec_prime_i31

/* Curves: X25519 through its i31 code (2 KB; the m31/m15 variants are
 * 4-6 KB), P-256/P-384/P-521 through the generic prime-curve code, which
 * P-384 certificates need anyway (BearSSL's specialised P-256 code would
 * add about 8 KB for a faster handshake we do not need). */
static const unsigned char *ec_generator(int curve, size_t *len)
{
	return curve == BR_EC_curve25519 ? TLS_C25519.generator(curve, len)
					 : TLS_PRIME.generator(curve, len);
}

static const unsigned char *ec_order(int curve, size_t *len)
{
	return curve == BR_EC_curve25519 ? TLS_C25519.order(curve, len)
					 : TLS_PRIME.order(curve, len);
}

static size_t ec_xoff(int curve, size_t *len)
{
	return curve == BR_EC_curve25519 ? TLS_C25519.xoff(curve, len)
					 : TLS_PRIME.xoff(curve, len);
}

static uint32_t ec_mul(unsigned char *g, size_t glen, const unsigned char *k, size_t klen,
		       int curve)
{
	return curve == BR_EC_curve25519 ? TLS_C25519.mul(g, glen, k, klen, curve)
					 : TLS_PRIME.mul(g, glen, k, klen, curve);
}

static size_t ec_mulgen(unsigned char *r, const unsigned char *k, size_t klen, int curve)
{
	return curve == BR_EC_curve25519 ? TLS_C25519.mulgen(r, k, klen, curve)
					 : TLS_PRIME.mulgen(r, k, klen, curve);
}

static uint32_t ec_muladd(unsigned char *a, const unsigned char *b, size_t len,
			  const unsigned char *x, size_t xlen, const unsigned char *y,
			  size_t ylen, int curve)
{
	/* Only ECDSA uses muladd, and never on Curve25519. */
	return TLS_PRIME.muladd(a, b, len, x, xlen, y, ylen, curve);
}

static const br_ec_impl tls_ec = {
	(1u << BR_EC_secp256r1) | (1u << BR_EC_secp384r1) | (1u << BR_EC_secp521r1) |
		(1u << BR_EC_curve25519),
	ec_generator, ec_order, ec_xoff, ec_mul, ec_mulgen, ec_muladd,
};

/* Our X.509 error for a key that matches no --tls-pin; outside BearSSL's
 * ranges (X.509 32..63, alerts 256..767). */
#define TLS_ERR_PIN 1000

#define TLS_ERRMSG_MAX 192

/* The system CA bundles we look for, in order. */
static const char *const tls_bundles[] = {
	"/etc/ssl/certs/ca-certificates.crt", /* Debian, Ubuntu, Alpine, Arch */
	"/etc/ssl/cert.pem",                  /* Alpine, macOS-like, OpenBSD */
	"/etc/pki/tls/certs/ca-bundle.crt",   /* Fedora, RHEL */
	"/etc/ssl/ca-bundle.pem",             /* openSUSE */
};

enum tls_verify {
	TLS_VERIFY_CA,   /* chain to a trust anchor, name, dates */
	TLS_VERIFY_PIN,  /* end-entity key matches a pin */
	TLS_VERIFY_NONE, /* --insecure */
};

struct tls_config {
	enum tls_verify verify;
	br_x509_trust_anchor *anchors;
	size_t n_anchors;
	uint8_t pins[PIN_MAX][PIN_LEN];
	size_t n_pins;
	char server_name[URL_HOST_MAX + 1]; /* SNI and name check; "" = none */
	br_x509_certificate *chain;         /* client certificate, or NULL */
	size_t chain_len;
	struct pem_key key;
};

/* The X.509 engine for pin and insecure modes: decodes the end-entity
 * certificate for its key and, with pins, hashes its SPKI. */
struct tls_x509 {
	const br_x509_class *vtable;
	const struct tls_config *tc;
	br_x509_decoder_context dec;
	struct pin_spki spki;
	const br_x509_pkey *pkey; /* set by a successful end_chain */
	uint32_t certs;           /* certificates started in this chain */
};

/* Client certificate handler around BearSSL's single-key one: notes that
 * the runner asked for a certificate, so a refusal can say so (asyncio
 * runners close without an alert). Sends no certificate when none is
 * configured. */
struct tls_ccert {
	const br_ssl_client_certificate_class *vtable;
	const br_ssl_client_certificate_class **inner; /* NULL: no certificate */
	int asked;                                     /* CertificateRequest seen */
};

struct tls {
	br_ssl_client_context cc;
	struct tls_ccert ccert;
	union {
		br_x509_minimal_context minimal; /* TLS_VERIFY_CA */
		struct tls_x509 own;             /* TLS_VERIFY_PIN, _NONE */
	} x509;
	const struct tls_config *tc;
	int fd;
	int failed;    /* marked once; every later call returns -1 */
	int fail_errno; /* errno those calls set: EPROTO or a socket errno */
	int hs_done;   /* handshake complete */
	int eof;       /* the socket reached end of stream */
	char errmsg[TLS_ERRMSG_MAX];
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
};

/* ---- validation time ---- */

int tls_validation_time(int64_t now, int64_t build_epoch, uint32_t *days,
			uint32_t *secs)
{
	int fallback = now < build_epoch;
	int64_t t = fallback ? build_epoch : now;

	if (t < 0) {
		t = 0;
	}
	/* 719528 days from 1 January of year 0 to 1 January 1970. */
	*days = (uint32_t)(t / 86400 + 719528);
	*secs = (uint32_t)(t % 86400);
	return fallback;
}

/* ---- our X.509 engine (pin, insecure) ---- */

static void own_start_chain(const br_x509_class **ctx, const char *server_name)
{
	struct tls_x509 *x = (struct tls_x509 *)(void *)ctx;

	(void)server_name; /* the pin names the key; no name check */
	br_x509_decoder_init(&x->dec, NULL, NULL);
	pin_spki_init(&x->spki);
	x->pkey = NULL;
	x->certs = 0;
}

static void own_start_cert(const br_x509_class **ctx, uint32_t length)
{
	struct tls_x509 *x = (struct tls_x509 *)(void *)ctx;

	(void)length;
	x->certs++;
}

static void own_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
	struct tls_x509 *x = (struct tls_x509 *)(void *)ctx;

	if (x->certs != 1) {
		return; /* only the end-entity certificate matters */
	}
	br_x509_decoder_push(&x->dec, buf, len);
	if (x->tc->verify == TLS_VERIFY_PIN) {
		pin_spki_push(&x->spki, buf, len);
	}
}

static void own_end_cert(const br_x509_class **ctx)
{
	(void)ctx;
}

static unsigned own_end_chain(const br_x509_class **ctx)
{
	struct tls_x509 *x = (struct tls_x509 *)(void *)ctx;
	const br_x509_pkey *pk;
	uint8_t hash[PIN_LEN];
	int err;

	if (x->certs == 0) {
		return BR_ERR_X509_EMPTY_CHAIN;
	}
	err = br_x509_decoder_last_error(&x->dec);
	if (err != 0) {
		return (unsigned)err;
	}
	pk = br_x509_decoder_get_pkey(&x->dec);
	if (pk == NULL) {
		return BR_ERR_X509_TRUNCATED;
	}
	if (x->tc->verify == TLS_VERIFY_PIN) {
		size_t i;

		if (pin_spki_result(&x->spki, hash) != 0) {
			return BR_ERR_X509_UNEXPECTED;
		}
		for (i = 0; i < x->tc->n_pins; i++) {
			if (memcmp(hash, x->tc->pins[i], PIN_LEN) == 0) {
				break;
			}
		}
		if (i == x->tc->n_pins) {
			return TLS_ERR_PIN;
		}
	}
	x->pkey = pk;
	return 0;
}

static const br_x509_pkey *own_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
	const struct tls_x509 *x = (const struct tls_x509 *)(const void *)ctx;

	if (usages != NULL) {
		*usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
	}
	return x->pkey;
}

static const br_x509_class own_vtable = {
	sizeof(struct tls_x509), own_start_chain, own_start_cert, own_append,
	own_end_cert, own_end_chain, own_get_pkey,
};

/* ---- client certificate handler ---- */

#define CCERT(pctx) ((struct tls_ccert *)(void *)(pctx))

static void cc_start_name_list(const br_ssl_client_certificate_class **pctx)
{
	struct tls_ccert *c = CCERT(pctx);

	c->asked = 1;
	if (c->inner != NULL) {
		(*c->inner)->start_name_list(c->inner);
	}
}

static void cc_start_name(const br_ssl_client_certificate_class **pctx, size_t len)
{
	struct tls_ccert *c = CCERT(pctx);

	if (c->inner != NULL) {
		(*c->inner)->start_name(c->inner, len);
	}
}

static void cc_append_name(const br_ssl_client_certificate_class **pctx,
			   const unsigned char *data, size_t len)
{
	struct tls_ccert *c = CCERT(pctx);

	if (c->inner != NULL) {
		(*c->inner)->append_name(c->inner, data, len);
	}
}

static void cc_end_name(const br_ssl_client_certificate_class **pctx)
{
	struct tls_ccert *c = CCERT(pctx);

	if (c->inner != NULL) {
		(*c->inner)->end_name(c->inner);
	}
}

static void cc_end_name_list(const br_ssl_client_certificate_class **pctx)
{
	struct tls_ccert *c = CCERT(pctx);

	if (c->inner != NULL) {
		(*c->inner)->end_name_list(c->inner);
	}
}

static void cc_choose(const br_ssl_client_certificate_class **pctx,
		      const br_ssl_client_context *cc, uint32_t auth_types,
		      br_ssl_client_certificate *choices)
{
	struct tls_ccert *c = CCERT(pctx);

	if (c->inner != NULL) {
		(*c->inner)->choose(c->inner, cc, auth_types, choices);
		return;
	}
	memset(choices, 0, sizeof(*choices)); /* no chain: empty Certificate */
}

static uint32_t cc_do_keyx(const br_ssl_client_certificate_class **pctx,
			   unsigned char *data, size_t *len)
{
	struct tls_ccert *c = CCERT(pctx);

	return c->inner != NULL ? (*c->inner)->do_keyx(c->inner, data, len) : 0;
}

static size_t cc_do_sign(const br_ssl_client_certificate_class **pctx, int hash_id,
			 size_t hv_len, unsigned char *data, size_t len)
{
	struct tls_ccert *c = CCERT(pctx);

	return c->inner != NULL ? (*c->inner)->do_sign(c->inner, hash_id, hv_len, data, len)
				: 0;
}

static const br_ssl_client_certificate_class ccert_vtable = {
	sizeof(struct tls_ccert), cc_start_name_list, cc_start_name, cc_append_name,
	cc_end_name, cc_end_name_list, cc_choose, cc_do_keyx, cc_do_sign,
};

/* ---- configuration ---- */

static int is_ip_literal(const char *s)
{
	unsigned char addr[16];

	return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

void tls_config_free(struct tls_config *tc)
{
	if (tc == NULL) {
		return;
	}
	pem_free_anchors(tc->anchors, tc->n_anchors);
	pem_free_chain(tc->chain, tc->chain_len);
	pem_free_key(&tc->key);
	free(tc);
}

static int load_anchors(struct tls_config *tc, const struct config *cfg, char *err,
			size_t errlen)
{
	char label[300];

	if (cfg->ca_file != NULL) {
		fmt_snprintf(label, sizeof(label), "--ca-file %s", cfg->ca_file);
		return pem_load_anchors(cfg->ca_file, label, 1, &tc->anchors,
					&tc->n_anchors, err, errlen);
	}
	for (size_t i = 0; i < sizeof(tls_bundles) / sizeof(tls_bundles[0]); i++) {
		if (access(tls_bundles[i], R_OK) == 0) {
			fmt_snprintf(label, sizeof(label), "CA bundle %s", tls_bundles[i]);
			if (pem_load_anchors(tls_bundles[i], label, 0, &tc->anchors,
					     &tc->n_anchors, err, errlen) != 0) {
				return -1;
			}
			log_debug("TLS trust anchors loaded file=%s count=%zu",
				  tls_bundles[i], tc->n_anchors);
			return 0;
		}
	}
	fmt_snprintf(err, errlen, "no CA bundle found: pass --ca-file FILE (or SSL_CERT_FILE), "
			      "or --tls-pin sha256:...");
	return -1;
}

static int load_client_cert(struct tls_config *tc, const struct config *cfg, char *err,
			    size_t errlen)
{
	char label[300];
	int rc;

	if (cfg->tls_cert == NULL && cfg->tls_key == NULL) {
		return 0;
	}
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL) {
		fmt_snprintf(err, errlen, "--tls-cert and --tls-key must be given together");
		return -1;
	}
	fmt_snprintf(label, sizeof(label), "--tls-cert %s", cfg->tls_cert);
	if (pem_load_chain(cfg->tls_cert, label, &tc->chain, &tc->chain_len, err, errlen) != 0) {
		return -1;
	}
	fmt_snprintf(label, sizeof(label), "--tls-key %s", cfg->tls_key);
	if (pem_load_key(cfg->tls_key, label, &tc->key, err, errlen) != 0) {
		return -1;
	}
	if (tc->key.type == BR_KEYTYPE_EC &&
	    ((TLS_EC->supported_curves >> tc->key.ec.curve) & 1) == 0) {
		fmt_snprintf(err, errlen, "--tls-key %s: unsupported EC curve", cfg->tls_key);
		return -1;
	}
	rc = pem_key_matches(&tc->key, &tc->chain[0], TLS_EC);
	if (rc < 0) {
		fmt_snprintf(err, errlen, "--tls-cert %s: its first certificate cannot be decoded",
			 cfg->tls_cert);
		return -1;
	}
	if (rc == 0) {
		fmt_snprintf(err, errlen, "--tls-key %s does not match the certificate in --tls-cert %s",
			 cfg->tls_key, cfg->tls_cert);
		return -1;
	}
	return 0;
}

int tls_config_load(struct tls_config **out, const struct config *cfg,
		    const struct url *url, char *err, size_t errlen)
{
	struct tls_config *tc;
	const char *name = cfg->tls_server_name != NULL ? cfg->tls_server_name : url->host;
	int ip;

	*out = NULL;
	tc = calloc(1, sizeof(*tc));
	if (tc == NULL) {
		fmt_snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (cfg->tls_server_name != NULL &&
	    (cfg->tls_server_name[0] == '\0' || strlen(cfg->tls_server_name) > URL_HOST_MAX)) {
		fmt_snprintf(err, errlen, "--tls-server-name: expected a DNS name of 1 to %d bytes",
			 URL_HOST_MAX);
		goto fail;
	}
	ip = url->ipv6 || is_ip_literal(name);
	if (cfg->tls_pin != NULL) {
		tc->verify = TLS_VERIFY_PIN;
		if (pin_parse(cfg->tls_pin, tc->pins, PIN_MAX, &tc->n_pins) != 0) {
			fmt_snprintf(err, errlen, "--tls-pin: expected sha256:<base64 of the 32-byte "
					      "SHA-256 of the server's public key>[,sha256:...]");
			goto fail;
		}
	} else if (cfg->insecure) {
		tc->verify = TLS_VERIFY_NONE;
	} else {
		tc->verify = TLS_VERIFY_CA;
		if (ip) {
			/* BearSSL matches DNS names only, never IP addresses. */
			if (cfg->tls_server_name != NULL) {
				fmt_snprintf(err, errlen, "--tls-server-name %s is an IP address: give "
						      "a DNS name from the runner's certificate", name);
			} else {
				fmt_snprintf(err, errlen, "runner URL host %s is an IP address: pass "
						      "--tls-server-name NAME (a DNS name in the "
						      "runner's certificate), or --tls-pin sha256:...", name);
			}
			goto fail;
		}
		if (load_anchors(tc, cfg, err, errlen) != 0) {
			goto fail;
		}
	}
	/* SNI never carries an IP address (RFC 6066). */
	if (!ip) {
		fmt_snprintf(tc->server_name, sizeof(tc->server_name), "%s", name);
	}
	if (load_client_cert(tc, cfg, err, errlen) != 0) {
		goto fail;
	}
	*out = tc;
	return 0;
fail:
	tls_config_free(tc);
	return -1;
}

/* ---- errors ---- */

/* TLS alert names, packed: a code byte, then its NUL-terminated name. */
static const char alert_names[] =
	"\x00" "close_notify\0" "\x0a" "unexpected_message\0" "\x14" "bad_record_mac\0"
	"\x16" "record_overflow\0" "\x28" "handshake_failure\0" "\x2a" "bad_certificate\0"
	"\x2b" "unsupported_certificate\0" "\x2c" "certificate_revoked\0"
	"\x2d" "certificate_expired\0" "\x2e" "certificate_unknown\0"
	"\x2f" "illegal_parameter\0" "\x30" "unknown_ca\0" "\x31" "access_denied\0"
	"\x32" "decode_error\0" "\x33" "decrypt_error\0" "\x46" "protocol_version\0"
	"\x47" "insufficient_security\0" "\x50" "internal_error\0"
	"\x56" "inappropriate_fallback\0" "\x5a" "user_canceled\0"
	"\x6d" "missing_extension\0" "\x6e" "unsupported_extension\0"
	"\x70" "unrecognized_name\0" "\x74" "certificate_required\0"
	"\x78" "no_application_protocol\0";

static const char *alert_name(unsigned a)
{
	const char *p = alert_names;

	while (p < alert_names + sizeof(alert_names) - 1) {
		const char *name = p + 1;

		if ((unsigned char)*p == a) {
			return name;
		}
		p = name + strlen(name) + 1;
	}
	return "unknown";
}

static const char *engine_error(int e)
{
	switch (e) {
	case BR_ERR_X509_EXPIRED: return "certificate expired or not yet valid";
	case BR_ERR_X509_BAD_SERVER_NAME: return "host name mismatch";
	case BR_ERR_X509_NOT_TRUSTED: return "unknown CA (certificate not trusted)";
	case TLS_ERR_PIN: return "public key does not match --tls-pin";
	case BR_ERR_X509_NOT_CA: return "certificate chain has an issuer that is not a CA";
	case BR_ERR_X509_BAD_SIGNATURE: return "bad certificate signature";
	case BR_ERR_X509_EMPTY_CHAIN: return "server sent no certificate";
	case BR_ERR_X509_DN_MISMATCH: return "certificate chain is out of order";
	case BR_ERR_X509_WEAK_PUBLIC_KEY: return "certificate key too weak";
	case BR_ERR_X509_UNSUPPORTED: return "unsupported certificate algorithm";
	case BR_ERR_X509_CRITICAL_EXTENSION: return "unsupported critical certificate extension";
	case BR_ERR_X509_FORBIDDEN_KEY_USAGE: return "certificate key usage forbids TLS";
	case BR_ERR_X509_WRONG_KEY_TYPE: return "certificate key type does not fit the cipher suite";
	case BR_ERR_X509_LIMIT_EXCEEDED: return "certificate chain too large";
	case BR_ERR_X509_TIME_UNKNOWN: return "validation time unknown";
	case BR_ERR_UNSUPPORTED_VERSION: return "server does not support TLS 1.2";
	case BR_ERR_BAD_VERSION: return "server chose an unsupported TLS version";
	case BR_ERR_BAD_CIPHER_SUITE: return "server chose a cipher suite we did not offer";
	case BR_ERR_BAD_MAC: return "bad record MAC";
	case BR_ERR_NO_RANDOM: return "no entropy source";
	case BR_ERR_BAD_SIGNATURE: return "bad server key exchange signature";
	case BR_ERR_WRONG_KEY_USAGE: return "server key cannot be used for this cipher suite";
	case BR_ERR_NO_CLIENT_AUTH: return "client certificate cannot be used with this server";
	case BR_ERR_INVALID_ALGORITHM: return "server used an algorithm we did not offer";
	case BR_ERR_UNEXPECTED: return "unexpected TLS message";
	case BR_ERR_TOO_LARGE: return "TLS record too large";
	default: return NULL;
	}
}

/* Mark t failed once: later calls return -1 with errno = err; msg (or
 * the engine's error when msg is NULL and err is EPROTO) says why. */
static void tls_fail(struct tls *t, int err, const char *msg)
{
	int e = br_ssl_engine_last_error(&t->cc.eng);
	int refused = msg != NULL; /* the runner hung up, or sent an alert */
	char *m = t->errmsg;
	size_t cap = sizeof(t->errmsg);

	if (t->failed) {
		return;
	}
	t->failed = 1;
	t->fail_errno = err;
	if (msg == NULL && err != EPROTO) {
		msg = strerror(err);
	} else if (msg == NULL) {
		msg = engine_error(e);
	}
	if (msg != NULL) {
		fmt_snprintf(m, cap, "%s", msg);
	} else if (e >= BR_ERR_RECV_FATAL_ALERT && e < BR_ERR_SEND_FATAL_ALERT + 256) {
		unsigned a = (unsigned)e & 255;

		refused = e < BR_ERR_SEND_FATAL_ALERT;
		fmt_snprintf(m, cap, refused ? "runner sent TLS alert %s (%u)"
					 : "TLS alert %s (%u) sent to the runner",
			 alert_name(a), a);
	} else {
		fmt_snprintf(m, cap, "%s (BearSSL error %d)",
			 e >= BR_ERR_X509_OK && e < 64 ? "bad certificate" : "TLS error", e);
	}
	if (refused && !t->hs_done) {
		const char *hint = NULL;
		size_t n = strlen(m);

		if (t->ccert.asked) {
			hint = t->ccert.inner == NULL
				       ? "; the runner asked for a client certificate (--tls-cert, --tls-key)"
				       : "; the runner may have refused our client certificate";
		}
		if (hint != NULL) {
			fmt_snprintf(m + n, cap - n, "%s", hint);
		}
	}
	errno = err;
}

const char *tls_strerror(const struct tls *t)
{
	if (t == NULL || !t->failed) {
		return "no TLS error";
	}
	return t->errmsg;
}

/* ---- engine ---- */

#define SUITES(a) (a), sizeof(a) / sizeof((a)[0])

/* Suites and record ciphers. ChaCha20-Poly1305 always (SSE2 where the CPU
 * has it), AES-GCM always. On x86 with AES-NI and PCLMUL, AES-GCM uses
 * them and comes first; everywhere else (MIPS, ARM, x86 without AES-NI)
 * the portable constant-time AES comes after ChaCha20, which is much
 * faster in software, so a runner that only speaks AES-GCM is still
 * reached. */
static void set_ciphers(br_ssl_engine_context *eng)
{
	static const uint16_t chacha_first[] = {
		BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	};
	br_chacha20_run chacha = br_chacha20_sse2_get();

	br_ssl_engine_set_chapol(eng, &br_sslrec_in_chapol_vtable, &br_sslrec_out_chapol_vtable);
	br_ssl_engine_set_chacha20(eng, chacha != NULL ? chacha : br_chacha20_ct_run);
	br_ssl_engine_set_poly1305(eng, br_poly1305_ctmul_run);
	br_ssl_engine_set_gcm(eng, &br_sslrec_in_gcm_vtable, &br_sslrec_out_gcm_vtable);
#if defined(__x86_64__) || defined(__i386__)
	{
		static const uint16_t aes_first[] = {
			BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		};
		const br_block_ctr_class *ctr = br_aes_x86ni_ctr_get_vtable();
		br_ghash ghash = br_ghash_pclmul_get();

		if (ctr != NULL && ghash != NULL) {
			br_ssl_engine_set_aes_ctr(eng, ctr);
			br_ssl_engine_set_ghash(eng, ghash);
			br_ssl_engine_set_suites(eng, SUITES(aes_first));
			return;
		}
	}
#endif
	if (sizeof(void *) >= 8) {
		br_ssl_engine_set_aes_ctr(eng, &br_aes_ct64_ctr_vtable);
		br_ssl_engine_set_ghash(eng, br_ghash_ctmul64);
	} else {
		br_ssl_engine_set_aes_ctr(eng, &br_aes_ct_ctr_vtable);
		br_ssl_engine_set_ghash(eng, br_ghash_ctmul);
	}
	br_ssl_engine_set_suites(eng, SUITES(chacha_first));
}

struct tls *tls_new(const struct tls_config *tc, int fd)
{
	struct tls *t;
	br_ssl_engine_context *eng;
	uint8_t seed[32];

	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		return NULL;
	}
	t->tc = tc;
	t->fd = fd;
	eng = &t->cc.eng;

	br_ssl_client_zero(&t->cc);
	br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
	set_ciphers(eng);
	br_ssl_engine_add_flags(eng, BR_OPT_NO_RENEGOTIATION);
	br_ssl_engine_set_ec(eng, TLS_EC);
	br_ssl_engine_set_rsavrfy(eng, TLS_RSA_VRFY);
	br_ssl_engine_set_ecdsa(eng, TLS_ECDSA_VRFY);
	br_ssl_engine_set_hash(eng, br_sha256_ID, &br_sha256_vtable);
	br_ssl_engine_set_hash(eng, br_sha384_ID, &br_sha384_vtable);
	br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
	br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);

	if (tc->verify == TLS_VERIFY_CA) {
		br_x509_minimal_context *xc = &t->x509.minimal;
		uint32_t days, secs;

		br_x509_minimal_init(xc, &br_sha256_vtable, tc->anchors, tc->n_anchors);
		br_x509_minimal_set_rsa(xc, TLS_RSA_VRFY);
		br_x509_minimal_set_ecdsa(xc, TLS_EC, TLS_ECDSA_VRFY);
		br_x509_minimal_set_hash(xc, br_sha256_ID, &br_sha256_vtable);
		br_x509_minimal_set_hash(xc, br_sha384_ID, &br_sha384_vtable);
		br_x509_minimal_set_hash(xc, br_sha512_ID, &br_sha512_vtable);
		if (tls_validation_time((int64_t)time(NULL), (int64_t)TC_BUILD_EPOCH, &days,
					&secs)) {
			log_warn("system clock is before this build's date: checking "
				 "certificate dates against the build date");
		}
		br_x509_minimal_set_time(xc, days, secs);
		br_ssl_engine_set_x509(eng, &xc->vtable);
	} else {
		t->x509.own.vtable = &own_vtable;
		t->x509.own.tc = tc;
		br_ssl_engine_set_x509(eng, &t->x509.own.vtable);
		if (tc->verify == TLS_VERIFY_NONE) {
			log_warn("--insecure: the runner's TLS certificate is not verified");
		}
	}

	if (tc->chain != NULL && tc->key.type == BR_KEYTYPE_RSA) {
		br_ssl_client_set_single_rsa(&t->cc, tc->chain, tc->chain_len, &tc->key.rsa,
					     TLS_RSA_SIGN);
	} else if (tc->chain != NULL) {
		br_ssl_client_set_single_ec(&t->cc, tc->chain, tc->chain_len, &tc->key.ec,
					    BR_KEYTYPE_SIGN, BR_KEYTYPE_EC, TLS_EC,
					    TLS_ECDSA_SIGN);
	}
	t->ccert.vtable = &ccert_vtable;
	t->ccert.inner = t->cc.client_auth_vtable; /* NULL without a certificate */
	br_ssl_client_set_client_certificate(&t->cc, &t->ccert.vtable);

	br_ssl_engine_set_buffer(eng, t->iobuf, sizeof(t->iobuf), 1);
	/* BearSSL also reads /dev/urandom itself where it can; this seed makes
	 * sure the engine has kernel entropy even without /dev (scratch). */
	if (rand_bytes(seed, sizeof(seed)) == 0) {
		br_ssl_engine_inject_entropy(eng, seed, sizeof(seed));
	}
	memset(seed, 0, sizeof(seed));
	if (!br_ssl_client_reset(&t->cc, tc->server_name[0] != '\0' ? tc->server_name : NULL, 0)) {
		tls_fail(t, EPROTO, NULL);
	}
	return t;
}

void tls_free(struct tls *t)
{
	if (t == NULL) {
		return;
	}
	/* Session keys live in the context and buffers. */
	memset(t, 0, sizeof(*t));
	free(t);
}

#define TLS_HUNG_UP "runner closed the connection during the TLS handshake"

/* A socket call failed with err. A runner that refuses a handshake often
 * just closes (reset or broken pipe on our side): say that in words. */
static void sock_fail(struct tls *t, int err)
{
	if (!t->hs_done && (err == EPIPE || err == ECONNRESET)) {
		tls_fail(t, EPROTO, TLS_HUNG_UP);
	} else {
		tls_fail(t, err, NULL);
	}
}

/* Push prepared records to the socket. 1 if bytes moved, 0 if none could
 * (nothing pending or EAGAIN), -1 on a socket error (t marked). */
static int pump_send(struct tls *t)
{
	int moved = 0;

	for (;;) {
		size_t len;
		unsigned char *buf = br_ssl_engine_sendrec_buf(&t->cc.eng, &len);
		ssize_t n;

		if (buf == NULL) {
			return moved;
		}
		n = send(t->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				return moved;
			}
			sock_fail(t, errno);
			return -1;
		}
		br_ssl_engine_sendrec_ack(&t->cc.eng, (size_t)n);
		moved = 1;
	}
}

/* Read records from the socket into the engine (one read). 1 if bytes
 * moved or end of stream was seen, 0 if none (EAGAIN, or the engine wants
 * no records now), -1 on failure (t marked). */
static int pump_recv(struct tls *t)
{
	size_t len;
	unsigned char *buf;
	ssize_t n;

	if (t->eof) {
		return 0;
	}
	buf = br_ssl_engine_recvrec_buf(&t->cc.eng, &len);
	if (buf == NULL) {
		return 0;
	}
	do {
		n = recv(t->fd, buf, len, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			return 0;
		}
		sock_fail(t, errno);
		return -1;
	}
	if (n == 0) {
		if (!t->hs_done) {
			tls_fail(t, EPROTO, TLS_HUNG_UP);
			return -1;
		}
		/* End of stream without close_notify: the WebSocket layer above
		 * has its own framing and close handshake, so report a plain end
		 * of stream rather than an error. */
		t->eof = 1;
		return 1;
	}
	br_ssl_engine_recvrec_ack(&t->cc.eng, (size_t)n);
	return 1;
}

/* The engine stopped: mark t with its reason unless it closed cleanly.
 * 0 for a clean close, -1 for a failure. */
static int engine_closed(struct tls *t)
{
	if (br_ssl_engine_last_error(&t->cc.eng) == BR_ERR_OK) {
		return 0;
	}
	tls_fail(t, EPROTO, NULL);
	return -1;
}

static const char *suite_name(uint16_t s)
{
	switch (s) {
	case BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: return "ECDHE-ECDSA-AES128-GCM-SHA256";
	case BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: return "ECDHE-RSA-AES128-GCM-SHA256";
	case BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: return "ECDHE-ECDSA-AES256-GCM-SHA384";
	case BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: return "ECDHE-RSA-AES256-GCM-SHA384";
	case BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: return "ECDHE-ECDSA-CHACHA20-POLY1305";
	case BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: return "ECDHE-RSA-CHACHA20-POLY1305";
	default: return "?";
	}
}

int tls_handshake(struct tls *t)
{
	if (t->failed) {
		errno = t->fail_errno;
		return -1;
	}
	if (t->hs_done) {
		return 1;
	}
	for (;;) {
		unsigned st = br_ssl_engine_current_state(&t->cc.eng);
		int sent, got;

		if (st & BR_SSL_CLOSED) {
			if (engine_closed(t) == 0) {
				tls_fail(t, EPROTO, "runner closed the TLS session during the handshake");
			}
			return -1;
		}
		if (st & (BR_SSL_SENDAPP | BR_SSL_RECVAPP)) {
			br_ssl_session_parameters sp;

			t->hs_done = 1;
			if (pump_send(t) < 0) {
				return -1;
			}
			br_ssl_engine_get_session_parameters(&t->cc.eng, &sp);
			log_debug("TLS handshake done suite=%s verify=%s",
				  suite_name(sp.cipher_suite),
				  t->tc->verify == TLS_VERIFY_CA    ? "ca"
				  : t->tc->verify == TLS_VERIFY_PIN ? "pin"
								    : "none");
			return 1;
		}
		sent = pump_send(t);
		if (sent < 0) {
			return -1;
		}
		got = pump_recv(t);
		if (got < 0) {
			return -1;
		}
		if (!sent && !got) {
			return 0;
		}
	}
}

ssize_t tls_read(struct tls *t, void *buf, size_t len)
{
	if (t->failed) {
		errno = t->fail_errno;
		return -1;
	}
	for (;;) {
		unsigned st = br_ssl_engine_current_state(&t->cc.eng);
		int sent, got;

		if (st & BR_SSL_RECVAPP) {
			size_t avail;
			unsigned char *p = br_ssl_engine_recvapp_buf(&t->cc.eng, &avail);
			size_t n = avail < len ? avail : len;

			if (n == 0) {
				return 0; /* len == 0 */
			}
			memcpy(buf, p, n);
			br_ssl_engine_recvapp_ack(&t->cc.eng, n);
			return (ssize_t)n;
		}
		if (st & BR_SSL_CLOSED) {
			return engine_closed(t) == 0 ? 0 : -1;
		}
		if (t->eof) {
			return 0;
		}
		sent = pump_send(t); /* the engine may owe the peer a record */
		if (sent < 0) {
			return -1;
		}
		got = pump_recv(t);
		if (got < 0) {
			return -1;
		}
		if (!sent && !got) {
			errno = EAGAIN;
			return -1;
		}
	}
}

ssize_t tls_write(struct tls *t, const void *buf, size_t len)
{
	if (t->failed) {
		errno = t->fail_errno;
		return -1;
	}
	for (;;) {
		unsigned st = br_ssl_engine_current_state(&t->cc.eng);

		if (st & BR_SSL_CLOSED) {
			if (engine_closed(t) == 0) {
				errno = EPIPE;
			}
			return -1;
		}
		if (st & BR_SSL_SENDAPP) {
			size_t avail;
			unsigned char *p = br_ssl_engine_sendapp_buf(&t->cc.eng, &avail);
			size_t n = avail < len ? avail : len;

			if (n == 0) {
				return 0; /* len == 0 */
			}
			memcpy(p, buf, n);
			br_ssl_engine_sendapp_ack(&t->cc.eng, n);
			/* One record per write: tls_pending_out then counts every
			 * accepted byte, and nothing waits for a later flush. */
			br_ssl_engine_flush(&t->cc.eng, 0);
			/* The bytes are accepted either way; a socket failure
			 * marked t and shows on the next call. */
			(void)pump_send(t);
			return (ssize_t)n;
		}
		/* The previous record is still going out. */
		if (pump_send(t) <= 0) {
			if (!t->failed) {
				errno = EAGAIN;
			}
			return -1;
		}
	}
}

int tls_flush(struct tls *t)
{
	if (t->failed) {
		errno = t->fail_errno;
		return -1;
	}
	br_ssl_engine_flush(&t->cc.eng, 0);
	if (pump_send(t) < 0) {
		return -1;
	}
	if ((br_ssl_engine_current_state(&t->cc.eng) & BR_SSL_CLOSED) && engine_closed(t) != 0) {
		return -1;
	}
	return 0;
}

short tls_events(const struct tls *t, int want_write)
{
	unsigned st = br_ssl_engine_current_state(&t->cc.eng);
	short ev = 0;

	if (t->failed || (st & BR_SSL_CLOSED)) {
		return t->eof ? 0 : POLLIN;
	}
	if (st & BR_SSL_SENDREC) {
		ev |= POLLOUT;
	}
	if ((st & BR_SSL_RECVREC) && !t->eof) {
		ev |= POLLIN;
	}
	if (want_write && (st & BR_SSL_SENDAPP)) {
		ev |= POLLOUT;
	}
	return ev;
}

size_t tls_pending_out(const struct tls *t)
{
	size_t len = 0;

	br_ssl_engine_sendrec_buf(&t->cc.eng, &len);
	return len;
}

void tls_close(struct tls *t)
{
	if (t->failed) {
		return;
	}
	br_ssl_engine_close(&t->cc.eng);
	(void)pump_send(t);
}
