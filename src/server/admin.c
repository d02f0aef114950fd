/* admin: the --admin HTTP endpoint. A listener and at most TS_ADMIN_CONNS
 * connections, each with its pollset slot. A connection reads one request
 * head (http.c), answers it from a snapshot of the server taken then, and
 * closes once the answer is written:
 *
 *   READ -> WRITE -> LINGER -> DONE, or READ -> DONE (EOF, error, timeout)
 *
 * Nothing here changes the server: it reads agent_info(), expose_info()
 * and the counters. No token is ever in what those give. */
#include "admin.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "bounds.h"
#include "buf.h"
#include "expose.h"
#include "fmt.h"
#include "http.h"
#include "report.h"
#include "text.h"
#include "listener.h"
#include "log.h"
#include "net.h"
#include "num.h"
#include "registry.h"
#include "server.h"

/* Clock ticks per second in /proc: USER_HZ, 100 on every Linux target
 * (sysconf(_SC_CLK_TCK) says so too, at a cost of 1 KiB). */
#define USER_HZ 100

enum conn_state {
	AC_READ,   /* reading the request head (deadline: TS_ADMIN_TIMEOUT_MS) */
	AC_WRITE,  /* writing the answer (deadline: TS_ADMIN_TIMEOUT_MS) */
	AC_LINGER, /* answer written, our side shut; dropping input until EOF */
	AC_DONE,   /* finished; freed by admin_reap */
};

/* Room in front of an answer for its status line and headers. */
#define HEAD_ROOM 384

struct admin_conn {
	struct pollable pl; /* first: OWN_ADMIN_CONN and the slot */
	int fd;
	enum conn_state state;
	uint64_t deadline;
	struct buf in;      /* the request head, TS_ADMIN_REQUEST_MAX */
	struct text out;    /* the answer, as it is built and written */
	char addr[64];
	struct list link;   /* on the admin's conns */
};

struct admin {
	struct listener l;  /* first: OWN_ADMIN and the listener's slot */
	char where[72];     /* the --admin address, as given */
	struct list conns;
	size_t n_conns;     /* reading a request or writing an answer (the limit) */
};

/* ---- connections ---- */

/* Mark c finished (once); admin_reap closes and frees it. */
static void finish(struct server *s, struct admin_conn *c, const char *why)
{
	if (c->state == AC_DONE) {
		return;
	}
	if (why != NULL) {
		log_debug("admin connection closed addr=%s reason=\"%s\"", c->addr, why);
	}
	if (c->state != AC_LINGER) {
		s->admin->n_conns--;
	}
	c->state = AC_DONE;
	pollset_set(&s->ps, c->pl.slot, 0);
}

/* Read and drop what the client still sends, until its EOF. */
static void linger(struct server *s, struct admin_conn *c)
{
	char scratch[1024];

	for (int i = 0; i < 16; i++) {
		ssize_t r = read(c->fd, scratch, sizeof(scratch));
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		}
		if (r <= 0) {
			finish(s, c, NULL);
			return;
		}
	}
}

/* Write what is left of the answer; then shut our side and linger. */
static void flush(struct server *s, struct admin_conn *c, uint64_t now)
{
	for (;;) {
		size_t len;
		const char *p = text_data(&c->out, &len);
		ssize_t w;

		if (len == 0) {
			break;
		}
		w = write(c->fd, p, len);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		}
		if (w < 0) {
			char why[64];
			finish(s, c, net_reason(errno, why, sizeof(why)));
			return;
		}
		text_consume(&c->out, (size_t)w);
	}
	text_free(&c->out);
	shutdown(c->fd, SHUT_WR);
	c->state = AC_LINGER; /* on its way out: no longer counts */
	s->admin->n_conns--;
	c->deadline = now + TS_ADMIN_LINGER_MS;
	pollset_set(&s->ps, c->pl.slot, POLLIN);
	linger(s, c);
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	}
	return "Internal Server Error";
}

/* Copy n bytes of s into dst (cap bytes), cut to fit, NUL-terminated. */
static void copy_cut(char *dst, size_t cap, const char *s, size_t n)
{
	size_t k = n < cap - 1 ? n : cap - 1;

	memcpy(dst, s, k);
	dst[k] = '\0';
}

