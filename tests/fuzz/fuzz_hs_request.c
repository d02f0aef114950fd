/* libFuzzer target: the server's side of the WebSocket upgrade
 * (src/common/handshake.c): hs_parse_request on what an agent sends, and
 * the answers built from it.
 *
 * Checked besides the sanitizers: a prefix never contradicts the whole
 * (complete means complete at the same length; an error stays an error);
 * a parsed request's fields are NUL-terminated within their arrays, the
 * path starts with '/' and the key is not empty (a key of 24 bytes with a
 * NUL in it passes today: tests/fuzz/findings/); the 101 answer and
 * every refusal fit their buffer and are HTTP. */
#include <stdint.h>
#include <string.h>

#include "bounds.h"
#include "fz_frames.h"
#include "handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const struct hs_request *r)
{
	char resp[256];
	int n;

	if (strnlen(r->path, sizeof(r->path)) == sizeof(r->path) ||
	    strnlen(r->user_agent, sizeof(r->user_agent)) == sizeof(r->user_agent) ||
	    strnlen(r->authorization, sizeof(r->authorization)) == sizeof(r->authorization) ||
	    strnlen(r->key, sizeof(r->key)) > HS_KEY_LEN || r->key[0] == '\0' || r->path[0] != '/') {
		fz_fail("hs_parse_request: a field not terminated, a path without '/', a bad key");
	}
	n = hs_response_101(resp, sizeof(resp), r->key);
	if (n <= 0 || (size_t)n >= sizeof(resp) || strncmp(resp, "HTTP/1.1 101 ", 13) != 0 ||
	    strstr(resp, "Sec-WebSocket-Accept: ") == NULL) {
		fz_fail("hs_response_101: not a 101 answer");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int statuses[] = {400, 401, 404, 426, 431, 503};
	struct hs_request whole;
	struct hs_request part;
	size_t used = 0;
	size_t pused = 0;
	enum hs_result rw = hs_parse_request(data, size, TS_REQUEST_MAX, &whole, &used);
	char resp[256];

	if (rw == HS_DONE) {
		if (used > size || used > TS_REQUEST_MAX) {
			fz_fail("hs_parse_request: consumed more than it was given");
		}
		check_request(&whole);
	}
	for (size_t k = 0; k < size; k += size <= 300 ? 1 : 1 + size / 16) {
		enum hs_result rp = hs_parse_request(data, k, TS_REQUEST_MAX, &part, &pused);
		if (rp == HS_DONE && (rw != HS_DONE || pused != used)) {
			fz_fail("hs_parse_request: a complete prefix, then a different whole");
		}
		if (rp < 0 && rp != HS_ERR_TOO_BIG && rw != rp) {
			fz_fail("hs_parse_request: a prefix fails, the whole fails otherwise");
		}
	}
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		int n = hs_response_refuse(resp, sizeof(resp), statuses[i], hs_strerror(rw));
		if (n <= 0 || strncmp(resp, "HTTP/1.1 ", 9) != 0) {
			fz_fail("hs_response_refuse: not an HTTP answer");
		}
	}
	return 0;
}
