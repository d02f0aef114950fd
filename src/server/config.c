#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fmt.h"
#include "net.h"
#include "num.h"
#include "opts.h"
#include "tunnel.h"

#define F(field) offsetof(struct server_config, field)
#define DAY_MS (86400ULL * 1000)
#define CONFIG_FILE_MAX (1u << 20)

static int add_expose(void *cfg, const char *v, const char *from, char *err, size_t errlen);

static const struct opt opts[] = {
	{0, "config", "TUNNEL_CONFIG", OPT_STR, F(config_file), 0, 0,
	 "settings file, one \"name value\" per line (re-read on SIGHUP)", NULL},
	{'l', "listen", "TUNNEL_LISTEN", OPT_STR, F(listen), 0, 0,
	 "HOST:PORT where agents connect [127.0.0.1:8001]", NULL},
	{0, "tls-cert", "TLS_CERT", OPT_STR, F(tls_cert), 0, 0,
	 "PEM certificate chain: agents connect with wss://", NULL},
	{0, "tls-key", "TLS_KEY", OPT_STR, F(tls_key), 0, 0,
	 "PEM private key (RSA or EC) of --tls-cert", NULL},
	{'e', "expose", "TUNNEL_EXPOSE", OPT_LIST, 0, 0, 0,
	 "[tcp:|udp:]BIND_HOST:PORT=AGENT_ID:PORT, repeatable (env: comma-separated)", add_expose},
	{0, "token", "TUNNEL_TOKEN", OPT_STR, F(token), 0, 0,
	 "token every agent must send (Authorization: Bearer TOKEN)", NULL},
	{0, "token-file", "TUNNEL_TOKEN_FILE", OPT_STR, F(token_file), 0, 0,
	 "file of \"AGENT_ID TOKEN\" lines ('*' for any other id)", NULL},
	{0, "no-auth", "TUNNEL_NO_AUTH", OPT_FLAG, F(no_auth), 0, 1,
	 "allow agents without a token on a non-loopback listener", NULL},
	{0, "admin", "TUNNEL_ADMIN", OPT_STR, F(admin), 0, 0,
	 "HOST:PORT for status, metrics and a page (loopback advised) [off]", NULL},
	{0, "log-level", "LOG_LEVEL", OPT_LEVEL, F(log_level), 0, 0,
	 "trace, debug, info, warn or error [info]", NULL},
	{0, "max-message", "MAX_MESSAGE", OPT_COUNT, F(max_message), 65544, 64ULL << 20,
	 "largest agent message in bytes [1048576]", NULL},
	{0, "max-agents", "MAX_AGENTS", OPT_COUNT, F(max_agents), 1, 1000000,
	 "agent connections at most, upgrading ones included [16384]", NULL},
	{0, "max-connections", "MAX_CONNECTIONS", OPT_COUNT, F(max_conns), 1, 1000000,
	 "live public connections per agent at most [16384]", NULL},
	{0, "udp-idle-timeout", "UDP_IDLE_TIMEOUT", OPT_SECONDS, F(udp_idle_ms), 1, DAY_MS,
	 "seconds since its last datagram before a UDP flow ends [60]", NULL},
	{0, "stall-timeout", "STALL_TIMEOUT", OPT_SECONDS, F(stall_timeout_ms), 1, DAY_MS,
	 "seconds a public client may hold up its agent before it is closed [10]", NULL},
	{0, "ping-interval", "PING_INTERVAL", OPT_SECONDS, F(ping_interval_ms), 1, DAY_MS,
	 "seconds of silence before the server pings an agent [20]", NULL},
	{0, "ping-timeout", "PING_TIMEOUT", OPT_SECONDS, F(ping_timeout_ms), 1, DAY_MS,
	 "seconds of silence after that ping before the agent is dropped [20]", NULL},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void set_defaults(struct server_config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen = "127.0.0.1:8001";
	c->log_level = LOG_INFO;
	c->max_message = 1 << 20;
	c->max_agents = 16384;
	c->max_conns = 16384;
	c->udp_idle_ms = 60000;
	c->stall_timeout_ms = 10000;
	c->ping_interval_ms = 20000;
	c->ping_timeout_ms = 20000;
}

int server_config_agent_id_ok(const char *s, size_t n)
{
	if (n == 0 || n > TS_AGENT_ID_MAX) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-')) {
			return 0;
		}
	}
	return 1;
}

