#include "agent.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "bounds.h"
#include "expose.h"
#include "fmt.h"
#include "handshake.h"
#include "net.h"
#include "public.h"
#include "registry.h"
#include "server.h"
#include "tls_io.h"
#include "tls_server.h"
#include "transport.h"
#include "tunnel.h"
#include "ws.h"

#define TUNNEL_PREFIX "/ws/tunnel/"

enum agent_state {
	AG_TLS,      /* accepted; TLS handshake in progress (wss://) */
	AG_REQUEST,  /* reading the upgrade request */
	AG_REFUSING, /* an HTTP refusal is queued; done once it is written */
	AG_OPEN,     /* the tunnel serves public connections */
	AG_CLOSING,  /* our close frame is queued; waiting (bounded) for theirs */
	AG_DONE,     /* finished; freed by agent_reap */
};

static const char *const state_names[] = {"tls", "request", "refusing", "open", "closing", "done"};

struct agent {
	struct pollable pl; /* first: OWN_AGENT and the slot */
	struct server *srv;
	enum agent_state state;
	uint8_t *data_at;   /* agent_data_begin's message, for agent_data_end */
	struct transport tr;
	struct ws ws;
	char id[TS_AGENT_ID_MAX + 1];
	char addr[64];
	char user_agent[HS_USER_AGENT_MAX];
	uint64_t deadline_ms;   /* handshake or close deadline, 0 if none */
	uint64_t last_rx_ms;    /* last byte from the agent */
	uint64_t last_bulk_ms;  /* last read or write of BUF_FIRST or more */
	uint64_t ping_sent_ms;  /* our ping, 0 if none outstanding */
	int64_t connected_at;   /* Unix seconds of the upgrade */
	uint64_t bytes_in;
	uint64_t bytes_out;
	int registered;
	/* the message being received */
	uint8_t hdr[TUNNEL_HDR_LEN];
	size_t hdr_len;
	size_t msg_len;
	struct tunnel_msg m;
	enum tunnel_err err;
	struct tunnel_end *target;  /* whose DATA this is, or NULL */
	char text[TC_ERROR_TEXT_MAX + 1]; /* an ERROR's reason */
	size_t text_len;
	struct buf udp;             /* a datagram for a UDP flow, whole */
	int oversize;               /* ... larger than TC_DATA_MAX: dropped */
	/* tunnels */
	struct idmap ends;
	uint32_t next_id;
	size_t over_hwm;            /* public connections above their mark */
	struct list ready;          /* public connections with input */
	struct list active;         /* on the server's active list */
	struct list link;           /* on the server's agents list */
	struct list dead;
};

struct agent *agent_of_link(struct list *l)
{
	return list_entry(l, struct agent, link);
}

struct agent *agent_of_active(struct list *l)
{
	return list_entry(l, struct agent, active);
}

const char *agent_id(const struct agent *a)
{
	return a->id;
}

int agent_is_open(const struct agent *a)
{
	return a->state == AG_OPEN;
}

/* ---- ending ---- */

/* Mark a done with a cause (logged once); every tunnel end goes with it. */
static void end(struct agent *a, enum log_level lvl, const char *why)
{
	struct server *s = a->srv;

	if (a->state == AG_DONE) {
		return;
	}
	if (a->registered || a->id[0] != '\0') {
		log_msg(lvl, "agent gone id=%s addr=%s reason=\"%s\"", a->id[0] != '\0' ? a->id : "-",
			a->addr, why);
	} else {
		log_debug("agent connection closed addr=%s reason=\"%s\"", a->addr, why);
	}
	a->state = AG_DONE;
	if (a->registered) {
		registry_remove(s->reg, a);
		a->registered = 0;
	}
	/* Every public connection and flow of this agent ends now. */
	for (size_t i = 0; a->ends.n > 0 && i < ((size_t)1 << a->ends.bits); i++) {
		while (a->ends.buckets[i] != NULL) {
			struct tunnel_end *e = list_entry(a->ends.buckets[i], struct tunnel_end, node);
			idmap_del(&a->ends, &e->node);
			if (e->proto == TUNNEL_TCP) {
				public_agent_gone(e, why);
			} else {
				expose_flow_gone(e);
			}
		}
	}
	list_del(&a->active);
	list_del(&a->ready);
	pollset_set(&s->ps, a->pl.slot, 0);
	list_add_tail(&s->dead_agents, &a->dead);
}