/* Build the answer to a parsed head (res) and start writing it. */
static void answer(struct server *s, struct admin_conn *c, enum http_result res,
		   const struct http_request *req, uint64_t now)
{
	struct text *t = &c->out;
	const char *type = "text/plain; charset=utf-8";
	const char *extra = "";
	int head_only = 0;
	int status = 200;
	char head[HEAD_ROOM];
	size_t head_len;

	text_begin(t, HEAD_ROOM, TS_ADMIN_RESPONSE_MAX);
	if (res == HTTP_ERR_MALFORMED) {
		status = 400;
	} else if (res == HTTP_ERR_TOO_BIG) {
		status = 431;
	} else if (!http_method_is(req, "GET") && !http_method_is(req, "HEAD")) {
		status = 405;
		extra = "Allow: GET, HEAD\r\n";
	} else {
		size_t n = http_path_len(req);
		head_only = http_method_is(req, "HEAD");
		if (n == 8 && memcmp(req->target, "/healthz", 8) == 0) {
			text_str(t, "ok\n");
		} else if (n == 7 && memcmp(req->target, "/status", 7) == 0) {
			type = "application/json";
			report_status(s, t);
		} else if (n == 8 && memcmp(req->target, "/metrics", 8) == 0) {
			type = "text/plain; version=0.0.4; charset=utf-8";
			report_metrics(s, t);
		} else if (n == 1 && req->target[0] == '/') {
			type = "text/html; charset=utf-8";
			extra = "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n";
			report_page(s, t);
		} else {
			status = 404;
		}
	}
	if (t->failed) {
		log_warn("admin answer not built addr=%s reason=\"%s\"", c->addr,
			 t->failed == TEXT_TOO_BIG ? "larger than its bound" : "out of memory");
		status = 500;
		type = "text/plain; charset=utf-8";
		extra = "";
	}
	if (status != 200) {
		text_begin(t, HEAD_ROOM, TS_ADMIN_RESPONSE_MAX);
		text_fmt(t, "%s\n", reason_phrase(status));
	}
	if (log_enabled(LOG_DEBUG)) {
		char method[16] = "-";
		char target[128] = "-";
		if (res == HTTP_DONE) {
			copy_cut(method, sizeof(method), req->method, req->method_len);
			copy_cut(target, sizeof(target), req->target, req->target_len);
		}
		log_debug("admin request addr=%s method=%s target=%s status=%d bytes=%zu", c->addr,
			  method, target, status, text_len(t));
	}
	buf_free(&c->in); /* req points into it: not used from here on */
	head_len = (size_t)fmt_snprintf(head, sizeof(head),
					"HTTP/1.1 %d %s\r\n"
					"Content-Type: %s\r\n"
					"Content-Length: %zu\r\n"
					"Cache-Control: no-store\r\n"
					"X-Content-Type-Options: nosniff\r\n"
					"%s"
					"Connection: close\r\n"
					"\r\n",
					status, reason_phrase(status), type, text_len(t), extra);
	if (head_len >= sizeof(head) || text_prepend(t, head, head_len) != 0) {
		finish(s, c, "out of memory");
		return;
	}
	if (head_only) {
		text_keep(t, head_len);
	}
	c->state = AC_WRITE;
	c->deadline = now + TS_ADMIN_TIMEOUT_MS;
	pollset_set(&s->ps, c->pl.slot, POLLOUT);
	flush(s, c, now);
}

/* Read the request head; answer it once whole (or once it cannot be). */
static void on_readable(struct server *s, struct admin_conn *c, uint64_t now)
{
	for (;;) {
		struct http_request req;
		enum http_result res;
		const uint8_t *data;
		size_t len;
		size_t avail;
		uint8_t *p = buf_space(&c->in, &avail);
		ssize_t r;

		if (p == NULL) {
			finish(s, c, "out of memory");
			return;
		}
		r = read(c->fd, p, avail);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		}
		if (r <= 0) {
			char why[64];
			finish(s, c, r == 0 ? "closed before a whole request" :
					   net_reason(errno, why, sizeof(why)));
			return;
		}
		buf_commit(&c->in, (size_t)r);
		data = buf_data(&c->in, &len);
		res = http_parse_request(data, len, TS_ADMIN_REQUEST_MAX, &req);
		if (res != HTTP_NEED_MORE) {
			answer(s, c, res, &req, now);
			return;
		}
	}
}

