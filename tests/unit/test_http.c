#include "http.h"
#include "unit.h"

#include <stdint.h>
#include <string.h>

static enum http_result parse(const char *s, size_t max, struct http_request *req)
{
	return http_parse_request((const uint8_t *)s, strlen(s), max, req);
}

/* Is the header name's value v (exactly)? */
static int header_is(const struct http_request *req, const char *name, const char *v)
{
	size_t n;
	const char *p = http_header(req, name, &n);

	return p != NULL && n == strlen(v) && memcmp(p, v, n) == 0;
}

static int span_is(const char *p, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(p, want, n) == 0;
}

TEST(http_parse_whole_crlf)
{
	const char *s = "GET /status?x=1 HTTP/1.1\r\n"
			"Host: 127.0.0.1:9000\r\n"
			"User-Agent:  curl/8.0 \t\r\n"
			"Accept: */*\r\n"
			"X-Empty:\r\n"
			"\r\n"
			"body bytes";
	struct http_request req;

	CHECK(parse(s, 4096, &req) == HTTP_DONE);
	CHECK(span_is(req.method, req.method_len, "GET"));
	CHECK(span_is(req.target, req.target_len, "/status?x=1"));
	CHECK(req.minor == 1);
	CHECK(req.consumed == strlen(s) - strlen("body bytes"));
	CHECK(http_method_is(&req, "GET"));
	CHECK(!http_method_is(&req, "get"));
	CHECK(!http_method_is(&req, "GE"));
	CHECK(http_path_len(&req) == 7);
	CHECK(header_is(&req, "Host", "127.0.0.1:9000"));
	CHECK(header_is(&req, "user-agent", "curl/8.0"));
	CHECK(header_is(&req, "ACCEPT", "*/*"));
	CHECK(header_is(&req, "x-empty", ""));
}

TEST(http_parse_bare_lf_and_mixed)
{
	const char *lf = "HEAD / HTTP/1.0\nHost: a\nX-A: 1\n\n";
	const char *mixed = "GET /m HTTP/1.1\r\nHost: b\nX-A: 2\r\n\n";
	struct http_request req;
	size_t n;

	CHECK(parse(lf, 4096, &req) == HTTP_DONE);
	CHECK(http_method_is(&req, "HEAD"));
	CHECK(span_is(req.target, req.target_len, "/"));
	CHECK(req.minor == 0);
	CHECK(req.consumed == strlen(lf));
	CHECK(header_is(&req, "host", "a"));
	CHECK(header_is(&req, "x-a", "1"));
	CHECK(parse(mixed, 4096, &req) == HTTP_DONE);
	CHECK(req.consumed == strlen(mixed));
	CHECK(header_is(&req, "Host", "b"));
	CHECK(header_is(&req, "X-A", "2"));
	/* No header at all. */
	CHECK(parse("GET / HTTP/1.1\r\n\r\n", 4096, &req) == HTTP_DONE);
	CHECK(req.fields_len == 0);
	CHECK(http_header(&req, "Host", &n) == NULL && n == 0);
}

TEST(http_parse_skips_empty_lines_first)
{
	const char *s = "\r\n\n\r\nGET /healthz HTTP/1.1\r\n\r\n";
	struct http_request req;

	CHECK(parse(s, 4096, &req) == HTTP_DONE);
	CHECK(span_is(req.target, req.target_len, "/healthz"));
	CHECK(req.consumed == strlen(s));
	CHECK(parse("\r\n", 4096, &req) == HTTP_NEED_MORE);
	CHECK(parse("\r", 4096, &req) == HTTP_NEED_MORE);
	CHECK(parse("", 4096, &req) == HTTP_NEED_MORE);
	CHECK(http_parse_request(NULL, 0, 4096, &req) == HTTP_NEED_MORE);
}

TEST(http_parse_byte_by_byte)
{
	const char *heads[] = {
		"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
		"GET /metrics HTTP/1.1\nHost: x\nAccept: text/plain\n\n",
		"\nPOST /a/b HTTP/1.0\r\nContent-Length: 3\r\n\r\n",
	};

	for (size_t h = 0; h < sizeof(heads) / sizeof(heads[0]); h++) {
		const uint8_t *p = (const uint8_t *)heads[h];
		size_t total = strlen(heads[h]);
		struct http_request req;

		for (size_t k = 0; k < total; k++) {
			CHECK(http_parse_request(p, k, 4096, &req) == HTTP_NEED_MORE);
		}
		CHECK(http_parse_request(p, total, 4096, &req) == HTTP_DONE);
		CHECK(req.consumed == total);
		CHECK(req.target[0] == '/');
		CHECK(header_is(&req, "HOST", "x") || header_is(&req, "content-length", "3"));
	}
}

