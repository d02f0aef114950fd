/* fz_file: fuzz bytes as a file the code under test opens by name: one
 * memfd per slot, rewritten for each input, named /proc/self/fd/N. */
#ifndef FZ_FILE_H
#define FZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Put p[0..n) in file number slot (0-3); its path in path. */
static inline void fz_file(int slot, const void *p, size_t n, char path[32])
{
	static int fds[4] = {-1, -1, -1, -1};

	if (fds[slot] < 0) {
		fds[slot] = memfd_create("fuzz", 0);
		if (fds[slot] < 0) {
			abort();
		}
	}
	if (ftruncate(fds[slot], 0) != 0 || (n > 0 && pwrite(fds[slot], p, n, 0) != (ssize_t)n)) {
		abort();
	}
	snprintf(path, 32, "/proc/self/fd/%d", fds[slot]);
}

#endif
