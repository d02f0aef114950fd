/* net: socket helpers and the monotonic clock. Syscall wrappers: -1 with
 * errno on failure. */
#ifndef NET_H
#define NET_H

#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t net_now_ms(void);
/* New non-blocking, close-on-exec socket. */
int net_socket(int family, int type);
/* Start a non-blocking connect; 0 if done or in progress, -1 with errno. */
int net_connect_start(int fd, const struct sockaddr *sa, socklen_t len);
/* After POLLOUT: 0 if the connect succeeded, else the errno it failed with. */
int net_connect_result(int fd);
/* Start a connect to 127.0.0.1:port; returns the fd or -1 with errno. */
int net_connect_local(int type, uint16_t port);
/* TCP keepalive and TCP_USER_TIMEOUT on the runner socket (best effort). */
void net_tune_runner(int fd, unsigned user_timeout_ms);
/* The numeric address of sa ("127.0.0.1", "::1") into buf. */
void net_addr_str(const struct sockaddr *sa, char *buf, unsigned len);
/* A numeric listen address: "HOST:PORT", "[V6]:PORT", "localhost:PORT",
 * "*:PORT" or ":PORT" (every interface). 0, or -1 if malformed. */
int net_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* The port of an address, host byte order. */
uint16_t net_port(const struct sockaddr *sa);
/* Non-zero for 127.0.0.0/8 and ::1. */
int net_is_loopback(const struct sockaddr *sa);
/* A non-blocking socket of type bound to sa (listening, for SOCK_STREAM).
 * Returns the fd or -1 with errno. */
int net_listen(const struct sockaddr *sa, socklen_t len, int type);
/* ppoll until deadline_ms (net_now_ms() time; at once if past), with the
 * signals of waitmask let in. It also lets in a signal that came while
 * descriptors were ready: when ppoll returns them at once, the kernel
 * restores the blocked mask without delivering a pending signal, so a busy
 * loop would never see it (looked for at most every TC_SIGNAL_CHECK_MS). */
int net_ppoll(struct pollfd *pfd, nfds_t n, uint64_t deadline_ms, const sigset_t *waitmask);
/* Raise the soft open-file limit to the hard one (every connection is a
 * descriptor); returns the soft limit in force. */
uint64_t net_raise_nofile(void);
/* "connection refused": strerror(err) with a lower-case first letter. */
const char *net_reason(int err, char *buf, unsigned len);

#endif
