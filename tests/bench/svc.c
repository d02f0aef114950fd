/*
 * svc: the local services of the benchmark, one program (a host test tool,
 * built with the host's gcc; see tests/bench/bench.py).
 *
 *   svc sink|source|echo|hold [--port P]
 *       listen on 127.0.0.1:P (0 = any), print "port N", serve until
 *       SIGTERM/SIGINT, exit 0.
 *       sink    first 8 bytes: big-endian uint64 N; discard N bytes, then
 *               write one 'k'; discard the rest until EOF, then close
 *       source  first 8 bytes: big-endian uint64 N; write N bytes, then
 *               shut down the write side and close at the peer's EOF
 *       echo    write back every byte in order; stop reading a connection
 *               while its backlog is above ECHO_HIGH; close at EOF once
 *               everything is written
 *       hold    read and discard, never write, close at EOF
 *
 *   svc rr --port P --count C --size S
 *       client of an echo on 127.0.0.1:P: C sequential round trips of S
 *       bytes, one JSON line {"p50","p99","p999","count"} in microseconds.
 *
 *   svc push --port P --bytes N
 *       client of a sink (through whatever listens on 127.0.0.1:P): the
 *       8-byte length N, then N bytes, then wait for the sink's 'k' and
 *       close. One JSON line {"mode","bytes","seconds","errors"}; seconds
 *       from the connect to the 'k'.
 *   svc pull --port P --bytes N
 *       client of a source: the 8-byte length N, then read N bytes and the
 *       EOF after them (more bytes, or EOF before N, is an error). Same
 *       JSON line; seconds from the connect to the last byte.
 *   svc conns --port P --count C --size S [--window W]
 *       client of an echo: C connections, each writes S bytes (its own
 *       pattern) and reads them back, compared; a connection that is done
 *       stays open, so at the end all C are open at once; then every one
 *       is closed. At most W connections (default C) are started and not
 *       yet echoed at any time, so a listen backlog below C is not
 *       overrun. One JSON line {"mode","served","errors","dropped",
 *       "bytes","seconds","open_max","count","size"}: dropped counts echoed
 *       connections the far end closed while held; bytes counts both
 *       directions of the served ones. A run with no progress for
 *       CONNS_STALL_MS ends with the rest counted as errors.
 *   A client that fails (cannot connect, early EOF, wrong bytes) says why
 *   on stderr; push and pull then exit 1, conns counts it in errors.
 *
 * One thread, one level-triggered epoll loop, non-blocking sockets; the
 * interest of each connection is derived from its state after every event.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Bytes moved per read or write call. */
#define IO_CHUNK (256 * 1024)
/* An echo connection stops reading while this much waits to be written
 * back (its backlog is then at most ECHO_HIGH + IO_CHUNK). */
#define ECHO_HIGH (1024 * 1024)
/* Events taken per epoll_wait. */
#define MAX_EVENTS 512
/* Largest round-trip size and count of the rr client. */
#define RR_MAX_SIZE (64UL * 1024 * 1024)
#define RR_MAX_COUNT 100000000UL
/* conns client: connections at most, bytes per connection at most, and
 * the time without progress after which the rest count as errors. */
#define CONNS_MAX 1000000UL
#define CONNS_MAX_SIZE (1024UL * 1024)
#define CONNS_STALL_MS 60000

enum mode { MODE_SINK, MODE_SOURCE, MODE_ECHO, MODE_HOLD, MODE_RR, MODE_PUSH, MODE_PULL,
	    MODE_CONNS };

struct conn {
	int fd;
	uint32_t events;        /* interest registered with epoll */
	unsigned char hdr[8];   /* sink/source: the size header */
	unsigned hdr_len;       /* header bytes received so far */
	uint64_t left;          /* sink: bytes still to discard before 'k'; source: still to write */
	int ack_pending;        /* sink: 'k' is owed */
	int ack_sent;           /* sink: 'k' was written */
	int wr_shut;            /* source: SHUT_WR done */
	int rd_eof;             /* the peer finished sending: read no more */
	char *buf;              /* echo backlog: buf[off, off + len) */
	size_t off, len, cap;
};

