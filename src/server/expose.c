#include "expose.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "bounds.h"
#include "fmt.h"
#include "listener.h"
#include "log.h"
#include "net.h"
#include "public.h"
#include "registry.h"
#include "server.h"
#include "tunnel.h"

struct expose {
	struct listener l;  /* first: OWN_EXPOSE, the slot, the socket (TCP or UDP) */
	struct server *srv;
	struct expose_spec spec;
	char name[200];
	int keep;
	struct list link;   /* on the server's exposes */
	struct list conns;  /* public TCP connections */
	struct list flows;  /* UDP flows */
	size_t n_conns;     /* connections or flows */
	uint64_t accepted;
	uint8_t *scratch;   /* one datagram in (UDP) */
};

/* A UDP public source address and its client id. */
struct flow {
	struct tunnel_end end;
	struct expose *ex;
	struct agent *agent; /* NULL once it is gone */
	struct sockaddr_storage addr;
	socklen_t alen;
	uint64_t last_ms;
	struct list link;    /* on the expose's flows */
};

#define FLOW(e) list_entry((e), struct flow, end)

struct expose *expose_of_link(struct list *l)
{
	return list_entry(l, struct expose, link);
}

const char *expose_name(const struct expose *ex)
{
	return ex->name;
}

const struct expose_spec *expose_spec(const struct expose *ex)
{
	return &ex->spec;
}

struct list *expose_conns(struct expose *ex)
{
	return &ex->conns;
}

void expose_conn_new(struct expose *ex)
{
	ex->n_conns++;
	ex->accepted++;
}

void expose_conn_gone(struct expose *ex)
{
	ex->n_conns--;
}

void expose_set_keep(struct expose *ex, int keep)
{
	ex->keep = keep;
}

int expose_keep(const struct expose *ex)
{
	return ex->keep;
}

int expose_open(struct server *s, const struct expose_spec *spec, char *err, size_t errlen)
{
	struct expose *ex = calloc(1, sizeof(*ex));
	int udp = spec->proto == TUNNEL_UDP;
	int fd;

	if (ex != NULL && udp) {
		ex->scratch = malloc(TC_DATA_MAX);
	}
	if (ex == NULL || (udp && ex->scratch == NULL)) {
		fmt_snprintf(err, errlen, "out of memory");
		if (ex != NULL) {
			free(ex->scratch);
		}
		free(ex);
		return -1;
	}
	ex->spec = *spec;
	fmt_snprintf(ex->name, sizeof(ex->name), "%s:%s=%s:%u", udp ? "udp" : "tcp",
		     spec->bind_text, spec->agent, (unsigned)spec->port);
	fd = net_listen((const struct sockaddr *)&spec->bind, spec->bind_len,
			udp ? SOCK_DGRAM : SOCK_STREAM);
	if (fd < 0 || pollset_add(&s->ps, fd, POLLIN, ex) != 0) {
		fmt_snprintf(err, errlen, "--expose %s: cannot listen on %s: %s", ex->name,
			     spec->bind_text, fd < 0 ? strerror(errno) : "out of memory");
		if (fd >= 0) {
			close(fd);
		}
		free(ex->scratch);
		free(ex);
		return -1;
	}
	ex->l.pl.owner = OWN_EXPOSE;
	ex->l.what = ex->name;
	ex->l.pl.slot = s->ps.n - 1;
	ex->srv = s;
	ex->l.fd = fd;
	ex->keep = 1;
	list_init(&ex->conns);
	list_init(&ex->flows);
	list_add_tail(&s->exposes, &ex->link);
	log_info("expose listening %s", ex->name);
	return 0;
}

/* End a flow: out of the agent's map (CLOSE when send_close), freed. */
static void flow_end(struct flow *f, int send_close, const char *why)
{
	log_debug("udp flow closed expose=%s id=%u reason=\"%s\"", f->ex->name,
		  (unsigned)f->end.node.id, why);
	if (f->agent != NULL) {
		agent_close_tunnel(f->agent, &f->end, send_close);
	}
	list_del(&f->link);
	f->ex->n_conns--;
	free(f);
}

void expose_close(struct server *s, struct expose *ex)
{
	log_info("expose closed %s", ex->name);
	public_close_expose(s, ex);
	for (struct list *l = list_first(&ex->flows); l != NULL; l = list_first(&ex->flows)) {
		flow_end(list_entry(l, struct flow, link), 1, "expose removed");
	}
	list_del(&ex->link);
	server_drop_slot(s, ex->l.pl.slot);
	close(ex->l.fd);
	free(ex->scratch);
	free(ex);
}

/* ---- TCP ---- */

static void accept_tcp(struct expose *ex, uint64_t now)
{
	for (int i = 0; i < TS_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		int fd = listener_accept(ex->srv, &ex->l, now, &ss);

		if (fd < 0) {
			return;
		}
		public_accept(ex->srv, ex, fd, (const struct sockaddr *)&ss, now);
	}
}

