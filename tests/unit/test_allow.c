#include "allow.h"
#include "tunnel.h"
#include "unit.h"

#include <stdio.h>

TEST(allow_ports_ranges_and_protos)
{
	struct allow a;

	CHECK(allow_parse("22,80,8000-8999,udp:53,tcp:1000-2000", &a) == 0);
	CHECK(a.n == 5);
	CHECK(allow_match(&a, TUNNEL_TCP, 22) && allow_match(&a, TUNNEL_UDP, 22));
	CHECK(allow_match(&a, TUNNEL_TCP, 8000) && allow_match(&a, TUNNEL_TCP, 8999));
	CHECK(!allow_match(&a, TUNNEL_TCP, 7999) && !allow_match(&a, TUNNEL_TCP, 9000));
	CHECK(allow_match(&a, TUNNEL_UDP, 53) && !allow_match(&a, TUNNEL_TCP, 53));
	CHECK(allow_match(&a, TUNNEL_TCP, 1500) && !allow_match(&a, TUNNEL_UDP, 1500));
	CHECK(!allow_match(&a, TUNNEL_TCP, 443));
	CHECK(allow_parse("1-65535", &a) == 0 && allow_match(&a, TUNNEL_UDP, 65535));
}

TEST(allow_ports_empty_list_allows_everything)
{
	struct allow a = {.n = 0};

	CHECK(allow_match(&a, TUNNEL_TCP, 1) && allow_match(&a, TUNNEL_UDP, 65535));
}

TEST(allow_ports_malformed)
{
	static const char *const bad[] = {"", ",", "22,", ",22", "0", "65536", "80-70", "a",
					  "22;80", "sctp:22", "udp:", "1-", "-5", "22,,80", "1 2",
					  "99999999999", "tcp:udp:22"};
	struct allow a;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (allow_parse(bad[i], &a) != -1) {
			CHECK(allow_parse(bad[i], &a) == -1);
		}
		CHECK(a.n == 0);
	}
	char many[1024];
	size_t o = 0;
	for (int i = 1; i <= TC_ALLOW_MAX + 1; i++) {
		o += (size_t)snprintf(many + o, sizeof(many) - o, "%s%d", i > 1 ? "," : "", i);
	}
	CHECK(allow_parse(many, &a) == -1);
}
