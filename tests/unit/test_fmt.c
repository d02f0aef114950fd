#include "fmt.h"
#include "unit.h"

#include <stdint.h>
#include <sys/types.h>

TEST(fmt_conversions)
{
	char b[128];

	CHECK(fmt_snprintf(b, sizeof(b), "a%sb%dc%ud%%", "X", -12, 34u) == 11);
	CHECK_STR(b, "aXb-12c34d%");
	fmt_snprintf(b, sizeof(b), "%zu %zd %llu %lu %x %c", (size_t)7, (ssize_t)-3,
		     18446744073709551615ULL, 5ul, 255u, 'q');
	CHECK_STR(b, "7 -3 18446744073709551615 5 ff q");
	fmt_snprintf(b, sizeof(b), "[%04d][%02u][%-5s][%5s][%03ld][%4d]", 7, 3u, "ab", "cd", 9L, -5);
	CHECK_STR(b, "[0007][03][ab   ][   cd][009][  -5]");
	fmt_snprintf(b, sizeof(b), "%d %d", INT32_MIN, 0);
	CHECK_STR(b, "-2147483648 0");
	const char *volatile none = NULL; /* hidden from the format checker */
	fmt_snprintf(b, sizeof(b), "%s", none);
	CHECK_STR(b, "(null)");
}

TEST(fmt_truncates_like_snprintf)
{
	char b[6];

	CHECK(fmt_snprintf(b, sizeof(b), "%s", "hello world") == 11);
	CHECK_STR(b, "hello");
	CHECK(fmt_snprintf(b, 1, "xyz") == 3 && b[0] == '\0');
	CHECK(fmt_snprintf(NULL, 0, "%u", 12345u) == 5);
}

TEST(fmt_string_precision)
{
	char b[32];

	CHECK(fmt_snprintf(b, sizeof(b), "[%.3s]", "abcdef") == 5);
	CHECK_STR(b, "[abc]");
	CHECK(fmt_snprintf(b, sizeof(b), "[%.*s|%.*s]", 2, "xyz", 9, "ab") == 7);
	CHECK_STR(b, "[xy|ab]");
	CHECK(fmt_snprintf(b, sizeof(b), "[%5.2s]", "abc") == 7);
	CHECK_STR(b, "[   ab]");
	static const char unterminated[2] = {'o', 'k'};
	CHECK(fmt_snprintf(b, sizeof(b), "%.*s", 2, unterminated) == 2);
	CHECK_STR(b, "ok");
}

TEST(fmt_utc_dates)
{
	char b[40];

	CHECK(fmt_utc(b, sizeof(b), 0, 0) == 20);
	CHECK_STR(b, "1970-01-01T00:00:00Z");
	fmt_utc(b, sizeof(b), 1795321633116LL, 1);
	CHECK_STR(b, "2026-11-22T04:27:13.116Z");
	fmt_utc(b, sizeof(b), 951782400000LL, 0); /* a leap day */
	CHECK_STR(b, "2000-02-29T00:00:00Z");
	fmt_utc(b, sizeof(b), -1000, 0);
	CHECK_STR(b, "1969-12-31T23:59:59Z");
}