void agent_shutdown(struct agent *a, uint16_t code, const char *why, uint64_t now)
{
	if (a->state == AG_OPEN) {
		log_info("agent closing id=%s code=%u reason=\"%s\"", a->id, (unsigned)code, why);
		ws_send_close(&a->ws, code, why);
		a->state = AG_CLOSING;
		a->deadline_ms = now + TC_CLOSE_WAIT_MS;
		agent_wake(a);
	} else if (a->state != AG_CLOSING) {
		end(a, LOG_DEBUG, why);
	}
}

void agent_reap(struct server *s)
{
	for (struct list *l = list_first(&s->dead_agents); l != NULL; l = list_first(&s->dead_agents)) {
		struct agent *a = list_entry(l, struct agent, dead);

		server_drop_slot(s, a->pl.slot);
		list_del(&a->dead);
		list_del(&a->link);
		s->n_agents--;
		ws_free(&a->ws);
		transport_close(&a->tr);
		idmap_free(&a->ends);
		buf_free(&a->udp);
		free(a);
	}
}

/* ---- messages from the agent ---- */

static void rx_start(void *user)
{
	struct agent *a = user;

	a->hdr_len = 0;
	a->msg_len = 0;
	a->err = TUNNEL_ERR_SHORT;
	a->target = NULL;
	a->text_len = 0;
	a->oversize = 0;
	buf_consume(&a->udp, buf_len(&a->udp));
}

static void on_header(struct agent *a)
{
	struct idmap_node *n;

	a->err = tunnel_parse(a->hdr, TUNNEL_HDR_LEN, &a->m);
	if (a->err != TUNNEL_OK) {
		return;
	}
	n = idmap_find(&a->ends, a->m.client_id);
	a->target = n != NULL ? list_entry(n, struct tunnel_end, node) : NULL;
	if (a->target != NULL && a->target->proto != a->m.proto) {
		a->target = NULL; /* an id of the other proto */
	}
}

static void rx_data(void *user, const uint8_t *p, size_t n)
{
	struct agent *a = user;

	a->msg_len += n;
	if (a->hdr_len < TUNNEL_HDR_LEN) {
		size_t k = TUNNEL_HDR_LEN - a->hdr_len < n ? TUNNEL_HDR_LEN - a->hdr_len : n;
		memcpy(a->hdr + a->hdr_len, p, k);
		a->hdr_len += k;
		p += k;
		n -= k;
		if (a->hdr_len < TUNNEL_HDR_LEN) {
			return;
		}
		on_header(a);
	}
	if (n == 0 || a->err != TUNNEL_OK) {
		return;
	}
	if (a->m.type == TUNNEL_ERROR) {
		size_t k = TC_ERROR_TEXT_MAX - a->text_len < n ? TC_ERROR_TEXT_MAX - a->text_len : n;
		memcpy(a->text + a->text_len, p, k);
		a->text_len += k;
		return;
	}
	if (a->m.type != TUNNEL_DATA || a->target == NULL) {
		return;
	}
	a->bytes_in += n;
	a->srv->n.bytes_from_agents += n;
	if (a->target->proto == TUNNEL_TCP) {
		public_on_data(a->target, p, n, net_now_ms());
	} else if (!a->oversize && buf_append(&a->udp, p, n) != 0) {
		a->oversize = 1; /* one datagram must stay whole */
	}
}

static void rx_end(void *user)
{
	struct agent *a = user;
	struct tunnel_end *e = a->target;
	uint64_t now = net_now_ms();

	if (a->err != TUNNEL_OK) {
		log_warn("message dropped id=%s len=%zu type=%u reason=\"%s\"", a->id, a->msg_len,
			 a->hdr_len > 0 ? (unsigned)a->hdr[0] : 0u, tunnel_strerror(a->err));
		return;
	}
	switch (a->m.type) {
	case TUNNEL_CONNECTED:
		if (e != NULL && e->proto == TUNNEL_TCP) {
			public_on_connected(e);
		}
		break;
	case TUNNEL_DATA:
		if (e == NULL) {
			log_debug("data for unknown id=%u agent=%s", (unsigned)a->m.client_id, a->id);
		} else if (e->proto == TUNNEL_UDP && !a->oversize) {
			size_t len;
			const uint8_t *d = buf_data(&a->udp, &len);
			expose_flow_send(e, d, len);
		}
		break;
	case TUNNEL_CLOSE:
	case TUNNEL_ERROR:
		if (e == NULL) {
			break;
		}
		a->text[a->text_len] = '\0';
		idmap_del(&a->ends, &e->node);
		if (e->proto == TUNNEL_TCP) {
			public_on_close(e, a->m.type == TUNNEL_ERROR ? a->text : NULL, now);
		} else {
			expose_flow_gone(e);
		}
		break;
	default:
		log_debug("message ignored type=%s id=%u agent=%s", tunnel_type_name(a->m.type),
			  (unsigned)a->m.client_id, a->id);
		break;
	}
}

