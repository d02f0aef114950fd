/* libFuzzer target: the agent's whole receive path. The real session,
 * ws (wslay), dispatch, connection table, net and dial objects run on
 * fz_os's in-memory sockets: the runner's bytes, and every event of the
 * local services (data, end of stream, resets, a full socket, a connect
 * that succeeds, fails or never answers, time passing), come from the
 * input, read as a script one op per poll.
 *
 * Input: one byte of settings, then ops (the low nibble of an op byte
 * picks it, see step()). When the script ends the runner closes the
 * connection; a dropped runner starts another session (at most 4).
 * Settings:
 *   bit 0  the 101 answer is made here (else it must come in the bytes)
 *   bit 1  local TCP connects succeed at once (else an op says how)
 *   bit 2  through an HTTP CONNECT proxy (answered here)
 *   bit 3  tight limits (3 connections, 1 UDP, --allow-ports, 64 KiB
 *          messages, short timeouts)
 *   bit 4  trace logging (formatted, then dropped)
 *   bit 5  --token and --header
 *   bit 6  --status-port 9090 and --log-ring (a CONNECT to 9090 is an HTTP
 *          exchange with the agent itself, over a socket pair)
 *
 * Checked besides the sanitizers (fz_fail): what the agent writes to the
 * runner is an HTTP upgrade request, then well-formed masked frames
 * (fz_frames) of tunnel messages the agent may send (CONNECTED, DATA,
 * CLOSE, ERROR, PONG; port 0; DATA at most 65,527 bytes) with no DATA
 * for an id the agent has not reported CONNECTED for or has closed since;
 * every fake socket is closed when the sessions are over; nothing leaks
 * (LeakSanitizer); every run ends. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "fz_args.h"
#include "fz_frames.h"
#include "fz_in.h"
#include "fz_os.h"
#include "handshake.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "stats.h"
#include "tunnel.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

enum role { R_NONE, R_RUNNER, R_LOCAL };

#define IDS_MAX 512
#define SESSIONS_MAX 4

static const int sock_errs[] = {ECONNRESET, EPIPE, ETIMEDOUT, ECONNREFUSED, EIO, ENETUNREACH};
static const int open_errs[] = {EMFILE, ENFILE, ENOBUFS, ENOMEM, EACCES, ECONNREFUSED};

static struct {
	struct fz_in in;
	uint8_t settings;
	int ended;             /* script over, the runner told */
	size_t volume;         /* bytes pushed so far */
	unsigned idle_polls;   /* polls since */
	int dialled;           /* the runner socket of this session exists */
	int fail_socket;       /* errno for the next local socket(), 0 none */
	int fail_connect;      /* errno for the next local connect(), 0 none */
	int request_done;      /* the upgrade request is complete */
	int proxy_done;
	char req[8192];
	size_t req_len;
	char answer[256];      /* the 101 (or proxy) answer, read from here */
	struct fz_frames frames;
	size_t n_ids;
	uint32_t ids[IDS_MAX];
	uint8_t open[IDS_MAX];
} w;

static volatile sig_atomic_t stop_flag;

/* A message the agent sent: its first `shown` bytes, len in all. */
static void check_msg(const uint8_t *p, size_t shown, size_t len)
{
	struct tunnel_msg m;
	size_t i;
	char why[96];

	if (tunnel_parse(p, shown, &m) != TUNNEL_OK) {
		fz_fail("agent message: not a valid tunnel message");
	}
	if (m.type == TUNNEL_CONNECT || m.type == TUNNEL_PING || m.port != 0) {
		fz_fail("agent message: a type the agent never sends, or a port");
	}
	if ((m.type == TUNNEL_CONNECTED || m.type == TUNNEL_PONG) && m.payload_len != 0) {
		fz_fail("agent message: CONNECTED or PONG with a payload");
	}
	if ((m.type == TUNNEL_ERROR || m.type == TUNNEL_CLOSE) && m.payload_len > 120) {
		fz_fail("agent message: reason text over 120 bytes");
	}
	m.payload_len = len - TUNNEL_HDR_LEN;
	if (m.type == TUNNEL_DATA && m.payload_len > 65527) {
		fz_fail("agent message: DATA over 65,527 bytes");
	}
	for (i = 0; i < w.n_ids && w.ids[i] != m.client_id; i++) {
	}
	if (i == w.n_ids) {
		if (w.n_ids == IDS_MAX) {
			return; /* too many ids to follow: no check */
		}
		w.ids[w.n_ids] = m.client_id;
		w.open[w.n_ids++] = 0;
	}
	switch (m.type) {
	case TUNNEL_CONNECTED:
		w.open[i] = 1;
		break;
	case TUNNEL_DATA:
		if (!w.open[i]) {
			snprintf(why, sizeof(why), "agent message: DATA for id %u, not connected or closed",
				 (unsigned)m.client_id);
			fz_fail(why);
		}
		break;
	case TUNNEL_CLOSE:
		w.open[i] = 0;
		break;
	case TUNNEL_ERROR:
		/* "client id in use" is about the new CONNECT: the live one stays. */
		if (!(m.payload_len == 16 && memcmp(m.payload, "client id in use", 16) == 0)) {
			w.open[i] = 0;
		}
		break;
	default:
		break;
	}
}