struct svc {
	enum mode mode;
	int ep;
	int lfd;
	int sfd;                /* signalfd */
	int spare;              /* reserved fd, given up to shed a connection at EMFILE */
	size_t live;
};

/* Markers for the non-connection entries of the epoll set. */
static char listen_tag, signal_tag;

static unsigned char scratch[IO_CHUNK];
static unsigned char pattern[IO_CHUNK];

static void die(const char *what)
{
	fprintf(stderr, "svc: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: svc sink|source|echo|hold [--port P]\n"
			"       svc rr --port P --count C --size S\n"
			"       svc push|pull --port P --bytes N\n"
			"       svc conns --port P --count C --size S [--window W]\n");
	exit(2);
}

/* parse_u64: a decimal number in [min, max], or exit 2 naming the option. */
static uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end = NULL;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9') {
		fprintf(stderr, "svc: %s: a number is needed\n", opt);
		exit(2);
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "svc: %s: '%s' is not a number in %llu..%llu\n", opt, s,
			(unsigned long long)min, (unsigned long long)max);
		exit(2);
	}
	return v;
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++) {
		v = (v << 8) | p[i];
	}
	return v;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			fprintf(stderr, "svc: setrlimit(RLIMIT_NOFILE): %s\n", strerror(errno));
		}
	}
}

/* ---- the services ---------------------------------------------------- */

static uint32_t conn_interest(const struct svc *s, const struct conn *c)
{
	uint32_t ev = 0;

	switch (s->mode) {
	case MODE_SINK:
		ev = EPOLLIN;
		if (c->ack_pending) {
			ev |= EPOLLOUT;
		}
		break;
	case MODE_SOURCE:
		ev = EPOLLIN;
		if (c->hdr_len == 8 && c->left > 0) {
			ev |= EPOLLOUT;
		}
		break;
	case MODE_ECHO:
		if (c->len < ECHO_HIGH) {
			ev |= EPOLLIN;
		}
		if (c->len > 0) {
			ev |= EPOLLOUT;
		}
		break;
	default:
		ev = EPOLLIN;
		break;
	}
	if (c->rd_eof) {
		ev &= ~(uint32_t)EPOLLIN;
	}
	return ev;
}

static void conn_free(struct svc *s, struct conn *c)
{
	close(c->fd);
	free(c->buf);
	free(c);
	s->live--;
}

/* conn_update: register the interest the state asks for; -1 on error. */
static int conn_update(struct svc *s, struct conn *c)
{
	struct epoll_event ev;
	uint32_t want = conn_interest(s, c);

	if (want == c->events) {
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.ptr = c;
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
		return -1;
	}
	c->events = want;
	return 0;
}

/* echo_append: keep n bytes of p behind the backlog; -1 when out of memory. */
static int echo_append(struct conn *c, const unsigned char *p, size_t n)
{
	if (c->off + c->len + n > c->cap) {
		if (c->off > 0) {
			memmove(c->buf, c->buf + c->off, c->len);
			c->off = 0;
		}
		if (c->len + n > c->cap) {
			size_t cap = c->cap ? c->cap : 16384;
			char *nb;

			while (cap < c->len + n) {
				cap *= 2;
			}
			nb = realloc(c->buf, cap);
			if (nb == NULL) {
				return -1;
			}
			c->buf = nb;
			c->cap = cap;
		}
	}
	memcpy(c->buf + c->off + c->len, p, n);
	c->len += n;
	return 0;
}

/* echo_flush: write the backlog until it is empty or the socket is full;
 * -1 on a write error. */
static int echo_flush(struct conn *c)
{
	while (c->len > 0) {
		size_t n = c->len < IO_CHUNK ? c->len : IO_CHUNK;
		ssize_t w = send(c->fd, c->buf + c->off, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				return 0;
			}
			return -1;
		}
		c->off += (size_t)w;
		c->len -= (size_t)w;
	}
	c->off = 0;
	return 0;
}

/* take_header: move up to 8 - hdr_len bytes of p into the header; returns
 * how many bytes of p it took. */
