/* allow: the --allow-ports list, "22,80,8000-8999,udp:53,tcp:1000-2000":
 * ports and ranges, each for both protos or, with a "tcp:" or "udp:"
 * prefix, for one. A CONNECT to anything else gets ERROR "port not
 * allowed". Pure. */
#ifndef ALLOW_H
#define ALLOW_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"

struct allow_range {
	uint8_t protos; /* bit 0: TCP, bit 1: UDP */
	uint16_t lo;
	uint16_t hi;
};

struct allow {
	struct allow_range r[TC_ALLOW_MAX];
	size_t n; /* 0: no list, every port is allowed */
};

/* Parse s into a (replacing it). 0, or -1 if malformed (empty entries,
 * ports outside 1-65535, lo > hi, more than TC_ALLOW_MAX entries). */
int allow_parse(const char *s, struct allow *a);
/* Non-zero if proto (TUNNEL_TCP/UDP) and port may be connected to. */
int allow_match(const struct allow *a, uint8_t proto, uint16_t port);

#endif
