/* http: HTTP/1.x request heads as pure functions on bytes (no sockets),
 * for small status endpoints (tunnel-server's --admin, later the agent's
 * status port), and the escapers their answers need.
 *
 * http_parse_request() is fed the bytes received so far, from the first
 * one, as often as more arrive. It accepts CRLF and bare LF line ends,
 * skips empty lines before the request line, and is strict about the rest
 * (RFC 9112): one space between method, target and version, a token
 * method, a target of visible ASCII, HTTP/1.0 or HTTP/1.1, header names of
 * token characters with the colon right after them, no line folding, no
 * control bytes other than tab in a value. A body is not this module's
 * business: the head ends at its empty line. */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>
#include <stdint.h>

enum http_result {
	HTTP_DONE = 0,            /* a whole head: the struct is filled */
	HTTP_NEED_MORE = 1,       /* no error so far; call again with more */
	HTTP_ERR_MALFORMED = -1,  /* answer 400 */
	HTTP_ERR_TOO_BIG = -2,    /* head longer than max: answer 431 */
};

/* A parsed head. Every pointer points into the bytes given to
 * http_parse_request and is valid as long as they are; none is
 * NUL-terminated. */
struct http_request {
	const char *method;     /* "GET" */
	size_t method_len;
	const char *target;     /* "/status?x=1" as sent */
	size_t target_len;
	int minor;              /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
	const char *fields;     /* the header lines, for http_header() */
	size_t fields_len;
	size_t consumed;        /* the head's length, its empty line included */
};

/* Parse the request head in p[0..len) (at most max bytes of head). An error
 * is reported as soon as the bytes show it: a request line that cannot
 * become valid is HTTP_ERR_MALFORMED before its line ends, and a head with
 * no end within max bytes is HTTP_ERR_TOO_BIG once len reaches max. */
enum http_result http_parse_request(const uint8_t *p, size_t len, size_t max,
				    struct http_request *req);
/* The value of the first header called name (any case), without the
 * spaces around it, and its length in *vlen; NULL if there is none. */
const char *http_header(const struct http_request *req, const char *name, size_t *vlen);
/* Non-zero if the method is m (exact, methods are case-sensitive). */
int http_method_is(const struct http_request *req, const char *m);
/* The target's path: the target up to '?' or '#'; its length. */
size_t http_path_len(const struct http_request *req);
const char *http_strerror(enum http_result r);

/* How http_escape() writes a string. Every mode writes valid UTF-8 only:
 * a byte that does not start a well-formed UTF-8 sequence becomes U+FFFD.
 *   HTTP_ESC_JSON   inside a JSON string: \" \\ and every byte below 0x20
 *                   (and 0x7f) as \u00XX
 *   HTTP_ESC_HTML   HTML text or a quoted attribute value: & < > " ' as
 *                   entities, control bytes other than tab, LF and CR as
 *                   U+FFFD
 *   HTTP_ESC_LABEL  a Prometheus label value (text format 0.0.4): \\ \"
 *                   and \n */
enum http_escape {
	HTTP_ESC_JSON,
	HTTP_ESC_HTML,
	HTTP_ESC_LABEL,
};

/* Escape src[0..n) into dst (cap bytes, NUL-terminated when cap > 0); no
 * allocation. Returns the length the whole escaped string has (without
 * the NUL), as snprintf does: it fitted if that is below cap. A string
 * that does not fit is cut before the first escape that would not fit
 * whole, so even a cut one is valid in its context. */
size_t http_escape(char *dst, size_t cap, const char *src, size_t n, enum http_escape mode);

#endif
