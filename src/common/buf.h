/* buf: a bounded byte buffer, allocated on first use. All pointer
 * arithmetic on byte queues lives here. A pointer returned by buf_space or
 * buf_data is valid until the next call on the same buf.
 *
 * Memory follows the traffic: the first allocation is BUF_FIRST bytes (a
 * ping, an upgrade request); a commit that fills the allocation, or a
 * reservation larger than it, grows it to the bound at once. Thousands of
 * idle peers then cost a small buffer each, and a busy one reads and
 * frames in the large one after its first full read. */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>
#include <stdint.h>

#define BUF_FIRST 1024

struct buf {
	uint8_t *data;
	size_t cap;   /* bound; memory is allocated on demand */
	size_t size;  /* allocated: 0, BUF_FIRST or cap */
	int grow;     /* a commit filled the allocation: take cap next time */
	size_t start; /* first unread byte */
	size_t end;   /* one past the last byte */
};

/* An empty buffer that will hold at most cap bytes. */
void buf_init(struct buf *b, size_t cap);
/* Where up to *avail bytes can be written; NULL if full or out of memory. */
uint8_t *buf_space(struct buf *b, size_t *avail);
/* Like buf_space, growing the allocation so that at least want bytes are
 * free where it can (want is bounded by the cap, not guaranteed). */
uint8_t *buf_reserve(struct buf *b, size_t want, size_t *avail);
/* Mark n bytes written at buf_space as data. */
void buf_commit(struct buf *b, size_t n);
/* Unread bytes and their count. */
const uint8_t *buf_data(const struct buf *b, size_t *len);
size_t buf_len(const struct buf *b);
/* Drop n bytes from the front. */
void buf_consume(struct buf *b, size_t n);
/* Append all of p or nothing: 0, or -1 when it does not fit. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Zero the first n bytes of the storage (a secret passed through it). */
void buf_wipe(struct buf *b, size_t n);
/* Release memory (the bound stays). */
void buf_free(struct buf *b);
/* Release memory if empty and grown past BUF_FIRST (an idle peer). */
void buf_trim(struct buf *b);

#endif
