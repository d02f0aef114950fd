/* pem_key: a TLS private key from a PEM file (RSA or EC, unencrypted),
 * and whether a certificate carries its public half. Start-up code, like
 * pem.h: errors are one line starting with the caller's label. */
#ifndef PEM_KEY_H
#define PEM_KEY_H

#include <stdint.h>

#include <bearssl_ec.h>
#include <bearssl_rsa.h>
#include <bearssl_x509.h>

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
