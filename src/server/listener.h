/* listener: one listening socket of tunnel-server (the agent listener, an
 * expose's TCP port, the admin endpoint). Accepts in batches; when
 * descriptors run out it rests for TS_ACCEPT_PAUSE_MS (hidden from poll,
 * one warning) instead of waking for the queued connection at every turn. */
#ifndef LISTENER_H
#define LISTENER_H

#include <stdint.h>
#include <sys/socket.h>

#include "server.h"

struct listener {
	struct pollable pl; /* first: the owner's tag and the slot */
	int fd;
	uint64_t paused_until; /* hidden from poll() until then, or 0 */
	const char *what;      /* for the log: "agent", "expose ...", "admin" */
};

/* The next connection (non-blocking, close-on-exec) and its address, or
 * -1 when there is none now (EAGAIN, or a failure logged). */
int listener_accept(struct server *s, struct listener *l, uint64_t now,
		    struct sockaddr_storage *ss);
/* End a rest that is over; lowers *next to the end of one under way. */
void listener_timers(struct server *s, struct listener *l, uint64_t now, uint64_t *next);

#endif
