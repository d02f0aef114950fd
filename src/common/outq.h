/* outq: bytes waiting for a socket that pushed back, as a list of copied
 * chunks (one per write that did not fit). Memory is held only while bytes
 * wait; the owner bounds it with a high-water mark. */
#ifndef OUTQ_H
#define OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct outq_chunk {
	struct outq_chunk *next;
	size_t len;
	size_t off; /* bytes of this chunk already written */
	uint8_t data[];
};

struct outq {
	struct outq_chunk *head;
	struct outq_chunk *tail;
	size_t bytes; /* waiting, all chunks */
};

/* Writes p[0..n) somewhere: bytes taken, or -1 with errno. */
typedef ssize_t (*outq_send_fn)(void *ctx, const uint8_t *p, size_t n);

void outq_init(struct outq *q);
/* Drop every waiting byte. */
void outq_clear(struct outq *q);
/* Append a copy of p[0..n) as one chunk. 0, or -1 when out of memory. */
int outq_push(struct outq *q, const uint8_t *p, size_t n);
/* Write chunks in order until done or the sink pushes back (EAGAIN or a
 * short write). Returns bytes written (>= 0); -1 with errno on a failure
 * of the sink other than EAGAIN/EWOULDBLOCK/EINTR. */
ssize_t outq_flush(struct outq *q, outq_send_fn send, void *ctx);

#endif
