#include "ws.h"
#include "unit.h"

#include <stdlib.h>

static void ref_mask(uint8_t *p, size_t n, const uint8_t key[4])
{
	for (size_t i = 0; i < n; i++) {
		p[i] ^= key[i % 4];
	}
}

TEST(ws_mask_matches_bytewise_at_every_alignment)
{
	static const uint8_t key[4] = {0x12, 0x34, 0xab, 0xcd};
	uint8_t a[300];
	uint8_t b[300];

	for (size_t off = 0; off < 9; off++) {
		for (size_t n = 0; n < 280; n += 7) {
			for (size_t i = 0; i < sizeof(a); i++) {
				a[i] = b[i] = (uint8_t)(i * 31 + 7);
			}
			ws_mask(a + off, n, key);
			ref_mask(b + off, n, key);
			CHECK_MEM(a, b, sizeof(a));
		}
	}
}

static const struct ws_rx no_rx;

/* Decode the frame at p: payload length and where it starts. */
static size_t frame_payload(const uint8_t *p, int *masked, const uint8_t **key, size_t *len)
{
	size_t i = 2;

	*masked = (p[1] & 0x80) != 0;
	*len = p[1] & 0x7f;
	if (*len == 126) {
		*len = (size_t)p[2] << 8 | p[3];
		i = 4;
	} else if (*len == 127) {
		*len = 0;
		for (int k = 0; k < 8; k++) {
			*len = *len << 8 | p[2 + k];
		}
		i = 10;
	}
	*key = p + i;
	return *masked ? i + 4 : i;
}

static void check_frame(int server, size_t max, size_t len)
{
	struct ws w;
	uint8_t *dst;
	size_t have;
	const uint8_t *out;
	const uint8_t *key;
	size_t plen;
	int masked;

	CHECK(ws_init(&w, server, 1 << 20, &no_rx, NULL) == 0);
	dst = ws_data_begin(&w, max);
	CHECK(dst != NULL);
	if (dst == NULL) {
		ws_free(&w);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		dst[i] = (uint8_t)i;
	}
	ws_data_end(&w, len);
	out = buf_data(&w.out, &have);
	size_t hdr = frame_payload(out, &masked, &key, &plen);
	CHECK(out[0] == 0x82);
	CHECK(masked == !server);
	CHECK(plen == len);
	CHECK(have == hdr + len);
	uint8_t *copy = malloc(len + 1);
	memcpy(copy, out + hdr, len);
	if (masked) {
		ref_mask(copy, len, key);
	}
	for (size_t i = 0; i < len; i++) {
		if (copy[i] != (uint8_t)i) {
			CHECK(copy[i] == (uint8_t)i);
			break;
		}
	}
	free(copy);
	ws_free(&w);
}

TEST(ws_data_frames_every_length_form)
{
	for (int server = 0; server < 2; server++) {
		check_frame(server, 65527, 0);
		check_frame(server, 65527, 125);
		check_frame(server, 65527, 126);
		check_frame(server, 65527, 65527);
		check_frame(server, 65544, 65544);
		check_frame(server, 65544, 65535);
		check_frame(server, 65544, 1);
		check_frame(server, 10, 3);
	}
}

TEST(ws_data_waits_behind_queued_frames)
{
	struct ws w;
	static const uint8_t msg[8] = {2, 0, 0, 0, 0, 7, 0, 0};

	CHECK(ws_init(&w, 0, 1 << 20, &no_rx, NULL) == 0);
	CHECK(ws_send_binary(&w, msg, sizeof(msg)) == 0);
	CHECK(ws_data_begin(&w, 100) == NULL); /* wslay holds a frame */
	CHECK(ws_frame(&w) == 1);
	CHECK(ws_data_begin(&w, 100) != NULL);
	ws_send_close(&w, 1000, "");
	CHECK(ws_frame(&w) == 1);
	CHECK(ws_data_begin(&w, 100) == NULL); /* nothing after our close */
	ws_free(&w);
}
