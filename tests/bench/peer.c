/* peer: the runner side of the benchmark. Accepts one agent on
 * ws://127.0.0.1:PORT/ws/tunnel/ID, plays a scenario through it and prints
 * the result; bench.py starts it, the agent and the local services.
 *
 *   peer --scenario NAME [--port P] [--bytes N] [--streams S] [--count C]
 *        [--size S] [--idle C --idle-port Q] [--tls-cert F --tls-key F]
 *
 * stdout: "port N" at start; "ready" once the agent is up and the scenario
 * set up; after a "go" line on stdin the scenario runs, then "result
 * {JSON}". The tunnel stays up until stdin ends or SIGTERM. Any failure:
 * "error MESSAGE", exit 1. A test tool, never shipped. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "handshake.h"
#include "net.h"
#include "num.h"
#include "tls_io.h"
#include "tls_server.h"
#include "transport.h"
#include "tunnel.h"
#include "ws.h"

#define CHUNK 65536     /* DATA payload, as the real user side sends */
#define MAX_WAIT_MS 600000

enum stream_state { S_IDLE, S_OPEN, S_DONE, S_FAILED };

struct stream {
	enum stream_state state;
	uint16_t port;
	int connected;       /* CONNECTED seen */
	int closed;          /* CLOSE sent */
	uint8_t prefix[8];   /* sent first (sink/source length), if prefix_len */
	size_t prefix_len;
	uint64_t to_send;    /* payload bytes still to send */
	uint64_t want;       /* bytes expected back */
	uint64_t got;
};

struct peer {
	const char *scenario;
	uint16_t port;
	uint16_t idle_port;
	uint64_t bytes;
	uint64_t streams;
	uint64_t count;
	uint64_t size;
	uint64_t idle;
	const char *cert;
	const char *key;

	struct transport tr;
	struct ws ws;
	struct stream *st;   /* st[id - 1] */
	size_t nst;
	size_t next_send;    /* round robin over streams */
	size_t senders;      /* streams with bytes to send */
	size_t active;       /* measured streams still open */
	size_t connected;    /* streams that got CONNECTED */
	uint64_t errors;

	/* the message being received */
	uint8_t hdr[TUNNEL_HDR_LEN];
	size_t hdr_len;
	size_t msg_len;

	/* rr */
	uint64_t rr_done;
	uint64_t rr_t0;
	uint64_t *rtt_ns;
};

static uint8_t pattern[CHUNK];
static volatile sig_atomic_t stopped;
static int finished; /* the result is out: the agent may go */

static void on_term(int sig)
{
	stopped = sig;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *what)
{
	printf("error %s\n", what);
	fflush(stdout);
	exit(1);
}

/* ---- sending ---- */

static void send_ctl(struct peer *p, uint8_t type, uint32_t id, uint16_t port,
		     const uint8_t *payload, size_t n)
{
	uint8_t msg[TUNNEL_HDR_LEN + 16];

	tunnel_header(msg, type, TUNNEL_TCP, id, port);
	if (n > 0) {
		memcpy(msg + TUNNEL_HDR_LEN, payload, n);
	}
	if (ws_send_binary(&p->ws, msg, TUNNEL_HDR_LEN + n) != 0) {
		fail("cannot queue a message");
	}
}

static uint32_t open_stream(struct peer *p, uint16_t port, uint64_t prefix, uint64_t to_send,
			    uint64_t want)
{
	struct stream *s = &p->st[p->nst++];
	uint32_t id = (uint32_t)p->nst;

	s->state = S_OPEN;
	s->port = port;
	s->to_send = to_send;
	s->want = want;
	if (prefix != UINT64_MAX) {
		for (int i = 0; i < 8; i++) {
			s->prefix[i] = (uint8_t)(prefix >> (56 - 8 * i));
		}
		s->prefix_len = 8;
	}
	if (s->to_send > 0 || s->prefix_len > 0) {
		p->senders++;
	}
	p->active++;
	send_ctl(p, TUNNEL_CONNECT, id, port, NULL, 0);
	return id;
}

