#include "fmt.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

struct out {
	char *buf;
	size_t len; /* capacity including the NUL */
	size_t n;   /* length of the whole output so far */
};

static void put(struct out *o, char c)
{
	if (o->n + 1 < o->len) {
		o->buf[o->n] = c;
	}
	o->n++;
}

static void put_padded(struct out *o, const char *s, size_t slen, size_t width,
		       int left, char pad)
{
	size_t fill = width > slen ? width - slen : 0;

	if (!left) {
		for (; fill > 0; fill--) {
			put(o, pad);
		}
	}
	for (size_t i = 0; i < slen; i++) {
		put(o, s[i]);
	}
	for (; fill > 0; fill--) {
		put(o, ' ');
	}
}

static size_t utoa(char *end, uint64_t v, unsigned base)
{
	static const char digits[] = "0123456789abcdef";
	char *p = end;

	do {
		*--p = digits[v % base];
		v /= base;
	} while (v != 0);
	return (size_t)(end - p);
}

int fmt_vsnprintf(char *buf, size_t len, const char *f, va_list ap)
{
	struct out o = {buf, len, 0};

	while (*f != '\0') {
		const char *start = f;
		int left = 0;
		char pad = ' ';
		size_t width = 0;
		size_t prec = (size_t)-1; /* %s: at most this many bytes */
		int lng = 0; /* 0 int, 1 long, 2 long long, 3 size_t */
		char num[24];
		char *end = num + sizeof(num);
		size_t nlen;

		if (*f != '%') {
			put(&o, *f++);
			continue;
		}
		f++;
		for (; *f == '-' || *f == '0'; f++) {
			if (*f == '-') {
				left = 1;
			} else {
				pad = '0';
			}
		}
		for (; *f >= '0' && *f <= '9'; f++) {
			width = width * 10 + (size_t)(*f - '0');
		}
		if (*f == '.' && f[1] == '*') {
			int p = va_arg(ap, int);
			prec = p >= 0 ? (size_t)p : (size_t)-1;
			f += 2;
		} else if (*f == '.') {
			for (prec = 0, f++; *f >= '0' && *f <= '9'; f++) {
				prec = prec * 10 + (size_t)(*f - '0');
			}
		}
		if (*f == 'z') {
			lng = 3;
			f++;
		} else if (f[0] == 'l' && f[1] == 'l') {
			lng = 2;
			f += 2;
		} else if (*f == 'l') {
			lng = 1;
			f++;
		}
		switch (*f) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (s == NULL) {
				s = "(null)";
			}
			put_padded(&o, s, strnlen(s, prec), width, left, ' ');
			break;
		}
		case 'c': {
			char c = (char)va_arg(ap, int);
			put_padded(&o, &c, 1, width, left, ' ');
			break;
		}
		case 'd':
		case 'i': {
			int64_t v = lng == 2 ? va_arg(ap, long long)
				  : lng == 1 ? va_arg(ap, long)
				  : lng == 3 ? (int64_t)va_arg(ap, ssize_t)
					     : va_arg(ap, int);
			uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
			nlen = utoa(end, mag, 10);
			if (v < 0 && pad == '0') {
				put(&o, '-'); /* sign before the zeros */
				width = width > 0 ? width - 1 : 0;
			} else if (v < 0) {
				*(end - ++nlen) = '-';
			}
			put_padded(&o, end - nlen, nlen, width, left, pad);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = lng == 2 ? va_arg(ap, unsigned long long)
				   : lng == 1 ? va_arg(ap, unsigned long)
				   : lng == 3 ? va_arg(ap, size_t)
					      : va_arg(ap, unsigned);
			nlen = utoa(end, v, *f == 'x' ? 16 : 10);
			put_padded(&o, end - nlen, nlen, width, left, pad);
			break;
		}
		case '%':
			put(&o, '%');
			break;
		default:
			/* Not supported: copy the directive as it stands. */
			for (; start <= f && *start != '\0'; start++) {
				put(&o, *start);
			}
			if (*f == '\0') {
				f--;
			}
			break;
		}
		f++;
	}
	if (len > 0) {
		buf[o.n < len ? o.n : len - 1] = '\0';
	}
	return (int)o.n;
}

int fmt_snprintf(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = fmt_vsnprintf(buf, len, f, ap);
	va_end(ap);
	return n;
}

void fmt_print(int fd, const char *f, ...)
{
	char line[1024];
	va_list ap;
	size_t n;
	size_t off = 0;

	va_start(ap, f);
	n = (size_t)fmt_vsnprintf(line, sizeof(line), f, ap);
	va_end(ap);
	if (n >= sizeof(line)) {
		n = sizeof(line) - 1;
	}
	while (off < n) {
		ssize_t w = write(fd, line + off, n - off);
		if (w <= 0) {
			return;
		}
		off += (size_t)w;
	}
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian), integers
 * only; gmtime_r would bring in musl's time-zone code. */
static void civil(int64_t days, int *y, unsigned *m, unsigned *d)
{
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

int fmt_utc(char *out, size_t len, int64_t unix_ms, int millis)
{
	int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : -((-unix_ms + 999) / 1000);
	int64_t days = (secs >= 0 ? secs : secs - 86399) / 86400;
	unsigned sod = (unsigned)(secs - days * 86400);
	int y;
	unsigned m;
	unsigned d;

	civil(days, &y, &m, &d);
	if (millis) {
		return fmt_snprintf(out, len, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ", y, m, d, sod / 3600,
				    sod / 60 % 60, sod % 60, (unsigned)(unix_ms - secs * 1000));
	}
	return fmt_snprintf(out, len, "%04d-%02u-%02uT%02u:%02u:%02uZ", y, m, d, sod / 3600,
			    sod / 60 % 60, sod % 60);
}
