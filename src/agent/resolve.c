#include "resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fmt.h"
#include "net.h"
#include "rand.h"

#define QTYPE_A 1
#define QTYPE_AAAA 28
#define NAMESERVERS_MAX 3
#define SEARCH_MAX 6
#define FILE_MAX (64 * 1024)
#define PACKET_MAX 1232 /* what a resolver expects a UDP answer to fit */

struct resolv_conf {
	struct resolve_addr ns[NAMESERVERS_MAX];
	size_t n_ns;
	char search[SEARCH_MAX][RESOLVE_NAME_MAX + 1];
	size_t n_search;
	unsigned ndots;
	unsigned timeout_s;
	unsigned attempts;
};

static void add(struct resolve_addr *out, size_t max, size_t *n, int family, const void *a,
		uint16_t port)
{
	if (*n >= max) {
		return;
	}
	memset(&out[*n], 0, sizeof(out[*n]));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&out[*n].ss;
		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		memcpy(&s->sin_addr, a, 4);
		out[*n].len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out[*n].ss;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		memcpy(&s->sin6_addr, a, 16);
		out[*n].len = sizeof(*s);
	}
	(*n)++;
}

/* An IPv4 or IPv6 literal. 1 if host was one. */
static int literal(const char *host, uint16_t port, struct resolve_addr *out, size_t max, size_t *n)
{
	uint8_t a[16];

	if (inet_pton(AF_INET, host, a) == 1) {
		add(out, max, n, AF_INET, a, port);
		return 1;
	}
	if (inet_pton(AF_INET6, host, a) == 1) {
		add(out, max, n, AF_INET6, a, port);
		return 1;
	}
	return 0;
}

/* A small file, NUL-terminated, or NULL. */
static char *slurp(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf;
	size_t len = 0;

	if (fd < 0) {
		return NULL;
	}
	buf = malloc(FILE_MAX + 1);
	while (buf != NULL && len < FILE_MAX) {
		ssize_t r = read(fd, buf + len, FILE_MAX - len);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			break;
		}
		len += (size_t)r;
	}
	close(fd);
	if (buf != NULL) {
		buf[len] = '\0';
	}
	return buf;
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : dflt;
}

/* The next whitespace-separated word of a line: its start, *len set; NULL
 * at the end of the line or a comment. */
static char *word(char **p, size_t *len)
{
	char *s = *p + strspn(*p, " \t\r");
	char *e;

	if (*s == '\0' || *s == '\n' || *s == '#' || *s == ';') {
		return NULL;
	}
	e = s + strcspn(s, " \t\r\n#");
	*len = (size_t)(e - s);
	*p = e;
	return s;
}

static char *next_line(char *p)
{
	char *nl = strchr(p, '\n');

	return nl != NULL ? nl + 1 : p + strlen(p);
}

/* Addresses of name in the hosts file (IPv4 first). */
static void from_hosts(const char *name, uint16_t port, struct resolve_addr *out, size_t max,
		       size_t *n)
{
	char *text = slurp(env_or("HOSTS_FILE", "/etc/hosts"));

	for (int family = AF_INET; text != NULL; family = AF_INET6) {
		for (char *line = text; *line != '\0'; line = next_line(line)) {
			char *p = line;
			size_t len;
			char *ip = word(&p, &len);
			uint8_t a[16];
			char ipbuf[64];
			char *w;

			if (ip == NULL || len >= sizeof(ipbuf)) {
				continue;
			}
			memcpy(ipbuf, ip, len);
			ipbuf[len] = '\0';
			if (inet_pton(family, ipbuf, a) != 1) {
				continue;
			}
			for (w = word(&p, &len); w != NULL; w = word(&p, &len)) {
				if (len == strlen(name) && strncasecmp(w, name, len) == 0) {
					add(out, max, n, family, a, port);
					break;
				}
			}
		}
		if (family == AF_INET6) {
			break;
		}
	}
	free(text);
}

