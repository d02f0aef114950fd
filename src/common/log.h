/* log: one line per event on stderr, "TIME LEVEL message key=value ...".
 * Never pass payload bytes. Calls are cheap no-ops below the set level;
 * building with -DTC_NO_TRACE removes trace calls entirely. */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>

enum log_level { LOG_TRACE, LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Set the threshold; lines below it are not printed. Default LOG_INFO. */
void log_set_level(enum log_level level);
/* Parse "trace|debug|info|warn|warning|error" (any case). 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);
/* Non-zero if a line at this level would be printed. */
int log_enabled(enum log_level level);
/* s as a safe log value in buf: printable ASCII only, '"' and '\\' and
 * anything else as '?', cut to fit. Returns buf. For text from a peer. */
const char *log_safe(char *buf, size_t cap, const char *s);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Keep the most recent lines printed (bytes of them, 0: none) in memory
 * as well, for the agent's /logs. 0, or -1 out of memory. */
int log_ring_init(size_t bytes);
/* The lines kept, oldest first and whole, in at most two pieces. */
void log_ring_read(void (*piece)(void *ctx, const char *p, size_t n), void *ctx);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#ifdef TC_NO_TRACE
#define log_trace(...) ((void)0)
#else
#define log_trace(...) log_msg(LOG_TRACE, __VA_ARGS__)
#endif

#endif
