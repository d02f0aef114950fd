/* libFuzzer target: the HTTP CONNECT proxy code of the agent
 * (src/agent/proxy.c): the proxy's answer (proxy_parse_response), the
 * proxy URL from --proxy (proxy_select, then the CONNECT request built
 * from it) and the NO_PROXY list (proxy_bypass).
 *
 * Input: one byte picks the part, the rest is its input (for the URL and
 * NO_PROXY: two NUL-separated strings).
 *
 * Checked besides the sanitizers: an answer's header length lies within
 * the bytes and the limit, a prefix never contradicts the whole, the
 * status of a complete answer is a 3-digit code; a selected proxy has a
 * host and a port, its request starts with CONNECT and ends its head;
 * "*" bypasses everything, an entry equal to the host bypasses it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fz_frames.h"
#include "fz_in.h"
#include "proxy.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ANSWER 8192

static void answer(const uint8_t *p, size_t n)
{
	int status = 0;
	int ps = 0;
	size_t used = 0;
	size_t pused = 0;
	enum proxy_result rw = proxy_parse_response(p, n, MAX_ANSWER, &status, &used);

	if ((rw == PROXY_DONE || rw == PROXY_ERR_STATUS) && (status < 100 || status > 599)) {
		fz_fail("proxy_parse_response: a status that is not 3 digits");
	}
	if (rw == PROXY_DONE && (used > n || used > MAX_ANSWER || status / 100 != 2)) {
		fz_fail("proxy_parse_response: done with a bad length or status");
	}
	for (size_t k = 0; k < n; k += n <= 300 ? 1 : 1 + n / 16) {
		enum proxy_result rp = proxy_parse_response(p, k, MAX_ANSWER, &ps, &pused);
		if ((rp == PROXY_DONE || rp == PROXY_ERR_STATUS) && (rp != rw || ps != status)) {
			fz_fail("proxy_parse_response: a complete prefix, then a different whole");
		}
		if (rp == PROXY_ERR_NOT_HTTP && rw != PROXY_ERR_NOT_HTTP) {
			fz_fail("proxy_parse_response: a prefix is not HTTP, the whole is");
		}
	}
}

static void select_and_request(struct fz_in *in)
{
	struct url runner;
	struct proxy px;
	char err[256];
	char req[URL_HOST_MAX + URL_AUTH_MAX + 256];
	size_t n;
	const uint8_t *p = fz_in_part(in, &n);
	char *flag = fz_cstr(p, n);
	p = fz_in_part(in, &n);
	char *target = fz_cstr(p, n);

	if (flag == NULL || target == NULL) {
		goto out;
	}
	if (url_parse(target, &runner, err, sizeof(err)) != 0 &&
	    url_parse("wss://[::1]:8443/base", &runner, err, sizeof(err)) != 0) {
		fz_fail("url_parse: a valid URL refused");
	}
	int r = proxy_select(flag, &runner, &px, err, sizeof(err));
	if (r < 0 && strnlen(err, sizeof(err)) == sizeof(err)) {
		fz_fail("proxy_select: an error not terminated");
	}
	if (r > 0) {
		if (px.url.host[0] == '\0' || px.url.port == 0 || px.url.userinfo[0] != '\0') {
			fz_fail("proxy_select: no host or port, or user info kept");
		}
		int len = proxy_request(&px, runner.host, runner.ipv6, runner.port, req, sizeof(req));
		if (len > 0 && (strncmp(req, "CONNECT ", 8) != 0 || (size_t)len != strlen(req) ||
				len < 4 || memcmp(req + len - 4, "\r\n\r\n", 4) != 0)) {
			fz_fail("proxy_request: not a CONNECT request head");
		}
	}
out:
	free(flag);
	free(target);
}

static void bypass(struct fz_in *in)
{
	size_t n;
	const uint8_t *p = fz_in_part(in, &n);
	char *list = fz_cstr(p, n);
	p = fz_in_part(in, &n);
	char *host = fz_cstr(p, n);

	if (list != NULL && host != NULL) {
		int r = proxy_bypass(list, host);
		int same = host[0] != '\0' && host[0] != '.' && strcmp(list, host) == 0 &&
			   strpbrk(host, ", \t") == NULL;
		if ((strcmp(list, "*") == 0 || same) && !r) {
			fz_fail("proxy_bypass: * or the host itself does not bypass");
		}
	}
	free(list);
	free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size, 0};

	switch (fz_in_u8(&in) % 3) {
	case 0:
		answer(data + in.off, size - in.off);
		break;
	case 1:
		select_and_request(&in);
		break;
	default:
		bypass(&in);
		break;
	}
	return 0;
}
