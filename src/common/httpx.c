#include "httpx.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fmt.h"
#include "http.h"
#include "log.h"
#include "net.h"

/* Room in front of an answer for its status line and headers. */
#define HEAD_ROOM 384

void httpx_open(struct httpx *x, int fd, const char *addr, const struct httpx_limits *lim,
		uint64_t now)
{
	memset(x, 0, sizeof(*x));
	x->fd = fd;
	x->lim = lim;
	x->state = HX_READ;
	x->deadline = now + lim->timeout_ms;
	buf_init(&x->in, lim->request_max);
	fmt_snprintf(x->addr, sizeof(x->addr), "%s", addr);
}

void httpx_free(struct httpx *x)
{
	if (x->fd >= 0) {
		close(x->fd);
		x->fd = -1;
	}
	buf_free(&x->in);
	text_free(&x->out);
}

short httpx_events(const struct httpx *x)
{
	return x->state == HX_WRITE ? POLLOUT : x->state == HX_DONE ? 0 : POLLIN;
}

/* Mark x finished (why NULL: nothing worth a log line). */
static void finish(struct httpx *x, const char *why)
{
	if (x->state != HX_DONE && why != NULL) {
		log_debug("%s connection closed addr=%s reason=\"%s\"", x->lim->what, x->addr, why);
	}
	x->state = HX_DONE;
}

/* Read and drop what the client still sends, until its EOF. */
static void linger(struct httpx *x)
{
	char scratch[1024];

	for (int i = 0; i < 16; i++) {
		ssize_t r = read(x->fd, scratch, sizeof(scratch));
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		}
		if (r <= 0) {
			finish(x, NULL);
			return;
		}
	}
}

/* Write what is left of the answer; then shut our side and linger. */
static void flush(struct httpx *x, uint64_t now)
{
	for (;;) {
		size_t len;
		const char *p = text_data(&x->out, &len);
		ssize_t w;

		if (len == 0) {
			break;
		}
		w = send(x->fd, p, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		}
		if (w < 0) {
			char why[64];
			finish(x, net_reason(errno, why, sizeof(why)));
			return;
		}
		text_consume(&x->out, (size_t)w);
	}
	text_free(&x->out);
	shutdown(x->fd, SHUT_WR);
	x->state = HX_LINGER;
	x->deadline = now + x->lim->linger_ms;
	linger(x);
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
	case 503:
		return "Service Unavailable";
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
static void answer(struct httpx *x, enum http_result res, const struct http_request *req,
		   uint64_t now, httpx_route route, void *ctx)
{
	struct text *t = &x->out;
	struct httpx_answer a = {200, "text/plain; charset=utf-8", ""};
	int head_only = 0;
	char head[HEAD_ROOM];
	size_t head_len;

	text_begin(t, HEAD_ROOM, x->lim->response_max);
	if (res == HTTP_ERR_MALFORMED) {
		a.status = 400;
	} else if (res == HTTP_ERR_TOO_BIG) {
		a.status = 431;
	} else if (!http_method_is(req, "GET") && !http_method_is(req, "HEAD")) {
		a.status = 405;
		a.extra = "Allow: GET, HEAD\r\n";
	} else {
		head_only = http_method_is(req, "HEAD");
		route(ctx, req->target, http_path_len(req), t, &a);
	}
	if (t->failed) {
		log_warn("%s answer not built addr=%s reason=\"%s\"", x->lim->what, x->addr,
			 t->failed == TEXT_TOO_BIG ? "larger than its bound" : "out of memory");
		a.status = 500;
	}
	if (a.status != 200 && a.status != 503) {
		text_begin(t, HEAD_ROOM, x->lim->response_max);
		text_fmt(t, "%s\n", reason_phrase(a.status));
		a.type = "text/plain; charset=utf-8";
		if (a.status != 405) {
			a.extra = "";
		}
	}
	if (log_enabled(LOG_DEBUG)) {
		char method[16] = "-";
		char target[128] = "-";
		if (res == HTTP_DONE) {
			copy_cut(method, sizeof(method), req->method, req->method_len);
			copy_cut(target, sizeof(target), req->target, req->target_len);
		}
		log_debug("%s request addr=%s method=%s target=%s status=%d bytes=%zu", x->lim->what,
			  x->addr, method, target, a.status, text_len(t));
	}
	buf_free(&x->in); /* req points into it: not used from here on */
	head_len = (size_t)fmt_snprintf(head, sizeof(head),
					"HTTP/1.1 %d %s\r\n"
					"Content-Type: %s\r\n"
					"Content-Length: %zu\r\n"
					"Cache-Control: no-store\r\n"
					"X-Content-Type-Options: nosniff\r\n"
					"%s"
					"Connection: close\r\n"
					"\r\n",
					a.status, reason_phrase(a.status), a.type, text_len(t), a.extra);
	if (head_len >= sizeof(head) || text_prepend(t, head, head_len) != 0) {
		finish(x, "out of memory");
		return;
	}
	if (head_only) {
		text_keep(t, head_len);
	}
	x->state = HX_WRITE;
	x->deadline = now + x->lim->timeout_ms;
	flush(x, now);
}

/* Read the request head; answer it once whole (or once it cannot be). */
static void read_request(struct httpx *x, uint64_t now, httpx_route route, void *ctx)
{
	for (;;) {
		struct http_request req;
		enum http_result res;
		const uint8_t *data;
		size_t len;
		size_t avail;
		uint8_t *p = buf_space(&x->in, &avail);
		ssize_t r;

		if (p == NULL) {
			finish(x, "out of memory");
			return;
		}
		r = read(x->fd, p, avail);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		}
		if (r <= 0) {
			char why[64];
			finish(x, r == 0 ? "closed before a whole request" :
					   net_reason(errno, why, sizeof(why)));
			return;
		}
		buf_commit(&x->in, (size_t)r);
		data = buf_data(&x->in, &len);
		res = http_parse_request(data, len, x->lim->request_max, &req);
		if (res != HTTP_NEED_MORE) {
			answer(x, res, &req, now, route, ctx);
			return;
		}
	}
}

void httpx_step(struct httpx *x, uint64_t now, httpx_route route, void *ctx)
{
	switch (x->state) {
	case HX_READ:
		read_request(x, now, route, ctx);
		break;
	case HX_WRITE:
		flush(x, now);
		break;
	case HX_LINGER:
		linger(x);
		break;
	case HX_DONE:
		return;
	}
	if (x->state != HX_DONE && now >= x->deadline) {
		finish(x, x->state == HX_READ	 ? "no whole request in time"
			  : x->state == HX_WRITE ? "answer not taken in time"
						 : NULL);
	}
}
