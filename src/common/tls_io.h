/* tls_io: a BearSSL engine, client or server side, pumped over a connected
 * non-blocking socket; what both programs share of TLS. The side's own
 * module (the agent's tls_client.c, the server's tls_server.c) sets up the
 * context that embeds the engine, calls tls_io_setup() for the common
 * profile, and hands the struct tls_io to the transport.
 *
 * The profile (what is offered) is tls_profile.c's.
 *
 * Calls behave like read/write on a non-blocking socket: n > 0 bytes, 0 on
 * a clean close (read), -1 with errno = EAGAIN when the engine cannot move
 * now, -1 with errno = EPROTO (reason in tls_io_strerror) or a socket errno
 * on failure. A failure is marked once; every later call returns -1. */
#ifndef TLS_IO_H
#define TLS_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <bearssl.h>

#include "buf.h"
#include "tls_profile.h"

#define TLS_ERRMSG_MAX 192

struct tls_io {
	br_ssl_engine_context *eng;
	int fd;
	const char *peer;   /* "runner" or "agent", for messages */
	const char *verify; /* how the peer was verified, for the log; or NULL */
	/* Appended to a refusal before the handshake completed, or NULL. */
	const char *(*hint)(const struct tls_io *io);
	/* Frees the object this is part of (tls_io_free calls it). */
	void (*destroy)(struct tls_io *io);
	int failed;     /* marked once; every later call returns -1 */
	int fail_errno; /* errno those calls set: EPROTO or a socket errno */
	int hs_done;    /* handshake complete */
	int eof;        /* the socket reached end of stream */
	int first_byte; /* the peer's first byte, or -1 before any came */
	/* Record bytes between the socket and the engine, so one read or
	 * write moves many records; and, as for plain sockets, whether poll
	 * said the socket may be read (written) since the last short call. */
	struct buf rin;
	struct buf rout;
	int readable;
	int writable;
	char errmsg[TLS_ERRMSG_MAX];
};

/* The common profile on a zeroed client or server engine; buf (BIDI size)
 * is its record buffer. Also injects kernel entropy. */
void tls_io_setup(struct tls_io *io, br_ssl_engine_context *eng, int fd, const char *peer,
		  unsigned char *buf, size_t len);
/* Mark io failed (err EPROTO: msg, or the engine's error when msg is NULL). */
void tls_io_fail(struct tls_io *io, int err, const char *msg);

/* The cipher suite's name, once the handshake is complete. */
const char *tls_io_suite(const struct tls_io *io);
/* 1 once the handshake is complete, 0 while in progress, -1 on failure. */
int tls_io_handshake(struct tls_io *io);
ssize_t tls_io_read(struct tls_io *io, void *buf, size_t len);
ssize_t tls_io_write(struct tls_io *io, const void *buf, size_t len);
/* Write pending records to the socket; 0 ok (some may stay pending), -1. */
int tls_io_flush(struct tls_io *io);
/* POLLIN/POLLOUT the engine needs on its socket; want_write says the caller
 * has application bytes waiting. */
short tls_io_events(const struct tls_io *io, int want_write);
/* What poll() reported for the socket. */
void tls_io_ready(struct tls_io *io, short revents);
/* Encrypted bytes not yet written to the socket. */
size_t tls_io_pending_out(const struct tls_io *io);
/* Give back the staging buffers while they are empty (an idle peer). */
void tls_io_trim(struct tls_io *io);
/* Start a close_notify; later flushes send it. */
void tls_io_close(struct tls_io *io);
/* The failure in words ("certificate expired", "unknown CA", ...). */
const char *tls_io_strerror(const struct tls_io *io);
/* Free through io->destroy (NULL is fine); the socket stays open. */
void tls_io_free(struct tls_io *io);

#endif
