/* Placeholder until the admin endpoint lands: refuses to start. */
#include "admin.h"

#include "fmt.h"
#include "server.h"

int admin_open(struct server *s, char *err, size_t errlen)
{
	fmt_snprintf(err, errlen, "--admin is not available yet");
	return -1;
}

void admin_on_events(struct server *s, void *owner, short revents, uint64_t now)
{
}

void admin_timers(struct server *s, uint64_t now, uint64_t *next)
{
}

void admin_reap(struct server *s)
{
}

void admin_close(struct server *s)
{
}
