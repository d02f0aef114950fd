/* check: tunnel-client --check. Walks the way to the runner as a session
 * would (resolve, connect, the proxy if one applies, TLS with the
 * certificate verdict in words) and probes the tunnel URL, printing one
 * line per step on stdout ("tls      ok   suite=..."), then a verdict. It
 * never completes an upgrade: a second tunnel registered for the container
 * id makes the runner drop the live one, so the probe asks for a WebSocket
 * version no server speaks, which is refused before any handler runs, and
 * reports the status line. */
#ifndef CHECK_H
#define CHECK_H

struct session_env;

/* 0 when every step passed, 1 otherwise (the exit code). */
int check_run(const struct session_env *env);

#endif
