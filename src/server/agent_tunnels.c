/* agent_tunnels: the tunnel messages between the server and one agent.
 * Out: CONNECT for a new public connection or flow, DATA framed straight
 * into the WebSocket's output, CLOSE. In: the agent's messages as ws
 * streams them, header first, DATA handed to its public connection as it
 * arrives (a datagram is kept whole until its message ends). */
#include "agent_int.h"

#include <string.h>

#include "expose.h"
#include "net.h"
#include "public.h"

/* ---- messages from the agent ---- */

static void rx_start(void *user)
{
	struct agent *a = user;

	a->hdr_len = 0;
	a->msg_len = 0;
	a->err = TUNNEL_ERR_SHORT;
	a->target = NULL;
	a->text_len = 0;
	a->oversize = 0;
	buf_consume(&a->udp, buf_len(&a->udp));
}

static void on_header(struct agent *a)
{
	struct idmap_node *n;

	a->err = tunnel_parse(a->hdr, TUNNEL_HDR_LEN, &a->m);
	if (a->err != TUNNEL_OK) {
		return;
	}
	n = idmap_find(&a->ends, a->m.client_id);
	a->target = n != NULL ? list_entry(n, struct tunnel_end, node) : NULL;
	if (a->target != NULL && a->target->proto != a->m.proto) {
		a->target = NULL; /* an id of the other proto */
	}
}

static void rx_data(void *user, const uint8_t *p, size_t n)
{
	struct agent *a = user;

	a->msg_len += n;
	if (tunnel_take_header(a->hdr, &a->hdr_len, &p, &n)) {
		on_header(a);
	}
	if (n == 0 || a->err != TUNNEL_OK) {
		return;
	}
	if (a->m.type == TUNNEL_ERROR) {
		size_t k = TC_ERROR_TEXT_MAX - a->text_len < n ? TC_ERROR_TEXT_MAX - a->text_len : n;
		memcpy(a->text + a->text_len, p, k);
		a->text_len += k;
		return;
	}
	if (a->m.type != TUNNEL_DATA || a->target == NULL) {
		return;
	}
	a->bytes_in += n;
	a->srv->n.bytes_from_agents += n;
	if (a->target->proto == TUNNEL_TCP) {
		public_on_data(a->target, p, n, net_now_ms());
	} else if (!a->oversize && buf_append(&a->udp, p, n) != 0) {
		a->oversize = 1; /* one datagram must stay whole */
	}
}

static void rx_end(void *user)
{
	struct agent *a = user;
	struct tunnel_end *e = a->target;
	uint64_t now = net_now_ms();

	if (a->err != TUNNEL_OK) {
		log_warn("message dropped id=%s len=%zu type=%u reason=\"%s\"", a->id, a->msg_len,
			 a->hdr_len > 0 ? (unsigned)a->hdr[0] : 0u, tunnel_strerror(a->err));
		return;
	}
	switch (a->m.type) {
	case TUNNEL_CONNECTED:
		if (e != NULL && e->proto == TUNNEL_TCP) {
			public_on_connected(e);
		}
		break;
	case TUNNEL_DATA:
		if (e == NULL) {
			log_debug("data for unknown id=%u agent=%s", (unsigned)a->m.client_id, a->id);
		} else if (e->proto == TUNNEL_UDP && !a->oversize) {
			size_t len;
			const uint8_t *d = buf_data(&a->udp, &len);
			expose_flow_send(e, d, len);
		}
		break;
	case TUNNEL_CLOSE:
	case TUNNEL_ERROR:
		if (e == NULL) {
			break;
		}
		a->text[a->text_len] = '\0';
		idmap_del(&a->ends, &e->node);
		if (e->proto == TUNNEL_TCP) {
			public_on_close(e, a->m.type == TUNNEL_ERROR ? a->text : NULL, now);
		} else {
			expose_flow_gone(e);
		}
		break;
	default:
		log_debug("message ignored type=%s id=%u agent=%s", tunnel_type_name(a->m.type),
			  (unsigned)a->m.client_id, a->id);
		break;
	}
}

const struct ws_rx agent_rx = {rx_start, rx_data, rx_end};

/* ---- messages to the agent ---- */

static void send_ctl(struct agent *a, uint8_t type, uint8_t proto, uint32_t id, uint16_t port)
{
	uint8_t msg[TUNNEL_HDR_LEN];

	tunnel_header(msg, type, proto, id, port);
	if (ws_send_binary(&a->ws, msg, sizeof(msg)) != 0) {
		log_debug("message dropped: tunnel closing type=%s agent=%s", tunnel_type_name(type), a->id);
	}
	agent_wake(a); /* queued outside a pump, it goes out with the next */
}

int agent_open_tunnel(struct agent *a, struct tunnel_end *e, uint8_t proto, uint16_t port)
{
	if (a->state != AG_OPEN || a->ends.n >= a->srv->cfg.max_conns) {
		return -1;
	}
	/* Ids are the server's to choose: the next one not in use. */
	do {
		a->next_id++;
	} while (a->next_id == 0 || idmap_find(&a->ends, a->next_id) != NULL);
	e->node.id = a->next_id;
	e->proto = proto;
	if (idmap_add(&a->ends, &e->node) != 0) {
		return -1;
	}
	send_ctl(a, TUNNEL_CONNECT, proto, e->node.id, port);
	return 0;
}

void agent_close_tunnel(struct agent *a, struct tunnel_end *e, int send_close)
{
	if (a->target == e) {
		a->target = NULL; /* a message for it may be half received */
	}
	if (idmap_find(&a->ends, e->node.id) == &e->node) {
		idmap_del(&a->ends, &e->node);
	}
	if (send_close && a->state == AG_OPEN) {
		send_ctl(a, TUNNEL_CLOSE, e->proto, e->node.id, 0);
	}
}

void agent_send_close(struct agent *a, struct tunnel_end *e)
{
	if (a->state == AG_OPEN) {
		send_ctl(a, TUNNEL_CLOSE, e->proto, e->node.id, 0);
	}
}

struct list *agent_ready_list(struct agent *a)
{
	return &a->ready;
}

uint8_t *agent_data_begin(struct agent *a, size_t max)
{
	if (a->state != AG_OPEN || buf_len(&a->ws.out) + transport_pending_out(&a->tr) >= TC_OUT_HWM) {
		return NULL;
	}
	/* Messages queued before (a CONNECT) are framed first: DATA follows
	 * them and need not wait for the next pump. */
	if (ws_queued(&a->ws) > 0 && ws_frame(&a->ws) < 0) {
		return NULL;
	}
	a->data_at = ws_data_begin(&a->ws, TUNNEL_HDR_LEN + max);
	return a->data_at != NULL ? a->data_at + TUNNEL_HDR_LEN : NULL;
}

void agent_data_end(struct agent *a, const struct tunnel_end *e, size_t len)
{
	tunnel_header(a->data_at, TUNNEL_DATA, e->proto, e->node.id, 0);
	ws_data_end(&a->ws, TUNNEL_HDR_LEN + len);
	a->bytes_out += len;
	a->srv->n.bytes_to_agents += len;
}

void agent_wake(struct agent *a)
{
	if (!list_linked(&a->active) && a->state != AG_DONE) {
		list_add_tail(&a->srv->active, &a->active);
	}
}

void agent_mark(struct agent *a, int up)
{
	if (up) {
		a->over_hwm++;
	} else if (a->over_hwm > 0 && --a->over_hwm == 0) {
		agent_wake(a); /* read its WebSocket again */
	}
}
