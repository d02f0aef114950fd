#include "text.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"

/* Room for n more bytes (and a NUL) at t->p + t->len, or NULL. */
static char *text_room(struct text *t, size_t n)
{
	if (t->failed) {
		return NULL;
	}
	if (n >= t->max - t->len) {
		t->failed = TEXT_TOO_BIG;
		return NULL;
	}
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap == 0 ? 4096 : t->cap;
		char *p;
		while (cap < t->len + n + 1) {
			cap *= 2;
		}
		p = realloc(t->p, cap);
		if (p == NULL) {
			t->failed = TEXT_NO_MEMORY;
			return NULL;
		}
		t->p = p;
		t->cap = cap;
	}
	return t->p + t->len;
}

void text_add(struct text *t, const char *s, size_t n)
{
	char *p = text_room(t, n);

	if (p != NULL) {
		memcpy(p, s, n);
		t->len += n;
	}
}

void text_str(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

void text_fmt(struct text *t, const char *f, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, f);
	n = fmt_vsnprintf(NULL, 0, f, ap);
	va_end(ap);
	p = text_room(t, (size_t)n);
	if (p != NULL) {
		va_start(ap, f);
		fmt_vsnprintf(p, (size_t)n + 1, f, ap);
		va_end(ap);
		t->len += (size_t)n;
	}
}

void text_esc(struct text *t, const char *s, enum http_escape mode)
{
	size_t n = strlen(s);
	size_t need = http_escape(NULL, 0, s, n, mode);
	char *p = text_room(t, need);

	if (p != NULL) {
		http_escape(p, need + 1, s, n, mode);
		t->len += need;
	}
}

void text_json(struct text *t, const char *s, int empty_null)
{
	if (s == NULL || (empty_null && s[0] == '\0')) {
		text_str(t, "null");
		return;
	}
	text_add(t, "\"", 1);
	text_esc(t, s, HTTP_ESC_JSON);
	text_add(t, "\"", 1);
}

void text_free(struct text *t)
{
	free(t->p);
	memset(t, 0, sizeof(*t));
}

void text_begin(struct text *t, size_t head_room, size_t max)
{
	text_free(t);
	t->max = max;
	if (text_room(t, head_room) != NULL) {
		t->start = head_room;
		t->len = head_room;
	}
}

size_t text_len(const struct text *t)
{
	return t->len - t->start;
}

int text_prepend(struct text *t, const char *s, size_t n)
{
	if (t->failed || t->p == NULL || n > t->start) {
		return -1;
	}
	t->start -= n;
	memcpy(t->p + t->start, s, n);
	return 0;
}

void text_keep(struct text *t, size_t n)
{
	t->len = t->start + n;
}

const char *text_data(const struct text *t, size_t *n)
{
	*n = text_len(t);
	return t->p + t->start;
}

void text_consume(struct text *t, size_t n)
{
	t->start += n;
}

