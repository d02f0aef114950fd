#include "conn.h"
#include "conn_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "pollset.h"
#include "stats.h"

static const char *proto_name(const struct conn *c)
{
	return c->proto == TUNNEL_UDP ? "udp" : "tcp";
}

/* ---- messages to the runner ---- */

static void send_msg(struct conn_table *t, uint8_t type, uint8_t proto,
		     uint32_t id, const char *text)
{
	uint8_t msg[TUNNEL_HDR_LEN + TC_ERROR_TEXT_MAX];
	size_t n = text != NULL ? strlen(text) : 0;

	if (n > TC_ERROR_TEXT_MAX) {
		n = TC_ERROR_TEXT_MAX;
	}
	tunnel_header(msg, type, proto, id, 0);
	if (n > 0) {
		memcpy(msg + TUNNEL_HDR_LEN, text, n);
	}
	t->sink.send(t->sink.ctx, msg, TUNNEL_HDR_LEN + n);
}

/* The poll events c needs now, from its state alone. */
static void interest(struct conn_table *t, struct conn *c)
{
	short ev = 0;

	switch (c->state) {
	case CONN_CONNECTING:
		ev = POLLOUT;
		break;
	case CONN_OPEN:
		/* No POLLIN while noted input waits to be read: a socket
		 * the tunnel cannot serve yet must not wake poll again. */
		ev = (short)((c->q.bytes > 0 ? POLLOUT : 0) | (c->readable ? 0 : POLLIN));
		break;
	case CONN_DRAINING:
		ev = c->q.bytes > 0 ? POLLOUT : 0;
		break;
	case CONN_LINGER:
		ev = POLLIN;
		break;
	case CONN_DONE:
		break;
	}
	pollset_set(t->ps, c->slot, ev);
}

/* Put c on the timed list exactly while one of its deadlines applies. */
static void sync_timed(struct conn_table *t, struct conn *c)
{
	int want = c->state == CONN_CONNECTING || c->state == CONN_LINGER ||
		   (c->state == CONN_OPEN && c->proto == TUNNEL_UDP) ||
		   (c->state != CONN_DONE && c->full_since_ms != 0);

	if (want && !list_linked(&c->timed)) {
		list_add_tail(&t->timed, &c->timed);
	} else if (!want) {
		list_del(&c->timed);
	}
}

static void set_readable(struct conn_table *t, struct conn *c, int readable)
{
	c->readable = readable;
	list_del(&c->ready);
	if (readable) {
		list_add_tail(&t->ready, &c->ready);
	}
	interest(t, c);
}

static void queue_drop(struct conn_table *t, struct conn *c)
{
	outq_clear(&c->q);
	if (c->full_since_ms != 0) {
		c->full_since_ms = 0;
		t->over_hwm--;
	}
}

/* The one place a connection finishes. type is the message that tells the
 * runner (TUNNEL_CLOSE, TUNNEL_ERROR with text), or 0 for none. */
static void finish(struct conn_table *t, struct conn *c, uint8_t type, const char *text)
{
	if (c->state == CONN_DONE) {
		return;
	}
	if (type != 0 && c->addressable) {
		send_msg(t, type, c->proto, c->node.id, text);
		conn_table_remember_closed(t, c->node.id);
	}
	log_debug("conn closed id=%u proto=%s port=%u reason=%s", (unsigned)c->node.id,
		  proto_name(c), (unsigned)c->port, text != NULL ? text : "close");
	conn_table_detach(t, c);
	queue_drop(t, c);
	c->state = CONN_DONE;
	c->readable = 0;
	list_del(&c->ready);
	list_del(&c->timed);
	list_add_tail(&t->done, &c->done);
	pollset_set(t->ps, c->slot, 0);
	t->live--;
	if (c->proto == TUNNEL_UDP) {
		t->udp--;
	}
}

/* The queue's high-water mark, its stall clock and the poll interest that
 * follow from c->q.bytes. */
