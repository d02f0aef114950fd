#include "allow.h"

#include <string.h>

#include "tunnel.h"

/* A port number 1-65535 from s[0..n). 0 if malformed. */
static uint32_t port_of(const char *s, size_t n)
{
	uint32_t v = 0;

	if (n == 0 || n > 5) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return 0;
		}
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	return v <= 65535 ? v : 0;
}

int allow_parse(const char *s, struct allow *a)
{
	a->n = 0;
	while (*s != '\0') {
		const char *comma = strchr(s, ',');
		size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
		struct allow_range r = {3, 0, 0};
		const char *dash;

		if (len >= 4 && strncmp(s, "tcp:", 4) == 0) {
			r.protos = 1;
			s += 4;
			len -= 4;
		} else if (len >= 4 && strncmp(s, "udp:", 4) == 0) {
			r.protos = 2;
			s += 4;
			len -= 4;
		}
		dash = memchr(s, '-', len);
		if (dash != NULL) {
			r.lo = (uint16_t)port_of(s, (size_t)(dash - s));
			r.hi = (uint16_t)port_of(dash + 1, len - (size_t)(dash - s) - 1);
		} else {
			r.lo = r.hi = (uint16_t)port_of(s, len);
		}
		if (r.lo == 0 || r.hi == 0 || r.lo > r.hi || a->n == TC_ALLOW_MAX) {
			a->n = 0;
			return -1;
		}
		a->r[a->n++] = r;
		s += len;
		if (*s == ',') {
			s++;
			if (*s == '\0') {
				a->n = 0;
				return -1; /* a trailing comma: an empty entry */
			}
		}
	}
	return a->n > 0 ? 0 : -1;
}

int allow_match(const struct allow *a, uint8_t proto, uint16_t port)
{
	uint8_t bit = proto == TUNNEL_UDP ? 2 : 1;

	if (a->n == 0) {
		return 1;
	}
	for (size_t i = 0; i < a->n; i++) {
		if ((a->r[i].protos & bit) && port >= a->r[i].lo && port <= a->r[i].hi) {
			return 1;
		}
	}
	return 0;
}
