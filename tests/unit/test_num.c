#include "num.h"
#include "unit.h"

TEST(num_u64_range)
{
	uint64_t v = 0;

	CHECK(num_parse_u64("0", 0, 10, &v) == 0 && v == 0);
	CHECK(num_parse_u64("10", 0, 10, &v) == 0 && v == 10);
	CHECK(num_parse_u64("11", 0, 10, &v) == -1);
	CHECK(num_parse_u64("4", 5, 10, &v) == -1);
	CHECK(num_parse_u64("18446744073709551615", 0, UINT64_MAX, &v) == 0 && v == UINT64_MAX);
	CHECK(num_parse_u64("18446744073709551616", 0, UINT64_MAX, &v) == -1);
	CHECK(num_parse_u64("", 0, 10, &v) == -1);
	CHECK(num_parse_u64("-1", 0, 10, &v) == -1);
	CHECK(num_parse_u64("+1", 0, 10, &v) == -1);
	CHECK(num_parse_u64("1 ", 0, 10, &v) == -1);
	CHECK(num_parse_u64(NULL, 0, 10, &v) == -1);
}

TEST(num_seconds_to_ms)
{
	uint64_t v = 0;

	CHECK(num_parse_seconds("5", 100000, &v) == 0 && v == 5000);
	CHECK(num_parse_seconds("0.5", 100000, &v) == 0 && v == 500);
	CHECK(num_parse_seconds("1.25", 100000, &v) == 0 && v == 1250);
	CHECK(num_parse_seconds("0.001", 100000, &v) == 0 && v == 1);
	CHECK(num_parse_seconds("100", 100000, &v) == 0 && v == 100000);
	CHECK(num_parse_seconds("100.001", 100000, &v) == -1);
	CHECK(num_parse_seconds("0.0001", 100000, &v) == -1);
	CHECK(num_parse_seconds("1.", 100000, &v) == -1);
	CHECK(num_parse_seconds(".5", 100000, &v) == -1);
	CHECK(num_parse_seconds("1e3", 100000, &v) == -1);
	CHECK(num_parse_seconds("abc", 100000, &v) == -1);
}