static size_t take_header(struct conn *c, const unsigned char *p, size_t n)
{
	size_t k = 8 - c->hdr_len;

	if (k > n) {
		k = n;
	}
	memcpy(c->hdr + c->hdr_len, p, k);
	c->hdr_len += (unsigned)k;
	if (c->hdr_len == 8) {
		c->left = get_be64(c->hdr);
	}
	return k;
}

/* on_bytes: n bytes were read from c; 0 to go on, -1 to close. */
static int on_bytes(struct svc *s, struct conn *c, const unsigned char *p, size_t n)
{
	size_t used = 0;

	switch (s->mode) {
	case MODE_SINK:
		if (c->hdr_len < 8) {
			used = take_header(c, p, n);
			if (c->hdr_len < 8) {
				return 0;
			}
		}
		if (!c->ack_sent && !c->ack_pending) {
			uint64_t k = n - used;

			c->left -= k < c->left ? k : c->left;
			if (c->left == 0) {
				c->ack_pending = 1;
			}
		}
		return 0;
	case MODE_SOURCE:
		if (c->hdr_len < 8) {
			take_header(c, p, n);
		}
		return 0;
	case MODE_ECHO:
		if (c->len == 0) {
			ssize_t w;

			do {
				w = send(c->fd, p, n, MSG_NOSIGNAL);
			} while (w < 0 && errno == EINTR);
			if (w < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK) {
					return -1;
				}
				w = 0;
			}
			used = (size_t)w;
		}
		if (used < n) {
			return echo_append(c, p + used, n - used);
		}
		return 0;
	default:
		return 0;
	}
}

/* conn_done: nothing more can move on c: it may be closed. */
static int conn_done(const struct svc *s, const struct conn *c)
{
	if (!c->rd_eof) {
		return 0;
	}
	switch (s->mode) {
	case MODE_SINK:
		return !c->ack_pending;
	case MODE_SOURCE:
		return c->hdr_len < 8 || c->left == 0;
	case MODE_ECHO:
		return c->len == 0;
	default:
		return 1;
	}
}

/* conn_read: read what is there (at most a few chunks, so one busy
 * connection cannot starve the others); 0 to go on, 1 at EOF, -1 on error. */
static int conn_read(struct svc *s, struct conn *c)
{
	int round;

	for (round = 0; round < 4; round++) {
		ssize_t r = recv(c->fd, scratch, sizeof(scratch), 0);

		if (r < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				return 0;
			}
			return -1;
		}
		if (r == 0) {
			return 1;
		}
		if (on_bytes(s, c, scratch, (size_t)r) != 0) {
			return -1;
		}
		if (s->mode == MODE_ECHO && c->len >= ECHO_HIGH) {
			return 0;
		}
		if ((size_t)r < sizeof(scratch)) {
			return 0;
		}
	}
	return 0;
}

/* conn_write: the writes the state asks for; -1 on error. */
static int conn_write(struct svc *s, struct conn *c)
{
	ssize_t w;

	switch (s->mode) {
	case MODE_SINK:
		if (!c->ack_pending) {
			return 0;
		}
		w = send(c->fd, "k", 1, MSG_NOSIGNAL);
		if (w == 1) {
			c->ack_pending = 0;
			c->ack_sent = 1;
			return 0;
		}
		return (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) ? 0 : -1;
	case MODE_SOURCE:
		while (c->hdr_len == 8 && c->left > 0) {
			size_t n = c->left < sizeof(pattern) ? (size_t)c->left : sizeof(pattern);

			w = send(c->fd, pattern, n, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EINTR) {
					continue;
				}
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					return 0;
				}
				return -1;
			}
			c->left -= (uint64_t)w;
		}
		if (c->hdr_len == 8 && c->left == 0 && !c->wr_shut) {
			/* every byte is queued: FIN after them; close at the peer's EOF */
			if (shutdown(c->fd, SHUT_WR) != 0) {
				return -1;
			}
			c->wr_shut = 1;
		}
		return 0;
	case MODE_ECHO:
		return echo_flush(c);
	default:
		return 0;
	}
}