static void on_frame(void *ctx, int op, const uint8_t *p, size_t shown, size_t len)
{
	if (op == 0x2) {
		check_msg(p, shown, len);
	}
}

/* The runner's (or proxy's) side of the request: answer it. */
static void on_request(struct fz_sock *s)
{
	const char *end = memmem(w.req, w.req_len, "\r\n\r\n", 4);
	const char *key;
	char accept[HS_ACCEPT_LEN + 1];
	char k[HS_KEY_LEN + 1];

	if (end == NULL) {
		return;
	}
	w.req[end - w.req] = '\0';
	if ((w.settings & 4) && !w.proxy_done) {
		if (strncmp(w.req, "CONNECT 127.0.0.1:8001 HTTP/1.1\r\n", 33) != 0) {
			fz_fail("proxy request: not CONNECT 127.0.0.1:8001");
		}
		w.proxy_done = 1;
		w.req_len = 0;
		snprintf(w.answer, sizeof(w.answer), "HTTP/1.1 200 Connection established\r\n\r\n");
		fz_push(s, (const uint8_t *)w.answer, strlen(w.answer), 1, 1);
		return;
	}
	if (strncmp(w.req, "GET /base/ws/tunnel/c0ffee HTTP/1.1\r\n", 37) != 0) {
		fz_fail("upgrade request: wrong request line");
	}
	key = strstr(w.req, "\r\nSec-WebSocket-Key: ");
	if (key == NULL || strlen(key + 21) < HS_KEY_LEN) {
		fz_fail("upgrade request: no Sec-WebSocket-Key");
	}
	memcpy(k, key + 21, HS_KEY_LEN);
	k[HS_KEY_LEN] = '\0';
	w.request_done = 1;
	if (w.settings & 1) {
		hs_accept_for(k, accept);
		snprintf(w.answer, sizeof(w.answer),
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			 accept);
		fz_push(s, (const uint8_t *)w.answer, strlen(w.answer), 1, 1);
	}
	/* Whatever followed the request would be frames. */
	size_t rest = w.req_len - (size_t)(end + 4 - w.req);
	fz_frames_feed(&w.frames, (const uint8_t *)end + 4, rest);
}

static void on_send(struct fz_sock *s, const uint8_t *p, size_t n)
{
	if (s->role != R_RUNNER) {
		return;
	}
	if (w.request_done) {
		fz_frames_feed(&w.frames, p, n);
		return;
	}
	if (w.req_len + n >= sizeof(w.req)) {
		fz_fail("upgrade request: longer than 8 KiB");
	}
	memcpy(w.req + w.req_len, p, n);
	w.req_len += n;
	on_request(s);
}

static int on_socket(int domain, int type)
{
	int err = w.dialled ? w.fail_socket : 0;

	w.fail_socket = 0;
	return err;
}

static int on_connect(struct fz_sock *s)
{
	int err;

	if (!w.dialled) {
		w.dialled = 1;
		s->role = R_RUNNER;
		s->result = 0; /* the runner (or proxy) answers at once */
		return 0;
	}
	s->role = R_LOCAL;
	err = w.fail_connect;
	w.fail_connect = 0;
	if (err == 0 && (w.settings & 2)) {
		s->result = 0;
	}
	return err;
}

static size_t budget(uint8_t b)
{
	return b == 0xff ? SIZE_MAX : (size_t)b * 64;
}

