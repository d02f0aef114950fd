#include "bounds.h"
#include "log.h"
#include "unit.h"
#include "ws.h"

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

	CHECK((server ? ws_init_server(&w, 1 << 20, &no_rx, NULL) : ws_init_client(&w, 1 << 20, &no_rx, NULL)) == 0);
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
	size_t avail;
	size_t len;

	CHECK(ws_init_client(&w, 1 << 20, &no_rx, NULL) == 0);
	/* With nothing of wslay's queued, a message is framed at once. */
	CHECK(ws_send_binary(&w, msg, sizeof(msg)) == 0);
	CHECK(ws_queued(&w) == 0 && buf_len(&w.out) == 2 + 4 + sizeof(msg));
	CHECK(ws_data_begin(&w, 100) != NULL);
	/* `out` full: the message waits in wslay, and so does all after it. */
	uint8_t *p = buf_reserve(&w.out, TC_OUT_CAP, &avail);
	CHECK(p != NULL && avail > 10);
	buf_commit(&w.out, avail - 10);
	CHECK(ws_send_binary(&w, msg, sizeof(msg)) == 0 && ws_queued(&w) == 1);
	CHECK(ws_data_begin(&w, 100) == NULL); /* wslay holds a frame */
	buf_consume(&w.out, buf_len(&w.out));
	CHECK(ws_send_binary(&w, msg, sizeof(msg)) == 0 && ws_queued(&w) == 2); /* no overtaking */
	CHECK(ws_frame(&w) == 1 && ws_queued(&w) == 0);
	CHECK(buf_data(&w.out, &len) != NULL && len == 2 * (2 + 4 + sizeof(msg)));
	CHECK(ws_data_begin(&w, 100) != NULL);
	ws_send_close(&w, 1000, "");
	CHECK(ws_data_begin(&w, 100) == NULL); /* the close is queued */
	CHECK(ws_frame(&w) == 1);
	CHECK(ws_data_begin(&w, 100) == NULL); /* nothing after our close */
	CHECK(ws_send_binary(&w, msg, sizeof(msg)) == -1);
	ws_free(&w);
}

/* ---- the server side's receive path ---- */

struct got {
	uint8_t data[4096];
	size_t len;
	size_t msgs;
	size_t open;
};

static void got_start(void *user)
{
	struct got *g = user;

	g->open++;
}

static void got_data(void *user, const uint8_t *p, size_t n)
{
	struct got *g = user;

	if (g->len + n <= sizeof(g->data)) {
		memcpy(g->data + g->len, p, n);
	}
	g->len += n;
}

static void got_end(void *user)
{
	struct got *g = user;

	g->msgs++;
	g->open--;
}

static const struct ws_rx got_rx = {got_start, got_data, got_end};

/* A masked frame by hand (key 1,2,3,4). */
static size_t hand_frame(uint8_t *out, int fin, int op, const uint8_t *p, size_t n)
{
	static const uint8_t key[4] = {1, 2, 3, 4};
	size_t i = 0;

	out[i++] = (uint8_t)((fin ? 0x80 : 0) | op);
	out[i++] = (uint8_t)(0x80 | n);
	memcpy(out + i, key, 4);
	i += 4;
	for (size_t k = 0; k < n; k++) {
		out[i + k] = p[k] ^ key[k & 3];
	}
	return i + n;
}

