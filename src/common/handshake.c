#include "handshake.h"

#include <string.h>
#include <strings.h>

#include <bearssl_hash.h>

#include "fmt.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static void base64(const uint8_t *in, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len) {
			v |= (uint32_t)in[i + 1] << 8;
		}
		if (i + 2 < len) {
			v |= in[i + 2];
		}
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tab[v & 63] : '=';
	}
	out[o] = '\0';
}

void hs_make_key(const uint8_t nonce[16], char key[HS_KEY_LEN + 1])
{
	base64(nonce, 16, key);
}

void hs_accept_for(const char *key, char accept[HS_ACCEPT_LEN + 1])
{
	br_sha1_context sc;
	uint8_t digest[br_sha1_SIZE];

	br_sha1_init(&sc);
	br_sha1_update(&sc, key, strlen(key));
	br_sha1_update(&sc, ws_guid, sizeof(ws_guid) - 1);
	br_sha1_out(&sc, digest);
	base64(digest, sizeof(digest), accept);
}

int hs_request(char *out, size_t outlen, const char *host, const char *path,
	       const char *key)
{
	int n = fmt_snprintf(out, outlen,
			 "GET %s HTTP/1.1\r\n"
			 "Host: %s\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: 13\r\n"
			 "User-Agent: tunnel-client/" TC_VERSION "\r\n"
			 "\r\n",
			 path, host, key);
	return (n < 0 || (size_t)n >= outlen) ? -1 : n;
}

/* Does the comma-separated header value v[0..n) hold token (any case)? */
static int has_token(const char *v, size_t n, const char *token)
{
	size_t tl = strlen(token);
	size_t i = 0;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) {
			i++;
		}
		size_t s = i;
		while (i < n && v[i] != ',') {
			i++;
		}
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) {
			e--;
		}
		if (e - s == tl && strncasecmp(v + s, token, tl) == 0) {
			return 1;
		}
	}
	return 0;
}

/* Find the end of the header block ("\r\n\r\n"); 0 if not there yet. */
static size_t header_end(const uint8_t *p, size_t len)
{
	for (size_t i = 3; i < len; i++) {
		if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r') {
			return i + 1;
		}
	}
	return 0;
}

enum hs_result hs_parse_response(const uint8_t *p, size_t len, size_t max,
				 const char *key, size_t *consumed, int *status)
{
	const char *s = (const char *)p;
	size_t end;
	int upgrade = 0;
	int connection = 0;
	int accept_ok = 0;
	char want[HS_ACCEPT_LEN + 1];

	*status = 0;
	/* Reject a non-HTTP peer as soon as its first bytes show it. */
	size_t pre = len < 5 ? len : 5;
	if (memcmp(s, "HTTP/", pre) != 0) {
		return HS_ERR_NOT_HTTP;
	}
	end = header_end(p, len < max ? len : max);
	if (end == 0) {
		return len >= max ? HS_ERR_TOO_BIG : HS_NEED_MORE;
	}
	/* Status line: HTTP/1.x SP 3DIGIT */
	if (end < 12 || strncmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ' ||
	    s[9] < '0' || s[9] > '9' || s[10] < '0' || s[10] > '9' ||
	    s[11] < '0' || s[11] > '9') {
		return HS_ERR_NOT_HTTP;
	}
	*status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	if (*status != 101) {
		return HS_ERR_STATUS;
	}
	hs_accept_for(key, want);
	/* Header lines after the status line. */
	size_t i = 0;
	while (i < end && s[i] != '\n') {
		i++;
	}
	i++;
	while (i < end) {
		size_t line = i;
		while (i < end && s[i] != '\r') {
			i++;
		}
		size_t lend = i;
		i += 2; /* CRLF */
		if (lend == line) {
			break; /* blank line */
		}
		const char *colon = memchr(s + line, ':', lend - line);
		if (colon == NULL) {
			return HS_ERR_NOT_HTTP;
		}
		size_t nlen = (size_t)(colon - (s + line));
		const char *v = colon + 1;
		while (v < s + lend && (*v == ' ' || *v == '\t')) {
			v++;
		}
		size_t vlen = (size_t)(s + lend - v);
		while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) {
			vlen--;
		}
		if (nlen == 7 && strncasecmp(s + line, "Upgrade", 7) == 0) {
			upgrade = has_token(v, vlen, "websocket");
		} else if (nlen == 10 && strncasecmp(s + line, "Connection", 10) == 0) {
			connection = has_token(v, vlen, "upgrade");
		} else if (nlen == 20 && strncasecmp(s + line, "Sec-WebSocket-Accept", 20) == 0) {
			accept_ok = vlen == HS_ACCEPT_LEN && memcmp(v, want, HS_ACCEPT_LEN) == 0;
		}
	}
	if (!upgrade || !connection) {
		return HS_ERR_UPGRADE;
	}
	if (!accept_ok) {
		return HS_ERR_ACCEPT;
	}
	*consumed = end;
	return HS_DONE;
}

const char *hs_strerror(enum hs_result r)
{
	switch (r) {
	case HS_DONE:
		return "ok";
	case HS_NEED_MORE:
		return "incomplete response";
	case HS_ERR_TOO_BIG:
		return "response header too large";
	case HS_ERR_NOT_HTTP:
		return "not an HTTP response";
	case HS_ERR_STATUS:
		return "upgrade refused";
	case HS_ERR_UPGRADE:
		return "response lacks Upgrade: websocket / Connection: upgrade";
	case HS_ERR_ACCEPT:
		return "wrong Sec-WebSocket-Accept";
	}
	return "?";
}
