/* fz_sock: the socket calls of fz_os's fake kernel (see fz_os.h). */
#include "fz_os.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int show_log = -1; /* $FUZZ_SHOW_LOG: stdout and stderr are written */

static struct fz_sock *need(int fd)
{
	struct fz_sock *s = fz_sock_of(fd);

	if (s == NULL) {
		errno = EBADF;
	}
	return s;
}

/* A connect the harness finished: the socket is connected now. */
static void settle(struct fz_sock *s)
{
	if (s->connecting && s->result == 0) {
		s->connecting = 0;
		s->connected = 1;
	}
}

int fz_socket(int domain, int type, int protocol)
{
	int base = type & 0xf;
	int err = fz_hooks.on_socket != NULL ? fz_hooks.on_socket(domain, base) : 0;
	struct fz_sock *s;

	if (err != 0) {
		errno = err;
		return -1;
	}
	s = fz_new(base == SOCK_DGRAM ? SOCK_DGRAM : SOCK_STREAM, 0);
	if (s == NULL) {
		errno = EMFILE;
		return -1;
	}
	return s->fd;
}

int fz_socketpair(int domain, int type, int protocol, int sv[2])
{
	struct fz_sock *a = fz_new(SOCK_STREAM, 0);
	struct fz_sock *b = a != NULL ? fz_new(SOCK_STREAM, 0) : NULL;

	if (b == NULL) {
		if (a != NULL) {
			a->used = 0;
		}
		errno = EMFILE;
		return -1;
	}
	a->connected = b->connected = 1;
	a->pair = b->fd;
	b->pair = a->fd;
	sv[0] = a->fd;
	sv[1] = b->fd;
	return 0;
}

/* send() on a socket pair end: a copy for the other end. */
static ssize_t pipe_send(struct fz_sock *s, const uint8_t *buf, size_t n)
{
	struct fz_sock *p = s->pair >= 0 ? fz_sock_of(s->pair) : NULL;
	size_t room;

	if (p == NULL || s->shut_wr) {
		errno = EPIPE;
		return -1;
	}
	if (p->pipe_off > 0) {
		memmove(p->pipe, p->pipe + p->pipe_off, p->pipe_len - p->pipe_off);
		p->pipe_len -= p->pipe_off;
		p->pipe_off = 0;
	}
	room = FZ_PIPE_CAP - p->pipe_len;
	if (room == 0) {
		errno = EAGAIN;
		return -1;
	}
	if (p->pipe == NULL) {
		p->pipe = malloc(FZ_PIPE_CAP);
		if (p->pipe == NULL) {
			abort();
		}
	}
	if (n > room) {
		n = room;
	}
	memcpy(p->pipe + p->pipe_len, buf, n);
	p->pipe_len += n;
	s->out_total += n;
	return (ssize_t)n;
}

static ssize_t pipe_recv(struct fz_sock *s, uint8_t *buf, size_t n, int peek)
{
	size_t have = s->pipe_len - s->pipe_off;

	if (have == 0) {
		if (s->in_eof || s->pair == -2) {
			return 0;
		}
		errno = EAGAIN;
		return -1;
	}
	if (n > have) {
		n = have;
	}
	memcpy(buf, s->pipe + s->pipe_off, n);
	if (!peek) {
		s->pipe_off += n;
	}
	return (ssize_t)n;
}

int fz_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct fz_sock *s = need(fd);
	int err;

	if (s == NULL) {
		return -1;
	}
	if (len <= sizeof(s->peer)) {
		memcpy(&s->peer, sa, len);
		s->peer_len = len;
	}
	s->port = ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
						  : ((const struct sockaddr_in *)sa)->sin_port);
	err = fz_hooks.on_connect != NULL ? fz_hooks.on_connect(s) : 0;
	if (err != 0) {
		errno = err;
		return -1;
	}
	if (s->type == SOCK_DGRAM) {
		s->connected = 1;
		return 0;
	}
	s->connecting = 1;
	errno = EINPROGRESS;
	return -1;
}

