#include "pem_key.h"

#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "pem.h"

/* The RSA big-integer family must match the one tls.c links (i31). */
#define PEM_RSA_MODULUS br_rsa_i31_compute_modulus

struct key_ctx {
	struct pem_key *key;
	int found;
	const char *label;
	char *err;
	size_t errlen;
};

void pem_free_key(struct pem_key *key)
{
	size_t len = 0;

	if (key->mem == NULL) {
		return;
	}
	if (key->type == BR_KEYTYPE_RSA) {
		len = key->rsa.plen + key->rsa.qlen + key->rsa.dplen + key->rsa.dqlen +
		      key->rsa.iqlen;
	} else if (key->type == BR_KEYTYPE_EC) {
		len = key->ec.xlen;
	}
	memset(key->mem, 0, len);
	free(key->mem);
	memset(key, 0, sizeof(*key));
}

/* Copy the decoded key out of the decoder into one heap block. 0 or -1. */
static int key_copy(struct pem_key *key, const br_skey_decoder_context *dc)
{
	if (br_skey_decoder_key_type(dc) == BR_KEYTYPE_RSA) {
		const br_rsa_private_key *sk = br_skey_decoder_get_rsa(dc);
		size_t len = sk->plen + sk->qlen + sk->dplen + sk->dqlen + sk->iqlen;
		uint8_t *m = malloc(len);

		if (m == NULL) {
			return -1;
		}
		key->type = BR_KEYTYPE_RSA;
		key->mem = m;
		key->rsa = *sk;
		key->rsa.p = m;
		memcpy(m, sk->p, sk->plen);
		m += sk->plen;
		key->rsa.q = m;
		memcpy(m, sk->q, sk->qlen);
		m += sk->qlen;
		key->rsa.dp = m;
		memcpy(m, sk->dp, sk->dplen);
		m += sk->dplen;
		key->rsa.dq = m;
		memcpy(m, sk->dq, sk->dqlen);
		m += sk->dqlen;
		key->rsa.iq = m;
		memcpy(m, sk->iq, sk->iqlen);
		return 0;
	} else {
		const br_ec_private_key *sk = br_skey_decoder_get_ec(dc);
		uint8_t *m = malloc(sk->xlen);

		if (m == NULL) {
			return -1;
		}
		key->type = BR_KEYTYPE_EC;
		key->mem = m;
		key->ec = *sk;
		key->ec.x = m;
		memcpy(m, sk->x, sk->xlen);
		return 0;
	}
}

static int key_add(void *ctx, const char *name, const uint8_t *der, size_t len)
{
	struct key_ctx *k = ctx;
	br_skey_decoder_context dc;
	int rc;

	if (k->found) {
		return 0;
	}
	if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0) {
		fmt_snprintf(k->err, k->errlen, "%s: encrypted keys are not supported", k->label);
		return -1;
	}
	if (strcmp(name, "RSA PRIVATE KEY") != 0 && strcmp(name, "EC PRIVATE KEY") != 0 &&
	    strcmp(name, "PRIVATE KEY") != 0) {
		return 0;
	}
	br_skey_decoder_init(&dc);
	br_skey_decoder_push(&dc, der, len);
	rc = br_skey_decoder_last_error(&dc);
	if (rc != 0 || br_skey_decoder_key_type(&dc) == 0) {
		fmt_snprintf(k->err, k->errlen,
			 "%s: the %s cannot be decoded (not RSA or EC P-256/P-384/P-521?)",
			 k->label, name);
		memset(&dc, 0, sizeof(dc));
		return -1;
	}
	rc = key_copy(k->key, &dc);
	memset(&dc, 0, sizeof(dc));
	if (rc != 0) {
		fmt_snprintf(k->err, k->errlen, "%s: out of memory", k->label);
		return -1;
	}
	k->found = 1;
	return 0;
}

int pem_load_key(const char *path, const char *label, struct pem_key *key,
		 char *err, size_t errlen)
{
	struct key_ctx k = {.key = key, .label = label, .err = err, .errlen = errlen};

	memset(key, 0, sizeof(*key));
	if (pem_load_file(path, label, key_add, &k, err, errlen) < 0) {
		pem_free_key(key);
		return -1;
	}
	if (!k.found) {
		fmt_snprintf(err, errlen, "%s: no private key in it (PEM expected)", label);
		return -1;
	}
	return 0;
}

/* Big-endian unsigned integers equal, ignoring leading zeros. */
static int int_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	while (alen > 0 && *a == 0) {
		a++;
		alen--;
	}
	while (blen > 0 && *b == 0) {
		b++;
		blen--;
	}
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

int pem_key_matches(const struct pem_key *key, const br_x509_certificate *cert,
		    const br_ec_impl *ec)
{
	br_x509_decoder_context dc;
	const br_x509_pkey *pk;

	br_x509_decoder_init(&dc, NULL, NULL);
	br_x509_decoder_push(&dc, cert->data, cert->data_len);
	pk = br_x509_decoder_get_pkey(&dc);
	if (pk == NULL) {
		return -1;
	}
	if (pk->key_type != key->type) {
		return 0;
	}
	if (key->type == BR_KEYTYPE_RSA) {
		/* n = pq names the key pair; the exponent is not compared (a
		 * certificate with our modulus and another exponent is not a
		 * mistake anyone makes by accident). */
		uint8_t n[512]; /* BearSSL handles RSA up to 4096 bits */
		size_t nlen = PEM_RSA_MODULUS(NULL, &key->rsa);

		if (nlen == 0 || nlen > sizeof(n)) {
			return 0;
		}
		PEM_RSA_MODULUS(n, &key->rsa);
		return int_eq(n, nlen, pk->key.rsa.n, pk->key.rsa.nlen);
	} else {
		uint8_t q[BR_EC_KBUF_PUB_MAX_SIZE];
		br_ec_public_key pub;
		size_t qlen;

		if (key->ec.curve != pk->key.ec.curve) {
			return 0;
		}
		qlen = br_ec_compute_pub(ec, &pub, q, &key->ec);
		return qlen != 0 && qlen == pk->key.ec.qlen &&
		       memcmp(q, pk->key.ec.q, qlen) == 0;
	}
}
