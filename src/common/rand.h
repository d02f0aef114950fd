/* rand: bytes from the kernel's CSPRNG (getrandom, else /dev/urandom). */
#ifndef RAND_H
#define RAND_H

#include <stddef.h>
#include <stdint.h>

/* Kernel random bytes drawn ahead, handed out a few at a time (WebSocket
 * mask keys: one syscall per RAND_POOL_LEN bytes instead of per frame). */
#define RAND_POOL_LEN 256

struct rand_pool {
	uint8_t bytes[RAND_POOL_LEN];
	size_t used; /* bytes already handed out; RAND_POOL_LEN when empty */
};

/* Fill buf with len random bytes. 0, or -1 if no kernel source works. */
int rand_bytes(void *buf, size_t len);
/* A uniform-ish value in [0, n) for jitter (n > 0); not for secrets. */
uint32_t rand_below(uint32_t n);
/* An empty pool (the first draw fills it). */
void rand_pool_init(struct rand_pool *p);
/* len (<= RAND_POOL_LEN) bytes from the pool, refilled from the kernel
 * when it runs low. 0, or -1 if no kernel source works. */
int rand_pool_take(struct rand_pool *p, void *buf, size_t len);

#endif