int server_config_parse_expose(const char *v, struct expose_spec *e)
{
	const char *eq = strchr(v, '=');
	const char *colon;
	uint64_t port;
	char bind[80];
	size_t n;

	memset(e, 0, sizeof(*e));
	e->proto = TUNNEL_TCP;
	if (strncmp(v, "tcp:", 4) == 0) {
		v += 4;
	} else if (strncmp(v, "udp:", 4) == 0) {
		e->proto = TUNNEL_UDP;
		v += 4;
	}
	if (eq == NULL || eq < v) {
		return -1;
	}
	n = (size_t)(eq - v);
	if (n >= sizeof(bind) || n >= sizeof(e->bind_text)) {
		return -1;
	}
	memcpy(bind, v, n);
	bind[n] = '\0';
	if (net_parse_hostport(bind, &e->bind, &e->bind_len) != 0) {
		return -1;
	}
	memcpy(e->bind_text, bind, n + 1);
	colon = strrchr(eq + 1, ':');
	if (colon == NULL || !server_config_agent_id_ok(eq + 1, (size_t)(colon - eq - 1)) ||
	    num_parse_u64(colon + 1, 1, 65535, &port) != 0) {
		return -1;
	}
	memcpy(e->agent, eq + 1, (size_t)(colon - eq - 1));
	e->port = (uint16_t)port;
	return 0;
}

int server_config_same_expose(const struct expose_spec *a, const struct expose_spec *b)
{
	return a->proto == b->proto && a->bind_len == b->bind_len &&
	       memcmp(&a->bind, &b->bind, a->bind_len) == 0 && strcmp(a->agent, b->agent) == 0 &&
	       a->port == b->port;
}

/* One expose (from the environment, several comma-separated); one on the
 * same public address and proto replaces the earlier. */
static int add_expose(void *cfg, const char *v, const char *from, char *err, size_t errlen)
{
	struct server_config *c = cfg;

	while (*v != '\0') {
		const char *comma = from[0] == '$' ? strchr(v, ',') : NULL;
		size_t len = comma != NULL ? (size_t)(comma - v) : strlen(v);
		char one[160];
		struct expose_spec e;
		size_t i;

		if (len >= sizeof(one)) {
			fmt_snprintf(err, errlen, "%s: expose too long", from);
			return -1;
		}
		memcpy(one, v, len);
		one[len] = '\0';
		v += comma != NULL ? len + 1 : len;
		if (len == 0) {
			continue;
		}
		if (server_config_parse_expose(one, &e) != 0) {
			fmt_snprintf(err, errlen,
				     "%s: '%s' is not [tcp:|udp:]BIND_HOST:PORT=AGENT_ID:PORT "
				     "(numeric BIND_HOST; AGENT_ID of letters, digits, '.', '_', '-')",
				     from, one);
			return -1;
		}
		for (i = 0; i < c->n_exposes; i++) {
			const struct expose_spec *x = &c->exposes[i];
			if (x->proto == e.proto && x->bind_len == e.bind_len &&
			    memcmp(&x->bind, &e.bind, e.bind_len) == 0) {
				break;
			}
		}
		if (i == TS_EXPOSES_MAX) {
			fmt_snprintf(err, errlen, "%s: more than %d exposes", from, TS_EXPOSES_MAX);
			return -1;
		}
		c->exposes[i] = e;
		if (i == c->n_exposes) {
			c->n_exposes++;
		}
	}
	return 0;
}

/* Read the whole file into a NUL-terminated heap buffer. */
static char *read_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *text = NULL;
	size_t len = 0;

	if (fd < 0) {
		fmt_snprintf(err, errlen, "--config %s: %s", path, strerror(errno));
		return NULL;
	}
	text = malloc(CONFIG_FILE_MAX + 1);
	if (text == NULL) {
		fmt_snprintf(err, errlen, "out of memory");
		close(fd);
		return NULL;
	}
	for (;;) {
		ssize_t n = read(fd, text + len, CONFIG_FILE_MAX - len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			fmt_snprintf(err, errlen, "--config %s: %s", path, strerror(errno));
			free(text);
			close(fd);
			return NULL;
		}
		if (n == 0) {
			break;
		}
		len += (size_t)n;
		if (len == CONFIG_FILE_MAX) {
			fmt_snprintf(err, errlen, "--config %s: larger than %u bytes", path, CONFIG_FILE_MAX);
			free(text);
			close(fd);
			return NULL;
		}
	}
	close(fd);
	text[len] = '\0';
	return text;
}

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

