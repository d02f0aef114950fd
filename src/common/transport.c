#include "transport.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls_io.h"

void transport_init(struct transport *t, int fd, struct tls_io *tls)
{
	t->fd = fd;
	t->tls = tls;
	t->readable = 0;
	t->writable = 1;
}

int transport_handshake(struct transport *t)
{
	return t->tls != NULL ? tls_io_handshake(t->tls) : 1;
}

ssize_t transport_read(struct transport *t, void *buf, size_t len)
{
	ssize_t n;

	if (t->tls != NULL) {
		return tls_io_read(t->tls, buf, len);
	}
	if (!t->readable) {
		errno = EAGAIN;
		return -1;
	}
	n = read(t->fd, buf, len);
	if (n < (ssize_t)len) {
		t->readable = 0; /* drained (or ended): wait for poll */
	}
	return n;
}

ssize_t transport_write(struct transport *t, const void *buf, size_t len)
{
	ssize_t n;

	if (t->tls != NULL) {
		return tls_io_write(t->tls, buf, len);
	}
	if (!t->writable) {
		errno = EAGAIN;
		return -1;
	}
	n = send(t->fd, buf, len, MSG_NOSIGNAL);
	if (n < (ssize_t)len) {
		t->writable = 0; /* full: wait for poll */
	}
	return n;
}

int transport_flush(struct transport *t)
{
	return t->tls != NULL ? tls_io_flush(t->tls) : 0;
}

void transport_ready(struct transport *t, short revents)
{
	if (t->tls != NULL) {
		tls_io_ready(t->tls, revents);
		return;
	}
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		t->readable = 1;
	}
	if (revents & (POLLOUT | POLLHUP | POLLERR)) {
		t->writable = 1;
	}
}

short transport_events(const struct transport *t, int want_write)
{
	if (t->tls != NULL) {
		return tls_io_events(t->tls, want_write);
	}
	return (short)(POLLIN | (want_write ? POLLOUT : 0));
}

size_t transport_pending_out(const struct transport *t)
{
	return t->tls != NULL ? tls_io_pending_out(t->tls) : 0;
}

const char *transport_strerror(const struct transport *t, int err)
{
	if (t->tls != NULL && err == EPROTO) {
		return tls_io_strerror(t->tls);
	}
	return strerror(err);
}

void transport_trim(struct transport *t)
{
	if (t->tls != NULL) {
		tls_io_trim(t->tls);
	}
}

void transport_shutdown(struct transport *t)
{
	if (t->tls != NULL) {
		tls_io_close(t->tls);
	}
}

void transport_close(struct transport *t)
{
	if (t->tls != NULL) {
		tls_io_free(t->tls);
		t->tls = NULL;
	}
	if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
}
