/* dial: the agent's TCP connection to the runner, or through an HTTP
 * CONNECT proxy to it (proxy.h). The name is resolved with a blocking
 * call (no tunnel is up), every address is tried in turn within the
 * timeout, and the proxy's answer is awaited the same way; every wait
 * wakes for stop signals. Each step is reported: the session logs it,
 * --check prints it. */
#ifndef DIAL_H
#define DIAL_H

#include <signal.h>
#include <stdint.h>

struct url;
struct proxy;

enum dial_step { DIAL_RESOLVE, DIAL_CONNECT, DIAL_PROXY };

struct dial_env {
	uint64_t timeout_ms;        /* per connect, and for the proxy's answer */
	const struct url *target;   /* the runner */
	const struct proxy *proxy;  /* NULL: direct */
	volatile sig_atomic_t *stop;
	const sigset_t *waitmask;
	/* One step: ok or not, and details as key=value text. */
	void (*report)(void *ctx, enum dial_step step, int ok, const char *detail);
	void *ctx;
};

/* A connected non-blocking socket whose bytes reach the runner, or -1
 * (each failure reported; errno EINTR when a stop signal came). */
int dial_connect(const struct dial_env *env);

#endif