/* Frame one DATA message for stream id (prefix first); 0 if out is full. */
static int send_data(struct peer *p, uint32_t id, size_t max)
{
	struct stream *s = &p->st[id - 1];
	size_t n = s->prefix_len > 0 ? s->prefix_len : (s->to_send < max ? (size_t)s->to_send : max);
	uint8_t *dst;

	if (ws_frame(&p->ws) < 0) {
		fail("framing failed");
	}
	dst = ws_data_begin(&p->ws, TUNNEL_HDR_LEN + n);
	if (dst == NULL) {
		return 0;
	}
	tunnel_header(dst, TUNNEL_DATA, TUNNEL_TCP, id, 0);
	if (s->prefix_len > 0) {
		memcpy(dst + TUNNEL_HDR_LEN, s->prefix, n);
		s->prefix_len = 0;
	} else {
		memcpy(dst + TUNNEL_HDR_LEN, pattern, n);
		s->to_send -= n;
	}
	if (s->to_send == 0 && s->prefix_len == 0) {
		p->senders--;
	}
	ws_data_end(&p->ws, TUNNEL_HDR_LEN + n);
	return 1;
}

/* Queue DATA for streams that have bytes to send, round robin, until the
 * output is full. */
static void feed(struct peer *p)
{
	while (p->senders > 0) {
		size_t i = p->next_send++ % p->nst;
		struct stream *s = &p->st[i];
		if (s->state != S_OPEN || (s->to_send == 0 && s->prefix_len == 0)) {
			continue;
		}
		if (!send_data(p, (uint32_t)i + 1, CHUNK)) {
			return;
		}
	}
}

/* ---- receiving ---- */

static void stream_end(struct peer *p, struct stream *s, uint32_t id, int ok)
{
	if (s->state != S_OPEN) {
		return;
	}
	s->state = ok ? S_DONE : S_FAILED;
	p->active--;
	if (s->to_send > 0 || s->prefix_len > 0) {
		p->senders--;
	}
	if (!ok) {
		p->errors++;
	}
	if (!s->closed) {
		s->closed = 1;
		send_ctl(p, TUNNEL_CLOSE, id, 0, NULL, 0);
	}
}

static void on_start(void *user)
{
	struct peer *p = user;

	p->hdr_len = 0;
	p->msg_len = 0;
}

static void on_data(void *user, const uint8_t *d, size_t n)
{
	struct peer *p = user;

	while (n > 0 && p->hdr_len < TUNNEL_HDR_LEN) {
		p->hdr[p->hdr_len++] = *d++;
		n--;
	}
	p->msg_len += n;
}

static void on_end(void *user)
{
	struct peer *p = user;
	struct tunnel_msg m;

	if (tunnel_parse(p->hdr, p->hdr_len, &m) != TUNNEL_OK || m.client_id == 0 ||
	    m.client_id > p->nst) {
		return;
	}
	struct stream *s = &p->st[m.client_id - 1];
	switch (m.type) {
	case TUNNEL_CONNECTED:
		p->connected += !s->connected;
		s->connected = 1;
		break;
	case TUNNEL_ERROR:
		stream_end(p, s, m.client_id, 0);
		break;
	case TUNNEL_CLOSE:
		s->closed = 1;
		stream_end(p, s, m.client_id, s->got >= s->want);
		break;
	case TUNNEL_DATA:
		s->got += p->msg_len;
		if (strcmp(p->scenario, "rr") == 0 && s->got >= p->size) {
			p->rtt_ns[p->rr_done++] = now_ns() - p->rr_t0;
			s->got = 0;
			if (p->rr_done < p->count) {
				p->rr_t0 = now_ns();
				s->to_send = p->size;
				p->senders++;
			} else {
				stream_end(p, s, m.client_id, 1);
			}
		} else if (s->got >= s->want && s->want > 0) {
			stream_end(p, s, m.client_id, 1);
		}
		break;
	default:
		break;
	}
}

