/* pin: public-key pins for --tls-pin. Pure code, no I/O.
 *
 * A pin is "sha256:" + base64 of the SHA-256 of a certificate's
 * SubjectPublicKeyInfo DER, the value
 *   openssl x509 -pubkey -noout | openssl pkey -pubin -outform der |
 *   openssl dgst -sha256 -binary | base64
 * prints. Several pins may be given separated by commas (key rotation).
 *
 * The SPKI hash is taken over the certificate's own bytes: a streaming DER
 * walker skips to the seventh element of tbsCertificate (after the optional
 * version, serial, signature, issuer, validity and subject) and hashes that
 * element, header included. Nothing is buffered, so any certificate size
 * works, and the bytes hashed are exactly the ones the X.509 decoder reads
 * the key from.
 */
#ifndef PIN_H
#define PIN_H

#include <stddef.h>
#include <stdint.h>

#include <bearssl_hash.h>

#define PIN_LEN 32 /* SHA-256 */
#define PIN_MAX 8  /* pins accepted in one --tls-pin value */

/* Parse "sha256:B64[,sha256:B64...]" into pins[0..max). 0 with *n set, or
 * -1 if any part is not a sha256: base64 of exactly 32 bytes, or there are
 * more than max. */
int pin_parse(const char *s, uint8_t (*pins)[PIN_LEN], size_t max, size_t *n);

enum pin_spki_state {
	PIN_SPKI_HDR,   /* collecting a tag and length */
	PIN_SPKI_SKIP,  /* skipping an element's content */
	PIN_SPKI_HASH,  /* hashing the SPKI content */
	PIN_SPKI_DONE,  /* SPKI hashed; later bytes are ignored */
	PIN_SPKI_ERROR, /* not the DER shape of a certificate */
};

/* Streaming SPKI hasher over one certificate's DER. */
struct pin_spki {
	br_sha256_context sha;
	enum pin_spki_state state;
	unsigned elem;     /* 0 Certificate, 1 tbsCertificate, 2.. its elements */
	uint8_t hdr[6];    /* tag, length, up to 4 length bytes */
	size_t hdr_len;
	size_t hdr_need;
	uint32_t remain;   /* content bytes left to skip or hash */
};

void pin_spki_init(struct pin_spki *s);
/* Feed the next len bytes of the certificate. */
void pin_spki_push(struct pin_spki *s, const void *data, size_t len);
/* 0 with the SPKI SHA-256 in out, or -1 if the SPKI was not found whole. */
int pin_spki_result(const struct pin_spki *s, uint8_t out[PIN_LEN]);

#endif