static const struct ws_rx rx_ops = {rx_start, rx_data, rx_end};

/* ---- tunnels ---- */

static void send_ctl(struct agent *a, uint8_t type, uint8_t proto, uint32_t id, uint16_t port)
{
	uint8_t msg[TUNNEL_HDR_LEN];

	tunnel_header(msg, type, proto, id, port);
	if (ws_send_binary(&a->ws, msg, sizeof(msg)) != 0) {
		log_debug("message dropped: tunnel closing type=%s agent=%s", tunnel_type_name(type), a->id);
	}
	agent_wake(a); /* queued outside a pump, it goes out with the next */
}

int agent_open_tunnel(struct agent *a, struct tunnel_end *e, uint8_t proto, uint16_t port)
{
	if (a->state != AG_OPEN || a->ends.n >= a->srv->cfg.max_conns) {
		return -1;
	}
	/* Ids are the server's to choose: the next one not in use. */
	do {
		a->next_id++;
	} while (a->next_id == 0 || idmap_find(&a->ends, a->next_id) != NULL);
	e->node.id = a->next_id;
	e->proto = proto;
	if (idmap_add(&a->ends, &e->node) != 0) {
		return -1;
	}
	send_ctl(a, TUNNEL_CONNECT, proto, e->node.id, port);
	return 0;
}

void agent_close_tunnel(struct agent *a, struct tunnel_end *e, int send_close)
{
	if (a->target == e) {
		a->target = NULL; /* a message for it may be half received */
	}
	if (idmap_find(&a->ends, e->node.id) == &e->node) {
		idmap_del(&a->ends, &e->node);
	}
	if (send_close && a->state == AG_OPEN) {
		send_ctl(a, TUNNEL_CLOSE, e->proto, e->node.id, 0);
	}
}

void agent_send_close(struct agent *a, struct tunnel_end *e)
{
	if (a->state == AG_OPEN) {
		send_ctl(a, TUNNEL_CLOSE, e->proto, e->node.id, 0);
	}
}

struct list *agent_ready_list(struct agent *a)
{
	return &a->ready;
}

uint8_t *agent_data_begin(struct agent *a, size_t max)
{
	if (a->state != AG_OPEN || buf_len(&a->ws.out) + transport_pending_out(&a->tr) >= TC_OUT_HWM) {
		return NULL;
	}
	/* Messages queued before (a CONNECT) are framed first: DATA follows
	 * them and need not wait for the next pump. */
	if (ws_queued(&a->ws) > 0 && ws_frame(&a->ws) < 0) {
		return NULL;
	}
	a->data_at = ws_data_begin(&a->ws, TUNNEL_HDR_LEN + max);
	return a->data_at != NULL ? a->data_at + TUNNEL_HDR_LEN : NULL;
}

void agent_data_end(struct agent *a, const struct tunnel_end *e, size_t len)
{
	tunnel_header(a->data_at, TUNNEL_DATA, e->proto, e->node.id, 0);
	ws_data_end(&a->ws, TUNNEL_HDR_LEN + len);
	a->bytes_out += len;
	a->srv->n.bytes_to_agents += len;
}

void agent_wake(struct agent *a)
{
	if (!list_linked(&a->active) && a->state != AG_DONE) {
		list_add_tail(&a->srv->active, &a->active);
	}
}

void agent_mark(struct agent *a, int up)
{
	if (up) {
		a->over_hwm++;
	} else if (a->over_hwm > 0 && --a->over_hwm == 0) {
		agent_wake(a); /* read its WebSocket again */
	}
}

/* ---- accepting ---- */

struct agent *agent_accept(struct server *s, int fd, const struct sockaddr *sa, uint64_t now)
{
	struct agent *a;
	struct tls_io *tls = NULL;
	char addr[64];

