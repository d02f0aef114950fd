/* proc: this process, as /proc tells it: CPU time, memory, start time,
 * descriptors. For status pages and metrics; every reading may fail
 * (no /proc in a sandbox) and says so. */
#ifndef PROC_H
#define PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Clock ticks per second in /proc: USER_HZ, 100 on every Linux target
 * (sysconf(_SC_CLK_TCK) says so too, at a cost of 1 KiB). */
#define PROC_HZ 100

/* From /proc/self/stat: fields 14-15 (utime, stime), 22 (starttime), 23
 * (vsize), 24 (rss). */
struct proc_stat {
	uint64_t user_ticks;
	uint64_t system_ticks;
	uint64_t cpu_ticks;   /* user + system */
	uint64_t start_ticks; /* after boot */
	uint64_t vsize;       /* bytes */
	uint64_t rss_pages;
};

/* Read a small /proc file into buf (NUL-terminated); its length or -1. */
ssize_t proc_read(const char *path, char *buf, size_t cap);
/* 0, or -1 when /proc/self/stat cannot be read. */
int proc_stat(struct proc_stat *ps);
/* When the process started, Unix milliseconds: its start in clock ticks
 * after boot, against the time since boot (/proc/uptime). 0 if unknown. */
uint64_t proc_start_ms(void);
/* Open descriptors: the entries of /proc/self/fd but the one reading it;
 * -1 if unknown. */
long proc_open_fds(void);
/* The machine: /proc/meminfo's MemTotal and MemAvailable (KiB); 0, or -1
 * if either is missing. */
int proc_meminfo(uint64_t *total_kb, uint64_t *available_kb);
/* /proc/loadavg's three averages in hundredths; 0, or -1. */
int proc_loadavg(uint64_t load[3]);

#endif
