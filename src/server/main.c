/* tunnel-server: entry point. Loads the configuration, sets up signals
 * (SIGTERM/SIGINT stop, SIGHUP reloads) and runs the server. */
#include <signal.h>
#include <string.h>

#include "fmt.h"
#include "log.h"
#include "net.h"
#include "server.h"

/* The only process-wide state: set by signals. */
static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t reload_flag;

static void on_stop(int sig)
{
	stop_flag = sig;
}

static void on_reload(int sig)
{
	reload_flag = sig;
}

/* Block the signals except while waiting in ppoll (waitmask), so one can
 * never slip in between a check and a wait. */
static void setup_signals(sigset_t *waitmask)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_reload;
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, waitmask);
	sigdelset(waitmask, SIGTERM);
	sigdelset(waitmask, SIGINT);
	sigdelset(waitmask, SIGHUP);
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
