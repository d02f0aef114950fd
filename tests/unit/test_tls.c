/* TLS pieces that need no network: pins, SPKI hashing, PEM loading and
 * its errors, the validation clock, tls_client_config_load's start-up checks.
 * Fixtures are throwaway self-signed certificates and keys made with
 * openssl for these tests; their pins were computed with
 *   openssl x509 -pubkey -noout | openssl pkey -pubin -outform der |
 *   openssl dgst -sha256 -binary | base64 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "pem.h"
#include "pem_key.h"
#include "pin.h"
#include "tls_client.h"
#include "unit.h"
#include "url.h"

#define EC_PIN "sha256:o7DUlimd8N+K7ebjgXTDO14F4RhPHZXlqzvq/1ZnDho="
#define RSA_PIN "sha256:XLIrr1GoNKlAjCpud92bz3IG0++Ia1nOm6RhqoWifnQ="

static const char EC_CRT[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBlDCCATqgAwIBAgIUKHkEFcGrHlxhSGwOU13a9SmklP4wCgYIKoZIzj0EAwIw\n"
	"EjEQMA4GA1UEAwwHdW5pdC1lYzAgFw0yNjExMjIwNDE4MjlaGA8yMTI2MTAyOTA0\n"
	"MTgyOVowEjEQMA4GA1UEAwwHdW5pdC1lYzBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
	"A0IABI4XKvDaQ3uOXde0uzJNTZfiWuUeChJJHqRHWIKtPXlrddctxMSOWmU8VEeC\n"
	"bbBh27TeF0+5ileuYhuKSIV8WlyjbDBqMB0GA1UdDgQWBBTzDq5tsqxUH4+3IIpl\n"
	"r085saBkTDAfBgNVHSMEGDAWgBTzDq5tsqxUH4+3IIplr085saBkTDAPBgNVHRMB\n"
	"Af8EBTADAQH/MBcGA1UdEQQQMA6CDHVuaXQuZXhhbXBsZTAKBggqhkjOPQQDAgNI\n"
	"ADBFAiBOuICDoS4zU6+qLBDS7tF6cSJvYedKD+q8g4KkHWj92AIhALLp/a3tCOcE\n"
	"B/d+RO7nMNSoF/x6fh/c+/pScEmMy2A4\n"
	"-----END CERTIFICATE-----\n";

static const char EC_KEY[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgGkuzfoSq2gRs/GQJ\n"
	"VmcpJjDNXD5BZFup81uFvfL3e6GhRANCAASOFyrw2kN7jl3XtLsyTU2X4lrlHgoS\n"
	"SR6kR1iCrT15a3XXLcTEjlplPFRHgm2wYdu03hdPuYpXrmIbikiFfFpc\n"
	"-----END PRIVATE KEY-----\n";

static const char OTHER_EC_KEY[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxBWQQRbbzGe29ag8\n"
	"BACLZ+gmUeXTIS6obBvU5Sja1WehRANCAAT5Kq1ghgkmMLtgXbQ9OKYxPhY8OxWB\n"
	"3Vs8lW7zp6g19gOI+9c3gZCUrLh5T5GRCGoN/56r2bx6wh4DxzHZPnxN\n"
	"-----END PRIVATE KEY-----\n";

static const char RSA_CRT[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIICBDCCAW2gAwIBAgIUVHPbLgGsZpLY6h9KeXQIpbWUHq0wDQYJKoZIhvcNAQEL\n"
	"BQAwEzERMA8GA1UEAwwIdW5pdC1yc2EwIBcNMjYxMTIyMDQxODI5WhgPMjEyNjEw\n"
	"MjkwNDE4MjlaMBMxETAPBgNVBAMMCHVuaXQtcnNhMIGfMA0GCSqGSIb3DQEBAQUA\n"
	"A4GNADCBiQKBgQCoM38Lq3cbjsP9BAgLHo+tSoczK5q1XVwLrFtBgV57IVkJEEIT\n"
	"XezpUBQK6uCf/4bXxR05kHX12fRq7HKG3te/4SEd3Y9E/MflEuoKrw+hf3cSSFaM\n"
	"NcRhYrE4MwhOOUnvl7sVuTSob7aQwRnHoCLMKaSuGZjIXJW7tCNL89NnlwIDAQAB\n"
	"o1MwUTAdBgNVHQ4EFgQUD+8SG/8kQIDXHleqYnaHBF3jS9YwHwYDVR0jBBgwFoAU\n"
	"D+8SG/8kQIDXHleqYnaHBF3jS9YwDwYDVR0TAQH/BAUwAwEB/zANBgkqhkiG9w0B\n"
	"AQsFAAOBgQCC2Wn3cmSOVn7FuBWqanxKVIk1zwEFPwX1SUtFq2i+kmRDu1BKndzZ\n"
	"EWCfdTBA5KAy7mMvMGsgG0iyePFiDfpNMBf6lq4vVKIyXnDqoR5Fj9oXbFemsK9r\n"
	"VcDN1upQswg750yrPP20isP07/3tY1t6okRS3XujEZcP34FZoW6n8g==\n"
	"-----END CERTIFICATE-----\n";

static const char RSA_KEY[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAKgzfwurdxuOw/0E\n"
	"CAsej61KhzMrmrVdXAusW0GBXnshWQkQQhNd7OlQFArq4J//htfFHTmQdfXZ9Grs\n"
	"cobe17/hIR3dj0T8x+US6gqvD6F/dxJIVow1xGFisTgzCE45Se+XuxW5NKhvtpDB\n"
	"GcegIswppK4ZmMhclbu0I0vz02eXAgMBAAECgYEAp0mYWOXvb3Qdjx6cVVrO8T5H\n"
	"m2gJ1coFywJgPJVLf9EZ+X63CQYIo7/mPzl9sQP2e9FrEJ6SA7QDePizq1olXu/l\n"
	"4ZzSrdfYA8FG44trBkEmLHYkFByaAYWGDoKkTgNtDjw1fpXD6cqzkkj5KgVW01Aj\n"
	"TpxhLJAqrDJaIaJszJECQQDQ+Nc7BBROyktVEJFwof6NJlvpTyvyKMQGOn3bavLL\n"
	"AoAQYbgDmtfU6VLbPj+yDgjZjkq3+9kUrvcVaMkUmg5ZAkEAzg3KZY5TXI/S6dbU\n"
	"wgaOVI2DEpPRxFL9h0qKB+wH362ekVB0jwbTNs42Qbd26/4FH2I6zaf5pe/u920u\n"
	"puDHbwJAd5RNpUm6TTPZU739W9R3E1JF+gYCAbpuIZpK9soGUUEHA1jHsdhjdURm\n"
	"02qVjFAXpFaWTx3gpMNSRIAHwLA/UQJAbT3AdRD8vxD9F74us+L36HnR6LJ3vqbl\n"
	"BKoO/d4z2nFYpN/Lu9w5dE/lUffrU3grzRSt6kRIxaGrxn+bARwgfwJBAInx3rjK\n"
	"YyPHhqrRRyWp1Sgl/qxtluo4Q3bbwSKjul7ZqHhNTbtEqnj7cbFraqV0FwTCxTLW\n"
	"ZTNVJrQgMPdqSdU=\n"
	"-----END PRIVATE KEY-----\n";

/* ---- helpers ---- */

