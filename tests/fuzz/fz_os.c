#include "fz_os.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct fz_hooks fz_hooks;

static struct fz_sock socks[FZ_MAX_FDS];
static uint32_t serial;
static uint64_t clock_ms;
static uint64_t rng;
static int show_log = -1;

void fz_reset(void)
{
	for (size_t i = 0; i < FZ_MAX_FDS; i++) {
		if (socks[i].used) {
			free(socks[i].pipe);
		}
		socks[i].used = 0; /* fz_new clears a socket when it is taken */
	}
	serial = 0;
	clock_ms = 1000000;
	rng = 0x9e3779b97f4a7c15ULL;
	memset(&fz_hooks, 0, sizeof(fz_hooks));
}

size_t fz_open_count(void)
{
	size_t n = 0;

	for (size_t i = 0; i < FZ_MAX_FDS; i++) {
		n += socks[i].used != 0;
	}
	return n;
}

struct fz_sock *fz_sock_of(int fd)
{
	if (fd < FZ_FD_BASE || fd >= FZ_FD_BASE + FZ_MAX_FDS || !socks[fd - FZ_FD_BASE].used) {
		return NULL;
	}
	return &socks[fd - FZ_FD_BASE];
}

static int is_fake(int fd)
{
	return fd >= FZ_FD_BASE && fd < FZ_FD_BASE + FZ_MAX_FDS;
}

struct fz_sock *fz_pick(int role, unsigned k)
{
	size_t n = 0;

	for (size_t i = 0; i < FZ_MAX_FDS; i++) {
		n += socks[i].used && socks[i].role == role;
	}
	if (n == 0) {
		return NULL;
	}
	k %= (unsigned)n;
	/* In slot order: the lowest free slot is taken first, so that is
	 * creation order until slots are reused. */
	for (size_t i = 0; i < FZ_MAX_FDS; i++) {
		if (socks[i].used && socks[i].role == role && k-- == 0) {
			return &socks[i];
		}
	}
	return NULL;
}

struct fz_sock *fz_new(int type, int role)
{
	for (size_t i = 0; i < FZ_MAX_FDS; i++) {
		struct fz_sock *s = &socks[i];
		if (!s->used) {
			memset(s, 0, sizeof(*s));
			s->used = 1;
			s->fd = FZ_FD_BASE + (int)i;
			s->type = type;
			s->role = role;
			s->serial = ++serial;
			s->result = -1;
			s->out_budget = SIZE_MAX;
			s->pair = -1;
			return s;
		}
	}
	return NULL;
}

socklen_t fz_addr(uint8_t from, int v6, struct sockaddr_storage *ss)
{
	if (fz_hooks.addr_of != NULL) {
		socklen_t len = fz_hooks.addr_of(from, ss);
		if (len > 0) {
			return len;
		}
	}
	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)(40000 + from));
		a->sin6_addr.s6_addr[15] = 1;
		return sizeof(*a);
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)(40000 + from));
	a->sin_addr.s_addr = htonl(0x7f000001);
	return sizeof(*a);
}

uint64_t fz_now(void)
{
	return clock_ms;
}

void fz_advance(uint64_t ms)
{
	clock_ms += ms;
}

/* ---- the input queue ---- */

void fz_push(struct fz_sock *s, const uint8_t *p, size_t n, size_t repeat, int front)
{
	size_t i;

	if (s == NULL || n == 0 || repeat == 0 || s->in_n == FZ_SLICES) {
		return;
	}
	if (front && s->in_n > 0 && s->in_off > 0) {
		return; /* the head is half read: nothing can go before it */
	}
	if (front) {
		s->in_head = (s->in_head + FZ_SLICES - 1) % FZ_SLICES;
		i = s->in_head;
	} else {
		i = (s->in_head + s->in_n) % FZ_SLICES;
	}
	s->in[i].p = p;
	s->in[i].n = n;
	s->in[i].repeat = repeat;
	s->in[i].from = 0;
	s->in_n++;
}

void fz_push_dgram(struct fz_sock *s, const uint8_t *p, size_t n, uint8_t from)
{
	if (s == NULL || s->in_n == FZ_SLICES) {
		return;
	}
	size_t i = (s->in_head + s->in_n) % FZ_SLICES;
	s->in[i].p = p;
	s->in[i].n = n;
	s->in[i].repeat = 1;
	s->in[i].from = from;
	s->in_n++;
}

size_t fz_queued(const struct fz_sock *s)
{
	size_t total = 0;

	for (size_t k = 0; k < s->in_n; k++) {
		const struct fz_slice *sl = &s->in[(s->in_head + k) % FZ_SLICES];
		total += sl->n * sl->repeat;
	}
	return total - s->in_off;
}

