#include "outq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void outq_init(struct outq *q)
{
	q->head = NULL;
	q->tail = NULL;
	q->bytes = 0;
}

void outq_clear(struct outq *q)
{
	while (q->head != NULL) {
		struct outq_chunk *k = q->head;
		q->head = k->next;
		free(k);
	}
	outq_init(q);
}

int outq_push(struct outq *q, const uint8_t *p, size_t n)
{
	struct outq_chunk *k = malloc(sizeof(*k) + n);

	if (k == NULL) {
		return -1;
	}
	k->next = NULL;
	k->len = n;
	k->off = 0;
	memcpy(k->data, p, n);
	if (q->tail != NULL) {
		q->tail->next = k;
	} else {
		q->head = k;
	}
	q->tail = k;
	q->bytes += n;
	return 0;
}

ssize_t outq_flush(struct outq *q, outq_send_fn send, void *ctx)
{
	ssize_t total = 0;

	while (q->head != NULL) {
		struct outq_chunk *k = q->head;
		ssize_t n = send(ctx, k->data + k->off, k->len - k->off);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			break;
		}
		if (n < 0) {
			return -1;
		}
		total += n;
		k->off += (size_t)n;
		if (k->off < k->len) {
			break; /* short write: the sink is full */
		}
		q->bytes -= k->len;
		q->head = k->next;
		if (q->head == NULL) {
			q->tail = NULL;
		}
		free(k);
	}
	return total;
}
