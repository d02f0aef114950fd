#include "server.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "agent.h"
#include "auth.h"
#include "bounds.h"
#include "expose.h"
#include "fmt.h"
#include "listener.h"
#include "log.h"
#include "net.h"
#include "proc.h"
#include "public.h"
#include "registry.h"
#include "tls_server.h"

void server_drop_slot(struct server *s, size_t slot)
{
	struct pollable *moved = pollset_del(&s->ps, slot);

	if (moved != NULL) {
		moved->slot = slot;
	}
}

static int open_exposes(struct server *s, char *err, size_t errlen)
{
	for (size_t i = 0; i < s->cfg.n_exposes; i++) {
		if (expose_open(s, &s->cfg.exposes[i], err, errlen) != 0) {
			return -1;
		}
	}
	return 0;
}

int server_init(struct server *s, char *err, size_t errlen)
{
	const struct server_config *c = &s->cfg;
	char why[64];

	pollset_init(&s->ps);
	list_init(&s->agents);
	list_init(&s->exposes);
	list_init(&s->active);
	list_init(&s->timed);
	list_init(&s->dead_agents);
	list_init(&s->dead_publics);
	s->started_ms = net_now_ms();
	s->started_at = time(NULL);
	s->start_unix_ms = proc_start_ms();
	if (s->start_unix_ms == 0) {
		s->start_unix_ms = (uint64_t)s->started_at * 1000;
	}
	s->reg = registry_new();
	if (s->reg == NULL) {
		fmt_snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (auth_load(&s->auth, c->token, c->token_file, err, errlen) != 0) {
		return -1;
	}
	if (c->tls_cert != NULL &&
	    tls_server_config_load(&s->tls, c->tls_cert, c->tls_key, err, errlen) != 0) {
		return -1;
	}
	s->agents_in = calloc(1, sizeof(*s->agents_in));
	if (s->agents_in == NULL) {
		fmt_snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->agents_in->fd = net_listen((const struct sockaddr *)&c->listen_addr, c->listen_len,
				      SOCK_STREAM);
	if (s->agents_in->fd < 0) {
		fmt_snprintf(err, errlen, "--listen %s: %s", c->listen, net_reason(errno, why, sizeof(why)));
		return -1;
	}
	fmt_snprintf(s->listen_shown, sizeof(s->listen_shown), "%s", c->listen);
	fmt_snprintf(s->admin_shown, sizeof(s->admin_shown), "%s", c->admin != NULL ? c->admin : "");
	s->agents_in->pl.owner = OWN_LISTENER;
	s->agents_in->what = "agent";
	if (pollset_add(&s->ps, s->agents_in->fd, POLLIN, &s->agents_in->pl) != 0) {
		close(s->agents_in->fd);
		s->agents_in->fd = -1;
		fmt_snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->agents_in->pl.slot = s->ps.n - 1;
	if (c->admin != NULL && admin_open(s, err, errlen) != 0) {
		return -1;
	}
	return open_exposes(s, err, errlen);
}

static void accept_agents(struct server *s, uint64_t now)
{
	for (int i = 0; i < TS_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		int fd = listener_accept(s, s->agents_in, now, &ss);
		struct agent *a;

		if (fd < 0) {
			return;
		}
		net_tune_runner(fd, (unsigned)(s->cfg.ping_interval_ms + s->cfg.ping_timeout_ms));
		a = agent_accept(s, fd, (const struct sockaddr *)&ss, now);
		if (a != NULL) {
			agent_wake(a);
		}
	}
}

/* Re-read the configuration (SIGHUP): exposes added and removed, tokens
 * and the TLS certificate replaced; the listener stays. */
static void reload(struct server *s, int argc, char **argv)
{
	struct server_config *nc = malloc(sizeof(*nc));
	struct auth *auth = NULL;
	struct tls_server_config *tls = NULL;
	char err[300];

	log_info("reloading configuration%s%s", s->cfg.config_file != NULL ? " file=" : "",
		 s->cfg.config_file != NULL ? s->cfg.config_file : "");
	if (nc == NULL || server_config_load(nc, argc, argv, err, sizeof(err)) != SCFG_RUN ||
	    auth_load(&auth, nc->token, nc->token_file, err, sizeof(err)) != 0 ||
	    (nc->tls_cert != NULL &&
	     tls_server_config_load(&tls, nc->tls_cert, nc->tls_key, err, sizeof(err)) != 0)) {
		log_error("reload failed, keeping the running configuration: %s",
			  nc == NULL ? "out of memory" : err);
		if (nc != NULL) {
			server_config_free(nc);
		}
		free(nc);
		auth_free(auth);
		return;
	}
	if (nc->listen_len != s->cfg.listen_len ||
	    memcmp(&nc->listen_addr, &s->cfg.listen_addr, nc->listen_len) != 0) {
		log_warn("reload: a new --listen address takes a restart; still on %s", s->listen_shown);
	}
	if ((nc->admin == NULL) != (s->admin_shown[0] == '\0') ||
	    (nc->admin != NULL && (nc->admin_len != s->cfg.admin_len ||
				   memcmp(&nc->admin_addr, &s->cfg.admin_addr, nc->admin_len) != 0))) {
		log_warn("reload: a new --admin address takes a restart; still on %s",
			 s->admin_shown[0] != '\0' ? s->admin_shown : "none");
	}
	for (struct list *l = s->exposes.next; l != &s->exposes; l = l->next) {
		struct expose *ex = expose_of_link(l);
		int keep = 0;
		for (size_t i = 0; i < nc->n_exposes && !keep; i++) {
			keep = server_config_same_expose(expose_spec(ex), &nc->exposes[i]);
		}
		expose_set_keep(ex, keep);
	}
	for (struct list *l = list_first(&s->exposes); l != NULL;) {
		struct list *next = l->next != &s->exposes ? l->next : NULL;
		struct expose *ex = expose_of_link(l);
		if (!expose_keep(ex)) {
			expose_close(s, ex);
		}
		l = next;
	}
	for (size_t i = 0; i < nc->n_exposes; i++) {
		int have = 0;
		for (struct list *l = s->exposes.next; l != &s->exposes && !have; l = l->next) {
			have = server_config_same_expose(expose_spec(expose_of_link(l)),
							 &nc->exposes[i]);
		}
		if (!have && expose_open(s, &nc->exposes[i], err, sizeof(err)) != 0) {
			log_error("reload: %s", err);
		}
	}
	auth_free(s->auth);
	s->auth = auth;
	if (tls != NULL) {
		/* Handshakes under way still use the old one; it goes with the
		 * next reload or at exit. */
		tls_server_config_free(s->tls_old);
		s->tls_old = s->tls;
		s->tls = tls;
	}
	log_set_level(nc->log_level);
	/* Keep the addresses the running sockets were made with (their text
	 * is in listen_shown, admin_shown); take the rest. */
	nc->listen_addr = s->cfg.listen_addr;
	nc->listen_len = s->cfg.listen_len;
	nc->admin_addr = s->cfg.admin_addr;
	nc->admin_len = s->cfg.admin_len;
	server_config_free(&s->cfg);
	s->cfg = *nc;
	free(nc);
	log_info("configuration reloaded exposes=%zu", s->cfg.n_exposes);
}

/* Agents, public connections and flows: deadlines. */
static void timers(struct server *s, uint64_t now, uint64_t *next)
{
	struct list *l = s->agents.next;

	while (l != &s->agents) {
		struct list *following = l->next;
		agent_timers(agent_of_link(l), now, next);
		l = following;
	}
	listener_timers(s, s->agents_in, now, next);
	public_timers(s, now, next);
	expose_timers(s, now, next);
	if (s->admin != NULL) {
		admin_timers(s, now, next);
	}
}

/* Pump every agent with work, then set its poll interest. One that has
 * more to do goes round again next turn, after every other. */
static void pump(struct server *s, uint64_t now)
{
	struct list batch;

	list_init(&batch);
	list_splice(&s->active, &batch);
	for (struct list *l = list_first(&batch); l != NULL; l = list_first(&batch)) {
		struct agent *a = agent_of_active(l);
		int more;

		list_del(l);
		more = agent_pump(a, now);
		agent_poll_interest(a);
		if (more) {
			agent_wake(a);
		}
	}
}

static int is_listener(enum owner o)
{
	return o == OWN_LISTENER || o == OWN_EXPOSE || o == OWN_ADMIN;
}

/* Connections first, then listeners: an end that a connection reported in
 * this turn frees its place before a new connection takes one. */
static void dispatch(struct server *s, size_t ready, uint64_t now)
{
	for (int pass = 0; pass < 2; pass++) {
		size_t left = ready;

		for (size_t i = 0; i < s->ps.n && left > 0; i++) {
			short rev = s->ps.pfd[i].revents;
			struct pollable *o = s->ps.owner[i];

			if (rev == 0) {
				continue;
			}
			left--;
			if (is_listener(o->owner) != (pass == 1)) {
				continue;
			}
			s->ps.pfd[i].revents = 0;
			ready--;
			switch (o->owner) {
			case OWN_LISTENER:
				accept_agents(s, now);
				break;
			case OWN_AGENT:
				agent_on_events((struct agent *)o, rev, now);
				agent_wake((struct agent *)o);
				break;
			case OWN_EXPOSE:
				expose_on_events(o, rev, now);
				break;
			case OWN_PUBLIC:
				public_on_events(o, rev, now);
				break;
			case OWN_ADMIN:
			case OWN_ADMIN_CONN:
				admin_on_events(s, o, rev, now);
				break;
			}
		}
	}
}

static void reap(struct server *s)
{
	agent_reap(s);
	public_reap(s);
	if (s->admin != NULL) {
		admin_reap(s);
	}
}

int server_run(struct server *s, int argc, char **argv)
{
	uint64_t stop_deadline = 0;

	log_info("tunnel-server %s listening on %s%s exposes=%zu", TC_VERSION, s->listen_shown,
		 s->tls != NULL ? " (wss)" : "", s->cfg.n_exposes);
	for (;;) {
		uint64_t now = net_now_ms();
		uint64_t next = now + TS_TIMER_TICK_MS;
		int r;

		if (*s->reload) {
			*s->reload = 0;
			reload(s, argc, argv);
		}
		if (*s->stop && stop_deadline == 0) {
			log_info("stopping: closing every agent");
			stop_deadline = now + TC_CLOSE_WAIT_MS;
			for (struct list *l = s->agents.next; l != &s->agents; l = l->next) {
				struct agent *a = agent_of_link(l);
				agent_shutdown(a, 1001, "server shutting down", now);
				agent_wake(a);
			}
		}
		pump(s, now);
		if (now >= s->next_tick || stop_deadline != 0) {
			timers(s, now, &next);
			s->next_tick = now + TS_TIMER_TICK_MS;
		}
		reap(s);
		if (stop_deadline != 0 && (s->n_agents == 0 || now >= stop_deadline)) {
			break;
		}
		if (!list_empty(&s->active)) {
			next = now; /* more to do: only look for new events */
		} else if (s->next_tick < next) {
			next = s->next_tick;
		}
		if (stop_deadline != 0 && stop_deadline < next) {
			next = stop_deadline;
		}
		r = net_ppoll(s->ps.pfd, s->ps.n, next, s->waitmask);
		if (r < 0 && errno != EINTR) {
			log_error("poll failed: %s", strerror(errno));
			return 1;
		}
		if (r > 0) {
			dispatch(s, (size_t)r, net_now_ms());
		}
	}
	log_info("stopped");
	return 0;
}

void server_free(struct server *s)
{
	for (struct list *l = list_first(&s->exposes); l != NULL; l = list_first(&s->exposes)) {
		expose_close(s, expose_of_link(l));
	}
	for (struct list *l = s->agents.next; l != &s->agents; l = l->next) {
		agent_shutdown(agent_of_link(l), 1001, "exit", net_now_ms());
	}
	/* Whatever did not finish its close in time goes now. */
	for (struct list *l = s->agents.next; l != &s->agents; l = l->next) {
		agent_kill(agent_of_link(l));
	}
	agent_reap(s);
	public_reap(s);
	if (s->admin != NULL) {
		admin_close(s);
	}
	if (s->agents_in != NULL && s->agents_in->fd >= 0) {
		close(s->agents_in->fd);
	}
	free(s->agents_in);
	registry_free(s->reg);
	auth_free(s->auth);
	tls_server_config_free(s->tls);
	tls_server_config_free(s->tls_old);
	pollset_free(&s->ps);
	server_config_free(&s->cfg);
}