static void drop_head(struct fz_sock *s)
{
	s->in_head = (s->in_head + 1) % FZ_SLICES;
	s->in_n--;
	s->in_off = 0;
}

/* Copy up to n queued stream bytes; consume them unless peek. */
static size_t take_stream(struct fz_sock *s, uint8_t *buf, size_t n, int peek)
{
	size_t got = 0;
	size_t head = s->in_head;
	size_t left = s->in_n;
	size_t off = s->in_off;

	while (got < n && left > 0) {
		const struct fz_slice *sl = &s->in[head];
		size_t total = sl->n * sl->repeat;
		while (got < n && off < total) {
			size_t at = off % sl->n;
			size_t k = sl->n - at;
			if (k > n - got) {
				k = n - got;
			}
			memcpy(buf + got, sl->p + at, k);
			got += k;
			off += k;
		}
		if (off == total) {
			head = (head + 1) % FZ_SLICES;
			left--;
			off = 0;
		}
	}
	if (!peek) {
		s->in_head = head;
		s->in_n = left;
		s->in_off = off;
	}
	return got;
}

/* ---- readiness ---- */

static short revents_of(const struct fz_sock *s, short events)
{
	short rev = 0;

	if (s->pair != -1) {
		const struct fz_sock *p = s->pair >= 0 ? fz_sock_of(s->pair) : NULL;
		if (s->pipe_len > s->pipe_off || s->in_eof) {
			rev |= POLLIN;
		}
		if (p != NULL && !s->shut_wr && p->pipe_len - p->pipe_off < FZ_PIPE_CAP) {
			rev |= POLLOUT;
		}
		if (p == NULL) {
			rev |= POLLHUP;
		}
		return (short)(rev & (events | POLLHUP));
	}
	if (s->listening) {
		rev = s->pending > 0 ? POLLIN : 0;
	} else if (s->connecting) {
		if (s->result >= 0) {
			rev = (short)(POLLOUT | (s->result != 0 ? POLLERR : 0));
		}
	} else {
		/* A datagram socket has no end of stream. */
		if (s->in_n > 0 || (s->in_eof && s->type == SOCK_STREAM) || s->in_err != 0) {
			rev |= POLLIN;
		}
		if (s->out_budget > 0 && !s->shut_wr && (s->connected || s->type == SOCK_DGRAM)) {
			rev |= POLLOUT;
		}
		if (s->in_err != 0 || s->out_err != 0) {
			rev |= POLLERR;
		}
		if (s->hup && s->type == SOCK_STREAM) {
			rev |= POLLHUP;
		}
	}
	return (short)(rev & (events | POLLERR | POLLHUP));
}

static int count_ready(struct pollfd *pfd, nfds_t n)
{
	int ready = 0;

	for (nfds_t i = 0; i < n; i++) {
		struct fz_sock *s = pfd[i].fd >= 0 ? fz_sock_of(pfd[i].fd) : NULL;
		pfd[i].revents = 0;
		if (pfd[i].fd < 0) {
			continue;
		}
		if (s == NULL) {
			/* Not ours: stdin and the like, taken as /dev/null (nothing
			 * to report unless asked). A closed or hung-up fd 0 would
			 * say POLLNVAL or POLLHUP whatever was asked: see
			 * tests/fuzz/findings/agent-status-slots-poll-stdin. */
			pfd[i].revents = pfd[i].events != 0 ? POLLNVAL : 0;
		} else {
			pfd[i].revents = revents_of(s, pfd[i].events);
		}
		ready += pfd[i].revents != 0;
	}
	return ready;
}

int fz_ppoll(struct pollfd *pfd, nfds_t n, const struct timespec *ts, const void *sigmask)
{
	int acted = fz_hooks.step != NULL ? fz_hooks.step() : -1;

	if (getenv("FZ_DEBUG_POLL") != NULL) {
		fprintf(stderr, "ppoll n=%zu ts=%lld.%09ld now=%llu", (size_t)n,
			ts != NULL ? (long long)ts->tv_sec : -1LL, ts != NULL ? ts->tv_nsec : 0L,
			(unsigned long long)clock_ms);
		for (nfds_t i = 0; i < n; i++) {
			fprintf(stderr, " [%d %x]", pfd[i].fd, (unsigned)pfd[i].events);
		}
		fprintf(stderr, "\n");
	}

	for (;;) {
		int ready = count_ready(pfd, n);
		if (ready > 0) {
			if (getenv("FZ_DEBUG_POLL") != NULL) {
				for (nfds_t i = 0; i < n; i++) {
					fprintf(stderr, " ready [%d %x]", pfd[i].fd, (unsigned)pfd[i].revents);
				}
				fprintf(stderr, "\n");
			}
			return ready;
		}
		if (acted == 1) {
			acted = fz_hooks.step != NULL ? fz_hooks.step() : -1;
			continue;
		}
		if (ts != NULL) {
			clock_ms += (uint64_t)ts->tv_sec * 1000 + (uint64_t)ts->tv_nsec / 1000000;
			return 0;
		}
		if (fz_hooks.on_idle == NULL || !fz_hooks.on_idle()) {
			abort(); /* a wait for ever that nothing can end */
		}
		acted = 1;
	}
}