/* ---- UDP ---- */

static struct flow *find_flow(struct expose *ex, const struct sockaddr_storage *ss, socklen_t sl)
{
	for (struct list *l = ex->flows.next; l != &ex->flows; l = l->next) {
		struct flow *f = list_entry(l, struct flow, link);
		if (f->alen == sl && memcmp(&f->addr, ss, sl) == 0) {
			return f;
		}
	}
	return NULL;
}

static struct flow *new_flow(struct expose *ex, const struct sockaddr_storage *ss, socklen_t sl,
			     uint64_t now)
{
	struct server *s = ex->srv;
	struct agent *a = registry_find(s->reg, ex->spec.agent);
	struct flow *f;

	if (a == NULL || !agent_is_open(a)) {
		s->n.public_refused++;
		log_debug("udp datagram dropped expose=%s reason=\"agent %s is not connected\"",
			  ex->name, ex->spec.agent);
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		return NULL;
	}
	if (agent_open_tunnel(a, &f->end, TUNNEL_UDP, ex->spec.port) != 0) {
		s->n.public_refused++;
		free(f);
		return NULL;
	}
	f->ex = ex;
	f->agent = a;
	f->addr = *ss;
	f->alen = sl;
	f->last_ms = now;
	list_add_tail(&ex->flows, &f->link);
	expose_conn_new(ex);
	s->n.public_accepted++;
	log_debug("udp flow open expose=%s id=%u", ex->name, (unsigned)f->end.node.id);
	return f;
}

static void read_udp(struct expose *ex, uint64_t now)
{
	for (int i = 0; i < TS_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		ssize_t n = recvfrom(ex->l.fd, ex->scratch, TC_DATA_MAX, 0, (struct sockaddr *)&ss, &sl);
		struct flow *f;
		uint8_t *dst;

		if (n < 0) {
			return; /* EAGAIN, or an ICMP error for an earlier datagram */
		}
		f = find_flow(ex, &ss, sl);
		if (f == NULL && ex->n_conns < TS_UDP_FLOWS) {
			f = new_flow(ex, &ss, sl, now);
		}
		if (f == NULL || f->agent == NULL) {
			continue;
		}
		f->last_ms = now;
		dst = agent_data_begin(f->agent, (size_t)n);
		if (dst == NULL) {
			log_debug("udp datagram dropped expose=%s id=%u reason=\"agent busy\"", ex->name,
				  (unsigned)f->end.node.id);
			continue;
		}
		memcpy(dst, ex->scratch, (size_t)n);
		agent_data_end(f->agent, &f->end, (size_t)n);
		agent_wake(f->agent);
	}
}

void expose_flow_send(struct tunnel_end *e, const uint8_t *p, size_t n)
{
	struct flow *f = FLOW(e);

	f->last_ms = net_now_ms();
	if (sendto(f->ex->l.fd, p, n, 0, (const struct sockaddr *)&f->addr, f->alen) < 0) {
		log_debug("udp datagram to client dropped expose=%s id=%u errno=%d", f->ex->name,
			  (unsigned)e->node.id, errno);
	}
}

void expose_flow_gone(struct tunnel_end *e)
{
	struct flow *f = FLOW(e);

	f->agent = NULL; /* already out of its map */
	flow_end(f, 0, "closed by the agent");
}

void expose_on_events(void *owner, short revents, uint64_t now)
{
	struct expose *ex = owner;

	if (ex->spec.proto == TUNNEL_UDP) {
		read_udp(ex, now);
	} else {
		accept_tcp(ex, now);
	}
}

void expose_timers(struct server *s, uint64_t now, uint64_t *next)
{
	for (struct list *l = s->exposes.next; l != &s->exposes; l = l->next) {
		struct expose *ex = list_entry(l, struct expose, link);
		struct list *fl = ex->flows.next;

		listener_timers(s, &ex->l, now, next);
		while (fl != &ex->flows) {
			struct list *following = fl->next;
			struct flow *f = list_entry(fl, struct flow, link);
			uint64_t idle = f->last_ms + s->cfg.udp_idle_ms;

			if (now >= idle) {
				flow_end(f, 1, "idle");
			} else if (idle < *next) {
				*next = idle;
			}
			fl = following;
		}
	}
}

void expose_info(const struct expose *ex, struct expose_info *out)
{
	struct agent *a = registry_find(ex->srv->reg, ex->spec.agent);

	out->name = ex->name;
	out->proto = ex->spec.proto == TUNNEL_UDP ? "udp" : "tcp";
	out->bind = ex->spec.bind_text;
	out->agent = ex->spec.agent;
	out->port = ex->spec.port;
	out->state = a != NULL && agent_is_open(a) ? "ready" : "no agent";
	out->connections = ex->n_conns;
	out->accepted = ex->accepted;
}
