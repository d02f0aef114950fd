#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bounds.h"
#include "fmt.h"
#include "opts.h"

#define F(field) offsetof(struct config, field)
#define DAY_MS (86400ULL * 1000)

static int add_header(void *cfg, const char *v, const char *from, char *err, size_t errlen);

static const struct opt opts[] = {
	{'r', "runner-url", "RUNNER_URL", OPT_STR, F(runner_url), 0, 0,
	 "runner base URL, ws://host[:port][/base] or wss://...", NULL},
	{'c', "container-id", "CONTAINER_ID", OPT_STR, F(container_id), 0, 0,
	 "container id; the agent dials URL/ws/tunnel/ID", NULL},
	{0, "reconnect-delay", "RECONNECT_DELAY", OPT_SECONDS, F(reconnect_delay_ms), 0, DAY_MS,
	 "seconds before the first reconnect, doubled per failure [5]", NULL},
	{0, "max-reconnect-delay", "MAX_RECONNECT_DELAY", OPT_SECONDS, F(reconnect_max_ms), 0, DAY_MS,
	 "cap on the reconnect backoff in seconds [60]", NULL},
	{0, "max-reconnect", "MAX_RECONNECT", OPT_COUNT, F(max_reconnect), 0, 1000000000,
	 "consecutive failed connects before exit 1, 0 = forever [0]", NULL},
	{0, "log-level", "LOG_LEVEL", OPT_LEVEL, F(log_level), 0, 0,
	 "trace, debug, info, warn or error [info]", NULL},
	{0, "connect-timeout", "CONNECT_TIMEOUT", OPT_SECONDS, F(connect_timeout_ms), 1, DAY_MS,
	 "seconds allowed for a connect or handshake [10]", NULL},
	{0, "ping-interval", "PING_INTERVAL", OPT_SECONDS, F(ping_interval_ms), 1, DAY_MS,
	 "idle seconds before the agent pings the runner [30]", NULL},
	{0, "ping-timeout", "PING_TIMEOUT", OPT_SECONDS, F(ping_timeout_ms), 1, DAY_MS,
	 "seconds of silence after a ping before reconnecting [15]", NULL},
	{0, "udp-idle-timeout", "UDP_IDLE_TIMEOUT", OPT_SECONDS, F(udp_idle_ms), 1, DAY_MS,
	 "seconds since its last datagram before a UDP connection closes [60]", NULL},
	{0, "stall-timeout", "STALL_TIMEOUT", OPT_SECONDS, F(stall_timeout_ms), 1, DAY_MS,
	 "seconds a local service may block the tunnel before it is closed [10]", NULL},
	{0, "max-connections", "MAX_CONNECTIONS", OPT_COUNT, F(max_conns), 1, 1048576,
	 "live connections at most [open-file limit - 32, up to 65536]", NULL},
	{0, "max-udp", "MAX_UDP", OPT_COUNT, F(max_udp), 1, 65536,
	 "live UDP connections at most [256]", NULL},
	{0, "max-message", "MAX_MESSAGE", OPT_COUNT, F(max_message), 65544, 64ULL << 20,
	 "largest runner message in bytes [1048576]", NULL},
	{0, "token", "TUNNEL_TOKEN", OPT_STR, F(token), 0, 0,
	 "token for a tunnel-server (sent as Authorization: Bearer; never logged)", NULL},
	{0, "header", "TUNNEL_HEADERS", OPT_LIST, 0, 0, 0,
	 "'Name: value' added to the upgrade request, repeatable (env: one per line)", add_header},
	{0, "allow-ports", "ALLOW_PORTS", OPT_STR, F(allow_ports), 0, 0,
	 "local ports CONNECT may reach, e.g. 22,80,8000-8999,udp:53 [every port]", NULL},
	{0, "proxy", NULL, OPT_STR, F(proxy), 0, 0,
	 "http://[user:pass@]host[:port] of an HTTP CONNECT proxy [HTTPS_PROXY / HTTP_PROXY, NO_PROXY]",
	 NULL},
	{0, "status-port", "STATUS_PORT", OPT_COUNT, F(status_port), 1, 65535,
	 "a CONNECT to this TCP port is answered by the agent: /healthz /ready /status "
	 "/metrics /logs [off]", NULL},
	{0, "log-ring", "LOG_RING", OPT_COUNT, F(log_ring), 0, TC_LOG_RING_MAX,
	 "bytes of recent log lines kept for /logs, 0 = none [16384]", NULL},
	{0, "check", NULL, OPT_FLAG, F(check), 0, 1,
	 "check the way to the runner step by step, print a verdict, exit 0 or 1", NULL},
	{0, "ca-file", "SSL_CERT_FILE", OPT_STR, F(ca_file), 0, 0,
	 "PEM trust anchors for wss:// [system bundle]", NULL},
	{0, "tls-server-name", "TLS_SERVER_NAME", OPT_STR, F(tls_server_name), 0, 0,
	 "name for SNI and certificate check [URL host]", NULL},
	{0, "tls-pin", "TLS_PIN", OPT_STR, F(tls_pin), 0, 0,
	 "sha256:<base64> of the server's public key; accepted without a CA", NULL},
	{0, "tls-cert", "TLS_CERT", OPT_STR, F(tls_cert), 0, 0,
	 "PEM client certificate chain for mutual TLS", NULL},
	{0, "tls-key", "TLS_KEY", OPT_STR, F(tls_key), 0, 0,
	 "PEM private key (RSA or EC) of --tls-cert", NULL},
	{0, "insecure", "TLS_INSECURE", OPT_FLAG, F(insecure), 0, 1,
	 "do not verify the runner's certificate (warns at every connect)", NULL},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* Header names the upgrade request has already (or must not have). */
static int reserved_header(const char *name, size_t n)
{
	static const char *const names[] = {"host", "upgrade", "connection", "user-agent",
					    "content-length", "transfer-encoding"};

	if (n >= 14 && strncasecmp(name, "sec-websocket-", 14) == 0) {
		return 1;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i]) == n && strncasecmp(name, names[i], n) == 0) {
			return 1;
		}
	}
	return 0;
}

