#include "tunnel.h"
#include "unit.h"

TEST(tunnel_header_roundtrip)
{
	uint8_t b[TUNNEL_HDR_LEN + 3];
	struct tunnel_msg m;

	tunnel_header(b, TUNNEL_DATA, TUNNEL_UDP, 0xA1B2C3D4u, 0xBEEF);
	CHECK_MEM(b, "\x03\x01\xA1\xB2\xC3\xD4\xBE\xEF", 8);
	b[8] = 'x';
	b[9] = 'y';
	b[10] = 'z';
	CHECK(tunnel_parse(b, sizeof(b), &m) == TUNNEL_OK);
	CHECK(m.type == TUNNEL_DATA && m.proto == TUNNEL_UDP);
	CHECK(m.client_id == 0xA1B2C3D4u && m.port == 0xBEEF);
	CHECK(m.payload_len == 3 && m.payload == b + 8);
}

TEST(tunnel_parse_rejects_short_unknown_type_and_proto)
{
	uint8_t b[TUNNEL_HDR_LEN] = {TUNNEL_PING, 0, 0, 0, 0, 7, 0, 0};
	struct tunnel_msg m;

	for (size_t n = 0; n < TUNNEL_HDR_LEN; n++) {
		CHECK(tunnel_parse(b, n, &m) == TUNNEL_ERR_SHORT);
	}
	CHECK(tunnel_parse(b, 8, &m) == TUNNEL_OK && m.payload_len == 0 && m.client_id == 7);
	b[0] = 0;
	CHECK(tunnel_parse(b, 8, &m) == TUNNEL_ERR_TYPE);
	b[0] = 8;
	CHECK(tunnel_parse(b, 8, &m) == TUNNEL_ERR_TYPE);
	b[0] = TUNNEL_CONNECT;
	b[1] = 2;
	CHECK(tunnel_parse(b, 8, &m) == TUNNEL_ERR_PROTO);
	CHECK(m.client_id == 7); /* header still filled for the log line */
}

TEST(tunnel_every_type_parses)
{
	uint8_t b[TUNNEL_HDR_LEN];
	struct tunnel_msg m;

	for (uint8_t t = TUNNEL_CONNECT; t <= TUNNEL_PONG; t++) {
		tunnel_header(b, t, TUNNEL_TCP, 1, 2);
		CHECK(tunnel_parse(b, sizeof(b), &m) == TUNNEL_OK && m.type == t);
		CHECK(tunnel_type_name(t)[0] != '?');
	}
}

TEST(tunnel_header_collected_in_pieces)
{
	static const uint8_t msg[] = {3, 0, 0, 0, 0, 9, 0, 0, 'x', 'y'};
	uint8_t hdr[TUNNEL_HDR_LEN];
	size_t have = 0;
	const uint8_t *p = msg;
	size_t n = 3;

	CHECK(tunnel_take_header(hdr, &have, &p, &n) == 0 && have == 3 && n == 0 && p == msg + 3);
	n = sizeof(msg) - 3;
	CHECK(tunnel_take_header(hdr, &have, &p, &n) == 1 && have == 8 && n == 2 && p == msg + 8);
	CHECK(memcmp(hdr, msg, TUNNEL_HDR_LEN) == 0);
	CHECK(tunnel_take_header(hdr, &have, &p, &n) == 0 && n == 2); /* whole: takes nothing */
}
