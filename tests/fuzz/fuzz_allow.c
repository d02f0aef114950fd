/* libFuzzer target: --allow-ports (src/agent/allow.c).
 *
 * Input: the list (up to the first NUL), then ports to ask about (two
 * bytes each, the proto in the top bit of the first).
 *
 * Checked besides the sanitizers: a list that parses has 1 to
 * TC_ALLOW_MAX entries, each with ports 1-65535, lo <= hi and a proto;
 * allow_match agrees with a plain reading of the entries; a list that
 * does not parse leaves nothing behind (every port allowed). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "allow.h"
#include "fz_frames.h"
#include "fz_in.h"
#include "tunnel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size, 0};
	struct allow a;
	size_t n;
	const uint8_t *p = fz_in_part(&in, &n);
	char *s = malloc(n + 1);

	if (s == NULL) {
		return 0;
	}
	memcpy(s, p, n);
	s[n] = '\0';
	memset(&a, 0xa5, sizeof(a));
	int r = allow_parse(s, &a);
	if (r != 0 && a.n != 0) {
		fz_fail("allow_parse: a refused list left entries");
	}
	if (r == 0) {
		if (a.n == 0 || a.n > TC_ALLOW_MAX) {
			fz_fail("allow_parse: entry count out of range");
		}
		for (size_t i = 0; i < a.n; i++) {
			if (a.r[i].lo == 0 || a.r[i].lo > a.r[i].hi || a.r[i].protos == 0 ||
			    a.r[i].protos > 3) {
				fz_fail("allow_parse: a bad entry");
			}
		}
	}
	while (fz_in_more(&in)) {
		uint16_t v = fz_in_u16(&in);
		uint8_t proto = v >> 15 ? TUNNEL_UDP : TUNNEL_TCP;
		/* The port as given, and with its top bit set (high ports). */
		for (int high = 0; high < 2 && r == 0; high++) {
			uint16_t port = (uint16_t)((v & 0x7fff) | (high ? 0x8000 : 0));
			int want = 0;
			for (size_t i = 0; i < a.n && !want; i++) {
				want = (a.r[i].protos & (proto == TUNNEL_UDP ? 2 : 1)) &&
				       port >= a.r[i].lo && port <= a.r[i].hi;
			}
			if (allow_match(&a, proto, port) != want) {
				fz_fail("allow_match disagrees with the entries");
			}
		}
		if (r != 0 && !allow_match(&a, proto, v & 0x7fff)) {
			fz_fail("allow_match: a refused list must allow every port");
		}
	}
	free(s);
	return 0;
}
