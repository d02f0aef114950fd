#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "num.h"

enum opt_kind { OPT_STR, OPT_SECONDS, OPT_COUNT, OPT_LEVEL, OPT_FLAG };

struct opt {
	char shortname;
	const char *longname;
	const char *env;
	enum opt_kind kind;
	size_t offset;    /* into struct config */
	uint64_t min;     /* counts and seconds (ms) */
	uint64_t max;
	const char *help;
};

#define F(field) offsetof(struct config, field)
#define DAY_MS (86400ULL * 1000)

static const struct opt opts[] = {
	{'r', "runner-url", "RUNNER_URL", OPT_STR, F(runner_url), 0, 0,
	 "runner base URL, ws://host[:port][/base] or wss://..."},
	{'c', "container-id", "CONTAINER_ID", OPT_STR, F(container_id), 0, 0,
	 "container id; the agent dials URL/ws/tunnel/ID"},
	{0, "reconnect-delay", "RECONNECT_DELAY", OPT_SECONDS, F(reconnect_delay_ms), 0, DAY_MS,
	 "seconds before the first reconnect, doubled per failure [5]"},
	{0, "max-reconnect-delay", "MAX_RECONNECT_DELAY", OPT_SECONDS, F(reconnect_max_ms), 0, DAY_MS,
	 "cap on the reconnect backoff in seconds [60]"},
	{0, "max-reconnect", "MAX_RECONNECT", OPT_COUNT, F(max_reconnect), 0, 1000000000,
	 "consecutive failed connects before exit 1, 0 = forever [0]"},
	{0, "log-level", "LOG_LEVEL", OPT_LEVEL, F(log_level), 0, 0,
	 "trace, debug, info, warn or error [info]"},
	{0, "connect-timeout", "CONNECT_TIMEOUT", OPT_SECONDS, F(connect_timeout_ms), 1, DAY_MS,
	 "seconds allowed for a connect or handshake [10]"},
	{0, "ping-interval", "PING_INTERVAL", OPT_SECONDS, F(ping_interval_ms), 1, DAY_MS,
	 "idle seconds before the agent pings the runner [30]"},
	{0, "ping-timeout", "PING_TIMEOUT", OPT_SECONDS, F(ping_timeout_ms), 1, DAY_MS,
	 "seconds of silence after a ping before reconnecting [15]"},
	{0, "udp-idle-timeout", "UDP_IDLE_TIMEOUT", OPT_SECONDS, F(udp_idle_ms), 1, DAY_MS,
	 "seconds since its last datagram before a UDP connection closes [60]"},
	{0, "stall-timeout", "STALL_TIMEOUT", OPT_SECONDS, F(stall_timeout_ms), 1, DAY_MS,
	 "seconds a local service may block the tunnel before it is closed [10]"},
	{0, "max-connections", "MAX_CONNECTIONS", OPT_COUNT, F(max_conns), 1, 1048576,
	 "live connections at most [open-file limit - 32, up to 65536]"},
	{0, "max-udp", "MAX_UDP", OPT_COUNT, F(max_udp), 1, 65536,
	 "live UDP connections at most [256]"},
	{0, "max-message", "MAX_MESSAGE", OPT_COUNT, F(max_message), 65544, 64ULL << 20,
	 "largest runner message in bytes [1048576]"},
	{0, "ca-file", "SSL_CERT_FILE", OPT_STR, F(ca_file), 0, 0,
	 "PEM trust anchors for wss:// [system bundle]"},
	{0, "tls-server-name", "TLS_SERVER_NAME", OPT_STR, F(tls_server_name), 0, 0,
	 "name for SNI and certificate check [URL host]"},
	{0, "tls-pin", "TLS_PIN", OPT_STR, F(tls_pin), 0, 0,
	 "sha256:<base64> of the server's public key; accepted without a CA"},
	{0, "tls-cert", "TLS_CERT", OPT_STR, F(tls_cert), 0, 0,
	 "PEM client certificate chain for mutual TLS"},
	{0, "tls-key", "TLS_KEY", OPT_STR, F(tls_key), 0, 0,
	 "PEM private key (RSA or EC) of --tls-cert"},
	{0, "insecure", "TLS_INSECURE", OPT_FLAG, F(insecure), 0, 1,
	 "do not verify the runner's certificate (warns at every connect)"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void set_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->reconnect_delay_ms = 5000;
	c->reconnect_max_ms = 60000;
	c->log_level = LOG_INFO;
	c->connect_timeout_ms = 10000;
	c->ping_interval_ms = 30000;
	c->ping_timeout_ms = 15000;
	c->udp_idle_ms = 60000;
	c->stall_timeout_ms = 10000;
	c->max_conns = 0; /* from the open-file limit, in main */
	c->max_udp = 256;
	c->max_message = 1 << 20;
}

/* Store value v for option o; from is "--name" or "$ENV" for messages. */
static int apply(struct config *c, const struct opt *o, const char *v,
		 const char *from, char *err, size_t errlen)
{
	char *field = (char *)c + o->offset;
	uint64_t n;

	switch (o->kind) {
	case OPT_STR:
		if (v[0] == '\0') {
			fmt_snprintf(err, errlen, "%s: empty value", from);
			return -1;
		}
		memcpy(field, &v, sizeof(v));
		return 0;
	case OPT_SECONDS:
		if (num_parse_seconds(v, o->max, &n) != 0 || n < o->min) {
			fmt_snprintf(err, errlen, "%s: '%s' is not a number of seconds (e.g. 5 or 0.5)", from, v);
			return -1;
		}
		memcpy(field, &n, sizeof(n));
		return 0;
	case OPT_COUNT:
		if (num_parse_u64(v, o->min, o->max, &n) != 0) {
			fmt_snprintf(err, errlen, "%s: '%s' is not a whole number from %llu to %llu", from, v,
				 (unsigned long long)o->min, (unsigned long long)o->max);
			return -1;
		}
		memcpy(field, &n, sizeof(n));
		return 0;
	case OPT_LEVEL:
		if (log_level_parse(v, &c->log_level) != 0) {
			fmt_snprintf(err, errlen, "%s: '%s' is not one of trace, debug, info, warn, error", from, v);
			return -1;
		}
		return 0;
	case OPT_FLAG:
		if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0) {
			n = 1;
		} else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0 || v[0] == '\0') {
			n = 0;
		} else {
			fmt_snprintf(err, errlen, "%s: '%s' is not a boolean (1/0, true/false)", from, v);
			return -1;
		}
		memcpy(field, &n, sizeof(n));
		return 0;
	}
	return -1;
}

