/* ws: the WebSocket layer over wslay's event API, client (agent) or server
 * (runner) side. Bytes from the transport go into `in`, framed bytes for the
 * transport come out of `out`; wslay never touches a socket. Incoming binary messages are
 * streamed, not buffered: msg_data receives the payload in pieces (at most
 * 4 KiB each, wslay's frame buffer), between a msg_start and a msg_end, so
 * a large message costs no large allocation. The callbacks run inside
 * ws_recv and must not free the session. A binary message in one frame
 * (DATA, either way) is parsed here, not by wslay, and delivered from `in`
 * where it lies (on the server side unmasked in place a word at a time;
 * wslay's loop unmasks byte by byte and copies). So are pings (answered
 * here, with no allocation) and pongs. Every other frame (close, text,
 * fragments, anything odd or too big) is fed to wslay whole, one at a
 * time, so wslay stays the judge of the protocol and runs the close
 * handshake; wslay's context is made only then, so a session that only
 * moves data and pings costs none. Text messages are logged and ignored.
 *
 * Sending: small messages (tunnel replies, pings, pongs) are framed into
 * `out` at once when nothing of wslay's is ahead of them and they fit;
 * otherwise, and for close, they are queued in wslay and framed by
 * ws_frame(). Bulk binary messages (DATA) take the fast
 * path instead: ws_data_begin() lends room in `out` right after the bytes
 * already framed, the caller writes the payload there (a socket read), and
 * ws_data_end() writes the frame header in front and masks the payload in
 * place: no allocation and no copy. The fast path is open only while wslay
 * has nothing queued, so it never splits or overtakes a frame of wslay's. */
#ifndef WS_H
#define WS_H

#include <stddef.h>
#include <stdint.h>

#include <wslay/wslay.h>

#include "buf.h"
#include "rand.h"

/* Largest payload whose frame has the 16-bit length form. */
#define WS_LEN16_MAX 65535

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
	int server;         /* runner side: our frames are not masked */
	/* Receive: bytes of the frame wslay is being fed, and the frame
	 * parsed here (payload bytes to come, done, and its key). */
	uint64_t wslay_left;
	int fast;
	uint64_t fast_left;
	uint64_t fast_off;
	uint8_t fast_key[4];
	int fragmented;     /* a fragmented message (wslay's) is in progress */
	uint8_t *frame;     /* ws_data_begin's reservation in `out`, or NULL */
	size_t frame_hdr;   /* header bytes reserved in front of it */
	struct rand_pool masks; /* mask keys (client side) */
};

/* A client (agent) or server (runner side) context, accepting peer
 * messages of at most max_message bytes. 0 or -1 (out of memory). */
int ws_init_client(struct ws *w, uint64_t max_message, const struct ws_rx *rx, void *user);
int ws_init_server(struct ws *w, uint64_t max_message, const struct ws_rx *rx, void *user);
void ws_free(struct ws *w);
/* Parse what is in `in` until it is empty or paused. 0, or -1 if the
 * WebSocket failed (protocol error, out of memory). */
int ws_recv(struct ws *w);
/* Frame queued messages into `out` while there is room. 1 if bytes were
 * framed, 0 if not, -1 on failure. */
int ws_frame(struct ws *w);
/* Room for one binary message of up to max payload bytes, written straight
 * into `out`: the caller writes the payload at the pointer returned, then
 * calls ws_data_end() (or nothing, to give the room back) before any other
 * call on w. NULL when wslay has a frame queued or partly framed, when a
 * close frame was sent, or when `out` has no room. A max up to WS_LEN16_MAX
 * keeps ws_data_end's fix-up tiny (payloads under 126 bytes move 2 bytes). */
uint8_t *ws_data_begin(struct ws *w, size_t max);
/* Frame the len (<= max) payload bytes written at ws_data_begin's pointer:
 * header in front, payload masked in place (client), bytes committed. */
void ws_data_end(struct ws *w, size_t len);
/* XOR p[0..n) with the 4-byte key, starting at key byte 0; word at a time,
 * any alignment, any byte order. Pure (exposed for tests). */
void ws_mask(uint8_t *p, size_t n, const uint8_t key[4]);
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
/* An idle peer: give back large empty buffers and wslay's context when it
 * holds no state. */
void ws_trim(struct ws *w);

#endif
