/* agent (server side): one agent's connection to tunnel-server, from
 * accept to close: TLS (wss://), the upgrade request and its checks (path,
 * token, limits), then the WebSocket (wslay server side, with the fast
 * path for DATA) and the tunnel messages both ways. Its public connections
 * and UDP flows are tunnel ends, found by client id.
 *
 * States: TLS -> REQUEST -> OPEN -> CLOSING -> DONE, or REQUEST ->
 * REFUSING (an HTTP error is written) -> DONE. An agent is marked DONE
 * once, with its cause logged; it is freed by agent_reap(). Made of
 * agent.c, agent_upgrade.c and agent_tunnels.c (agent_int.h inside). */
#ifndef AGENT_H
#define AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "idmap.h"
#include "list.h"
#include "log.h"

struct server;
struct agent;

/* One tunnelled connection as the agent sees it: node.id is the client
 * id. proto says what it is part of: TUNNEL_TCP a struct public,
 * TUNNEL_UDP a struct flow. */
struct tunnel_end {
	struct idmap_node node;
	uint8_t proto;
};

/* Take a new connection (fd non-blocking) from sa. NULL when over
 * --max-agents or out of memory (fd is closed, the cause logged). */
struct agent *agent_accept(struct server *s, int fd, const struct sockaddr *sa, uint64_t now);
/* What poll() reported for the agent's socket. */
void agent_on_events(struct agent *a, short revents, uint64_t now);
/* Move bytes: socket, TLS, WebSocket, messages, and back, for a bounded
 * number of rounds. 1 if it stopped with more to do (pump it again). */
int agent_pump(struct agent *a, uint64_t now);
/* Handshake deadline, keepalive ping and drop, idle buffers; lowers *next. */
void agent_timers(struct agent *a, uint64_t now, uint64_t *next);
/* The poll events the agent's socket needs now. */
void agent_poll_interest(struct agent *a);
/* Close the tunnel with a close frame (code, reason); it ends when the
 * agent answers or after a second. */
void agent_shutdown(struct agent *a, uint16_t code, const char *why, uint64_t now);
/* End now, without a close handshake (exit). */
void agent_kill(struct agent *a);
/* Free the agents marked DONE. End of a loop turn only. */
void agent_reap(struct server *s);

/* The agent of a link on the server's agents (active) list. */
struct agent *agent_of_link(struct list *l);
struct agent *agent_of_active(struct list *l);
const char *agent_id(const struct agent *a);
int agent_is_open(const struct agent *a);

/* Tunnels. agent_open_tunnel gives e a fresh client id and queues
 * CONNECT (proto, port); -1 when the agent is at --max-connections or out
 * of memory. agent_close_tunnel forgets e, queueing CLOSE when send_close. */
int agent_open_tunnel(struct agent *a, struct tunnel_end *e, uint8_t proto, uint16_t port);
void agent_close_tunnel(struct agent *a, struct tunnel_end *e, int send_close);
/* Queue CLOSE for e and keep it (DATA in flight still finds it). */
void agent_send_close(struct agent *a, struct tunnel_end *e);
/* Room for one DATA message of up to max payload bytes for tunnel e, or
 * NULL when the agent cannot take one now (its output is full, a reply is
 * queued, or it is closing). agent_data_end sends len payload bytes. */
uint8_t *agent_data_begin(struct agent *a, size_t max);
void agent_data_end(struct agent *a, const struct tunnel_end *e, size_t len);
/* The list a's public connections with input join (struct public's
 * ready link). agent_wake: a has work (input, a reply, an unpause) and is
 * pumped next turn. */
struct list *agent_ready_list(struct agent *a);
void agent_wake(struct agent *a);
/* One of a's public connections crossed its high-water mark (up = 1) or
 * went back under it (up = 0): a stops reading its WebSocket while any is
 * above. */
void agent_mark(struct agent *a, int up);

/* For status: every agent connection, in order. */
struct agent_info {
	const char *id;
	const char *addr;
	const char *user_agent;
	const char *state;
	int64_t connected_at;      /* Unix seconds of the upgrade, 0 if none */
	size_t connections;
	uint64_t bytes_in;         /* payload bytes from the agent */
	uint64_t bytes_out;        /* payload bytes to the agent */
};
void agent_info(const struct agent *a, struct agent_info *out);

#endif