struct der {
	uint8_t data[4096];
	size_t len;
	char name[64];
	int count;
};

static int keep_first(void *ctx, const char *name, const uint8_t *der, size_t len)
{
	struct der *d = ctx;

	if (d->count++ == 0 && len <= sizeof(d->data)) {
		memcpy(d->data, der, len);
		d->len = len;
		snprintf(d->name, sizeof(d->name), "%s", name);
	}
	return 0;
}

static size_t der_of(const char *pem, struct der *d)
{
	memset(d, 0, sizeof(*d));
	if (pem_decode(pem, strlen(pem), keep_first, d) < 1) {
		return 0;
	}
	return d->len;
}

/* Write text to a new file in a fresh directory; returns its path. */
static const char *fixture(char *path, size_t cap, const char *name, const char *text)
{
	static char dir[64];
	FILE *f;

	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/tc-unit-tls-XXXXXX");
		if (mkdtemp(dir) == NULL) {
			return NULL;
		}
	}
	snprintf(path, cap, "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL) {
		return NULL;
	}
	fputs(text, f);
	fclose(f);
	return path;
}

static void hash_spki(const struct der *d, size_t step, uint8_t out[PIN_LEN], int *rc)
{
	struct pin_spki s;

	pin_spki_init(&s);
	for (size_t i = 0; i < d->len; i += step) {
		size_t n = d->len - i < step ? d->len - i : step;
		pin_spki_push(&s, d->data + i, n);
	}
	*rc = pin_spki_result(&s, out);
}

