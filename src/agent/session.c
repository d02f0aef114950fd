#include "session.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "config.h"
#include "conn.h"
#include "dial.h"
#include "dispatch.h"
#include "fmt.h"
#include "handshake.h"
#include "log.h"
#include "net.h"
#include "pollset.h"
#include "rand.h"
#include "stats.h"
#include "status.h"
#include "tls_client.h"
#include "tls_io.h"
#include "transport.h"
#include "tunnel.h"
#include "url.h"
#include "ws.h"

enum state {
	ST_TLS,       /* TCP connected; TLS handshake in progress (wss://) */
	ST_UPGRADING, /* upgrade request queued/sent; reading the response */
	ST_OPEN,      /* the tunnel serves connections */
	ST_CLOSING,   /* our close frame is queued; waiting (bounded) for theirs */
	ST_ENDED,     /* done; the cause is logged */
};

struct session {
	const struct session_env *env;
	enum state state;
	struct transport tr;
	struct ws ws;
	struct conn_table conns;
	struct dispatch dispatch;
	struct status status;
	struct pollset ps;       /* slot 0: the runner socket, status, then connections */
	char key[HS_KEY_LEN + 1];
	size_t request_len;      /* the upgrade request, wiped once it is out */
	uint64_t deadline_ms;    /* handshake or close deadline */
	uint64_t last_rx_ms;     /* last byte from the runner */
	uint64_t ping_sent_ms;   /* our keepalive ping, 0 if none outstanding */
	uint64_t last_bulk_ms;   /* a read or write of BUF_FIRST or more */
	int grown;               /* ... since the buffers were last trimmed */
	uint64_t open_ms;        /* when the tunnel opened */
};

/* Mark the session ended with a cause; later calls keep the first cause. */
static void end(struct session *s, enum log_level lvl, const char *what, const char *why)
{
	if (s->state == ST_ENDED) {
		return;
	}
	log_msg(lvl, "tunnel %s reason=\"%s\"", what, why);
	if (!*s->env->stop) {
		fmt_snprintf(s->env->stats->last_error, sizeof(s->env->stats->last_error), "tunnel %s: %s",
			     what, why);
	}
	s->state = ST_ENDED;
}

/* Ask for an orderly close: close frame now, end at the deadline. */
static void begin_close(struct session *s, uint16_t code, const char *why, uint64_t now,
			uint64_t wait_ms)
{
	if (s->state == ST_OPEN) {
		log_info("tunnel closing code=%u reason=\"%s\"", (unsigned)code, why);
		ws_send_close(&s->ws, code, why);
		s->state = ST_CLOSING;
		s->env->stats->state = "closing";
		s->deadline_ms = now + wait_ms;
	} else if (s->state != ST_CLOSING) {
		end(s, LOG_INFO, "ended", why);
	}
}

/* ---- runner messages ---- */

static void sink_send(void *ctx, const uint8_t *msg, size_t len)
{
	struct session *s = ctx;

	if (ws_send_binary(&s->ws, msg, len) != 0) {
		log_debug("message dropped: tunnel closing type=%s", tunnel_type_name(msg[0]));
	}
}

static uint8_t *sink_data_begin(void *ctx, size_t max)
{
	struct session *s = ctx;

	return ws_data_begin(&s->ws, max);
}

static void sink_data_end(void *ctx, size_t len)
{
	struct session *s = ctx;

	ws_data_end(&s->ws, len);
}

/* ---- dialing ---- */

/* Each dial step as a log line. */
static void dial_report(void *ctx, enum dial_step step, int ok, const char *detail)
{
	const struct session_env *env = ctx;
	static const char *const steps[] = {"resolve", "connect", "proxy"};

	if (!ok) {
		fmt_snprintf(env->stats->last_error, sizeof(env->stats->last_error), "%s failed %s",
			     steps[step], detail);
	}
	switch (step) {
	case DIAL_RESOLVE:
		if (ok) {
			log_debug("resolved %s", detail);
		} else {
			log_warn("resolve failed %s", detail);
		}
		break;
	case DIAL_CONNECT:
		if (ok) {
			log_debug("connected %s%s", env->proxy != NULL ? "to proxy " : "", detail);
		} else {
			log_warn("connect to %s failed %s", env->proxy != NULL ? "proxy" : "runner", detail);
		}
		break;
	case DIAL_PROXY:
		if (ok) {
			log_debug("proxy tunnel open %s", detail);
		} else {
			log_warn("proxy tunnel failed %s", detail);
		}
		break;
	}
}

