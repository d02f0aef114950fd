/* proxy: reaching the runner through an HTTP CONNECT proxy. Which proxy
 * applies is decided once at start: --proxy URL, else HTTPS_PROXY /
 * https_proxy for wss:// and HTTP_PROXY / http_proxy for ws://, unless
 * NO_PROXY / no_proxy names the runner's host (as curl reads them: "*",
 * host names matching themselves and their subdomains, a leading dot
 * optional, IP literals exactly; loopback is not bypassed unless listed).
 * The proxy URL is http://[user:pass@]host[:port]; its user info becomes
 * Proxy-Authorization: Basic (a secret: never logged). TLS, when the
 * runner URL is wss://, runs end to end inside the tunnel. Pure: the
 * dialler does the I/O. */
#ifndef PROXY_H
#define PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "url.h"

struct proxy {
	struct url url;             /* host and port of the proxy */
	char auth[URL_AUTH_MAX];    /* base64 credentials, "" if none */
};

enum proxy_result {
	PROXY_DONE = 0,      /* 2xx: the tunnel is up; *consumed is the header */
	PROXY_NEED_MORE = 1,
	PROXY_ERR_STATUS = -1,  /* another status (in *status) */
	PROXY_ERR_NOT_HTTP = -2,
	PROXY_ERR_TOO_BIG = -3,
};

/* Decide the proxy for the runner URL. flag is --proxy (or NULL); the
 * environment is read here. 1 with *p filled, 0 for a direct connection,
 * -1 with err for a malformed proxy URL (naming where it came from). */
int proxy_select(const char *flag, const struct url *runner, struct proxy *p, char *err,
		 size_t errlen);
/* Non-zero if the no_proxy list names host. */
int proxy_bypass(const char *no_proxy, const char *host);
/* The CONNECT request for host:port. Its length, or -1 if out is small. */
int proxy_request(const struct proxy *p, const char *host, int ipv6, uint16_t port, char *out,
		  size_t outlen);
/* Parse the proxy's answer in buf[0..len) (at most max bytes of header). */
enum proxy_result proxy_parse_response(const uint8_t *buf, size_t len, size_t max, int *status,
				       size_t *consumed);

#endif