static int tchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* One "Name: value" line into c->headers, checked. */
static int add_one_header(struct config *c, const char *v, size_t len, const char *from,
			  char *err, size_t errlen)
{
	const char *colon = memchr(v, ':', len);
	size_t nlen = colon != NULL ? (size_t)(colon - v) : 0;
	const char *val = colon != NULL ? colon + 1 : NULL;
	size_t vlen;

	for (size_t i = 0; i < nlen; i++) {
		if (!tchar(v[i])) {
			nlen = 0;
		}
	}
	if (nlen == 0) {
		fmt_snprintf(err, errlen, "%s: expected 'Name: value' with a header name of "
					  "letters, digits and !#$%%&'*+-.^_`|~", from);
		return -1;
	}
	if (nlen == 13 && strncasecmp(v, "authorization", 13) == 0) {
		c->header_auth = 1;
	}
	if (reserved_header(v, nlen)) {
		fmt_snprintf(err, errlen, "%s: %.*s is the upgrade request's own header", from,
			     (int)nlen, v);
		return -1;
	}
	while (val < v + len && (*val == ' ' || *val == '\t')) {
		val++;
	}
	vlen = (size_t)(v + len - val);
	for (size_t i = 0; i < vlen; i++) {
		unsigned char ch = (unsigned char)val[i];
		if ((ch < ' ' && ch != '\t') || ch == 0x7f) {
			fmt_snprintf(err, errlen, "%s: the value of %.*s has a control character "
						  "(CR, LF, ...)", from, (int)nlen, v);
			return -1;
		}
	}
	if (c->headers_len + nlen + vlen + 4 >= sizeof(c->headers)) {
		fmt_snprintf(err, errlen, "%s: headers longer than %d bytes in all", from,
			     TC_HEADERS_MAX);
		return -1;
	}
	c->headers_len += (size_t)fmt_snprintf(c->headers + c->headers_len,
					       sizeof(c->headers) - c->headers_len, "%.*s: %.*s\r\n",
					       (int)nlen, v, (int)vlen, val);
	return 0;
}

