#include "buf.h"
#include "unit.h"

TEST(buf_bounded_fifo)
{
	struct buf b;
	size_t avail;
	size_t len;
	uint8_t *p;

	buf_init(&b, 8);
	CHECK(buf_len(&b) == 0);
	CHECK(buf_append(&b, "abcdef", 6) == 0);
	CHECK(buf_append(&b, "ghi", 3) == -1); /* all or nothing */
	CHECK(buf_len(&b) == 6);
	buf_consume(&b, 4);
	CHECK(memcmp(buf_data(&b, &len), "ef", 2) == 0 && len == 2);
	p = buf_space(&b, &avail);
	CHECK(p != NULL && avail == 6); /* compacted */
	memcpy(p, "123456", 6);
	buf_commit(&b, 6);
	CHECK(buf_space(&b, &avail) == NULL && avail == 0);
	CHECK(memcmp(buf_data(&b, &len), "ef123456", 8) == 0 && len == 8);
	buf_consume(&b, 8);
	CHECK(buf_len(&b) == 0);
	buf_free(&b);
	CHECK(b.data == NULL && b.cap == 8);
}

TEST(buf_grows_with_the_traffic)
{
	struct buf b;
	size_t avail;
	uint8_t *p;

	buf_init(&b, 16 * BUF_FIRST);
	p = buf_space(&b, &avail);
	CHECK(p != NULL && avail == BUF_FIRST); /* a ping's worth first */
	buf_commit(&b, 10);
	buf_consume(&b, 10);
	CHECK(buf_space(&b, &avail) != NULL && avail == BUF_FIRST); /* small traffic: small */
	p = buf_space(&b, &avail);
	memset(p, 'x', avail);
	buf_commit(&b, avail); /* a read that filled it: more is waiting */
	buf_consume(&b, BUF_FIRST - 3);
	p = buf_space(&b, &avail);
	CHECK(p != NULL && avail == 16 * BUF_FIRST - 3 && b.size == 16 * BUF_FIRST);
	CHECK(memcmp(b.data + b.start, "xxx", 3) == 0); /* kept across the move */
	buf_trim(&b);
	CHECK(b.data != NULL); /* not empty: kept */
	buf_consume(&b, 3);
	buf_trim(&b);
	CHECK(b.data == NULL && b.cap == 16 * BUF_FIRST);
	/* A reservation larger than the first allocation takes the bound. */
	p = buf_reserve(&b, 2 * BUF_FIRST, &avail);
	CHECK(p != NULL && avail == 16 * BUF_FIRST);
	CHECK(buf_append(&b, "ab", 2) == 0);
	buf_free(&b);
	/* A bound under BUF_FIRST is the allocation. */
	buf_init(&b, 100);
	CHECK(buf_space(&b, &avail) != NULL && avail == 100);
	buf_free(&b);
}
