#include "buf.h"

#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t cap)
{
	b->data = NULL;
	b->cap = cap;
	b->size = 0;
	b->grow = 0;
	b->start = 0;
	b->end = 0;
}

/* Move the data to the front when that at least doubles the free tail. */
static void compact(struct buf *b)
{
	if (b->start == b->end) {
		b->start = 0;
		b->end = 0;
	} else if (b->start > 0 && b->size - b->end < b->start) {
		memmove(b->data, b->data + b->start, b->end - b->start);
		b->end -= b->start;
		b->start = 0;
	}
}

/* Allocate size bytes (first use) or grow to it, keeping the data. */
static int resize(struct buf *b, size_t size)
{
	uint8_t *d;

	if (b->start > 0) {
		memmove(b->data, b->data + b->start, b->end - b->start);
		b->end -= b->start;
		b->start = 0;
	}
	d = realloc(b->data, size);
	if (d == NULL) {
		return -1;
	}
	b->data = d;
	b->size = size;
	return 0;
}

uint8_t *buf_reserve(struct buf *b, size_t want, size_t *avail)
{
	if (b->data == NULL || b->grow) {
		size_t size = b->data == NULL && !b->grow ? BUF_FIRST : b->cap;
		if (size > b->cap) {
			size = b->cap;
		}
		b->grow = 0;
		if (size > b->size && resize(b, size) != 0 && b->data == NULL) {
			*avail = 0;
			return NULL;
		}
	}
	compact(b);
	if (b->size - b->end < want && b->size < b->cap) {
		(void)resize(b, b->cap); /* on failure the smaller one serves */
	}
	*avail = b->size - b->end;
	return *avail > 0 ? b->data + b->end : NULL;
}

uint8_t *buf_space(struct buf *b, size_t *avail)
{
	return buf_reserve(b, 1, avail);
}

void buf_commit(struct buf *b, size_t n)
{
	b->end += n;
	if (b->end == b->size && b->size < b->cap) {
		b->grow = 1;
	}
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
	uint8_t *dst = buf_reserve(b, n, &avail);

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
		memset(b->data, 0, n < b->size ? n : b->size);
	}
}

void buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b, b->cap);
}

void buf_trim(struct buf *b)
{
	if (b->start == b->end && b->size > BUF_FIRST) {
		buf_free(b);
	}
}