/* One op of the script; see fz_hooks.step. */
static int step(void)
{
	struct fz_in *in = &w.in;
	struct fz_sock *s;
	const uint8_t *p;
	size_t n;

	if (!fz_in_more(in)) {
		s = fz_pick(R_RUNNER, 0);
		if (!w.ended && s != NULL) {
			w.ended = 1;
			s->in_eof = 1;
			s->hup = 1;
			return 1;
		}
		if (++w.idle_polls > 100000) {
			fz_fail("the session does not end after the runner left");
		}
		if (w.idle_polls > 1000) {
			stop_flag = 1;
		}
		return -1;
	}
	uint8_t op = fz_in_u8(in);
	switch (op & 0xf) {
	case 0: /* runner bytes */
	case 1:
		p = fz_in_take(in, fz_in_len(in), &n);
		fz_feed(fz_pick(R_RUNNER, 0), p, n, 1, &w.volume);
		return 1;
	case 2: /* runner bytes, repeated: volume without a large input */
		n = fz_in_u8(in);
		size_t times = (size_t)fz_in_u8(in) * 16 + 1;
		p = fz_in_take(in, n, &n);
		fz_feed(fz_pick(R_RUNNER, 0), p, n, times, &w.volume);
		return 1;
	case 3: /* a local service sends bytes (a datagram) */
		s = fz_pick(R_LOCAL, fz_in_u8(in));
		p = fz_in_take(in, fz_in_len(in), &n);
		if (s != NULL && s->type == SOCK_DGRAM) {
			fz_push_dgram(s, p, n, 0);
		} else {
			fz_feed(s, p, n, op >> 4 == 0 ? 1 : (size_t)(op >> 4) * 1024, &w.volume);
		}
		return 1;
	case 4: /* a local service ends its stream */
		s = fz_pick(R_LOCAL, fz_in_u8(in));
		if (s != NULL) {
			s->in_eof = 1;
			s->hup = (op >> 4) & 1;
		}
		return 1;
	case 5: /* a local socket fails */
		s = fz_pick(R_LOCAL, fz_in_u8(in));
		if (s != NULL) {
			int e = sock_errs[(op >> 4) % 6];
			if (op & 0x80) {
				s->out_err = e;
			} else {
				s->in_err = e;
			}
		}
		return 1;
	case 6: /* how much a local socket takes before it is full */
		s = fz_pick(R_LOCAL, fz_in_u8(in));
		n = budget(fz_in_u8(in)); /* read whether or not s exists */
		if (s != NULL) {
			s->out_budget = n;
		}
		return 1;
	case 7: /* a local connect completes: 0 or an errno */
		s = fz_pick(R_LOCAL, fz_in_u8(in));
		if (s != NULL && s->connecting && s->result < 0) {
			s->result = (op >> 4) < 8 ? 0 : sock_errs[(op >> 4) % 6];
		}
		return 1;
	case 8: /* every pending local connect succeeds */
		for (unsigned k = 0; k < FZ_MAX_FDS; k++) {
			s = fz_sock_of(FZ_FD_BASE + (int)k);
			if (s != NULL && s->role == R_LOCAL && s->connecting && s->result < 0) {
				s->result = 0;
			}
		}
		return 1;
	case 9: /* time passes */
		fz_advance((uint64_t)1 << (fz_in_u8(in) % 24));
		return 0;
	case 10: /* how much the runner socket takes */
		s = fz_pick(R_RUNNER, 0);
		n = fz_in_u8(in);
		if (s != NULL) {
			s->out_budget = n == 0xff ? SIZE_MAX : n * 1024;
		}
		return 1;
	case 11: /* the next local socket() or connect() fails */
		if (op & 0x80) {
			w.fail_connect = open_errs[(op >> 4) % 6];
		} else {
			w.fail_socket = open_errs[(op >> 4) % 6];
		}
		return 1;
	case 12: /* the runner connection breaks */
		s = fz_pick(R_RUNNER, 0);
		if (s != NULL) {
			if (op & 0x10) {
				s->in_err = ECONNRESET;
			} else {
				s->in_eof = 1;
			}
			s->hup = 1;
		}
		return 1;
	case 13: /* SIGTERM */
		if ((op >> 4) == 0xd) {
			stop_flag = 1;
		}
		return 1;
	default:
		return 0; /* nothing happens this turn */
	}
}

