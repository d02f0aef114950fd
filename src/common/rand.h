/* rand: bytes from the kernel's CSPRNG (getrandom, else /dev/urandom). */
#ifndef RAND_H
#define RAND_H

#include <stddef.h>
#include <stdint.h>

/* Fill buf with len random bytes. 0, or -1 if no kernel source works. */
int rand_bytes(void *buf, size_t len);
/* A uniform-ish value in [0, n) for jitter (n > 0); not for secrets. */
uint32_t rand_below(uint32_t n);

#endif
