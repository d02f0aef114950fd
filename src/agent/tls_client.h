/* tls_client: the agent's side of wss:// (BearSSL client context,
 * verification of the runner, client certificate).
 *
 * Contract with main.c and the session:
 * - tls_client_config_load() runs once at start-up when the URL is wss://.
 *   It loads and checks trust anchors, pin, client certificate and key; on
 *   a problem it fills err with one line and returns -1 (main exits 2).
 * - tls_client_new() starts a client handshake on a connected non-blocking
 *   socket and returns the engine for the transport (tls_io.h), which
 *   pumps it and frees it. */
#ifndef TLS_CLIENT_H
#define TLS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct url;
struct tls_config;
struct tls_io;

int tls_client_config_load(struct tls_config **out, const struct config *cfg,
			   const struct url *url, char *err, size_t errlen);
void tls_client_config_free(struct tls_config *tc);

/* NULL on allocation failure. fd stays owned by the caller. */
struct tls_io *tls_client_new(const struct tls_config *tc, int fd);

/* The time certificates are checked against, as BearSSL counts it (days
 * since 1 January of year 0, seconds into the day): now, or build_epoch
 * when now is older (a clock at 1970 before NTP); returns 1 in that case,
 * else 0. Pure; both arguments in seconds since the Unix epoch. */
int tls_client_validation_time(int64_t now, int64_t build_epoch, uint32_t *days,
			       uint32_t *secs);

#endif