static void accept_conns(struct server *s, uint64_t now)
{
	struct admin *a = s->admin;

	for (int i = 0; i < TS_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		int fd = listener_accept(s, &a->l, now, &ss);
		struct admin_conn *c;
		char addr[64];

		if (fd < 0) {
			return;
		}
		net_addr_str((const struct sockaddr *)&ss, addr, sizeof(addr));
		if (a->n_conns >= TS_ADMIN_CONNS) {
			log_debug("admin connection refused addr=%s reason=\"%d connections open\"", addr,
				  TS_ADMIN_CONNS);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c == NULL || pollset_add(&s->ps, fd, POLLIN, c) != 0) {
			log_error("out of memory accepting an admin connection addr=%s", addr);
			free(c);
			close(fd);
			return;
		}
		c->pl.owner = OWN_ADMIN_CONN;
		c->pl.slot = s->ps.n - 1;
		c->fd = fd;
		c->state = AC_READ;
		c->deadline = now + TS_ADMIN_TIMEOUT_MS;
		buf_init(&c->in, TS_ADMIN_REQUEST_MAX);
		memcpy(c->addr, addr, sizeof(addr));
		list_add_tail(&a->conns, &c->link);
		a->n_conns++;
	}
}

/* ---- the interface ---- */

int admin_open(struct server *s, char *err, size_t errlen)
{
	const struct sockaddr *sa = (const struct sockaddr *)&s->cfg.admin_addr;
	struct admin *a = calloc(1, sizeof(*a));
	char why[64];

	if (a == NULL) {
		fmt_snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->l.pl.owner = OWN_ADMIN;
	a->l.what = "admin";
	list_init(&a->conns);
	fmt_snprintf(a->where, sizeof(a->where), "%s", s->cfg.admin);
	a->l.fd = net_listen(sa, s->cfg.admin_len, SOCK_STREAM);
	if (a->l.fd < 0) {
		fmt_snprintf(err, errlen, "--admin %s: %s", s->cfg.admin,
			     net_reason(errno, why, sizeof(why)));
		free(a);
		return -1;
	}
	if (pollset_add(&s->ps, a->l.fd, POLLIN, &a->l.pl) != 0) {
		fmt_snprintf(err, errlen, "out of memory");
		close(a->l.fd);
		free(a);
		return -1;
	}
	a->l.pl.slot = s->ps.n - 1;

	s->admin = a;
	log_info("admin endpoint listening on %s", a->where);
	if (!net_is_loopback(sa)) {
		log_warn("admin endpoint on a non-loopback address: anyone who reaches %s can read "
			 "the status",
			 a->where);
	}
	return 0;
}

void admin_on_events(struct server *s, void *owner, short revents, uint64_t now)
{
	struct pollable *o = owner;
	struct admin_conn *c;

	if (o->owner == OWN_ADMIN) {
		accept_conns(s, now);
		return;
	}
	c = (struct admin_conn *)o;
	switch (c->state) {
	case AC_READ:
		on_readable(s, c, now);
		break;
	case AC_WRITE:
		flush(s, c, now);
		break;
	case AC_LINGER:
		linger(s, c);
		break;
	case AC_DONE:
		break;
	}
}

void admin_timers(struct server *s, uint64_t now, uint64_t *next)
{
	struct admin *a = s->admin;

	listener_timers(s, &a->l, now, next);
	for (struct list *l = a->conns.next; l != &a->conns; l = l->next) {
		struct admin_conn *c = list_entry(l, struct admin_conn, link);

		if (c->state == AC_DONE) {
			continue;
		}
		if (now >= c->deadline) {
			finish(s, c, c->state == AC_READ    ? "no whole request in time"
				     : c->state == AC_WRITE ? "answer not taken in time"
							    : NULL);
		} else if (c->deadline < *next) {
			*next = c->deadline;
		}
	}
}

static void conn_free(struct server *s, struct admin_conn *c)
{
	server_drop_slot(s, c->pl.slot);
	close(c->fd);
	list_del(&c->link);
	if (c->state == AC_READ || c->state == AC_WRITE) {
		s->admin->n_conns--;
	}
	buf_free(&c->in);
	text_free(&c->out);
	free(c);
}

void admin_reap(struct server *s)
{
	struct admin *a = s->admin;

	for (struct list *l = a->conns.next; l != &a->conns;) {
		struct admin_conn *c = list_entry(l, struct admin_conn, link);

		l = l->next;
		if (c->state == AC_DONE) {
			conn_free(s, c);
		}
	}
}

void admin_close(struct server *s)
{
	struct admin *a = s->admin;

	for (struct list *l = list_first(&a->conns); l != NULL; l = list_first(&a->conns)) {
		conn_free(s, list_entry(l, struct admin_conn, link));
	}
	server_drop_slot(s, a->l.pl.slot);
	close(a->l.fd);
	free(a);
	s->admin = NULL;
}
