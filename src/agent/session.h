/* session: one connection to the runner, from dial to close, with the
 * poll() loop that serves the tunnel while it is up. main() runs sessions
 * one after another with backoff between them. */
#ifndef SESSION_H
#define SESSION_H

#include <signal.h>
#include <stddef.h>

#include "bounds.h"
#include "url.h"

struct config;
struct url;
struct tls_config;
struct proxy;
struct stats;

enum session_result {
	SESSION_FAILED,  /* never reached the open tunnel */
	SESSION_LOST,    /* was open, then ended; *up_ms says how long */
	SESSION_STOPPED, /* a stop signal arrived; exit 0 */
};

/* What a session needs from its owner. stop is the signal flag; sigmask is
 * the mask to wait with (stop signals unblocked only while waiting). */
struct session_env {
	const struct config *cfg;
	const struct url *url;
	const char *shown_url;        /* the runner URL without user info */
	const struct tls_config *tls; /* NULL for ws:// */
	const struct proxy *proxy;    /* NULL: direct */
	struct stats *stats;          /* counted into; the status port reads it */
	volatile sig_atomic_t *stop;
	volatile sig_atomic_t *report; /* SIGUSR1: log the status */
	const sigset_t *waitmask;
};

/* Room for the upgrade's extra header lines. */
#define SESSION_HEADERS_MAX (TC_TOKEN_MAX + URL_AUTH_MAX + 64 + TC_HEADERS_MAX)

/* The upgrade request's extra header lines (Authorization from --token or
 * the URL's user info, then --header lines), each ending in CRLF. They
 * hold secrets: wipe out after use. */
void session_upgrade_headers(const struct session_env *env, char *out, size_t outlen);

/* Dial, upgrade and serve until the tunnel ends. */
enum session_result session_run(const struct session_env *env, unsigned long *up_ms);

#endif
