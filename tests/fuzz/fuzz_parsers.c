/* libFuzzer target for the pure codecs: the first input byte picks the
 * parser, the rest is its input. Run by `./build.sh fuzz` under ASan and
 * UBSan; any crash, hang or sanitizer report is a failure.
 *   0: tunnel_parse        the runner's 8-byte header
 *   1: hs_parse_response   the 101 upgrade response (also byte by byte)
 *   2: url_parse + url_tunnel_path + url_host_header
 *   3: num_parse_u64 / num_parse_seconds
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fz_in.h"
#include "handshake.h"
#include "num.h"
#include "tunnel.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_handshake(const uint8_t *p, size_t n)
{
	static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
	size_t used = 0;
	int status;
	enum hs_result whole = hs_parse_response(p, n, 8192, key, &used, &status);

	if (whole == HS_DONE && used > n) {
		abort();
	}
	/* Feeding a growing prefix must end in the same verdict. */
	for (size_t k = 0; k <= n && k < 512; k++) {
		enum hs_result r = hs_parse_response(p, k, 8192, key, &used, &status);
		if (r == HS_DONE && used > k) {
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[160];
	char out[URL_PATH_MAX];
	struct tunnel_msg m;
	struct url u;
	uint64_t v;
	char *s;

	if (size == 0) {
		return 0;
	}
	switch (data[0] % 4) {
	case 0:
		if (tunnel_parse(data + 1, size - 1, &m) == TUNNEL_OK &&
		    m.payload_len + TUNNEL_HDR_LEN != size - 1) {
			abort();
		}
		break;
	case 1:
		fuzz_handshake(data + 1, size - 1);
		break;
	case 2:
		s = fz_cstr(data + 1, size - 1);
		if (s != NULL && url_parse(s, &u, err, sizeof(err)) == 0) {
			url_tunnel_path(&u, s, out, sizeof(out));
			url_host_header(&u, out, sizeof(out));
			if (u.port == 0 || strlen(u.host) == 0) {
				abort();
			}
		}
		free(s);
		break;
	default:
		s = fz_cstr(data + 1, size - 1);
		if (s != NULL) {
			num_parse_u64(s, 0, UINT64_MAX, &v);
			num_parse_seconds(s, 86400000, &v);
		}
		free(s);
		break;
	}
	return 0;
}
