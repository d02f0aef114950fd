/* metrics: the Prometheus text format (0.0.4) as both programs write it:
 * a metric's HELP and TYPE lines, its samples, the build info, and the
 * standard process_* set read from /proc. */
#ifndef METRICS_H
#define METRICS_H

#include <stdint.h>

#include "text.h"

/* # HELP and # TYPE lines of a metric. */
void metrics_head(struct text *t, const char *name, const char *type, const char *help);
/* name v */
void metrics_sample(struct text *t, const char *name, uint64_t v);
/* name{label="value"} v (value escaped) */
void metrics_sample1(struct text *t, const char *name, const char *label, const char *value,
		     uint64_t v);
/* A value in milliseconds, as seconds with three decimals. */
void metrics_sample_ms(struct text *t, const char *name, uint64_t ms);
/* PREFIX_build_info{version,target} 1 */
void metrics_build_info(struct text *t, const char *prefix);
/* process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds (those
 * /proc and getrlimit give) and process_start_time_seconds. */
void metrics_process(struct text *t, uint64_t start_unix_ms);

#endif