/* ---- I/O ---- */

static void pump(struct peer *p)
{
	for (;;) {
		size_t avail;
		uint8_t *dst = buf_space(&p->ws.in, &avail);
		int moved = 0;

		if (dst != NULL) {
			ssize_t n = transport_read(&p->tr, dst, avail);
			if (n == 0 && finished) {
				exit(0);
			}
			if (n == 0) {
				fail("the agent closed the tunnel");
			}
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				fail(transport_strerror(&p->tr, errno));
			}
			if (n > 0) {
				buf_commit(&p->ws.in, (size_t)n);
				moved = 1;
			}
		}
		if (ws_recv(&p->ws) != 0) {
			fail("WebSocket protocol error from the agent");
		}
		feed(p);
		if (ws_frame(&p->ws) < 0) {
			fail("framing failed");
		}
		size_t len;
		const uint8_t *out = buf_data(&p->ws.out, &len);
		if (len > 0) {
			ssize_t n = transport_write(&p->tr, out, len);
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				fail(transport_strerror(&p->tr, errno));
			}
			if (n > 0) {
				buf_consume(&p->ws.out, (size_t)n);
				moved = 1;
			}
		}
		if (transport_flush(&p->tr) != 0) {
			fail(transport_strerror(&p->tr, errno));
		}
		if (!moved) {
			return;
		}
	}
}

/* Wait up to a second for the agent's socket (and stdin when asked);
 * 1 if stdin has input. */
static int wait_io(struct peer *p, int watch_stdin)
{
	struct pollfd pf[2] = {{p->tr.fd, 0, 0}, {0, POLLIN, 0}};

	pf[0].events = transport_events(&p->tr, buf_len(&p->ws.out) > 0);
	if (poll(pf, watch_stdin ? 2 : 1, 1000) < 0 && errno != EINTR) {
		fail("poll failed");
	}
	transport_ready(&p->tr, pf[0].revents);
	return watch_stdin && pf[1].revents != 0;
}

/* Serve the tunnel until done() says so (or stdin has a line, for
 * wait_go), within MAX_WAIT_MS. */
static void serve(struct peer *p, int (*done)(struct peer *), int watch_stdin)
{
	uint64_t deadline = net_now_ms() + MAX_WAIT_MS;

	for (pump(p); !done(p); pump(p)) {
		if (stopped || net_now_ms() > deadline) {
			fail(stopped ? "stopped" : "scenario timed out");
		}
		if (wait_io(p, watch_stdin)) {
			return;
		}
	}
}

static int all_connected(struct peer *p)
{
	if (p->errors > 0) {
		fail("an idle connection was refused");
	}
	return p->connected == p->nst;
}

static size_t first_measured; /* streams before it belong to the setup */

static int all_done(struct peer *p)
{
	return p->active == first_measured && buf_len(&p->ws.out) == 0;
}

static int never(struct peer *p)
{
	return 0;
}

/* ---- setup ---- */

static int accept_agent(uint16_t *port_out)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 4) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &sl) != 0) {
		fail("cannot listen");
	}
	*port_out = ntohs(sin.sin_port);
	printf("port %u\n", (unsigned)*port_out);
	fflush(stdout);
	struct pollfd pf = {lfd, POLLIN, 0};
	if (poll(&pf, 1, 30000) <= 0) {
		fail("no agent within 30 s");
	}
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		fail("accept failed");
	}
	close(lfd);
	setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
	return fd;
}

