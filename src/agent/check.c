#include "check.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dial.h"
#include "fmt.h"
#include "handshake.h"
#include "net.h"
#include "rand.h"
#include "session.h"
#include "tls_client.h"
#include "tls_io.h"
#include "transport.h"
#include "url.h"

/* A version no server speaks: refused before any WebSocket handler runs,
 * so no tunnel is ever registered for the container id. */
#define PROBE_VERSION 99

static void line(const char *step, int ok, const char *detail)
{
	fmt_print(1, "%-8s %-4s %s\n", step, ok ? "ok" : "FAIL", detail);
}

static void dial_line(void *ctx, enum dial_step step, int ok, const char *detail)
{
	static const char *const names[] = {"resolve", "connect", "proxy"};

	line(names[step], ok, detail);
}

/* Wait for the transport's socket until deadline; 0 on timeout or stop. */
static int wait_io(const struct session_env *env, struct transport *t, int want_write,
		   uint64_t deadline)
{
	struct pollfd p = {t->fd, transport_events(t, want_write), 0};
	if (*env->stop || net_now_ms() >= deadline) {
		return 0;
	}
	if (net_ppoll(&p, 1, deadline, env->waitmask) > 0) {
		transport_ready(t, p.revents);
	}
	return 1;
}

static int tls_step(const struct session_env *env, struct transport *t, uint64_t deadline)
{
	char detail[TLS_ERRMSG_MAX + 64];

	for (;;) {
		int r = transport_handshake(t);
		if (r > 0) {
			fmt_snprintf(detail, sizeof(detail), "suite=%s verify=%s",
				     tls_io_suite(t->tls), t->tls->verify);
			line("tls", 1, detail);
			return 0;
		}
		if (r < 0) {
			fmt_snprintf(detail, sizeof(detail), "reason=\"%s\"",
				     transport_strerror(t, EPROTO));
			line("tls", 0, detail);
			return -1;
		}
		(void)transport_flush(t);
		if (!wait_io(env, t, 0, deadline)) {
			line("tls", 0, "reason=\"handshake timed out\"");
			return -1;
		}
	}
}

/* The probe's answer: its status line, judged. */
static int judge(const char *path, const uint8_t *resp, size_t len)
{
	char detail[URL_PATH_MAX + 160];
	const char *s = (const char *)resp;
	int status = 0;
	size_t sl = 0;

	while (sl < len && sl < 100 && resp[sl] != '\r' && resp[sl] != '\n') {
		sl++;
	}
	if (sl >= 12 && strncmp(s, "HTTP/1.", 7) == 0 && s[8] == ' ' && s[9] >= '1' && s[9] <= '5' &&
	    s[10] >= '0' && s[10] <= '9' && s[11] >= '0' && s[11] <= '9') {
		status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	}
	if (status == 0) {
		line("probe", 0, "reason=\"the answer is not HTTP\"");
		return -1;
	}
	const char *verdict = status == 426 || status == 400 ? NULL
			      : status == 101 ? "the server accepted a WebSocket version it cannot speak"
			      : status == 404 ? "no tunnel endpoint there: check the runner URL"
			      : status == 401 || status == 403 ? "refused: check --token and --header"
							      : "unexpected answer";
	fmt_snprintf(detail, sizeof(detail), "path=%s status=\"%.*s\"%s%s%s", path, (int)sl,
		     (const char *)resp, verdict != NULL ? " reason=\"" : "",
		     verdict != NULL ? verdict : "", verdict != NULL ? "\"" : "");
	line("probe", verdict == NULL, detail);
	return verdict == NULL ? 0 : -1;
}

static int probe_step(const struct session_env *env, struct transport *t, uint64_t deadline)
{
	char path[URL_PATH_MAX];
	char host[URL_HOST_MAX + 16];
	char extra[SESSION_HEADERS_MAX];
	char req[URL_PATH_MAX + URL_HOST_MAX + 512 + SESSION_HEADERS_MAX];
	char key[HS_KEY_LEN + 1];
	uint8_t nonce[16];
	uint8_t resp[TC_HS_RESPONSE_MAX];
	size_t got = 0;
	size_t sent = 0;
	int n;

	if (rand_bytes(nonce, sizeof(nonce)) != 0 ||
	    url_tunnel_path(env->url, env->cfg->container_id, path, sizeof(path)) != 0 ||
	    url_host_header(env->url, host, sizeof(host)) != 0) {
		line("probe", 0, "reason=\"cannot build the request\"");
		return -1;
	}
	hs_make_key(nonce, key);
	session_upgrade_headers(env, extra, sizeof(extra));
	n = hs_request_version(req, sizeof(req), host, path, key, extra, PROBE_VERSION);
	memset(extra, 0, sizeof(extra));
	while (n > 0 && sent < (size_t)n) {
		ssize_t w = transport_write(t, req + sent, (size_t)n - sent);
		if (w > 0) {
			sent += (size_t)w;
		} else if (errno != EAGAIN && errno != EINTR) {
			break;
		}
		if (transport_flush(t) != 0 || (w <= 0 && !wait_io(env, t, 1, deadline))) {
			break;
		}
	}
	memset(req, 0, sizeof(req));
	while (transport_pending_out(t) > 0 && transport_flush(t) == 0 && wait_io(env, t, 0, deadline)) {
	}
	if (n <= 0 || sent < (size_t)n) {
		line("probe", 0, "reason=\"cannot send the request\"");
		return -1;
	}
	for (;;) {
		ssize_t r = transport_read(t, resp + got, sizeof(resp) - got);
		if (r > 0) {
			got += (size_t)r;
			if (got == sizeof(resp) || memmem(resp, got, "\r\n\r\n", 4) != NULL) {
				break;
			}
			continue;
		}
		if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
			break;
		}
		if (!wait_io(env, t, 0, deadline)) {
			break;
		}
	}
	if (got == 0) {
		line("probe", 0, "reason=\"no answer to the probe\"");
		return -1;
	}
	return judge(path, resp, got);
}

int check_run(const struct session_env *env)
{
	struct dial_env d = {env->cfg->connect_timeout_ms, env->url, env->proxy, env->stop,
			     env->waitmask, dial_line, NULL};
	struct transport t;
	uint64_t deadline;
	const char *failed = NULL;
	char detail[URL_HOST_MAX + URL_PATH_MAX + 64];
	int fd;

	fd = dial_connect(&d);
	if (fd < 0) {
		failed = "cannot reach the runner";
	} else {
		struct tls_io *tls = env->tls != NULL ? tls_client_new(env->tls, fd) : NULL;
		transport_init(&t, fd, tls);
		deadline = net_now_ms() + env->cfg->connect_timeout_ms;
		if (env->tls != NULL && tls == NULL) {
			failed = "out of memory";
		} else if (env->tls != NULL && tls_step(env, &t, deadline) != 0) {
			failed = "TLS failed";
		} else if (probe_step(env, &t, deadline) != 0) {
			failed = "the tunnel endpoint did not answer as a WebSocket server";
		}
		transport_close(&t);
	}
	fmt_snprintf(detail, sizeof(detail), "url=%s%s%s", env->shown_url,
		     failed != NULL ? " reason=" : "", failed != NULL ? failed : "");
	line("verdict", failed == NULL, detail);
	return failed == NULL ? 0 : 1;
}