/* Apply every "name value" line of the file (kept in c->file_text). */
static int load_file(struct server_config *c, const char *path, char *err, size_t errlen)
{
	char *p;
	unsigned line = 0;

	c->file_text = read_file(path, err, errlen);
	if (c->file_text == NULL) {
		return -1;
	}
	p = c->file_text;
	while (*p != '\0') {
		char *end = strchr(p, '\n');
		char *next = end != NULL ? end + 1 : p + strlen(p);
		char *hash;
		char from[96];

		line++;
		if (end != NULL) {
			*end = '\0';
		}
		hash = strchr(p, '#');
		if (hash != NULL) {
			*hash = '\0';
		}
		while (is_space(*p)) {
			p++;
		}
		char *e = p + strlen(p);
		while (e > p && is_space(e[-1])) {
			*--e = '\0';
		}
		if (*p != '\0') {
			char *name = p;
			while (*p != '\0' && !is_space(*p)) {
				p++;
			}
			size_t nlen = (size_t)(p - name);
			while (is_space(*p)) {
				*p++ = '\0';
			}
			const struct opt *o = opts_find(opts, NOPTS, name, nlen);
			fmt_snprintf(from, sizeof(from), "%s:%u", path, line);
			if (o == NULL || strcmp(o->longname, "config") == 0) {
				name[nlen] = '\0';
				fmt_snprintf(err, errlen, "%s: unknown setting '%s'", from, name);
				return -1;
			}
			if (*p == '\0' && o->kind == OPT_FLAG) {
				p = (char *)"1";
			}
			if (*p == '\0') {
				fmt_snprintf(err, errlen, "%s: %s needs a value", from, o->longname);
				return -1;
			}
			if (opts_apply(o, c, p, from, err, errlen) != 0) {
				return -1;
			}
		}
		p = next;
	}
	return 0;
}

/* --config from argv (the last one wins), else $TUNNEL_CONFIG. */
static const char *find_config(int argc, char **argv)
{
	const char *path = getenv("TUNNEL_CONFIG");

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			path = argv[i] + 9;
		}
	}
	return path != NULL && path[0] != '\0' ? path : NULL;
}

static int check(struct server_config *c, char *err, size_t errlen)
{
	if (net_parse_hostport(c->listen, &c->listen_addr, &c->listen_len) != 0) {
		fmt_snprintf(err, errlen, "--listen: '%s' is not HOST:PORT (numeric host, or "
					  "[V6]:PORT)", c->listen);
		return -1;
	}
	if (c->admin != NULL && net_parse_hostport(c->admin, &c->admin_addr, &c->admin_len) != 0) {
		fmt_snprintf(err, errlen, "--admin: '%s' is not HOST:PORT", c->admin);
		return -1;
	}
	if ((c->tls_cert == NULL) != (c->tls_key == NULL)) {
		fmt_snprintf(err, errlen, "--tls-cert and --tls-key must be given together");
		return -1;
	}
	if (!c->no_auth && c->token == NULL && c->token_file == NULL &&
	    !net_is_loopback((const struct sockaddr *)&c->listen_addr)) {
		fmt_snprintf(err, errlen, "--listen %s is not a loopback address and no --token or "
					  "--token-file is set: any agent could register; give a "
					  "token, or --no-auth to accept that", c->listen);
		return -1;
	}
	if (c->ping_timeout_ms == 0 || c->ping_interval_ms == 0) {
		fmt_snprintf(err, errlen, "--ping-interval and --ping-timeout must be positive");
		return -1;
	}
	return 0;
}

enum server_config_result server_config_load(struct server_config *c, int argc, char **argv,
					     char *err, size_t errlen)
{
	const char *path;

	set_defaults(c);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			return SCFG_HELP;
		}
		if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
			return SCFG_VERSION;
		}
	}
	path = find_config(argc, argv);
	if (path != NULL && load_file(c, path, err, errlen) != 0) {
		return SCFG_ERROR;
	}
	switch (opts_parse(opts, NOPTS, c, argc, argv, err, errlen)) {
	case OPTS_HELP:
		return SCFG_HELP;
	case OPTS_VERSION:
		return SCFG_VERSION;
	case OPTS_ERROR:
		return SCFG_ERROR;
	case OPTS_RUN:
		break;
	}
	c->config_file = path;
	return check(c, err, errlen) == 0 ? SCFG_RUN : SCFG_ERROR;
}

void server_config_free(struct server_config *c)
{
	free(c->file_text);
	c->file_text = NULL;
}

void server_config_usage(void)
{
	fmt_print(1, "usage: tunnel-server [options]\n\n"
		     "Accepts tunnel agents on ws[s]://HOST:PORT/ws/tunnel/AGENT_ID and exposes\n"
		     "their local ports on public ports (--expose).\n\noptions:\n");
	opts_usage(opts, NOPTS);
}
