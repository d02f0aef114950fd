/* tls_client: the agent's side of wss://: the BearSSL client context, how
 * the runner is verified, and the client certificate. The engine profile
 * and pumping are shared with the server (tls_io.c).
 *
 * Verification, decided once in tls_client_config_load():
 * - CA (default): br_x509_minimal against --ca-file or the first system
 *   bundle found; SNI and DNS name check against --tls-server-name or the
 *   URL host; dates against the clock, or the build date when the clock is
 *   older (a router at 1970 before NTP). BearSSL matches DNS names only,
 *   so an IP-address URL needs --tls-server-name (a DNS name in the
 *   certificate) or a pin; tls_client_config_load() says so instead of failing
 *   every handshake. SNI is never sent for an IP address.
 * - pin (--tls-pin): our engine below hashes the end-entity certificate's
 *   SubjectPublicKeyInfo and accepts the chain only if it matches a pin;
 *   no CA, name or date check (the pin names the key). --ca-file and
 *   --insecure are then not used.
 * - none (--insecure): our engine accepts any chain; warns at every connect.
 *
 * Buffers: one bidirectional buffer of BR_SSL_BUFSIZE_BIDI (33178 bytes)
 * per connection, allocated with the engine in tls_client_new() and freed
 * through tls_io_free(). Half-duplex (BR_SSL_BUFSIZE_MONO) cannot send while an
 * unread incoming record sits in the buffer, which would stall PONGs and
 * control messages whenever backpressure stops us reading. The input half
 * must hold a full 16 KiB record (servers need not honour the maximum
 * fragment length extension); a full-size output half keeps BearSSL from
 * advertising that extension at all and sends 16 KiB records.
 */
#include "tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bearssl.h>

#include "config.h"
#include "fmt.h"
#include "log.h"
#include "pem.h"
#include "pem_key.h"
#include "pin.h"
#include "tls_io.h"
#include "url.h"

#ifndef TC_BUILD_EPOCH
#define TC_BUILD_EPOCH 0
#endif


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

struct tls_client {
	struct tls_io io; /* first: the transport sees only this */
	br_ssl_client_context cc;
	struct tls_ccert ccert;
	union {
		br_x509_minimal_context minimal; /* TLS_VERIFY_CA */
		struct tls_x509 own;             /* TLS_VERIFY_PIN, _NONE */
	} x509;
	const struct tls_config *tc;
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
};

/* ---- validation time ---- */

int tls_client_validation_time(int64_t now, int64_t build_epoch, uint32_t *days,
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

void tls_client_config_free(struct tls_config *tc)
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

int tls_client_config_load(struct tls_config **out, const struct config *cfg,
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
	tls_client_config_free(tc);
	return -1;
}

/* ---- engine ---- */

/* A refusal before the handshake completed: did the runner ask for a
 * certificate? (asyncio runners close without an alert.) */
static const char *client_hint(const struct tls_io *io)
{
	const struct tls_client *t = (const struct tls_client *)(const void *)io;

	if (!t->ccert.asked) {
		return "";
	}
	return t->ccert.inner == NULL
		       ? "; the runner asked for a client certificate (--tls-cert, --tls-key)"
		       : "; the runner may have refused our client certificate";
}

static void client_destroy(struct tls_io *io)
{
	/* Session keys live in the context and buffers. */
	memset(io, 0, sizeof(struct tls_client));
	free(io);
}

struct tls_io *tls_client_new(const struct tls_config *tc, int fd)
{
	struct tls_client *t;
	br_ssl_engine_context *eng;

	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		return NULL;
	}
	t->tc = tc;
	eng = &t->cc.eng;
	br_ssl_client_zero(&t->cc);
	tls_io_setup(&t->io, eng, fd, "runner", t->iobuf, sizeof(t->iobuf));
	t->io.hint = client_hint;
	t->io.destroy = client_destroy;
	t->io.verify = tc->verify == TLS_VERIFY_CA ? "ca" : tc->verify == TLS_VERIFY_PIN ? "pin" : "none";

	if (tc->verify == TLS_VERIFY_CA) {
		br_x509_minimal_context *xc = &t->x509.minimal;
		uint32_t days, secs;

		br_x509_minimal_init(xc, &br_sha256_vtable, tc->anchors, tc->n_anchors);
		br_x509_minimal_set_rsa(xc, TLS_RSA_VRFY);
		br_x509_minimal_set_ecdsa(xc, TLS_EC, TLS_ECDSA_VRFY);
		br_x509_minimal_set_hash(xc, br_sha256_ID, &br_sha256_vtable);
		br_x509_minimal_set_hash(xc, br_sha384_ID, &br_sha384_vtable);
		br_x509_minimal_set_hash(xc, br_sha512_ID, &br_sha512_vtable);
		if (tls_client_validation_time((int64_t)time(NULL), (int64_t)TC_BUILD_EPOCH, &days,
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
	if (!br_ssl_client_reset(&t->cc, tc->server_name[0] != '\0' ? tc->server_name : NULL, 0)) {
		tls_io_fail(&t->io, EPROTO, NULL);
	}
	return &t->io;
}
