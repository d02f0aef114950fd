/*
 * fleet: a load generator of idle agents for tunnel-server (a host test
 * tool, built with the host's gcc; see tests/bench/bench.py).
 *
 *   fleet --url ws://HOST:PORT[/BASE] --count N [--token T] [--prefix ID]
 *         [--seconds S] [--window W] [--timeout S]
 *
 * Opens N WebSocket client connections, agent ids PREFIX0..PREFIX<N-1>
 * (path BASE/ws/tunnel/ID, as the agent builds it), at most W (default 100)
 * connecting or upgrading at a time so the server's listen backlog is not
 * overrun. Each sends the upgrade (Host, Upgrade, Connection,
 * Sec-WebSocket-Key, Sec-WebSocket-Version 13, Authorization: Bearer T with
 * --token, User-Agent fleet) and checks the 101 and its
 * Sec-WebSocket-Accept; a connection not up within --timeout seconds
 * (default 30) fails. Then it stays idle: a WebSocket ping is answered
 * with a masked pong carrying the same payload (RFC 6455), a tunnel PING
 * (binary message, type 6) with PONG (type 7, the same client id, proto
 * and port), a close frame with a close frame (counted in
 * closed_by_server, as is an EOF or a reset); anything else is ignored.
 *
 * stdout: "connected N" once every connection is up, or "error F of N
 * failed: REASONS; connected M" once each is up or failed; then, --seconds
 * (default 10) later, one JSON line:
 *   {"connected", "failed", "pings_min", "pings_max", "max_gap_ms",
 *    "closed_by_server", "max_tail_ms", "pings", "ws_pings",
 *    "tunnel_pings", "connect_seconds", "seconds", "errors": {REASON: n}}
 * pings count WebSocket pings and tunnel PINGs; pings_min/max are over the
 * connections that came up; max_gap_ms is the longest time between two
 * pings any connection saw, counting from its connect; max_tail_ms the
 * longest time since the last ping (or the connect) at the end, over the
 * connections still open. Exit 0 (2 for bad usage, 1 if it cannot run).
 *
 * One thread, one level-triggered epoll loop, non-blocking sockets; raises
 * its own RLIMIT_NOFILE to the hard limit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Largest upgrade response header block. */
#define RESPONSE_MAX 8192
/* Events taken per epoll_wait; the loop wakes at least this often (ms). */
#define MAX_EVENTS 512
#define TICK_MS 100
/* Limits of the options. */
#define COUNT_MAX 1000000UL
#define ID_MAX 64
#define TOKEN_MAX 256
/* Distinct failure reasons remembered. */
#define REASONS 8
/* Bytes of one read. */
#define READ_CHUNK 65536
/* Tunnel message types (PROTOCOL.md). */
#define T_PING 6
#define T_PONG 7

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

enum cstate {
	F_IDLE,       /* not started */
	F_CONNECTING, /* TCP connect in progress */
	F_UPGRADING,  /* request sent (or queued), waiting for the 101 */
	F_OPEN,       /* upgraded: idle, answering pings */
	F_CLOSED,     /* was open; the server closed it */
	F_FAILED,     /* never came up */
};

struct fconn {
	int fd;
	enum cstate state;
	uint32_t events;       /* interest registered with epoll */
	uint64_t deadline_ms;  /* connect + upgrade deadline */
	uint64_t last_ping_ms; /* last ping, or the connect */
	uint32_t pings;
	uint32_t max_gap_ms;
	char key[25];          /* Sec-WebSocket-Key, base64 of 16 bytes */
	/* pending output (request, pongs): out[0, out_len) */
	uint8_t *out;
	size_t out_len, out_cap;
	/* the upgrade response until its end */
	char *resp;
	size_t resp_len;
	/* the frame being received */
	uint8_t fh[14];
	uint8_t fh_len;
	uint8_t fh_need;       /* header bytes this frame has: 2..14 */
	uint8_t opcode;
	uint8_t fin;
	uint8_t masked;
	uint64_t pay_len, pay_off;
	uint8_t ctl[125];      /* a control frame's payload */
	/* the data message being received: its first 8 bytes */
	uint8_t msg_op;
	uint8_t msg_hdr[8];
	uint8_t msg_hdr_len;
};

struct reason {
	char text[96];
	size_t n;
};

