#include "ws.h"

#include <errno.h>
#include <string.h>

#include "bounds.h"
#include "log.h"
#include "rand.h"

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
		       int flags, void *user)
{
	struct ws *w = user;
	size_t have;
	const uint8_t *p = buf_data(&w->in, &have);

	if (have > w->wslay_left) {
		have = (size_t)w->wslay_left; /* one frame at a time */
	}
	if (w->paused || have == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > have) {
		len = have;
	}
	memcpy(buf, p, len);
	buf_consume(&w->in, len);
	w->wslay_left -= len;
	return (ssize_t)len;
}

/* wslay_event_write() is used instead: framing never calls this. */
static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
		       int flags, void *user)
{
	wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	return -1;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	struct ws *w = user;

	return rand_pool_take(&w->masks, buf, len);
}

static void frame_start_cb(wslay_event_context_ptr ctx,
			   const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
	struct ws *w = user;

	/* Control frames may arrive between the fragments of a message. */
	w->in_ctrl = (arg->opcode & 0x8) != 0;
	if (w->in_ctrl) {
		return;
	}
	if (arg->opcode != WSLAY_CONTINUATION_FRAME) {
		w->msg_len = 0;
		w->in_binary = arg->opcode == WSLAY_BINARY_FRAME;
		if (w->in_binary) {
			w->rx->msg_start(w->user);
		}
	}
	/* wslay checks each frame only when it does not buffer: count the
	 * whole message here. */
	w->msg_len += arg->payload_length;
	if (w->msg_len > w->max_message && w->in_binary) {
		log_warn("%s message over %llu bytes: closing 1009", w->server ? "agent" : "runner",
			 (unsigned long long)w->max_message);
		w->in_binary = 0; /* deliver nothing more of it */
		wslay_event_queue_close(ctx, WSLAY_CODE_MESSAGE_TOO_BIG, NULL, 0);
	}
}

static void frame_chunk_cb(wslay_event_context_ptr ctx,
			   const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
	struct ws *w = user;

	if (!w->in_ctrl && w->in_binary && arg->data_length > 0) {
		w->rx->msg_data(w->user, arg->data, arg->data_length);
	}
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		   void *user)
{
	struct ws *w = user;

	switch (arg->opcode) {
	case WSLAY_BINARY_FRAME:
		if (w->in_binary) {
			w->rx->msg_end(w->user); /* not for one cut off by 1009 */
		}
		break;
	case WSLAY_TEXT_FRAME:
		log_info("text message from %s ignored", w->server ? "agent" : "runner");
		break;
	case WSLAY_CONNECTION_CLOSE:
		log_info("%s sent close code=%u", w->server ? "agent" : "runner",
			 (unsigned)arg->status_code);
		break;
	default:
		break; /* ping is answered by wslay; pong only proves liveness */
	}
}

/* wslay's context (8.5 KiB with its frame buffers), made only when a frame
 * needs wslay (a close, fragments, anything odd, a message queued behind a
 * full `out`): a session that only moves data and pings costs none, and
 * answers pings without an allocation. 0, or -1 out of memory. */
static int make_ctx(struct ws *w)
{
	static const struct wslay_event_callbacks cbs = {
		recv_cb, send_cb, genmask_cb, frame_start_cb, frame_chunk_cb, NULL, msg_cb,
	};
	int r;

	if (w->ctx != NULL) {
		return 0;
	}
	r = w->server ? wslay_event_context_server_init(&w->ctx, &cbs, w)
		      : wslay_event_context_client_init(&w->ctx, &cbs, w);
	if (r != 0) {
		w->ctx = NULL;
		return -1;
	}
	wslay_event_config_set_max_recv_msg_length(w->ctx, w->max_message);
	wslay_event_config_set_no_buffering(w->ctx, 1);
	return 0;
}

static void init(struct ws *w, int server, uint64_t max_message, const struct ws_rx *rx,
		 void *user)
{
	memset(w, 0, sizeof(*w));
	buf_init(&w->in, TC_IN_CAP);
	buf_init(&w->out, TC_OUT_CAP);
	w->user = user;
	w->rx = rx;
	w->max_message = max_message;
	w->server = server;
	rand_pool_init(&w->masks);
}

