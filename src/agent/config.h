/* config: command line and environment, compatible with the client this
 * agent replaces. A flag beats its environment variable. Strings point into
 * argv/environ (they live as long as the process). */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "allow.h"
#include "bounds.h"
#include "log.h"

struct config {
	const char *runner_url;      /* -r/--runner-url, RUNNER_URL */
	const char *container_id;    /* -c/--container-id, CONTAINER_ID */
	uint64_t reconnect_delay_ms; /* first backoff step */
	uint64_t reconnect_max_ms;   /* backoff cap */
	uint64_t max_reconnect;      /* consecutive failures allowed, 0 = forever */
	enum log_level log_level;
	uint64_t connect_timeout_ms; /* runner dial + handshake, and local connects */
	uint64_t ping_interval_ms;   /* idle time before a WebSocket ping */
	uint64_t ping_timeout_ms;    /* silence after the ping that kills a session */
	uint64_t udp_idle_ms;        /* UDP connection idle close */
	uint64_t stall_timeout_ms;   /* local queue full this long: close with ERROR */
	uint64_t max_conns;          /* live connections, TCP + UDP; 0 = from the fd limit */
	uint64_t max_udp;            /* live UDP connections */
	uint64_t max_message;        /* largest runner message accepted */
	const char *token;           /* Authorization: Bearer, or NULL */
	const char *allow_ports;     /* --allow-ports as given, or NULL */
	struct allow allow;          /* ... parsed; n == 0: every port */
	char headers[TC_HEADERS_MAX]; /* --header lines, each "Name: value\r\n" */
	size_t headers_len;
	int header_auth;             /* one of them is Authorization */
	const char *proxy;           /* --proxy URL, or NULL (the environment decides) */
	uint64_t check;              /* --check */
	uint64_t status_port;        /* answered by the agent itself; 0 = off */
	uint64_t log_ring;           /* bytes of recent log lines kept for /logs */
	/* TLS (wss://) */
	const char *ca_file;
	const char *tls_server_name;
	const char *tls_pin;
	const char *tls_cert;
	const char *tls_key;
	uint64_t insecure;
};

enum config_result { CONFIG_RUN, CONFIG_HELP, CONFIG_VERSION, CONFIG_ERROR };

/* Fill c from defaults, the environment, then argv. On CONFIG_ERROR, err
 * holds one line naming the option and the problem. */
enum config_result config_parse(struct config *c, int argc, char **argv,
				char *err, size_t errlen);
/* Print the --help text to stdout. */
void config_usage(void);

#endif
