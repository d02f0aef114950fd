#include "agent_int.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bounds.h"
#include "expose.h"
#include "fmt.h"
#include "net.h"
#include "public.h"
#include "registry.h"
#include "tls_io.h"
#include "tls_server.h"
#include "tunnel.h"

static const char *const state_names[] = {"tls", "request", "refusing", "open", "closing", "done"};

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

void agent_end(struct agent *a, enum log_level lvl, const char *why)
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
		agent_end(a, LOG_DEBUG, why);
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
	    ws_init_server(&a->ws, s->cfg.max_message, &agent_rx, a) != 0 ||
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

/* ---- pumping ---- */

void agent_on_events(struct agent *a, short revents, uint64_t now)
{
	transport_ready(&a->tr, revents);
	if ((revents & (POLLERR | POLLHUP)) && !(revents & POLLIN)) {
		agent_end(a, a->state == AG_OPEN ? LOG_INFO : LOG_DEBUG, "connection hung up");
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
			agent_end(a, LOG_INFO, transport_strerror(&a->tr, errno));
			return 0;
		}
	}
	if (transport_flush(&a->tr) != 0) {
		agent_end(a, LOG_INFO, transport_strerror(&a->tr, errno));
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
		agent_end(a, a->state == AG_CLOSING ? LOG_DEBUG : LOG_INFO, "agent closed the connection");
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		agent_end(a, LOG_INFO, transport_strerror(&a->tr, errno));
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
				agent_end(a, LOG_INFO, why);
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
			agent_read_request(a, now);
			if (a->state == AG_REQUEST || a->state == AG_DONE) {
				return 0;
			}
		}
		if (a->state == AG_REFUSING) {
			flush_out(a);
			if (a->state != AG_DONE && buf_len(&a->ws.out) == 0 &&
			    transport_pending_out(&a->tr) == 0) {
				agent_end(a, LOG_DEBUG, "refused");
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
		if (ws_recv(&a->ws) != 0) {
			agent_end(a, LOG_WARN, "WebSocket protocol error");
			return 0;
		}
		if (a->state == AG_DONE) {
			return 0;
		}
		int f = ws_frame(&a->ws);
		if (f < 0) {
			agent_end(a, LOG_WARN, "WebSocket framing failed");
			return 0;
		}
		moved |= f;
		while (public_read_one(a, now)) {
			moved = 1;
		}
		f = ws_frame(&a->ws);
		if (f < 0) {
			agent_end(a, LOG_WARN, "WebSocket framing failed");
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
	agent_end(a, LOG_DEBUG, "exit");
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
			agent_end(a, LOG_INFO, why);
			return;
		}
		if (ws_finished(&a->ws) && buf_len(&a->ws.out) == 0) {
			agent_end(a, LOG_WARN, ws_close_code_sent(&a->ws) == 1009 ? "message too big (1009)"
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
				agent_end(a, LOG_WARN, "agent silent");
				return;
			}
			lower(next, dead_at);
		} else {
			lower(next, ping_at);
		}
		/* An agent without data gives large buffers back (many
		 * idle agents); pings keep only small ones. */
		if (now >= a->last_bulk_ms + TC_IDLE_RELEASE_MS) {
			ws_trim(&a->ws);
			buf_free(&a->udp);
			transport_trim(&a->tr);
		}
	}
	if (a->deadline_ms != 0) {
		if (now >= a->deadline_ms) {
			agent_end(a, a->state == AG_CLOSING ? LOG_INFO : LOG_INFO,
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