/* ---- pins ---- */

TEST(pin_parse_valid)
{
	uint8_t pins[PIN_MAX][PIN_LEN];
	size_t n = 0;

	CHECK(pin_parse(EC_PIN, pins, PIN_MAX, &n) == 0);
	CHECK(n == 1);
	CHECK(pins[0][0] == 0xa3 && pins[0][31] == 0x1a);
	/* padding optional, prefix any case, spaces around commas */
	CHECK(pin_parse("SHA256:o7DUlimd8N+K7ebjgXTDO14F4RhPHZXlqzvq/1ZnDho", pins, PIN_MAX, &n) == 0);
	CHECK(n == 1 && pins[0][0] == 0xa3);
	CHECK(pin_parse(EC_PIN ", " RSA_PIN, pins, PIN_MAX, &n) == 0);
	CHECK(n == 2 && pins[1][0] == 0x5c);
}

TEST(pin_parse_rejects)
{
	static const char *const bad[] = {
		"",
		"sha256:",
		"o7DUlimd8N+K7ebjgXTDO14F4RhPHZXlqzvq/1ZnDho=",          /* no prefix */
		"sha1:o7DUlimd8N+K7ebjgXTDO14F4RhPHZXlqzvq/1ZnDho=",     /* other hash */
		"sha256:o7DUlimd8N+K7ebjgXTDO14F4RhPHZXlqzvq/1ZnDg==",   /* 31 bytes */
		"sha256:o7DUlimd8N+K7ebjgXTDO14F4RhPHZXlqzvq/1ZnDhoA",   /* 33 bytes */
		"sha256:o7DUlimd8N+K7ebjgXTDO14F4RhPHZXlqzvq/1ZnDhp=",   /* stray bits */
		"sha256:o7DUlimd8N+K7ebjgXTDO14F4RhPHZXlqzvq_1ZnDho=",   /* url alphabet */
		"sha256:o7DUlimd8N+K7ebjgXTDO14F4RhPHZXlqzvq/1ZnDho==",  /* bad padding */
		"sha256:o7DUlimd8N+K7ebjgX TDO14F4RhPHZXlqzvq/1ZnDho=",  /* space inside */
		EC_PIN ",",                                              /* empty item */
		"sha256:abc",
	};
	uint8_t pins[PIN_MAX][PIN_LEN];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (pin_parse(bad[i], pins, PIN_MAX, &n) == 0) {
			fprintf(stderr, "  accepted bad pin %zu: %s\n", i, bad[i]);
			CHECK(0);
		}
	}
	/* more pins than room */
	CHECK(pin_parse(EC_PIN "," RSA_PIN, pins, 1, &n) != 0);
}

TEST(pin_spki_matches_openssl)
{
	uint8_t want[PIN_MAX][PIN_LEN];
	uint8_t got[PIN_LEN];
	struct der d;
	size_t n;
	int rc;

	CHECK(pin_parse(EC_PIN "," RSA_PIN, want, PIN_MAX, &n) == 0);
	CHECK(der_of(EC_CRT, &d) > 0);
	CHECK_STR(d.name, "CERTIFICATE");
	/* whole, one byte at a time, odd pieces: same hash */
	size_t steps[] = {d.len, 1, 7, 100};
	for (size_t i = 0; i < 4; i++) {
		memset(got, 0, sizeof(got));
		hash_spki(&d, steps[i], got, &rc);
		CHECK(rc == 0);
		CHECK_MEM(got, want[0], PIN_LEN);
	}
	CHECK(der_of(RSA_CRT, &d) > 0);
	hash_spki(&d, 3, got, &rc);
	CHECK(rc == 0);
	CHECK_MEM(got, want[1], PIN_LEN);
}

