/* tunnel: the runner's message header codec. Pure functions on bytes. */
#ifndef TUNNEL_H
#define TUNNEL_H

#include <stddef.h>
#include <stdint.h>

#define TUNNEL_HDR_LEN 8

enum tunnel_type {
	TUNNEL_CONNECT = 0x01,   /* runner -> agent: open proto to 127.0.0.1:port */
	TUNNEL_CONNECTED = 0x02, /* agent -> runner: local connect succeeded */
	TUNNEL_DATA = 0x03,      /* both: payload bytes */
	TUNNEL_CLOSE = 0x04,     /* both: tear down client_id */
	TUNNEL_ERROR = 0x05,     /* agent -> runner: connect failed, payload = text */
	TUNNEL_PING = 0x06,      /* runner -> agent */
	TUNNEL_PONG = 0x07,      /* agent -> runner */
};

enum tunnel_proto { TUNNEL_TCP = 0, TUNNEL_UDP = 1 };

enum tunnel_err {
	TUNNEL_OK = 0,
	TUNNEL_ERR_SHORT = -1, /* fewer than 8 bytes */
	TUNNEL_ERR_TYPE = -2,  /* unknown message type */
	TUNNEL_ERR_PROTO = -3, /* unknown proto */
};

struct tunnel_msg {
	uint8_t type;
	uint8_t proto;
	uint32_t client_id;
	uint16_t port;
	const uint8_t *payload; /* points into the parsed bytes */
	size_t payload_len;
};

/* Parse one whole message. Header fields are filled whenever 8 bytes are
 * there, even when the type or proto is rejected (for the log line). */
/* A header as a message streams in: move bytes from *p (*n of them) into
 * hdr (*have so far) up to TUNNEL_HDR_LEN, advancing *p and *n. 1 when
 * this call completed it, else 0. */
int tunnel_take_header(uint8_t hdr[TUNNEL_HDR_LEN], size_t *have, const uint8_t **p, size_t *n);
enum tunnel_err tunnel_parse(const uint8_t *p, size_t len, struct tunnel_msg *m);
/* Write the 8-byte header into out. */
void tunnel_header(uint8_t out[TUNNEL_HDR_LEN], uint8_t type, uint8_t proto,
		   uint32_t client_id, uint16_t port);
const char *tunnel_strerror(enum tunnel_err e);
const char *tunnel_type_name(uint8_t type);

#endif