struct fleet {
	struct fconn *c;
	size_t count, window;
	size_t started, outstanding, up, failed, closed;
	uint64_t timeout_ms;
	int ep;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char host[300];          /* Host header: HOST:PORT as in the URL */
	char base[512];          /* the URL's path, one trailing slash dropped */
	const char *prefix;
	const char *token;
	uint64_t ws_pings, tunnel_pings;
	struct reason reasons[REASONS];
	size_t other_reasons;
	uint64_t rng;            /* mask keys (not secret: a test tool) */
};

static uint8_t scratch[READ_CHUNK];
static volatile sig_atomic_t stopped;

static void on_term(int sig)
{
	stopped = sig;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void usage(void)
{
	fprintf(stderr, "usage: fleet --url ws://HOST:PORT[/BASE] --count N [--token T] [--prefix ID]\n"
			"             [--seconds S] [--window W] [--timeout S]\n");
	exit(2);
}

/* parse_u64: a decimal number in [min, max], or exit 2 naming the option. */
static uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end = NULL;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9') {
		fprintf(stderr, "fleet: %s: a number is needed\n", opt);
		exit(2);
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "fleet: %s: '%s' is not a number in %llu..%llu\n", opt, s,
			(unsigned long long)min, (unsigned long long)max);
		exit(2);
	}
	return v;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			fprintf(stderr, "fleet: setrlimit(RLIMIT_NOFILE): %s\n", strerror(errno));
		}
	}
}

/* ---- SHA-1 and base64 (the Sec-WebSocket-Accept check) ------------------ */

