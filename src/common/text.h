/* text: a growing text built in memory and then written out, for HTTP
 * answers (tunnel-server's admin endpoint, the agent's status port).
 * p[start..len) is what is still to be written: the body is appended
 * behind head room left free by text_begin, the status line and headers
 * then go in front of it (text_prepend), and the writer consumes from the
 * front: one allocation, no copy. At most max bytes; once it could not
 * grow, failed says why (TEXT_NO_MEMORY, TEXT_TOO_BIG) and every later
 * addition is a no-op. */
#ifndef TEXT_H
#define TEXT_H

#include <stddef.h>

#include "http.h"

enum { TEXT_OK, TEXT_NO_MEMORY, TEXT_TOO_BIG };

struct text {
	char *p;
	size_t start;
	size_t len;
	size_t cap;
	size_t max;
	int failed;
};

/* Start empty, with head_room bytes free in front, at most max bytes. */
void text_begin(struct text *t, size_t head_room, size_t max);
void text_free(struct text *t);
void text_add(struct text *t, const char *s, size_t n);
void text_str(struct text *t, const char *s);
void text_fmt(struct text *t, const char *f, ...) __attribute__((format(printf, 2, 3)));
/* s escaped for JSON, HTML or a Prometheus label value. */
void text_esc(struct text *t, const char *s, enum http_escape mode);
/* A JSON string, or null for NULL (or for "" when empty_null). */
void text_json(struct text *t, const char *s, int empty_null);
/* Bytes still to be written, and where they are. */
size_t text_len(const struct text *t);
const char *text_data(const struct text *t, size_t *n);
/* Put s[0..n) in front (room left by text_begin). 0, or -1. */
int text_prepend(struct text *t, const char *s, size_t n);
/* Keep only the first n bytes (HEAD: the head without the body). */
void text_keep(struct text *t, size_t n);
/* n bytes were written. */
void text_consume(struct text *t, size_t n);

#endif
