#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fmt.h"

/* The only process-wide setting besides the signal flags: the threshold is
 * read by every module and set once from the configuration. */
static enum log_level threshold = LOG_INFO;

static const char *const names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"};

/* The ring of recent lines (log_ring_init): next byte at head, full once it
 * wrapped. Set once at start, like the threshold. */
static struct {
	char *p;
	size_t size;
	size_t head;
	int wrapped;
} ring;

int log_ring_init(size_t bytes)
{
	free(ring.p);
	ring.p = NULL;
	ring.size = 0;
	ring.head = 0;
	ring.wrapped = 0;
	if (bytes == 0) {
		return 0;
	}
	ring.p = malloc(bytes);
	if (ring.p == NULL) {
		return -1;
	}
	ring.size = bytes;
	return 0;
}

static void ring_add(const char *s, size_t n)
{
	while (n > 0) {
		size_t k = ring.size - ring.head < n ? ring.size - ring.head : n;
		memcpy(ring.p + ring.head, s, k);
		ring.head += k;
		s += k;
		n -= k;
		if (ring.head == ring.size) {
			ring.head = 0;
			ring.wrapped = 1;
		}
	}
}

void log_ring_read(void (*piece)(void *ctx, const char *p, size_t n), void *ctx)
{
	if (ring.p == NULL) {
		return;
	}
	if (!ring.wrapped) {
		piece(ctx, ring.p, ring.head);
		return;
	}
	/* The oldest line may be cut: start after its end. */
	size_t skip = ring.head;
	while (skip < ring.size && ring.p[skip] != '\n') {
		skip++;
	}
	if (skip < ring.size) {
		piece(ctx, ring.p + skip + 1, ring.size - skip - 1);
		piece(ctx, ring.p, ring.head);
		return;
	}
	skip = 0; /* no line end after head: the first is in front of it */
	while (skip < ring.head && ring.p[skip] != '\n') {
		skip++;
	}
	if (skip < ring.head) {
		piece(ctx, ring.p + skip + 1, ring.head - skip - 1);
	}
}

void log_set_level(enum log_level level)
{
	threshold = level;
}

int log_enabled(enum log_level level)
{
	return level >= threshold;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_WARN;
		return 0;
	}
	return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	va_list ap;
	size_t n;

	if (!log_enabled(level)) {
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	n = (size_t)fmt_utc(line, sizeof(line),
			    (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000L), 1);
	n += (size_t)fmt_snprintf(line + n, sizeof(line) - n, " %-5s ", names[level]);
	va_start(ap, fmt);
	n += (size_t)fmt_vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (n > sizeof(line) - 2) {
		n = sizeof(line) - 2; /* keep the newline of a truncated line */
	}
	line[n++] = '\n';
	if (ring.p != NULL) {
		ring_add(line, n);
	}
	/* One write per line: lines from one process never interleave. */
	for (size_t off = 0; off < n;) {
		ssize_t w = write(2, line + off, n - off);
		if (w <= 0) {
			return;
		}
		off += (size_t)w;
	}
}

const char *log_safe(char *buf, size_t cap, const char *s)
{
	size_t i = 0;

	for (; s[i] != '\0' && i + 1 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];
		buf[i] = ch >= ' ' && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '?';
	}
	if (cap > 0) {
		buf[i] = '\0';
	}
	return buf;
}
