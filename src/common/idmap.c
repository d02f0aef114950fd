#include "idmap.h"

#include <stdlib.h>

static size_t bucket(const struct idmap *m, uint32_t id)
{
	return (uint32_t)(id * 2654435761u) >> (32 - m->bits);
}

void idmap_init(struct idmap *m)
{
	m->buckets = NULL;
	m->bits = 0;
	m->n = 0;
}

void idmap_free(struct idmap *m)
{
	free(m->buckets);
	idmap_init(m);
}

struct idmap_node *idmap_find(const struct idmap *m, uint32_t id)
{
	if (m->bits == 0) {
		return NULL;
	}
	for (struct idmap_node *x = m->buckets[bucket(m, id)]; x != NULL; x = x->next) {
		if (x->id == id) {
			return x;
		}
	}
	return NULL;
}

static int grow(struct idmap *m)
{
	unsigned bits = m->bits == 0 ? 6 : m->bits + 1;
	struct idmap_node **nb = calloc((size_t)1 << bits, sizeof(*nb));
	size_t old = m->bits == 0 ? 0 : (size_t)1 << m->bits;
	struct idmap_node **ob = m->buckets;

	if (nb == NULL) {
		return -1;
	}
	m->buckets = nb;
	m->bits = bits;
	for (size_t i = 0; i < old; i++) {
		while (ob[i] != NULL) {
			struct idmap_node *x = ob[i];
			ob[i] = x->next;
			x->next = nb[bucket(m, x->id)];
			nb[bucket(m, x->id)] = x;
		}
	}
	free(ob);
	return 0;
}

int idmap_add(struct idmap *m, struct idmap_node *node)
{
	if ((m->bits == 0 || m->n >= ((size_t)1 << m->bits)) && grow(m) != 0) {
		return -1;
	}
	node->next = m->buckets[bucket(m, node->id)];
	m->buckets[bucket(m, node->id)] = node;
	m->n++;
	return 0;
}

void idmap_del(struct idmap *m, struct idmap_node *node)
{
	for (struct idmap_node **pp = &m->buckets[bucket(m, node->id)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == node) {
			*pp = node->next;
			m->n--;
			return;
		}
	}
}

void idmap_walk(const struct idmap *m, int (*fn)(void *ctx, const struct idmap_node *n),
		void *ctx)
{
	if (m->buckets == NULL) {
		return;
	}
	for (size_t i = 0; i < ((size_t)1 << m->bits); i++) {
		for (const struct idmap_node *n = m->buckets[i]; n != NULL; n = n->next) {
			if (fn(ctx, n) != 0) {
				return;
			}
		}
	}
}