static void conn_event(struct svc *s, struct conn *c, uint32_t ev)
{
	if (ev & EPOLLERR) {
		conn_free(s, c);
		return;
	}
	if ((ev & (EPOLLIN | EPOLLHUP)) && (c->events & EPOLLIN)) {
		int r = conn_read(s, c);

		if (r < 0) {
			conn_free(s, c);
			return;
		}
		if (r == 1) {
			c->rd_eof = 1;
		}
	}
	if (conn_write(s, c) != 0) {
		conn_free(s, c);
		return;
	}
	/* HUP while not reading: both directions are gone, nothing can move */
	if (conn_done(s, c) || ((ev & EPOLLHUP) && !(c->events & EPOLLIN))) {
		conn_free(s, c);
		return;
	}
	if (conn_update(s, c) != 0) {
		conn_free(s, c);
	}
}

static void accept_all(struct svc *s)
{
	for (;;) {
		struct epoll_event ev;
		struct conn *c;
		int one = 1;
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) {
				continue;
			}
			if ((errno == EMFILE || errno == ENFILE) && s->spare >= 0) {
				/* shed one connection rather than spin on a full table */
				close(s->spare);
				fd = accept(s->lfd, NULL, NULL);
				if (fd >= 0) {
					close(fd);
				}
				s->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
				fprintf(stderr, "svc: out of file descriptors at %zu connections\n", s->live);
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				fprintf(stderr, "svc: accept: %s\n", strerror(errno));
			}
			return;
		}
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		memset(&ev, 0, sizeof(ev));
		c->events = conn_interest(s, c);
		ev.events = c->events;
		ev.data.ptr = c;
		if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			free(c);
			continue;
		}
		s->live++;
	}
}

static int listen_on(unsigned port)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		die("socket");
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		die("bind");
	}
	if (listen(fd, SOMAXCONN) != 0) {
		die("listen");
	}
	if (getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		die("getsockname");
	}
	printf("port %u\n", (unsigned)ntohs(a.sin_port));
	fflush(stdout);
	return fd;
}

static int serve(enum mode mode, unsigned port)
{
	static struct epoll_event evs[MAX_EVENTS];
	struct svc s;
	struct epoll_event ev;
	sigset_t mask;

	memset(&s, 0, sizeof(s));
	s.mode = mode;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
		die("sigprocmask");
	}
	s.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s.sfd < 0) {
		die("signalfd");
	}
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	if (s.ep < 0) {
		die("epoll_create1");
	}
	s.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	s.lfd = listen_on(port);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = &listen_tag;
	if (epoll_ctl(s.ep, EPOLL_CTL_ADD, s.lfd, &ev) != 0) {
		die("epoll_ctl");
	}
	ev.data.ptr = &signal_tag;
	if (epoll_ctl(s.ep, EPOLL_CTL_ADD, s.sfd, &ev) != 0) {
		die("epoll_ctl");
	}
	for (;;) {
		int n = epoll_wait(s.ep, evs, MAX_EVENTS, -1);
		int k;

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			die("epoll_wait");
		}
		/* Each entry appears once per batch, so freeing a connection while
		 * handling its own event cannot leave a dangling later entry. */
		for (k = 0; k < n; k++) {
			void *p = evs[k].data.ptr;

			if (p == &signal_tag) {
				return 0;
			}
			if (p == &listen_tag) {
				accept_all(&s);
				continue;
			}
			conn_event(&s, p, evs[k].events);
		}
	}
}

/* ---- the rr client ---------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Percentile of sorted v[0..n), n > 0: the element at round(p * (n - 1)),
 * as the peer computes its rtt_us, so the two compare like for like. */