static void upgrade(struct peer *p)
{
	uint8_t req[8192];
	size_t len = 0;
	size_t used = 0;
	struct hs_request hr;
	char resp[256];
	uint64_t deadline = net_now_ms() + 10000;

	for (;;) {
		int hs = transport_handshake(&p->tr);
		if (hs < 0) {
			fail(transport_strerror(&p->tr, EPROTO));
		}
		ssize_t n = hs > 0 ? transport_read(&p->tr, req + len, sizeof(req) - len) : -1;
		if (n == 0) {
			fail("agent closed before its request");
		}
		if (n < 0) {
			if (net_now_ms() > deadline) {
				fail("no upgrade request");
			}
			(void)transport_flush(&p->tr);
			wait_io(p, 0);
			continue;
		}
		len += (size_t)n;
		enum hs_result r = hs_parse_request(req, len, sizeof(req), &hr, &used);
		if (r == HS_DONE) {
			break;
		}
		if (r != HS_NEED_MORE) {
			fail(hs_strerror(r));
		}
	}
	int n = hs_response_101(resp, sizeof(resp), hr.key);
	if (n < 0 || buf_append(&p->ws.out, resp, (size_t)n) != 0 ||
	    buf_append(&p->ws.in, req + used, len - used) != 0) {
		fail("cannot answer the upgrade");
	}
}

static uint64_t opt_num(const char *name, const char *v)
{
	uint64_t x;

	if (v == NULL || num_parse_u64(v, 0, UINT64_MAX, &x) != 0) {
		fprintf(stderr, "peer: bad value for %s\n", name);
		exit(2);
	}
	return x;
}

static void parse(struct peer *p, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--scenario") == 0 && v != NULL) {
			p->scenario = v;
		} else if (strcmp(a, "--port") == 0) {
			p->port = (uint16_t)opt_num(a, v);
		} else if (strcmp(a, "--idle-port") == 0) {
			p->idle_port = (uint16_t)opt_num(a, v);
		} else if (strcmp(a, "--bytes") == 0) {
			p->bytes = opt_num(a, v);
		} else if (strcmp(a, "--streams") == 0) {
			p->streams = opt_num(a, v);
		} else if (strcmp(a, "--count") == 0) {
			p->count = opt_num(a, v);
		} else if (strcmp(a, "--size") == 0) {
			p->size = opt_num(a, v);
		} else if (strcmp(a, "--idle") == 0) {
			p->idle = opt_num(a, v);
		} else if (strcmp(a, "--tls-cert") == 0 && v != NULL) {
			p->cert = v;
		} else if (strcmp(a, "--tls-key") == 0 && v != NULL) {
			p->key = v;
		} else {
			fprintf(stderr, "peer: unknown option %s\n", a);
			exit(2);
		}
		i++;
	}
	if (p->scenario == NULL) {
		fprintf(stderr, "peer: --scenario is required\n");
		exit(2);
	}
}

