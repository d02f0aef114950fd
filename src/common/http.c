#include "http.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 token characters. */
static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Visible ASCII: what a request target is made of. */
static int is_vchar(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

/* The request line s[0..n): "METHOD SP TARGET SP HTTP/1.x". complete = 0:
 * the line has not ended yet, so s is a prefix that must still be able to
 * become valid. 0 (with the parts set in req when present), or -1. */
static int request_line(const char *s, size_t n, int complete, struct http_request *req)
{
	static const char ver[] = "HTTP/1.";
	size_t i = 0;
	size_t t;
	size_t v;

	while (i < n && is_tchar((unsigned char)s[i])) {
		i++;
	}
	if (i < n && (s[i] != ' ' || i == 0)) {
		return -1;
	}
	if (i == n) {
		return complete ? -1 : 0;
	}
	req->method = s;
	req->method_len = i;
	t = ++i;
	while (i < n && is_vchar((unsigned char)s[i])) {
		i++;
	}
	if (i < n && (s[i] != ' ' || i == t)) {
		return -1;
	}
	if (i == n) {
		return complete ? -1 : 0;
	}
	req->target = s + t;
	req->target_len = i - t;
	v = ++i;
	for (size_t k = 0; v + k < n; k++) {
		char c = s[v + k];
		if ((k < 7 && c != ver[k]) || (k == 7 && c != '0' && c != '1') || k > 7) {
			return -1;
		}
	}
	if (!complete) {
		return 0;
	}
	if (n - v != 8) {
		return -1;
	}
	req->minor = s[v + 7] - '0';
	return 0;
}

/* A header line s[0..n): "Name:value", no space before the colon, no
 * folding (a leading space), no control byte but tab in the value. */
static int field_line(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && is_tchar((unsigned char)s[i])) {
		i++;
	}
	if (i == 0 || i == n || s[i] != ':') {
		return -1;
	}
	for (i++; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			return -1;
		}
	}
	return 0;
}

/* The line starting at s[i] within s[0..lim): 1 with *end at its content's
 * end (before CR LF or LF) and *next after its LF; 0 if it has not ended. */
static int line_at(const char *s, size_t i, size_t lim, size_t *end, size_t *next)
{
	const char *lf = memchr(s + i, '\n', lim - i);
	size_t e;

	if (lf == NULL) {
		return 0;
	}
	e = (size_t)(lf - s);
	*next = e + 1;
	if (e > i && s[e - 1] == '\r') {
		e--;
	}
	*end = e;
	return 1;
}

enum http_result http_parse_request(const uint8_t *p, size_t len, size_t max,
				    struct http_request *req)
{
	const char *s = (const char *)p;
	size_t lim = len < max ? len : max;
	enum http_result more = len >= max ? HTTP_ERR_TOO_BIG : HTTP_NEED_MORE;
	size_t i = 0;
	size_t end;
	size_t next;

	memset(req, 0, sizeof(*req));
	if (lim == 0) {
		return more;
	}
	/* Empty lines before the request line are skipped (RFC 9112 2.2). */
	for (;;) {
		if (!line_at(s, i, lim, &end, &next)) {
			size_t n = lim - i;
			if (s[lim - 1] == '\r') {
				n--;
			}
			return request_line(s + i, n, 0, req) != 0 ? HTTP_ERR_MALFORMED : more;
		}
		if (end > i) {
			break;
		}
		i = next;
	}
	if (request_line(s + i, end - i, 1, req) != 0) {
		return HTTP_ERR_MALFORMED;
	}
	i = next;
	req->fields = s + i;
	for (;;) {
		if (!line_at(s, i, lim, &end, &next)) {
			return more;
		}
		if (end == i) {
			req->fields_len = (size_t)(s + i - req->fields);
			req->consumed = next;
			return HTTP_DONE;
		}
		if (field_line(s + i, end - i) != 0) {
			return HTTP_ERR_MALFORMED;
		}
		i = next;
	}
}