static double percentile(const double *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	return v[i < n ? i : n - 1];
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int rr(unsigned port, size_t count, size_t size)
{
	struct sockaddr_in a;
	unsigned char *out = malloc(size), *in = malloc(size);
	double *t = malloc(count * sizeof(*t));
	int one = 1;
	size_t i;
	int fd;

	if (out == NULL || in == NULL || t == NULL) {
		fprintf(stderr, "svc: out of memory\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < size; i++) {
		out[i] = (unsigned char)i;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		die("socket");
	}
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		die("connect");
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (i = 0; i < count; i++) {
		double t0 = now_us();
		size_t done = 0;

		while (done < size) {
			ssize_t w = send(fd, out + done, size - done, MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR) {
				continue;
			}
			if (w <= 0) {
				die("send");
			}
			done += (size_t)w;
		}
		done = 0;
		while (done < size) {
			ssize_t r = recv(fd, in + done, size - done, 0);

			if (r < 0 && errno == EINTR) {
				continue;
			}
			if (r < 0) {
				die("recv");
			}
			if (r == 0) {
				fprintf(stderr, "svc: rr: the echo closed after %zu round trips\n", i);
				return 1;
			}
			done += (size_t)r;
		}
		t[i] = now_us() - t0;
		if (memcmp(in, out, size) != 0) {
			fprintf(stderr, "svc: rr: round trip %zu came back different\n", i);
			return 1;
		}
	}
	close(fd);
	qsort(t, count, sizeof(*t), cmp_double);
	printf("{\"p50\": %.3f, \"p99\": %.3f, \"p999\": %.3f, \"count\": %zu}\n",
	       percentile(t, count, 0.50), percentile(t, count, 0.99), percentile(t, count, 0.999), count);
	fflush(stdout);
	free(out);
	free(in);
	free(t);
	return 0;
}

/* ---- the push, pull and conns clients ---------------------------------- */

/* connect_to: a blocking TCP connection to 127.0.0.1:port (exit 1 on failure). */
static int connect_to(unsigned port)
{
	struct sockaddr_in a;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		die("socket");
	}
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		die("connect");
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

/* send_all: write n bytes of p (blocking); exit 1 on failure. */
static void send_all(int fd, const unsigned char *p, size_t n, const char *what)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			fprintf(stderr, "svc: %s: send: %s\n", what, strerror(errno));
			exit(1);
		}
		p += w;
		n -= (size_t)w;
	}
}

static void print_bytes_result(const char *mode, uint64_t bytes, double secs)
{
	printf("{\"mode\": \"%s\", \"bytes\": %llu, \"seconds\": %.6f, \"errors\": 0}\n", mode,
	       (unsigned long long)bytes, secs);
	fflush(stdout);
}

/* push: the length, N bytes, then the sink's 'k'. */
static int push(unsigned port, uint64_t bytes)
{
	unsigned char hdr[8];
	unsigned char ack;
	double t0 = now_us();
	int fd = connect_to(port);
	uint64_t left = bytes;
	ssize_t r;

	put_be64(hdr, bytes);
	send_all(fd, hdr, sizeof(hdr), "push");
	while (left > 0) {
		size_t n = left < sizeof(pattern) ? (size_t)left : sizeof(pattern);

		send_all(fd, pattern, n, "push");
		left -= n;
	}
	do {
		r = recv(fd, &ack, 1, 0);
	} while (r < 0 && errno == EINTR);
	if (r != 1 || ack != 'k') {
		fprintf(stderr, "svc: push: %s instead of the sink's 'k' after %llu bytes\n",
			r < 0 ? strerror(errno) : r == 0 ? "EOF" : "another byte",
			(unsigned long long)bytes);
		return 1;
	}
	print_bytes_result("push", bytes, (now_us() - t0) / 1e6);
	close(fd);
	return 0;
}

/* pull: the length, then N bytes and EOF. */
static int pull(unsigned port, uint64_t bytes)
{
	unsigned char hdr[8];
	double t0 = now_us(), t1 = 0;
	int fd = connect_to(port);
	uint64_t got = 0;

	put_be64(hdr, bytes);
	send_all(fd, hdr, sizeof(hdr), "pull");
	if (bytes == 0) {
		t1 = now_us();
	}
	for (;;) {
		ssize_t r = recv(fd, scratch, sizeof(scratch), 0);

		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			fprintf(stderr, "svc: pull: recv after %llu of %llu bytes: %s\n",
				(unsigned long long)got, (unsigned long long)bytes, strerror(errno));
			return 1;
		}
		if (r == 0) {
			break;
		}
		got += (uint64_t)r;
		if (got > bytes) {
			fprintf(stderr, "svc: pull: more than the %llu bytes asked for\n",
				(unsigned long long)bytes);
			return 1;
		}
		if (got == bytes) {
			t1 = now_us();
		}
	}
	if (got != bytes) {
		fprintf(stderr, "svc: pull: EOF after %llu of %llu bytes\n", (unsigned long long)got,
			(unsigned long long)bytes);
		return 1;
	}
	print_bytes_result("pull", bytes, (t1 - t0) / 1e6);
	close(fd);
	return 0;
}

