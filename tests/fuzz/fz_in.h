/* fz_in: reading a fuzz input as a script, a few bytes at a time. Past the
 * end every number is 0 and every slice empty, so a script may end
 * anywhere. */
#ifndef FZ_IN_H
#define FZ_IN_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fz_in {
	const uint8_t *p;
	size_t n;
	size_t off;
};

/* p[0..n) as a C string, malloc'd (NULL out of memory): a NUL inside ends
 * it early, as it would for the code under test. */
static inline char *fz_cstr(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s != NULL) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

static inline int fz_in_more(const struct fz_in *in)
{
	return in->off < in->n;
}

static inline uint8_t fz_in_u8(struct fz_in *in)
{
	return in->off < in->n ? in->p[in->off++] : 0;
}

static inline uint16_t fz_in_u16(struct fz_in *in)
{
	uint16_t hi = fz_in_u8(in);

	return (uint16_t)(hi << 8 | fz_in_u8(in));
}

/* Up to want bytes; *got says how many there were. */
static inline const uint8_t *fz_in_take(struct fz_in *in, size_t want, size_t *got)
{
	const uint8_t *p = in->p + in->off;
	size_t left = in->n - in->off;

	*got = want < left ? want : left;
	in->off += *got;
	return p;
}

/* A length: one byte, or 0xff then two more (big-endian). */
static inline size_t fz_in_len(struct fz_in *in)
{
	uint8_t b = fz_in_u8(in);

	return b < 0xff ? b : fz_in_u16(in);
}

/* Everything up to the next NUL (not included; the NUL is skipped). */
static inline const uint8_t *fz_in_part(struct fz_in *in, size_t *len)
{
	const uint8_t *p = in->p + in->off;
	size_t n = 0;

	while (in->off + n < in->n && p[n] != 0) {
		n++;
	}
	in->off += n + (in->off + n < in->n);
	*len = n;
	return p;
}

#endif
