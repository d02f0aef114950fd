#include "buf.h"

#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t cap)
{
	b->data = NULL;
	b->cap = cap;
	b->start = 0;
	b->end = 0;
}

uint8_t *buf_space(struct buf *b, size_t *avail)
{
	if (b->data == NULL) {
		b->data = malloc(b->cap);
		if (b->data == NULL) {
			*avail = 0;
			return NULL;
		}
	}
	if (b->start == b->end) {
		b->start = 0;
		b->end = 0;
	} else if (b->start > 0 && b->cap - b->end < b->start) {
		/* moving the data at least doubles the free tail */
		memmove(b->data, b->data + b->start, b->end - b->start);
		b->end -= b->start;
		b->start = 0;
	}
	*avail = b->cap - b->end;
	return *avail > 0 ? b->data + b->end : NULL;
}

void buf_commit(struct buf *b, size_t n)
{
	b->end += n;
}

const uint8_t *buf_data(const struct buf *b, size_t *len)
{
	*len = b->end - b->start;
	return b->data != NULL ? b->data + b->start : NULL;
}

size_t buf_len(const struct buf *b)
{
	return b->end - b->start;
}

void buf_consume(struct buf *b, size_t n)
{
	b->start += n;
	if (b->start == b->end) {
		b->start = 0;
		b->end = 0;
	}
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	size_t avail;
	uint8_t *dst = buf_space(b, &avail);

	if (dst == NULL || avail < n) {
		return -1;
	}
	memcpy(dst, p, n);
	buf_commit(b, n);
	return 0;
}

void buf_wipe(struct buf *b, size_t n)
{
	if (b->data != NULL) {
		memset(b->data, 0, n < b->cap ? n : b->cap);
	}
}

void buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b, b->cap);
}
