#include "fz_frames.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fz_fail(const char *why)
{
	static const char pre[] = "fuzz oracle: ";

	(void)!write(2, pre, sizeof(pre) - 1);
	(void)!write(2, why, strlen(why));
	(void)!write(2, "\n", 1);
	abort();
}

void fz_frames_init(struct fz_frames *f, int masked,
		    void (*on_frame)(void *ctx, int op, const uint8_t *p, size_t shown, size_t len),
		    void *ctx)
{
	f->masked = masked;
	f->closed = 0;
	f->hdr_len = 0;
	f->hdr_need = 2;
	f->on_frame = on_frame;
	f->ctx = ctx;
}

/* The first two bytes are in: check them, say how long the header is. */
static void first_bytes(struct fz_frames *f)
{
	int fin = f->hdr[0] >> 7;
	int rsv = (f->hdr[0] >> 4) & 7;
	int op = f->hdr[0] & 0xf;
	int masked = f->hdr[1] >> 7;
	unsigned len7 = f->hdr[1] & 0x7f;

	if (f->closed) {
		fz_fail("frame: a frame after the close frame");
	}
	if (!fin || rsv != 0) {
		fz_fail("frame: not FIN, or reserved bits set");
	}
	if (op != 0x2 && op != 0x8 && op != 0x9 && op != 0xa) {
		fz_fail("frame: an opcode other than binary, close, ping, pong");
	}
	if (masked != f->masked) {
		fz_fail(f->masked ? "frame: a client frame without a mask" : "frame: a masked server frame");
	}
	if (len7 == 127) {
		fz_fail("frame: a 64-bit length (no frame is that large)");
	}
	if ((op & 0x8) && len7 > 125) {
		fz_fail("frame: a control frame over 125 bytes");
	}
	f->hdr_need = 2 + (len7 == 126 ? 2 : 0) + (masked ? 4 : 0);
}

/* The whole header is in. */
static void header_done(struct fz_frames *f)
{
	f->len = f->hdr[1] & 0x7f;
	if (f->len == 126) {
		f->len = (uint64_t)f->hdr[2] << 8 | f->hdr[3];
		if (f->len < 126) {
			fz_fail("frame: a 16-bit length under 126");
		}
	}
	if ((f->hdr[0] & 0xf) == 0x8 && f->len == 1) {
		fz_fail("frame: a close frame with a 1-byte payload");
	}
	f->got = 0;
}

static void frame_done(struct fz_frames *f)
{
	int op = f->hdr[0] & 0xf;
	size_t shown = f->len < FZ_FRAME_SHOWN ? (size_t)f->len : FZ_FRAME_SHOWN;

	if (op == 0x8) {
		f->closed = 1;
	}
	f->hdr_len = 0;
	f->hdr_need = 2;
	if (f->on_frame != NULL) {
		f->on_frame(f->ctx, op, f->shown, shown, (size_t)f->len);
	}
}

void fz_frames_feed(struct fz_frames *f, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (f->hdr_len < f->hdr_need) {
			f->hdr[f->hdr_len++] = *p++;
			n--;
			if (f->hdr_len == 2) {
				first_bytes(f);
			}
			if (f->hdr_len == f->hdr_need) {
				header_done(f);
				if (f->len == 0) {
					frame_done(f);
				}
			}
			continue;
		}
		/* Payload: keep (unmasked) what is shown, count the rest. */
		size_t k = f->len - f->got < n ? (size_t)(f->len - f->got) : n;
		const uint8_t *key = f->hdr + f->hdr_need - 4;
		for (size_t i = 0; i < k && f->got + i < FZ_FRAME_SHOWN; i++) {
			size_t at = (size_t)f->got + i;
			f->shown[at] = (uint8_t)(p[i] ^ (f->masked ? key[at & 3] : 0));
		}
		f->got += k;
		p += k;
		n -= k;
		if (f->got == f->len) {
			frame_done(f);
		}
	}
}