static const struct opt *find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < NOPTS; i++) {
		if (strlen(opts[i].longname) == len && strncmp(opts[i].longname, name, len) == 0) {
			return &opts[i];
		}
	}
	return NULL;
}

static const struct opt *find_short(char ch)
{
	for (size_t i = 0; i < NOPTS; i++) {
		if (ch != 0 && opts[i].shortname == ch) {
			return &opts[i];
		}
	}
	return NULL;
}

enum config_result config_parse(struct config *c, int argc, char **argv,
				char *err, size_t errlen)
{
	char from[64];

	set_defaults(c);
	for (size_t i = 0; i < NOPTS; i++) {
		const char *v = getenv(opts[i].env);
		if (v != NULL && (v[0] != '\0' || opts[i].kind == OPT_FLAG)) {
			fmt_snprintf(from, sizeof(from), "$%s", opts[i].env);
			if (apply(c, &opts[i], v, from, err, errlen) != 0) {
				return CONFIG_ERROR;
			}
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct opt *o = NULL;
		const char *v = NULL;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			return CONFIG_HELP;
		}
		if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			return CONFIG_VERSION;
		}
		if (strncmp(a, "--", 2) == 0) {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq != NULL ? (size_t)(eq - a - 2) : strlen(a + 2);
			o = find_long(a + 2, len);
			if (o != NULL && eq != NULL) {
				v = eq + 1;
			}
		} else if (a[0] == '-' && a[1] != '\0') {
			o = find_short(a[1]);
			if (o != NULL && a[2] != '\0') {
				v = a[2] == '=' ? a + 3 : a + 2;
			}
		}
		if (o == NULL) {
			fmt_snprintf(err, errlen, "unknown option '%s' (see --help)", a);
			return CONFIG_ERROR;
		}
		fmt_snprintf(from, sizeof(from), "--%s", o->longname);
		if (v == NULL && o->kind == OPT_FLAG) {
			v = "1";
		}
		if (v == NULL) {
			if (i + 1 >= argc) {
				fmt_snprintf(err, errlen, "%s: missing value", from);
				return CONFIG_ERROR;
			}
			v = argv[++i];
		}
		if (apply(c, o, v, from, err, errlen) != 0) {
			return CONFIG_ERROR;
		}
	}
	if (c->runner_url == NULL) {
		fmt_snprintf(err, errlen, "--runner-url (or $RUNNER_URL) is required");
		return CONFIG_ERROR;
	}
	if (c->container_id == NULL) {
		fmt_snprintf(err, errlen, "--container-id (or $CONTAINER_ID) is required");
		return CONFIG_ERROR;
	}
	if (c->reconnect_max_ms < c->reconnect_delay_ms) {
		c->reconnect_max_ms = c->reconnect_delay_ms;
	}
	return CONFIG_RUN;
}

void config_usage(void)
{
	fmt_print(1, "usage: tunnel-client --runner-url URL --container-id ID [options]\n\n"
	       "Dials the runner's WebSocket at URL/ws/tunnel/ID and splices every\n"
	       "tunnelled connection to 127.0.0.1:PORT (TCP or UDP).\n\noptions:\n");
	for (size_t i = 0; i < NOPTS; i++) {
		char name[48];
		const struct opt *o = &opts[i];
		if (o->shortname != 0) {
			fmt_snprintf(name, sizeof(name), "-%c, --%s", o->shortname, o->longname);
		} else {
			fmt_snprintf(name, sizeof(name), "    --%s", o->longname);
		}
		fmt_print(1, "  %-26s %s\n  %-26s   env %s\n", name, o->help, "", o->env);
	}
	fmt_print(1, "  %-26s %s\n  %-26s %s\n", "-h, --help", "this text", "-V, --version",
	       "print the version and exit");
}