static uint32_t rol(uint32_t x, int n)
{
	return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80];
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	int i;

	for (i = 0; i < 16; i++) {
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	}
	for (i = 16; i < 80; i++) {
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	}
	for (i = 0; i < 80; i++) {
		uint32_t f, k, t;

		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5A827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ED9EBA1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8F1BBCDC;
		} else {
			f = b ^ c ^ d;
			k = 0xCA62C1D6;
		}
		t = rol(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

/* sha1: the digest of p[0, n) (n < 120 here, but any n works). */
static void sha1(const uint8_t *p, size_t n, uint8_t out[20])
{
	uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
	uint8_t block[64];
	uint64_t bits = (uint64_t)n * 8;
	size_t i;

	while (n >= 64) {
		sha1_block(h, p);
		p += 64;
		n -= 64;
	}
	memset(block, 0, sizeof(block));
	memcpy(block, p, n);
	block[n] = 0x80;
	if (n >= 56) {
		sha1_block(h, block);
		memset(block, 0, sizeof(block));
	}
	for (i = 0; i < 8; i++) {
		block[63 - i] = (uint8_t)(bits >> (8 * i));
	}
	sha1_block(h, block);
	for (i = 0; i < 20; i++) {
		out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
	}
}

/* base64: encode p[0, n) into out (room for 4 * ((n + 2) / 3) + 1). */
static void base64(const uint8_t *p, size_t n, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

static uint64_t next_rand(struct fleet *f)
{
	/* xorshift64* */
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 0x2545F4914F6CDD1DULL;
}

/* ---- failures and output ------------------------------------------------ */

static void note_reason(struct fleet *f, const char *text)
{
	size_t i;

	for (i = 0; i < REASONS && f->reasons[i].n > 0; i++) {
		if (strcmp(f->reasons[i].text, text) == 0) {
			f->reasons[i].n++;
			return;
		}
	}
	if (i == REASONS) {
		f->other_reasons++;
		return;
	}
	snprintf(f->reasons[i].text, sizeof(f->reasons[i].text), "%s", text);
	f->reasons[i].n = 1;
}

static void conn_close_fd(struct fleet *f, struct fconn *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = 0;
	c->out_cap = 0;
	free(c->resp);
	c->resp = NULL;
	(void)f;
}

/* A connection that never came up. why may name an errno (err != 0). */
static void conn_fail(struct fleet *f, struct fconn *c, const char *why, int err)
{
	char text[96];
	size_t i;

	if (c->state != F_CONNECTING && c->state != F_UPGRADING) {
		return;
	}
	snprintf(text, sizeof(text), "%s%s%s", why, err ? ": " : "", err ? strerror(err) : "");
	/* Server-controlled text (a status line) goes into JSON: keep it plain. */
	for (i = 0; text[i] != '\0'; i++) {
		if (text[i] == '"' || text[i] == '\\' || (unsigned char)text[i] < 0x20 ||
		    (unsigned char)text[i] > 0x7e) {
			text[i] = '?';
		}
	}
	note_reason(f, text);
	conn_close_fd(f, c);
	c->state = F_FAILED;
	f->outstanding--;
	f->failed++;
}

/* An open connection the server ended. */
static void conn_closed(struct fleet *f, struct fconn *c)
{
	if (c->state != F_OPEN) {
		return;
	}
	conn_close_fd(f, c);
	c->state = F_CLOSED;
	f->closed++;
}

/* Register the interest the state asks for; -1 on error. */
static int conn_interest(struct fleet *f, size_t i)
{
	struct fconn *c = &f->c[i];
	struct epoll_event ev;
	uint32_t want;

	if (c->fd < 0) {
		return 0;
	}
	want = c->state == F_CONNECTING ? EPOLLOUT : EPOLLIN;
	if (c->out_len > 0) {
		want |= EPOLLOUT;
	}
	if (want == c->events) {
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.u64 = i;
	if (epoll_ctl(f->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
		return -1;
	}
	c->events = want;
	return 0;
}

/* Write pending output; 0, or -1 on a write error (errno set). */
static int conn_flush(struct fconn *c)
{
	size_t off = 0;

	while (off < c->out_len) {
		ssize_t w = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		}
		if (w < 0) {
			return -1;
		}
		off += (size_t)w;
	}
	if (off == c->out_len) {
		free(c->out);
		c->out = NULL;
		c->out_len = 0;
		c->out_cap = 0;
	} else if (off > 0) {
		memmove(c->out, c->out + off, c->out_len - off);
		c->out_len -= off;
	}
	return 0;
}

/* Queue n bytes of p behind the pending output; -1 when out of memory. */
static int conn_queue(struct fconn *c, const void *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 256;
		uint8_t *nb;

		while (cap < c->out_len + n) {
			cap *= 2;
		}
		nb = realloc(c->out, cap);
		if (nb == NULL) {
			return -1;
		}
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return 0;
}

/* Queue one masked frame (FIN, opcode, payload of at most 125 bytes). */
static int conn_frame(struct fleet *f, struct fconn *c, uint8_t opcode, const uint8_t *p, size_t n)
{
	uint8_t fr[6 + 125];
	uint64_t r = next_rand(f);
	size_t i;

	fr[0] = (uint8_t)(0x80 | opcode);
	fr[1] = (uint8_t)(0x80 | n);
	for (i = 0; i < 4; i++) {
		fr[2 + i] = (uint8_t)(r >> (8 * i));
	}
	for (i = 0; i < n; i++) {
		fr[6 + i] = p[i] ^ fr[2 + i % 4];
	}
	return conn_queue(c, fr, 6 + n);
}

/* ---- connecting and the upgrade ---------------------------------------- */

static void conn_start(struct fleet *f, size_t i, uint64_t now)
{
	struct fconn *c = &f->c[i];
	struct epoll_event ev;
	int one = 1;
	int fd = socket(f->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	f->started++;
	f->outstanding++;
	c->state = F_CONNECTING;
	c->deadline_ms = now + f->timeout_ms;
	if (fd < 0) {
		conn_fail(f, c, "socket", errno);
		return;
	}
	c->fd = fd;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&f->addr, f->addr_len) != 0 && errno != EINPROGRESS) {
		conn_fail(f, c, "connect", errno);
		return;
	}
	c->events = EPOLLOUT;
	memset(&ev, 0, sizeof(ev));
	ev.events = c->events;
	ev.data.u64 = i;
	if (epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		conn_fail(f, c, "epoll_ctl", errno);
	}
}

/* The TCP connect finished: queue the upgrade request. */
static void conn_connected(struct fleet *f, size_t i)
{
	struct fconn *c = &f->c[i];
	uint8_t raw[16];
	char req[1024];
	int n;
	size_t k;

	for (k = 0; k < sizeof(raw); k += 8) {
		uint64_t r = next_rand(f);
		memcpy(raw + k, &r, 8);
	}
	base64(raw, sizeof(raw), c->key);
	n = snprintf(req, sizeof(req),
		     "GET %s/ws/tunnel/%s%zu HTTP/1.1\r\n"
		     "Host: %s\r\n"
		     "Upgrade: websocket\r\n"
		     "Connection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\n"
		     "Sec-WebSocket-Version: 13\r\n"
		     "%s%s%s"
		     "User-Agent: fleet\r\n"
		     "\r\n",
		     f->base, f->prefix, i, f->host, c->key, f->token != NULL ? "Authorization: Bearer " : "",
		     f->token != NULL ? f->token : "", f->token != NULL ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(req)) {
		conn_fail(f, c, "upgrade request too long", 0);
		return;
	}
	c->state = F_UPGRADING;
	if (conn_queue(c, req, (size_t)n) != 0) {
		conn_fail(f, c, "out of memory", 0);
	}
}

/* The value of header name in the block hdrs (NUL-terminated, lines end
 * in CRLF) copied into out, or -1 if absent. */
static int header_value(const char *hdrs, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *p = strstr(hdrs, "\r\n");

	while (p != NULL && p[2] != '\0') {
		const char *line = p + 2;
		const char *eol = strstr(line, "\r\n");

		if (eol == NULL) {
			break;
		}
		if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
			const char *v = line + nl + 1;
			const char *e = eol;
			size_t n;

			while (v < e && (*v == ' ' || *v == '\t')) {
				v++;
			}
			while (e > v && (e[-1] == ' ' || e[-1] == '\t')) {
				e--;
			}
			n = (size_t)(e - v);
			if (n >= outlen) {
				n = outlen - 1;
			}
			memcpy(out, v, n);
			out[n] = '\0';
			return 0;
		}
		p = eol;
	}
	return -1;
}

static void feed_frames(struct fleet *f, size_t i, const uint8_t *p, size_t n, uint64_t now);

/* Upgrade response bytes. Once the header block is whole: check it, open
 * the connection, and hand what follows to the frame parser. */
static void feed_response(struct fleet *f, size_t i, const uint8_t *p, size_t n, uint64_t now)
{
	struct fconn *c = &f->c[i];
	char expect[64], got[64], line[80];
	uint8_t digest[20];
	char *end;
	size_t take, used, k;

	if (c->resp == NULL) {
		c->resp = malloc(RESPONSE_MAX + 1);
		if (c->resp == NULL) {
			conn_fail(f, c, "out of memory", 0);
			return;
		}
		c->resp_len = 0;
	}
	take = RESPONSE_MAX - c->resp_len < n ? RESPONSE_MAX - c->resp_len : n;
	memcpy(c->resp + c->resp_len, p, take);
	c->resp_len += take;
	c->resp[c->resp_len] = '\0';
	end = strstr(c->resp, "\r\n\r\n");
	if (end == NULL) {
		if (c->resp_len == RESPONSE_MAX) {
			conn_fail(f, c, "upgrade response too long", 0);
		}
		return;
	}
	used = (size_t)(end + 4 - c->resp) - (c->resp_len - take);
	end[2] = '\0';
	if (strncmp(c->resp, "HTTP/1.1 101 ", 13) != 0 && strcmp(c->resp, "HTTP/1.1 101\r\n") != 0) {
		for (k = 0; k + 1 < sizeof(line) && c->resp[k] != '\r' && c->resp[k] != '\0'; k++) {
			line[k] = c->resp[k];
		}
		line[k] = '\0';
		conn_fail(f, c, line, 0);
		return;
	}
	{
		char cat[64];
		int m = snprintf(cat, sizeof(cat), "%s%s", c->key, WS_GUID);

		sha1((const uint8_t *)cat, (size_t)m, digest);
		base64(digest, sizeof(digest), expect);
	}
	if (header_value(c->resp, "Sec-WebSocket-Accept", got, sizeof(got)) != 0 ||
	    strcmp(got, expect) != 0) {
		conn_fail(f, c, "wrong or missing Sec-WebSocket-Accept", 0);
		return;
	}
	free(c->resp);
	c->resp = NULL;
	c->state = F_OPEN;
	c->last_ping_ms = now;
	f->outstanding--;
	f->up++;
	if (used < n) {
		feed_frames(f, i, p + used, n - used, now);
	}
}

/* ---- frames from the server -------------------------------------------- */

static void on_ping(struct fconn *c, uint64_t now)
{
	uint64_t gap = now - c->last_ping_ms;

	if (gap > c->max_gap_ms) {
		c->max_gap_ms = gap > UINT32_MAX ? UINT32_MAX : (uint32_t)gap;
	}
	c->last_ping_ms = now;
	c->pings++;
}

/* A whole control frame: ping -> pong, close -> close, pong ignored. */
static void on_control(struct fleet *f, struct fconn *c, uint64_t now)
{
	size_t n = (size_t)c->pay_len;

	if (c->opcode == 0x9) {
		f->ws_pings++;
		on_ping(c, now);
		if (conn_frame(f, c, 0xA, c->ctl, n) != 0) {
			conn_closed(f, c);
		}
	} else if (c->opcode == 0x8) {
		/* Answer with its code (if any), try to send it, and go. */
		(void)conn_frame(f, c, 0x8, c->ctl, n >= 2 ? 2 : 0);
		(void)conn_flush(c);
		conn_closed(f, c);
	}
}

/* The end of a data message: a tunnel PING gets PONG. */
static void on_message(struct fleet *f, struct fconn *c, uint64_t now)
{
	if (c->msg_op == 0x2 && c->msg_hdr_len == 8 && c->msg_hdr[0] == T_PING) {
		uint8_t pong[8];

		memcpy(pong, c->msg_hdr, sizeof(pong));
		pong[0] = T_PONG;
		f->tunnel_pings++;
		on_ping(c, now);
		if (conn_frame(f, c, 0x2, pong, sizeof(pong)) != 0) {
			conn_closed(f, c);
		}
	}
	c->msg_op = 0;
	c->msg_hdr_len = 0;
}

/* Header length (2..14) once its first two bytes are known. */
static uint8_t frame_header_len(const uint8_t *fh)
{
	uint8_t len7 = fh[1] & 0x7f;
	uint8_t need = 2;

	if (len7 == 126) {
		need += 2;
	} else if (len7 == 127) {
		need += 8;
	}
	if (fh[1] & 0x80) {
		need += 4;
	}
	return need;
}

/* The frame header is whole: decode it. 0, or -1 on a protocol error. */
static int frame_begin(struct fconn *c)
{
	uint8_t len7 = c->fh[1] & 0x7f;
	size_t k;

	c->fin = (c->fh[0] & 0x80) != 0;
	c->opcode = c->fh[0] & 0x0f;
	c->masked = (c->fh[1] & 0x80) != 0;
	if (len7 < 126) {
		c->pay_len = len7;
	} else if (len7 == 126) {
		c->pay_len = (uint64_t)c->fh[2] << 8 | c->fh[3];
	} else {
		c->pay_len = 0;
		for (k = 0; k < 8; k++) {
			c->pay_len = c->pay_len << 8 | c->fh[2 + k];
		}
	}
	c->pay_off = 0;
	if (c->opcode >= 0x8) {
		return c->pay_len <= sizeof(c->ctl) && c->fin ? 0 : -1;
	}
	if (c->opcode == 0x0 && c->msg_op == 0) {
		return -1; /* a continuation of nothing */
	}
	if (c->opcode != 0x0) {
		if (c->msg_op != 0) {
			return -1; /* a new message inside one */
		}
		if (c->opcode != 0x1 && c->opcode != 0x2) {
			return -1;
		}
		c->msg_op = c->opcode;
		c->msg_hdr_len = 0;
	}
	return 0;
}

/* The frame's payload is whole. */
static void frame_end(struct fleet *f, struct fconn *c, uint64_t now)
{
	if (c->opcode >= 0x8) {
		on_control(f, c, now);
	} else if (c->fin) {
		on_message(f, c, now);
	}
	c->fh_len = 0;
	c->fh_need = 0;
}

static void feed_frames(struct fleet *f, size_t i, const uint8_t *p, size_t n, uint64_t now)
{
	struct fconn *c = &f->c[i];

	while (n > 0 && c->state == F_OPEN) {
		if (c->fh_need == 0 || c->fh_len < c->fh_need) {
			c->fh[c->fh_len++] = *p++;
			n--;
			if (c->fh_len == 2) {
				c->fh_need = frame_header_len(c->fh);
			}
			if (c->fh_len < 2 || c->fh_len < c->fh_need) {
				continue;
			}
			if (frame_begin(c) != 0) {
				conn_closed(f, c);
				return;
			}
			if (c->pay_len == 0) {
				frame_end(f, c, now);
			}
			continue;
		}
		{
			uint64_t left = c->pay_len - c->pay_off;
			size_t k = left < n ? (size_t)left : n;
			size_t j;

			/* Control payloads are kept, and the first 8 bytes of a
			 * binary message; the rest of a data frame is skipped. */
			for (j = 0; j < k; j++) {
				uint64_t at = c->pay_off + j;
				uint8_t b = p[j];

				if (c->masked) {
					b ^= c->fh[c->fh_need - 4 + at % 4];
				}
				if (c->opcode >= 0x8) {
					c->ctl[at] = b;
				} else if (c->msg_op == 0x2 && c->msg_hdr_len < 8) {
					c->msg_hdr[c->msg_hdr_len++] = b;
				} else {
					break;
				}
			}
			c->pay_off += k;
			p += k;
			n -= k;
			if (c->pay_off == c->pay_len) {
				frame_end(f, c, now);
			}
		}
	}
}

/* ---- the loop ----------------------------------------------------------- */

static void conn_event(struct fleet *f, size_t i, uint32_t ev, uint64_t now)
{
	struct fconn *c = &f->c[i];

	if (c->state == F_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
			err = errno;
		}
		if (err != 0) {
			conn_fail(f, c, "connect", err);
			return;
		}
		if (!(ev & EPOLLOUT)) {
			return;
		}
		conn_connected(f, i);
		if (c->state != F_UPGRADING) {
			return;
		}
	}
	if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->fd >= 0) {
		for (int round = 0; round < 4 && c->fd >= 0; round++) {
			ssize_t r = recv(c->fd, scratch, sizeof(scratch), 0);

			if (r < 0 && errno == EINTR) {
				continue;
			}
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				break;
			}
			if (r <= 0) {
				if (c->state == F_UPGRADING) {
					conn_fail(f, c, r == 0 ? "closed before the 101" : "recv", r == 0 ? 0 : errno);
				} else {
					conn_closed(f, c);
				}
				return;
			}
			if (c->state == F_UPGRADING) {
				feed_response(f, i, scratch, (size_t)r, now);
			} else {
				feed_frames(f, i, scratch, (size_t)r, now);
			}
			if ((size_t)r < sizeof(scratch)) {
				break;
			}
		}
	}
	if (c->fd >= 0 && c->out_len > 0 && conn_flush(c) != 0) {
		if (c->state == F_UPGRADING) {
			conn_fail(f, c, "send", errno);
		} else {
			conn_closed(f, c);
		}
		return;
	}
	if (conn_interest(f, i) != 0) {
		if (c->state == F_OPEN) {
			conn_closed(f, c);
		} else {
			conn_fail(f, c, "epoll_ctl", errno);
		}
	}
}

