/* tls_profile: what our TLS offers, either side, and how its failures
 * read.
 *
 * Configured by hand so only these parts of BearSSL are linked:
 * TLS 1.2 with ECDHE_ECDSA and ECDHE_RSA, AES-128/256-GCM and
 * ChaCha20-Poly1305 (ordered for the CPU), curves
 * X25519, P-256, P-384 (and P-521, which comes with the generic prime-curve
 * code), SHA-256/384 for the PRF and signatures, RSA and ECDSA with the i31
 * big-integer code. BearSSL 0.6 has no TLS 1.3, and these AEAD suites
 * exist only in TLS 1.2, so 1.0/1.1 are not offered. */
#ifndef TLS_PROFILE_H
#define TLS_PROFILE_H

#include <stdint.h>

#include <bearssl.h>

/* One big-integer family (i31) for RSA, ECDSA and the prime curves, so its
 * code is linked once; pem.c uses the same family. */
extern const br_ec_impl tls_profile_ec;
#define TLS_EC (&tls_profile_ec)
#define TLS_RSA_VRFY br_rsa_i31_pkcs1_vrfy
#define TLS_RSA_SIGN br_rsa_i31_pkcs1_sign
#define TLS_ECDSA_VRFY br_ecdsa_i31_vrfy_asn1
#define TLS_ECDSA_SIGN br_ecdsa_i31_sign_asn1

/* Our own X.509 error for a key that matches no pin; outside BearSSL's
 * ranges (X.509 32..63, alerts 256..767). */
#define TLS_ERR_PIN 1000

/* Versions, suites, curves, hashes and PRFs on an engine. */
void tls_profile_apply(br_ssl_engine_context *eng);
/* A BearSSL error in words, or NULL when it has none here (alerts and
 * the rest are worded by the caller). */
const char *tls_profile_error(int e);
/* A TLS alert's name ("unknown" if none). */
const char *tls_profile_alert(unsigned a);
/* A suite of ours in OpenSSL's words ("?" for another). */
const char *tls_profile_suite(uint16_t s);

#endif
