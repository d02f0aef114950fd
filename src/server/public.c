#include "public.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "bounds.h"
#include "expose.h"
#include "fmt.h"
#include "log.h"
#include "net.h"
#include "outq.h"
#include "registry.h"
#include "server.h"
#include "tunnel.h"

enum public_state {
	PUB_OPEN,     /* spliced both ways */
	PUB_DRAINING, /* the agent sent CLOSE: write what is queued, then shut */
	PUB_SHUT,     /* our side shut after the agent's CLOSE: the client's
		       * input is read and dropped until its EOF or the linger
		       * deadline, so closing cannot reset what it still reads */
	PUB_LINGER,   /* the client sent EOF and we sent CLOSE: in-flight DATA
		       * is still written until the linger deadline */
	PUB_DONE,     /* finished; freed by public_reap */
};

struct public {
	struct pollable pl;      /* first: OWN_PUBLIC and the slot */
	struct tunnel_end end;   /* client id, in the agent's map while open */
	struct server *srv;
	struct agent *agent;     /* NULL once it is gone */
	struct expose *expose;
	enum public_state state;
	int fd;
	int readable;            /* input noted by poll, not yet read */
	int connected;           /* CONNECTED seen */
	struct outq q;           /* agent -> client bytes the socket did not take */
	uint64_t full_since_ms;  /* queue above the mark since, 0 if not */
	uint64_t deadline_ms;    /* linger deadline */
	char addr[64];
	struct list ready;       /* on the agent's ready list (via agent_wake) */
	struct list timed;       /* on the server's timed list */
	struct list link;        /* on the expose's list */
	struct list dead;
};

#define PUB(e) list_entry((e), struct public, end)

/* ---- ending ---- */

/* Mark p done (once); tell the agent with CLOSE when send_close. */
static void finish(struct public *p, int send_close, enum log_level lvl, const char *why)
{
	struct server *s = p->srv;

	if (p->state == PUB_DONE) {
		return;
	}
	log_msg(lvl, "public conn closed expose=%s id=%u addr=%s reason=\"%s\"",
		expose_name(p->expose), (unsigned)p->end.node.id, p->addr, why);
	if (p->agent != NULL) {
		/* A lingering connection told the agent already. */
		agent_close_tunnel(p->agent, &p->end, send_close && p->state == PUB_OPEN);
		if (p->full_since_ms != 0) {
			agent_mark(p->agent, 0);
		}
	}
	p->state = PUB_DONE;
	p->agent = NULL;
	outq_clear(&p->q);
	list_del(&p->ready);
	list_del(&p->timed);
	list_del(&p->link);
	expose_conn_gone(p->expose);
	pollset_set(&s->ps, p->pl.slot, 0);
	list_add_tail(&s->dead_publics, &p->dead);
}

void public_reap(struct server *s)
{
	for (struct list *l = list_first(&s->dead_publics); l != NULL;
	     l = list_first(&s->dead_publics)) {
		struct public *p = list_entry(l, struct public, dead);

		server_drop_slot(s, p->pl.slot);
		list_del(&p->dead);
		close(p->fd);
		free(p);
	}
}

/* ---- interest, marks, deadlines ---- */

static void interest(struct public *p)
{
	short ev = 0;

	switch (p->state) {
	case PUB_OPEN:
		ev = (short)((p->q.bytes > 0 ? POLLOUT : 0) | (p->readable ? 0 : POLLIN));
		break;
	case PUB_DRAINING:
	case PUB_LINGER:
		ev = p->q.bytes > 0 ? POLLOUT : 0;
		break;
	case PUB_SHUT:
		ev = POLLIN;
		break;
	case PUB_DONE:
		break;
	}
	pollset_set(&p->srv->ps, p->pl.slot, ev);
}

static void sync_timed(struct public *p)
{
	int want = p->state != PUB_DONE &&
		   (p->full_since_ms != 0 || p->state == PUB_LINGER || p->state == PUB_SHUT);

	if (want && !list_linked(&p->timed)) {
		list_add_tail(&p->srv->timed, &p->timed);
	} else if (!want) {
		list_del(&p->timed);
	}
}

static void update_mark(struct public *p, uint64_t now)
{
	if (p->q.bytes > TS_PUBLIC_HWM && p->full_since_ms == 0) {
		p->full_since_ms = now != 0 ? now : 1;
		if (p->agent != NULL) {
			agent_mark(p->agent, 1);
		}
	} else if (p->q.bytes <= TS_PUBLIC_HWM && p->full_since_ms != 0) {
		p->full_since_ms = 0;
		if (p->agent != NULL) {
			agent_mark(p->agent, 0);
		}
	}
	sync_timed(p);
	interest(p);
}

