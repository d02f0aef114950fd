/* url: parse the runner URL and build the tunnel path. Pure, no sockets. */
#ifndef URL_H
#define URL_H

#include <stddef.h>
#include <stdint.h>

#define URL_HOST_MAX 255  /* DNS name limit */
#define URL_PATH_MAX 1024 /* base path plus /ws/tunnel/<id> */
#define URL_USERINFO_MAX 255
#define URL_AUTH_MAX 344 /* base64 of URL_USERINFO_MAX bytes, NUL included */

struct url {
	int tls;                      /* wss:// (or https://) */
	int ipv6;                     /* host was a [bracketed] literal */
	char host[URL_HOST_MAX + 1];  /* without brackets */
	uint16_t port;                /* explicit, or 80 / 443 */
	int default_port;             /* port was not given */
	char base[URL_PATH_MAX];      /* path without its trailing slash, may be "" */
	char userinfo[URL_USERINFO_MAX + 1]; /* "user:pass" as given, "" if none; a secret */
};

/* Parse ws://[user:pass@]host[:port][/base] (also wss://, http://,
 * https://). 0 on success; -1 with a one-line reason in err, which names
 * the URL as `what` ("runner URL") and never shows its user info. */
int url_parse(const char *s, struct url *u, char *err, size_t errlen);
int url_parse_as(const char *what, const char *s, struct url *u, char *err, size_t errlen);
/* The user info, percent-decoded, as base64 for Authorization: Basic; ""
 * when there is none. A secret. */
void url_basic_auth(const struct url *u, char out[URL_AUTH_MAX]);
/* scheme://host[:port][/base]: the URL without its user info (for logs). */
void url_display(const struct url *u, char *out, size_t outlen);
/* base + "/ws/tunnel/" + id (id percent-encoded). 0, or -1 if too long. */
int url_tunnel_path(const struct url *u, const char *id, char *out, size_t outlen);
/* The Host header value: host, [v6], with :port unless default. 0 or -1. */
int url_host_header(const struct url *u, char *out, size_t outlen);

#endif