static int dial(const struct session_env *env)
{
	struct dial_env d = {env->cfg->connect_timeout_ms, env->url, env->proxy, env->stop,
			     env->waitmask, dial_report, (void *)env};

	return dial_connect(&d);
}

/* ---- handshake ---- */

void session_upgrade_headers(const struct session_env *env, char *out, size_t outlen)
{
	const char *tok = env->cfg->token;
	char basic[URL_AUTH_MAX];
	size_t n;

	url_basic_auth(env->url, basic); /* user info in the runner URL */
	if (tok != NULL) {
		n = (size_t)fmt_snprintf(out, outlen, "Authorization: Bearer %s\r\n", tok);
	} else if (basic[0] != '\0') {
		n = (size_t)fmt_snprintf(out, outlen, "Authorization: Basic %s\r\n", basic);
	} else {
		n = 0;
	}
	fmt_snprintf(out + (n < outlen ? n : outlen - 1), outlen - (n < outlen ? n : outlen - 1), "%s",
		     env->cfg->headers);
	memset(basic, 0, sizeof(basic));
}

static int send_upgrade(struct session *s)
{
	const struct url *u = s->env->url;
	char path[URL_PATH_MAX];
	char host[URL_HOST_MAX + 16];
	char req[URL_PATH_MAX + URL_HOST_MAX + 512 + SESSION_HEADERS_MAX];
	char extra[SESSION_HEADERS_MAX];
	uint8_t nonce[16];
	int n;

	if (rand_bytes(nonce, sizeof(nonce)) != 0 ||
	    url_tunnel_path(u, s->env->cfg->container_id, path, sizeof(path)) != 0 ||
	    url_host_header(u, host, sizeof(host)) != 0) {
		return -1;
	}
	hs_make_key(nonce, s->key);
	session_upgrade_headers(s->env, extra, sizeof(extra));
	n = hs_request(req, sizeof(req), host, path, s->key, extra);
	s->request_len = n > 0 ? (size_t)n : 0;
	if (n < 0 || buf_append(&s->ws.out, req, (size_t)n) != 0) {
		n = -1;
	}
	/* The token stays out of memory that is reused (and out of logs). */
	memset(extra, 0, sizeof(extra));
	memset(req, 0, sizeof(req));
	if (n < 0) {
		return -1;
	}
	log_debug("upgrade request path=%s", path);
	return 0;
}

static void read_upgrade(struct session *s, uint64_t now)
{
	size_t len;
	size_t used = 0;
	int status = 0;
	const uint8_t *p = buf_data(&s->ws.in, &len);
	enum hs_result r;
	char why[96];

	if (len == 0) {
		return;
	}
	r = hs_parse_response(p, len, TC_HS_RESPONSE_MAX, s->key, &used, &status);
	if (r == HS_NEED_MORE) {
		return;
	}
	if (r != HS_DONE) {
		if (r == HS_ERR_STATUS) {
			fmt_snprintf(why, sizeof(why), "%s: HTTP %d", hs_strerror(r), status);
		} else {
			fmt_snprintf(why, sizeof(why), "%s", hs_strerror(r));
		}
		end(s, LOG_WARN, "upgrade failed", why);
		return;
	}
	buf_consume(&s->ws.in, used);
	buf_wipe(&s->ws.out, s->request_len); /* it held the token */
	s->state = ST_OPEN;
	s->env->stats->state = "open";
	s->env->stats->connected_since = (int64_t)time(NULL);
	s->open_ms = now;
	s->last_rx_ms = now;
	s->deadline_ms = 0;
	log_info("tunnel open url=%s container=%s", s->env->shown_url, s->env->cfg->container_id);
}

/* ---- pumping ---- */

static int may_read_local(const struct session *s)
{
	return s->state == ST_OPEN && ws_queued(&s->ws) == 0 &&
	       buf_len(&s->ws.out) + transport_pending_out(&s->tr) < TC_OUT_HWM;
}

