#include "handshake.h"
#include "unit.h"

#include <stdio.h>

/* RFC 6455 section 1.3 sample. */
static const char rfc_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char rfc_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

TEST(handshake_rfc6455_sample_accept)
{
	char accept[HS_ACCEPT_LEN + 1];
	char key[HS_KEY_LEN + 1];

	hs_accept_for(rfc_key, accept);
	CHECK_STR(accept, rfc_accept);
	hs_make_key((const uint8_t *)"the sample nonce", key);
	CHECK_STR(key, rfc_key);
}

TEST(handshake_request_has_required_headers)
{
	char req[512];
	int n = hs_request(req, sizeof(req), "[::1]:8001", "/ws/tunnel/x", rfc_key,
			   "Authorization: Bearer t0k\r\n");

	CHECK(n > 0 && (size_t)n == strlen(req));
	CHECK(strncmp(req, "GET /ws/tunnel/x HTTP/1.1\r\n", 27) == 0);
	CHECK(strstr(req, "\r\nHost: [::1]:8001\r\n") != NULL);
	CHECK(strstr(req, "\r\nUpgrade: websocket\r\n") != NULL);
	CHECK(strstr(req, "\r\nConnection: Upgrade\r\n") != NULL);
	CHECK(strstr(req, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
	CHECK(strstr(req, rfc_key) != NULL);
	CHECK(strstr(req, "\r\nUser-Agent: tunnel-client/" TC_VERSION " (") != NULL);
	CHECK(strstr(req, "\r\nAuthorization: Bearer t0k\r\n\r\n") != NULL);
	CHECK(n >= 4 && strcmp(req + n - 4, "\r\n\r\n") == 0);
	CHECK(hs_request(req, 40, "h", "/p", rfc_key, "") == -1);
}

static const char good[] =
	"HTTP/1.1 101 Switching Protocols\r\n"
	"upgrade: WebSocket\r\n"
	"Connection: keep-alive, Upgrade\r\n"
	"Sec-WebSocket-Accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n"
	"\r\n"
	"\x82\x00";

TEST(handshake_response_byte_by_byte)
{
	size_t hdr = sizeof(good) - 1 - 2; /* two frame bytes follow */
	size_t used = 0;
	int status = 0;

	for (size_t n = 0; n < hdr; n++) {
		CHECK(hs_parse_response((const uint8_t *)good, n, 8192, rfc_key, &used, &status) ==
		      HS_NEED_MORE);
	}
	CHECK(hs_parse_response((const uint8_t *)good, hdr + 2, 8192, rfc_key, &used, &status) ==
	      HS_DONE);
	CHECK(used == hdr && status == 101);
}

static enum hs_result parse_str(const char *s, int *status)
{
	size_t used;
	return hs_parse_response((const uint8_t *)s, strlen(s), 8192, rfc_key, &used, status);
}

TEST(handshake_response_errors)
{
	int status;
	char big[9000];

	CHECK(parse_str("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", &status) ==
	      HS_ERR_STATUS);
	CHECK(status == 404);
	CHECK(parse_str("HTTP/1.1 502 Bad Gateway\r\n\r\n", &status) == HS_ERR_STATUS && status == 502);
	CHECK(parse_str("SSH-2.0-OpenSSH\r\n", &status) == HS_ERR_NOT_HTTP);
	CHECK(parse_str("X", &status) == HS_ERR_NOT_HTTP);
	CHECK(parse_str("HTTP/1.1 1O1 x\r\n\r\n", &status) == HS_ERR_NOT_HTTP);
	CHECK(parse_str("HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
			&status) == HS_ERR_UPGRADE);
	CHECK(parse_str("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo?\r\n\r\n",
			&status) == HS_ERR_ACCEPT);
	CHECK(parse_str("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
			&status) == HS_ERR_ACCEPT);
	CHECK(parse_str("HTTP/1.1 101 OK\r\nbroken header line\r\n\r\n", &status) == HS_ERR_NOT_HTTP);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "HTTP/1.1 101 OK\r\nX: ", 20);
	CHECK(parse_str(big, &status) == HS_ERR_TOO_BIG);
}

static const char good_req[] =
	"GET /ws/tunnel/box-1 HTTP/1.1\r\n"
	"Host: example:8001\r\n"
	"upgrade: WebSocket\r\n"
	"Connection: keep-alive, Upgrade\r\n"
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"User-Agent: tunnel-client/0.1.0 (x86_64-linux-musl)\r\n"
	"Authorization: Bearer s3cret\r\n"
	"\r\n"
	"\x82\x80";

TEST(handshake_request_parse_byte_by_byte)
{
	size_t hdr = sizeof(good_req) - 1 - 2;
	size_t used = 0;
	struct hs_request r;

	for (size_t n = 0; n < hdr; n++) {
		CHECK(hs_parse_request((const uint8_t *)good_req, n, 8192, &r, &used) == HS_NEED_MORE);
	}
	CHECK(hs_parse_request((const uint8_t *)good_req, hdr + 2, 8192, &r, &used) == HS_DONE);
	CHECK(used == hdr);
	CHECK_STR(r.path, "/ws/tunnel/box-1");
	CHECK_STR(r.key, rfc_key);
	CHECK_STR(r.user_agent, "tunnel-client/0.1.0 (x86_64-linux-musl)");
	CHECK_STR(r.authorization, "Bearer s3cret");
	CHECK(r.version_ok);
}

static enum hs_result parse_req(const char *s)
{
	size_t used;
	struct hs_request r;

	return hs_parse_request((const uint8_t *)s, strlen(s), 8192, &r, &used);
}

TEST(handshake_request_errors)
{
	CHECK(parse_req("POST / HTTP/1.1\r\n") == HS_ERR_NOT_HTTP);
	CHECK(parse_req("GET / HTTP/1.0\r\n\r\n") == HS_ERR_NOT_HTTP);
	CHECK(parse_req("GET nopath HTTP/1.1\r\n\r\n") == HS_ERR_NOT_HTTP);
	CHECK(parse_req("GET / HTTP/1.1\r\nbroken\r\n\r\n") == HS_ERR_NOT_HTTP);
	CHECK(parse_req("GET / HTTP/1.1\r\nHost: x\r\n\r\n") == HS_ERR_UPGRADE);
	CHECK(parse_req("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
			"Sec-WebSocket-Version: 13\r\n\r\n") == HS_ERR_KEY);
	CHECK(parse_req("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
			"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n") == HS_ERR_KEY);
	CHECK(parse_req("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			"Sec-WebSocket-Version: 8\r\n\r\n") == HS_ERR_VERSION);
	char big[9000];
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	big[sizeof(big) - 1] = '\0';
	CHECK(parse_req(big) == HS_ERR_TOO_BIG);
}

TEST(handshake_server_answers)
{
	char out[256];
	int n = hs_response_101(out, sizeof(out), rfc_key);
	size_t used = 0;
	int status = 0;

	CHECK(n > 0);
	CHECK(hs_parse_response((const uint8_t *)out, (size_t)n, 8192, rfc_key, &used, &status) ==
	      HS_DONE);
	CHECK(used == (size_t)n);
	n = hs_response_refuse(out, sizeof(out), 426, "Upgrade Required");
	CHECK(n > 0 && strncmp(out, "HTTP/1.1 426 Upgrade Required\r\n", 31) == 0);
	CHECK(strstr(out, "Sec-WebSocket-Version: 13\r\n") != NULL);
	CHECK(hs_parse_response((const uint8_t *)out, (size_t)n, 8192, rfc_key, &used, &status) ==
	      HS_ERR_STATUS && status == 426);
	CHECK(hs_response_refuse(out, 20, 401, "Unauthorized") == -1);
}
