/* fz_frames: the WebSocket frames a program under test writes, parsed from
 * the byte stream as it goes and checked: no reserved bits, every message
 * one frame (FIN), known opcodes only, control payloads of at most 125
 * bytes, the shortest length form, masked exactly when a client sends,
 * nothing after a close frame, no frame over FZ_FRAME_PAYLOAD_MAX. A
 * breach aborts with the reason (fz_fail). Each frame is handed over
 * with its first FZ_FRAME_SHOWN payload bytes unmasked, and its length. */
#ifndef FZ_FRAMES_H
#define FZ_FRAMES_H

#include <stddef.h>
#include <stdint.h>

/* Neither program ever frames more than this (a DATA message of 65,527
 * payload bytes plus the 8-byte tunnel header). */
#define FZ_FRAME_PAYLOAD_MAX 65535
/* Payload bytes shown to on_frame: a tunnel header and a reason text. */
#define FZ_FRAME_SHOWN 136

struct fz_frames {
	int masked;  /* client frames: masked */
	int closed;  /* a close frame went out */
	/* The frame being parsed: its header so far, then the payload bytes
	 * shown (unmasked as they come), then a count of the rest. */
	uint8_t hdr[14];
	size_t hdr_len;
	size_t hdr_need;   /* header length once known (2 until then) */
	uint64_t len;      /* payload length */
	uint64_t got;      /* payload bytes seen */
	uint8_t shown[FZ_FRAME_SHOWN];
	void (*on_frame)(void *ctx, int op, const uint8_t *p, size_t shown, size_t len);
	void *ctx;
};

void fz_frames_init(struct fz_frames *f, int masked,
		    void (*on_frame)(void *ctx, int op, const uint8_t *p, size_t shown, size_t len),
		    void *ctx);
void fz_frames_feed(struct fz_frames *f, const uint8_t *p, size_t n);

/* Print why on stderr and abort: an oracle found a breach. */
void fz_fail(const char *why) __attribute__((noreturn));

#endif