/* A transfer of n bytes either way: a large one grows the buffers, which
 * session_timers gives back once bulk stops. */
static void note_bulk(struct session *s, size_t n, uint64_t now)
{
	if (n >= BUF_FIRST) {
		s->last_bulk_ms = now;
		s->grown = 1;
	}
}

/* Write framed bytes to the transport. 1 if any moved. */
static int flush_out(struct session *s, uint64_t now)
{
	size_t len;
	const uint8_t *p = buf_data(&s->ws.out, &len);
	ssize_t n;
	int moved = 0;

	if (len > 0) {
		n = transport_write(&s->tr, p, len);
		if (n > 0) {
			buf_consume(&s->ws.out, (size_t)n);
			note_bulk(s, (size_t)n, now);
			moved = 1;
		} else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			end(s, LOG_WARN, "lost", transport_strerror(&s->tr, errno));
			return 0;
		}
	}
	if (transport_flush(&s->tr) != 0) {
		end(s, LOG_WARN, "lost", transport_strerror(&s->tr, errno));
	}
	return moved;
}

/* Read from the transport into ws.in while there is room. 1 if any moved. */
static int fill_in(struct session *s, uint64_t now)
{
	size_t avail;
	uint8_t *p = buf_space(&s->ws.in, &avail);
	ssize_t n;

	if (p == NULL || s->ws.paused) {
		return 0;
	}
	n = transport_read(&s->tr, p, avail);
	if (n > 0) {
		buf_commit(&s->ws.in, (size_t)n);
		s->last_rx_ms = now;
		s->ping_sent_ms = 0;
		note_bulk(s, (size_t)n, now);
		return 1;
	}
	if (n == 0) {
		end(s, s->state == ST_CLOSING ? LOG_INFO : LOG_WARN, "lost",
		    "runner closed the connection");
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		end(s, LOG_WARN, "lost", transport_strerror(&s->tr, errno));
	}
	return 0;
}

/* Move bytes through every stage until none moves. */
static void pump(struct session *s, uint64_t now)
{
	int moved;

	do {
		moved = 0;
		if (s->state == ST_TLS) {
			int r = transport_handshake(&s->tr);
			if (r < 0) {
				end(s, LOG_WARN, "TLS handshake failed", transport_strerror(&s->tr, EPROTO));
				return;
			}
			if (r == 0) {
				return;
			}
			if (send_upgrade(s) != 0) {
				end(s, LOG_ERROR, "ended", "cannot build the upgrade request");
				return;
			}
			s->state = ST_UPGRADING;
			moved = 1;
		}
		if (s->state == ST_UPGRADING) {
			moved |= flush_out(s, now);
			moved |= fill_in(s, now);
			read_upgrade(s, now);
			if (s->state != ST_OPEN) {
				if (s->state == ST_ENDED) {
					return;
				}
				continue;
			}
		}
		if (s->state != ST_OPEN && s->state != ST_CLOSING) {
			return;
		}
		s->ws.paused = s->conns.over_hwm > 0 || ws_queued(&s->ws) >= TC_CTRL_MAX;
		if (s->ws.paused) {
			s->last_rx_ms = now; /* our own backpressure is not silence */
		}
		if (ws_recv(&s->ws) != 0) {
			end(s, LOG_WARN, "lost", "WebSocket protocol error");
			return;
		}
		dispatch_flush(&s->dispatch);
		int f = ws_frame(&s->ws);
		if (f < 0) {
			end(s, LOG_WARN, "lost", "WebSocket framing failed");
			return;
		}
		moved |= f;
		while (may_read_local(s) && conn_read_one(&s->conns, now)) {
			moved = 1;
		}
		f = ws_frame(&s->ws);
		if (f < 0) {
			end(s, LOG_WARN, "lost", "WebSocket framing failed");
			return;
		}
		moved |= f;
		moved |= flush_out(s, now);
		if (s->state == ST_ENDED) {
			return;
		}
		moved |= fill_in(s, now);
		if (s->state == ST_ENDED) {
			return;
		}
	} while (moved);
}