static void load_conf(struct resolv_conf *c)
{
	char *text = slurp(env_or("RESOLV_CONF", "/etc/resolv.conf"));

	memset(c, 0, sizeof(*c));
	c->ndots = 1;
	c->timeout_s = 5;
	c->attempts = 2;
	for (char *line = text; line != NULL && *line != '\0'; line = next_line(line)) {
		char *p = line;
		size_t len;
		char *key = word(&p, &len);
		char *v;
		size_t vlen;

		if (key == NULL) {
			continue;
		}
		if (len == 10 && strncmp(key, "nameserver", 10) == 0) {
			v = word(&p, &vlen);
			if (v != NULL && vlen < 64) {
				char ip[64];
				memcpy(ip, v, vlen);
				ip[vlen] = '\0';
				literal(ip, 53, c->ns, NAMESERVERS_MAX, &c->n_ns);
			}
		} else if ((len == 6 && strncmp(key, "search", 6) == 0) ||
			   (len == 6 && strncmp(key, "domain", 6) == 0)) {
			c->n_search = 0;
			for (v = word(&p, &vlen); v != NULL && c->n_search < SEARCH_MAX; v = word(&p, &vlen)) {
				if (vlen > 0 && vlen <= RESOLVE_NAME_MAX - 2) {
					memcpy(c->search[c->n_search], v, vlen);
					c->search[c->n_search++][vlen] = '\0';
				}
			}
		} else if (len == 7 && strncmp(key, "options", 7) == 0) {
			for (v = word(&p, &vlen); v != NULL; v = word(&p, &vlen)) {
				unsigned num = 0;
				const char *colon = memchr(v, ':', vlen);
				for (const char *d = colon != NULL ? colon + 1 : v + vlen; d < v + vlen; d++) {
					num = *d >= '0' && *d <= '9' && num < 100 ? num * 10 + (unsigned)(*d - '0') : num;
				}
				if (strncmp(v, "ndots:", 6) == 0) {
					c->ndots = num > 15 ? 15 : num;
				} else if (strncmp(v, "timeout:", 8) == 0 && num > 0) {
					c->timeout_s = num > 30 ? 30 : num;
				} else if (strncmp(v, "attempts:", 9) == 0 && num > 0) {
					c->attempts = num > 5 ? 5 : num;
				}
			}
		}
	}
	free(text);
	if (c->n_ns == 0) {
		size_t k = 0;
		literal("127.0.0.1", 53, c->ns, 1, &k); /* the resolver's default */
		c->n_ns = 1;
	}
}

/* ---- packets ---- */

size_t resolve_query(uint8_t *buf, size_t cap, uint16_t id, const char *name, uint16_t qtype)
{
	size_t n = 12;
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.') {
		len--; /* rooted */
	}
	if (len == 0 || len > RESOLVE_NAME_MAX || cap < 12 + len + 2 + 4) {
		return 0;
	}
	memset(buf, 0, 12);
	buf[0] = (uint8_t)(id >> 8);
	buf[1] = (uint8_t)id;
	buf[2] = 0x01; /* recursion desired */
	buf[5] = 1;    /* one question */
	for (size_t i = 0; i < len;) {
		size_t l = strcspn(name + i, ".");
		if (l == 0 || l > 63 || i + l > len) {
			return 0;
		}
		buf[n++] = (uint8_t)l;
		memcpy(buf + n, name + i, l);
		n += l;
		i += l + 1;
	}
	buf[n++] = 0;
	buf[n++] = (uint8_t)(qtype >> 8);
	buf[n++] = (uint8_t)qtype;
	buf[n++] = 0;
	buf[n++] = 1; /* class IN */
	return n;
}

/* Skip a (possibly compressed) name at *off. 0, or -1 if malformed. */
static int skip_name(const uint8_t *p, size_t len, size_t *off)
{
	for (int labels = 0; labels < 128; labels++) {
		if (*off >= len) {
			return -1;
		}
		uint8_t l = p[*off];
		if ((l & 0xc0) == 0xc0) {
			*off += 2; /* a pointer ends the name */
			return *off <= len ? 0 : -1;
		}
		if (l & 0xc0) {
			return -1;
		}
		*off += 1u + l;
		if (l == 0) {
			return 0;
		}
	}
	return -1;
}

