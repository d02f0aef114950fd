/* httpx: one HTTP/1.1 exchange on a non-blocking stream socket, for the
 * small read-only endpoints (tunnel-server's --admin, the agent's
 * --status-port). It reads one request head (http.c), asks the owner's
 * route for the body, writes the answer with its head and closes:
 *
 *   READ -> WRITE -> LINGER -> DONE, or READ -> DONE (EOF, error, timeout)
 *
 * GET and HEAD only (405 otherwise); a malformed head is 400, an oversized
 * one 431, an answer that could not be built 500. The owner polls the fd
 * for httpx_events(), calls httpx_step() on events and at httpx's deadline,
 * and frees the exchange once DONE. */
#ifndef HTTPX_H
#define HTTPX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "text.h"

enum httpx_state {
	HX_READ,   /* reading the request head (deadline: timeout_ms) */
	HX_WRITE,  /* writing the answer (deadline: timeout_ms) */
	HX_LINGER, /* answer written, our side shut; dropping input until EOF */
	HX_DONE,   /* finished: the owner closes and frees it */
};

struct httpx_limits {
	const char *what;      /* for logs: "admin", "status" */
	size_t request_max;    /* request head bytes (431 past it) */
	size_t response_max;   /* answer bytes (500 past it) */
	uint64_t timeout_ms;   /* to read the request, and to write the answer */
	uint64_t linger_ms;    /* to drain the client's input after the answer */
};

/* What a route answers; status and type are set to 200 and plain text
 * before the call. extra is more header lines, each ending in CRLF. */
struct httpx_answer {
	int status;
	const char *type;
	const char *extra;
};

/* Write the body for path[0..n) into t; set a->status to 404 for a path it
 * does not serve (the body is then replaced). */
typedef void (*httpx_route)(void *ctx, const char *path, size_t n, struct text *t,
			    struct httpx_answer *a);

struct httpx {
	int fd;
	enum httpx_state state;
	uint64_t deadline;
	const struct httpx_limits *lim;
	struct buf in;         /* the request head */
	struct text out;       /* the answer, as it is built and written */
	char addr[64];         /* the client, for logs */
};

/* Start reading a request on fd (owned from now: httpx_free closes it). */
void httpx_open(struct httpx *x, int fd, const char *addr, const struct httpx_limits *lim,
		uint64_t now);
/* Move the exchange along: read, answer (route), write, linger, or end
 * it at its deadline. */
void httpx_step(struct httpx *x, uint64_t now, httpx_route route, void *ctx);
/* The poll events it waits for: POLLIN, POLLOUT, or 0 once DONE. */
short httpx_events(const struct httpx *x);
/* Close the fd and free the buffers. */
void httpx_free(struct httpx *x);

#endif
