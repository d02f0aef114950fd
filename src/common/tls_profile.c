#include "tls_profile.h"

#include <string.h>

/* ---- curves ---- */

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

const br_ec_impl tls_profile_ec = {
	(1u << BR_EC_secp256r1) | (1u << BR_EC_secp384r1) | (1u << BR_EC_secp521r1) |
		(1u << BR_EC_curve25519),
	ec_generator, ec_order, ec_xoff, ec_mul, ec_mulgen, ec_muladd,
};

/* ---- suites ---- */

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

void tls_profile_apply(br_ssl_engine_context *eng)
{
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
}

const char *tls_profile_suite(uint16_t s)
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

/* ---- names ---- */

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

const char *tls_profile_alert(unsigned a)
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

const char *tls_profile_error(int e)
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