/* Session-level end conditions and timers; lowers *next. */
static void session_timers(struct session *s, uint64_t now, uint64_t *next)
{
	const struct config *cfg = s->env->cfg;
	uint16_t code;

	if (s->state == ST_OPEN || s->state == ST_CLOSING) {
		if (ws_close_received(&s->ws, &code) && buf_len(&s->ws.out) == 0 &&
		    transport_pending_out(&s->tr) == 0 && ws_queued(&s->ws) == 0) {
			char why[48];
			fmt_snprintf(why, sizeof(why), "close code %u", (unsigned)code);
			end(s, s->state == ST_CLOSING ? LOG_INFO : LOG_WARN,
			    s->state == ST_CLOSING ? "closed" : "closed by runner", why);
			return;
		}
		if (ws_finished(&s->ws) && buf_len(&s->ws.out) == 0) {
			end(s, LOG_WARN, "closed", ws_close_code_sent(&s->ws) == 1009
							   ? "message too big (1009)"
							   : "WebSocket closed");
			return;
		}
		if (ws_close_sent(&s->ws) && s->state == ST_OPEN) {
			/* wslay closed on its own (protocol error, message too big). */
			s->state = ST_CLOSING;
			s->deadline_ms = now + TC_CLOSE_WAIT_MS;
		}
	}
	if (s->state == ST_OPEN) {
		uint64_t ping_at = s->last_rx_ms + cfg->ping_interval_ms;
		if (s->ping_sent_ms == 0 && now >= ping_at) {
			log_debug("runner idle, sending ping");
			ws_send_ping(&s->ws);
			s->ping_sent_ms = now;
		}
		if (s->ping_sent_ms != 0) {
			uint64_t dead_at = s->ping_sent_ms + cfg->ping_timeout_ms;
			if (now >= dead_at) {
				begin_close(s, 1001, "runner silent", now, TC_CLOSE_WAIT_MS);
				log_warn("runner silent for %llu ms", (unsigned long long)(now - s->last_rx_ms));
			} else if (dead_at < *next) {
				*next = dead_at;
			}
		} else if (ping_at < *next) {
			*next = ping_at;
		}
	}
	if (s->grown) {
		/* No bulk for a while: give back the buffers a burst grew
		 * (those still holding bytes stay). The runner's pings keep
		 * the tunnel busy, so this cannot wait for our own ping. */
		uint64_t quiet_at = s->last_bulk_ms + TC_IDLE_RELEASE_MS;
		if (now >= quiet_at) {
			ws_trim(&s->ws);
			dispatch_trim(&s->dispatch);
			transport_trim(&s->tr);
			s->grown = 0;
		} else if (quiet_at < *next) {
			*next = quiet_at;
		}
	}
	if (s->deadline_ms != 0) {
		if (now >= s->deadline_ms) {
			if (s->state == ST_CLOSING) {
				end(s, LOG_INFO, "closed", "close handshake timed out");
			} else {
				end(s, LOG_WARN, "handshake failed", "timed out");
			}
			return;
		}
		if (s->deadline_ms < *next) {
			*next = s->deadline_ms;
		}
	}
}

static void loop(struct session *s)
{
	const struct session_env *env = s->env;

	while (s->state != ST_ENDED) {
		uint64_t now = net_now_ms();
		uint64_t next = now + 60000;
		int r;

		if (*env->report) {
			*env->report = 0;
			status_log(env, &s->conns);
		}
		if (*env->stop && s->state != ST_CLOSING) {
			begin_close(s, 1001, "agent shutting down", now, TC_CLOSE_WAIT_MS / 2);
		}
		pump(s, now);
		if (s->state == ST_ENDED) {
			break;
		}
		/* Deadlines are taken after the pump, so a queue it filled past
		 * its mark or a tunnel it opened is in the poll timeout. If the
		 * timers acted (a message queued, a connection finished, the
		 * state moved), go round again so the pump carries it out. */
		enum state before = s->state;
		size_t queued = ws_queued(&s->ws);
		size_t live = conn_count(&s->conns);
		conn_timers(&s->conns, now, &next);
		status_timers(&s->status, now, &next);
		session_timers(s, now, &next);
		conn_reap(&s->conns);
		if (s->state == ST_ENDED) {
			break;
		}
		if (s->state != before || ws_queued(&s->ws) != queued ||
		    conn_count(&s->conns) != live) {
			continue;
		}

		int want_write = buf_len(&s->ws.out) > 0;
		short ev = transport_events(&s->tr, want_write);
		if (s->ws.paused || (s->state != ST_UPGRADING && s->state != ST_TLS &&
				     buf_len(&s->ws.in) >= TC_IN_CAP)) {
			ev &= (short)~POLLIN;
		}
		pollset_set(&s->ps, 0, ev);
		s->ps.pfd[0].revents = 0;
		r = net_ppoll(s->ps.pfd, s->ps.n, next, env->waitmask);
		if (r < 0 && errno != EINTR) {
			end(s, LOG_ERROR, "ended", strerror(errno));
			break;
		}
		now = net_now_ms();
		short rev = s->ps.pfd[0].revents;
		if (r > 0) {
			transport_ready(&s->tr, rev);
			size_t seen = (rev != 0) + status_poll_done(&s->status, now);
			conn_poll_done(&s->conns, (size_t)r - seen, now);
		}
		if ((rev & (POLLERR | POLLHUP)) && !(rev & POLLIN)) {
			int err = net_connect_result(s->tr.fd);
			end(s, LOG_WARN, "lost", err != 0 ? strerror(err) : "connection hung up");
		}
	}
}

