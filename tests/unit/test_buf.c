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
