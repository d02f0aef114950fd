/* admin: the --admin HTTP endpoint. A listener and at most TS_ADMIN_CONNS
 * connections, each with its pollset slot and one HTTP exchange (httpx.c)
 * answered from a snapshot of the server taken then.
 *
 * Nothing here changes the server: it reads agent_info(), expose_info()
 * and the counters. No token is ever in what those give. */
#include "admin.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bounds.h"
#include "fmt.h"
#include "httpx.h"
#include "listener.h"
#include "log.h"
#include "net.h"
#include "report.h"
#include "server.h"

struct admin_conn {
	struct pollable pl; /* first: OWN_ADMIN_CONN and the slot */
	struct httpx x;
	int counted;        /* reading or writing: counts against TS_ADMIN_CONNS */
	struct list link;   /* on the admin's conns */
};

struct admin {
	struct listener l;  /* first: OWN_ADMIN and the listener's slot */
	char where[72];     /* the --admin address, as given */
	struct list conns;
	size_t n_conns;     /* reading a request or writing an answer (the limit) */
};

static const struct httpx_limits limits = {
	"admin", TS_ADMIN_REQUEST_MAX, TS_ADMIN_RESPONSE_MAX, TS_ADMIN_TIMEOUT_MS,
	TS_ADMIN_LINGER_MS,
};

/* ---- connections ---- */

static void route(void *ctx, const char *path, size_t n, struct text *t, struct httpx_answer *a)
{
	struct server *s = ctx;

	if (n == 8 && memcmp(path, "/healthz", 8) == 0) {
		text_str(t, "ok\n");
	} else if (n == 7 && memcmp(path, "/status", 7) == 0) {
		a->type = "application/json";
		report_status(s, t);
	} else if (n == 8 && memcmp(path, "/metrics", 8) == 0) {
		a->type = "text/plain; version=0.0.4; charset=utf-8";
		report_metrics(s, t);
	} else if (n == 1 && path[0] == '/') {
		a->type = "text/html; charset=utf-8";
		a->extra = "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n";
		report_page(s, t);
	} else {
		a->status = 404;
	}
}

/* Step c and keep its poll interest and the count in line with its state:
 * once its answer is written it no longer counts. */
static void step(struct server *s, struct admin_conn *c, uint64_t now)
{
	httpx_step(&c->x, now, route, s);
	if (c->counted && c->x.state != HX_READ && c->x.state != HX_WRITE) {
		c->counted = 0;
		s->admin->n_conns--;
	}
	pollset_set(&s->ps, c->pl.slot, httpx_events(&c->x));
}

static void accept_conns(struct server *s, uint64_t now)
{
	struct admin *a = s->admin;

	for (int i = 0; i < TS_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		int fd = listener_accept(s, &a->l, now, &ss);
		struct admin_conn *c;
		char addr[64];

		if (fd < 0) {
			return;
		}
		net_addr_str((const struct sockaddr *)&ss, addr, sizeof(addr));
		if (a->n_conns >= TS_ADMIN_CONNS) {
			log_debug("admin connection refused addr=%s reason=\"%d connections open\"", addr,
				  TS_ADMIN_CONNS);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c == NULL || pollset_add(&s->ps, fd, POLLIN, c) != 0) {
			log_error("out of memory accepting an admin connection addr=%s", addr);
			free(c);
			close(fd);
			return;
		}
		c->pl.owner = OWN_ADMIN_CONN;
		c->pl.slot = s->ps.n - 1;
		httpx_open(&c->x, fd, addr, &limits, now);
		c->counted = 1;
		list_add_tail(&a->conns, &c->link);
		a->n_conns++;
	}
}

/* ---- the interface ---- */

int admin_open(struct server *s, char *err, size_t errlen)
{
	const struct sockaddr *sa = (const struct sockaddr *)&s->cfg.admin_addr;
	struct admin *a = calloc(1, sizeof(*a));
	char why[64];

	if (a == NULL) {
		fmt_snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->l.pl.owner = OWN_ADMIN;
	a->l.what = "admin";
	list_init(&a->conns);
	fmt_snprintf(a->where, sizeof(a->where), "%s", s->cfg.admin);
	a->l.fd = net_listen(sa, s->cfg.admin_len, SOCK_STREAM);
	if (a->l.fd < 0) {
		fmt_snprintf(err, errlen, "--admin %s: %s", s->cfg.admin,
			     net_reason(errno, why, sizeof(why)));
		free(a);
		return -1;
	}
	if (pollset_add(&s->ps, a->l.fd, POLLIN, &a->l.pl) != 0) {
		fmt_snprintf(err, errlen, "out of memory");
		close(a->l.fd);
		free(a);
		return -1;
	}
	a->l.pl.slot = s->ps.n - 1;

	s->admin = a;
	log_info("admin endpoint listening on %s", a->where);
	if (!net_is_loopback(sa)) {
		log_warn("admin endpoint on a non-loopback address: anyone who reaches %s can read "
			 "the status",
			 a->where);
	}
	return 0;
}

void admin_on_events(struct server *s, void *owner, short revents, uint64_t now)
{
	struct pollable *o = owner;
	struct admin_conn *c;

	if (o->owner == OWN_ADMIN) {
		accept_conns(s, now);
		return;
	}
	c = (struct admin_conn *)o;
	step(s, c, now);
}

void admin_timers(struct server *s, uint64_t now, uint64_t *next)
{
	struct admin *a = s->admin;

	listener_timers(s, &a->l, now, next);
	for (struct list *l = a->conns.next; l != &a->conns; l = l->next) {
		struct admin_conn *c = list_entry(l, struct admin_conn, link);

		if (c->x.state != HX_DONE && now >= c->x.deadline) {
			step(s, c, now);
		}
		if (c->x.state != HX_DONE && c->x.deadline < *next) {
			*next = c->x.deadline;
		}
	}
}

static void conn_free(struct server *s, struct admin_conn *c)
{
	server_drop_slot(s, c->pl.slot);
	httpx_free(&c->x);
	list_del(&c->link);
	if (c->counted) {
		s->admin->n_conns--;
	}
	free(c);
}

void admin_reap(struct server *s)
{
	struct admin *a = s->admin;

	for (struct list *l = a->conns.next; l != &a->conns;) {
		struct admin_conn *c = list_entry(l, struct admin_conn, link);

		l = l->next;
		if (c->x.state == HX_DONE) {
			conn_free(s, c);
		}
	}
}

void admin_close(struct server *s)
{
	struct admin *a = s->admin;

	for (struct list *l = list_first(&a->conns); l != NULL; l = list_first(&a->conns)) {
		conn_free(s, list_entry(l, struct admin_conn, link));
	}
	server_drop_slot(s, a->l.pl.slot);
	close(a->l.fd);
	free(a);
	s->admin = NULL;
}
