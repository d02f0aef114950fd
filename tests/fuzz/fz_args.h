/* fz_args: command lines and environments for the targets that run a
 * program's real option parsing. */
#ifndef FZ_ARGS_H
#define FZ_ARGS_H

#include <stdlib.h>

#define FZ_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Append the n words to argv at *argc (the caller sizes argv). */
static inline void fz_args_add(char **argv, int *argc, char *const *words, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		argv[(*argc)++] = words[i];
	}
}

/* Unset the n environment variables (so the caller's cannot leak in). */
static inline void fz_env_clear(const char *const *vars, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsetenv(vars[i]);
	}
}

/* tunnel-server's environment variables. */
static inline void fz_env_clear_server(void)
{
	static const char *const vars[] = {
		"TUNNEL_CONFIG", "TUNNEL_LISTEN", "TLS_CERT", "TLS_KEY", "TUNNEL_EXPOSE", "TUNNEL_TOKEN",
		"TUNNEL_TOKEN_FILE", "TUNNEL_NO_AUTH", "TUNNEL_ADMIN", "LOG_LEVEL", "MAX_MESSAGE",
		"MAX_AGENTS", "MAX_CONNECTIONS", "UDP_IDLE_TIMEOUT", "STALL_TIMEOUT", "PING_INTERVAL",
		"PING_TIMEOUT"};

	fz_env_clear(vars, FZ_COUNT(vars));
}

#endif
