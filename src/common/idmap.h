/* idmap: an intrusive hash from a 32-bit id to an object, for tunnel
 * client ids. An object joins through a `struct idmap_node` member
 * (list_entry() from list.h gets it back). The table doubles when it holds
 * as many objects as buckets, so chains stay short at any size. */
#ifndef IDMAP_H
#define IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap_node {
	uint32_t id;
	struct idmap_node *next;
};

struct idmap {
	struct idmap_node **buckets; /* 1 << bits of them; NULL until the first add */
	unsigned bits;
	size_t n;
};

void idmap_init(struct idmap *m);
/* Free the buckets (the objects are the caller's). */
void idmap_free(struct idmap *m);
struct idmap_node *idmap_find(const struct idmap *m, uint32_t id);
/* Add node (node->id set, not already in). 0, or -1 when out of memory. */
int idmap_add(struct idmap *m, struct idmap_node *node);
/* Remove node (it must be in m). */
void idmap_del(struct idmap *m, struct idmap_node *node);
/* Call fn for each node, in no order, until it returns non-zero. fn must
 * not add or remove nodes. */
void idmap_walk(const struct idmap *m, int (*fn)(void *ctx, const struct idmap_node *n),
		void *ctx);

#endif