/* Connection deadlines (connect + upgrade). */
static void check_deadlines(struct fleet *f, uint64_t now)
{
	for (size_t i = 0; i < f->started; i++) {
		struct fconn *c = &f->c[i];

		if ((c->state == F_CONNECTING || c->state == F_UPGRADING) && now >= c->deadline_ms) {
			conn_fail(f, c, c->state == F_CONNECTING ? "connect timed out"
								 : "no 101 in time", 0);
		}
	}
}

/* Run the loop until stop_at (0: until every connection is up or failed). */
static void run(struct fleet *f, uint64_t stop_at)
{
	static struct epoll_event evs[MAX_EVENTS];
	uint64_t next_check = 0;

	while (!stopped) {
		uint64_t now = now_ms();
		int n, k, wait;

		while (f->started < f->count && f->outstanding < f->window) {
			conn_start(f, f->started, now);
		}
		if (now >= next_check) {
			check_deadlines(f, now);
			next_check = now + TICK_MS;
		}
		if (stop_at == 0 && f->started == f->count && f->outstanding == 0) {
			return;
		}
		if (stop_at != 0 && now >= stop_at) {
			return;
		}
		wait = TICK_MS;
		if (stop_at != 0 && stop_at - now < (uint64_t)wait) {
			wait = (int)(stop_at - now);
		}
		n = epoll_wait(f->ep, evs, MAX_EVENTS, wait);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "fleet: epoll_wait: %s\n", strerror(errno));
			exit(1);
		}
		now = now_ms();
		for (k = 0; k < n; k++) {
			conn_event(f, (size_t)evs[k].data.u64, evs[k].events, now);
		}
	}
}

