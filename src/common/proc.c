#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "num.h"

ssize_t proc_read(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	if (fd < 0) {
		return -1;
	}
	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			break;
		}
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return (ssize_t)n;
}

int proc_stat(struct proc_stat *ps)
{
	char buf[1024];
	char *p;
	uint64_t f[25];
	int field = 3; /* the one after ") " is the third */

	if (proc_read("/proc/self/stat", buf, sizeof(buf)) < 0) {
		return -1;
	}
	p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
	if (p == NULL) {
		return -1;
	}
	p++;
	memset(f, 0, sizeof(f));
	while (*p != '\0' && field < 25) {
		char *tok;
		while (*p == ' ') {
			p++;
		}
		tok = p;
		while (*p != ' ' && *p != '\0' && *p != '\n') {
			p++;
		}
		if (*p != '\0') {
			*p++ = '\0';
		}
		if (field >= 14 && num_parse_u64(tok, 0, UINT64_MAX, &f[field]) != 0) {
			return -1;
		}
		field++;
	}
	if (field < 25) {
		return -1;
	}
	ps->user_ticks = f[14];
	ps->system_ticks = f[15];
	ps->cpu_ticks = f[14] + f[15];
	ps->start_ticks = f[22];
	ps->vsize = f[23];
	ps->rss_pages = f[24];
	return 0;
}

static uint64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t proc_start_ms(void)
{
	struct proc_stat ps;
	char buf[128];
	char *sp;
	uint64_t up_ms;
	uint64_t since_start;

	if (proc_stat(&ps) != 0 || proc_read("/proc/uptime", buf, sizeof(buf)) < 0) {
		return 0;
	}
	sp = strchr(buf, ' ');
	if (sp == NULL) {
		return 0;
	}
	*sp = '\0';
	if (num_parse_seconds(buf, UINT64_MAX / 2, &up_ms) != 0 ||
	    up_ms < ps.start_ticks * 1000 / PROC_HZ) {
		return 0;
	}
	since_start = up_ms - ps.start_ticks * 1000 / PROC_HZ;
	return realtime_ms() - since_start;
}

long proc_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = 0;
	struct dirent *e;

	if (d == NULL) {
		return -1;
	}
	for (e = readdir(d); e != NULL; e = readdir(d)) {
		n += e->d_name[0] != '.' ? 1 : 0;
	}
	closedir(d);
	return n > 0 ? n - 1 : 0;
}

/* The number after "name:" in /proc/meminfo text, or -1 if none. */
static int meminfo_field(char *text, const char *name, uint64_t *v)
{
	char *p = strstr(text, name);
	char *end;

	if (p == NULL) {
		return -1;
	}
	p += strlen(name);
	while (*p == ' ') {
		p++;
	}
	end = strchr(p, ' ');
	if (end == NULL) {
		return -1;
	}
	*end = '\0'; /* the copy is ours: cut the unit off */
	int r = num_parse_u64(p, 0, UINT64_MAX, v);
	*end = ' ';
	return r;
}

int proc_meminfo(uint64_t *total_kb, uint64_t *available_kb)
{
	char buf[2048];

	if (proc_read("/proc/meminfo", buf, sizeof(buf)) <= 0) {
		return -1;
	}
	return meminfo_field(buf, "MemTotal:", total_kb) == 0 &&
			       meminfo_field(buf, "MemAvailable:", available_kb) == 0
		       ? 0
		       : -1;
}

int proc_loadavg(uint64_t load[3])
{
	char buf[128];
	char *p = buf;

	if (proc_read("/proc/loadavg", buf, sizeof(buf)) <= 0) {
		return -1;
	}
	for (int i = 0; i < 3; i++) {
		uint64_t whole = 0;
		unsigned frac = 0;
		int digits = 0;
		for (; *p >= '0' && *p <= '9'; p++, digits++) {
			whole = whole * 10 + (uint64_t)(*p - '0');
		}
		if (digits == 0 || digits > 9 || p[0] != '.' || p[1] < '0' || p[1] > '9' ||
		    p[2] < '0' || p[2] > '9') {
			return -1;
		}
		frac = (unsigned)(p[1] - '0') * 10 + (unsigned)(p[2] - '0');
		load[i] = whole * 100 + frac;
		p += 3;
		while (*p == ' ') {
			p++;
		}
	}
	return 0;
}
