/* tls: BearSSL client engine behind the transport (wss://).
 *
 * Contract with transport.c and main.c (the TLS module owns everything
 * below; callers never touch BearSSL directly):
 * - tls_config_load() runs once at start-up when the URL is wss://. It
 *   loads and checks trust anchors, pin, client certificate and key; on a
 *   problem it fills err with one line and returns -1 (main exits 2).
 * - tls_new() starts a client handshake on a connected non-blocking socket.
 *   The engine is pumped only through the calls below, never blocks, and
 *   the caller polls fd for tls_events().
 * - tls_read/tls_write behave like read/write on a non-blocking socket:
 *   n > 0 bytes, 0 on clean close (read), -1 with errno = EAGAIN when the
 *   engine cannot move now, -1 with errno = EPROTO (reason in
 *   tls_strerror) or a socket errno on failure.
 * - tls_flush() writes pending records to the socket; 0 ok (some may stay
 *   pending, see tls_pending_out), -1 on failure.
 */
#ifndef TLS_CLIENT_H
#define TLS_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct config;
struct url;
struct tls_config;
struct tls;

int tls_config_load(struct tls_config **out, const struct config *cfg,
		    const struct url *url, char *err, size_t errlen);
void tls_config_free(struct tls_config *tc);

/* NULL on allocation failure. fd stays owned by the caller. */
struct tls *tls_new(const struct tls_config *tc, int fd);
void tls_free(struct tls *t);

/* 1 once the handshake (and verification) is complete, 0 while in
 * progress, -1 on failure. Pumps the engine. */
int tls_handshake(struct tls *t);
ssize_t tls_read(struct tls *t, void *buf, size_t len);
ssize_t tls_write(struct tls *t, const void *buf, size_t len);
int tls_flush(struct tls *t);
/* POLLIN/POLLOUT the engine needs on its socket; want_write says the caller
 * has application bytes waiting. */
short tls_events(const struct tls *t, int want_write);
/* Encrypted bytes not yet written to the socket (counts toward the send
 * high-water mark). */
size_t tls_pending_out(const struct tls *t);
/* Start a close_notify; later tls_flush() calls send it. */
void tls_close(struct tls *t);
/* The failure in words ("certificate expired", "unknown CA", ...). */
const char *tls_strerror(const struct tls *t);

/* The time certificates are checked against, as BearSSL counts it (days
 * since 1 January of year 0, seconds into the day): now, or build_epoch
 * when now is older (a clock at 1970 before NTP); returns 1 in that case,
 * else 0. Pure; both arguments in seconds since the Unix epoch. */
int tls_validation_time(int64_t now, int64_t build_epoch, uint32_t *days,
			uint32_t *secs);

#endif
