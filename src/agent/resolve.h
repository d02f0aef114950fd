/* resolve: a host name to addresses, for dialling the runner or a proxy,
 * without libc's resolver (21 KiB of a static binary): IP literals, then
 * the hosts file, then DNS over UDP to the nameservers of resolv.conf with
 * its search list, ndots, timeout and attempts (A and AAAA asked at once,
 * to every nameserver; the first good answer of each kind counts).
 * "localhost" works without a hosts file (FROM scratch images). IPv4
 * addresses come first. Answers must come from a nameserver's address and
 * port and carry the query's random id; no TCP fallback (an answer of A
 * and AAAA records fits a datagram). The files are /etc/hosts and
 * /etc/resolv.conf, or $HOSTS_FILE and $RESOLV_CONF.
 *
 * resolve() blocks, bounded by the resolver's timeouts, and wakes for stop
 * signals; the agent calls it only while no tunnel is up. The packet
 * functions are pure. */
#ifndef RESOLVE_H
#define RESOLVE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RESOLVE_MAX 16   /* addresses kept for one name */
#define RESOLVE_NAME_MAX 253

struct resolve_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Addresses of host with port set: their count (> 0), or -1 with a
 * one-line reason in why ("no such host", "no answer from nameserver
 * 10.0.0.2", ...). */
int resolve(const char *host, uint16_t port, struct resolve_addr *out, size_t max,
	    volatile sig_atomic_t *stop, const sigset_t *waitmask, char *why, size_t whylen);

/* A DNS query for name (qtype 1 = A, 28 = AAAA) into buf: its length, or
 * 0 if the name does not fit or is malformed. */
size_t resolve_query(uint8_t *buf, size_t cap, uint16_t id, const char *name, uint16_t qtype);

enum resolve_rcode {
	RESOLVE_ANSWER = 0,    /* a response to our query (maybe with no address) */
	RESOLVE_NXDOMAIN = 3,
	RESOLVE_IGNORE = -1,   /* not a response to our query (id, flags, question) */
	RESOLVE_FAILED = -2,   /* SERVFAIL, REFUSED, or a malformed response */
};

/* Parse a response to query id for qtype: A/AAAA records of the answer
 * section are appended to out (port set), *n counting. */
enum resolve_rcode resolve_answer(const uint8_t *pkt, size_t len, uint16_t id, uint16_t qtype,
				  uint16_t port, struct resolve_addr *out, size_t max, size_t *n);

#endif
