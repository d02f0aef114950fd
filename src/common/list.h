/* list: intrusive doubly-linked lists with a sentinel. An object joins a
 * list through a `struct list` member; list_entry() gets the object back.
 * Every operation is O(1); an unlinked member points to itself, so
 * list_linked() tells whether it is on a list and list_del() is safe to
 * repeat. */
#ifndef LIST_H
#define LIST_H

#include <stddef.h>

struct list {
	struct list *prev;
	struct list *next;
};

#define list_entry(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

/* An empty list head, or an unlinked member. */
static inline void list_init(struct list *l)
{
	l->prev = l;
	l->next = l;
}

static inline int list_empty(const struct list *head)
{
	return head->next == head;
}

static inline int list_linked(const struct list *m)
{
	return m->next != m;
}

/* Append m (unlinked) at the tail of head. */
static inline void list_add_tail(struct list *head, struct list *m)
{
	m->prev = head->prev;
	m->next = head;
	head->prev->next = m;
	head->prev = m;
}

/* Unlink m from whatever list it is on (no-op if none). */
static inline void list_del(struct list *m)
{
	m->prev->next = m->next;
	m->next->prev = m->prev;
	list_init(m);
}

/* Move every member of from to the tail of to; from is left empty. */
static inline void list_splice(struct list *from, struct list *to)
{
	if (list_empty(from)) {
		return;
	}
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	list_init(from);
}

/* The first member, or NULL when empty. */
static inline struct list *list_first(const struct list *head)
{
	return list_empty(head) ? NULL : head->next;
}

#endif