enum session_result session_run(const struct session_env *env, unsigned long *up_ms)
{
	struct session s;
	struct conn_limits lim;
	struct conn_sink sink;
	enum session_result result = SESSION_FAILED;
	int fd;

	*up_ms = 0;
	memset(&s, 0, sizeof(s));
	s.env = env;
	s.tr.fd = -1;
	log_info("connecting url=%s container=%s", env->shown_url, env->cfg->container_id);
	fd = dial(env);
	if (fd < 0) {
		return *env->stop ? SESSION_STOPPED : SESSION_FAILED;
	}
	net_tune_runner(fd, (unsigned)(env->cfg->ping_interval_ms + env->cfg->ping_timeout_ms));

	env->stats->dials++;
	env->stats->state = "connecting";
	lim.allow = &env->cfg->allow;
	lim.stats = env->stats;
	lim.status_port = (uint16_t)env->cfg->status_port;
	lim.status_open = status_open;
	lim.status_ctx = &s.status;
	lim.max_conns = env->cfg->max_conns;
	lim.max_udp = env->cfg->max_udp;
	lim.connect_timeout_ms = env->cfg->connect_timeout_ms;
	lim.udp_idle_ms = env->cfg->udp_idle_ms;
	lim.stall_timeout_ms = env->cfg->stall_timeout_ms;
	sink.ctx = &s;
	sink.send = sink_send;
	sink.data_begin = sink_data_begin;
	sink.data_end = sink_data_end;
	pollset_init(&s.ps);
	struct tls_io *tls = env->tls != NULL ? tls_client_new(env->tls, fd) : NULL;
	if ((env->tls != NULL && tls == NULL) || pollset_add(&s.ps, fd, 0, NULL) != 0 ||
	    status_init(&s.status, env, &s.conns, &s.ps) != 0 ||
	    ws_init_client(&s.ws, env->cfg->max_message, &dispatch_rx, &s.dispatch) != 0) {
		log_error("out of memory starting a session");
		tls_io_free(tls);
		close(fd);
		goto out;
	}
	transport_init(&s.tr, fd, tls);
	conn_table_init(&s.conns, &lim, sink, &s.ps);
	dispatch_init(&s.dispatch, &s.conns);
	s.state = ST_TLS; /* a plain transport completes this step at once */
	s.deadline_ms = net_now_ms() + env->cfg->connect_timeout_ms;
	loop(&s);
	if (s.open_ms != 0) {
		result = SESSION_LOST;
		*up_ms = (unsigned long)(net_now_ms() - s.open_ms);
	}
	if (*env->stop) {
		result = SESSION_STOPPED;
	}
	if (conn_count(&s.conns) > 0) {
		log_info("closing local connections count=%zu", conn_count(&s.conns));
	}
	conn_table_free(&s.conns);
	dispatch_free(&s.dispatch);
out:
	status_free(&s.status);
	env->stats->connected_since = 0;
	ws_free(&s.ws); /* zeroed above: safe before ws_init_client too */
	transport_close(&s.tr);
	pollset_free(&s.ps);
	return result;
}