/* --header (one line), or TUNNEL_HEADERS (one per line). */
static int add_header(void *cfg, const char *v, const char *from, char *err, size_t errlen)
{
	while (*v != '\0') {
		const char *nl = from[0] == '$' ? strchr(v, '\n') : NULL;
		size_t len = nl != NULL ? (size_t)(nl - v) : strlen(v);
		size_t line = len;

		if (line > 0 && v[line - 1] == '\r' && from[0] == '$') {
			line--;
		}
		if (line > 0 && add_one_header(cfg, v, line, from, err, errlen) != 0) {
			return -1;
		}
		v += nl != NULL ? len + 1 : len;
	}
	return 0;
}

static void set_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->reconnect_delay_ms = 5000;
	c->reconnect_max_ms = 60000;
	c->log_level = LOG_INFO;
	c->connect_timeout_ms = 10000;
	c->ping_interval_ms = 30000;
	c->ping_timeout_ms = 15000;
	c->udp_idle_ms = 60000;
	c->stall_timeout_ms = 10000;
	c->max_conns = 0; /* from the open-file limit, in main */
	c->max_udp = 256;
	c->max_message = 1 << 20;
	c->log_ring = TC_LOG_RING_DEFAULT;
}

enum config_result config_parse(struct config *c, int argc, char **argv,
				char *err, size_t errlen)
{
	set_defaults(c);
	switch (opts_parse(opts, NOPTS, c, argc, argv, err, errlen)) {
	case OPTS_HELP:
		return CONFIG_HELP;
	case OPTS_VERSION:
		return CONFIG_VERSION;
	case OPTS_ERROR:
		return CONFIG_ERROR;
	case OPTS_RUN:
		break;
	}
	if (c->runner_url == NULL) {
		fmt_snprintf(err, errlen, "--runner-url (or $RUNNER_URL) is required");
		return CONFIG_ERROR;
	}
	if (c->container_id == NULL) {
		fmt_snprintf(err, errlen, "--container-id (or $CONTAINER_ID) is required");
		return CONFIG_ERROR;
	}
	if (c->allow_ports != NULL && allow_parse(c->allow_ports, &c->allow) != 0) {
		fmt_snprintf(err, errlen, "--allow-ports: '%s' is not a list like "
					  "22,80,8000-8999,udp:53,tcp:1000-2000 (ports 1-65535)", c->allow_ports);
		return CONFIG_ERROR;
	}
	if (c->token != NULL && c->header_auth) {
		fmt_snprintf(err, errlen, "--header: an Authorization header and --token together");
		return CONFIG_ERROR;
	}
	if (c->token != NULL) {
		size_t n = strlen(c->token);
		int bad = n > TC_TOKEN_MAX;
		for (size_t i = 0; i < n; i++) {
			bad |= c->token[i] <= ' ' || c->token[i] > '~';
		}
		if (bad) {
			fmt_snprintf(err, errlen, "--token: expected 1 to %d visible ASCII characters "
						  "(no spaces or line breaks)", TC_TOKEN_MAX);
			return CONFIG_ERROR;
		}
	}
	if (c->reconnect_max_ms < c->reconnect_delay_ms) {
		c->reconnect_max_ms = c->reconnect_delay_ms;
	}
	return CONFIG_RUN;
}

void config_usage(void)
{
	fmt_print(1, "usage: tunnel-client --runner-url URL --container-id ID [options]\n\n"
	       "Dials the runner's WebSocket at URL/ws/tunnel/ID and splices every\n"
	       "tunnelled connection to 127.0.0.1:PORT (TCP or UDP).\n\noptions:\n");
	opts_usage(opts, NOPTS);
}
