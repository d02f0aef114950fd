/* libFuzzer target: tunnel-server's receive paths, the whole program: the
 * real config, listener, agent (upgrade, WebSocket server side with its
 * fast path, tunnel messages), registry, expose, public, admin and
 * report objects run on fz_os's in-memory sockets. The input is a script:
 * agents connect and send bytes (their upgrade request, then masked
 * frames), public TCP clients and UDP sources come and go on the exposes,
 * status requests arrive at --admin, sockets fail or fill up, time
 * passes, SIGHUP reloads a settings file whose new text is in the input.
 *
 * Input: one byte of settings, then ops (low nibble, see step()). When
 * the script ends the server is stopped (SIGTERM) and freed.
 * Settings:
 *   bit 0  an agent's upgrade request is made here when it connects (id
 *          a1 or a2, from the op), else it must come in its bytes
 *   bit 1  --token (the made request carries it; op bit 5: a wrong one)
 *   bit 2  tight limits (2 agents, 2 connections each, 64 KiB messages,
 *          short timeouts)
 *   bit 3  --admin
 *   bit 4  trace logging (formatted, then dropped)
 *   bit 5  --config FILE (SIGHUP re-reads it)
 *
 * Checked besides the sanitizers (fz_fail): what the server writes to an
 * agent is an HTTP answer and, after a 101, well-formed unmasked frames
 * (fz_frames) of messages the server may send (CONNECT, DATA, CLOSE; DATA
 * at most 65,527 bytes, only for an id it sent CONNECT for and has not
 * closed since); every fake socket is closed once the server is freed;
 * nothing leaks; the server stops. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "fz_args.h"
#include "fz_file.h"
#include "fz_frames.h"
#include "fz_in.h"
#include "fz_os.h"
#include "log.h"
#include "server.h"
#include "tunnel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

enum role { R_NONE, R_AGENT, R_PUBLIC, R_ADMIN };

#define PORT_AGENTS 8001
#define PORT_ADMIN 9100
#define IDS_MAX 256

static const int sock_errs[] = {ECONNRESET, EPIPE, ETIMEDOUT, ECONNREFUSED, EIO, ENETUNREACH};

/* What one agent connection was sent by the server. */
struct peer {
	int http_done;     /* the HTTP answer's head is over */
	int upgraded;      /* ... and it was a 101 */
	char head[1024];
	size_t head_len;
	struct fz_frames frames;
	size_t n_ids;
	uint32_t ids[IDS_MAX];
	uint8_t open[IDS_MAX];
};

static struct {
	struct fz_in in;
	uint8_t settings;
	int stopping;
	unsigned idle_polls;
	size_t volume;
	char path[32];
	struct peer *peers[FZ_MAX_FDS];
	char request[512];
} w;

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t reload_flag;

/* ---- what the server sends an agent ---- */

static void on_msg(void *ctx, int op, const uint8_t *p, size_t shown, size_t len)
{
	struct peer *pr = ctx;
	struct tunnel_msg m;
	size_t i;

	if (op != 0x2) {
		return;
	}
	if (tunnel_parse(p, shown, &m) != TUNNEL_OK) {
		fz_fail("server message: not a valid tunnel message");
	}
	if (m.type != TUNNEL_CONNECT && m.type != TUNNEL_DATA && m.type != TUNNEL_CLOSE) {
		fz_fail("server message: a type the server never sends");
	}
	if (m.type == TUNNEL_DATA && len - TUNNEL_HDR_LEN > 65527) {
		fz_fail("server message: DATA over 65,527 bytes");
	}
	if (m.type != TUNNEL_DATA && len != TUNNEL_HDR_LEN) {
		fz_fail("server message: CONNECT or CLOSE with a payload");
	}
	for (i = 0; i < pr->n_ids && pr->ids[i] != m.client_id; i++) {
	}
	if (i == pr->n_ids) {
		if (pr->n_ids == IDS_MAX) {
			return;
		}
		pr->ids[pr->n_ids] = m.client_id;
		pr->open[pr->n_ids++] = 0;
	}
	if (m.type == TUNNEL_CONNECT) {
		pr->open[i] = 1;
	} else if (m.type == TUNNEL_CLOSE) {
		pr->open[i] = 0;
	} else if (!pr->open[i]) {
		fz_fail("server message: DATA for an id without CONNECT, or after its CLOSE");
	}
}

static void on_send(struct fz_sock *s, const uint8_t *p, size_t n)
{
	struct peer *pr = w.peers[s->fd - FZ_FD_BASE];

	if (s->role != R_AGENT || pr == NULL) {
		return;
	}
	while (!pr->http_done && n > 0) {
		if (pr->head_len + 1 >= sizeof(pr->head)) {
			fz_fail("server answer: an HTTP head over 1 KiB");
		}
		pr->head[pr->head_len++] = (char)*p++;
		n--;
		pr->head[pr->head_len] = '\0';
		if (pr->head_len >= 4 && memcmp(pr->head + pr->head_len - 4, "\r\n\r\n", 4) == 0) {
			pr->http_done = 1;
			pr->upgraded = strncmp(pr->head, "HTTP/1.1 101 ", 13) == 0;
			if (!pr->upgraded && strncmp(pr->head, "HTTP/1.1 4", 10) != 0 &&
			    strncmp(pr->head, "HTTP/1.1 5", 10) != 0) {
				fz_fail("server answer: neither 101 nor a refusal");
			}
		}
	}
	if (pr->upgraded && n > 0) {
		fz_frames_feed(&pr->frames, p, n);
	}
}

