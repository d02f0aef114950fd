/* tunnel-server: entry point. Loads the configuration, sets up signals
 * (SIGTERM/SIGINT stop, SIGHUP reloads) and runs the server. */
#include <signal.h>
#include <string.h>

#include "fmt.h"
#include "log.h"
#include "net.h"
#include "server.h"
#include "signals.h"

/* The only process-wide state: set by signals. */
static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t reload_flag;

/* SIGTERM/SIGINT stop, SIGHUP reloads. */
static void setup_signals(sigset_t *waitmask)
{
	signals_init(waitmask);
	signals_catch(SIGTERM, &stop_flag, waitmask);
	signals_catch(SIGINT, &stop_flag, waitmask);
	signals_catch(SIGHUP, &reload_flag, waitmask);
}

int main(int argc, char **argv)
{
	static struct server s;
	sigset_t waitmask;
	char err[300];
	int rc;

	switch (server_config_load(&s.cfg, argc, argv, err, sizeof(err))) {
	case SCFG_HELP:
		server_config_usage();
		return 0;
	case SCFG_VERSION:
		fmt_print(1, "tunnel-server %s\n", TC_VERSION);
		return 0;
	case SCFG_ERROR:
		fmt_print(2, "tunnel-server: %s\n", err);
		return 2;
	case SCFG_RUN:
		break;
	}
	log_set_level(s.cfg.log_level);
	(void)net_raise_nofile(); /* agents and public connections are descriptors */
	setup_signals(&waitmask);
	s.stop = &stop_flag;
	s.reload = &reload_flag;
	s.waitmask = &waitmask;
	if (server_init(&s, err, sizeof(err)) != 0) {
		fmt_print(2, "tunnel-server: %s\n", err);
		server_free(&s);
		return 2;
	}
	rc = server_run(&s, argc, argv);
	server_free(&s);
	return rc;
}