TEST(ws_server_receives_fast_and_wslay_frames_in_any_split)
{
	static const uint8_t a[] = "fast-path message";
	static const uint8_t b1[] = "frag";
	static const uint8_t b2[] = "mented";
	uint8_t wire[4096];
	size_t n = 0;
	struct ws c;

	log_set_level(LOG_WARN); /* the text frame is logged at info */
	/* A client frames: a fast-path message, a ping, a message in two
	 * fragments with a ping between them, a text message, a fast one. */
	CHECK(ws_init_client(&c, 1 << 20, &no_rx, NULL) == 0);
	uint8_t *dst = ws_data_begin(&c, sizeof(a));
	memcpy(dst, a, sizeof(a));
	ws_data_end(&c, sizeof(a));
	size_t len;
	const uint8_t *out = buf_data(&c.out, &len);
	memcpy(wire, out, len);
	n = len;
	n += hand_frame(wire + n, 1, 0x9, (const uint8_t *)"p1", 2);
	n += hand_frame(wire + n, 0, 0x2, b1, sizeof(b1) - 1);
	n += hand_frame(wire + n, 1, 0x9, (const uint8_t *)"p2", 2);
	n += hand_frame(wire + n, 1, 0x0, b2, sizeof(b2));
	n += hand_frame(wire + n, 1, 0x1, (const uint8_t *)"text", 4);
	memcpy(wire + n, wire, len); /* the first frame again */
	n += len;
	ws_free(&c);

	for (size_t step = 1; step <= 9; step++) {
		struct ws s;
		struct got g;
		memset(&g, 0, sizeof(g));
		CHECK(ws_init_server(&s, 1 << 20, &got_rx, &g) == 0);
		for (size_t off = 0; off < n; off += step) {
			size_t k = n - off < step ? n - off : step;
			CHECK(buf_append(&s.in, wire + off, k) == 0);
			CHECK(ws_recv(&s) == 0);
		}
		CHECK(g.msgs == 3 && g.open == 0);
		CHECK(g.len == 2 * sizeof(a) + sizeof(b1) - 1 + sizeof(b2));
		CHECK_MEM(g.data, a, sizeof(a));
		CHECK_MEM(g.data + sizeof(a), "fragmented", sizeof("fragmented"));
		CHECK_MEM(g.data + sizeof(a) + sizeof("fragmented"), a, sizeof(a));
		/* Two pongs, framed at once (unmasked, the server's). */
		static const uint8_t pongs[] = {0x8a, 2, 'p', '1', 0x8a, 2, 'p', '2'};
		size_t olen;
		const uint8_t *o = buf_data(&s.out, &olen);
		CHECK(ws_queued(&s) == 0 && olen == sizeof(pongs) && o != NULL);
		CHECK_MEM(o, pongs, sizeof(pongs));
		CHECK(buf_len(&s.in) == 0);
		ws_free(&s);
	}
	log_set_level(LOG_INFO);
}

TEST(ws_server_makes_wslay_only_when_needed)
{
	static const uint8_t frag[] = "half";
	uint8_t wire[64];
	struct ws s;
	struct got g;
	size_t len;

	memset(&g, 0, sizeof(g));
	CHECK(ws_init_server(&s, 1 << 20, &got_rx, &g) == 0);
	CHECK(ws_send_ping(&s) == 0 && s.ctx == NULL);
	CHECK(buf_data(&s.out, &len) != NULL && len == 4 && s.out.data[0] == 0x89);
	CHECK(buf_append(&s.in, wire, hand_frame(wire, 1, 0xa, (const uint8_t *)"tc", 2)) == 0);
	CHECK(buf_append(&s.in, wire, hand_frame(wire, 1, 0x9, NULL, 0)) == 0);
	CHECK(ws_recv(&s) == 0 && s.ctx == NULL && buf_len(&s.in) == 0);
	/* A fragment: wslay's from here, and its state must stay. */
	CHECK(buf_append(&s.in, wire, hand_frame(wire, 0, 0x2, frag, 4)) == 0);
	CHECK(ws_recv(&s) == 0 && s.ctx != NULL);
	ws_trim(&s);
	CHECK(s.ctx != NULL); /* a message is half received */
	CHECK(buf_append(&s.in, wire, hand_frame(wire, 1, 0x0, frag, 4)) == 0);
	CHECK(ws_recv(&s) == 0 && g.msgs == 1 && g.len == 8);
	ws_trim(&s);
	CHECK(s.ctx == NULL); /* at rest again */
	CHECK(buf_append(&s.in, wire, hand_frame(wire, 1, 0x8, (const uint8_t *)"\x03\xe8", 2)) ==
	      0);
	CHECK(ws_recv(&s) == 0);
	uint16_t code = 0;
	CHECK(ws_close_received(&s, &code) && code == 1000);
	ws_trim(&s);
	CHECK(s.ctx != NULL && ws_queued(&s) == 1); /* the close reply waits */
	ws_free(&s);
}

