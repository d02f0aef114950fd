/* public: a public client's TCP connection to an expose, carried through
 * its agent's tunnel under one client id. Its first bytes go out as DATA
 * right after CONNECT, without waiting for CONNECTED (as the real user
 * side does). Agent->public bytes queue up to TS_PUBLIC_HWM, then the
 * agent's WebSocket stops being read; a client that holds it there for
 * --stall-timeout is closed.
 *
 * Ends: ERROR from the agent, or no agent: closed at once. CLOSE from the
 * agent: closed after every byte before it is written. The client's EOF:
 * CLOSE to the agent after every byte before it; the socket stays open for
 * in-flight DATA for TS_LINGER_MS (the protocol has no half-close). */
#ifndef PUBLIC_H
#define PUBLIC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct server;
struct expose;
struct agent;
struct tunnel_end;

/* A connection accepted on an expose (fd non-blocking): CONNECT through
 * the expose's agent, or closed at once when it has none (logged). */
void public_accept(struct server *s, struct expose *ex, int fd, const struct sockaddr *sa,
		   uint64_t now);
/* What poll() reported for a public socket (the slot's owner). */
void public_on_events(void *owner, short revents, uint64_t now);
/* Read a's oldest public connection with input straight into a's output
 * as DATA (or CLOSE on EOF). 1 if one was served, 0 if none could be. */
int public_read_one(struct agent *a, uint64_t now);

/* From the agent, for the tunnel end e of a public connection. */
void public_on_connected(struct tunnel_end *e);
void public_on_data(struct tunnel_end *e, const uint8_t *p, size_t n, uint64_t now);
/* CLOSE (text NULL) or ERROR (text = the agent's reason); e is already out
 * of the agent's map. */
void public_on_close(struct tunnel_end *e, const char *text, uint64_t now);
/* The agent ended: close now. */
void public_agent_gone(struct tunnel_end *e, const char *why);

/* Close every public connection of an expose (removed on reload). */
void public_close_expose(struct server *s, struct expose *ex);
/* Stall, linger deadlines; lowers *next. */
void public_timers(struct server *s, uint64_t now, uint64_t *next);
/* Free the finished ones. End of a loop turn only. */
void public_reap(struct server *s);

#endif