TEST(http_parse_malformed)
{
	static const char *const bad[] = {
		"garbage\r\n\r\n",
		"GET\r\n\r\n",
		"GET /\r\n\r\n",
		"GET / \r\n\r\n",
		"GET  / HTTP/1.1\r\n\r\n",
		"GET /  HTTP/1.1\r\n\r\n",
		" GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1 \r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"GET / HTTP/1.2\r\n\r\n",
		"GET / HTTP/1.11\r\n\r\n",
		"GET / http/1.1\r\n\r\n",
		"G@T / HTTP/1.1\r\n\r\n",
		"GET /a\x01 HTTP/1.1\r\n\r\n",
		"GET /\xc3\xa9 HTTP/1.1\r\n\r\n",
		"GET\t/ HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\rX\r\n\r\n",
		"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
		"GET / HTTP/1.1\r\nName : v\r\n\r\n",
		"GET / HTTP/1.1\r\n: v\r\n\r\n",
		"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nA: 1\r\n\tfolded\r\n\r\n",
		"GET / HTTP/1.1\r\nA: x\x7fy\r\n\r\n",
		"GET / HTTP/1.1\r\nA: x\ry\r\n\r\n",
		"GET / HTTP/1.1\r\nA(b): 1\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const uint8_t *p = (const uint8_t *)bad[i];
		size_t total = strlen(bad[i]);
		struct http_request req;

		CHECK(http_parse_request(p, total, 4096, &req) == HTTP_ERR_MALFORMED);
		/* Fed byte by byte: never done, and the error stays once seen. */
		int seen = 0;
		for (size_t k = 0; k <= total; k++) {
			enum http_result r = http_parse_request(p, k, 4096, &req);
			CHECK(r == HTTP_NEED_MORE || r == HTTP_ERR_MALFORMED);
			CHECK(!(seen && r != HTTP_ERR_MALFORMED));
			seen = r == HTTP_ERR_MALFORMED;
		}
	}
	/* A NUL in a value. */
	static const char nul[] = "GET / HTTP/1.1\r\nA: x\0y\r\n\r\n";
	struct http_request req;
	CHECK(http_parse_request((const uint8_t *)nul, sizeof(nul) - 1, 4096, &req) ==
	      HTTP_ERR_MALFORMED);
}

TEST(http_parse_rejects_early)
{
	struct http_request req;

	/* A TLS ClientHello or binary noise: the first byte settles it. */
	CHECK(parse("\x16", 4096, &req) == HTTP_ERR_MALFORMED);
	CHECK(parse(" ", 4096, &req) == HTTP_ERR_MALFORMED);
	CHECK(parse("GET /x HTTX", 4096, &req) == HTTP_ERR_MALFORMED);
	CHECK(parse("GET /x HTTP/1.1X", 4096, &req) == HTTP_ERR_MALFORMED);
	CHECK(parse("GET /x\x01", 4096, &req) == HTTP_ERR_MALFORMED);
	/* Prefixes that may still become valid. */
	CHECK(parse("GE", 4096, &req) == HTTP_NEED_MORE);
	CHECK(parse("GET ", 4096, &req) == HTTP_NEED_MORE);
	CHECK(parse("GET /x HTTP/1.", 4096, &req) == HTTP_NEED_MORE);
	CHECK(parse("GET /x HTTP/1.1\r", 4096, &req) == HTTP_NEED_MORE);
	CHECK(parse("GET /x HTTP/1.1\r\nHost: a", 4096, &req) == HTTP_NEED_MORE);
}