static void set_readable(struct public *p, int readable)
{
	p->readable = readable;
	list_del(&p->ready);
	if (readable && p->agent != NULL) {
		list_add_tail(agent_ready_list(p->agent), &p->ready);
		agent_wake(p->agent);
	}
	interest(p);
}

/* ---- accepting ---- */

void public_accept(struct server *s, struct expose *ex, int fd, const struct sockaddr *sa,
		   uint64_t now)
{
	struct public *p;
	struct agent *a = registry_find(s->reg, expose_spec(ex)->agent);
	char addr[64];

	net_addr_str(sa, addr, sizeof(addr));
	if (a == NULL || !agent_is_open(a)) {
		log_info("public conn refused expose=%s addr=%s reason=\"agent %s is not connected\"",
			 expose_name(ex), addr, expose_spec(ex)->agent);
		s->n.public_refused++;
		close(fd);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL || pollset_add(&s->ps, fd, 0, p) != 0) {
		log_error("out of memory accepting a public connection expose=%s", expose_name(ex));
		free(p);
		close(fd);
		return;
	}
	p->pl.owner = OWN_PUBLIC;
	p->pl.slot = s->ps.n - 1;
	p->srv = s;
	p->fd = fd;
	p->expose = ex;
	memcpy(p->addr, addr, sizeof(addr));
	outq_init(&p->q);
	list_init(&p->ready);
	list_init(&p->timed);
	list_init(&p->dead);
	list_add_tail(expose_conns(ex), &p->link);
	expose_conn_new(ex);
	if (agent_open_tunnel(a, &p->end, TUNNEL_TCP, expose_spec(ex)->port) != 0) {
		p->state = PUB_OPEN;
		s->n.public_refused++;
		finish(p, 0, LOG_WARN, "agent at --max-connections");
		return;
	}
	p->agent = a;
	p->state = PUB_OPEN;
	s->n.public_accepted++;
	log_debug("public conn open expose=%s id=%u addr=%s", expose_name(ex),
		  (unsigned)p->end.node.id, p->addr);
	interest(p);
}

/* ---- the client's socket ---- */

static ssize_t sock_send(void *ctx, const uint8_t *buf, size_t n)
{
	struct public *p = ctx;

	return send(p->fd, buf, n, MSG_NOSIGNAL);
}

/* Every byte of the agent is out: shut our side and drop the client's
 * input until its EOF (or the linger deadline). */
static void shut(struct public *p, uint64_t now)
{
	if (shutdown(p->fd, SHUT_WR) != 0) {
		finish(p, 0, LOG_DEBUG, "closed by the agent");
		return;
	}
	p->state = PUB_SHUT;
	p->deadline_ms = now + TS_LINGER_MS;
	list_del(&p->ready);
	p->readable = 0;
	sync_timed(p);
	interest(p);
}

/* Write queued bytes until the socket pushes back. */
static void flush(struct public *p, uint64_t now)
{
	if (outq_flush(&p->q, sock_send, p) < 0) {
		char why[64];
		finish(p, p->state == PUB_OPEN, LOG_DEBUG, net_reason(errno, why, sizeof(why)));
		return;
	}
	update_mark(p, now);
	if (p->state == PUB_DRAINING && p->q.bytes == 0) {
		shut(p, now);
	}
}

void public_on_events(void *owner, short revents, uint64_t now)
{
	struct public *p = owner;

	if (p->state == PUB_DONE) {
		return;
	}
	if (p->state == PUB_SHUT) {
		char drop[4096];
		ssize_t n = recv(p->fd, drop, sizeof(drop), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
		    (revents & POLLERR)) { /* (as the agent's lingering connection) */
			finish(p, 0, LOG_DEBUG, "closed by the agent");
		}
		return;
	}
	if ((revents & (POLLIN | POLLHUP | POLLERR)) && p->state == PUB_OPEN && !p->readable) {
		set_readable(p, 1);
	}
	if ((revents & (POLLOUT | POLLHUP | POLLERR)) && p->q.bytes > 0) {
		flush(p, now);
	}
}

