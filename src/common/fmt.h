/* fmt: the small printf subset the agent uses, without stdio or floating
 * point (musl's printf brings about 12 KiB of code we would never run).
 *
 * Conversions: %s %c %d %i %u %x %% with the length modifiers l, ll, z;
 * flags '-' and '0', a decimal field width, and a precision for %s (".N"
 * or ".*"). Anything else is copied literally. */
#ifndef FMT_H
#define FMT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Like snprintf: writes at most len bytes including the NUL (when len > 0)
 * and returns the length the whole output would have had. */
int fmt_snprintf(char *buf, size_t len, const char *f, ...)
	__attribute__((format(printf, 3, 4)));
int fmt_vsnprintf(char *buf, size_t len, const char *f, va_list ap)
	__attribute__((format(printf, 3, 0)));
/* Unix milliseconds as RFC 3339 UTC: "2026-11-22T04:20:33Z", or with
 * millis "2026-11-22T04:20:33.116Z". Like fmt_snprintf's return. */
int fmt_utc(char *out, size_t len, int64_t unix_ms, int millis);
/* Format into a bounded line and write it to fd (stdout/stderr). */
void fmt_print(int fd, const char *f, ...) __attribute__((format(printf, 2, 3)));

#endif
