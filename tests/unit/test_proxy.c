/* The proxy's pure parts: NO_PROXY matching, the CONNECT request, the
 * proxy's answer, and the choice between --proxy and the environment. */
#include <stdlib.h>

#include "proxy.h"
#include "unit.h"

TEST(proxy_no_proxy_as_curl_reads_it)
{
	CHECK(proxy_bypass("*", "anything"));
	CHECK(proxy_bypass("example.com", "example.com"));
	CHECK(proxy_bypass("example.com", "runner.example.com"));
	CHECK(proxy_bypass(".example.com", "runner.example.com"));
	CHECK(proxy_bypass(".example.com", "example.com"));
	CHECK(!proxy_bypass("example.com", "badexample.com"));
	CHECK(!proxy_bypass("example.com", "example.com.evil"));
	CHECK(proxy_bypass("a, b ,10.0.0.1", "10.0.0.1"));
	CHECK(!proxy_bypass("10.0.0.1", "10.0.0.10"));
	CHECK(proxy_bypass("EXAMPLE.com", "Runner.Example.COM"));
	CHECK(!proxy_bypass("", "localhost"));
	CHECK(!proxy_bypass(NULL, "localhost"));
	CHECK(!proxy_bypass("localhost", "127.0.0.1")); /* no implicit loopback */
}

TEST(proxy_connect_request_and_answer)
{
	struct proxy p;
	struct url runner;
	char err[200];
	char req[512];
	int status;
	size_t used = 0;

	CHECK(url_parse("wss://runner.example:8443", &runner, err, sizeof(err)) == 0);
	CHECK(proxy_select("http://al%3Ace:s%40cret@proxy.lan:3128", &runner, &p, err,
			   sizeof(err)) == 1);
	CHECK_STR(p.url.host, "proxy.lan");
	CHECK(p.url.port == 3128);
	CHECK_STR(p.auth, "YWw6Y2U6c0BjcmV0"); /* base64("al:ce:s@cret") */
	CHECK(p.url.userinfo[0] == '\0');
	int n = proxy_request(&p, "runner.example", 0, 8443, req, sizeof(req));
	CHECK(n > 0);
	CHECK(strncmp(req, "CONNECT runner.example:8443 HTTP/1.1\r\nHost: runner.example:8443\r\n",
		      65) == 0);
	CHECK(strstr(req, "\r\nProxy-Authorization: Basic YWw6Y2U6c0BjcmV0\r\n") != NULL);
	CHECK(proxy_request(&p, "::1", 1, 80, req, sizeof(req)) > 0);
	CHECK(strncmp(req, "CONNECT [::1]:80 HTTP/1.1", 25) == 0);

	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	CHECK(proxy_parse_response((const uint8_t *)ok, sizeof(ok) - 1, 4096, &status, &used) ==
	      PROXY_DONE);
	CHECK(status == 200 && used == sizeof(ok) - 1);
	for (size_t k = 0; k < sizeof(ok) - 1; k++) {
		CHECK(proxy_parse_response((const uint8_t *)ok, k, 4096, &status, &used) ==
		      PROXY_NEED_MORE);
	}
	static const char auth[] = "HTTP/1.0 407 Proxy Authentication Required\r\nX: y\r\n\r\n";
	CHECK(proxy_parse_response((const uint8_t *)auth, sizeof(auth) - 1, 4096, &status, &used) ==
	      PROXY_ERR_STATUS);
	CHECK(status == 407);
	CHECK(proxy_parse_response((const uint8_t *)"SSH-2.0-x\r\n", 11, 4096, &status, &used) ==
	      PROXY_ERR_NOT_HTTP);
	CHECK(proxy_parse_response((const uint8_t *)"HTTP/1.1 2", 10, 10, &status, &used) ==
	      PROXY_ERR_TOO_BIG);
}

TEST(proxy_chosen_from_the_environment)
{
	struct proxy p;
	struct url ws;
	struct url wss;
	char err[200];

	CHECK(url_parse("ws://runner.corp:80", &ws, err, sizeof(err)) == 0);
	CHECK(url_parse("wss://runner.corp", &wss, err, sizeof(err)) == 0);
	setenv("HTTP_PROXY", "plain:3128", 1);
	setenv("https_proxy", "http://secure:8080", 1);
	unsetenv("NO_PROXY");
	unsetenv("no_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("http_proxy");
	CHECK(proxy_select(NULL, &ws, &p, err, sizeof(err)) == 1 && strcmp(p.url.host, "plain") == 0);
	CHECK(p.url.port == 3128);
	CHECK(proxy_select(NULL, &wss, &p, err, sizeof(err)) == 1 && strcmp(p.url.host, "secure") == 0);
	setenv("no_proxy", "corp", 1);
	CHECK(proxy_select(NULL, &wss, &p, err, sizeof(err)) == 0);
	CHECK(proxy_select("http://forced:1", &wss, &p, err, sizeof(err)) == 1); /* the flag wins */
	setenv("HTTP_PROXY", "https://tls-proxy:443", 1);
	unsetenv("no_proxy");
	CHECK(proxy_select(NULL, &ws, &p, err, sizeof(err)) == -1);
	CHECK(strstr(err, "HTTP_PROXY") != NULL && strstr(err, "http://") != NULL);
	setenv("HTTP_PROXY", "http://u:pw@bad host", 1);
	CHECK(proxy_select(NULL, &ws, &p, err, sizeof(err)) == -1);
	CHECK(strstr(err, "pw") == NULL);
	unsetenv("HTTP_PROXY");
	unsetenv("https_proxy");
	CHECK(proxy_select(NULL, &ws, &p, err, sizeof(err)) == 0);
}
