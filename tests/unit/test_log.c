#include <fcntl.h>
#include <unistd.h>

#include "log.h"
#include "unit.h"

struct got {
	char s[256];
	size_t n;
};

static void piece(void *ctx, const char *p, size_t n)
{
	struct got *g = ctx;

	if (g->n + n < sizeof(g->s)) {
		memcpy(g->s + g->n, p, n);
		g->n += n;
		g->s[g->n] = '\0';
	}
}

/* Log the lines with stderr sent to /dev/null. */
static void quietly_log(int count, const char *word)
{
	int saved = dup(2);
	int null = open("/dev/null", O_WRONLY);

	dup2(null, 2);
	for (int i = 0; i < count; i++) {
		log_info("%s %d", word, i);
	}
	dup2(saved, 2);
	close(saved);
	close(null);
}

TEST(log_ring_keeps_the_newest_whole_lines)
{
	struct got g;

	memset(&g, 0, sizeof(g));
	CHECK(log_ring_init(0) == 0);
	log_ring_read(piece, &g);
	CHECK(g.n == 0); /* off: nothing */

	CHECK(log_ring_init(200) == 0);
	quietly_log(1, "first");
	log_ring_read(piece, &g);
	CHECK(g.n > 0 && strstr(g.s, "INFO  first 0\n") != NULL);

	/* Each line is about 40 bytes: 10 of them wrap a 200-byte ring. */
	quietly_log(10, "line");
	memset(&g, 0, sizeof(g));
	log_ring_read(piece, &g);
	CHECK(g.n > 0 && g.n <= 200);
	CHECK(strstr(g.s, "first") == NULL);
	CHECK(strstr(g.s, "line 9\n") != NULL && g.s[g.n - 1] == '\n');
	CHECK(memcmp(g.s, "20", 2) == 0); /* starts at a line's start: its date */
	/* A line longer than the ring leaves nothing cut. */
	CHECK(log_ring_init(16) == 0);
	quietly_log(1, "a-line-much-longer-than-sixteen-bytes");
	memset(&g, 0, sizeof(g));
	log_ring_read(piece, &g);
	CHECK(g.n == 0);
	CHECK(log_ring_init(0) == 0);
}