/* ---- set-up ------------------------------------------------------------- */

/* ws://HOST:PORT[/BASE] -> the address, the Host header and the base path. */
static void parse_url(struct fleet *f, const char *url)
{
	const char *p, *slash, *colon;
	char host[256], port[16];
	struct addrinfo hints, *res = NULL;
	size_t hl, bl;
	int rc;

	if (strncmp(url, "ws://", 5) != 0) {
		fprintf(stderr, "fleet: --url: '%s' is not ws://HOST:PORT[/PATH]\n", url);
		exit(2);
	}
	p = url + 5;
	slash = strchr(p, '/');
	if (slash == NULL) {
		slash = p + strlen(p);
	}
	if ((size_t)(slash - p) >= sizeof(f->host)) {
		fprintf(stderr, "fleet: --url: host too long\n");
		exit(2);
	}
	memcpy(f->host, p, (size_t)(slash - p));
	f->host[slash - p] = '\0';
	if (f->host[0] == '[') {
		const char *rb = strchr(f->host, ']');

		if (rb == NULL || rb[1] != ':') {
			fprintf(stderr, "fleet: --url: '%s' needs [V6]:PORT\n", url);
			exit(2);
		}
		hl = (size_t)(rb - f->host - 1);
		colon = rb + 1;
		if (hl >= sizeof(host)) {
			exit(2);
		}
		memcpy(host, f->host + 1, hl);
	} else {
		colon = strrchr(f->host, ':');
		if (colon == NULL) {
			fprintf(stderr, "fleet: --url: '%s' needs a port\n", url);
			exit(2);
		}
		hl = (size_t)(colon - f->host);
		if (hl >= sizeof(host)) {
			exit(2);
		}
		memcpy(host, f->host, hl);
	}
	host[hl] = '\0';
	(void)parse_u64("--url port", colon + 1, 1, 65535);
	snprintf(port, sizeof(port), "%s", colon + 1);
	bl = strlen(slash);
	if (bl > 0 && slash[bl - 1] == '/') {
		bl--;
	}
	if (bl >= sizeof(f->base)) {
		fprintf(stderr, "fleet: --url: path too long\n");
		exit(2);
	}
	memcpy(f->base, slash, bl);
	f->base[bl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 || res == NULL) {
		fprintf(stderr, "fleet: --url: cannot resolve %s: %s\n", host, gai_strerror(rc));
		exit(1);
	}
	memcpy(&f->addr, res->ai_addr, res->ai_addrlen);
	f->addr_len = res->ai_addrlen;
	freeaddrinfo(res);
}

