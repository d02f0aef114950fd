/* libFuzzer target: the agent's command line and environment
 * (src/agent/config.c over src/common/opts.c), with --header /
 * TUNNEL_HEADERS and --allow-ports / ALLOW_PORTS in particular.
 *
 * Input: NUL-separated strings: $TUNNEL_HEADERS, $ALLOW_PORTS (empty: not
 * set), then argv[1..] (at most 30).
 *
 * Checked besides the sanitizers: an error is one terminated line; a
 * configuration that is accepted has a runner URL and container id, and
 * upgrade header lines that are exactly "Name: value\r\n" each, with a
 * token name, no control byte in the value, none of the upgrade's own
 * headers, and headers_len the length of it all. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "fz_frames.h"
#include "fz_in.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define ARGS_MAX 30

static char env_headers[4096] = "TUNNEL_HEADERS=";
static char env_allow[1024] = "ALLOW_PORTS=";

static void set_env(char *buf, size_t cap, const char *name, const uint8_t *p, size_t n)
{
	size_t pre = strlen(name) + 1;

	if (n == 0 || n >= cap - pre) {
		unsetenv(name);
		return;
	}
	memcpy(buf + pre, p, n);
	buf[pre + n] = '\0';
	putenv(buf); /* the buffer is the variable: no copy to leak */
}

static int tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_headers(const struct config *c)
{
	static const char *const own[] = {"host", "upgrade", "connection", "user-agent",
					  "content-length", "transfer-encoding"};
	const char *s = c->headers;

	if (strnlen(s, sizeof(c->headers)) != c->headers_len) {
		fz_fail("config: headers_len is not the length of the headers");
	}
	while (*s != '\0') {
		const char *eol = strstr(s, "\r\n");
		const char *colon = strchr(s, ':');
		if (eol == NULL || colon == NULL || colon > eol || colon == s || colon[1] != ' ') {
			fz_fail("config: a header line that is not 'Name: value\\r\\n'");
		}
		for (const char *q = s; q < colon; q++) {
			if (!tchar(*q)) {
				fz_fail("config: a header name with a non-token character");
			}
		}
		for (const char *q = colon + 2; q < eol; q++) {
			if (((unsigned char)*q < ' ' && *q != '\t') || *q == 0x7f) {
				fz_fail("config: a control character in a header value");
			}
		}
		size_t nl = (size_t)(colon - s);
		for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
			if ((strlen(own[i]) == nl && strncasecmp(s, own[i], nl) == 0) ||
			    (nl >= 14 && strncasecmp(s, "sec-websocket-", 14) == 0)) {
				fz_fail("config: an upgrade header of its own given by --header");
			}
		}
		s = eol + 2;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const vars[] = {
		"RUNNER_URL", "CONTAINER_ID", "RECONNECT_DELAY", "MAX_RECONNECT_DELAY", "MAX_RECONNECT",
		"LOG_LEVEL", "CONNECT_TIMEOUT", "PING_INTERVAL", "PING_TIMEOUT", "UDP_IDLE_TIMEOUT",
		"STALL_TIMEOUT", "MAX_CONNECTIONS", "MAX_UDP", "MAX_MESSAGE", "SSL_CERT_FILE",
		"TLS_SERVER_NAME", "TLS_PIN", "TLS_CERT", "TLS_KEY", "TLS_INSECURE", "TUNNEL_TOKEN",
		"TUNNEL_HEADERS", "ALLOW_PORTS"};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		unsetenv(vars[i]);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size, 0};
	static struct config c;
	char *argv[ARGS_MAX + 2];
	char err[256];
	int argc = 1;
	size_t n;
	const uint8_t *p;

	p = fz_in_part(&in, &n);
	set_env(env_headers, sizeof(env_headers), "TUNNEL_HEADERS", p, n);
	p = fz_in_part(&in, &n);
	set_env(env_allow, sizeof(env_allow), "ALLOW_PORTS", p, n);
	argv[0] = "tunnel-client";
	while (fz_in_more(&in) && argc <= ARGS_MAX) {
		p = fz_in_part(&in, &n);
		argv[argc] = malloc(n + 1);
		if (argv[argc] == NULL) {
			break;
		}
		memcpy(argv[argc], p, n);
		argv[argc++][n] = '\0';
	}
	argv[argc] = NULL;
	memset(err, 'Z', sizeof(err));
	enum config_result r = config_parse(&c, argc, argv, err, sizeof(err));
	if (r == CONFIG_ERROR && strnlen(err, sizeof(err)) == sizeof(err)) {
		fz_fail("config_parse: an error line not terminated");
	}
	if (r == CONFIG_RUN) {
		if (c.runner_url == NULL || c.container_id == NULL) {
			fz_fail("config_parse: accepted without a URL or container id");
		}
		check_headers(&c);
		if (c.allow_ports != NULL && c.allow.n == 0) {
			fz_fail("config_parse: --allow-ports accepted but empty");
		}
	}
	for (int i = 1; i < argc; i++) {
		free(argv[i]);
	}
	return 0;
}
