/* dispatch: the runner's tunnel messages, as ws streams them in pieces,
 * put back together and handed to the connection table. The header is
 * collected first; DATA payload is staged, and consecutive DATA for the
 * same TCP connection is staged together (up to TC_STAGE_CAP) so the local
 * socket gets one large write instead of one per message. Anything else --
 * another id, another type, the end of the bytes ws has -- hands the
 * staged bytes over first, so order is kept per connection and across
 * message types (a CLOSE never overtakes DATA before it). */
#ifndef DISPATCH_H
#define DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "conn.h"
#include "tunnel.h"
#include "ws.h"

struct dispatch {
	struct conn_table *conns;
	uint8_t hdr[TUNNEL_HDR_LEN];
	size_t hdr_len;
	size_t len;              /* bytes of the current message so far */
	struct tunnel_msg m;     /* its header, once hdr_len == TUNNEL_HDR_LEN */
	enum tunnel_err err;
	int oversize;            /* a UDP datagram over TC_DATA_MAX: dropped */
	struct tunnel_msg staged; /* whose payload is in stage */
	struct buf stage;        /* DATA payload not yet handed over */
};

/* The callbacks to give ws_init with the dispatch as user. */
extern const struct ws_rx dispatch_rx;

void dispatch_init(struct dispatch *d, struct conn_table *conns);
void dispatch_free(struct dispatch *d);
/* Give back the staging buffer a burst grew, if it holds nothing. */
void dispatch_trim(struct dispatch *d);
/* Hand staged TCP bytes to their connection (after ws_recv). A datagram
 * still arriving stays: it goes whole when its message ends. */
void dispatch_flush(struct dispatch *d);

#endif