static int id_ok(const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-')) {
			return 0;
		}
	}
	return n <= ID_MAX - 7;
}

static void print_reasons(const struct fleet *f, FILE *out, int json)
{
	for (size_t i = 0; i < REASONS && f->reasons[i].n > 0; i++) {
		if (json) {
			fprintf(out, "%s\"%s\": %zu", i > 0 ? ", " : "", f->reasons[i].text, f->reasons[i].n);
		} else {
			fprintf(out, "%s%zu %s", i > 0 ? "; " : "", f->reasons[i].n, f->reasons[i].text);
		}
	}
	if (f->other_reasons > 0) {
		if (json) {
			fprintf(out, "%s\"other\": %zu", f->reasons[0].n > 0 ? ", " : "", f->other_reasons);
		} else {
			fprintf(out, "; %zu other", f->other_reasons);
		}
	}
}

int main(int argc, char **argv)
{
	static struct fleet f;
	const char *url = NULL;
	uint64_t seconds = 10, t0, t_up, t_end;
	uint64_t pings = 0, tail = 0;
	uint32_t pmin = UINT32_MAX, pmax = 0, gap = 0;
	size_t i;
	int k;

	f.window = 100;
	f.timeout_ms = 30000;
	f.prefix = "fleet";
	for (k = 1; k < argc; k += 2) {
		const char *v = k + 1 < argc ? argv[k + 1] : NULL;

		if (v == NULL) {
			usage();
		}
		if (strcmp(argv[k], "--url") == 0) {
			url = v;
		} else if (strcmp(argv[k], "--count") == 0) {
			f.count = parse_u64("--count", v, 1, COUNT_MAX);
		} else if (strcmp(argv[k], "--token") == 0) {
			if (strlen(v) == 0 || strlen(v) > TOKEN_MAX || strpbrk(v, "\r\n") != NULL) {
				fprintf(stderr, "fleet: --token: 1 to %d bytes on one line\n", TOKEN_MAX);
				exit(2);
			}
			f.token = v;
		} else if (strcmp(argv[k], "--prefix") == 0) {
			if (!id_ok(v)) {
				fprintf(stderr, "fleet: --prefix: letters, digits, '.', '_', '-' (at most %d)\n",
					ID_MAX - 7);
				exit(2);
			}
			f.prefix = v;
		} else if (strcmp(argv[k], "--seconds") == 0) {
			seconds = parse_u64("--seconds", v, 0, 86400);
		} else if (strcmp(argv[k], "--window") == 0) {
			f.window = parse_u64("--window", v, 1, COUNT_MAX);
		} else if (strcmp(argv[k], "--timeout") == 0) {
			f.timeout_ms = parse_u64("--timeout", v, 1, 3600) * 1000;
		} else {
			usage();
		}
	}
	if (url == NULL || f.count == 0) {
		usage();
	}
	parse_url(&f, url);
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	if (getrandom(&f.rng, sizeof(f.rng), 0) != (ssize_t)sizeof(f.rng) || f.rng == 0) {
		f.rng = (uint64_t)now_ms() * 0x9E3779B97F4A7C15ULL | 1;
	}
	f.c = calloc(f.count, sizeof(*f.c));
	f.ep = epoll_create1(EPOLL_CLOEXEC);
	if (f.c == NULL || f.ep < 0) {
		fprintf(stderr, "fleet: %s\n", f.c == NULL ? "out of memory" : strerror(errno));
		return 1;
	}
	for (i = 0; i < f.count; i++) {
		f.c[i].fd = -1;
	}

	t0 = now_ms();
	run(&f, 0);
	if (stopped) {
		return 1;
	}
	t_up = now_ms();
	if (f.failed == 0) {
		printf("connected %zu\n", f.up);
	} else {
		printf("error %zu of %zu failed: ", f.failed, f.count);
		print_reasons(&f, stdout, 0);
		printf("; connected %zu\n", f.up);
	}
	fflush(stdout);
	if (seconds > 0) {
		run(&f, t_up + seconds * 1000);
	}
	if (stopped) {
		return 1;
	}
	t_end = now_ms();
	for (i = 0; i < f.count; i++) {
		const struct fconn *c = &f.c[i];

		if (c->state != F_OPEN && c->state != F_CLOSED) {
			continue;
		}
		pings += c->pings;
		pmin = c->pings < pmin ? c->pings : pmin;
		pmax = c->pings > pmax ? c->pings : pmax;
		gap = c->max_gap_ms > gap ? c->max_gap_ms : gap;
		if (c->state == F_OPEN && t_end - c->last_ping_ms > tail) {
			tail = t_end - c->last_ping_ms;
		}
	}
	if (f.up == 0) {
		pmin = 0;
	}
	printf("{\"connected\": %zu, \"failed\": %zu, \"pings_min\": %u, \"pings_max\": %u, "
	       "\"max_gap_ms\": %u, \"closed_by_server\": %zu, \"max_tail_ms\": %llu, \"pings\": %llu, "
	       "\"ws_pings\": %llu, \"tunnel_pings\": %llu, \"connect_seconds\": %.3f, "
	       "\"seconds\": %.3f, \"count\": %zu, \"errors\": {",
	       f.up, f.failed, pmin, pmax, gap, f.closed, (unsigned long long)tail,
	       (unsigned long long)pings, (unsigned long long)f.ws_pings,
	       (unsigned long long)f.tunnel_pings, (double)(t_up - t0) / 1000.0,
	       (double)(t_end - t_up) / 1000.0, f.count);
	print_reasons(&f, stdout, 1);
	printf("}}\n");
	fflush(stdout);
	for (i = 0; i < f.count; i++) {
		conn_close_fd(&f, &f.c[i]);
	}
	free(f.c);
	close(f.ep);
	return 0;
}
