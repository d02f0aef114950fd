/* ws: the WebSocket layer over wslay's event API (client side). Bytes from
 * the transport go into `in`, framed bytes for the transport come out of
 * `out`; wslay never touches a socket. Incoming binary messages are
 * streamed, not buffered: msg_data receives the payload in pieces (at most
 * 4 KiB each, wslay's frame buffer), between a msg_start and a msg_end, so
 * a large message costs no large allocation. The callbacks run inside
 * ws_recv and must not free the session. Text messages are logged and
 * ignored; pings are answered by wslay. */
#ifndef WS_H
#define WS_H

#include <stddef.h>
#include <stdint.h>

#include <wslay/wslay.h>

#include "buf.h"

/* Receivers of streamed binary messages. */
struct ws_rx {
	void (*msg_start)(void *user);
	void (*msg_data)(void *user, const uint8_t *p, size_t n);
	void (*msg_end)(void *user);
};

struct ws {
	wslay_event_context_ptr ctx;
	struct buf in;      /* transport bytes not yet parsed */
	struct buf out;     /* framed bytes not yet written to the transport */
	int paused;         /* backpressure: parse no further input */
	int in_ctrl;        /* the frame being received is a control frame */
	int in_binary;      /* the data message being received is binary */
	uint64_t max_message; /* largest message accepted, all fragments counted */
	uint64_t msg_len;   /* bytes announced so far for the current message */
	const struct ws_rx *rx;
	void *user;
};

/* Client context with a max message size. 0 or -1 (out of memory). */
int ws_init(struct ws *w, uint64_t max_message, const struct ws_rx *rx, void *user);
void ws_free(struct ws *w);
/* Parse what is in `in` until it is empty or paused. 0, or -1 if the
 * WebSocket failed (protocol error, out of memory). */
int ws_recv(struct ws *w);
/* Frame queued messages into `out` while there is room. 1 if bytes were
 * framed, 0 if not, -1 on failure. */
int ws_frame(struct ws *w);
/* Queue a binary message (copied). 0, or -1 once closing. */
int ws_send_binary(struct ws *w, const uint8_t *msg, size_t len);
int ws_send_ping(struct ws *w);
/* Queue a close frame with a status code (no-op if one was queued). */
void ws_send_close(struct ws *w, uint16_t code, const char *reason);
/* Messages queued in wslay and not yet framed completely. */
size_t ws_queued(const struct ws *w);
/* The peer's close frame arrived (status in *code). */
int ws_close_received(const struct ws *w, uint16_t *code);
/* Our close frame is framed into `out`. */
int ws_close_sent(const struct ws *w);
/* The status code of the close frame we sent (0 if none). */
uint16_t ws_close_code_sent(const struct ws *w);
/* Neither side may send or read anything more. */
int ws_finished(const struct ws *w);

#endif