	net_addr_str(sa, addr, sizeof(addr));
	if (s->n_agents >= s->cfg.max_agents) {
		log_warn("agent connection refused addr=%s reason=\"--max-agents %llu reached\"", addr,
			 (unsigned long long)s->cfg.max_agents);
		s->n.agents_refused++;
		close(fd);
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (a != NULL && s->tls != NULL) {
		tls = tls_server_new(s->tls, fd);
	}
	if (a == NULL || (s->tls != NULL && tls == NULL) ||
	    ws_init_server(&a->ws, s->cfg.max_message, &rx_ops, a) != 0 ||
	    pollset_add(&s->ps, fd, POLLIN, a) != 0) {
		log_error("out of memory accepting an agent addr=%s", addr);
		if (a != NULL) {
			ws_free(&a->ws); /* calloc'd or initialised: either frees */
		}
		tls_io_free(tls);
		free(a);
		close(fd);
		return NULL;
	}
	a->pl.owner = OWN_AGENT;
	a->srv = s;
	a->pl.slot = s->ps.n - 1;
	transport_init(&a->tr, fd, tls);
	memcpy(a->addr, addr, sizeof(addr));
	a->state = tls != NULL ? AG_TLS : AG_REQUEST;
	a->deadline_ms = now + TS_HANDSHAKE_MS;
	a->last_rx_ms = now;
	a->last_bulk_ms = now;
	idmap_init(&a->ends);
	buf_init(&a->udp, TC_DATA_MAX);
	list_init(&a->ready);
	list_init(&a->active);
	list_init(&a->dead);
	list_add_tail(&s->agents, &a->link);
	s->n_agents++;
	log_debug("agent connection addr=%s tls=%s", a->addr, tls != NULL ? "yes" : "no");
	return a;
}

/* Queue an HTTP refusal; the connection ends once it is written. */
static void refuse(struct agent *a, int status, const char *reason, const char *why)
{
	char resp[256];
	int n = hs_response_refuse(resp, sizeof(resp), status, reason);

	log_warn("agent refused id=%s addr=%s status=%d reason=\"%s\"", a->id[0] != '\0' ? a->id : "-",
		 a->addr, status, why);
	a->srv->n.agents_refused++;
	buf_consume(&a->ws.in, buf_len(&a->ws.in));
	if (n < 0 || buf_append(&a->ws.out, resp, (size_t)n) != 0) {
		end(a, LOG_DEBUG, why);
		return;
	}
	a->state = AG_REFUSING;
}

/* The request is whole: check it, answer 101, register. */
static void admit(struct agent *a, const struct hs_request *req, size_t used, uint64_t now)
{
	struct server *s = a->srv;
	const char *id = req->path + sizeof(TUNNEL_PREFIX) - 1;
	char resp[256];
	struct agent *old;
	int failed;
	int n;

	if (strncmp(req->path, TUNNEL_PREFIX, sizeof(TUNNEL_PREFIX) - 1) != 0 ||
	    !server_config_agent_id_ok(id, strlen(id))) {
		refuse(a, 404, "Not Found", "not a tunnel path");
		return;
	}
	memcpy(a->id, id, strlen(id) + 1);
	memcpy(a->user_agent, req->user_agent, sizeof(a->user_agent));
	if (!auth_check(s->auth, a->id, req->authorization)) {
		refuse(a, 401, "Unauthorized", req->authorization[0] != '\0' ? "wrong token" : "no token");
		return;
	}
	n = hs_response_101(resp, sizeof(resp), req->key);
	if (n < 0 || buf_append(&a->ws.out, resp, (size_t)n) != 0) {
		end(a, LOG_WARN, "cannot answer the upgrade");
		return;
	}
	buf_consume(&a->ws.in, used);
	old = registry_put(s->reg, a, &failed);
	if (failed) {
		end(a, LOG_ERROR, "out of memory registering");
		return;
	}
	a->registered = 1;
	a->state = AG_OPEN;
	a->deadline_ms = 0;
	a->last_rx_ms = now;
	a->connected_at = (int64_t)time(NULL);
	s->n.agents_accepted++;
	char ua[HS_USER_AGENT_MAX];
	log_info("agent connected id=%s addr=%s user_agent=\"%s\"", a->id, a->addr,
		 log_safe(ua, sizeof(ua), a->user_agent));
	if (old != NULL) {
		/* The newest wins; the old one's end must not unregister it. */
		old->registered = 0;
		s->n.agents_replaced++;
		agent_shutdown(old, 1001, "replaced by a new connection", now);
	}
}

static void read_request(struct agent *a, uint64_t now)
{
	size_t len;
	size_t used = 0;
	const uint8_t *p = buf_data(&a->ws.in, &len);
	struct hs_request *req;
	enum hs_result r;

	if (len == 0) {
		return;
	}
	req = malloc(sizeof(*req));
	if (req == NULL) {
		end(a, LOG_ERROR, "out of memory reading the upgrade");
		return;
	}
	r = hs_parse_request(p, len, TS_REQUEST_MAX, req, &used);
	switch (r) {
	case HS_NEED_MORE:
		break;
	case HS_DONE:
		admit(a, req, used, now);
		break;
	case HS_ERR_TOO_BIG:
		refuse(a, 431, "Request Header Fields Too Large", hs_strerror(r));
		break;
	case HS_ERR_VERSION:
		refuse(a, 426, "Upgrade Required", hs_strerror(r));
		break;
	default:
		refuse(a, 400, "Bad Request", hs_strerror(r));
		break;
	}
	/* The token was in it: wipe before the memory is reused. */
	memset(req, 0, sizeof(*req));
	free(req);
}

/* ---- pumping ---- */

void agent_on_events(struct agent *a, short revents, uint64_t now)
{
	transport_ready(&a->tr, revents);
	if ((revents & (POLLERR | POLLHUP)) && !(revents & POLLIN)) {
		end(a, a->state == AG_OPEN ? LOG_INFO : LOG_DEBUG, "connection hung up");
	}
}

/* Write framed bytes to the transport. 1 if any moved. */
static int flush_out(struct agent *a)
{
	size_t len;
	const uint8_t *p = buf_data(&a->ws.out, &len);
	int moved = 0;

	if (len > 0) {
		ssize_t n = transport_write(&a->tr, p, len);
		if (n > 0) {
			buf_consume(&a->ws.out, (size_t)n);
			if ((size_t)n >= BUF_FIRST) {
				a->last_bulk_ms = net_now_ms();
			}
			moved = 1;
		} else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			end(a, LOG_INFO, transport_strerror(&a->tr, errno));
			return 0;
		}
	}
	if (transport_flush(&a->tr) != 0) {
		end(a, LOG_INFO, transport_strerror(&a->tr, errno));
	}
	return moved;
}