int fz_poll(struct pollfd *pfd, nfds_t n, int timeout_ms)
{
	struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};

	return fz_ppoll(pfd, n, timeout_ms < 0 ? NULL : &ts, NULL);
}

int fz_clock_gettime(clockid_t clk, struct timespec *ts)
{
	uint64_t ms = clock_ms;

	if (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE) {
		ms += 1767225600000ULL; /* 2026-01-01 */
	}
	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
	return 0;
}

/* getrandom from a fixed stream (a run is a function of its input); any
 * other syscall goes through. */
long fz_syscall(long nr, ...)
{
	va_list ap;
	long a[6];

	va_start(ap, nr);
	for (int i = 0; i < 6; i++) {
		a[i] = va_arg(ap, long);
	}
	va_end(ap);
	if (nr == SYS_getrandom) {
		uint8_t *p = (uint8_t *)a[0];
		size_t len = (size_t)a[1];
		for (size_t i = 0; i < len; i++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			p[i] = (uint8_t)(rng >> 24);
		}
		return (long)len;
	}
	return syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* ---- sockets ---- */

static struct fz_sock *need(int fd)
{
	struct fz_sock *s = fz_sock_of(fd);

	if (s == NULL) {
		errno = EBADF;
	}
	return s;
}

/* A connect the harness finished: the socket is connected now. */
static void settle(struct fz_sock *s)
{
	if (s->connecting && s->result == 0) {
		s->connecting = 0;
		s->connected = 1;
	}
}

int fz_socket(int domain, int type, int protocol)
{
	int base = type & 0xf;
	int err = fz_hooks.on_socket != NULL ? fz_hooks.on_socket(domain, base) : 0;
	struct fz_sock *s;

	if (err != 0) {
		errno = err;
		return -1;
	}
	s = fz_new(base == SOCK_DGRAM ? SOCK_DGRAM : SOCK_STREAM, 0);
	if (s == NULL) {
		errno = EMFILE;
		return -1;
	}
	return s->fd;
}

int fz_socketpair(int domain, int type, int protocol, int sv[2])
{
	struct fz_sock *a = fz_new(SOCK_STREAM, 0);
	struct fz_sock *b = a != NULL ? fz_new(SOCK_STREAM, 0) : NULL;

	if (b == NULL) {
		if (a != NULL) {
			a->used = 0;
		}
		errno = EMFILE;
		return -1;
	}
	a->connected = b->connected = 1;
	a->pair = b->fd;
	b->pair = a->fd;
	sv[0] = a->fd;
	sv[1] = b->fd;
	return 0;
}

/* send() on a socket pair end: a copy for the other end. */
static ssize_t pipe_send(struct fz_sock *s, const uint8_t *buf, size_t n)
{
	struct fz_sock *p = s->pair >= 0 ? fz_sock_of(s->pair) : NULL;
	size_t room;

	if (p == NULL || s->shut_wr) {
		errno = EPIPE;
		return -1;
	}
	if (p->pipe_off > 0) {
		memmove(p->pipe, p->pipe + p->pipe_off, p->pipe_len - p->pipe_off);
		p->pipe_len -= p->pipe_off;
		p->pipe_off = 0;
	}
	room = FZ_PIPE_CAP - p->pipe_len;
	if (room == 0) {
		errno = EAGAIN;
		return -1;
	}
	if (p->pipe == NULL) {
		p->pipe = malloc(FZ_PIPE_CAP);
		if (p->pipe == NULL) {
			abort();
		}
	}
	if (n > room) {
		n = room;
	}
	memcpy(p->pipe + p->pipe_len, buf, n);
	p->pipe_len += n;
	s->out_total += n;
	return (ssize_t)n;
}

static ssize_t pipe_recv(struct fz_sock *s, uint8_t *buf, size_t n, int peek)
{
	size_t have = s->pipe_len - s->pipe_off;

	if (have == 0) {
		if (s->in_eof || s->pair == -2) {
			return 0;
		}
		errno = EAGAIN;
		return -1;
	}
	if (n > have) {
		n = have;
	}
	memcpy(buf, s->pipe + s->pipe_off, n);
	if (!peek) {
		s->pipe_off += n;
	}
	return (ssize_t)n;
}

int fz_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct fz_sock *s = need(fd);
	int err;

	if (s == NULL) {
		return -1;
	}
	if (len <= sizeof(s->peer)) {
		memcpy(&s->peer, sa, len);
		s->peer_len = len;
	}
	s->port = ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
						  : ((const struct sockaddr_in *)sa)->sin_port);
	err = fz_hooks.on_connect != NULL ? fz_hooks.on_connect(s) : 0;
	if (err != 0) {
		errno = err;
		return -1;
	}
	if (s->type == SOCK_DGRAM) {
		s->connected = 1;
		return 0;
	}
	s->connecting = 1;
	errno = EINPROGRESS;
	return -1;
}

