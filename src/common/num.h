/* num: range-checked number parsing for options (no atoi, no floats). */
#ifndef NUM_H
#define NUM_H

#include <stdint.h>

/* Decimal integer in [min, max], whole string. 0 or -1. */
int num_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Seconds with up to three decimals ("5", "0.25") into milliseconds,
 * at most max_ms. 0 or -1. */
int num_parse_seconds(const char *s, uint64_t max_ms, uint64_t *out_ms);

#endif
