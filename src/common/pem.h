/* pem: PEM files into what BearSSL needs (trust anchors, a certificate
 * chain, a private key). Start-up code: on a problem, the load functions
 * fill err with one line that starts with the caller's label (for example
 * "--ca-file /etc/x.pem") and return -1. Everything returned is on the heap
 * and owned by the caller until the matching _free. */
#ifndef PEM_H
#define PEM_H

#include <stddef.h>
#include <stdint.h>

#include <bearssl_ec.h>
#include <bearssl_rsa.h>
#include <bearssl_x509.h>

#define PEM_FILE_MAX (16u << 20) /* bytes read from one file at most */
#define PEM_OBJ_MAX (64u << 10)  /* one decoded object (certificate, key) */
#define PEM_DN_MAX 4096          /* one certificate subject DN */

enum pem_err {
	PEM_OK = 0,
	PEM_ERR_SYNTAX = -1,  /* not well-formed PEM (bad base64, unfinished) */
	PEM_ERR_TOO_BIG = -2, /* an object is over PEM_OBJ_MAX */
	PEM_ERR_NOMEM = -3,
	PEM_ERR_CALLBACK = -4, /* the callback returned non-zero */
};

/* Called once per complete object; der is valid during the call only.
 * Return 0 to go on, non-zero to stop with PEM_ERR_CALLBACK. */
typedef int (*pem_object_fn)(void *ctx, const char *name, const uint8_t *der,
			     size_t len);

/* Decode every PEM object in text[0..len). Text outside BEGIN/END lines is
 * ignored; a missing final newline is accepted. Pure. Number of objects
 * (>= 0), or a negative enum pem_err. */
int pem_decode(const void *text, size_t len, pem_object_fn fn, void *ctx);
const char *pem_strerror(int err);

/* Trust anchors from every CERTIFICATE in path (CA flag from the basic
 * constraints; a non-CA certificate is trusted directly). strict: a
 * certificate BearSSL cannot decode is an error; otherwise it is skipped
 * (system bundles may carry key types BearSSL lacks). No certificate at all
 * is an error. */
int pem_load_anchors(const char *path, const char *label, int strict,
		     br_x509_trust_anchor **out, size_t *n, char *err, size_t errlen);
void pem_free_anchors(br_x509_trust_anchor *ta, size_t n);

/* The CERTIFICATEs of path in file order (end-entity first). */
int pem_load_chain(const char *path, const char *label,
		   br_x509_certificate **out, size_t *n, char *err, size_t errlen);
void pem_free_chain(br_x509_certificate *chain, size_t n);

struct pem_key {
	int type;               /* BR_KEYTYPE_RSA or BR_KEYTYPE_EC */
	br_rsa_private_key rsa; /* when RSA; points into mem */
	br_ec_private_key ec;   /* when EC; points into mem */
	uint8_t *mem;
};

/* The first private key in path: "RSA PRIVATE KEY", "EC PRIVATE KEY" or
 * unencrypted PKCS#8 "PRIVATE KEY". */
int pem_load_key(const char *path, const char *label, struct pem_key *key,
		 char *err, size_t errlen);
void pem_free_key(struct pem_key *key);

/* 1 if the certificate's public key is the public half of key, 0 if not,
 * -1 if the certificate cannot be decoded. ec computes EC public points. */
int pem_key_matches(const struct pem_key *key, const br_x509_certificate *cert,
		    const br_ec_impl *ec);

#endif
