/* config (server): flags, environment and the --config file. The file has
 * one setting per line, "NAME VALUE" with NAME any long option ("listen
 * 0.0.0.0:8001", "expose tcp:0.0.0.0:8080=router1:80", "token-file
 * /etc/tunnel-server/tokens", "no-auth"); '#' starts a comment. The file is
 * read first, then the environment, then argv: a later source overrides a
 * setting, and exposes from every source add up (one on the same public
 * address replaces the earlier). SIGHUP reads everything again. */
#ifndef SERVER_CONFIG_H
#define SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bounds.h"
#include "log.h"

/* One public port: every connection (or UDP source address) on
 * bind becomes a connection to agent's local port. */
struct expose_spec {
	uint8_t proto;                     /* TUNNEL_TCP or TUNNEL_UDP */
	struct sockaddr_storage bind;
	socklen_t bind_len;
	char bind_text[72];                /* as given, for logs and status */
	char agent[TS_AGENT_ID_MAX + 1];
	uint16_t port;
};

struct server_config {
	const char *config_file;     /* --config, TUNNEL_CONFIG */
	const char *listen;          /* HOST:PORT for agents */
	const char *tls_cert;
	const char *tls_key;
	const char *admin;           /* HOST:PORT, or NULL: no admin endpoint */
	const char *token;           /* for every agent */
	const char *token_file;      /* "AGENT_ID TOKEN" lines */
	uint64_t no_auth;
	enum log_level log_level;
	uint64_t max_message;
	uint64_t max_agents;
	uint64_t max_conns;          /* per agent */
	uint64_t udp_idle_ms;
	uint64_t stall_timeout_ms;
	uint64_t ping_interval_ms;   /* silence before the server pings an agent */
	uint64_t ping_timeout_ms;    /* silence after the ping before it is dropped */
	struct sockaddr_storage listen_addr;
	socklen_t listen_len;
	struct sockaddr_storage admin_addr;
	socklen_t admin_len;
	struct expose_spec exposes[TS_EXPOSES_MAX];
	size_t n_exposes;
	char *file_text;             /* the config file; its strings point here */
};

enum server_config_result { SCFG_RUN, SCFG_HELP, SCFG_VERSION, SCFG_ERROR };

/* Fill c from defaults, the config file, the environment and argv; check
 * the result (addresses, TLS pair, auth on a public listener). On
 * SCFG_ERROR err has one line naming the option and the problem. */
enum server_config_result server_config_load(struct server_config *c, int argc, char **argv,
					     char *err, size_t errlen);
void server_config_free(struct server_config *c);
/* Non-zero if s[0..n) is a valid agent id: 1 to TS_AGENT_ID_MAX letters,
 * digits, '.', '_' or '-'. */
int server_config_agent_id_ok(const char *s, size_t n);
/* Parse one expose "[tcp:|udp:]BIND_HOST:PORT=AGENT_ID:PORT". 0 or -1. */
int server_config_parse_expose(const char *v, struct expose_spec *e);
/* Non-zero if the two exposes are the same (every field). */
int server_config_same_expose(const struct expose_spec *a, const struct expose_spec *b);
void server_config_usage(void);

#endif