TEST(pin_spki_rejects_truncated_and_garbage)
{
	uint8_t got[PIN_LEN];
	struct der d;
	int rc;

	CHECK(der_of(EC_CRT, &d) > 0);
	d.len = 120; /* ends inside the SPKI */
	hash_spki(&d, 1, got, &rc);
	CHECK(rc != 0);
	memset(d.data, 0x04, 64); /* OCTET STRING, not a SEQUENCE */
	d.len = 64;
	hash_spki(&d, 5, got, &rc);
	CHECK(rc != 0);
	d.data[0] = 0x30;
	d.data[1] = 0x80; /* indefinite length */
	hash_spki(&d, 5, got, &rc);
	CHECK(rc != 0);
}

/* ---- validation clock ---- */

TEST(validation_time)
{
	uint32_t days, secs;

	CHECK(tls_client_validation_time(0, 0, &days, &secs) == 0);
	CHECK(days == 719528 && secs == 0); /* 1970-01-01 */
	/* 2000-01-01T00:00:01Z = 946684801 */
	CHECK(tls_client_validation_time(946684801, 0, &days, &secs) == 0);
	CHECK(days == 730485 && secs == 1);
	/* a clock at 1970 with a 2024 build: the build date is used */
	CHECK(tls_client_validation_time(12, 1704067200, &days, &secs) == 1);
	CHECK(days == 719528 + 1704067200 / 86400 && secs == 0);
	/* a clock after the build date is trusted as is */
	CHECK(tls_client_validation_time(1704067200 + 86399, 1704067200, &days, &secs) == 0);
	CHECK(days == 719528 + 1704067200 / 86400 && secs == 86399);
	CHECK(tls_client_validation_time(-5, -10, &days, &secs) == 0);
	CHECK(days == 719528 && secs == 0);
}

/* ---- PEM ---- */

static int count_names(void *ctx, const char *name, const uint8_t *der, size_t len)
{
	char *names = ctx;
	size_t n = strlen(names);

	snprintf(names + n, 256 - n, "%s%s:%zu", n > 0 ? "," : "", name, len);
	return 0;
}

TEST(pem_decode_objects)
{
	char names[256] = "";
	const char *text = "junk before\n-----BEGIN FOO-----\nAAEC\n-----END FOO-----\n"
			   "between\n-----BEGIN BAR BAZ-----\r\nAAECAw==\r\n-----END BAR BAZ-----";

	/* the last line has no newline: accepted */
	CHECK(pem_decode(text, strlen(text), count_names, names) == 2);
	if (strcmp(names, "FOO:3,BAR BAZ:4") != 0) {
		fprintf(stderr, "  names: %s\n", names);
	}
	CHECK_STR(names, "FOO:3,BAR BAZ:4");
	names[0] = '\0';
	CHECK(pem_decode("", 0, count_names, names) == 0);
	CHECK(pem_decode("no pem here\n", 12, count_names, names) == 0);
}

TEST(pem_decode_errors)
{
	char names[256] = "";
	const char *unfinished = "-----BEGIN FOO-----\nAAEC\n";
	const char *badb64 = "-----BEGIN FOO-----\nAA!C\n-----END FOO-----\n";

	CHECK(pem_decode(unfinished, strlen(unfinished), count_names, names) == PEM_ERR_SYNTAX);
	CHECK(pem_decode(badb64, strlen(badb64), count_names, names) == PEM_ERR_SYNTAX);
	CHECK(strlen(pem_strerror(PEM_ERR_SYNTAX)) > 0);
}

