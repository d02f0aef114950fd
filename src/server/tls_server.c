#include "tls_server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bearssl.h>

#include "fmt.h"
#include "pem.h"
#include "pem_key.h"
#include "tls_io.h"

struct tls_server_config {
	br_x509_certificate *chain;
	size_t chain_len;
	struct pem_key key;
};

struct tls_server {
	struct tls_io io; /* first: the transport sees only this */
	br_ssl_server_context sc;
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
};

void tls_server_config_free(struct tls_server_config *c)
{
	if (c == NULL) {
		return;
	}
	pem_free_chain(c->chain, c->chain_len);
	pem_free_key(&c->key);
	free(c);
}

int tls_server_config_load(struct tls_server_config **out, const char *cert_file,
			   const char *key_file, char *err, size_t errlen)
{
	struct tls_server_config *c = calloc(1, sizeof(*c));
	char label[300];
	int rc;

	*out = NULL;
	if (c == NULL) {
		fmt_snprintf(err, errlen, "out of memory");
		return -1;
	}
	fmt_snprintf(label, sizeof(label), "--tls-cert %s", cert_file);
	if (pem_load_chain(cert_file, label, &c->chain, &c->chain_len, err, errlen) != 0) {
		goto fail;
	}
	fmt_snprintf(label, sizeof(label), "--tls-key %s", key_file);
	if (pem_load_key(key_file, label, &c->key, err, errlen) != 0) {
		goto fail;
	}
	if (c->key.type == BR_KEYTYPE_EC && ((TLS_EC->supported_curves >> c->key.ec.curve) & 1) == 0) {
		fmt_snprintf(err, errlen, "--tls-key %s: unsupported EC curve", key_file);
		goto fail;
	}
	rc = pem_key_matches(&c->key, &c->chain[0], TLS_EC);
	if (rc <= 0) {
		fmt_snprintf(err, errlen, rc < 0 ? "--tls-cert %s: its first certificate cannot be decoded"
						 : "--tls-key %s does not match the certificate in --tls-cert",
			     rc < 0 ? cert_file : key_file);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	tls_server_config_free(c);
	return -1;
}

static void server_destroy(struct tls_io *io)
{
	/* Session keys live in the context and buffers. */
	memset(io, 0, sizeof(struct tls_server));
	free(io);
}

struct tls_io *tls_server_new(const struct tls_server_config *c, int fd)
{
	struct tls_server *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		return NULL;
	}
	br_ssl_server_zero(&t->sc);
	tls_io_setup(&t->io, &t->sc.eng, fd, "agent", t->iobuf, sizeof(t->iobuf));
	t->io.destroy = server_destroy;
	if (c->key.type == BR_KEYTYPE_RSA) {
		br_ssl_server_set_single_rsa(&t->sc, c->chain, c->chain_len, &c->key.rsa,
					     BR_KEYTYPE_SIGN, br_rsa_i31_private, TLS_RSA_SIGN);
	} else {
		br_ssl_server_set_single_ec(&t->sc, c->chain, c->chain_len, &c->key.ec,
					    BR_KEYTYPE_SIGN, BR_KEYTYPE_EC, TLS_EC, TLS_ECDSA_SIGN);
	}
	if (!br_ssl_server_reset(&t->sc)) {
		tls_io_fail(&t->io, EPROTO, NULL);
	}
	return &t->io;
}
