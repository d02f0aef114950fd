/* agent_int: the inside of one agent connection (server side), shared by
 * the three files that make it up: agent.c (accept, pump, timers, end),
 * agent_upgrade.c (the upgrade request: checked, then admitted or refused)
 * and agent_tunnels.c (tunnel messages both ways). Nothing else includes
 * it: the rest of the server sees agent.h. */
#ifndef AGENT_INT_H
#define AGENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "bounds.h"
#include "buf.h"
#include "handshake.h"
#include "server.h"
#include "transport.h"
#include "tunnel.h"
#include "ws.h"

enum agent_state {
	AG_TLS,      /* accepted; TLS handshake in progress (wss://) */
	AG_REQUEST,  /* reading the upgrade request */
	AG_REFUSING, /* an HTTP refusal is queued; done once it is written */
	AG_OPEN,     /* the tunnel serves public connections */
	AG_CLOSING,  /* our close frame is queued; waiting (bounded) for theirs */
	AG_DONE,     /* finished; freed by agent_reap */
};

struct agent {
	struct pollable pl; /* first: OWN_AGENT and the slot */
	struct server *srv;
	enum agent_state state;
	uint8_t *data_at;   /* agent_data_begin's message, for agent_data_end */
	struct transport tr;
	struct ws ws;
	char id[TS_AGENT_ID_MAX + 1];
	char addr[64];
	char user_agent[HS_USER_AGENT_MAX];
	uint64_t deadline_ms;   /* handshake or close deadline, 0 if none */
	uint64_t last_rx_ms;    /* last byte from the agent */
	uint64_t last_bulk_ms;  /* last read or write of BUF_FIRST or more */
	uint64_t ping_sent_ms;  /* our ping, 0 if none outstanding */
	int64_t connected_at;   /* Unix seconds of the upgrade */
	uint64_t bytes_in;
	uint64_t bytes_out;
	int registered;
	/* the message being received */
	uint8_t hdr[TUNNEL_HDR_LEN];
	size_t hdr_len;
	size_t msg_len;
	struct tunnel_msg m;
	enum tunnel_err err;
	struct tunnel_end *target;  /* whose DATA this is, or NULL */
	char text[TC_ERROR_TEXT_MAX + 1]; /* an ERROR's reason */
	size_t text_len;
	struct buf udp;             /* a datagram for a UDP flow, whole */
	int oversize;               /* ... larger than TC_DATA_MAX: dropped */
	/* tunnels */
	struct idmap ends;
	uint32_t next_id;
	size_t over_hwm;            /* public connections above their mark */
	struct list ready;          /* public connections with input */
	struct list active;         /* on the server's active list */
	struct list link;           /* on the server's agents list */
	struct list dead;
};

/* Mark a done with a cause (logged once); every tunnel end goes with it. */
void agent_end(struct agent *a, enum log_level lvl, const char *why);
/* The upgrade request so far is in ws.in: admit, refuse, or wait. */
void agent_read_request(struct agent *a, uint64_t now);
/* The agent's messages, as ws streams them (user: the agent). */
extern const struct ws_rx agent_rx;

#endif
