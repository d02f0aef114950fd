/* pollset: the pollfd array of a program's poll() loop, kept up to date
 * one socket at a time instead of rebuilt every turn. Each socket has a
 * slot (its index in the array) and an owner pointer; adding, changing the
 * events of, and removing a slot are O(1), so a loop turn costs what
 * changed, not how many sockets are open. A slot with no events is hidden
 * from poll() (negative fd), so a hang-up cannot wake the loop for a
 * socket nobody is ready to serve. */
#ifndef POLLSET_H
#define POLLSET_H

#include <poll.h>
#include <stddef.h>

struct pollset {
	struct pollfd *pfd; /* pfd[0..n) is what poll() gets */
	void **owner;       /* owner[i] of slot i */
	size_t n;
	size_t cap;
};

void pollset_init(struct pollset *ps);
/* Free the arrays (sockets are not closed). */
void pollset_free(struct pollset *ps);
/* Add fd with events for owner; the new slot is ps->n - 1. 0, or -1 when
 * out of memory. */
int pollset_add(struct pollset *ps, int fd, short events, void *owner);
/* Change the events of a slot; 0 hides it from poll(). */
void pollset_set(struct pollset *ps, size_t slot, short events);
/* The events a slot asks for (0 when hidden). */
short pollset_events(const struct pollset *ps, size_t slot);
/* Remove a slot: the last slot moves into it. Returns the owner of the
 * moved slot (whose slot is now `slot`), or NULL when slot was the last. */
void *pollset_del(struct pollset *ps, size_t slot);

#endif