enum cstate { C_IDLE, C_CONNECTING, C_SENDING, C_READING, C_HELD, C_FAILED, C_CLOSED };

struct cconn {
	int fd;
	enum cstate state;
	uint32_t events;
	size_t sent, got;
};

struct conns {
	struct cconn *c;
	unsigned port;
	size_t count, size, window;
	size_t started, finished;  /* finished: echoed or failed */
	size_t served, errors, dropped, open, open_max;
	int ep;
	int reported;              /* one failure reason on stderr is enough */
};

/* The byte at offset j of connection i's stream. */
static unsigned char conn_byte(size_t i, size_t j)
{
	return (unsigned char)((i * 131 + j * 7 + (j >> 8)) & 0xff);
}

static void cconn_close(struct conns *cs, struct cconn *c, enum cstate to)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
		cs->open--;
	}
	c->state = to;
}

static void cconn_fail(struct conns *cs, size_t i, const char *why, int err)
{
	struct cconn *c = &cs->c[i];

	if (!cs->reported) {
		fprintf(stderr, "svc: conns: connection %zu: %s%s%s\n", i, why, err ? ": " : "",
			err ? strerror(err) : "");
		cs->reported = 1;
	}
	cconn_close(cs, c, C_FAILED);
	cs->errors++;
	cs->finished++;
}

static int cconn_want(struct conns *cs, size_t i, uint32_t want)
{
	struct cconn *c = &cs->c[i];
	struct epoll_event ev;

	if (want == c->events) {
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.u64 = i;
	if (epoll_ctl(cs->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
		return -1;
	}
	c->events = want;
	return 0;
}

/* Start connection i (non-blocking connect). */
static void cconn_start(struct conns *cs, size_t i)
{
	struct cconn *c = &cs->c[i];
	struct sockaddr_in a;
	struct epoll_event ev;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	cs->started++;
	if (fd < 0) {
		cconn_fail(cs, i, "socket", errno);
		return;
	}
	c->fd = fd;
	cs->open++;
	if (cs->open > cs->open_max) {
		cs->open_max = cs->open;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)cs->port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
		cconn_fail(cs, i, "connect", errno);
		return;
	}
	c->state = C_CONNECTING;
	c->events = EPOLLOUT;
	memset(&ev, 0, sizeof(ev));
	ev.events = c->events;
	ev.data.u64 = i;
	if (epoll_ctl(cs->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		cconn_fail(cs, i, "epoll_ctl", errno);
	}
}

/* Write what connection i still owes; 0, or -1 when it failed. */
static int cconn_send(struct conns *cs, size_t i)
{
	struct cconn *c = &cs->c[i];

	while (c->sent < cs->size) {
		size_t n = cs->size - c->sent;
		size_t j;
		ssize_t w;

		if (n > sizeof(scratch)) {
			n = sizeof(scratch);
		}
		for (j = 0; j < n; j++) {
			scratch[j] = conn_byte(i, c->sent + j);
		}
		w = send(c->fd, scratch, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return 0;
		}
		if (w < 0) {
			cconn_fail(cs, i, "send", errno);
			return -1;
		}
		c->sent += (size_t)w;
	}
	return 0;
}

/* Read the echo of connection i; 0, or -1 when it failed. */
static int cconn_recv(struct conns *cs, size_t i)
{
	struct cconn *c = &cs->c[i];

	for (;;) {
		ssize_t r = recv(c->fd, scratch, sizeof(scratch), 0);
		size_t j;

		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return 0;
		}
		if (r < 0) {
			cconn_fail(cs, i, "recv", errno);
			return -1;
		}
		if (r == 0) {
			cconn_fail(cs, i, c->got == 0 ? "closed before any byte came back"
						       : "closed before the whole echo", 0);
			return -1;
		}
		if (c->got + (size_t)r > cs->size) {
			cconn_fail(cs, i, "more bytes came back than were sent", 0);
			return -1;
		}
		for (j = 0; j < (size_t)r; j++) {
			if (scratch[j] != conn_byte(i, c->got + j)) {
				cconn_fail(cs, i, "the echo came back different", 0);
				return -1;
			}
		}
		c->got += (size_t)r;
		if (c->got == cs->size) {
			return 0;
		}
	}
}

/* A held connection became readable: the far end closed it (or sent more). */
static void cconn_held_event(struct conns *cs, size_t i)
{
	struct cconn *c = &cs->c[i];
	ssize_t r;

	do {
		r = recv(c->fd, scratch, sizeof(scratch), 0);
	} while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		return;
	}
	if (!cs->reported) {
		fprintf(stderr, "svc: conns: connection %zu: %s while held open\n", i,
			r == 0 ? "closed by the far end" : r > 0 ? "unexpected bytes" : strerror(errno));
		cs->reported = 1;
	}
	cs->dropped++;
	cconn_close(cs, c, C_CLOSED);
}