/* Open the scenario's measured streams. */
static void start(struct peer *p)
{
	const char *sc = p->scenario;

	first_measured = p->nst;
	if (strcmp(sc, "up") == 0) {
		open_stream(p, p->port, p->bytes, p->bytes, 1);
	} else if (strcmp(sc, "down") == 0 || strcmp(sc, "bulk-idle") == 0) {
		open_stream(p, p->port, p->bytes, 0, p->bytes);
	} else if (strcmp(sc, "streams") == 0) {
		for (uint64_t i = 0; i < p->streams; i++) {
			open_stream(p, p->port, UINT64_MAX, p->bytes / p->streams, p->bytes / p->streams);
		}
	} else if (strcmp(sc, "rr") == 0) {
		open_stream(p, p->port, UINT64_MAX, p->size, UINT64_MAX);
		p->rr_t0 = now_ns();
	} else if (strcmp(sc, "conns") == 0) {
		for (uint64_t i = 0; i < p->count; i++) {
			open_stream(p, p->port, UINT64_MAX, p->size, p->size);
		}
	} else if (strcmp(sc, "idle") != 0) {
		fail("unknown scenario");
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, uint64_t n, double q)
{
	uint64_t i = (uint64_t)(q * (double)(n - 1) + 0.5);

	return n == 0 ? 0.0 : (double)v[i] / 1000.0;
}

static void result(struct peer *p, double secs)
{
	uint64_t moved = 0;
	uint64_t served = 0;

	for (size_t i = first_measured; i < p->nst; i++) {
		const struct stream *s = &p->st[i];
		uint64_t sent = p->bytes / (p->streams > 0 ? p->streams : 1);
		if (strcmp(p->scenario, "up") == 0) {
			sent = p->bytes;
		} else if (strcmp(p->scenario, "conns") == 0) {
			sent = p->size;
		} else if (strcmp(p->scenario, "down") == 0 || strcmp(p->scenario, "bulk-idle") == 0) {
			sent = 0;
		}
		if (s->state == S_DONE) {
			served++;
			moved += sent + (strcmp(p->scenario, "up") == 0 ? 0 : s->got);
		}
	}
	if (strcmp(p->scenario, "rr") == 0) {
		moved = p->rr_done * p->size * 2;
	}
	printf("result {\"scenario\": \"%s\", \"bytes\": %llu, \"seconds\": %.6f, \"errors\": %llu, "
	       "\"served\": %llu",
	       p->scenario, (unsigned long long)moved, secs, (unsigned long long)p->errors,
	       (unsigned long long)served);
	if (strcmp(p->scenario, "rr") == 0) {
		qsort(p->rtt_ns, p->rr_done, sizeof(uint64_t), cmp_u64);
		printf(", \"count\": %llu, \"rtt_us\": {\"p50\": %.2f, \"p99\": %.2f, \"p999\": %.2f}",
		       (unsigned long long)p->rr_done, pct(p->rtt_ns, p->rr_done, 0.5),
		       pct(p->rtt_ns, p->rr_done, 0.99), pct(p->rtt_ns, p->rr_done, 0.999));
	}
	printf("}\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct ws_rx rx = {on_start, on_data, on_end};
	struct peer p;
	uint16_t port;
	char line[64];

	memset(&p, 0, sizeof(p));
	memset(pattern, 'x', sizeof(pattern));
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	parse(&p, argc, argv);
	size_t cap = (size_t)(p.idle + p.count + p.streams + 4);
	p.st = calloc(cap, sizeof(*p.st));
	p.rtt_ns = calloc((size_t)p.count + 1, sizeof(uint64_t));
	if (p.st == NULL || p.rtt_ns == NULL) {
		fail("out of memory");
	}
	struct tls_server_config *tls = NULL;
	char err[256];
	if (p.cert != NULL && tls_server_config_load(&tls, p.cert, p.key != NULL ? p.key : p.cert,
						     err, sizeof(err)) != 0) {
		fail(err);
	}
	int fd = accept_agent(&port);
	transport_init(&p.tr, fd, tls != NULL ? tls_server_new(tls, fd) : NULL);
	if ((tls != NULL && p.tr.tls == NULL) || ws_init_server(&p.ws, 64ULL << 20, &rx, &p) != 0) {
		fail("out of memory");
	}
	upgrade(&p);
	if (strcmp(p.scenario, "bulk-idle") == 0) {
		for (uint64_t i = 0; i < p.idle; i++) {
			open_stream(&p, p.idle_port, UINT64_MAX, 0, 0);
		}
		serve(&p, all_connected, 0);
	}
	printf("ready\n");
	fflush(stdout);
	serve(&p, never, 1);
	if (fgets(line, sizeof(line), stdin) == NULL || strncmp(line, "go", 2) != 0) {
		fail("expected go on stdin");
	}
	uint64_t t0 = now_ns();
	start(&p);
	serve(&p, all_done, 0);
	result(&p, (double)(now_ns() - t0) / 1e9);
	finished = 1;
	/* Keep the tunnel up until told to go. */
	while (!stopped) {
		if (wait_io(&p, 1) && read(0, line, sizeof(line)) <= 0) {
			break;
		}
		pump(&p);
	}
	ws_free(&p.ws);
	transport_close(&p.tr);
	tls_server_config_free(tls);
	free(p.st);
	free(p.rtt_ns);
	return 0;
}