static void settings_argv(char **argv, int *argc, const char *level)
{
	static char *base[] = {"tunnel-client", "--runner-url", "ws://127.0.0.1:8001/base/",
			       "--container-id", "c0ffee", "--connect-timeout", "5",
			       "--ping-interval", "30", "--ping-timeout", "15"};
	static char *tight[] = {"--max-connections", "3", "--max-udp", "1", "--allow-ports",
				"1-9,80,udp:53,tcp:1000-2000,udp:5000-5100", "--max-message", "65544",
				"--stall-timeout", "2", "--udp-idle-timeout", "3"};
	static char *extra[] = {"--token", "s3cret", "--header", "X-Fuzz: 1"};
	static char *proxy[] = {"--proxy", "http://u:p@127.0.0.1:3128"};
	static char *status[] = {"--status-port", "9090", "--log-ring", "4096"};
	int n = 0;

	fz_args_add(argv, &n, base, FZ_COUNT(base));
	if (w.settings & 8) {
		fz_args_add(argv, &n, tight, FZ_COUNT(tight));
	}
	if (w.settings & 32) {
		fz_args_add(argv, &n, extra, FZ_COUNT(extra));
	}
	if (w.settings & 4) {
		fz_args_add(argv, &n, proxy, FZ_COUNT(proxy));
	}
	if (w.settings & 64) {
		fz_args_add(argv, &n, status, FZ_COUNT(status));
	}
	argv[n++] = "--log-level";
	argv[n++] = (char *)level;
	argv[n] = NULL;
	*argc = n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const vars[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
					   "no_proxy", "NO_PROXY", "RUNNER_URL", "CONTAINER_ID"};

	fz_env_clear(vars, FZ_COUNT(vars));
	return log_ring_init(4096); /* what main() does: /logs has lines */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct url url;
	struct proxy proxy;
	struct session_env env;
	sigset_t waitmask;
	static struct stats stats;
	static volatile sig_atomic_t report_flag;
	char *argv[40];
	int argc;
	char err[256];
	char shown[URL_HOST_MAX + URL_PATH_MAX + 32];
	unsigned long up_ms;

	if (size == 0) {
		return 0;
	}
	memset(&w, 0, sizeof(w));
	fz_reset();
	stop_flag = 0;
	w.settings = data[0];
	w.in.p = data + 1;
	w.in.n = size - 1;
	/* $FUZZ_LOG_LEVEL (with $FUZZ_SHOW_LOG) shows a run's log. */
	const char *level = getenv("FUZZ_LOG_LEVEL");
	settings_argv(argv, &argc, level != NULL ? level : (w.settings & 16) ? "trace" : "error");
	if (config_parse(&cfg, argc, argv, err, sizeof(err)) != CONFIG_RUN ||
	    url_parse(cfg.runner_url, &url, err, sizeof(err)) != 0) {
		fz_fail(err);
	}
	int use_proxy = proxy_select(cfg.proxy, &url, &proxy, err, sizeof(err));
	if (use_proxy < 0) {
		fz_fail(err);
	}
	if (cfg.max_conns == 0) {
		cfg.max_conns = 200;
	}
	log_set_level(cfg.log_level);
	url_display(&url, shown, sizeof(shown));
	sigemptyset(&waitmask);
	memset(&env, 0, sizeof(env));
	memset(&stats, 0, sizeof(stats));
	stats.state = "connecting";
	report_flag = 0;
	env.stats = &stats;
	env.report = &report_flag;
	env.cfg = &cfg;
	env.url = &url;
	env.shown_url = shown;
	env.tls = NULL;
	env.proxy = use_proxy > 0 ? &proxy : NULL;
	env.stop = &stop_flag;
	env.waitmask = &waitmask;
	fz_hooks.step = step;
	fz_hooks.on_socket = on_socket;
	fz_hooks.on_connect = on_connect;
	fz_hooks.on_send = on_send;
	for (int i = 0; i < SESSIONS_MAX && !stop_flag; i++) {
		w.dialled = 0;
		w.request_done = 0;
		w.proxy_done = 0;
		w.req_len = 0;
		w.n_ids = 0;
		w.ended = 0;
		fz_frames_init(&w.frames, 1, on_frame, NULL);
		enum session_result r = session_run(&env, &up_ms);
		if (fz_open_count() != 0) {
			fz_fail("fake sockets left open after the session");
		}
		if (r == SESSION_STOPPED || !fz_in_more(&w.in)) {
			break;
		}
	}
	log_set_level(LOG_INFO);
	return 0;
}
