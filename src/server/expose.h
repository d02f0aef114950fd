/* expose: one public port of tunnel-server, mapped to an agent's local
 * port. TCP: a listener whose every connection becomes a public
 * connection (public.c). UDP: one socket; each public source address is a
 * flow with its own client id, one datagram per DATA both ways, ended
 * after --udp-idle-timeout of silence (with CLOSE to the agent). */
#ifndef EXPOSE_H
#define EXPOSE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "list.h"

struct server;
struct expose;
struct tunnel_end;

/* Bind the public socket and add the expose to s. 0, or -1 with err. */
int expose_open(struct server *s, const struct expose_spec *spec, char *err, size_t errlen);
/* Stop listening; close its connections and flows. Between loop turns. */
void expose_close(struct server *s, struct expose *ex);
/* What poll() reported for an expose's socket (the slot's owner). */
void expose_on_events(void *owner, short revents, uint64_t now);
/* UDP idle timeouts; lowers *next. */
void expose_timers(struct server *s, uint64_t now, uint64_t *next);

/* The expose of a link on the server's exposes list. */
struct expose *expose_of_link(struct list *l);
const char *expose_name(const struct expose *ex);
const struct expose_spec *expose_spec(const struct expose *ex);
/* The list public connections of ex join, and its count of them. */
struct list *expose_conns(struct expose *ex);
void expose_conn_new(struct expose *ex);
void expose_conn_gone(struct expose *ex);
/* Reload marks: which exposes are still configured. */
void expose_set_keep(struct expose *ex, int keep);
int expose_keep(const struct expose *ex);

/* UDP flows, from the agent: one whole datagram for the flow, or the end
 * of the flow (CLOSE, ERROR, or the agent gone; e is out of its map). */
void expose_flow_send(struct tunnel_end *e, const uint8_t *p, size_t n);
void expose_flow_gone(struct tunnel_end *e);

struct expose_info {
	const char *name;
	const char *proto;
	const char *bind;
	const char *agent;
	uint16_t port;
	const char *state;  /* "listening", or "no agent" */
	size_t connections; /* TCP connections or UDP flows */
	uint64_t accepted;
};
void expose_info(const struct expose *ex, struct expose_info *out);

#endif