int public_read_one(struct agent *a, uint64_t now)
{
	struct list *l = list_first(agent_ready_list(a));
	struct public *p;
	uint8_t *buf;
	ssize_t n;

	if (l == NULL) {
		return 0;
	}
	p = list_entry(l, struct public, ready);
	buf = agent_data_begin(a, TC_DATA_READ);
	if (buf == NULL) {
		return 0;
	}
	n = recv(p->fd, buf, TC_DATA_READ, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		set_readable(p, 0);
		return 1;
	}
	if (n < 0) {
		char why[64];
		finish(p, 1, LOG_DEBUG, net_reason(errno, why, sizeof(why)));
		return 1;
	}
	if (n == 0) {
		/* EOF: CLOSE follows every byte before it; in-flight DATA from
		 * the agent is still written for a while. */
		log_debug("public client done expose=%s id=%u", expose_name(p->expose),
			  (unsigned)p->end.node.id);
		agent_send_close(a, &p->end);
		list_del(&p->ready);
		p->readable = 0;
		p->state = PUB_LINGER;
		p->deadline_ms = now + TS_LINGER_MS;
		sync_timed(p);
		interest(p);
		return 1;
	}
	agent_data_end(a, &p->end, (size_t)n);
	set_readable(p, (size_t)n == TC_DATA_READ);
	return 1;
}

/* ---- from the agent ---- */

void public_on_connected(struct tunnel_end *e)
{
	PUB(e)->connected = 1;
}

void public_on_data(struct tunnel_end *e, const uint8_t *d, size_t n, uint64_t now)
{
	struct public *p = PUB(e);
	size_t off = 0;

	if (p->state == PUB_DONE) {
		return;
	}
	if (p->q.bytes == 0) {
		ssize_t w = send(p->fd, d, n, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			char why[64];
			finish(p, 1, LOG_DEBUG, net_reason(errno, why, sizeof(why)));
			return;
		}
		off = w > 0 ? (size_t)w : 0;
		if (off == n) {
			return;
		}
	}
	if (outq_push(&p->q, d + off, n - off) != 0) {
		finish(p, 1, LOG_ERROR, "out of memory");
		return;
	}
	update_mark(p, now);
}

void public_on_close(struct tunnel_end *e, const char *text, uint64_t now)
{
	struct public *p = PUB(e);

	if (p->full_since_ms != 0 && p->agent != NULL) {
		agent_mark(p->agent, 0);
		p->full_since_ms = 0;
	}
	p->agent = NULL; /* already out of its map */
	if (text != NULL) {
		char why[TC_ERROR_TEXT_MAX + 16];
		fmt_snprintf(why, sizeof(why), "agent: %s", text);
		p->srv->n.public_refused += !p->connected;
		finish(p, 0, LOG_INFO, why);
		return;
	}
	if (p->q.bytes == 0) {
		shut(p, now);
		return;
	}
	p->state = PUB_DRAINING;
	list_del(&p->ready);
	p->readable = 0;
	sync_timed(p);
	interest(p);
}

void public_agent_gone(struct tunnel_end *e, const char *why)
{
	struct public *p = PUB(e);

	p->agent = NULL;
	p->full_since_ms = 0;
	finish(p, 0, LOG_DEBUG, why);
}

void public_close_expose(struct server *s, struct expose *ex)
{
	struct list *head = expose_conns(ex);

	for (struct list *l = list_first(head); l != NULL; l = list_first(head)) {
		finish(list_entry(l, struct public, link), 1, LOG_DEBUG, "expose removed");
	}
}

void public_timers(struct server *s, uint64_t now, uint64_t *next)
{
	struct list *l = s->timed.next;

	while (l != &s->timed) {
		struct list *following = l->next; /* finish() unlinks l only */
		struct public *p = list_entry(l, struct public, timed);

		if ((p->state == PUB_LINGER || p->state == PUB_SHUT) && now >= p->deadline_ms) {
			finish(p, 0, LOG_DEBUG, p->state == PUB_SHUT ? "closed by the agent" : "client closed");
		} else if (p->full_since_ms != 0 && now >= p->full_since_ms + s->cfg.stall_timeout_ms) {
			finish(p, 1, LOG_WARN, "public client stalled");
		} else {
			uint64_t when = p->state == PUB_LINGER || p->state == PUB_SHUT
						? p->deadline_ms
						: p->full_since_ms + s->cfg.stall_timeout_ms;
			if (p->full_since_ms != 0 && p->full_since_ms + s->cfg.stall_timeout_ms < when) {
				when = p->full_since_ms + s->cfg.stall_timeout_ms;
			}
			if (when < *next) {
				*next = when;
			}
		}
		l = following;
	}
}
