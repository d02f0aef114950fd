#include "metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include "bounds.h"
#include "http.h"
#include "proc.h"

void metrics_head(struct text *t, const char *name, const char *type, const char *help)
{
	text_fmt(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(struct text *t, const char *name, uint64_t v)
{
	text_fmt(t, "%s %llu\n", name, (unsigned long long)v);
}

void metrics_sample1(struct text *t, const char *name, const char *label, const char *value,
		     uint64_t v)
{
	text_fmt(t, "%s{%s=\"", name, label);
	text_esc(t, value, HTTP_ESC_LABEL);
	text_fmt(t, "\"} %llu\n", (unsigned long long)v);
}

void metrics_sample_ms(struct text *t, const char *name, uint64_t ms)
{
	text_fmt(t, "%s %llu.%03u\n", name, (unsigned long long)(ms / 1000), (unsigned)(ms % 1000));
}

void metrics_build_info(struct text *t, const char *prefix)
{
	text_fmt(t, "# HELP %s_build_info The running build; always 1.\n"
		    "# TYPE %s_build_info gauge\n%s_build_info{version=\"",
		 prefix, prefix, prefix);
	text_esc(t, TC_VERSION, HTTP_ESC_LABEL);
	text_str(t, "\",target=\"");
	text_esc(t, TC_TARGET, HTTP_ESC_LABEL);
	text_str(t, "\"} 1\n");
}

void metrics_process(struct text *t, uint64_t start_unix_ms)
{
	struct proc_stat ps;
	struct rlimit rl;
	long fds = proc_open_fds();

	if (proc_stat(&ps) == 0) {
		metrics_head(t, "process_cpu_seconds_total", "counter",
			     "Total user and system CPU time spent in seconds.");
		metrics_sample_ms(t, "process_cpu_seconds_total", ps.cpu_ticks * 1000 / PROC_HZ);
		metrics_head(t, "process_resident_memory_bytes", "gauge",
			     "Resident memory size in bytes.");
		metrics_sample(t, "process_resident_memory_bytes",
			       ps.rss_pages * (uint64_t)getpagesize());
		metrics_head(t, "process_virtual_memory_bytes", "gauge",
			     "Virtual memory size in bytes.");
		metrics_sample(t, "process_virtual_memory_bytes", ps.vsize);
	}
	if (fds >= 0) {
		metrics_head(t, "process_open_fds", "gauge", "Number of open file descriptors.");
		metrics_sample(t, "process_open_fds", (uint64_t)fds);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		metrics_head(t, "process_max_fds", "gauge",
			     "Maximum number of open file descriptors.");
		metrics_sample(t, "process_max_fds", (uint64_t)rl.rlim_cur);
	}
	metrics_head(t, "process_start_time_seconds", "gauge",
		     "Start time of the process since unix epoch in seconds.");
	metrics_sample_ms(t, "process_start_time_seconds", start_unix_ms);
}
