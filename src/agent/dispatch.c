#include "dispatch.h"

#include <string.h>

#include "bounds.h"
#include "log.h"
#include "net.h"
#include "stats.h"

void dispatch_init(struct dispatch *d, struct conn_table *conns)
{
	memset(d, 0, sizeof(*d));
	d->conns = conns;
	buf_init(&d->stage, TC_STAGE_CAP);
}

void dispatch_free(struct dispatch *d)
{
	buf_free(&d->stage);
}

void dispatch_trim(struct dispatch *d)
{
	buf_trim(&d->stage);
}

static void hand_over(struct dispatch *d)
{
	struct tunnel_msg m = d->staged;

	if (buf_len(&d->stage) == 0) {
		return;
	}
	m.payload = buf_data(&d->stage, &m.payload_len);
	conn_on_data(d->conns, &m, net_now_ms());
	buf_consume(&d->stage, m.payload_len);
}

void dispatch_flush(struct dispatch *d)
{
	if (d->staged.proto == TUNNEL_TCP) {
		hand_over(d); /* a datagram waits for its end: it goes whole */
	}
}

static void rx_start(void *user)
{
	struct dispatch *d = user;

	d->hdr_len = 0;
	d->len = 0;
	d->err = TUNNEL_ERR_SHORT;
	d->oversize = 0;
}

/* The header is complete: staged bytes of another connection, or before
 * another kind of message, go first. */
static void on_header(struct dispatch *d)
{
	const struct tunnel_msg *m = &d->m;
	int same = d->err == TUNNEL_OK && m->type == TUNNEL_DATA && m->proto == TUNNEL_TCP &&
		   d->staged.proto == TUNNEL_TCP && m->client_id == d->staged.client_id;

	if (!same) {
		hand_over(d);
	}
	if (d->err == TUNNEL_OK && m->type == TUNNEL_DATA) {
		d->staged = *m;
	}
}

static void rx_data(void *user, const uint8_t *p, size_t n)
{
	struct dispatch *d = user;

	d->len += n;
	if (tunnel_take_header(d->hdr, &d->hdr_len, &p, &n)) {
		d->err = tunnel_parse(d->hdr, TUNNEL_HDR_LEN, &d->m);
		on_header(d);
	}
	if (d->err != TUNNEL_OK || d->m.type != TUNNEL_DATA || d->oversize || n == 0) {
		return; /* other payloads carry nothing for the agent */
	}
	if (d->m.proto == TUNNEL_UDP && buf_len(&d->stage) + n > TC_DATA_MAX) {
		d->oversize = 1; /* one datagram must stay whole */
		buf_consume(&d->stage, buf_len(&d->stage));
		return;
	}
	while (n > 0) {
		size_t avail;
		uint8_t *dst = buf_space(&d->stage, &avail);
		size_t k = avail < n ? avail : n;

		if (dst == NULL) {
			hand_over(d); /* a full stage goes out as one piece */
			continue;
		}
		memcpy(dst, p, k);
		buf_commit(&d->stage, k);
		p += k;
		n -= k;
	}
}

static void rx_end(void *user)
{
	struct dispatch *d = user;
	struct tunnel_msg *m = &d->m;
	uint64_t now = net_now_ms();

	if (d->err != TUNNEL_OK) {
		hand_over(d); /* a short message never completed a header */
		d->conns->lim.stats->msgs_dropped++;
		log_warn("message dropped len=%zu type=%u reason=\"%s\"", d->len,
			 d->hdr_len > 0 ? (unsigned)d->hdr[0] : 0u, tunnel_strerror(d->err));
		return;
	}
	log_trace("from runner type=%s id=%u proto=%u port=%u len=%zu", tunnel_type_name(m->type),
		  (unsigned)m->client_id, (unsigned)m->proto, (unsigned)m->port, d->len);
	switch (m->type) {
	case TUNNEL_CONNECT:
		conn_on_connect(d->conns, m, now);
		break;
	case TUNNEL_DATA:
		if (d->oversize) {
			d->conns->lim.stats->msgs_dropped++;
			log_warn("datagram dropped id=%u len=%zu reason=\"larger than %d bytes\"",
				 (unsigned)m->client_id, d->len - TUNNEL_HDR_LEN, TC_DATA_MAX);
		} else if (m->proto == TUNNEL_UDP) {
			hand_over(d); /* one datagram, possibly empty */
			if (d->len == TUNNEL_HDR_LEN) {
				struct tunnel_msg empty = *m;
				empty.payload = d->hdr;
				empty.payload_len = 0;
				conn_on_data(d->conns, &empty, now);
			}
		}
		break; /* TCP bytes stay staged for the next DATA of the same id */
	case TUNNEL_CLOSE:
		conn_on_close(d->conns, m, now);
		break;
	case TUNNEL_PING: {
		uint8_t pong[TUNNEL_HDR_LEN];
		tunnel_header(pong, TUNNEL_PONG, m->proto, m->client_id, 0);
		d->conns->sink.send(d->conns->sink.ctx, pong, sizeof(pong));
		break;
	}
	default:
		log_debug("message ignored type=%s id=%u", tunnel_type_name(m->type), (unsigned)m->client_id);
		break;
	}
}

const struct ws_rx dispatch_rx = {rx_start, rx_data, rx_end};
