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

int fz_is_fake(int fd)
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

void fz_feed(struct fz_sock *s, const uint8_t *p, size_t n, size_t repeat, size_t *volume)
{
	if (s == NULL || n == 0) {
		return;
	}
	if (n * repeat > FZ_VOLUME_MAX - *volume) {
		repeat = (FZ_VOLUME_MAX - *volume) / n;
	}
	*volume += n * repeat;
	fz_push(s, p, n, repeat, 0);
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

void fz_drop_head(struct fz_sock *s)
{
	s->in_head = (s->in_head + 1) % FZ_SLICES;
	s->in_n--;
	s->in_off = 0;
}

size_t fz_take_stream(struct fz_sock *s, uint8_t *buf, size_t n, int peek)
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
