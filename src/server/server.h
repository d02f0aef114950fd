/* server: tunnel-server's state and its one poll() loop. Agents dial the
 * listener, authenticate, and upgrade to a WebSocket (agent.c); the
 * registry maps agent ids to their live tunnel (registry.c); exposes
 * accept public connections and UDP datagrams and carry them through the
 * agent's tunnel (expose.c, public.c); admin.c answers status requests.
 *
 * Every socket has a pollset slot whose owner starts with a struct
 * pollable, so the loop knows what woke and a moved slot can be renumbered. Objects are marked dead and freed only at
 * the end of a loop turn. */
#ifndef SERVER_H
#define SERVER_H

#include <signal.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "list.h"
#include "pollset.h"

enum owner {
	OWN_LISTENER,   /* the agent listener */
	OWN_AGENT,      /* an agent's connection */
	OWN_EXPOSE,     /* an expose's TCP listener or UDP socket */
	OWN_PUBLIC,     /* a public TCP connection */
	OWN_ADMIN,      /* the admin listener */
	OWN_ADMIN_CONN, /* an admin HTTP connection */
};

/* The head of every object with a pollset slot. */
struct pollable {
	enum owner owner;
	size_t slot;
};

struct auth;
struct admin;
struct tls_server_config;
struct registry;

/* What the server counts, for status and metrics. */
struct server_counters {
	uint64_t agents_accepted;  /* upgrades completed */
	uint64_t agents_refused;   /* HTTP refusals (bad request, token, full) */
	uint64_t agents_replaced;  /* sessions ended by a newer one for their id */
	uint64_t public_accepted;  /* public TCP connections and UDP flows */
	uint64_t public_refused;   /* no agent, agent ERROR, limits */
	uint64_t bytes_to_agents;  /* payload bytes */
	uint64_t bytes_from_agents;
};

struct server {
	struct server_config cfg;
	struct auth *auth;
	struct tls_server_config *tls;
	struct tls_server_config *tls_old; /* before the last reload */
	struct pollset ps;
	struct listener *agents_in; /* the agent listener */
	struct list agents;        /* every agent connection */
	size_t n_agents;
	struct registry *reg;
	struct list exposes;
	struct list active;        /* agents with public input they may take */
	struct list timed;         /* public connections and flows with deadlines */
	struct list dead_agents;   /* freed at the end of the turn */
	struct list dead_publics;
	struct admin *admin;
	char listen_shown[72];     /* what the sockets were opened on: a */
	char admin_shown[72];      /* reload keeps them ("" if no admin) */
	struct server_counters n;
	uint64_t started_ms;       /* monotonic */
	time_t started_at;
	uint64_t start_unix_ms;    /* process start, for process_start_time_seconds */
	uint64_t next_tick;
	volatile sig_atomic_t *stop;
	volatile sig_atomic_t *reload;
	const sigset_t *waitmask;
};

/* Give a pollset slot back; the object that moved into it learns so. */
void server_drop_slot(struct server *s, size_t slot);

/* Set up from a loaded config: TLS, tokens, listeners, exposes. On a
 * problem err gets one line; -1 (the caller exits 2). */
int server_init(struct server *s, char *err, size_t errlen);
/* Serve until *stop; SIGHUP (*reload) re-reads the configuration. Sends
 * close 1001 to every agent on the way out. 0, or 1 on a fatal error. */
int server_run(struct server *s, int argc, char **argv);
void server_free(struct server *s);

#endif
