#include "listener.h"

#include <errno.h>
#include <poll.h>

#include "bounds.h"
#include "log.h"
#include "net.h"

int listener_accept(struct server *s, struct listener *l, uint64_t now,
		    struct sockaddr_storage *ss)
{
	socklen_t sl = sizeof(*ss);
	int fd = accept4(l->fd, (struct sockaddr *)ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
	char why[64];

	if (fd >= 0) {
		return fd;
	}
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
		/* The connection stays queued: rest instead of waking for it
		 * at every turn. */
		log_warn("%s accept failed reason=\"%s\" pause_ms=%d", l->what,
			 net_reason(errno, why, sizeof(why)), TS_ACCEPT_PAUSE_MS);
		pollset_set(&s->ps, l->pl.slot, 0);
		l->paused_until = now + TS_ACCEPT_PAUSE_MS;
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		   errno != ECONNABORTED) {
		log_warn("%s accept failed reason=\"%s\"", l->what, net_reason(errno, why, sizeof(why)));
	}
	return -1;
}

void listener_timers(struct server *s, struct listener *l, uint64_t now, uint64_t *next)
{
	if (l->paused_until == 0) {
		return;
	}
	if (now >= l->paused_until) {
		l->paused_until = 0;
		pollset_set(&s->ps, l->pl.slot, POLLIN);
	} else if (l->paused_until < *next) {
		*next = l->paused_until;
	}
}
