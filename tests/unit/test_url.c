#include "url.h"
#include "unit.h"

static int parse(const char *s, struct url *u)
{
	char err[160];
	return url_parse(s, u, err, sizeof(err));
}

TEST(url_plain_default_port)
{
	struct url u;
	char path[URL_PATH_MAX];
	char host[300];

	CHECK(parse("ws://runner.example", &u) == 0);
	CHECK(!u.tls && u.port == 80 && u.default_port);
	CHECK_STR(u.host, "runner.example");
	CHECK_STR(u.base, "");
	CHECK(url_tunnel_path(&u, "abc123", path, sizeof(path)) == 0);
	CHECK_STR(path, "/ws/tunnel/abc123");
	CHECK(url_host_header(&u, host, sizeof(host)) == 0);
	CHECK_STR(host, "runner.example");
}

TEST(url_tls_port_and_base_with_trailing_slash)
{
	struct url u;
	char path[URL_PATH_MAX];
	char host[300];

	CHECK(parse("wss://10.0.0.1:8443/prefix/", &u) == 0);
	CHECK(u.tls && u.port == 8443 && !u.default_port);
	CHECK_STR(u.base, "/prefix");
	CHECK(url_tunnel_path(&u, "c1", path, sizeof(path)) == 0);
	CHECK_STR(path, "/prefix/ws/tunnel/c1");
	CHECK(url_host_header(&u, host, sizeof(host)) == 0);
	CHECK_STR(host, "10.0.0.1:8443");
	CHECK(parse("wss://h", &u) == 0 && u.port == 443);
	CHECK(parse("https://h/", &u) == 0 && u.tls && u.port == 443 && u.base[0] == '\0');
	CHECK(parse("http://h:81", &u) == 0 && !u.tls && u.port == 81);
}

TEST(url_ipv6_literal)
{
	struct url u;
	char host[300];

	CHECK(parse("ws://[::1]:8001", &u) == 0);
	CHECK(u.ipv6 && u.port == 8001);
	CHECK_STR(u.host, "::1");
	CHECK(url_host_header(&u, host, sizeof(host)) == 0);
	CHECK_STR(host, "[::1]:8001");
	CHECK(parse("ws://[fe80::1%eth0]/x", &u) == 0);
	CHECK_STR(u.host, "fe80::1%eth0");
}

TEST(url_container_id_is_percent_encoded)
{
	struct url u;
	char path[URL_PATH_MAX];

	CHECK(parse("ws://h", &u) == 0);
	CHECK(url_tunnel_path(&u, "a b/c?", path, sizeof(path)) == 0);
	CHECK_STR(path, "/ws/tunnel/a%20b%2Fc%3F");
	CHECK(url_tunnel_path(&u, "x", path, 12) == -1);
}

TEST(url_rejects_bad_input)
{
	static const char *const bad[] = {
		"", "runner:80", "ftp://h", "ws://", "ws://:80", "ws://[::1", "ws://h:0",
		"ws://h:65536", "ws://h:99999999999", "ws://h:x", "ws://h:", "ws://h h",
		"ws://h/?q", "ws://h/#f", "ws://[::1]x", "ws://u:p@", "ws://h:80x",
	};
	struct url u;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(parse(bad[i], &u) == -1);
	}
}

TEST(url_user_info_is_kept_apart_and_never_shown)
{
	struct url u;
	char err[200];
	char shown[300];

	CHECK(url_parse("wss://bob:s3cret@runner.example:8443/base/", &u, err, sizeof(err)) == 0);
	CHECK_STR(u.userinfo, "bob:s3cret");
	CHECK_STR(u.host, "runner.example");
	CHECK(u.port == 8443);
	url_display(&u, shown, sizeof(shown));
	CHECK_STR(shown, "wss://runner.example:8443/base");
	CHECK(url_parse("ws://h@x", &u, err, sizeof(err)) == 0);
	CHECK_STR(u.userinfo, "h");
	CHECK_STR(u.host, "x");
	url_display(&u, shown, sizeof(shown));
	CHECK_STR(shown, "ws://x");
	CHECK(url_parse("ws://bob:s3cret@bad host/", &u, err, sizeof(err)) == -1);
	CHECK(strstr(err, "s3cret") == NULL && strstr(err, "bad host") != NULL);
	CHECK(url_parse_as("proxy URL", "ftp://a:s3cret@p", &u, err, sizeof(err)) == -1);
	CHECK(strstr(err, "s3cret") == NULL && strstr(err, "proxy URL") != NULL);
	CHECK(url_parse("ws://[::1]:80", &u, err, sizeof(err)) == 0);
	url_display(&u, shown, sizeof(shown));
	CHECK_STR(shown, "ws://[::1]:80");
}
