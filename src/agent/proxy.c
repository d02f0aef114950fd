#include "proxy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fmt.h"

int proxy_bypass(const char *no_proxy, const char *host)
{
	size_t hl = strlen(host);

	while (no_proxy != NULL && *no_proxy != '\0') {
		size_t skip = strspn(no_proxy, ", \t");
		const char *e = no_proxy + skip;
		size_t n = strcspn(e, ", \t");

		no_proxy = e + n;
		if (n == 1 && e[0] == '*') {
			return 1;
		}
		if (n > 0 && e[0] == '.') {
			e++;
			n--;
		}
		if (n == 0 || n > hl) {
			continue;
		}
		/* host itself, or a subdomain of the entry */
		if (strncasecmp(host + hl - n, e, n) == 0 && (hl == n || host[hl - n - 1] == '.')) {
			return 1;
		}
	}
	return 0;
}

int proxy_select(const char *flag, const struct url *runner, struct proxy *p, char *err,
		 size_t errlen)
{
	const char *from = "--proxy";
	const char *v = flag;
	char with_scheme[URL_HOST_MAX + URL_USERINFO_MAX + 64];

	memset(p, 0, sizeof(*p));
	if (v == NULL) {
		static const char *const tls_vars[] = {"HTTPS_PROXY", "https_proxy"};
		static const char *const plain_vars[] = {"HTTP_PROXY", "http_proxy"};
		const char *const *vars = runner->tls ? tls_vars : plain_vars;
		for (int i = 0; i < 2 && (v == NULL || v[0] == '\0'); i++) {
			v = getenv(vars[i]);
			from = vars[i];
		}
		if (v == NULL || v[0] == '\0') {
			return 0;
		}
		const char *no = getenv("NO_PROXY");
		if (proxy_bypass(no != NULL ? no : getenv("no_proxy"), runner->host)) {
			return 0;
		}
	}
	if (strstr(v, "://") == NULL) {
		fmt_snprintf(with_scheme, sizeof(with_scheme), "http://%s", v);
		v = with_scheme; /* curl reads a bare host:port as http:// */
	}
	char what[32];
	fmt_snprintf(what, sizeof(what), "%s URL", from);
	if (url_parse_as(what, v, &p->url, err, errlen) != 0) {
		return -1;
	}
	if (p->url.tls || strncasecmp(v, "http://", 7) != 0) {
		fmt_snprintf(err, errlen, "%s: only http:// proxies are supported", what);
		return -1;
	}
	if (p->url.default_port) {
		p->url.port = 1080; /* curl's default for a proxy without a port */
	}
	url_basic_auth(&p->url, p->auth);
	memset(p->url.userinfo, 0, sizeof(p->url.userinfo));
	memset(with_scheme, 0, sizeof(with_scheme));
	return 1;
}

int proxy_request(const struct proxy *p, const char *host, int ipv6, uint16_t port, char *out,
		  size_t outlen)
{
	const char *lb = ipv6 ? "[" : "";
	const char *rb = ipv6 ? "]" : "";
	int n = fmt_snprintf(out, outlen,
			     "CONNECT %s%s%s:%u HTTP/1.1\r\n"
			     "Host: %s%s%s:%u\r\n"
			     "User-Agent: tunnel-client/" TC_VERSION "\r\n"
			     "%s%s%s"
			     "\r\n",
			     lb, host, rb, (unsigned)port, lb, host, rb, (unsigned)port,
			     p->auth[0] != '\0' ? "Proxy-Authorization: Basic " : "", p->auth,
			     p->auth[0] != '\0' ? "\r\n" : "");
	return (n < 0 || (size_t)n >= outlen) ? -1 : n;
}

enum proxy_result proxy_parse_response(const uint8_t *buf, size_t len, size_t max, int *status,
				       size_t *consumed)
{
	const char *s = (const char *)buf;
	size_t pre = len < 5 ? len : 5;
	size_t end = 0;

	*status = 0;
	if (memcmp(s, "HTTP/", pre) != 0) {
		return PROXY_ERR_NOT_HTTP;
	}
	for (size_t i = 3; i < len && i < max && end == 0; i++) {
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
			end = i + 1;
		}
	}
	if (end == 0) {
		return len >= max ? PROXY_ERR_TOO_BIG : PROXY_NEED_MORE;
	}
	if (end < 12 || strncmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ' || s[9] < '1' || s[9] > '5' ||
	    s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9') {
		return PROXY_ERR_NOT_HTTP;
	}
	*status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	*consumed = end;
	return *status / 100 == 2 ? PROXY_DONE : PROXY_ERR_STATUS;
}
