#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "fmt.h"

#define NET_BACKLOG 4096

uint64_t net_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int net_socket(int family, int type)
{
	return socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

int net_connect_start(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (connect(fd, sa, len) == 0 || errno == EINPROGRESS) {
		return 0;
	}
	return -1;
}

int net_connect_result(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int err = 0;
	socklen_t len = sizeof(err);
	char ch;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		return 0;
	}
	/* Not connected: a read returns the pending error through errno,
	 * which (unlike the raw SO_ERROR value) emulators translate. */
	if (recv(fd, &ch, 1, MSG_PEEK) < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != ENOTCONN) {
		return errno;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
		return errno;
	}
	return err != 0 ? err : ECONNREFUSED;
}

int net_connect_local(int type, uint16_t port)
{
	struct sockaddr_in sin;
	int fd = net_socket(AF_INET, type);

	if (fd < 0) {
		return -1;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (net_connect_start(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	if (type == SOCK_STREAM) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

void net_tune_runner(int fd, unsigned user_timeout_ms)
{
	int one = 1;
	int idle = 30;
	int intvl = 10;
	int cnt = 3;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
#ifdef TCP_USER_TIMEOUT
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms));
#endif
}

void net_addr_str(const struct sockaddr *sa, char *buf, unsigned len)
{
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		size_t o = 0;
		/* Eight uncompressed groups: valid text, no inet_ntop (which
		 * would bring in stdio's printf). */
		for (int i = 0; i < 16 && o < len; i += 2) {
			o += (size_t)fmt_snprintf(buf + o, len - o, i > 0 ? ":%x" : "%x",
						  (unsigned)(a[i] << 8 | a[i + 1]));
		}
		return;
	}
	const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	fmt_snprintf(buf, len, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
}

const char *net_reason(int err, char *buf, unsigned len)
{
	fmt_snprintf(buf, len, "%s", strerror(err));
	if (buf[0] >= 'A' && buf[0] <= 'Z') {
		buf[0] = (char)(buf[0] - 'A' + 'a');
	}
	return buf;
}

int net_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon;
	const char *h = s;
	size_t hl;
	uint64_t port = 0;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || end[1] != ':') {
			return -1;
		}
		h = s + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			return -1;
		}
		hl = (size_t)(colon - s);
	}
	if (hl >= sizeof(host)) {
		return -1;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	for (const char *p = colon + 1; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || port > 65535) {
			return -1;
		}
		port = port * 10 + (uint64_t)(*p - '0');
	}
	if (colon[1] == '\0' || port > 65535) {
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return inet_pton(AF_INET6, host, &a->sin6_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	*len = sizeof(*a);
	if (host[0] == '\0' || strcmp(host, "*") == 0) {
		a->sin_addr.s_addr = htonl(INADDR_ANY);
		return 0;
	}
	if (strcmp(host, "localhost") == 0) {
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return 0;
	}
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

uint16_t net_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6) {
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	}
	return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

int net_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a);
	}
	return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
}

int net_listen(const struct sockaddr *sa, socklen_t len, int type)
{
	int fd = net_socket(sa->sa_family, type);
	int one = 1;

	if (fd < 0) {
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	/* musl's SOMAXCONN is 128: a burst (agents back after a restart,
	 * a crowd on a public port) overflows it and waits out SYN retries.
	 * The kernel clamps this to net.core.somaxconn. */
	if (bind(fd, sa, len) != 0 || (type == SOCK_STREAM && listen(fd, NET_BACKLOG) != 0)) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* Raise the soft open-file limit to the hard one (every connection is a
 * descriptor); returns the soft limit in force. The prlimit64 syscall
 * itself: musl's setrlimit brings in its all-threads machinery (2.5 KiB)
 * that a one-thread program does not need. */
uint64_t net_raise_nofile(void)
{
	struct {
		uint64_t cur;
		uint64_t max;
	} rl, want;

	if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) != 0) {
		return 1024;
	}
	if (rl.cur < rl.max) {
		want.cur = rl.max;
		want.max = rl.max;
		if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &want, NULL) == 0) {
			rl.cur = rl.max;
		}
	}
	return rl.cur; /* RLIM64_INFINITY is all ones: as good as unlimited */
}

int net_ppoll(struct pollfd *pfd, nfds_t n, uint64_t deadline_ms, const sigset_t *waitmask)
{
	static uint64_t checked_ms; /* the last look for a pending signal */
	uint64_t now = net_now_ms();
	uint64_t wait = deadline_ms > now ? deadline_ms - now : 0;
	struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
	int r = ppoll(pfd, n, &ts, waitmask);
	sigset_t pending;

	/* Not after every wake-up (a syscall per loop turn, two per round
	 * trip): a signal waits at most TC_SIGNAL_CHECK_MS under load. */
	if (r <= 0 || waitmask == NULL || now - checked_ms < TC_SIGNAL_CHECK_MS) {
		return r;
	}
	checked_ms = now;
	if (sigpending(&pending) == 0 && !sigisemptyset(&pending)) {
		static const struct timespec zero = {0, 0};
		int err = errno;
		(void)ppoll(NULL, 0, &zero, waitmask); /* the handlers run here */
		errno = err;
	}
	return r;
}