enum resolve_rcode resolve_answer(const uint8_t *pkt, size_t len, uint16_t id, uint16_t qtype,
				  uint16_t port, struct resolve_addr *out, size_t max, size_t *n)
{
	size_t off = 12;
	unsigned ancount;

	if (len < 12 || (pkt[0] << 8 | pkt[1]) != id || !(pkt[2] & 0x80) || (pkt[2] & 0x78) != 0 ||
	    (pkt[4] << 8 | pkt[5]) != 1) {
		return RESOLVE_IGNORE; /* not an answer to our one question */
	}
	if (skip_name(pkt, len, &off) != 0 || off + 4 > len ||
	    (pkt[off] << 8 | pkt[off + 1]) != qtype) {
		return RESOLVE_IGNORE;
	}
	off += 4;
	if ((pkt[3] & 0x0f) == RESOLVE_NXDOMAIN) {
		return RESOLVE_NXDOMAIN;
	}
	if ((pkt[3] & 0x0f) != 0) {
		return RESOLVE_FAILED;
	}
	ancount = (unsigned)(pkt[6] << 8 | pkt[7]);
	for (unsigned i = 0; i < ancount; i++) {
		unsigned type;
		unsigned rdlen;

		if (skip_name(pkt, len, &off) != 0 || off + 10 > len) {
			return RESOLVE_FAILED;
		}
		type = (unsigned)(pkt[off] << 8 | pkt[off + 1]);
		rdlen = (unsigned)(pkt[off + 8] << 8 | pkt[off + 9]);
		off += 10;
		if (off + rdlen > len) {
			return RESOLVE_FAILED;
		}
		if (type == QTYPE_A && rdlen == 4 && qtype == QTYPE_A) {
			add(out, max, n, AF_INET, pkt + off, port);
		} else if (type == QTYPE_AAAA && rdlen == 16 && qtype == QTYPE_AAAA) {
			add(out, max, n, AF_INET6, pkt + off, port);
		}
		off += rdlen;
	}
	return RESOLVE_ANSWER;
}

/* ---- DNS over UDP ---- */

static int same_addr(const struct sockaddr_storage *a, socklen_t alen, const struct resolve_addr *b)
{
	return alen == b->len && memcmp(a, &b->ss, alen) == 0;
}

/* Ask every nameserver for name's A and AAAA records, attempts times.
 * 1 with addresses, 0 for no such name (NXDOMAIN or no records), -1 when
 * no nameserver answered (why set). */