int ws_init_client(struct ws *w, uint64_t max_message, const struct ws_rx *rx, void *user)
{
	init(w, 0, max_message, rx, user);
	return 0;
}

int ws_init_server(struct ws *w, uint64_t max_message, const struct ws_rx *rx, void *user)
{
	init(w, 1, max_message, rx, user);
	return 0;
}

/* Nothing of wslay's is queued or partly framed and no close went out:
 * a frame of ours may go into `out` now. */
static int out_is_ours(const struct ws *w)
{
	return w->ctx == NULL ||
	       (wslay_event_get_queued_msg_count(w->ctx) == 0 && !wslay_event_get_close_sent(w->ctx));
}

static int want_read(const struct ws *w)
{
	return w->ctx == NULL || wslay_event_want_read(w->ctx);
}

void ws_free(struct ws *w)
{
	if (w->ctx != NULL) {
		wslay_event_context_free(w->ctx);
		w->ctx = NULL;
	}
	buf_free(&w->in);
	buf_free(&w->out);
}

static int send_msg(struct ws *w, uint8_t op, const uint8_t *p, size_t len);

/* A ping or pong, whole in `in`: a ping is answered here, a pong only
 * proves liveness (the bytes did). */
static void control(struct ws *w, int op, size_t h, size_t len)
{
	uint8_t payload[125];
	size_t have;
	const uint8_t *p = buf_data(&w->in, &have);

	memcpy(payload, p + h, len);
	if (w->server) {
		ws_mask(payload, len, p + h - 4);
	}
	buf_consume(&w->in, h + len);
	if (op == WSLAY_PING) {
		(void)send_msg(w, WSLAY_PONG, payload, len); /* fails only once closing */
	}
}

/* At a frame boundary: parse the next frame's header. A
 * single-frame binary message becomes the fast frame, a ping or pong is
 * handled here; any other frame is left for wslay (wslay_left = its
 * length). 0 if the frame's header (a control frame: the frame) is not all
 * here yet, 1 if it was taken, -1 out of memory. */
static int next_frame(struct ws *w)
{
	size_t have;
	const uint8_t *p = buf_data(&w->in, &have);
	size_t h = 2;
	uint64_t len;
	int minimal = 1;

	if (have < 2) {
		return 0;
	}
	int fin = p[0] >> 7;
	int rsv = (p[0] >> 4) & 7;
	int op = p[0] & 0xf;
	int masked = p[1] >> 7;
	len = p[1] & 0x7f;
	if (len == 126) {
		if (have < 4) {
			return 0;
		}
		len = (uint64_t)p[2] << 8 | p[3];
		minimal = len >= 126;
		h = 4;
	} else if (len == 127) {
		if (have < 10) {
			return 0;
		}
		len = 0;
		for (int i = 2; i < 10; i++) {
			len = len << 8 | p[i];
		}
		minimal = len > WS_LEN16_MAX && len >> 63 == 0;
		h = 10;
	}
	if (masked) {
		h += 4;
	}
	if (have < h) {
		return 0;
	}
	/* Frames to the server are masked, frames to the client are not. */
	int well_masked = masked == w->server;
	if ((op == WSLAY_PING || op == WSLAY_PONG) && fin && rsv == 0 && well_masked && len <= 125) {
		if (have < h + len) {
			return 0;
		}
		control(w, op, h, (size_t)len);
		return 1;
	}
	if (!fin || rsv != 0 || op != WSLAY_BINARY_FRAME || !well_masked || !minimal ||
	    w->fragmented || len > w->max_message) {
		if (make_ctx(w) != 0) {
			return -1;
		}
		if ((op & 0x8) == 0) {
			w->fragmented = op != WSLAY_CONTINUATION_FRAME ? !fin : (w->fragmented && !fin);
		}
		/* wslay rejects a length over 2^63; any non-zero left will do. */
		w->wslay_left = len >> 62 != 0 ? UINT64_MAX : h + len;
		return 1;
	}
	if (masked) {
		memcpy(w->fast_key, p + h - 4, 4);
	}
	buf_consume(&w->in, h);
	w->fast = 1;
	w->fast_left = len;
	w->fast_off = 0;
	w->rx->msg_start(w->user);
	return 1;
}