TEST(pem_load_errors_name_the_file)
{
	char path[256];
	char err[256];
	br_x509_trust_anchor *ta;
	br_x509_certificate *chain;
	struct pem_key key;
	size_t n;

	CHECK(pem_load_anchors("/nonexistent/ca.pem", "--ca-file /nonexistent/ca.pem", 1, &ta,
			       &n, err, sizeof(err)) == -1);
	CHECK(strstr(err, "--ca-file /nonexistent/ca.pem") != NULL);
	CHECK(strstr(err, "No such file") != NULL);

	CHECK(fixture(path, sizeof(path), "key-only.pem", EC_KEY) != NULL);
	CHECK(pem_load_anchors(path, "--ca-file X", 1, &ta, &n, err, sizeof(err)) == -1);
	CHECK(strstr(err, "no certificate") != NULL);
	CHECK(pem_load_chain(path, "--tls-cert X", &chain, &n, err, sizeof(err)) == -1);
	CHECK(strstr(err, "--tls-cert X: no certificate") != NULL);

	CHECK(fixture(path, sizeof(path), "cert-only.pem", EC_CRT) != NULL);
	CHECK(pem_load_key(path, "--tls-key X", &key, err, sizeof(err)) == -1);
	CHECK(strstr(err, "no private key") != NULL);

	CHECK(fixture(path, sizeof(path), "broken.pem",
		      "-----BEGIN CERTIFICATE-----\nMIIB\n") != NULL);
	CHECK(pem_load_anchors(path, "--ca-file X", 1, &ta, &n, err, sizeof(err)) == -1);
	CHECK(strstr(err, "malformed PEM") != NULL);

	/* a certificate-shaped object BearSSL cannot decode */
	CHECK(fixture(path, sizeof(path), "garbage-cert.pem",
		      "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n") != NULL);
	CHECK(pem_load_anchors(path, "--ca-file X", 1, &ta, &n, err, sizeof(err)) == -1);
	CHECK(strstr(err, "cannot be decoded") != NULL);
	CHECK(pem_load_anchors(path, "bundle", 0, &ta, &n, err, sizeof(err)) == -1);
	CHECK(strstr(err, "none of its 1 certificates") != NULL);

	CHECK(fixture(path, sizeof(path), "encrypted.pem",
		      "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAEC\n"
		      "-----END ENCRYPTED PRIVATE KEY-----\n") != NULL);
	CHECK(pem_load_key(path, "--tls-key X", &key, err, sizeof(err)) == -1);
	CHECK(strstr(err, "encrypted") != NULL);
}

TEST(pem_load_anchors_and_keys)
{
	char path[256];
	char err[256] = "";
	char both[4096];
	br_x509_trust_anchor *ta = NULL;
	br_x509_certificate *chain = NULL;
	struct pem_key key, other, rsa;
	size_t n = 0, nchain = 0;

	snprintf(both, sizeof(both), "%s%s", EC_CRT, RSA_CRT);
	CHECK(fixture(path, sizeof(path), "two.pem", both) != NULL);
	CHECK(pem_load_anchors(path, "--ca-file X", 1, &ta, &n, err, sizeof(err)) == 0);
	CHECK(n == 2);
	if (n == 2) {
		CHECK(ta[0].pkey.key_type == BR_KEYTYPE_EC);
		CHECK(ta[0].pkey.key.ec.curve == BR_EC_secp256r1);
		CHECK(ta[0].flags == BR_X509_TA_CA); /* openssl req -x509 sets CA:TRUE */
		CHECK(ta[1].pkey.key_type == BR_KEYTYPE_RSA);
		CHECK(ta[1].dn.len > 0);
	}
	pem_free_anchors(ta, n);

	CHECK(pem_load_chain(path, "--tls-cert X", &chain, &nchain, err, sizeof(err)) == 0);
	CHECK(nchain == 2);
	CHECK(fixture(path, sizeof(path), "ec.key", EC_KEY) != NULL);
	CHECK(pem_load_key(path, "--tls-key X", &key, err, sizeof(err)) == 0);
	CHECK(key.type == BR_KEYTYPE_EC);
	CHECK(fixture(path, sizeof(path), "other.key", OTHER_EC_KEY) != NULL);
	CHECK(pem_load_key(path, "--tls-key X", &other, err, sizeof(err)) == 0);
	CHECK(fixture(path, sizeof(path), "rsa.key", RSA_KEY) != NULL);
	CHECK(pem_load_key(path, "--tls-key X", &rsa, err, sizeof(err)) == 0);
	CHECK(rsa.type == BR_KEYTYPE_RSA);
	if (nchain == 2) {
		CHECK(pem_key_matches(&key, &chain[0], &br_ec_all_m31) == 1);
		CHECK(pem_key_matches(&other, &chain[0], &br_ec_all_m31) == 0);
		CHECK(pem_key_matches(&rsa, &chain[0], &br_ec_all_m31) == 0);
		CHECK(pem_key_matches(&rsa, &chain[1], &br_ec_all_m31) == 1);
		CHECK(pem_key_matches(&key, &chain[1], &br_ec_all_m31) == 0);
	}
	pem_free_key(&key);
	pem_free_key(&other);
	pem_free_key(&rsa);
	pem_free_chain(chain, nchain);
}

