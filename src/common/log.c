#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fmt.h"

/* The only process-wide setting besides the signal flags: the threshold is
 * read by every module and set once from the configuration. */
static enum log_level threshold = LOG_INFO;

static const char *const names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"};

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