static void cconn_event(struct conns *cs, size_t i, uint32_t ev)
{
	struct cconn *c = &cs->c[i];

	if (c->state == C_HELD) {
		cconn_held_event(cs, i);
		return;
	}
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
			err = errno;
		}
		if (err != 0) {
			cconn_fail(cs, i, "connect", err);
			return;
		}
		if (!(ev & EPOLLOUT)) {
			return;
		}
		c->state = C_SENDING;
	}
	if (c->state == C_SENDING || c->state == C_READING) {
		if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && cconn_recv(cs, i) != 0) {
			return;
		}
		if (c->sent < cs->size && cconn_send(cs, i) != 0) {
			return;
		}
		if (c->sent == cs->size) {
			c->state = C_READING;
		}
		if (c->got == cs->size) {
			c->state = C_HELD;
			cs->served++;
			cs->finished++;
		}
	}
	if (cconn_want(cs, i, c->sent < cs->size ? EPOLLIN | EPOLLOUT : EPOLLIN) != 0) {
		cconn_fail(cs, i, "epoll_ctl", errno);
	}
}

static int conns_client(unsigned port, size_t count, size_t size, size_t window)
{
	static struct epoll_event evs[MAX_EVENTS];
	struct conns cs;
	double t0, t1, progress;
	size_t i;

	memset(&cs, 0, sizeof(cs));
	cs.port = port;
	cs.count = count;
	cs.size = size;
	cs.window = window;
	cs.c = calloc(count, sizeof(*cs.c));
	if (cs.c == NULL) {
		fprintf(stderr, "svc: out of memory\n");
		return 1;
	}
	for (i = 0; i < count; i++) {
		cs.c[i].fd = -1;
	}
	signal(SIGPIPE, SIG_IGN);
	cs.ep = epoll_create1(EPOLL_CLOEXEC);
	if (cs.ep < 0) {
		die("epoll_create1");
	}
	t0 = now_us();
	progress = t0;
	while (cs.finished < count) {
		size_t before = cs.finished;
		int n, k;

		while (cs.started < count && cs.started - cs.finished < window) {
			cconn_start(&cs, cs.started);
		}
		n = epoll_wait(cs.ep, evs, MAX_EVENTS, 1000);
		if (n < 0 && errno != EINTR) {
			die("epoll_wait");
		}
		for (k = 0; k < n; k++) {
			cconn_event(&cs, (size_t)evs[k].data.u64, evs[k].events);
		}
		if (cs.finished != before || n > 0) {
			progress = now_us();
		} else if (now_us() - progress > CONNS_STALL_MS * 1000.0) {
			fprintf(stderr, "svc: conns: no progress for %d s: %zu of %zu connections "
					"unfinished\n", CONNS_STALL_MS / 1000, count - cs.finished, count);
			for (i = 0; i < count; i++) {
				if (cs.c[i].state == C_IDLE || cs.c[i].state == C_CONNECTING ||
				    cs.c[i].state == C_SENDING || cs.c[i].state == C_READING) {
					cconn_close(&cs, &cs.c[i], C_FAILED);
					cs.errors++;
				}
			}
			break;
		}
	}
	t1 = now_us();
	/* Every served connection is open at this point (unless dropped). */
	for (i = 0; i < count; i++) {
		cconn_close(&cs, &cs.c[i], cs.c[i].state == C_HELD ? C_CLOSED : cs.c[i].state);
	}
	printf("{\"mode\": \"conns\", \"served\": %zu, \"errors\": %zu, \"dropped\": %zu, "
	       "\"bytes\": %llu, \"seconds\": %.6f, \"open_max\": %zu, \"count\": %zu, \"size\": %zu}\n",
	       cs.served, cs.errors, cs.dropped, 2ULL * cs.served * size, (t1 - t0) / 1e6,
	       cs.open_max, count, size);
	fflush(stdout);
	close(cs.ep);
	free(cs.c);
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const names[] = {"sink", "source", "echo", "hold", "rr",
					    "push", "pull", "conns"};
	enum mode mode = MODE_SINK;
	uint64_t port = 0, count = 0, size = 0, bytes = 0, window = 0;
	int have_port = 0, have_count = 0, have_size = 0, have_bytes = 0;
	int client;
	size_t i;
	int k;

	if (argc < 2) {
		usage();
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(argv[1], names[i]) == 0) {
			break;
		}
	}
	if (i == sizeof(names) / sizeof(names[0])) {
		usage();
	}
	mode = (enum mode)i;
	client = mode == MODE_RR || mode == MODE_PUSH || mode == MODE_PULL || mode == MODE_CONNS;
	for (k = 2; k < argc; k += 2) {
		const char *v = k + 1 < argc ? argv[k + 1] : NULL;

		if (strcmp(argv[k], "--port") == 0) {
			port = parse_u64("--port", v, client ? 1 : 0, 65535);
			have_port = 1;
		} else if (strcmp(argv[k], "--count") == 0 && mode == MODE_RR) {
			count = parse_u64("--count", v, 1, RR_MAX_COUNT);
			have_count = 1;
		} else if (strcmp(argv[k], "--size") == 0 && mode == MODE_RR) {
			size = parse_u64("--size", v, 1, RR_MAX_SIZE);
			have_size = 1;
		} else if (strcmp(argv[k], "--count") == 0 && mode == MODE_CONNS) {
			count = parse_u64("--count", v, 1, CONNS_MAX);
			have_count = 1;
		} else if (strcmp(argv[k], "--size") == 0 && mode == MODE_CONNS) {
			size = parse_u64("--size", v, 1, CONNS_MAX_SIZE);
			have_size = 1;
		} else if (strcmp(argv[k], "--window") == 0 && mode == MODE_CONNS) {
			window = parse_u64("--window", v, 1, CONNS_MAX);
		} else if (strcmp(argv[k], "--bytes") == 0 && (mode == MODE_PUSH || mode == MODE_PULL)) {
			bytes = parse_u64("--bytes", v, 0, UINT64_MAX >> 1);
			have_bytes = 1;
		} else {
			usage();
		}
	}
	raise_nofile();
	for (i = 0; i < sizeof(pattern); i++) {
		pattern[i] = (unsigned char)('a' + i % 26);
	}
	switch (mode) {
	case MODE_RR:
		if (!have_port || !have_count || !have_size) {
			usage();
		}
		return rr((unsigned)port, (size_t)count, (size_t)size);
	case MODE_PUSH:
	case MODE_PULL:
		if (!have_port || !have_bytes) {
			usage();
		}
		signal(SIGPIPE, SIG_IGN);
		return mode == MODE_PUSH ? push((unsigned)port, bytes) : pull((unsigned)port, bytes);
	case MODE_CONNS:
		if (!have_port || !have_count || !have_size) {
			usage();
		}
		return conns_client((unsigned)port, (size_t)count, (size_t)size,
				    window != 0 ? (size_t)window : (size_t)count);
	default:
		break;
	}
	return serve(mode, (unsigned)port);
}
