/* fz_os: a fake kernel for the whole-program fuzz targets. The real objects
 * of src/ are copied with their libc calls renamed (tests/fuzz/os.syms:
 * socket -> fz_socket, recv -> fz_recv, ppoll -> fz_ppoll, ...), so every
 * module runs unchanged while its sockets, clock and randomness live here,
 * in memory, driven by the fuzz input.
 *
 * Fake descriptors are numbered from FZ_FD_BASE; any other descriptor (a
 * file the program opens, stdio) goes to the real call, except that
 * writes to fd 1 and 2 are dropped unless $FUZZ_SHOW_LOG is set. Input
 * bytes are slices of the fuzz input (or of harness buffers that outlive
 * the run), never copied; a socketpair() is two fake sockets joined by
 * copies. Closing a fake descriptor twice aborts; at the
 * end of a run fz_open_count() says how many were leaked.
 *
 * poll: fz_ppoll() reports what is ready from the sockets' state, as a
 * kernel would (level-triggered; POLLHUP and POLLERR whatever was asked).
 * Before that it lets the harness act once (fz_hooks.step: apply one op
 * of its script). With nothing ready, time passes: the fake clock moves
 * on by the timeout and 0 is returned. */
#ifndef FZ_OS_H
#define FZ_OS_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#define FZ_FD_BASE 4000
#define FZ_MAX_FDS 256
#define FZ_SLICES 64

/* Bytes waiting to be read: p[0..n) repeated `repeat` times (a stream), or
 * one datagram (repeat 1) from source address `from`. */
struct fz_slice {
	const uint8_t *p;
	size_t n;
	size_t repeat;
	uint8_t from;
};

struct fz_sock {
	int used;
	int fd;
	int type;          /* SOCK_STREAM or SOCK_DGRAM */
	int role;          /* the harness's tag */
	uint32_t serial;   /* creation order (for harness selection) */
	int listening;
	int pending;       /* listener: connections accept() will return */
	int connecting;    /* connect() in progress */
	int result;        /* its outcome once known (0 or errno), -1 while not */
	int connected;
	int in_eof;        /* the peer's end of stream (after the queued bytes) */
	int in_err;        /* a pending error (reset): the next recv or send
			    * fails with it once, then EOF */
	int hup;           /* stream peer gone: POLLHUP, sends fail (EPIPE) */
	struct fz_slice in[FZ_SLICES];
	size_t in_head;
	size_t in_n;
	size_t in_off;     /* bytes of the head slice (all repeats) consumed */
	size_t out_budget; /* bytes send() still takes; SIZE_MAX: no limit */
	int out_err;       /* send() fails with it */
	int shut_wr;
	uint64_t out_total;
	uint16_t port;     /* where connect() aimed */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	uint8_t last_from; /* sendto: index of the address, see fz_addr */
	/* socketpair(): the other end's fd (-1: none, -2: closed); what it
	 * wrote, copied here, not yet read. */
	int pair;
	uint8_t *pipe;
	size_t pipe_len;
	size_t pipe_off;
};

/* Bytes a socket pair end holds for its reader at most. */
#define FZ_PIPE_CAP (256 * 1024)

/* What the harness plugs in. Every member may be NULL. */
struct fz_hooks {
	/* Apply one op of the script. Returns 1 if it acted, 0 if the op
	 * was "time passes", -1 if the script is over. */
	int (*step)(void);
	/* socket(): 0 to allow, or an errno to fail with. */
	int (*on_socket)(int domain, int type);
	/* connect() on a new socket: 0 to go on (a stream connects in the
	 * background until the harness says how it went), or an errno to
	 * fail at once. */
	int (*on_connect)(struct fz_sock *s);
	/* accept() created s from listener l. */
	void (*on_accept)(struct fz_sock *l, struct fz_sock *s);
	/* Bytes (a datagram) the program handed to s. */
	void (*on_send)(struct fz_sock *s, const uint8_t *p, size_t n);
	/* The address of source number `from` (recvfrom, accept): its
	 * length, or 0 for fz_addr's default. */
	socklen_t (*addr_of)(uint8_t from, struct sockaddr_storage *ss);
	/* Called when nothing is ready and no time may pass (a wait without
	 * a timeout, or a script that ended): 1 to go on, 0 to give up. */
	int (*on_idle)(void);
};