/* Read from the transport into ws.in. 1 if any moved. */
static int fill_in(struct agent *a, uint64_t now)
{
	size_t avail;
	uint8_t *p;
	ssize_t n;

	if (a->ws.paused) {
		return 0;
	}
	p = buf_space(&a->ws.in, &avail);
	if (p == NULL) {
		return 0;
	}
	n = transport_read(&a->tr, p, avail);
	if (n > 0) {
		buf_commit(&a->ws.in, (size_t)n);
		a->last_rx_ms = now;
		if ((size_t)n >= BUF_FIRST) {
			a->last_bulk_ms = now;
		}
		a->ping_sent_ms = 0;
		return 1;
	}
	if (n == 0) {
		end(a, a->state == AG_CLOSING ? LOG_DEBUG : LOG_INFO, "agent closed the connection");
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		end(a, LOG_INFO, transport_strerror(&a->tr, errno));
	}
	return 0;
}

/* Rounds of the pump per turn, so one busy agent cannot hold the loop. */
#define PUMP_ROUNDS 64

int agent_pump(struct agent *a, uint64_t now)
{
	int moved;
	int rounds = 0;

	do {
		moved = 0;
		if (a->state == AG_TLS) {
			int r = transport_handshake(&a->tr);
			if (r < 0) {
				char why[TLS_ERRMSG_MAX + 32];
				fmt_snprintf(why, sizeof(why), "TLS handshake failed: %s",
					     transport_strerror(&a->tr, EPROTO));
				end(a, LOG_INFO, why);
				return 0;
			}
			if (r == 0) {
				(void)transport_flush(&a->tr);
				return 0;
			}
			a->state = AG_REQUEST;
		}
		if (a->state == AG_REQUEST) {
			moved |= fill_in(a, now);
			read_request(a, now);
			if (a->state == AG_REQUEST || a->state == AG_DONE) {
				return 0;
			}
		}
		if (a->state == AG_REFUSING) {
			flush_out(a);
			if (a->state != AG_DONE && buf_len(&a->ws.out) == 0 &&
			    transport_pending_out(&a->tr) == 0) {
				end(a, LOG_DEBUG, "refused");
			}
			return 0;
		}
		if (a->state != AG_OPEN && a->state != AG_CLOSING) {
			return 0;
		}
		a->ws.paused = a->over_hwm > 0 || ws_queued(&a->ws) >= TC_CTRL_MAX;
		if (a->ws.paused) {
			a->last_rx_ms = now; /* our own backpressure is not silence */
		}
		if (ws_recv_server(&a->ws) != 0) {
			end(a, LOG_WARN, "WebSocket protocol error");
			return 0;
		}
		if (a->state == AG_DONE) {
			return 0;
		}
		int f = ws_frame(&a->ws);
		if (f < 0) {
			end(a, LOG_WARN, "WebSocket framing failed");
			return 0;
		}
		moved |= f;
		while (public_read_one(a, now)) {
			moved = 1;
		}
		f = ws_frame(&a->ws);
		if (f < 0) {
			end(a, LOG_WARN, "WebSocket framing failed");
			return 0;
		}
		moved |= f;
		moved |= flush_out(a);
		if (a->state == AG_DONE) {
			return 0;
		}
		moved |= fill_in(a, now);
	} while (moved && a->state != AG_DONE && ++rounds < PUMP_ROUNDS);
	return moved && a->state != AG_DONE;
}

