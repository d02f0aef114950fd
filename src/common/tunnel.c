#include "tunnel.h"

#include <string.h>

enum tunnel_err tunnel_parse(const uint8_t *p, size_t len, struct tunnel_msg *m)
{
	if (len < TUNNEL_HDR_LEN) {
		return TUNNEL_ERR_SHORT;
	}
	m->type = p[0];
	m->proto = p[1];
	m->client_id = (uint32_t)p[2] << 24 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];
	m->port = (uint16_t)(p[6] << 8 | p[7]);
	m->payload = p + TUNNEL_HDR_LEN;
	m->payload_len = len - TUNNEL_HDR_LEN;
	if (m->type < TUNNEL_CONNECT || m->type > TUNNEL_PONG) {
		return TUNNEL_ERR_TYPE;
	}
	if (m->proto != TUNNEL_TCP && m->proto != TUNNEL_UDP) {
		return TUNNEL_ERR_PROTO;
	}
	return TUNNEL_OK;
}

void tunnel_header(uint8_t out[TUNNEL_HDR_LEN], uint8_t type, uint8_t proto,
		   uint32_t client_id, uint16_t port)
{
	out[0] = type;
	out[1] = proto;
	out[2] = (uint8_t)(client_id >> 24);
	out[3] = (uint8_t)(client_id >> 16);
	out[4] = (uint8_t)(client_id >> 8);
	out[5] = (uint8_t)client_id;
	out[6] = (uint8_t)(port >> 8);
	out[7] = (uint8_t)port;
}

const char *tunnel_strerror(enum tunnel_err e)
{
	switch (e) {
	case TUNNEL_OK:
		return "ok";
	case TUNNEL_ERR_SHORT:
		return "message shorter than 8 bytes";
	case TUNNEL_ERR_TYPE:
		return "unknown message type";
	case TUNNEL_ERR_PROTO:
		return "unknown proto";
	}
	return "?";
}

const char *tunnel_type_name(uint8_t type)
{
	static const char *const names[] = {"?", "CONNECT", "CONNECTED", "DATA",
					    "CLOSE", "ERROR", "PING", "PONG"};
	return type <= TUNNEL_PONG ? names[type] : "?";
}

int tunnel_take_header(uint8_t hdr[TUNNEL_HDR_LEN], size_t *have, const uint8_t **p, size_t *n)
{
	size_t k = TUNNEL_HDR_LEN - *have;

	if (k == 0) {
		return 0;
	}
	if (k > *n) {
		k = *n;
	}
	memcpy(hdr + *have, *p, k);
	*have += k;
	*p += k;
	*n -= k;
	return *have == TUNNEL_HDR_LEN;
}
