/* registry: agent id -> the agent whose tunnel serves it. The newest
 * authenticated session for an id wins; an old session's end never
 * removes a newer one (registry_remove only removes the agent it names). */
#ifndef REGISTRY_H
#define REGISTRY_H

#include <stddef.h>

struct agent;
struct registry;

struct registry *registry_new(void);
void registry_free(struct registry *r);
/* The agent registered for id, or NULL. */
struct agent *registry_find(const struct registry *r, const char *id);
/* Register a (its id in agent_id(a)); returns the agent it replaced, or
 * NULL. -1 through *failed when out of memory (nothing changed). */
struct agent *registry_put(struct registry *r, struct agent *a, int *failed);
/* Unregister a if it is the one registered for its id. */
void registry_remove(struct registry *r, struct agent *a);
size_t registry_count(const struct registry *r);

#endif
