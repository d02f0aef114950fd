#include "registry.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

struct entry {
	struct agent *agent;
	uint32_t hash;
	struct entry *next;
};

struct registry {
	struct entry **buckets; /* 1 << bits */
	unsigned bits;
	size_t n;
};

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s != '\0') {
		h = (h ^ (uint8_t)*s++) * 16777619u;
	}
	return h;
}

struct registry *registry_new(void)
{
	struct registry *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		return NULL;
	}
	r->bits = 6;
	r->buckets = calloc((size_t)1 << r->bits, sizeof(*r->buckets));
	if (r->buckets == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

void registry_free(struct registry *r)
{
	if (r == NULL) {
		return;
	}
	for (size_t i = 0; i < ((size_t)1 << r->bits); i++) {
		while (r->buckets[i] != NULL) {
			struct entry *e = r->buckets[i];
			r->buckets[i] = e->next;
			free(e);
		}
	}
	free(r->buckets);
	free(r);
}

static struct entry **slot(const struct registry *r, const char *id, uint32_t h)
{
	struct entry **pp = &r->buckets[h >> (32 - r->bits)];

	while (*pp != NULL && ((*pp)->hash != h || strcmp(agent_id((*pp)->agent), id) != 0)) {
		pp = &(*pp)->next;
	}
	return pp;
}

struct agent *registry_find(const struct registry *r, const char *id)
{
	struct entry *e = *slot(r, id, fnv1a(id));

	return e != NULL ? e->agent : NULL;
}

static void grow(struct registry *r)
{
	unsigned bits = r->bits + 1;
	struct entry **nb = calloc((size_t)1 << bits, sizeof(*nb));

	if (nb == NULL) {
		return; /* longer chains, still correct */
	}
	for (size_t i = 0; i < ((size_t)1 << r->bits); i++) {
		while (r->buckets[i] != NULL) {
			struct entry *e = r->buckets[i];
			r->buckets[i] = e->next;
			e->next = nb[e->hash >> (32 - bits)];
			nb[e->hash >> (32 - bits)] = e;
		}
	}
	free(r->buckets);
	r->buckets = nb;
	r->bits = bits;
}

struct agent *registry_put(struct registry *r, struct agent *a, int *failed)
{
	const char *id = agent_id(a);
	uint32_t h = fnv1a(id);
	struct entry **pp = slot(r, id, h);
	struct entry *e;

	*failed = 0;
	if (*pp != NULL) {
		struct agent *old = (*pp)->agent;
		(*pp)->agent = a;
		return old;
	}
	e = malloc(sizeof(*e));
	if (e == NULL) {
		*failed = 1;
		return NULL;
	}
	e->agent = a;
	e->hash = h;
	e->next = NULL;
	*pp = e;
	if (++r->n > ((size_t)1 << r->bits)) {
		grow(r);
	}
	return NULL;
}

void registry_remove(struct registry *r, struct agent *a)
{
	struct entry **pp = slot(r, agent_id(a), fnv1a(agent_id(a)));

	if (*pp != NULL && (*pp)->agent == a) {
		struct entry *e = *pp;
		*pp = e->next;
		free(e);
		r->n--;
	}
}

size_t registry_count(const struct registry *r)
{
	return r->n;
}
