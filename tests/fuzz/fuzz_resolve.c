/* libFuzzer target: the agent's resolver (src/agent/resolve.c) end to
 * end: the hosts file, resolv.conf (nameservers, search, ndots, timeout,
 * attempts) and the DNS answers, through the real resolve() with its UDP
 * sockets on fz_os (no packet leaves the process).
 *
 * Input: NUL-separated: the name to resolve, the hosts file, resolv.conf;
 * then answers, each [how][len][bytes]: how & 1: the id of the pending A
 * query is written over the first two bytes, how & 2: the AAAA one's;
 * how >> 2 & 3 picks the source (127.0.0.1:53, [::1]:53, 10.0.0.1:53, a
 * stranger); how & 0x10: to the IPv6 socket. An answer goes out at each
 * wait; time passes when none is left.
 *
 * Checked besides the sanitizers: resolve() returns -1 with a reason, or
 * 1 to 16 addresses, each AF_INET or AF_INET6 with the port asked for;
 * no socket is left open. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fz_file.h"
#include "fz_frames.h"
#include "fz_in.h"
#include "fz_os.h"
#include "resolve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct {
	struct fz_in in;
	uint8_t ids[2][2];   /* the last query's id, A and AAAA */
	uint8_t pkt[1500];
} w;

static void on_send(struct fz_sock *s, const uint8_t *p, size_t n)
{
	if (n < 16) {
		fz_fail("resolve: a query shorter than a header and a question");
	}
	int aaaa = p[n - 4] == 0 && p[n - 3] == 28;
	w.ids[aaaa][0] = p[0];
	w.ids[aaaa][1] = p[1];
}

static socklen_t addr_of(uint8_t from, struct sockaddr_storage *ss)
{
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	switch (from & 3) {
	case 1:
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(53);
		a6->sin6_addr.s6_addr[15] = 1;
		return sizeof(*a6);
	case 2:
		a->sin_family = AF_INET;
		a->sin_port = htons(53);
		a->sin_addr.s_addr = htonl(0x0a000001);
		return sizeof(*a);
	case 3:
		a->sin_family = AF_INET;
		a->sin_port = htons(5353);
		a->sin_addr.s_addr = htonl(0x7f000002);
		return sizeof(*a);
	default:
		a->sin_family = AF_INET;
		a->sin_port = htons(53);
		a->sin_addr.s_addr = htonl(0x7f000001);
		return sizeof(*a);
	}
}

/* One answer to the socket of its family, or time passes. */
static int step(void)
{
	struct fz_in *in = &w.in;
	struct fz_sock *s;
	size_t n;

	if (!fz_in_more(in)) {
		return 0;
	}
	uint8_t how = fz_in_u8(in);
	const uint8_t *p = fz_in_take(in, fz_in_len(in), &n);
	if (n > sizeof(w.pkt)) {
		n = sizeof(w.pkt);
	}
	memcpy(w.pkt, p, n);
	for (int t = 0; t < 2 && n >= 2; t++) {
		if (how & (1 << t)) {
			w.pkt[0] = w.ids[t][0];
			w.pkt[1] = w.ids[t][1];
		}
	}
	/* The sockets are the resolver's only ones: v4 first, then v6. */
	s = fz_pick(0, (how >> 4) & 1);
	if (s != NULL) {
		fz_push_dgram(s, w.pkt, n, (uint8_t)((how >> 2) & 3));
	}
	return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	unsetenv("HOSTS_FILE");
	unsetenv("RESOLV_CONF");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static volatile sig_atomic_t stop;
	struct resolve_addr out[RESOLVE_MAX];
	char why[128];
	char host[300];
	char path[32];
	size_t n;
	const uint8_t *p;

	memset(&w, 0, sizeof(w));
	w.in.p = data;
	w.in.n = size;
	p = fz_in_part(&w.in, &n);
	if (n >= sizeof(host)) {
		return 0;
	}
	memcpy(host, p, n);
	host[n] = '\0';
	p = fz_in_part(&w.in, &n);
	fz_file(0, p, n, path);
	setenv("HOSTS_FILE", path, 1);
	p = fz_in_part(&w.in, &n);
	fz_file(1, p, n, path);
	setenv("RESOLV_CONF", path, 1);
	fz_reset();
	fz_hooks.step = step;
	fz_hooks.on_send = on_send;
	fz_hooks.addr_of = addr_of;
	stop = 0;
	memset(why, 'Z', sizeof(why));
	int r = resolve(host, 8001, out, RESOLVE_MAX, &stop, NULL, why, sizeof(why));
	if (r < 0 && strnlen(why, sizeof(why)) == sizeof(why)) {
		fz_fail("resolve: failed without a reason");
	}
	if (r == 0 || r > RESOLVE_MAX) {
		fz_fail("resolve: a count out of range");
	}
	for (int i = 0; i < r; i++) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&out[i].ss;
		if ((a->sin_family != AF_INET && a->sin_family != AF_INET6) || ntohs(a->sin_port) != 8001) {
			fz_fail("resolve: an address of another family or port");
		}
	}
	if (fz_open_count() != 0) {
		fz_fail("resolve: a socket left open");
	}
	return 0;
}
