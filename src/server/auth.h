/* auth: which token each agent id must present. Tokens come from
 * --token (every agent) and --token-file (lines "AGENT_ID TOKEN", '*' for
 * any id without a line of its own; '#' comments). An agent sends
 * "Authorization: Bearer TOKEN"; it is compared in constant time, and no
 * token ever reaches a log line or an error message. */
#ifndef AUTH_H
#define AUTH_H

#include <stddef.h>

struct auth;

/* Load the tokens (file may be NULL, token may be NULL). On a problem err
 * names the file and line (never the token); -1. */
int auth_load(struct auth **out, const char *token, const char *file, char *err, size_t errlen);
/* Wipe and free. NULL is fine. */
void auth_free(struct auth *a);
/* Non-zero if any token is configured. */
int auth_required(const struct auth *a);
/* 1 if the Authorization header value ("" if none) carries the token for
 * this agent id, or no token is configured; 0 otherwise. */
int auth_check(const struct auth *a, const char *agent_id, const char *authorization);

#endif