TEST(http_parse_oversize)
{
	char big[600];
	const char *line = "GET / HTTP/1.1\r\n";
	size_t ll = strlen(line);
	struct http_request req;

	/* A head of exactly max bytes is taken; one byte more is too big. */
	memset(big, 'a', sizeof(big));
	memcpy(big, line, ll);
	memcpy(big + ll, "X-Pad: ", 7);
	/* head = line + "X-Pad: " + pad + "\r\n\r\n" = 256 bytes */
	size_t pad = 256 - ll - 7 - 4;
	memcpy(big + ll + 7 + pad, "\r\n\r\n", 4);
	CHECK(http_parse_request((const uint8_t *)big, 256, 256, &req) == HTTP_DONE);
	CHECK(req.consumed == 256);
	CHECK(http_parse_request((const uint8_t *)big, 256, 255, &req) == HTTP_ERR_TOO_BIG);
	CHECK(http_parse_request((const uint8_t *)big, 255, 255, &req) == HTTP_ERR_TOO_BIG);
	CHECK(http_parse_request((const uint8_t *)big, 254, 255, &req) == HTTP_NEED_MORE);
	/* Bytes after the head do not count toward it. */
	memset(big + 256, 'b', sizeof(big) - 256);
	CHECK(http_parse_request((const uint8_t *)big, sizeof(big), 256, &req) == HTTP_DONE);
	CHECK(req.consumed == 256);
	/* A header block that never ends: need more until max, then too big,
	 * fed a byte at a time. */
	memset(big + ll, 'h', sizeof(big) - ll);
	memcpy(big + ll, "X-Long: ", 8);
	for (size_t k = 1; k < 512; k++) {
		CHECK(http_parse_request((const uint8_t *)big, k, 512, &req) == HTTP_NEED_MORE);
	}
	CHECK(http_parse_request((const uint8_t *)big, 512, 512, &req) == HTTP_ERR_TOO_BIG);
	CHECK(http_parse_request((const uint8_t *)big, 600, 512, &req) == HTTP_ERR_TOO_BIG);
	/* A request line that never ends. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	CHECK(http_parse_request((const uint8_t *)big, 100, 100, &req) == HTTP_ERR_TOO_BIG);
	CHECK(http_parse_request((const uint8_t *)big, 99, 100, &req) == HTTP_NEED_MORE);
	/* Empty lines before the request line count too. */
	memset(big, '\n', sizeof(big));
	CHECK(http_parse_request((const uint8_t *)big, 100, 100, &req) == HTTP_ERR_TOO_BIG);
}

TEST(http_header_lookup)
{
	const char *s = "GET / HTTP/1.1\r\n"
			"Hostname: no\r\n"
			"HOST: first\r\n"
			"host: second\r\n"
			"X-Tab:\tv\t\r\n"
			"X-Colon: a: b\r\n"
			"\r\n"
			"Body: not a header\r\n";
	struct http_request req;
	size_t n = 99;

	CHECK(parse(s, 4096, &req) == HTTP_DONE);
	CHECK(header_is(&req, "host", "first"));
	CHECK(header_is(&req, "hostname", "no"));
	CHECK(header_is(&req, "x-tab", "v"));
	CHECK(header_is(&req, "X-COLON", "a: b"));
	CHECK(http_header(&req, "Hos", &n) == NULL && n == 0);
	CHECK(http_header(&req, "Body", &n) == NULL);
	CHECK(http_header(&req, "", &n) == NULL);
}

TEST(http_path_len_and_strerror)
{
	struct http_request req;

	CHECK(parse("GET /a/b?c=d#e HTTP/1.1\r\n\r\n", 4096, &req) == HTTP_DONE);
	CHECK(http_path_len(&req) == 4);
	CHECK(parse("GET /a#e?x HTTP/1.1\r\n\r\n", 4096, &req) == HTTP_DONE);
	CHECK(http_path_len(&req) == 2);
	CHECK(parse("OPTIONS * HTTP/1.1\r\n\r\n", 4096, &req) == HTTP_DONE);
	CHECK(http_path_len(&req) == 1 && req.target[0] == '*');
	CHECK(strcmp(http_strerror(HTTP_DONE), "?") != 0);
	CHECK(strcmp(http_strerror(HTTP_NEED_MORE), "?") != 0);
	CHECK(strcmp(http_strerror(HTTP_ERR_MALFORMED), "?") != 0);
	CHECK(strcmp(http_strerror(HTTP_ERR_TOO_BIG), "?") != 0);
}

