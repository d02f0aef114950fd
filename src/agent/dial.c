#include "dial.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "fmt.h"
#include "net.h"
#include "proxy.h"
#include "resolve.h"
#include "url.h"

/* Wait for events on fd until deadline. 1 ready, 0 timed out or stopped
 * (errno ETIMEDOUT or EINTR), -1 on a poll error. */
static int wait_fd(const struct dial_env *env, int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = {fd, events, 0};
		int r;

		if (*env->stop || net_now_ms() >= deadline) {
			errno = *env->stop ? EINTR : ETIMEDOUT;
			return 0;
		}
		r = net_ppoll(&p, 1, deadline, env->waitmask);
		if (r < 0 && errno != EINTR) {
			return -1;
		}
		if (r > 0) {
			return 1;
		}
	}
}

/* Connect to one address within the timeout. A connected fd or -1 with
 * errno. */
static int connect_one(const struct dial_env *env, const struct resolve_addr *ra)
{
	int fd = net_socket(ra->ss.ss_family, SOCK_STREAM);
	int err;

	if (fd < 0) {
		return -1;
	}
	if (net_connect_start(fd, (const struct sockaddr *)&ra->ss, ra->len) != 0 ||
	    wait_fd(env, fd, POLLOUT, net_now_ms() + env->timeout_ms) != 1) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	err = net_connect_result(fd);
	if (err != 0) {
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

static void report(const struct dial_env *env, enum dial_step step, int ok, const char *detail)
{
	env->report(env->ctx, step, ok, detail);
}

/* Resolve host and try each address. A connected fd, or -1. */
static int connect_host(const struct dial_env *env, const char *host, uint16_t port)
{
	struct resolve_addr addrs[RESOLVE_MAX];
	char detail[URL_HOST_MAX + RESOLVE_MAX * 48 + 64];
	char why[96];
	int fd = -1;
	int n = resolve(host, port, addrs, RESOLVE_MAX, env->stop, env->waitmask, why, sizeof(why));

	if (n <= 0) {
		if (!*env->stop) {
			fmt_snprintf(detail, sizeof(detail), "host=%s reason=\"%s\"", host, why);
			report(env, DIAL_RESOLVE, 0, detail);
		}
		return -1;
	}
	size_t o = (size_t)fmt_snprintf(detail, sizeof(detail), "host=%s addrs=", host);
	for (int i = 0; i < n && o < sizeof(detail); i++) {
		char addr[64];
		net_addr_str((const struct sockaddr *)&addrs[i].ss, addr, sizeof(addr));
		o += (size_t)fmt_snprintf(detail + o, sizeof(detail) - o, "%s%s", i > 0 ? "," : "", addr);
	}
	report(env, DIAL_RESOLVE, 1, detail);
	for (int i = 0; i < n && fd < 0 && !*env->stop; i++) {
		char addr[64];
		net_addr_str((const struct sockaddr *)&addrs[i].ss, addr, sizeof(addr));
		fd = connect_one(env, &addrs[i]);
		if (fd >= 0) {
			fmt_snprintf(detail, sizeof(detail), "addr=%s port=%u", addr, (unsigned)port);
			report(env, DIAL_CONNECT, 1, detail);
		} else if (!*env->stop) {
			fmt_snprintf(detail, sizeof(detail), "addr=%s port=%u reason=\"%s\"", addr,
				     (unsigned)port, net_reason(errno, why, sizeof(why)));
			report(env, DIAL_CONNECT, 0, detail);
		}
	}
	return fd;
}

/* Ask the proxy on fd for a tunnel to the runner. 0 or -1 (reported). */
static int proxy_tunnel(const struct dial_env *env, int fd)
{
	const struct url *t = env->target;
	char req[URL_HOST_MAX + URL_AUTH_MAX + 256];
	uint8_t resp[TC_HS_RESPONSE_MAX];
	char detail[160];
	uint64_t deadline = net_now_ms() + env->timeout_ms;
	size_t sent = 0;
	int len = proxy_request(env->proxy, t->host, t->ipv6, t->port, req, sizeof(req));
	int status = 0;
	const char *why = NULL;

	while (len > 0 && sent < (size_t)len && why == NULL) {
		ssize_t n = send(fd, req + sent, (size_t)len - sent, MSG_NOSIGNAL);
		if (n > 0) {
			sent += (size_t)n;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			why = strerror(errno);
		} else if (wait_fd(env, fd, POLLOUT, deadline) != 1) {
			why = "timed out sending the CONNECT request";
		}
	}
	memset(req, 0, sizeof(req)); /* it held the credentials */
	for (;;) {
		size_t used = 0;
		ssize_t n;
		enum proxy_result r;

		if (why != NULL || len < 0) {
			break;
		}
		/* Peek: only the answer's own bytes are taken off the socket. */
		n = recv(fd, resp, sizeof(resp), MSG_PEEK);
		if (n == 0) {
			why = "the proxy closed the connection";
			break;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			why = strerror(errno);
			break;
		}
		r = n > 0 ? proxy_parse_response(resp, (size_t)n, sizeof(resp), &status, &used)
			  : PROXY_NEED_MORE;
		if (r == PROXY_DONE) {
			(void)recv(fd, resp, used, 0);
			fmt_snprintf(detail, sizeof(detail), "proxy=%s:%u status=%d", env->proxy->url.host,
				     (unsigned)env->proxy->url.port, status);
			report(env, DIAL_PROXY, 1, detail);
			return 0;
		}
		if (r == PROXY_ERR_STATUS) {
			fmt_snprintf(detail, sizeof(detail), "proxy=%s:%u reason=\"proxy refused: HTTP %d%s\"",
				     env->proxy->url.host, (unsigned)env->proxy->url.port, status,
				     status == 407 ? " (proxy authentication required)" : "");
			report(env, DIAL_PROXY, 0, detail);
			return -1;
		}
		if (r != PROXY_NEED_MORE) {
			why = r == PROXY_ERR_TOO_BIG ? "the proxy's answer is too large"
						     : "the proxy's answer is not HTTP";
			break;
		}
		if (n == (ssize_t)sizeof(resp) || wait_fd(env, fd, POLLIN, deadline) != 1) {
			why = "no answer from the proxy in time";
			break;
		}
	}
	fmt_snprintf(detail, sizeof(detail), "proxy=%s:%u reason=\"%s\"", env->proxy->url.host,
		     (unsigned)env->proxy->url.port, why != NULL ? why : "cannot build the request");
	report(env, DIAL_PROXY, 0, detail);
	return -1;
}

int dial_connect(const struct dial_env *env)
{
	const struct url *via = env->proxy != NULL ? &env->proxy->url : env->target;
	int fd = connect_host(env, via->host, via->port);

	if (fd >= 0 && env->proxy != NULL && proxy_tunnel(env, fd) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}