/* ---- sockets as they appear ---- */

static void on_accept(struct fz_sock *l, struct fz_sock *s)
{
	if (l->port == PORT_AGENTS) {
		struct peer *pr = calloc(1, sizeof(*pr));
		if (pr == NULL) {
			abort();
		}
		fz_frames_init(&pr->frames, 0, on_msg, pr);
		free(w.peers[s->fd - FZ_FD_BASE]);
		w.peers[s->fd - FZ_FD_BASE] = pr;
		s->role = R_AGENT;
		if (w.settings & 1) {
			/* l->pending's op said which id and token: see step(). */
			fz_push(s, (const uint8_t *)w.request, strlen(w.request), 1, 0);
		}
	} else if (l->port == PORT_ADMIN) {
		s->role = R_ADMIN;
	} else {
		s->role = R_PUBLIC;
	}
}

/* The listener (or UDP socket) of an expose or the admin: by its port. */
static struct fz_sock *listener(int type, unsigned k)
{
	struct fz_sock *found[16];
	size_t n = 0;

	for (int fd = FZ_FD_BASE; fd < FZ_FD_BASE + FZ_MAX_FDS && n < 16; fd++) {
		struct fz_sock *s = fz_sock_of(fd);
		if (s != NULL && s->port >= 9000 && s->port < PORT_ADMIN && s->type == type &&
		    (type == SOCK_DGRAM || s->listening)) {
			found[n++] = s;
		}
	}
	return n > 0 ? found[k % n] : NULL;
}

static struct fz_sock *port_listener(uint16_t port)
{
	for (int fd = FZ_FD_BASE; fd < FZ_FD_BASE + FZ_MAX_FDS; fd++) {
		struct fz_sock *s = fz_sock_of(fd);
		if (s != NULL && s->listening && s->port == port) {
			return s;
		}
	}
	return NULL;
}

static void make_request(uint8_t op)
{
	snprintf(w.request, sizeof(w.request),
		 "GET /ws/tunnel/%s HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nUpgrade: websocket\r\n"
		 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		 "Sec-WebSocket-Version: 13\r\nUser-Agent: fuzz/1\r\n%s\r\n",
		 (op & 0x10) ? "a2" : "a1",
		 !(w.settings & 2) ? "" : (op & 0x20) ? "Authorization: Bearer wrong\r\n"
						     : "Authorization: Bearer s3cret\r\n");
}

/* One op of the script; see fz_hooks.step. */
static int step(void)
{
	struct fz_in *in = &w.in;
	struct fz_sock *s;
	const uint8_t *p;
	size_t n;
	int role;

	if (!fz_in_more(in)) {
		if (!w.stopping) {
			w.stopping = 1;
			stop_flag = SIGTERM;
			return 1;
		}
		if (++w.idle_polls > 100000) {
			fz_fail("the server does not stop");
		}
		return -1;
	}
	uint8_t op = fz_in_u8(in);
	switch (op & 0xf) {
	case 0: /* an agent's bytes */
	case 1:
		s = fz_pick(R_AGENT, fz_in_u8(in));
		p = fz_in_take(in, fz_in_len(in), &n);
		fz_feed(s, p, n, 1, &w.volume);
		return 1;
	case 2: /* an agent's bytes, repeated */
		s = fz_pick(R_AGENT, fz_in_u8(in));
		n = fz_in_u8(in);
		size_t times = (size_t)fz_in_u8(in) * 16 + 1;
		p = fz_in_take(in, n, &n);
		fz_feed(s, p, n, times, &w.volume);
		return 1;
	case 3: /* an agent connects */
		s = port_listener(PORT_AGENTS);
		make_request(op);
		if (s != NULL) {
			s->pending++;
		}
		return 1;
	case 4: /* a public client connects to a TCP expose */
		s = listener(SOCK_STREAM, fz_in_u8(in));
		if (s != NULL) {
			s->pending++;
		}
		return 1;
	case 5: /* a public client's bytes */
		s = fz_pick(R_PUBLIC, fz_in_u8(in));
		p = fz_in_take(in, fz_in_len(in), &n);
		fz_feed(s, p, n, op >> 4 == 0 ? 1 : (size_t)(op >> 4) * 1024, &w.volume);
		return 1;
	case 6: /* a peer ends its stream: agent, public or admin */
	case 7: /* a peer's socket fails */
		role = R_AGENT + (op >> 4) % 3;
		s = fz_pick(role, fz_in_u8(in));
		if (s != NULL && (op & 0xf) == 6) {
			s->in_eof = 1;
			s->hup = op >> 7;
		} else if (s != NULL) {
			s->in_err = sock_errs[(op >> 4) % 6];
		}
		return 1;
	case 8: /* how much a peer's socket takes before it is full */
		role = R_AGENT + (op >> 4) % 3;
		s = fz_pick(role, fz_in_u8(in));
		n = fz_in_u8(in);
		if (s != NULL) {
			s->out_budget = n == 0xff ? SIZE_MAX : n * (op & 0x80 ? 1024 : 16);
		}
		return 1;
	case 9: { /* a datagram on a UDP expose, from one of 8 sources */
		uint8_t from = fz_in_u8(in);
		s = listener(SOCK_DGRAM, from >> 3);
		p = fz_in_take(in, fz_in_len(in), &n);
		if (s != NULL) {
			fz_push_dgram(s, p, n, from & 7);
		}
		return 1;
	}
	case 10: /* time passes */
		fz_advance((uint64_t)1 << (fz_in_u8(in) % 24));
		return 0;
	case 11: /* SIGHUP, with the settings file's new text */
		p = fz_in_take(in, fz_in_len(in), &n);
		if (w.settings & 32) {
			fz_file(0, p, n, w.path);
		}
		reload_flag = SIGHUP;
		return 1;
	case 12: /* a status request connects to --admin */
		s = port_listener(PORT_ADMIN);
		if (s != NULL) {
			s->pending++;
		}
		return 1;
	case 13: /* a status client's bytes */
		s = fz_pick(R_ADMIN, fz_in_u8(in));
		p = fz_in_take(in, fz_in_len(in), &n);
		fz_feed(s, p, n, 1, &w.volume);
		return 1;
	case 14: /* SIGTERM */
		if ((op >> 4) == 0xe) {
			stop_flag = SIGTERM;
		}
		return 1;
	default:
		return 0;
	}
}

