#include "pollset.h"

#include <stdlib.h>

/* A hidden slot keeps its fd as -(fd + 1): poll() skips negative fds. */
static int hidden(int fd)
{
	return -fd - 1;
}

void pollset_init(struct pollset *ps)
{
	ps->pfd = NULL;
	ps->owner = NULL;
	ps->n = 0;
	ps->cap = 0;
}

void pollset_free(struct pollset *ps)
{
	free(ps->pfd);
	free(ps->owner);
	pollset_init(ps);
}

int pollset_add(struct pollset *ps, int fd, short events, void *owner)
{
	if (ps->n == ps->cap) {
		size_t cap = ps->cap == 0 ? 16 : ps->cap * 2;
		struct pollfd *pfd = realloc(ps->pfd, cap * sizeof(*pfd));
		if (pfd == NULL) {
			return -1;
		}
		ps->pfd = pfd;
		void **own = realloc(ps->owner, cap * sizeof(*own));
		if (own == NULL) {
			return -1;
		}
		ps->owner = own;
		ps->cap = cap;
	}
	ps->pfd[ps->n].fd = events != 0 ? fd : hidden(fd);
	ps->pfd[ps->n].events = events;
	ps->pfd[ps->n].revents = 0;
	ps->owner[ps->n] = owner;
	ps->n++;
	return 0;
}

void pollset_set(struct pollset *ps, size_t slot, short events)
{
	struct pollfd *p = &ps->pfd[slot];
	int fd = p->fd < 0 ? hidden(p->fd) : p->fd;

	p->fd = events != 0 ? fd : hidden(fd);
	p->events = events;
}

short pollset_events(const struct pollset *ps, size_t slot)
{
	return ps->pfd[slot].fd < 0 ? 0 : ps->pfd[slot].events;
}

void *pollset_del(struct pollset *ps, size_t slot)
{
	size_t last = --ps->n;

	if (slot == last) {
		return NULL;
	}
	ps->pfd[slot] = ps->pfd[last];
	ps->owner[slot] = ps->owner[last];
	return ps->owner[slot];
}
