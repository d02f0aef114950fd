#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fmt.h"

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