static int build_argv(char **argv, const char *level)
{
	static char *base[] = {"tunnel-server", "--listen", "127.0.0.1:8001",
			       "--expose", "tcp:127.0.0.1:9000=a1:80",
			       "--expose", "udp:127.0.0.1:9001=a1:53",
			       "--expose", "tcp:[::1]:9002=a2:22",
			       "--ping-interval", "20", "--ping-timeout", "20"};
	static char *tight[] = {"--max-agents", "2", "--max-connections", "2", "--max-message",
				"65544", "--stall-timeout", "2", "--udp-idle-timeout", "3"};
	static char *token[] = {"--token", "s3cret"};
	static char *admin[] = {"--admin", "127.0.0.1:9100"};
	int n = 0;

	fz_args_add(argv, &n, base, FZ_COUNT(base));
	if (w.settings & 4) {
		fz_args_add(argv, &n, tight, FZ_COUNT(tight));
	}
	if (w.settings & 2) {
		fz_args_add(argv, &n, token, FZ_COUNT(token));
	}
	if (w.settings & 8) {
		fz_args_add(argv, &n, admin, FZ_COUNT(admin));
	}
	if (w.settings & 32) {
		static const char text[] = "expose tcp:127.0.0.1:9003=a2:8080\n# a comment\n"
					   "expose udp:127.0.0.1:9004=a1:5353\n";
		fz_file(0, text, sizeof(text) - 1, w.path);
		argv[n++] = "--config";
		argv[n++] = w.path;
	}
	argv[n++] = "--log-level";
	argv[n++] = (char *)level;
	argv[n] = NULL;
	return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_env_clear_server();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct server s;
	sigset_t waitmask;
	char *argv[48];
	char err[300];
	int argc;

	if (size == 0) {
		return 0;
	}
	memset(&w, 0, sizeof(w));
	memset(&s, 0, sizeof(s));
	fz_reset();
	stop_flag = 0;
	reload_flag = 0;
	w.settings = data[0];
	w.in.p = data + 1;
	w.in.n = size - 1;
	make_request(0);
	const char *level = getenv("FUZZ_LOG_LEVEL");
	argc = build_argv(argv, level != NULL ? level : (w.settings & 16) ? "trace" : "error");
	if (server_config_load(&s.cfg, argc, argv, err, sizeof(err)) != SCFG_RUN) {
		fz_fail(err);
	}
	log_set_level(s.cfg.log_level);
	sigemptyset(&waitmask);
	s.stop = &stop_flag;
	s.reload = &reload_flag;
	s.waitmask = &waitmask;
	fz_hooks.step = step;
	fz_hooks.on_accept = on_accept;
	fz_hooks.on_send = on_send;
	if (server_init(&s, err, sizeof(err)) != 0) {
		fz_fail(err);
	}
	(void)server_run(&s, argc, argv);
	server_free(&s);
	if (fz_open_count() != 0) {
		fz_fail("fake sockets left open after server_free");
	}
	for (size_t i = 0; i < FZ_MAX_FDS; i++) {
		free(w.peers[i]);
		w.peers[i] = NULL;
	}
	log_set_level(LOG_INFO);
	return 0;
}
