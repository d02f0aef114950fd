/* status: the agent's own voice, read-only. With --status-port N, a
 * runner CONNECT to TCP port N gets one end of a socket pair instead of a
 * local socket (the connection table splices it like any other); the
 * other end is an HTTP exchange (httpx.c) answered here:
 *
 *   GET /healthz  200 ok          GET /ready  200 while the tunnel is open
 *   GET /status   JSON: version, session, counters, connections, system
 *   GET /metrics  Prometheus text: tunnel_client_* and process_*
 *   GET /logs     the recent log lines (--log-ring)
 *
 * Nothing here changes the agent. SIGUSR1 logs the same status as lines.
 * The exchanges use TC_STATUS_CONNS fixed slots of the session's pollset
 * (fd -1 while free), reserved before the connection table's. */
#ifndef STATUS_H
#define STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "httpx.h"
#include "pollset.h"

struct session_env;
struct conn_table;
struct stats;

struct status {
	const struct session_env *env;
	const struct conn_table *conns;
	struct pollset *ps;
	size_t first_slot;           /* TC_STATUS_CONNS slots from here, if on */
	int on;                      /* --status-port given */
	struct httpx x[TC_STATUS_CONNS];
	int used[TC_STATUS_CONNS];
};

/* Reserve the slots in ps (when --status-port is on). 0, or -1 out of
 * memory. */
int status_init(struct status *st, const struct session_env *env, const struct conn_table *conns,
		struct pollset *ps);
/* For conn_limits.status_open: a connected socket whose peer is a new
 * exchange, or -1 with errno (every exchange busy: ECONNREFUSED). */
int status_open(void *ctx, uint64_t now);
/* After poll(): step the exchanges that have events. Returns how many of
 * the slots poll() reported. */
size_t status_poll_done(struct status *st, uint64_t now);
/* Exchange deadlines; lowers *next. */
void status_timers(struct status *st, uint64_t now, uint64_t *next);
void status_free(struct status *st);
/* SIGUSR1: a summary line, then one per connection (conns may be NULL
 * between sessions). */
void status_log(const struct session_env *env, const struct conn_table *conns);

#endif
