/* conn_table: the set of the agent's local connections, as conn.c uses
 * it: lookup by client id (a hash that grows with the table), each
 * socket's pollset slot, the lists of connections with work (conn.h), the
 * ids recently ended, and freeing at the end of a loop turn. It knows
 * nothing of the protocol. conn_table_init/free, conn_reap and conn_count
 * (declared in conn.h, for the session) live here too. */
#ifndef CONN_TABLE_H
#define CONN_TABLE_H

#include "conn.h"

/* The live connection with this id, or NULL. */
struct conn *conn_table_find(const struct conn_table *t, uint32_t id);
/* Give c (its id, proto and fd set) a pollset slot (no events yet) and an
 * entry in the id hash; count it live. 0, or -1 when out of memory
 * (nothing changed). */
int conn_table_add(struct conn_table *t, struct conn *c);
/* Take c out of the id hash: runner messages for its id no longer reach
 * it (it may still drain or linger). No-op when already out. */
void conn_table_detach(struct conn_table *t, struct conn *c);
/* Remember an id we ended, so stray DATA for it gets no reply; forget it
 * when a CONNECT reuses it. */
void conn_table_remember_closed(struct conn_table *t, uint32_t id);
int conn_table_recently_closed(const struct conn_table *t, uint32_t id);
void conn_table_forget_closed(struct conn_table *t, uint32_t id);

#endif