/* Escape s whole into a roomy buffer and compare. */
static int esc_is(const char *s, size_t n, enum http_escape mode, const char *want)
{
	char out[256];
	size_t r = http_escape(out, sizeof(out), s, n, mode);

	return r == strlen(want) && strcmp(out, want) == 0 &&
	       http_escape(NULL, 0, s, n, mode) == r;
}

#define ESC(s, mode, want) CHECK(esc_is((s), sizeof(s) - 1, (mode), (want)))

TEST(http_escape_json)
{
	ESC("plain text", HTTP_ESC_JSON, "plain text");
	ESC("", HTTP_ESC_JSON, "");
	ESC("a\"b\\c", HTTP_ESC_JSON, "a\\\"b\\\\c");
	ESC("\n\r\t\x01\x1f\x7f", HTTP_ESC_JSON, "\\u000a\\u000d\\u0009\\u0001\\u001f\\u007f");
	ESC("nul\0x", HTTP_ESC_JSON, "nul\\u0000x");
	ESC("</script>&'", HTTP_ESC_JSON, "</script>&'");
	/* Well-formed UTF-8 goes through; anything else is U+FFFD. */
	ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", HTTP_ESC_JSON,
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	ESC("\xff", HTTP_ESC_JSON, "\xef\xbf\xbd");
	ESC("a\x80z", HTTP_ESC_JSON, "a\xef\xbf\xbdz");
	ESC("\xc0\x80", HTTP_ESC_JSON, "\xef\xbf\xbd\xef\xbf\xbd");          /* overlong NUL */
	ESC("\xe0\x80\xaf", HTTP_ESC_JSON, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* overlong */
	ESC("\xed\xa0\x80", HTTP_ESC_JSON, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
	ESC("\xf4\x90\x80\x80", HTTP_ESC_JSON,
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* above U+10FFFF */
	ESC("\xf5", HTTP_ESC_JSON, "\xef\xbf\xbd");
	ESC("x\xe2\x82", HTTP_ESC_JSON, "x\xef\xbf\xbd\xef\xbf\xbd"); /* cut short */
	ESC("\xe2\x82\"", HTTP_ESC_JSON, "\xef\xbf\xbd\xef\xbf\xbd\\\"");
}

TEST(http_escape_html_and_label)
{
	ESC("<b>\"Tom\" & 'Jerry'</b>", HTTP_ESC_HTML,
	    "&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;");
	ESC("a\x01\x7f\tb", HTTP_ESC_HTML, "a\xef\xbf\xbd\xef\xbf\xbd\tb");
	ESC("\xc3\xa9\xff", HTTP_ESC_HTML, "\xc3\xa9\xef\xbf\xbd");
	ESC("a\\b\"c\nd<&>", HTTP_ESC_LABEL, "a\\\\b\\\"c\\nd<&>");
	ESC("\xfe", HTTP_ESC_LABEL, "\xef\xbf\xbd");
}

TEST(http_escape_cuts_whole_escapes)
{
	char out[8];

	/* The length is that of the whole result, whatever the room. */
	CHECK(http_escape(out, sizeof(out), "abc\"def", 7, HTTP_ESC_JSON) == 8);
	CHECK_STR(out, "abc\\\"de");
	CHECK(http_escape(out, sizeof(out), "abcdef\"", 7, HTTP_ESC_JSON) == 8);
	CHECK_STR(out, "abcdef"); /* "\\\"" would not fit whole */
	CHECK(http_escape(out, sizeof(out), "ab\x01zzzz", 7, HTTP_ESC_JSON) == 12);
	CHECK_STR(out, "ab"); /* nothing after the first escape that did not fit */
	CHECK(http_escape(out, sizeof(out), "abcdef\xc3\xa9", 8, HTTP_ESC_JSON) == 8);
	CHECK_STR(out, "abcdef");
	CHECK(http_escape(out, 1, "abc", 3, HTTP_ESC_JSON) == 3);
	CHECK_STR(out, "");
	CHECK(http_escape(out, sizeof(out), "1234567", 7, HTTP_ESC_JSON) == 7);
	CHECK_STR(out, "1234567");
	out[0] = 'q';
	CHECK(http_escape(out, 0, "abc", 3, HTTP_ESC_HTML) == 3);
	CHECK(out[0] == 'q');
}