const char *http_header(const struct http_request *req, const char *name, size_t *vlen)
{
	const char *s = req->fields;
	size_t n = req->fields_len;
	size_t nl = strlen(name);
	size_t i = 0;
	size_t end;
	size_t next;

	while (n > 0 && line_at(s, i, n, &end, &next)) {
		const char *colon = memchr(s + i, ':', end - i);
		if (colon != NULL && (size_t)(colon - (s + i)) == nl &&
		    strncasecmp(s + i, name, nl) == 0) {
			size_t v = (size_t)(colon - s) + 1;
			while (v < end && (s[v] == ' ' || s[v] == '\t')) {
				v++;
			}
			while (end > v && (s[end - 1] == ' ' || s[end - 1] == '\t')) {
				end--;
			}
			*vlen = end - v;
			return s + v;
		}
		i = next;
	}
	*vlen = 0;
	return NULL;
}

int http_method_is(const struct http_request *req, const char *m)
{
	size_t n = strlen(m);

	return req->method_len == n && memcmp(req->method, m, n) == 0;
}

size_t http_path_len(const struct http_request *req)
{
	size_t n = 0;

	while (n < req->target_len && req->target[n] != '?' && req->target[n] != '#') {
		n++;
	}
	return n;
}

const char *http_strerror(enum http_result r)
{
	switch (r) {
	case HTTP_DONE:
		return "ok";
	case HTTP_NEED_MORE:
		return "incomplete request";
	case HTTP_ERR_MALFORMED:
		return "malformed request";
	case HTTP_ERR_TOO_BIG:
		return "request header too large";
	}
	return "?";
}

/* The length of the well-formed UTF-8 sequence (RFC 3629) at s[0..n), or
 * 0 if there is none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80;
	unsigned char hi = 0xbf;
	size_t k;

	if (c >= 0xc2 && c <= 0xdf) {
		k = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlong form */
		hi = c == 0xed ? 0x9f : 0xbf; /* no surrogate */
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf; /* up to U+10FFFF */
	} else {
		return 0;
	}
	if (n < k || s[1] < lo || s[1] > hi) {
		return 0;
	}
	for (size_t i = 2; i < k; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf) {
			return 0;
		}
	}
	return k;
}

/* What the ASCII byte c becomes in mode: its escape in tmp (or a constant)
 * and its length; NULL when c stays as it is. */
static const char *escape_ascii(unsigned char c, enum http_escape mode, char tmp[8], size_t *len)
{
	static const char hex[] = "0123456789abcdef";
	const char *e = NULL;

	switch (mode) {
	case HTTP_ESC_JSON:
		if (c == '"') {
			e = "\\\"";
		} else if (c == '\\') {
			e = "\\\\";
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(tmp, "\\u00", 4);
			tmp[4] = hex[c >> 4];
			tmp[5] = hex[c & 15];
			*len = 6;
			return tmp;
		}
		break;
	case HTTP_ESC_HTML:
		if (c == '&') {
			e = "&amp;";
		} else if (c == '<') {
			e = "&lt;";
		} else if (c == '>') {
			e = "&gt;";
		} else if (c == '"') {
			e = "&quot;";
		} else if (c == '\'') {
			e = "&#39;";
		} else if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
			e = "\xef\xbf\xbd";
		}
		break;
	case HTTP_ESC_LABEL:
		if (c == '"') {
			e = "\\\"";
		} else if (c == '\\') {
			e = "\\\\";
		} else if (c == '\n') {
			e = "\\n";
		}
		break;
	}
	if (e != NULL) {
		*len = strlen(e);
	}
	return e;
}

size_t http_escape(char *dst, size_t cap, const char *src, size_t n, enum http_escape mode)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t total = 0;
	size_t written = 0;
	int cut = 0;

	for (size_t i = 0; i < n;) {
		char tmp[8];
		const char *u = src + i;
		size_t ulen = 1;
		size_t take = 1;

		if (s[i] >= 0x80) {
			take = utf8_len(s + i, n - i);
			ulen = take;
			if (take == 0) {
				u = "\xef\xbf\xbd"; /* U+FFFD for a stray byte */
				ulen = 3;
				take = 1;
			}
		} else {
			const char *e = escape_ascii(s[i], mode, tmp, &ulen);
			if (e != NULL) {
				u = e;
			}
		}
		if (!cut && written + ulen < cap) {
			memcpy(dst + written, u, ulen);
			written += ulen;
		} else {
			cut = 1;
		}
		total += ulen;
		i += take;
	}
	if (cap > 0) {
		dst[written] = '\0';
	}
	return total;
}