int fz_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct fz_sock *s = need(fd);

	if (s == NULL) {
		return -1;
	}
	s->port = ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
						  : ((const struct sockaddr_in *)sa)->sin_port);
	return 0;
}

int fz_listen(int fd, int backlog)
{
	struct fz_sock *s = need(fd);

	if (s == NULL) {
		return -1;
	}
	s->listening = 1;
	return 0;
}

int fz_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct fz_sock *l = need(fd);
	struct fz_sock *s;
	struct sockaddr_storage ss;
	socklen_t sl;

	if (l == NULL) {
		return -1;
	}
	if (!l->listening || l->pending == 0) {
		errno = EAGAIN;
		return -1;
	}
	s = fz_new(SOCK_STREAM, 0);
	if (s == NULL) {
		errno = EMFILE;
		return -1;
	}
	l->pending--;
	s->connected = 1;
	sl = fz_addr((uint8_t)s->serial, 0, &ss);
	memcpy(&s->peer, &ss, sl);
	s->peer_len = sl;
	if (sa != NULL && len != NULL) {
		memcpy(sa, &ss, *len < sl ? *len : sl);
		*len = sl;
	}
	if (fz_hooks.on_accept != NULL) {
		fz_hooks.on_accept(l, s);
	}
	return s->fd;
}

int fz_accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	return fz_accept4(fd, sa, len, 0);
}

int fz_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct fz_sock *s = need(fd);

	if (s == NULL) {
		return -1;
	}
	settle(s);
	if (!s->connected) {
		errno = ENOTCONN;
		return -1;
	}
	memcpy(sa, &s->peer, *len < s->peer_len ? *len : s->peer_len);
	*len = s->peer_len;
	return 0;
}

int fz_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct sockaddr_storage ss;
	socklen_t sl = fz_addr(0, 0, &ss);

	if (need(fd) == NULL) {
		return -1;
	}
	memcpy(sa, &ss, *len < sl ? *len : sl);
	*len = sl;
	return 0;
}

int fz_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct fz_sock *s = need(fd);

	if (s == NULL) {
		return -1;
	}
	if (level == SOL_SOCKET && name == SO_ERROR && *len >= sizeof(int)) {
		int err = s->connecting && s->result > 0 ? s->result : 0;
		memcpy(val, &err, sizeof(err));
		*len = sizeof(err);
		return 0;
	}
	memset(val, 0, *len);
	return 0;
}

int fz_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	if (!fz_is_fake(fd)) {
		return setsockopt(fd, level, name, val, len);
	}
	return need(fd) != NULL ? 0 : -1;
}

ssize_t fz_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa, socklen_t *len)
{
	struct fz_sock *s = need(fd);

	if (s == NULL) {
		return -1;
	}
	if (s->pair != -1) {
		return pipe_recv(s, buf, n, (flags & MSG_PEEK) != 0);
	}
	settle(s);
	if (s->connecting) {
		if (s->result > 0) {
			errno = s->result;
			return -1;
		}
		errno = EAGAIN;
		return -1;
	}
	if (s->type == SOCK_DGRAM && s->in_n > 0) {
		const struct fz_slice *sl = &s->in[s->in_head];
		size_t k = sl->n < n ? sl->n : n;
		memcpy(buf, sl->p, k);
		if (sa != NULL && len != NULL) {
			struct sockaddr_storage ss;
			socklen_t l = fz_addr(sl->from, sl->from & 0x80, &ss);
			memcpy(sa, &ss, *len < l ? *len : l);
			*len = l;
		}
		if (!(flags & MSG_PEEK)) {
			fz_drop_head(s);
		}
		return (ssize_t)k;
	}
	if (s->type == SOCK_STREAM && s->in_n > 0) {
		if (sa != NULL && len != NULL) {
			*len = 0;
		}
		return (ssize_t)fz_take_stream(s, buf, n, (flags & MSG_PEEK) != 0);
	}
	if (s->in_err != 0) {
		errno = s->in_err;
		if (!(flags & MSG_PEEK)) {
			s->in_err = 0;
			s->in_eof = s->type == SOCK_STREAM;
		}
		return -1;
	}
	if (s->in_eof && s->type == SOCK_STREAM) {
		return 0;
	}
	errno = EAGAIN;
	return -1;
}

