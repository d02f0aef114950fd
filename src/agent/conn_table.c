#include "conn_table.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void conn_table_init(struct conn_table *t, const struct conn_limits *lim,
		     struct conn_sink sink, struct pollset *ps)
{
	memset(t, 0, sizeof(*t));
	t->lim = *lim;
	t->sink = sink;
	t->ps = ps;
	t->first_slot = ps->n;
	idmap_init(&t->ids);
	list_init(&t->ready);
	list_init(&t->timed);
	list_init(&t->done);
}

/* Remember an id we ended, so stray DATA for it gets no reply. */
void conn_table_remember_closed(struct conn_table *t, uint32_t id)
{
	t->closed_ids[t->closed_next] = id;
	t->closed_next = (t->closed_next + 1) % TC_CLOSED_IDS;
}

int conn_table_recently_closed(const struct conn_table *t, uint32_t id)
{
	for (size_t i = 0; i < TC_CLOSED_IDS; i++) {
		if (t->closed_ids[i] == id && id != 0) {
			return 1;
		}
	}
	return 0;
}

void conn_table_forget_closed(struct conn_table *t, uint32_t id)
{
	for (size_t i = 0; i < TC_CLOSED_IDS; i++) {
		if (t->closed_ids[i] == id) {
			t->closed_ids[i] = 0;
		}
	}
}

struct conn *conn_table_find(const struct conn_table *t, uint32_t id)
{
	struct idmap_node *n = idmap_find(&t->ids, id);

	return n != NULL ? list_entry(n, struct conn, node) : NULL;
}

/* Take c out of the id hash: runner messages for its id no longer reach
 * it (it may still drain or linger). */
void conn_table_detach(struct conn_table *t, struct conn *c)
{
	if (!c->addressable) {
		return;
	}
	idmap_del(&t->ids, &c->node);
	c->addressable = 0;
}

/* Give c (with its fd) a poll slot and an entry in the id hash. */
int conn_table_add(struct conn_table *t, struct conn *c)
{
	if (pollset_add(t->ps, c->fd, 0, c) != 0) {
		return -1;
	}
	if (idmap_add(&t->ids, &c->node) != 0) {
		pollset_del(t->ps, t->ps->n - 1);
		return -1;
	}
	c->slot = t->ps->n - 1;
	list_init(&c->ready);
	list_init(&c->timed);
	list_init(&c->done);
	c->addressable = 1;
	t->live++;
	if (c->proto == TUNNEL_UDP) {
		t->udp++;
	}
	return 0;
}

void conn_reap(struct conn_table *t)
{
	for (struct list *l = list_first(&t->done); l != NULL; l = list_first(&t->done)) {
		struct conn *c = list_entry(l, struct conn, done);
		struct conn *moved = pollset_del(t->ps, c->slot);
		if (moved != NULL) {
			moved->slot = c->slot;
		}
		list_del(&c->done);
		close(c->fd);
		free(c);
	}
}

void conn_table_free(struct conn_table *t)
{
	for (size_t i = t->first_slot; i < t->ps->n; i++) {
		struct conn *c = t->ps->owner[i];
		if (c->state != CONN_DONE) {
			conn_table_detach(t, c);
			outq_clear(&c->q);
			c->state = CONN_DONE;
			list_del(&c->ready);
			list_del(&c->timed);
			list_add_tail(&t->done, &c->done);
		}
	}
	conn_reap(t);
	idmap_free(&t->ids);
	t->live = 0;
	t->udp = 0;
	t->over_hwm = 0;
}

size_t conn_count(const struct conn_table *t)
{
	return t->live;
}

struct each {
	int (*fn)(void *ctx, const struct conn *c);
	void *ctx;
};

static int each_node(void *ctx, const struct idmap_node *n)
{
	const struct each *e = ctx;

	return e->fn(e->ctx, list_entry(n, struct conn, node));
}

void conn_each(const struct conn_table *t, int (*fn)(void *ctx, const struct conn *c), void *ctx)
{
	struct each e = {fn, ctx};

	idmap_walk(&t->ids, each_node, &e);
}

const char *conn_state_name(const struct conn *c)
{
	static const char *const names[] = {"connecting", "open", "draining", "linger", "done"};

	return names[c->state];
}
