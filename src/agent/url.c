#include "url.h"

#include <string.h>
#include <strings.h>

#include "fmt.h"
#include "handshake.h"
#include "num.h"

/* The URL in an error line, its user info (a password) left out. */
static int fail(const char *what, char *err, size_t errlen, const char *why, const char *s)
{
	const char *scheme_end = strstr(s, "://");
	const char *rest = scheme_end != NULL ? scheme_end + 3 : s;
	const char *at = memchr(rest, '@', strcspn(rest, "/"));

	if (at != NULL) {
		fmt_snprintf(err, errlen, "bad %s '%.*s***@%s': %s", what, (int)(rest - s), s, at + 1, why);
	} else {
		fmt_snprintf(err, errlen, "bad %s '%s': %s", what, s, why);
	}
	return -1;
}

static int host_char_ok(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
}

int url_parse(const char *s, struct url *u, char *err, size_t errlen)
{
	return url_parse_as("runner URL", s, u, err, errlen);
}

int url_parse_as(const char *what, const char *s, struct url *u, char *err, size_t errlen)
{
	static const struct { const char *prefix; int tls; } schemes[] = {
		{"ws://", 0}, {"wss://", 1}, {"http://", 0}, {"https://", 1},
	};
	const char *p = NULL;
	const char *host;
	size_t hlen;

	memset(u, 0, sizeof(*u));
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t n = strlen(schemes[i].prefix);
		if (strncasecmp(s, schemes[i].prefix, n) == 0) {
			p = s + n;
			u->tls = schemes[i].tls;
		}
	}
	if (p == NULL) {
		return fail(what, err, errlen, "scheme must be ws:// or wss://", s);
	}
	const char *at = memchr(p, '@', strcspn(p, "/"));
	if (at != NULL) {
		if ((size_t)(at - p) > URL_USERINFO_MAX) {
			return fail(what, err, errlen, "user info too long", s);
		}
		memcpy(u->userinfo, p, (size_t)(at - p));
		p = at + 1;
	}
	if (*p == '[') {
		const char *close = strchr(p, ']');
		if (close == NULL) {
			return fail(what, err, errlen, "unterminated [IPv6] literal", s);
		}
		host = p + 1;
		hlen = (size_t)(close - host);
		for (size_t i = 0; i < hlen; i++) {
			char ch = host[i];
			if (!(host_char_ok(ch) || ch == ':' || ch == '%')) {
				return fail(what, err, errlen, "bad character in IPv6 literal", s);
			}
		}
		u->ipv6 = 1;
		p = close + 1;
	} else {
		host = p;
		while (*p != '\0' && *p != ':' && *p != '/') {
			if (!host_char_ok(*p)) {
				return fail(what, err, errlen, "bad character in host", s);
			}
			p++;
		}
		hlen = (size_t)(p - host);
	}
	if (hlen == 0) {
		return fail(what, err, errlen, "missing host", s);
	}
	if (hlen > URL_HOST_MAX) {
		return fail(what, err, errlen, "host too long", s);
	}
	memcpy(u->host, host, hlen);
	u->host[hlen] = '\0';

	u->default_port = 1;
	u->port = u->tls ? 443 : 80;
	if (*p == ':') {
		char num[8];
		uint64_t port;
		const char *start = ++p;
		while (*p >= '0' && *p <= '9') {
			p++;
		}
		if ((size_t)(p - start) >= sizeof(num) || p == start) {
			return fail(what, err, errlen, "bad port", s);
		}
		memcpy(num, start, (size_t)(p - start));
		num[p - start] = '\0';
		if (num_parse_u64(num, 1, 65535, &port) != 0) {
			return fail(what, err, errlen, "port must be 1-65535", s);
		}
		u->port = (uint16_t)port;
		u->default_port = 0;
	}
	if (*p != '\0' && *p != '/') {
		return fail(what, err, errlen, "unexpected text after host", s);
	}
	if (strpbrk(p, "?# \t\r\n") != NULL) {
		return fail(what, err, errlen, "query, fragment or spaces are not allowed", s);
	}
	size_t plen = strlen(p);
	if (plen > 0 && p[plen - 1] == '/') {
		plen--; /* one trailing slash of the base is dropped */
	}
	if (plen >= URL_PATH_MAX / 2) {
		return fail(what, err, errlen, "path too long", s);
	}
	memcpy(u->base, p, plen);
	u->base[plen] = '\0';
	return 0;
}

int url_tunnel_path(const struct url *u, const char *id, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	int n = fmt_snprintf(out, outlen, "%s/ws/tunnel/", u->base);
	size_t o;

	if (n < 0 || (size_t)n >= outlen) {
		return -1;
	}
	o = (size_t)n;
	for (const unsigned char *c = (const unsigned char *)id; *c != '\0'; c++) {
		int plain = host_char_ok((char)*c) || *c == '~';
		if (o + (plain ? 1 : 3) >= outlen) {
			return -1;
		}
		if (plain) {
			out[o++] = (char)*c;
		} else {
			out[o++] = '%';
			out[o++] = hex[*c >> 4];
			out[o++] = hex[*c & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

int url_host_header(const struct url *u, char *out, size_t outlen)
{
	int n;

	if (u->default_port) {
		n = fmt_snprintf(out, outlen, u->ipv6 ? "[%s]" : "%s", u->host);
	} else {
		n = fmt_snprintf(out, outlen, u->ipv6 ? "[%s]:%u" : "%s:%u", u->host, (unsigned)u->port);
	}
	return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

void url_display(const struct url *u, char *out, size_t outlen)
{
	char port[8] = "";

	if (!u->default_port) {
		fmt_snprintf(port, sizeof(port), ":%u", (unsigned)u->port);
	}
	fmt_snprintf(out, outlen, "%s://%s%s%s%s%s", u->tls ? "wss" : "ws", u->ipv6 ? "[" : "",
		     u->host, u->ipv6 ? "]" : "", port, u->base);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
		return (c | 0x20) - 'a' + 10;
	}
	return -1;
}

void url_basic_auth(const struct url *u, char out[URL_AUTH_MAX])
{
	uint8_t raw[URL_USERINFO_MAX + 1];
	size_t n = 0;

	/* Percent-decoded, as browsers and curl send it. */
	for (const char *s = u->userinfo; *s != '\0';) {
		if (s[0] == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
			raw[n++] = (uint8_t)(hexval(s[1]) << 4 | hexval(s[2]));
			s += 3;
		} else {
			raw[n++] = (uint8_t)*s++;
		}
	}
	if (n == 0) {
		out[0] = '\0';
		return;
	}
	hs_base64(raw, n, out);
	memset(raw, 0, sizeof(raw));
}