/* Deliver what is here of the fast frame, unmasked in place (server). */
static void fast_payload(struct ws *w)
{
	size_t have;
	/* Our own input buffer: unmasked where it lies. */
	uint8_t *p = (uint8_t *)buf_data(&w->in, &have);
	size_t n = have < w->fast_left ? have : (size_t)w->fast_left;
	uint8_t key[4];

	for (size_t i = 0; i < 4; i++) {
		key[i] = w->fast_key[(w->fast_off + i) & 3];
	}
	if (n > 0) {
		if (w->server) {
			ws_mask(p, n, key);
		}
		w->rx->msg_data(w->user, p, n);
		buf_consume(&w->in, n);
		w->fast_left -= n;
		w->fast_off += n;
	}
	if (w->fast_left == 0) {
		w->fast = 0;
		w->rx->msg_end(w->user);
	}
}

int ws_recv(struct ws *w)
{
	while (!w->paused && want_read(w)) {
		size_t have = buf_len(&w->in);
		if (w->fast) {
			if (have == 0 && w->fast_left > 0) {
				break; /* the rest of the frame has not arrived */
			}
			fast_payload(w);
		} else if (w->wslay_left > 0) {
			if (have == 0) {
				break;
			}
			if (wslay_event_recv(w->ctx) != 0) {
				return -1;
			}
			if (buf_len(&w->in) == have) {
				break; /* wslay took nothing */
			}
		} else {
			int r = next_frame(w);
			if (r <= 0) {
				return r; /* the next header is not all here, or -1 */
			}
		}
	}
	return 0;
}

int ws_frame(struct ws *w)
{
	size_t avail;
	uint8_t *p;
	ssize_t n;

	if (w->ctx == NULL || !wslay_event_want_write(w->ctx)) {
		return 0;
	}
	p = buf_reserve(&w->out, 16, &avail);
	if (p == NULL || avail < 16) {
		return 0; /* full: the transport must drain first */
	}
	n = wslay_event_write(w->ctx, p, avail);
	if (n < 0) {
		return -1;
	}
	buf_commit(&w->out, (size_t)n);
	return n > 0;
}

/* Frame header bytes for a payload of len bytes (mask key included). */
static size_t header_len(const struct ws *w, size_t len)
{
	size_t n = len < 126 ? 2 : len <= WS_LEN16_MAX ? 4 : 10;

	return w->server ? n : n + 4;
}

uint8_t *ws_data_begin(struct ws *w, size_t max)
{
	size_t avail;
	uint8_t *p;

	w->frame = NULL;
	if (!out_is_ours(w)) {
		return NULL;
	}
	w->frame_hdr = header_len(w, max < 126 ? 126 : max);
	p = buf_reserve(&w->out, w->frame_hdr + max, &avail);
	if (p == NULL || avail < w->frame_hdr + max) {
		return NULL;
	}
	w->frame = p;
	return p + w->frame_hdr;
}

/* Write the header of a frame of opcode op in front of the len payload
 * bytes at w->frame + w->frame_hdr, mask them (client) and commit. */
static void finish(struct ws *w, uint8_t op, size_t len)
{
	size_t hdr = header_len(w, len);
	uint8_t *h = w->frame;
	uint8_t *payload = h + hdr;
	size_t i = 2;

	if (hdr != w->frame_hdr) {
		memmove(payload, h + w->frame_hdr, len); /* a shorter length form */
	}
	h[0] = 0x80 | op; /* FIN, one frame per message */
	h[1] = w->server ? 0 : 0x80;
	if (len < 126) {
		h[1] |= (uint8_t)len;
	} else if (len <= WS_LEN16_MAX) {
		h[1] |= 126;
		h[i++] = (uint8_t)(len >> 8);
		h[i++] = (uint8_t)len;
	} else {
		h[1] |= 127;
		for (int shift = 56; shift >= 0; shift -= 8) {
			h[i++] = (uint8_t)((uint64_t)len >> shift);
		}
	}
	if (!w->server) {
		/* Without a key the frame must not go out: an all-zero key
		 * is still a valid frame, and kernel randomness failing is
		 * not a per-frame event. */
		if (rand_pool_take(&w->masks, h + i, 4) != 0) {
			memset(h + i, 0, 4);
		}
		ws_mask(payload, len, h + i);
	}
	buf_commit(&w->out, hdr + len);
	w->frame = NULL;
}