int fz_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct fz_sock *s = need(fd);

	if (s == NULL) {
		return -1;
	}
	s->port = ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
						  : ((const struct sockaddr_in *)sa)->sin_port);
	return 0;
}

int fz_listen(int fd, int backlog)
{
	struct fz_sock *s = need(fd);

	if (s == NULL) {
		return -1;
	}
	s->listening = 1;
	return 0;
}

int fz_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct fz_sock *l = need(fd);
	struct fz_sock *s;
	struct sockaddr_storage ss;
	socklen_t sl;

	if (l == NULL) {
		return -1;
	}
	if (!l->listening || l->pending == 0) {
		errno = EAGAIN;
		return -1;
	}
	s = fz_new(SOCK_STREAM, 0);
	if (s == NULL) {
		errno = EMFILE;
		return -1;
	}
	l->pending--;
	s->connected = 1;
	sl = fz_addr((uint8_t)s->serial, 0, &ss);
	memcpy(&s->peer, &ss, sl);
	s->peer_len = sl;
	if (sa != NULL && len != NULL) {
		memcpy(sa, &ss, *len < sl ? *len : sl);
		*len = sl;
	}
	if (fz_hooks.on_accept != NULL) {
		fz_hooks.on_accept(l, s);
	}
	return s->fd;
}

int fz_accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	return fz_accept4(fd, sa, len, 0);
}

int fz_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct fz_sock *s = need(fd);

	if (s == NULL) {
		return -1;
	}
	settle(s);
	if (!s->connected) {
		errno = ENOTCONN;
		return -1;
	}
	memcpy(sa, &s->peer, *len < s->peer_len ? *len : s->peer_len);
	*len = s->peer_len;
	return 0;
}

int fz_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct sockaddr_storage ss;
	socklen_t sl = fz_addr(0, 0, &ss);

	if (need(fd) == NULL) {
		return -1;
	}
	memcpy(sa, &ss, *len < sl ? *len : sl);
	*len = sl;
	return 0;
}

int fz_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct fz_sock *s = need(fd);

	if (s == NULL) {
		return -1;
	}
	if (level == SOL_SOCKET && name == SO_ERROR && *len >= sizeof(int)) {
		int err = s->connecting && s->result > 0 ? s->result : 0;
		memcpy(val, &err, sizeof(err));
		*len = sizeof(err);
		return 0;
	}
	memset(val, 0, *len);
	return 0;
}

int fz_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	if (!is_fake(fd)) {
		return setsockopt(fd, level, name, val, len);
	}
	return need(fd) != NULL ? 0 : -1;
}

ssize_t fz_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa, socklen_t *len)
{
	struct fz_sock *s = need(fd);

	if (s == NULL) {
		return -1;
	}
	if (s->pair != -1) {
		return pipe_recv(s, buf, n, (flags & MSG_PEEK) != 0);
	}
	settle(s);
	if (s->connecting) {
		if (s->result > 0) {
			errno = s->result;
			return -1;
		}
		errno = EAGAIN;
		return -1;
	}
	if (s->type == SOCK_DGRAM && s->in_n > 0) {
		const struct fz_slice *sl = &s->in[s->in_head];
		size_t k = sl->n < n ? sl->n : n;
		memcpy(buf, sl->p, k);
		if (sa != NULL && len != NULL) {
			struct sockaddr_storage ss;
			socklen_t l = fz_addr(sl->from, sl->from & 0x80, &ss);
			memcpy(sa, &ss, *len < l ? *len : l);
			*len = l;
		}
		if (!(flags & MSG_PEEK)) {
			drop_head(s);
		}
		return (ssize_t)k;
	}
	if (s->type == SOCK_STREAM && s->in_n > 0) {
		if (sa != NULL && len != NULL) {
			*len = 0;
		}
		return (ssize_t)take_stream(s, buf, n, (flags & MSG_PEEK) != 0);
	}
	if (s->in_err != 0) {
		errno = s->in_err;
		if (!(flags & MSG_PEEK)) {
			s->in_err = 0;
			s->in_eof = s->type == SOCK_STREAM;
		}
		return -1;
	}
	if (s->in_eof && s->type == SOCK_STREAM) {
		return 0;
	}
	errno = EAGAIN;
	return -1;
}

