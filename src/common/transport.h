/* transport: the byte stream under a WebSocket, plain TCP (ws://) or TLS
 * (wss://), either side. Everything above it is the same for both. Non-blocking: read
 * and write return -1 with errno = EAGAIN when nothing can move now. */
#ifndef TRANSPORT_H
#define TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

struct tls_io;

struct transport {
	int fd;             /* connected non-blocking socket, -1 when closed */
	struct tls_io *tls; /* NULL for plain ws:// */
	/* Plain sockets: poll said input may be waiting (output may be
	 * taken), and no short read (write) has said otherwise since. A
	 * read or write that would surely return EAGAIN is not issued. */
	int readable;
	int writable;
};

/* Take ownership of fd and of tls (a TLS engine on fd, client or server
 * side, made by the caller; NULL for plain). */
void transport_init(struct transport *t, int fd, struct tls_io *tls);
/* 1 when ready for application bytes, 0 in progress, -1 failed. */
int transport_handshake(struct transport *t);
/* >0 bytes, 0 on clean end of stream, -1 with errno. */
ssize_t transport_read(struct transport *t, void *buf, size_t len);
/* >0 bytes accepted, -1 with errno (EAGAIN: try after poll). */
ssize_t transport_write(struct transport *t, const void *buf, size_t len);
/* Push buffered TLS records to the socket. 0 or -1. */
int transport_flush(struct transport *t);
/* What poll() reported for the socket. */
void transport_ready(struct transport *t, short revents);
/* Poll events to ask for; want_write: application bytes wait. */
short transport_events(const struct transport *t, int want_write);
/* Bytes accepted by transport_write but not yet on the socket. */
size_t transport_pending_out(const struct transport *t);
/* The last failure in words (TLS reason, or strerror of errno). */
const char *transport_strerror(const struct transport *t, int err);
/* Give back idle buffers (TLS staging). */
void transport_trim(struct transport *t);
/* Begin an orderly close (TLS close_notify); the fd stays open. */
void transport_shutdown(struct transport *t);
/* Close the socket and free TLS state. Safe to call twice. */
void transport_close(struct transport *t);

#endif
