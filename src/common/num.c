#include "num.h"

#include <stddef.h>

/* Digits of s up to a non-digit; *end points there. -1 on overflow of max
 * or no digit at all. */
static int digits(const char *s, uint64_t max, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		uint64_t d = (uint64_t)(*p - '0');
		if (v > (max - d) / 10) {
			return -1;
		}
		v = v * 10 + d;
	}
	if (p == s) {
		return -1;
	}
	*out = v;
	*end = p;
	return 0;
}

int num_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	const char *end;
	uint64_t v;

	if (s == NULL || digits(s, max, &v, &end) != 0 || *end != '\0' || v < min) {
		return -1;
	}
	*out = v;
	return 0;
}

int num_parse_seconds(const char *s, uint64_t max_ms, uint64_t *out_ms)
{
	const char *end;
	uint64_t whole;
	uint64_t frac = 0;
	unsigned places = 0;

	if (s == NULL || digits(s, max_ms / 1000, &whole, &end) != 0) {
		return -1;
	}
	if (*end == '.') {
		for (end++; *end >= '0' && *end <= '9'; end++) {
			if (places == 3) {
				return -1; /* finer than a millisecond */
			}
			frac = frac * 10 + (uint64_t)(*end - '0');
			places++;
		}
		if (places == 0) {
			return -1;
		}
	}
	if (*end != '\0') {
		return -1;
	}
	for (; places < 3; places++) {
		frac *= 10;
	}
	if (whole * 1000 + frac > max_ms) {
		return -1;
	}
	*out_ms = whole * 1000 + frac;
	return 0;
}