void agent_kill(struct agent *a)
{
	end(a, LOG_DEBUG, "exit");
}

void agent_poll_interest(struct agent *a)
{
	short ev;

	if (a->state == AG_DONE) {
		return;
	}
	ev = transport_events(&a->tr, buf_len(&a->ws.out) > 0);
	if (a->ws.paused || buf_len(&a->ws.in) >= TC_IN_CAP ||
	    (a->state != AG_TLS && a->state != AG_REQUEST && a->state != AG_OPEN &&
	     a->state != AG_CLOSING)) {
		ev &= (short)~POLLIN;
	}
	pollset_set(&a->srv->ps, a->pl.slot, ev);
}

static void lower(uint64_t *next, uint64_t when)
{
	if (when != 0 && when < *next) {
		*next = when;
	}
}

void agent_timers(struct agent *a, uint64_t now, uint64_t *next)
{
	const struct server_config *cfg = &a->srv->cfg;
	uint16_t code;

	if (a->state == AG_DONE) {
		return;
	}
	if (a->state == AG_OPEN || a->state == AG_CLOSING) {
		if (ws_close_received(&a->ws, &code) && buf_len(&a->ws.out) == 0 &&
		    transport_pending_out(&a->tr) == 0 && ws_queued(&a->ws) == 0) {
			char why[48];
			fmt_snprintf(why, sizeof(why), "close code %u", (unsigned)code);
			end(a, LOG_INFO, why);
			return;
		}
		if (ws_finished(&a->ws) && buf_len(&a->ws.out) == 0) {
			end(a, LOG_WARN, ws_close_code_sent(&a->ws) == 1009 ? "message too big (1009)"
									     : "WebSocket closed");
			return;
		}
		if (ws_close_sent(&a->ws) && a->state == AG_OPEN) {
			a->state = AG_CLOSING; /* wslay closed on its own */
			a->deadline_ms = now + TC_CLOSE_WAIT_MS;
		}
	}
	if (a->state == AG_OPEN) {
		uint64_t ping_at = a->last_rx_ms + cfg->ping_interval_ms;
		if (a->ping_sent_ms == 0 && now >= ping_at) {
			log_debug("agent idle, sending ping id=%s", a->id);
			ws_send_ping(&a->ws);
			a->ping_sent_ms = now;
			agent_wake(a); /* the ping goes out with the next pump */
		}
		if (a->ping_sent_ms != 0) {
			uint64_t dead_at = a->ping_sent_ms + cfg->ping_timeout_ms;
			if (now >= dead_at) {
				end(a, LOG_WARN, "agent silent");
				return;
			}
			lower(next, dead_at);
		} else {
			lower(next, ping_at);
		}
		/* An agent without data gives large buffers back (many
		 * idle agents); pings keep only small ones. */
		if (now >= a->last_bulk_ms + TS_IDLE_RELEASE_MS) {
			ws_trim(&a->ws);
			buf_free(&a->udp);
			transport_trim(&a->tr);
		}
	}
	if (a->deadline_ms != 0) {
		if (now >= a->deadline_ms) {
			end(a, a->state == AG_CLOSING ? LOG_INFO : LOG_INFO,
			    a->state == AG_CLOSING ? "close handshake timed out" : "handshake timed out");
			return;
		}
		lower(next, a->deadline_ms);
	}
}

void agent_info(const struct agent *a, struct agent_info *out)
{
	out->id = a->id;
	out->addr = a->addr;
	out->user_agent = a->user_agent;
	out->state = state_names[a->state];
	out->connected_at = a->connected_at;
	out->connections = a->ends.n;
	out->bytes_in = a->bytes_in;
	out->bytes_out = a->bytes_out;
}