static int query(const struct resolv_conf *c, const char *name, uint16_t port,
		 struct resolve_addr *out, size_t max, size_t *n, volatile sig_atomic_t *stop,
		 const sigset_t *waitmask, char *why, size_t whylen)
{
	static const uint16_t types[2] = {QTYPE_A, QTYPE_AAAA};
	struct resolve_addr got[2][RESOLVE_MAX];
	size_t ngot[2] = {0, 0};
	int fds[2] = {-1, -1};
	int rc = -1;

	for (unsigned attempt = 0; attempt < c->attempts && rc < 0 && !*stop; attempt++) {
		int answered[2] = {0, 0};
		uint16_t id[2];
		uint8_t pkt[PACKET_MAX];
		uint64_t deadline = net_now_ms() + (uint64_t)c->timeout_s * 1000;

		for (int t = 0; t < 2; t++) {
			uint8_t q[RESOLVE_NAME_MAX + 32];
			size_t qlen;
			if (rand_bytes(&id[t], sizeof(id[t])) != 0) {
				id[t] = (uint16_t)(net_now_ms() + (uint64_t)t);
			}
			qlen = resolve_query(q, sizeof(q), id[t], name, types[t]);
			if (qlen == 0) {
				fmt_snprintf(why, whylen, "not a valid host name");
				return 0;
			}
			for (size_t s = 0; s < c->n_ns; s++) {
				int fam = c->ns[s].ss.ss_family == AF_INET6;
				if (fds[fam] < 0) {
					fds[fam] = net_socket(fam ? AF_INET6 : AF_INET, SOCK_DGRAM);
				}
				if (fds[fam] >= 0) {
					(void)sendto(fds[fam], q, qlen, 0, (const struct sockaddr *)&c->ns[s].ss,
						     c->ns[s].len);
				}
			}
		}
		while (!(answered[0] && answered[1]) && !*stop) {
			struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
			if (net_now_ms() >= deadline) {
				break;
			}
			if (net_ppoll(p, 2, deadline, waitmask) <= 0) {
				continue;
			}
			for (int f = 0; f < 2; f++) {
				struct sockaddr_storage from;
				socklen_t fl = sizeof(from);
				ssize_t r;

				if (!(p[f].revents & POLLIN)) {
					continue;
				}
				r = recvfrom(fds[f], pkt, sizeof(pkt), 0, (struct sockaddr *)&from, &fl);
				int known = 0;
				for (size_t s = 0; s < c->n_ns && r > 0; s++) {
					known |= same_addr(&from, fl, &c->ns[s]);
				}
				for (int t = 0; t < 2 && known; t++) {
					size_t k = 0;
					enum resolve_rcode a;
					if (answered[t]) {
						continue;
					}
					a = resolve_answer(pkt, (size_t)r, id[t], types[t], port, got[t],
							   RESOLVE_MAX, &k);
					if (a == RESOLVE_ANSWER || a == RESOLVE_NXDOMAIN) {
						answered[t] = 1;
						ngot[t] = k;
					}
				}
			}
		}
		if (answered[0] && answered[1]) {
			rc = ngot[0] + ngot[1] > 0 ? 1 : 0;
		} else if (answered[0] || answered[1]) {
			rc = ngot[0] + ngot[1] > 0 ? 1 : rc;
		}
	}
	for (int f = 0; f < 2; f++) {
		if (fds[f] >= 0) {
			close(fds[f]);
		}
	}
	for (int t = 0; t < 2; t++) {
		for (size_t i = 0; i < ngot[t] && rc > 0; i++) {
			if (*n < max) {
				out[(*n)++] = got[t][i];
			}
		}
	}
	if (rc < 0) {
		char ns[64];
		net_addr_str((const struct sockaddr *)&c->ns[0].ss, ns, sizeof(ns));
		fmt_snprintf(why, whylen, "no answer from nameserver %s%s", ns,
			     c->n_ns > 1 ? " or the others" : "");
	}
	return rc;
}

int resolve(const char *host, uint16_t port, struct resolve_addr *out, size_t max,
	    volatile sig_atomic_t *stop, const sigset_t *waitmask, char *why, size_t whylen)
{
	struct resolv_conf *c;
	size_t n = 0;
	size_t dots = 0;
	int rooted = host[0] != '\0' && host[strlen(host) - 1] == '.';
	int rc = 0;

	if (literal(host, port, out, max, &n)) {
		return (int)n;
	}
	from_hosts(host, port, out, max, &n);
	if (n == 0 && strcasecmp(host, "localhost") == 0) {
		static const uint8_t lo4[4] = {127, 0, 0, 1};
		add(out, max, &n, AF_INET, lo4, port);
	}
	if (n > 0) {
		return (int)n;
	}
	c = malloc(sizeof(*c));
	if (c == NULL) {
		fmt_snprintf(why, whylen, "out of memory");
		return -1;
	}
	load_conf(c);
	for (const char *p = host; *p != '\0'; p++) {
		dots += *p == '.';
	}
	fmt_snprintf(why, whylen, "no such host");
	/* As given first when it has enough dots, then with each search
	 * domain, then as given (if not tried already). */
	for (size_t i = 0; i <= c->n_search + 1 && rc <= 0; i++) {
		char name[RESOLVE_NAME_MAX + 2];
		int plain = (i == 0 && (dots >= c->ndots || rooted)) ||
			    (i == c->n_search + 1 && dots < c->ndots && !rooted);
		if (plain) {
			fmt_snprintf(name, sizeof(name), "%s", host);
		} else if (i >= 1 && i <= c->n_search && !rooted) {
			fmt_snprintf(name, sizeof(name), "%s.%s", host, c->search[i - 1]);
		} else {
			continue;
		}
		rc = query(c, name, port, out, max, &n, stop, waitmask, why, whylen);
		if (rc < 0) {
			break; /* nameservers do not answer: the next name would not help */
		}
	}
	free(c);
	return n > 0 ? (int)n : -1;
}