ssize_t fz_recv(int fd, void *buf, size_t n, int flags)
{
	return fz_recvfrom(fd, buf, n, flags, NULL, NULL);
}

ssize_t fz_read(int fd, void *buf, size_t n)
{
	if (!is_fake(fd)) {
		return read(fd, buf, n);
	}
	return fz_recvfrom(fd, buf, n, 0, NULL, NULL);
}

ssize_t fz_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
		  socklen_t len)
{
	struct fz_sock *s = need(fd);
	size_t w;

	if (s == NULL) {
		return -1;
	}
	if (s->pair != -1) {
		return pipe_send(s, buf, n);
	}
	settle(s);
	if (s->out_err != 0) {
		errno = s->out_err;
		return -1;
	}
	if (s->in_err != 0) {
		/* A pending socket error fails the next call, whichever it is. */
		errno = s->in_err;
		s->in_err = 0;
		s->in_eof = s->type == SOCK_STREAM;
		return -1;
	}
	if (s->shut_wr || (s->hup && s->type == SOCK_STREAM)) {
		errno = EPIPE; /* a hung-up stream takes nothing more */
		return -1;
	}
	if (s->type == SOCK_STREAM && !s->connected) {
		errno = s->connecting ? EAGAIN : ENOTCONN;
		return -1;
	}
	if (s->out_budget == 0) {
		errno = EAGAIN;
		return -1;
	}
	/* A datagram goes whole while any budget is left (POLLOUT said so). */
	w = n < s->out_budget || s->type == SOCK_DGRAM ? n : s->out_budget;
	if (s->out_budget != SIZE_MAX) {
		s->out_budget -= w < s->out_budget ? w : s->out_budget;
	}
	if (sa != NULL && sa->sa_family == AF_INET) {
		s->last_from = (uint8_t)(ntohs(((const struct sockaddr_in *)sa)->sin_port) - 40000);
	}
	s->out_total += w;
	if (fz_hooks.on_send != NULL) {
		fz_hooks.on_send(s, buf, w);
	}
	return (ssize_t)w;
}

ssize_t fz_send(int fd, const void *buf, size_t n, int flags)
{
	return fz_sendto(fd, buf, n, flags, NULL, 0);
}

ssize_t fz_write(int fd, const void *buf, size_t n)
{
	if (is_fake(fd)) {
		return fz_sendto(fd, buf, n, 0, NULL, 0);
	}
	if (fd == 1 || fd == 2) {
		if (show_log < 0) {
			show_log = getenv("FUZZ_SHOW_LOG") != NULL;
		}
		if (!show_log) {
			return (ssize_t)n;
		}
	}
	return write(fd, buf, n);
}

int fz_shutdown(int fd, int how)
{
	struct fz_sock *s = need(fd);

	if (s == NULL) {
		return -1;
	}
	if (!s->connected) {
		errno = ENOTCONN;
		return -1;
	}
	if (how == SHUT_WR || how == SHUT_RDWR) {
		struct fz_sock *p = s->pair >= 0 ? fz_sock_of(s->pair) : NULL;
		s->shut_wr = 1;
		if (p != NULL) {
			p->in_eof = 1;
		}
	}
	return 0;
}

int fz_close(int fd)
{
	if (!is_fake(fd)) {
		return close(fd);
	}
	struct fz_sock *s = fz_sock_of(fd);
	if (s == NULL) {
		abort(); /* a fake socket closed twice, or never opened */
	}
	struct fz_sock *p = s->pair >= 0 ? fz_sock_of(s->pair) : NULL;
	if (p != NULL) {
		p->pair = -2; /* its reads end once the bytes are taken */
		p->in_eof = 1;
	}
	free(s->pipe);
	s->pipe = NULL;
	s->used = 0;
	return 0;
}
