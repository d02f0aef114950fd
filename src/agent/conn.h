/* conn: the local side of the tunnel. Owns the table of live connections
 * (client_id -> local TCP/UDP socket), their states and queues, and turns
 * the runner's CONNECT / DATA / CLOSE into socket work and the sockets'
 * events into CONNECTED / DATA / CLOSE / ERROR messages for the runner.
 *
 * Work is proportional to what happens, not to how many connections are
 * open: each socket keeps one slot in the session's pollset, updated when
 * its interest changes; connections with input to read wait on a ready
 * list, connections with a deadline on a timed list, finished ones on a
 * done list until conn_reap().
 *
 * Messages for the runner go out through the sink given at init; the sink
 * must accept them (it queues into wslay). DATA is read straight into the
 * sink's output (data_begin / data_end). Connections are marked DONE and
 * freed only by conn_reap(), at the end of a loop turn. */
#ifndef CONN_H
#define CONN_H

#include <stddef.h>
#include <stdint.h>

#include "allow.h"
#include "bounds.h"
#include "idmap.h"
#include "list.h"
#include "outq.h"
#include "pollset.h"
#include "tunnel.h"

enum conn_state {
	CONN_CONNECTING, /* TCP connect in progress; runner DATA is kept */
	CONN_OPEN,       /* spliced both ways */
	CONN_DRAINING,   /* runner sent CLOSE: write what is queued, then shut */
	CONN_LINGER,     /* write side shut; discard input until EOF or deadline */
	CONN_DONE,       /* finished; freed by conn_reap */
};


struct conn {
	struct idmap_node node;  /* node.id: the client id; in the id map while addressable */
	uint8_t proto;           /* TUNNEL_TCP or TUNNEL_UDP */
	uint16_t port;
	enum conn_state state;
	int fd;
	size_t slot;             /* in the pollset */
	int addressable;         /* in the id hash: runner messages reach it */
	int readable;            /* input noted by poll, not yet read: on ready */
	struct list ready;       /* on the table's ready list */
	struct list timed;       /* on the timed list while a deadline applies */
	struct list done;        /* on the done list once DONE */
	struct outq q;           /* runner -> local bytes the socket did not take */
	uint64_t deadline_ms;    /* connect or linger deadline */
	uint64_t last_ms;        /* UDP: last datagram either way */
	uint64_t full_since_ms;  /* queue above the mark since, 0 if not */
	uint64_t created_ms;
	uint64_t bytes_in;       /* runner -> local payload */
	uint64_t bytes_out;      /* local -> runner payload */
};

struct conn_sink {
	void *ctx;
	/* Queue one whole message (header included) for the runner. */
	void (*send)(void *ctx, const uint8_t *msg, size_t len);
	/* Room for one message of up to max bytes in the runner's output, or
	 * NULL when it cannot take one now; data_end(len) sends what was
	 * written there. */
	uint8_t *(*data_begin)(void *ctx, size_t max);
	void (*data_end)(void *ctx, size_t len);
};

struct stats;

/* What a CONNECT may reach and how connections live; the counters. */
struct conn_limits {
	const struct allow *allow; /* --allow-ports */
	struct stats *stats;       /* counted into */
	/* --status-port: a TCP CONNECT to it gets the socket status_open
	 * returns (the agent answers), not a local one; the allow list does
	 * not apply. -1 with errno when it cannot. */
	uint16_t status_port;
	int (*status_open)(void *ctx, uint64_t now);
	void *status_ctx;
	size_t max_conns;
	size_t max_udp;
	uint64_t connect_timeout_ms;
	uint64_t udp_idle_ms;
	uint64_t stall_timeout_ms;
};

struct conn_table {
	struct conn_limits lim;
	struct conn_sink sink;
	struct pollset *ps;      /* the session's; slots [0, first_slot) are not ours */
	size_t first_slot;
	struct idmap ids;        /* addressable connections by client id */
	struct list ready;       /* input to read, oldest first (round robin) */
	struct list timed;       /* connecting, lingering, UDP, or over the mark */
	struct list done;        /* finished, not yet reaped */
	size_t live;             /* connections not DONE (the max_conns count) */
	size_t udp;              /* live UDP connections (the max_udp count) */
	size_t over_hwm;         /* connections whose queue is above the mark */
	uint32_t closed_ids[TC_CLOSED_IDS];
	size_t closed_next;
};

/* ps is the session's pollset; the table adds its sockets after the slots
 * already there. */
void conn_table_init(struct conn_table *t, const struct conn_limits *lim,
		     struct conn_sink sink, struct pollset *ps);
/* Close every socket and free everything; no messages are sent. */
void conn_table_free(struct conn_table *t);

/* Runner messages (already parsed). */
void conn_on_connect(struct conn_table *t, const struct tunnel_msg *m, uint64_t now);
void conn_on_data(struct conn_table *t, const struct tunnel_msg *m, uint64_t now);
void conn_on_close(struct conn_table *t, const struct tunnel_msg *m, uint64_t now);

/* Handle readiness after poll(): connect completion, writes, EOF/errors;
 * input is only noted (read later by conn_read_one). ready is how many of
 * the table's slots poll() reported (the scan stops once all are seen). */
void conn_poll_done(struct conn_table *t, size_t ready, uint64_t now);
/* Read the oldest connection with noted input straight into the sink's
 * output and send it as DATA (or CLOSE on EOF). A full read leaves it
 * ready (more is likely waiting) at the back of the list; a short one
 * leaves it to the next poll. 1 if a connection was serviced, 0 if none
 * was ready or the sink had no room. */
int conn_read_one(struct conn_table *t, uint64_t now);
/* Connect timeouts, UDP idle, stalls, linger; lowers *next to the nearest
 * deadline still pending. */
void conn_timers(struct conn_table *t, uint64_t now, uint64_t *next);
/* Free DONE connections. Call at the end of a loop turn only. */
void conn_reap(struct conn_table *t);
/* Live connections (for logs). */
size_t conn_count(const struct conn_table *t);
/* Call fn for each connection the runner can reach, until it returns
 * non-zero. */
void conn_each(const struct conn_table *t, int (*fn)(void *ctx, const struct conn *c), void *ctx);
/* c's state as a word, and its queued bytes. */
const char *conn_state_name(const struct conn *c);

#endif
