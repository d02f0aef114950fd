#include "rand.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int from_getrandom(uint8_t *p, size_t len)
{
#ifdef SYS_getrandom
	while (len > 0) {
		long n = syscall(SYS_getrandom, p, len, 0);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
#else
	return -1;
#endif
}

static int from_urandom(uint8_t *p, size_t len)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		return -1;
	}
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			close(fd);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	close(fd);
	return 0;
}

int rand_bytes(void *buf, size_t len)
{
	if (from_getrandom(buf, len) == 0) {
		return 0;
	}
	return from_urandom(buf, len);
}

uint32_t rand_below(uint32_t n)
{
	uint32_t v = 0;

	if (rand_bytes(&v, sizeof(v)) != 0) {
		v = (uint32_t)getpid();
	}
	return v % n;
}

void rand_pool_init(struct rand_pool *p)
{
	p->used = RAND_POOL_LEN;
}

int rand_pool_take(struct rand_pool *p, void *buf, size_t len)
{
	if (len > RAND_POOL_LEN) {
		return -1;
	}
	if (RAND_POOL_LEN - p->used < len) {
		if (rand_bytes(p->bytes, RAND_POOL_LEN) != 0) {
			return -1;
		}
		p->used = 0;
	}
	memcpy(buf, p->bytes + p->used, len);
	/* Handed-out bytes are not kept. */
	memset(p->bytes + p->used, 0, len);
	p->used += len;
	return 0;
}
