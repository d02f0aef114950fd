/* conn: the local side of the tunnel. Owns the table of live connections
 * (client_id -> local TCP/UDP socket), their states and queues, and turns
 * the runner's CONNECT / DATA / CLOSE into socket work and the sockets'
 * events into CONNECTED / DATA / CLOSE / ERROR messages for the runner.
 *
 * Messages for the runner go out through the sink given at init; the sink
 * must accept them (it queues into wslay). Connections are marked DONE and
 * freed only by conn_reap(), at the end of a loop turn. */
#ifndef CONN_H
#define CONN_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "tunnel.h"

enum conn_state {
	CONN_CONNECTING, /* TCP connect in progress; runner DATA is kept */
	CONN_OPEN,       /* spliced both ways */
	CONN_DRAINING,   /* runner sent CLOSE: write what is queued, then shut */
	CONN_LINGER,     /* write side shut; discard input until EOF or deadline */
	CONN_DONE,       /* finished; freed by conn_reap */
};

struct chunk; /* one DATA payload queued for the local socket */

struct conn {
	uint32_t id;
	uint8_t proto;           /* TUNNEL_TCP or TUNNEL_UDP */
	uint16_t port;
	enum conn_state state;
	int fd;
	int addressable;         /* in the id hash: runner messages reach it */
	int readable;            /* poll reported input not yet read */
	int pollidx;             /* index in the pollfd array, -1 if none */
	struct chunk *head;      /* runner -> local queue */
	struct chunk *tail;
	size_t queued;           /* bytes in the queue */
	uint64_t deadline_ms;    /* connect or linger deadline */
	uint64_t last_ms;        /* UDP: last datagram either way */
	uint64_t full_since_ms;  /* queue above the mark since, 0 if not */
	struct conn *hnext;      /* hash chain */
};

struct conn_sink {
	void *ctx;
	/* Queue one whole message (header included) for the runner. */
	void (*send)(void *ctx, const uint8_t *msg, size_t len);
};

struct conn_limits {
	size_t max_conns;
	size_t max_udp;
	uint64_t connect_timeout_ms;
	uint64_t udp_idle_ms;
	uint64_t stall_timeout_ms;
};

#define CONN_BUCKETS 256

struct conn_table {
	struct conn_limits lim;
	struct conn_sink sink;
	struct conn **all;       /* every connection, dense */
	size_t n;
	size_t cap;
	size_t rr;               /* round-robin start for reads */
	size_t live;             /* connections not DONE (the max_conns count) */
	size_t udp;              /* live UDP connections (the max_udp count) */
	size_t over_hwm;         /* connections whose queue is above the mark */
	struct conn *buckets[CONN_BUCKETS];
	uint32_t closed_ids[TC_CLOSED_IDS];
	size_t closed_next;
};

void conn_table_init(struct conn_table *t, const struct conn_limits *lim,
		     struct conn_sink sink);
/* Close every socket and free everything; no messages are sent. */
void conn_table_free(struct conn_table *t);

/* Runner messages (already parsed). */
void conn_on_connect(struct conn_table *t, const struct tunnel_msg *m, uint64_t now);
void conn_on_data(struct conn_table *t, const struct tunnel_msg *m, uint64_t now);
void conn_on_close(struct conn_table *t, const struct tunnel_msg *m, uint64_t now);

/* Fill pfd[] with the sockets' interest; may_read says the tunnel can take
 * more DATA now. Returns how many entries were used (at most max). */
size_t conn_poll_fill(struct conn_table *t, struct pollfd *pfd, size_t max, int may_read);
/* Handle readiness from poll: connect completion, writes, EOF/errors;
 * input is only noted (read later by conn_read_one). */
void conn_poll_done(struct conn_table *t, const struct pollfd *pfd, uint64_t now);
/* Read one connection with noted input (round robin) into buf, which has
 * TUNNEL_HDR_LEN bytes of headroom plus TC_DATA_MAX, and send the DATA (or
 * CLOSE on EOF). Returns 1 if a connection was serviced, 0 if none. */
int conn_read_one(struct conn_table *t, uint8_t *buf, uint64_t now);
/* Write queued bytes wherever the socket may take them (pump). 1 if any
 * byte moved. */
int conn_flush_all(struct conn_table *t, uint64_t now);
/* Connect timeouts, UDP idle, stalls, linger; lowers *next to the nearest
 * deadline still pending. */
void conn_timers(struct conn_table *t, uint64_t now, uint64_t *next);
/* Free DONE connections. Call at the end of a loop turn only. */
void conn_reap(struct conn_table *t);
/* Live connections (for logs). */
size_t conn_count(const struct conn_table *t);

#endif