TEST(ws_server_refuses_unmasked_frames)
{
	struct ws s;
	struct got g;
	static const uint8_t bad[] = {0x82, 0x03, 'a', 'b', 'c'};

	memset(&g, 0, sizeof(g));
	CHECK(ws_init_server(&s, 1 << 20, &got_rx, &g) == 0);
	CHECK(buf_append(&s.in, bad, sizeof(bad)) == 0);
	CHECK(ws_recv(&s) == 0);
	CHECK(g.msgs == 0 && g.len == 0);
	CHECK(ws_frame(&s) == 1); /* wslay answers with close 1002 */
	CHECK(ws_close_code_sent(&s) == 1002);
	ws_free(&s);
}

/* An unmasked (server's) frame by hand, payload under 126 bytes. */
static size_t plain_frame(uint8_t *out, int fin, int op, const uint8_t *p, size_t n)
{
	out[0] = (uint8_t)((fin ? 0x80 : 0) | op);
	out[1] = (uint8_t)n;
	memcpy(out + 2, p, n);
	return 2 + n;
}

TEST(ws_client_receives_fast_and_wslay_frames_in_any_split)
{
	static const uint8_t a[300] = {7, 1, 2, 3};
	uint8_t wire[1024];
	size_t n = 0, len;
	struct ws srv;

	/* A server frames a fast message; then a ping, two fragments around
	 * a ping, and the fast message again, by hand. */
	CHECK(ws_init_server(&srv, 1 << 20, &no_rx, NULL) == 0);
	uint8_t *dst = ws_data_begin(&srv, sizeof(a));
	memcpy(dst, a, sizeof(a));
	ws_data_end(&srv, sizeof(a));
	const uint8_t *out = buf_data(&srv.out, &len);
	memcpy(wire, out, len);
	n = len;
	ws_free(&srv);
	n += plain_frame(wire + n, 1, 0x9, (const uint8_t *)"p1", 2);
	n += plain_frame(wire + n, 0, 0x2, (const uint8_t *)"frag", 4);
	n += plain_frame(wire + n, 1, 0x9, (const uint8_t *)"p2", 2);
	n += plain_frame(wire + n, 1, 0x0, (const uint8_t *)"ment", 4);
	memcpy(wire + n, wire, len);
	n += len;

	for (size_t step = 1; step <= 7; step += 3) {
		struct ws c;
		struct got g;
		memset(&g, 0, sizeof(g));
		CHECK(ws_init_client(&c, 1 << 20, &got_rx, &g) == 0);
		CHECK(c.ctx == NULL); /* made only for the fragments */
		for (size_t off = 0; off < n; off += step) {
			size_t k = n - off < step ? n - off : step;
			CHECK(buf_append(&c.in, wire + off, k) == 0);
			CHECK(ws_recv(&c) == 0);
		}
		CHECK(g.msgs == 3 && g.open == 0 && g.len == 2 * sizeof(a) + 8);
		CHECK_MEM(g.data, a, sizeof(a));
		CHECK_MEM(g.data + sizeof(a), "fragment", 8);
		CHECK_MEM(g.data + sizeof(a) + 8, a, sizeof(a));
		/* Two pongs, masked (the client's), whatever framed them. */
		while (ws_frame(&c) == 1) {
		}
		const uint8_t *o = buf_data(&c.out, &len);
		size_t pongs = 0;
		for (size_t i = 0; i + 8 <= len; i += 8) {
			int masked;
			const uint8_t *key;
			size_t plen;
			CHECK(o[i] == 0x8a && frame_payload(o + i, &masked, &key, &plen) == 6);
			CHECK(masked && plen == 2);
			pongs++;
		}
		CHECK(pongs == 2 && len == 16);
		ws_free(&c);
	}
}

TEST(ws_client_refuses_masked_frames)
{
	struct ws c;
	struct got g;
	uint8_t wire[32];

	memset(&g, 0, sizeof(g));
	CHECK(ws_init_client(&c, 1 << 20, &got_rx, &g) == 0);
	CHECK(buf_append(&c.in, wire, hand_frame(wire, 1, 0x2, (const uint8_t *)"abc", 3)) == 0);
	CHECK(ws_recv(&c) == 0);
	CHECK(g.msgs == 0 && g.len == 0);
	CHECK(ws_frame(&c) == 1); /* wslay answers with close 1002 */
	CHECK(ws_close_code_sent(&c) == 1002);
	ws_free(&c);
}
