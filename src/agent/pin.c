#include "pin.h"

#include <string.h>
#include <strings.h>

#define PIN_PREFIX "sha256:"

/* Value of a standard base64 digit, or -1. */
static int b64_digit(char c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	if (c == '+') {
		return 62;
	}
	if (c == '/') {
		return 63;
	}
	return -1;
}

/* Decode s[0..len) (standard alphabet, padding optional but, if present,
 * correct) into exactly PIN_LEN bytes. 0 or -1. */
static int b64_pin(const char *s, size_t len, uint8_t out[PIN_LEN])
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t n = 0;
	size_t pad = 0;

	while (len > 0 && s[len - 1] == '=') {
		len--;
		pad++;
	}
	if (pad > 2 || (pad > 0 && (len + pad) % 4 != 0)) {
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		int d = b64_digit(s[i]);
		if (d < 0) {
			return -1;
		}
		acc = (acc << 6) | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == PIN_LEN) {
				return -1;
			}
			out[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero padding of the last digit. */
	if (n != PIN_LEN || bits >= 6 || acc != 0) {
		return -1;
	}
	return 0;
}

int pin_parse(const char *s, uint8_t (*pins)[PIN_LEN], size_t max, size_t *n)
{
	size_t count = 0;
	size_t plen = strlen(PIN_PREFIX);

	for (;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);

		while (len > 0 && *s == ' ') {
			s++;
			len--;
		}
		while (len > 0 && s[len - 1] == ' ') {
			len--;
		}
		if (count == max || len < plen || strncasecmp(s, PIN_PREFIX, plen) != 0) {
			return -1;
		}
		if (b64_pin(s + plen, len - plen, pins[count]) != 0) {
			return -1;
		}
		count++;
		if (comma == NULL) {
			break;
		}
		s = comma + 1;
	}
	*n = count;
	return 0;
}

void pin_spki_init(struct pin_spki *s)
{
	memset(s, 0, sizeof(*s));
	br_sha256_init(&s->sha);
	s->state = PIN_SPKI_HDR;
	s->hdr_need = 2;
}

/* A complete header is in s->hdr: decide what to do with the element. */
static void spki_element(struct pin_spki *s)
{
	uint8_t tag = s->hdr[0];
	uint32_t len = 0;

	if (s->hdr[1] < 0x80) {
		len = s->hdr[1];
	} else {
		for (size_t i = 2; i < s->hdr_len; i++) {
			len = (len << 8) | s->hdr[i];
		}
	}
	s->remain = len;
	s->hdr_len = 0;
	s->hdr_need = 2;
	if (s->elem < 2) {
		/* Certificate and tbsCertificate: SEQUENCEs we step into. */
		if (tag != 0x30) {
			s->state = PIN_SPKI_ERROR;
			return;
		}
		s->elem++;
		s->state = PIN_SPKI_HDR;
		return;
	}
	if (s->elem == 2 && tag == 0xA0) {
		/* [0] EXPLICIT version: optional, not counted. */
		s->state = len > 0 ? PIN_SPKI_SKIP : PIN_SPKI_HDR;
		return;
	}
	if (s->elem < 7) {
		/* serial, signature, issuer, validity, subject */
		s->elem++;
		s->state = len > 0 ? PIN_SPKI_SKIP : PIN_SPKI_HDR;
		return;
	}
	/* subjectPublicKeyInfo: hash header and content. */
	if (tag != 0x30) {
		s->state = PIN_SPKI_ERROR;
		return;
	}
	s->state = PIN_SPKI_HASH;
}

void pin_spki_push(struct pin_spki *s, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 0) {
		size_t k;

		switch (s->state) {
		case PIN_SPKI_HDR:
			s->hdr[s->hdr_len++] = *p++;
			len--;
			if (s->hdr_len == 1 && (s->hdr[0] & 0x1f) == 0x1f) {
				s->state = PIN_SPKI_ERROR; /* high tag number */
				break;
			}
			if (s->hdr_len == 2 && s->hdr[1] >= 0x80) {
				size_t nlen = s->hdr[1] & 0x7f;
				if (nlen == 0 || nlen > 4) {
					s->state = PIN_SPKI_ERROR; /* indefinite or huge */
					break;
				}
				s->hdr_need = 2 + nlen;
			}
			if (s->hdr_len == s->hdr_need) {
				if (s->elem == 7) {
					br_sha256_update(&s->sha, s->hdr, s->hdr_len);
				}
				spki_element(s);
				if (s->state == PIN_SPKI_HASH && s->remain == 0) {
					s->state = PIN_SPKI_DONE;
				}
			}
			break;
		case PIN_SPKI_SKIP:
		case PIN_SPKI_HASH:
			k = len < s->remain ? len : s->remain;
			if (s->state == PIN_SPKI_HASH) {
				br_sha256_update(&s->sha, p, k);
			}
			p += k;
			len -= k;
			s->remain -= (uint32_t)k;
			if (s->remain == 0) {
				s->state = s->state == PIN_SPKI_HASH ? PIN_SPKI_DONE : PIN_SPKI_HDR;
			}
			break;
		case PIN_SPKI_DONE:
		case PIN_SPKI_ERROR:
			return;
		}
	}
}

int pin_spki_result(const struct pin_spki *s, uint8_t out[PIN_LEN])
{
	if (s->state != PIN_SPKI_DONE) {
		return -1;
	}
	br_sha256_out(&s->sha, out);
	return 0;
}