ssize_t fz_recv(int fd, void *buf, size_t n, int flags)
{
	return fz_recvfrom(fd, buf, n, flags, NULL, NULL);
}

ssize_t fz_read(int fd, void *buf, size_t n)
{
	if (!fz_is_fake(fd)) {
		return read(fd, buf, n);
	}
	return fz_recvfrom(fd, buf, n, 0, NULL, NULL);
}

ssize_t fz_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
		  socklen_t len)
{
	struct fz_sock *s = need(fd);
	size_t w;

	if (s == NULL) {
		return -1;
	}
	if (s->pair != -1) {
		return pipe_send(s, buf, n);
	}
	settle(s);
	if (s->out_err != 0) {
		errno = s->out_err;
		return -1;
	}
	if (s->in_err != 0) {
		/* A pending socket error fails the next call, whichever it is. */
		errno = s->in_err;
		s->in_err = 0;
		s->in_eof = s->type == SOCK_STREAM;
		return -1;
	}
	if (s->shut_wr || (s->hup && s->type == SOCK_STREAM)) {
		errno = EPIPE; /* a hung-up stream takes nothing more */
		return -1;
	}
	if (s->type == SOCK_STREAM && !s->connected) {
		errno = s->connecting ? EAGAIN : ENOTCONN;
		return -1;
	}
	if (s->out_budget == 0) {
		errno = EAGAIN;
		return -1;
	}
	/* A datagram goes whole while any budget is left (POLLOUT said so). */
	w = n < s->out_budget || s->type == SOCK_DGRAM ? n : s->out_budget;
	if (s->out_budget != SIZE_MAX) {
		s->out_budget -= w < s->out_budget ? w : s->out_budget;
	}
	if (sa != NULL && sa->sa_family == AF_INET) {
		s->last_from = (uint8_t)(ntohs(((const struct sockaddr_in *)sa)->sin_port) - 40000);
	}
	s->out_total += w;
	if (fz_hooks.on_send != NULL) {
		fz_hooks.on_send(s, buf, w);
	}
	return (ssize_t)w;
}

ssize_t fz_send(int fd, const void *buf, size_t n, int flags)
{
	return fz_sendto(fd, buf, n, flags, NULL, 0);
}

ssize_t fz_write(int fd, const void *buf, size_t n)
{
	if (fz_is_fake(fd)) {
		return fz_sendto(fd, buf, n, 0, NULL, 0);
	}
	if (fd == 1 || fd == 2) {
		if (show_log < 0) {
			show_log = getenv("FUZZ_SHOW_LOG") != NULL;
		}
		if (!show_log) {
			return (ssize_t)n;
		}
	}
	return write(fd, buf, n);
}

int fz_shutdown(int fd, int how)
{
	struct fz_sock *s = need(fd);

	if (s == NULL) {
		return -1;
	}
	if (!s->connected) {
		errno = ENOTCONN;
		return -1;
	}
	if (how == SHUT_WR || how == SHUT_RDWR) {
		struct fz_sock *p = s->pair >= 0 ? fz_sock_of(s->pair) : NULL;
		s->shut_wr = 1;
		if (p != NULL) {
			p->in_eof = 1;
		}
	}
	return 0;
}

int fz_close(int fd)
{
	if (!fz_is_fake(fd)) {
		return close(fd);
	}
	struct fz_sock *s = fz_sock_of(fd);
	if (s == NULL) {
		abort(); /* a fake socket closed twice, or never opened */
	}
	struct fz_sock *p = s->pair >= 0 ? fz_sock_of(s->pair) : NULL;
	if (p != NULL) {
		p->pair = -2; /* its reads end once the bytes are taken */
		p->in_eof = 1;
	}
	free(s->pipe);
	s->pipe = NULL;
	s->used = 0;
	return 0;
}
