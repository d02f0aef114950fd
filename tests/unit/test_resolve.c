/* The resolver's packets: queries built byte for byte, answers parsed
 * (compression, CNAME chains, wrong ids, truncated and hostile input). */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "resolve.h"
#include "unit.h"

TEST(resolve_query_layout)
{
	uint8_t q[300];
	size_t n = resolve_query(q, sizeof(q), 0xbeef, "runner.example.", 28);
	static const uint8_t want[] = {
		0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		6, 'r', 'u', 'n', 'n', 'e', 'r', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0,
		0, 28, 0, 1,
	};

	CHECK(n == sizeof(want));
	CHECK_MEM(q, want, sizeof(want));
	CHECK(resolve_query(q, sizeof(q), 1, "a..b", 1) == 0);
	CHECK(resolve_query(q, sizeof(q), 1, "", 1) == 0);
	char long_label[80];
	memset(long_label, 'x', 64);
	long_label[64] = '\0';
	CHECK(resolve_query(q, sizeof(q), 1, long_label, 1) == 0);
	CHECK(resolve_query(q, 20, 1, "runner.example", 1) == 0);
}

/* A response to query id 0x1234 for name "h" with the given answers. */
static size_t response(uint8_t *p, uint16_t qtype, uint8_t rcode, const uint8_t *answers,
		       size_t alen, unsigned ancount)
{
	static const uint8_t head[] = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0,
				       1, 'h', 0};
	size_t n = sizeof(head);

	memcpy(p, head, n);
	p[3] = (uint8_t)(0x80 | rcode);
	p[7] = (uint8_t)ancount;
	p[n++] = (uint8_t)(qtype >> 8);
	p[n++] = (uint8_t)qtype;
	p[n++] = 0;
	p[n++] = 1;
	if (alen > 0) {
		memcpy(p + n, answers, alen);
	}
	return n + alen;
}

TEST(resolve_answer_a_records_through_a_cname)
{
	/* h CNAME x.h (name by pointer to offset 12), then x.h A twice. */
	static const uint8_t ans[] = {
		0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, 'x', 0xc0, 12,
		1, 'x', 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 7,
		0xc0, 31, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 8,
	};
	uint8_t p[512];
	struct resolve_addr out[4];
	size_t n = 0;
	size_t len = response(p, 1, 0, ans, sizeof(ans), 3);

	CHECK(resolve_answer(p, len, 0x1234, 1, 8001, out, 4, &n) == RESOLVE_ANSWER);
	CHECK(n == 2);
	const struct sockaddr_in *a = (const struct sockaddr_in *)&out[0].ss;
	CHECK(a->sin_family == AF_INET && ntohs(a->sin_port) == 8001);
	CHECK(ntohl(a->sin_addr.s_addr) == 0x0a000007);
	/* The same response is not one to another id or another qtype. */
	n = 0;
	CHECK(resolve_answer(p, len, 0x1235, 1, 1, out, 4, &n) == RESOLVE_IGNORE);
	CHECK(resolve_answer(p, len, 0x1234, 28, 1, out, 4, &n) == RESOLVE_IGNORE);
	CHECK(n == 0);
}

TEST(resolve_answer_aaaa_nxdomain_and_failures)
{
	static const uint8_t ans6[] = {0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16,
				       0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	uint8_t p[512];
	struct resolve_addr out[2];
	size_t n = 0;
	size_t len = response(p, 28, 0, ans6, sizeof(ans6), 1);

	CHECK(resolve_answer(p, len, 0x1234, 28, 443, out, 2, &n) == RESOLVE_ANSWER && n == 1);
	CHECK(out[0].ss.ss_family == AF_INET6);
	len = response(p, 1, 3, NULL, 0, 0);
	CHECK(resolve_answer(p, len, 0x1234, 1, 1, out, 2, &n) == RESOLVE_NXDOMAIN);
	len = response(p, 1, 2, NULL, 0, 0);
	CHECK(resolve_answer(p, len, 0x1234, 1, 1, out, 2, &n) == RESOLVE_FAILED);
	/* An answer count the packet does not hold. */
	len = response(p, 28, 0, ans6, 20, 1);
	CHECK(resolve_answer(p, len, 0x1234, 28, 1, out, 2, &n) == RESOLVE_FAILED);
	/* A query (QR clear) is not an answer. */
	len = response(p, 28, 0, ans6, sizeof(ans6), 1);
	p[2] &= 0x7f;
	CHECK(resolve_answer(p, len, 0x1234, 28, 1, out, 2, &n) == RESOLVE_IGNORE);
}

TEST(resolve_answer_survives_hostile_input)
{
	uint8_t p[64];
	struct resolve_addr out[2];
	size_t n = 0;
	/* A name pointing at itself, and every prefix of a valid answer. */
	static const uint8_t loop[] = {0xc0, 15, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4};
	size_t len = response(p, 1, 0, loop, sizeof(loop), 1);
	p[15] = 0xc0;
	p[16] = 15;

	for (size_t k = 0; k <= len; k++) {
		(void)resolve_answer(p, k, 0x1234, 1, 1, out, 2, &n);
	}
	CHECK(n <= 2);
}
