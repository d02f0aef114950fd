/* pem: PEM files into what BearSSL needs (trust anchors, a certificate
 * chain; the private key is pem_key.h's). Start-up code: on a problem, the
 * load functions fill err with one line that starts with the caller's
 * label (for example "--ca-file /etc/x.pem") and return -1. Everything
 * returned is on the heap and owned by the caller until the matching
 * _free. */
#ifndef PEM_H
#define PEM_H

#include <stddef.h>
#include <stdint.h>

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

/* Decode the PEM objects of the file at path through fn. The number of
 * objects, or -1 with err filled, starting with label (when fn fails, it
 * wrote err itself). */
int pem_load_file(const char *path, const char *label, pem_object_fn fn, void *ctx,
		  char *err, size_t errlen);

#endif
