#include "handshake.h"

#include <string.h>
#include <strings.h>

#include <bearssl_hash.h>

#include "fmt.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void hs_base64(const uint8_t *in, size_t len, char *out)
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
	hs_base64(nonce, 16, key);
}

void hs_accept_for(const char *key, char accept[HS_ACCEPT_LEN + 1])
{
	br_sha1_context sc;
	uint8_t digest[br_sha1_SIZE];

	br_sha1_init(&sc);
	br_sha1_update(&sc, key, strlen(key));
	br_sha1_update(&sc, ws_guid, sizeof(ws_guid) - 1);
	br_sha1_out(&sc, digest);
	hs_base64(digest, sizeof(digest), accept);
}

int hs_request(char *out, size_t outlen, const char *host, const char *path,
	       const char *key, const char *extra)
{
	return hs_request_version(out, outlen, host, path, key, extra, 13);
}

int hs_request_version(char *out, size_t outlen, const char *host, const char *path,
		       const char *key, const char *extra, int version)
{
	int n = fmt_snprintf(out, outlen,
			 "GET %s HTTP/1.1\r\n"
			 "Host: %s\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: %d\r\n"
			 "User-Agent: tunnel-client/" TC_VERSION " (" TC_TARGET ")\r\n"
			 "%s"
			 "\r\n",
			 path, host, key, version, extra);
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

/* One "Name: value" header line, value trimmed. */
struct header {
	const char *name;
	size_t nlen;
	const char *value;
	size_t vlen;
};

/* Index just past the line starting at i (after its LF), at most end. */
static size_t line_end(const char *s, size_t i, size_t end)
{
	while (i < end && s[i] != '\n') {
		i++;
	}
	return i < end ? i + 1 : end;
}

/* The header line at *i (the block ends at end, after its blank line):
 * 1 with *h filled and *i moved past it, 0 at the blank line, -1 if the
 * line is not "Name: value". */
static int next_header(const char *s, size_t end, size_t *i, struct header *h)
{
	size_t line = *i;
	size_t lend = line;

	while (lend < end && s[lend] != '\r' && s[lend] != '\n') {
		lend++;
	}
	*i = line_end(s, lend, end);
	if (lend == line) {
		return 0;
	}
	const char *colon = memchr(s + line, ':', lend - line);
	if (colon == NULL || colon == s + line) {
		return -1;
	}
	h->name = s + line;
	h->nlen = (size_t)(colon - h->name);
	h->value = colon + 1;
	while (h->value < s + lend && (*h->value == ' ' || *h->value == '\t')) {
		h->value++;
	}
	h->vlen = (size_t)(s + lend - h->value);
	while (h->vlen > 0 && (h->value[h->vlen - 1] == ' ' || h->value[h->vlen - 1] == '\t')) {
		h->vlen--;
	}
	return 1;
}

static int header_is(const struct header *h, const char *name)
{
	size_t n = strlen(name);

	return h->nlen == n && strncasecmp(h->name, name, n) == 0;
}

/* Copy a header value into a NUL-terminated field; 0, or -1 if it does
 * not fit. */
static int copy_value(char *dst, size_t cap, const struct header *h)
{
	if (h->vlen >= cap) {
		return -1;
	}
	memcpy(dst, h->value, h->vlen);
	dst[h->vlen] = '\0';
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
	struct header h;
	size_t i = line_end(s, 0, end);
	int r;
	for (r = next_header(s, end, &i, &h); r > 0; r = next_header(s, end, &i, &h)) {
		if (header_is(&h, "Upgrade")) {
			upgrade = has_token(h.value, h.vlen, "websocket");
		} else if (header_is(&h, "Connection")) {
			connection = has_token(h.value, h.vlen, "upgrade");
		} else if (header_is(&h, "Sec-WebSocket-Accept")) {
			accept_ok = h.vlen == HS_ACCEPT_LEN && memcmp(h.value, want, HS_ACCEPT_LEN) == 0;
		}
	}
	if (r < 0) {
		return HS_ERR_NOT_HTTP;
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

enum hs_result hs_parse_request(const uint8_t *p, size_t len, size_t max, struct hs_request *req,
				size_t *consumed)
{
	const char *s = (const char *)p;
	size_t end;
	size_t i;
	int upgrade = 0;
	int connection = 0;
	int r;
	struct header h;

	memset(req, 0, sizeof(*req));
	size_t pre = len < 4 ? len : 4;
	if (memcmp(s, "GET ", pre) != 0) {
		return HS_ERR_NOT_HTTP;
	}
	end = header_end(p, len < max ? len : max);
	if (end == 0) {
		return len >= max ? HS_ERR_TOO_BIG : HS_NEED_MORE;
	}
	/* Request line: GET SP target SP HTTP/1.1 */
	size_t target = 4;
	size_t t_end = target;
	while (t_end < end && s[t_end] != ' ' && s[t_end] != '\r' && s[t_end] != '\n') {
		t_end++;
	}
	if (t_end == target || t_end + 9 > end || memcmp(s + t_end, " HTTP/1.1", 9) != 0 ||
	    s[target] != '/') {
		return HS_ERR_NOT_HTTP;
	}
	if (t_end - target >= sizeof(req->path)) {
		return HS_ERR_TOO_BIG;
	}
	memcpy(req->path, s + target, t_end - target);
	i = line_end(s, t_end, end);
	for (r = next_header(s, end, &i, &h); r > 0; r = next_header(s, end, &i, &h)) {
		if (header_is(&h, "Upgrade")) {
			upgrade = has_token(h.value, h.vlen, "websocket");
		} else if (header_is(&h, "Connection")) {
			connection = has_token(h.value, h.vlen, "upgrade");
		} else if (header_is(&h, "Sec-WebSocket-Key")) {
			if (h.vlen != HS_KEY_LEN || copy_value(req->key, sizeof(req->key), &h) != 0) {
				return HS_ERR_KEY;
			}
		} else if (header_is(&h, "Sec-WebSocket-Version")) {
			req->version_ok = h.vlen == 2 && memcmp(h.value, "13", 2) == 0;
		} else if (header_is(&h, "User-Agent")) {
			size_t n = h.vlen < sizeof(req->user_agent) - 1 ? h.vlen : sizeof(req->user_agent) - 1;
			memcpy(req->user_agent, h.value, n); /* a long one is cut, not refused */
		} else if (header_is(&h, "Authorization")) {
			if (copy_value(req->authorization, sizeof(req->authorization), &h) != 0) {
				return HS_ERR_TOO_BIG;
			}
		}
	}
	if (r < 0) {
		return HS_ERR_NOT_HTTP;
	}
	if (!upgrade || !connection) {
		return HS_ERR_UPGRADE;
	}
	if (req->key[0] == '\0') {
		return HS_ERR_KEY;
	}
	if (!req->version_ok) {
		return HS_ERR_VERSION;
	}
	*consumed = end;
	return HS_DONE;
}

int hs_response_101(char *out, size_t outlen, const char *key)
{
	char accept[HS_ACCEPT_LEN + 1];
	int n;

	hs_accept_for(key, accept);
	n = fmt_snprintf(out, outlen,
			 "HTTP/1.1 101 Switching Protocols\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n"
			 "\r\n",
			 accept);
	return (n < 0 || (size_t)n >= outlen) ? -1 : n;
}

int hs_response_refuse(char *out, size_t outlen, int status, const char *reason)
{
	int n = fmt_snprintf(out, outlen,
			     "HTTP/1.1 %d %s\r\n"
			     "%s"
			     "Content-Type: text/plain\r\n"
			     "Content-Length: %u\r\n"
			     "Connection: close\r\n"
			     "\r\n"
			     "%s\n",
			     status, reason, status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "",
			     (unsigned)strlen(reason) + 1, reason);
	return (n < 0 || (size_t)n >= outlen) ? -1 : n;
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
	case HS_ERR_KEY:
		return "missing or malformed Sec-WebSocket-Key";
	case HS_ERR_VERSION:
		return "unsupported Sec-WebSocket-Version";
	}
	return "?";
}
