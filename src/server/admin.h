/* admin: tunnel-server's optional HTTP endpoint (--admin HOST:PORT, off by
 * default; loopback advised). GET /healthz, /status (JSON), /metrics
 * (Prometheus text format) and / (a page of the same status that refreshes
 * itself). One request per connection; a malformed or oversized request
 * gets 400 / 431, a client that never finishes is closed after
 * TS_ADMIN_TIMEOUT_MS. Read-only: nothing there changes the server. */
#ifndef ADMIN_H
#define ADMIN_H

#include <stddef.h>
#include <stdint.h>

struct server;

/* Listen on cfg.admin. 0, or -1 with err. */
int admin_open(struct server *s, char *err, size_t errlen);
/* What poll() reported for the admin listener or one of its connections
 * (owner is the slot's owner). */
void admin_on_events(struct server *s, void *owner, short revents, uint64_t now);
/* Request timeouts; lowers *next. */
void admin_timers(struct server *s, uint64_t now, uint64_t *next);
/* Free finished connections. End of a loop turn only. */
void admin_reap(struct server *s);
/* Close the listener and every connection. */
void admin_close(struct server *s);

#endif
