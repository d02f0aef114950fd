/* libFuzzer target: src/common/http.c, the request-head parser of the
 * status endpoints (tunnel-server's --admin, the agent's status port),
 * and the escapers their answers put peer text through.
 *
 * Checked besides the sanitizers: a whole head's parts lie inside the
 * bytes given and within the limit; feeding a prefix never contradicts
 * the whole (a prefix that is complete or malformed stays so); header
 * lookups stay inside the fields; every escape mode writes valid UTF-8,
 * NUL-terminated, within its capacity, and reports the full length. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fz_frames.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEAD 4096

/* Non-zero if s[0..n) is well-formed UTF-8. */
static int utf8_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		if (k == 0 || i + k > n || (k == 2 && c < 0xc2) || c > 0xf4) {
			return 0;
		}
		for (size_t j = 1; j < k; j++) {
			if ((s[i + j] & 0xc0) != 0x80) {
				return 0;
			}
		}
		if (k == 3) {
			unsigned cp = (unsigned)(c & 0x0f) << 12 | (unsigned)(s[i + 1] & 0x3f) << 6;
			if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) {
				return 0;
			}
		}
		if (k == 4) {
			unsigned cp = (unsigned)(c & 0x07) << 18 | (unsigned)(s[i + 1] & 0x3f) << 12;
			if (cp < 0x10000 || cp > 0x10ffff) {
				return 0;
			}
		}
		i += k;
	}
	return 1;
}

static void check_escape(const char *src, size_t n, size_t cap)
{
	static const enum http_escape modes[] = {HTTP_ESC_JSON, HTTP_ESC_HTML, HTTP_ESC_LABEL};
	char *out = malloc(cap + 1);

	for (size_t m = 0; m < 3 && out != NULL; m++) {
		/* 0xff is never in UTF-8: what is still 0xff was not written. */
		memset(out, 0xff, cap + 1);
		size_t full = http_escape(out, cap, src, n, modes[m]);
		if (cap == 0) {
			if ((unsigned char)out[0] != 0xff) {
				fz_fail("http_escape wrote into a zero-capacity buffer");
			}
			continue;
		}
		size_t len = cap;
		while (len > 0 && (unsigned char)out[len] == 0xff) {
			len--;
		}
		/* out[len] is the NUL after what was written (which may hold
		 * NULs of its own: a raw NUL is valid UTF-8). */
		if (out[len] != '\0' || len >= cap || len > full || (full < cap && len != full)) {
			fz_fail("http_escape: not terminated within its capacity, or a wrong length");
		}
		if (!utf8_ok((const unsigned char *)out, len)) {
			fz_fail("http_escape: output is not valid UTF-8");
		}
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)out[i];
			if (modes[m] == HTTP_ESC_JSON && (c < 0x20 || c == 0x7f)) {
				fz_fail("http_escape JSON: a raw control byte");
			}
			if (modes[m] == HTTP_ESC_HTML && c != 0 && strchr("<>\"'", c) != NULL) {
				fz_fail("http_escape HTML: a raw < > \" '");
			}
			if (modes[m] == HTTP_ESC_LABEL && c == '\n') {
				fz_fail("http_escape label: a raw newline");
			}
		}
	}
	free(out);
}

static void check_head(const uint8_t *p, size_t n, const struct http_request *r)
{
	const char *s = (const char *)p;
	size_t vlen;
	const char *v;

	if (r->consumed > n || r->consumed > MAX_HEAD || r->method_len == 0 ||
	    r->method < s || r->method + r->method_len > s + r->consumed || r->target < s || r->target + r->target_len > s + r->consumed ||
	    (r->minor != 0 && r->minor != 1) || r->fields < s ||
	    r->fields + r->fields_len > s + r->consumed || http_path_len(r) > r->target_len) {
		fz_fail("http_parse_request: parts outside the head");
	}
	static const char *const names[] = {"Host", "connection", "X", "content-length"};
	for (size_t i = 0; i < 4; i++) {
		v = http_header(r, names[i], &vlen);
		if (v != NULL && (v < r->fields || v + vlen > r->fields + r->fields_len)) {
			fz_fail("http_header: a value outside the fields");
		}
	}
	(void)http_method_is(r, "GET");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request whole;
	struct http_request part;
	enum http_result rw;

	if (size == 0) {
		return 0;
	}
	size_t cap = data[0];
	const uint8_t *p = data + 1;
	size_t n = size - 1;

	rw = http_parse_request(p, n, MAX_HEAD, &whole);
	if (rw == HTTP_DONE) {
		check_head(p, n, &whole);
	}
	if (rw == HTTP_ERR_TOO_BIG && n < MAX_HEAD) {
		fz_fail("http_parse_request: too big below the limit");
	}
	/* Prefixes: every one for short inputs, a few for long ones. */
	for (size_t k = 0; k < n; k += n <= 300 ? 1 : 1 + n / 16) {
		enum http_result rp = http_parse_request(p, k, MAX_HEAD, &part);
		if (rp == HTTP_DONE && (rw != HTTP_DONE || part.consumed != whole.consumed)) {
			fz_fail("http_parse_request: a complete prefix, then a different whole");
		}
		if (rp == HTTP_ERR_MALFORMED && rw != HTTP_ERR_MALFORMED) {
			fz_fail("http_parse_request: a malformed prefix, then a whole that is not");
		}
	}
	check_escape((const char *)p, n, cap);
	check_escape((const char *)p, n, 4 * n + 8);
	(void)http_strerror(rw);
	return 0;
}