extern struct fz_hooks fz_hooks;

/* Start a run: every fake socket forgotten, the clock and the random
 * stream reset to a known state. */
void fz_reset(void);
/* Fake sockets still open (a leak if the program is done). */
size_t fz_open_count(void);
struct fz_sock *fz_sock_of(int fd);
/* The k-th open socket of a role (k modulo their count, in slot order);
 * NULL if there is none. */
struct fz_sock *fz_pick(int role, unsigned k);
/* Queue bytes for the program to read. front: before what is queued. */
void fz_push(struct fz_sock *s, const uint8_t *p, size_t n, size_t repeat, int front);
void fz_push_dgram(struct fz_sock *s, const uint8_t *p, size_t n, uint8_t from);
/* Bytes a script may feed in one run (repeats make volume cheap to ask
 * for, not to run): enough to pass every queue's mark. */
#define FZ_VOLUME_MAX (2u << 20)
/* fz_push at the back, with repeat cut so that *volume (what the run fed
 * so far) stays within FZ_VOLUME_MAX. */
void fz_feed(struct fz_sock *s, const uint8_t *p, size_t n, size_t repeat, size_t *volume);
/* Bytes queued and not read yet. */
size_t fz_queued(const struct fz_sock *s);
/* A new socket of the harness's own (a listener's backlog entry is
 * created by accept()). */
struct fz_sock *fz_new(int type, int role);
/* Source address number `from` as 127.0.0.1:40000+from (IPv6 ::1 when
 * v6); its length. */
socklen_t fz_addr(uint8_t from, int v6, struct sockaddr_storage *ss);

/* The fake clock (CLOCK_MONOTONIC), in ms. */
uint64_t fz_now(void);
void fz_advance(uint64_t ms);

/* Between fz_os.c (descriptors, input queues, poll, clock) and fz_sock.c
 * (the socket calls): a descriptor in the fake range; drop the head slice
 * of the input queue; copy up to n queued stream bytes into buf, consumed
 * unless peek. */
int fz_is_fake(int fd);
void fz_drop_head(struct fz_sock *s);
size_t fz_take_stream(struct fz_sock *s, uint8_t *buf, size_t n, int peek);

/* Calls the renamed objects make (fz_sock.c; poll, clock and syscall in
 * fz_os.c). */
int fz_socket(int domain, int type, int protocol);
int fz_socketpair(int domain, int type, int protocol, int sv[2]);
int fz_connect(int fd, const struct sockaddr *sa, socklen_t len);
int fz_bind(int fd, const struct sockaddr *sa, socklen_t len);
int fz_listen(int fd, int backlog);
int fz_accept(int fd, struct sockaddr *sa, socklen_t *len);
int fz_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int fz_getpeername(int fd, struct sockaddr *sa, socklen_t *len);
int fz_getsockname(int fd, struct sockaddr *sa, socklen_t *len);
int fz_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int fz_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
ssize_t fz_recv(int fd, void *buf, size_t n, int flags);
ssize_t fz_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa, socklen_t *len);
ssize_t fz_send(int fd, const void *buf, size_t n, int flags);
ssize_t fz_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
		  socklen_t len);
ssize_t fz_read(int fd, void *buf, size_t n);
ssize_t fz_write(int fd, const void *buf, size_t n);
int fz_shutdown(int fd, int how);
int fz_close(int fd);
int fz_ppoll(struct pollfd *pfd, nfds_t n, const struct timespec *ts, const void *sigmask);
int fz_poll(struct pollfd *pfd, nfds_t n, int timeout_ms);
int fz_clock_gettime(clockid_t clk, struct timespec *ts);
long fz_syscall(long nr, ...);

#endif