void ws_data_end(struct ws *w, size_t len)
{
	finish(w, WSLAY_BINARY_FRAME, len);
}

/* A whole message: framed into `out` at once when nothing of wslay's is
 * ahead of it and it fits, else queued in wslay (copied). 0, or -1 once
 * closing or out of memory. */
static int send_msg(struct ws *w, uint8_t op, const uint8_t *p, size_t len)
{
	struct wslay_event_msg m = {op, p, len};

	if (out_is_ours(w)) {
		size_t hdr = header_len(w, len);
		size_t avail;
		uint8_t *h = buf_reserve(&w->out, hdr + len, &avail);
		if (h != NULL && avail >= hdr + len) {
			memcpy(h + hdr, p, len);
			w->frame = h;
			w->frame_hdr = hdr;
			finish(w, op, len);
			return 0;
		}
	}
	if (make_ctx(w) != 0) {
		return -1;
	}
	return wslay_event_queue_msg(w->ctx, &m) == 0 ? 0 : -1;
}

/* A machine word that may alias any bytes (like char): the mask loop reads
 * and writes the payload a word at a time through it, at aligned
 * addresses only, so no target needs unaligned access or a memcpy call. */
typedef size_t __attribute__((__may_alias__)) mask_word;

void ws_mask(uint8_t *p, size_t n, const uint8_t key[4])
{
	size_t i = 0;

	/* Byte at a time up to a word boundary, then whole words with the
	 * key rotated to match, then the tail. XOR works in memory order, so
	 * the byte order of the machine does not matter. */
	while (i < n && ((uintptr_t)(p + i) & (sizeof(mask_word) - 1)) != 0) {
		p[i] ^= key[i & 3];
		i++;
	}
	if (n - i >= sizeof(mask_word)) {
		uint8_t kb[sizeof(mask_word)];
		mask_word k;
		for (size_t j = 0; j < sizeof(kb); j++) {
			kb[j] = key[(i + j) & 3];
		}
		memcpy(&k, kb, sizeof(k));
		mask_word *w = (mask_word *)(void *)(p + i);
		size_t words = (n - i) / sizeof(mask_word);
		size_t j = 0;
		for (; j + 4 <= words; j += 4) {
			w[j] ^= k;
			w[j + 1] ^= k;
			w[j + 2] ^= k;
			w[j + 3] ^= k;
		}
		for (; j < words; j++) {
			w[j] ^= k;
		}
		i += words * sizeof(mask_word);
	}
	for (; i < n; i++) {
		p[i] ^= key[i & 3];
	}
}

int ws_send_binary(struct ws *w, const uint8_t *msg, size_t len)
{
	return send_msg(w, WSLAY_BINARY_FRAME, msg, len);
}

int ws_send_ping(struct ws *w)
{
	return send_msg(w, WSLAY_PING, (const uint8_t *)"tc", 2);
}

void ws_send_close(struct ws *w, uint16_t code, const char *reason)
{
	if (make_ctx(w) == 0) {
		wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason, strlen(reason));
	}
}

size_t ws_queued(const struct ws *w)
{
	return w->ctx != NULL ? wslay_event_get_queued_msg_count(w->ctx) : 0;
}

int ws_close_received(const struct ws *w, uint16_t *code)
{
	if (w->ctx == NULL || !wslay_event_get_close_received(w->ctx)) {
		return 0;
	}
	*code = wslay_event_get_status_code_received(w->ctx);
	return 1;
}

int ws_close_sent(const struct ws *w)
{
	return w->ctx != NULL && wslay_event_get_close_sent(w->ctx);
}

uint16_t ws_close_code_sent(const struct ws *w)
{
	return ws_close_sent(w) ? wslay_event_get_status_code_sent(w->ctx) : 0;
}

int ws_finished(const struct ws *w)
{
	return w->ctx != NULL && !wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx);
}

void ws_trim(struct ws *w)
{
	buf_trim(&w->in);
	buf_trim(&w->out);
	if (w->ctx != NULL && out_is_ours(w) && wslay_event_get_read_enabled(w->ctx) &&
	    wslay_event_get_write_enabled(w->ctx) && !w->fragmented && w->wslay_left == 0) {
		/* At rest between frames: a new context is the same. */
		wslay_event_context_free(w->ctx);
		w->ctx = NULL;
	}
}
