/* stats: what the agent knows about itself since it started, for the
 * status port and SIGUSR1: the tunnel's state and story, and counters.
 * main() owns it; the session and the connection table add to it. */
#ifndef STATS_H
#define STATS_H

#include <stdint.h>

struct stats {
	uint64_t start_unix_ms;    /* process start, Unix milliseconds */
	uint64_t start_ms;         /* ... monotonic */
	const char *state;         /* "connecting", "open", "closing", "waiting" */
	int64_t connected_since;   /* Unix seconds the tunnel opened, 0 while not open */
	uint64_t dials;            /* sessions started; reconnects = dials - 1 */
	char last_error[160];      /* the last session's end, or a dial failure */
	uint64_t bytes_to_runner;  /* DATA payload */
	uint64_t bytes_from_runner;
	uint64_t conns_opened;     /* CONNECTED sent */
	uint64_t conns_refused;    /* ERROR before any socket: allow list, limits, id */
	uint64_t conns_errored;    /* connect failed, stalled, out of memory */
	uint64_t msgs_dropped;     /* runner messages that could not be used */
};

#endif