static void update_mark(struct conn_table *t, struct conn *c, uint64_t now)
{
	if (c->q.bytes > TC_CONN_HWM && c->full_since_ms == 0) {
		c->full_since_ms = now != 0 ? now : 1;
		t->over_hwm++;
	} else if (c->q.bytes <= TC_CONN_HWM && c->full_since_ms != 0) {
		c->full_since_ms = 0;
		t->over_hwm--;
	}
	sync_timed(t, c);
	interest(t, c);
}

static int would_block(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* Send bytes to the local socket: bytes written (TCP may be short), or -1
 * with errno (would_block(errno): the socket is full). UDP sends one whole
 * datagram; one the kernel refuses (e.g. ECONNREFUSED after an ICMP error)
 * is dropped and counted as sent: the connection stays. */
static ssize_t sock_send(struct conn *c, const uint8_t *p, size_t n)
{
	ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

	if (w < 0 && c->proto == TUNNEL_UDP && !would_block(errno)) {
		log_debug("udp datagram dropped id=%u errno=%d", (unsigned)c->node.id, errno);
		return (ssize_t)n;
	}
	return w;
}

/* ---- runner messages ---- */

void conn_on_connect(struct conn_table *t, const struct tunnel_msg *m, uint64_t now)
{
	char why[64];
	struct conn *c;
	int fd;

	if (conn_table_find(t, m->client_id) != NULL) {
		log_warn("connect refused id=%u reason=\"client id in use\"", (unsigned)m->client_id);
		send_msg(t, TUNNEL_ERROR, m->proto, m->client_id, "client id in use");
		t->lim.stats->conns_refused++;
		return;
	}
	conn_table_forget_closed(t, m->client_id);
	int status = m->proto == TUNNEL_TCP && t->lim.status_port != 0 &&
		     m->port == t->lim.status_port;
	if (!status && !allow_match(t->lim.allow, m->proto, m->port)) {
		log_warn("connect refused id=%u proto=%s port=%u reason=\"port not allowed\"",
			 (unsigned)m->client_id, m->proto == TUNNEL_UDP ? "udp" : "tcp", (unsigned)m->port);
		send_msg(t, TUNNEL_ERROR, m->proto, m->client_id, "port not allowed");
		t->lim.stats->conns_refused++;
		conn_table_remember_closed(t, m->client_id);
		return;
	}
	if (t->live >= t->lim.max_conns) {
		log_warn("connect refused id=%u reason=\"too many connections\" max=%zu",
			 (unsigned)m->client_id, t->lim.max_conns);
		send_msg(t, TUNNEL_ERROR, m->proto, m->client_id, "too many connections");
		t->lim.stats->conns_refused++;
		return;
	}
	if (m->proto == TUNNEL_UDP && t->udp >= t->lim.max_udp) {
		log_warn("connect refused id=%u reason=\"too many UDP connections\" max=%zu",
			 (unsigned)m->client_id, t->lim.max_udp);
		send_msg(t, TUNNEL_ERROR, m->proto, m->client_id, "too many UDP connections");
		t->lim.stats->conns_refused++;
		return;
	}
	fd = status ? t->lim.status_open(t->lim.status_ctx, now)
		    : net_connect_local(m->proto == TUNNEL_UDP ? SOCK_DGRAM : SOCK_STREAM, m->port);
	if (fd < 0) {
		t->lim.stats->conns_errored++;
		net_reason(errno, why, sizeof(why));
		log_info("connect failed id=%u proto=%s port=%u reason=\"%s\"", (unsigned)m->client_id,
			 m->proto == TUNNEL_UDP ? "udp" : "tcp", (unsigned)m->port, why);
		send_msg(t, TUNNEL_ERROR, m->proto, m->client_id, why);
		conn_table_remember_closed(t, m->client_id);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c != NULL) {
		c->node.id = m->client_id;
		c->proto = m->proto;
		c->fd = fd;
	}
	if (c == NULL || conn_table_add(t, c) != 0) {
		free(c);
		close(fd);
		send_msg(t, TUNNEL_ERROR, m->proto, m->client_id, "out of memory");
		t->lim.stats->conns_errored++;
		return;
	}
	c->port = m->port;
	c->last_ms = now;
	c->created_ms = now;
	if (c->proto == TUNNEL_UDP) {
		c->state = CONN_OPEN; /* a UDP connect completes at once */
		send_msg(t, TUNNEL_CONNECTED, c->proto, c->node.id, NULL);
		t->lim.stats->conns_opened++;
		log_info("conn open id=%u proto=udp port=%u", (unsigned)c->node.id, (unsigned)c->port);
	} else {
		c->state = CONN_CONNECTING;
		c->deadline_ms = now + t->lim.connect_timeout_ms;
		log_debug("conn connecting id=%u proto=tcp port=%u", (unsigned)c->node.id, (unsigned)c->port);
	}
	interest(t, c);
	sync_timed(t, c);
}

void conn_on_data(struct conn_table *t, const struct tunnel_msg *m, uint64_t now)
{
	struct conn *c = conn_table_find(t, m->client_id);
	size_t off = 0;

	if (c == NULL) {
		if (!conn_table_recently_closed(t, m->client_id)) {
			log_debug("data for unknown id=%u: answering CLOSE", (unsigned)m->client_id);
			send_msg(t, TUNNEL_CLOSE, m->proto, m->client_id, NULL);
			conn_table_remember_closed(t, m->client_id);
		}
		return;
	}
	if (m->payload_len == 0 && c->proto == TUNNEL_TCP) {
		return;
	}
	c->last_ms = now;
	c->bytes_in += m->payload_len;
	t->lim.stats->bytes_from_runner += m->payload_len;
	if (c->state == CONN_OPEN && c->q.bytes == 0) {
		/* Nothing queued: write through, queue only what is left. */
		ssize_t n = sock_send(c, m->payload, m->payload_len);
		if (n < 0 && !would_block(errno)) {
			char why[64];
			finish(t, c, TUNNEL_CLOSE, net_reason(errno, why, sizeof(why)));
			return;
		}
		off = n > 0 ? (size_t)n : 0;
		if (n >= 0 && off == m->payload_len) {
			return;
		}
	}
	if (outq_push(&c->q, m->payload + off, m->payload_len - off) != 0) {
		finish(t, c, TUNNEL_ERROR, "out of memory");
		return;
	}
	update_mark(t, c, now);
}

static void start_linger(struct conn_table *t, struct conn *c, uint64_t now);

void conn_on_close(struct conn_table *t, const struct tunnel_msg *m, uint64_t now)
{
	struct conn *c = conn_table_find(t, m->client_id);

	if (c == NULL) {
		return;
	}
	log_debug("close from runner id=%u queued=%zu", (unsigned)c->node.id, c->q.bytes);
	conn_table_detach(t, c); /* the id may be reused by a new CONNECT at once */
	if (c->state == CONN_OPEN || (c->state == CONN_CONNECTING && c->q.bytes > 0)) {
		/* Connecting with bytes queued: they are delivered once the
		 * connect completes (connect_done moves on to DRAINING). */
		if (c->state == CONN_OPEN) {
			c->state = CONN_DRAINING;
			c->deadline_ms = 0;
			set_readable(t, c, 0); /* input is no longer forwarded */
			sync_timed(t, c);
			if (c->q.bytes == 0) {
				start_linger(t, c, now);
			}
		}
		return;
	}
	finish(t, c, 0, "closed by runner");
}

/* ---- sockets ---- */

/* Start the orderly end of a drained TCP connection: shut our write side
 * and read until the service closes, so unread input cannot turn our
 * close into a reset that loses bytes already written. */
static void start_linger(struct conn_table *t, struct conn *c, uint64_t now)
{
	if (c->proto == TUNNEL_UDP || shutdown(c->fd, SHUT_WR) != 0) {
		finish(t, c, 0, "drained");
		return;
	}
	c->state = CONN_LINGER;
	c->deadline_ms = now + TC_CLOSE_WAIT_MS;
	interest(t, c);
	sync_timed(t, c);
}

static ssize_t queue_send(void *ctx, const uint8_t *p, size_t n)
{
	return sock_send(ctx, p, n);
}

/* Write queued chunks until the socket pushes back. */
static void flush_one(struct conn_table *t, struct conn *c, uint64_t now)
{
	ssize_t n = outq_flush(&c->q, queue_send, c);

	if (n < 0) {
		char why[64];
		finish(t, c, TUNNEL_CLOSE, net_reason(errno, why, sizeof(why)));
		return;
	}
	if (n > 0) {
		c->last_ms = now;
	}
	update_mark(t, c, now);
	if (c->state == CONN_DRAINING && c->q.bytes == 0) {
		start_linger(t, c, now);
	}
}

static void connect_done(struct conn_table *t, struct conn *c, uint64_t now)
{
	int err = net_connect_result(c->fd);
	char why[64];

	if (err != 0) {
		net_reason(err, why, sizeof(why));
		log_info("connect failed id=%u proto=tcp port=%u reason=\"%s\"", (unsigned)c->node.id,
			 (unsigned)c->port, why);
		finish(t, c, TUNNEL_ERROR, why);
		t->lim.stats->conns_errored++;
		return;
	}
	log_info("conn open id=%u proto=tcp port=%u", (unsigned)c->node.id, (unsigned)c->port);
	if (c->addressable) {
		send_msg(t, TUNNEL_CONNECTED, c->proto, c->node.id, NULL);
		t->lim.stats->conns_opened++;
		c->state = CONN_OPEN;
	} else {
		c->state = CONN_DRAINING; /* closed by the runner while connecting */
	}
	c->deadline_ms = 0;
	sync_timed(t, c);
	flush_one(t, c, now);
}

/* Poll reported rev for c. */
static void on_events(struct conn_table *t, struct conn *c, short rev, uint64_t now)
{
	if (c->state == CONN_CONNECTING) {
		connect_done(t, c, now);
		return;
	}
	if (c->state == CONN_LINGER) {
		/* An error reported by poll ends it too: what recv says may not
		 * clear it, and poll would report it again at once. */
		char sink[4096];
		ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
		if (n == 0 || (n < 0 && !would_block(errno)) || (rev & POLLERR)) {
			finish(t, c, 0, "drained");
		}
		return;
	}
	if ((rev & (POLLIN | POLLHUP | POLLERR)) && c->state == CONN_OPEN && !c->readable) {
		set_readable(t, c, 1); /* read (or learn EOF/error) in conn_read_one */
	}
	if ((rev & (POLLOUT | POLLHUP | POLLERR)) && c->q.bytes > 0) {
		flush_one(t, c, now);
	}
}

void conn_poll_done(struct conn_table *t, size_t ready, uint64_t now)
{
	struct pollset *ps = t->ps;

	for (size_t i = t->first_slot; i < ps->n && ready > 0; i++) {
		short rev = ps->pfd[i].revents;
		struct conn *c = ps->owner[i];

		if (rev == 0) {
			continue;
		}
		ready--;
		ps->pfd[i].revents = 0;
		if (c->state != CONN_DONE) {
			on_events(t, c, rev, now);
		}
	}
}

int conn_read_one(struct conn_table *t, uint64_t now)
{
	struct list *l = list_first(&t->ready);
	struct conn *c;
	uint8_t *buf;
	ssize_t n;

	if (l == NULL) {
		return 0;
	}
	c = list_entry(l, struct conn, ready);
	buf = t->sink.data_begin(t->sink.ctx, TUNNEL_HDR_LEN + TC_DATA_READ);
	if (buf == NULL) {
		return 0;
	}
	n = recv(c->fd, buf + TUNNEL_HDR_LEN, TC_DATA_READ, 0);
	if (n < 0 && would_block(errno)) {
		set_readable(t, c, 0);
		return 1;
	}
	if (n < 0 && c->proto == TUNNEL_UDP && errno == ECONNREFUSED) {
		/* ICMP port unreachable for an earlier datagram. */
		log_debug("udp service unreachable id=%u port=%u", (unsigned)c->node.id, (unsigned)c->port);
		set_readable(t, c, 0);
		return 1;
	}
	if (n < 0) {
		char why[64];
		finish(t, c, TUNNEL_CLOSE, net_reason(errno, why, sizeof(why)));
		return 1;
	}
	if (n == 0 && c->proto == TUNNEL_TCP) {
		finish(t, c, TUNNEL_CLOSE, "local end closed");
		return 1;
	}
	tunnel_header(buf, TUNNEL_DATA, c->proto, c->node.id, 0);
	t->sink.data_end(t->sink.ctx, TUNNEL_HDR_LEN + (size_t)n);
	c->last_ms = now;
	c->bytes_out += (size_t)n;
	t->lim.stats->bytes_to_runner += (size_t)n;
	log_trace("data to runner id=%u len=%zd", (unsigned)c->node.id, n);
	/* A full read says more is waiting; a short one that the socket is
	 * drained (poll will tell). A datagram socket may hold more. */
	set_readable(t, c, c->proto == TUNNEL_UDP || (size_t)n == TC_DATA_READ);
	return 1;
}

static void lower(uint64_t *next, uint64_t when)
{
	if (when != 0 && when < *next) {
		*next = when;
	}
}

/* c's deadlines: act on those passed, lower *next to the others. */
static void check_timers(struct conn_table *t, struct conn *c, uint64_t now, uint64_t *next)
{
	switch (c->state) {
	case CONN_CONNECTING:
		if (now >= c->deadline_ms) {
			log_info("connect failed id=%u proto=tcp port=%u reason=\"connection timed out\"",
				 (unsigned)c->node.id, (unsigned)c->port);
			finish(t, c, TUNNEL_ERROR, "connection timed out");
			t->lim.stats->conns_errored++;
			return;
		}
		lower(next, c->deadline_ms);
		break;
	case CONN_LINGER:
		if (now >= c->deadline_ms) {
			finish(t, c, 0, "linger timeout");
			return;
		}
		lower(next, c->deadline_ms);
		break;
	case CONN_OPEN:
		if (c->proto == TUNNEL_UDP) {
			uint64_t idle = c->last_ms + t->lim.udp_idle_ms;
			if (now >= idle) {
				log_info("udp idle id=%u port=%u", (unsigned)c->node.id, (unsigned)c->port);
				finish(t, c, TUNNEL_CLOSE, "idle");
				return;
			}
			lower(next, idle);
		}
		break;
	case CONN_DRAINING:
	case CONN_DONE:
		break;
	}
	if (c->state != CONN_DONE && c->full_since_ms != 0) {
		uint64_t stall = c->full_since_ms + t->lim.stall_timeout_ms;
		if (now >= stall) {
			log_warn("local service stalled id=%u port=%u queued=%zu", (unsigned)c->node.id,
				 (unsigned)c->port, c->q.bytes);
			finish(t, c, TUNNEL_ERROR, "local service stalled");
			t->lim.stats->conns_errored++;
			return;
		}
		lower(next, stall);
	}
}

void conn_timers(struct conn_table *t, uint64_t now, uint64_t *next)
{
	struct list *l = t->timed.next;

	while (l != &t->timed) {
		struct list *following = l->next; /* finish() unlinks l only */
		check_timers(t, list_entry(l, struct conn, timed), now, next);
		l = following;
	}
}