/* ---- tls_client_config_load ---- */

static int load(const char *url_text, struct config *cfg, char *err, size_t errlen)
{
	struct url url;
	struct tls_config *tc = NULL;
	int rc;

	if (url_parse(url_text, &url, err, errlen) != 0) {
		return -2;
	}
	rc = tls_client_config_load(&tc, cfg, &url, err, errlen);
	CHECK((rc == 0) == (tc != NULL));
	tls_client_config_free(tc);
	return rc;
}

TEST(config_load_checks)
{
	struct config cfg;
	char path[256], keypath[256], other[256];
	char err[256];

	memset(&cfg, 0, sizeof(cfg));
	cfg.tls_pin = "sha256:nope";
	CHECK(load("wss://runner.example", &cfg, err, sizeof(err)) == -1);
	CHECK(strstr(err, "--tls-pin") != NULL);

	/* an IP URL cannot be checked against a CA: say what to pass */
	memset(&cfg, 0, sizeof(cfg));
	CHECK(fixture(path, sizeof(path), "ca.pem", EC_CRT) != NULL);
	cfg.ca_file = path;
	CHECK(load("wss://127.0.0.1:8443", &cfg, err, sizeof(err)) == -1);
	CHECK(strstr(err, "--tls-server-name") != NULL);
	CHECK(load("wss://[::1]:8443", &cfg, err, sizeof(err)) == -1);
	cfg.tls_server_name = "unit.example";
	CHECK(load("wss://127.0.0.1:8443", &cfg, err, sizeof(err)) == 0);
	cfg.tls_server_name = "10.0.0.1";
	CHECK(load("wss://runner.example", &cfg, err, sizeof(err)) == -1);
	cfg.tls_server_name = "";
	CHECK(load("wss://runner.example", &cfg, err, sizeof(err)) == -1);

	/* ... but a pin or --insecure needs no name */
	memset(&cfg, 0, sizeof(cfg));
	cfg.tls_pin = EC_PIN;
	CHECK(load("wss://127.0.0.1:8443", &cfg, err, sizeof(err)) == 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.insecure = 1;
	CHECK(load("wss://127.0.0.1:8443", &cfg, err, sizeof(err)) == 0);

	memset(&cfg, 0, sizeof(cfg));
	cfg.ca_file = "/nonexistent/ca.pem";
	CHECK(load("wss://runner.example", &cfg, err, sizeof(err)) == -1);
	CHECK(strstr(err, "--ca-file /nonexistent/ca.pem") != NULL);

	/* client certificate and key */
	memset(&cfg, 0, sizeof(cfg));
	cfg.insecure = 1;
	CHECK(fixture(path, sizeof(path), "client.crt", EC_CRT) != NULL);
	CHECK(fixture(keypath, sizeof(keypath), "client.key", EC_KEY) != NULL);
	CHECK(fixture(other, sizeof(other), "client-other.key", OTHER_EC_KEY) != NULL);
	cfg.tls_cert = path;
	CHECK(load("wss://runner.example", &cfg, err, sizeof(err)) == -1);
	CHECK(strstr(err, "together") != NULL);
	cfg.tls_key = keypath;
	CHECK(load("wss://runner.example", &cfg, err, sizeof(err)) == 0);
	cfg.tls_key = other;
	CHECK(load("wss://runner.example", &cfg, err, sizeof(err)) == -1);
	CHECK(strstr(err, "does not match") != NULL);
	cfg.tls_key = "/nonexistent/key.pem";
	CHECK(load("wss://runner.example", &cfg, err, sizeof(err)) == -1);
	CHECK(strstr(err, "--tls-key /nonexistent/key.pem") != NULL);
}
