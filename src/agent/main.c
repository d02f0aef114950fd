/* tunnel-client: entry point. Parses the configuration, then runs sessions
 * with backoff between them until a stop signal or too many failures. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "bounds.h"
#include "check.h"
#include "config.h"
#include "fmt.h"
#include "log.h"
#include "net.h"
#include "proc.h"
#include "proxy.h"
#include "rand.h"
#include "session.h"
#include "signals.h"
#include "stats.h"
#include "status.h"
#include "tls_client.h"
#include "url.h"

/* The only process-wide state: set by signals. SIGTERM/SIGINT stop;
 * SIGHUP ends a backoff wait (dial now); SIGUSR1 logs the status. */
static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t dial_flag;
static volatile sig_atomic_t report_flag;

/* SIGTERM/SIGINT stop, SIGHUP dials now, SIGUSR1 logs the status. */
static void setup_signals(sigset_t *waitmask)
{
	signals_init(waitmask);
	signals_catch(SIGTERM, &stop_flag, waitmask);
	signals_catch(SIGINT, &stop_flag, waitmask);
	signals_catch(SIGHUP, &dial_flag, waitmask);
	signals_catch(SIGUSR1, &report_flag, waitmask);
}

/* Wait ms milliseconds, or until a stop signal or SIGHUP (dial now). */
static void wait_ms(uint64_t ms, const struct session_env *env)
{
	uint64_t until = net_now_ms() + ms;

	dial_flag = 0;
	while (!stop_flag) {
		if (dial_flag) {
			log_info("SIGHUP: dialling now");
			dial_flag = 0;
			return;
		}
		if (report_flag) {
			report_flag = 0;
			status_log(env, NULL);
		}
		if (net_now_ms() >= until) {
			return;
		}
		net_ppoll(NULL, 0, until, env->waitmask);
	}
}

/* Backoff after `failures` consecutive failures: the reconnect delay
 * doubled per failure up to the cap, then +-25% jitter (integers only). */
static uint64_t backoff_ms(const struct config *cfg, uint64_t failures)
{
	uint64_t d = cfg->reconnect_delay_ms;

	for (uint64_t i = 1; i < failures && d < cfg->reconnect_max_ms; i++) {
		d *= 2;
	}
	if (d > cfg->reconnect_max_ms) {
		d = cfg->reconnect_max_ms;
	}
	if (d >= 4) {
		d = d - d / 4 + rand_below((uint32_t)(d / 2 + 1));
	}
	return d;
}

/* --max-connections from the descriptors the agent can have, unless given;
 * --max-udp never above it. */
static void size_limits(struct config *cfg)
{
	uint64_t nofile = net_raise_nofile();
	uint64_t budget = nofile > TC_FD_RESERVE ? nofile - TC_FD_RESERVE : 1;

	if (cfg->max_conns == 0) {
		cfg->max_conns = budget < TC_CONNS_AUTO_MAX ? budget : TC_CONNS_AUTO_MAX;
	} else if (cfg->max_conns > budget) {
		log_warn("--max-connections %llu is more than the open-file limit allows (%llu): "
			 "connections past it get ERROR",
			 (unsigned long long)cfg->max_conns, (unsigned long long)budget);
	}
	if (cfg->max_udp > cfg->max_conns) {
		cfg->max_udp = cfg->max_conns;
	}
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct url url;
	struct tls_config *tls = NULL;
	struct session_env env;
	struct proxy proxy;
	struct stats stats;
	char shown[URL_HOST_MAX + URL_PATH_MAX + 32];
	sigset_t waitmask;
	uint64_t failures = 0; /* consecutive failed connects (MAX_RECONNECT) */
	uint64_t step = 0;     /* backoff step: grows until a stable session */
	char err[256];
	int rc = 0;

	switch (config_parse(&cfg, argc, argv, err, sizeof(err))) {
	case CONFIG_HELP:
		config_usage();
		return 0;
	case CONFIG_VERSION:
		fmt_print(1, "tunnel-client %s\n", TC_VERSION);
		return 0;
	case CONFIG_ERROR:
		fmt_print(2, "tunnel-client: %s\n", err);
		return 2;
	case CONFIG_RUN:
		break;
	}
	if (url_parse(cfg.runner_url, &url, err, sizeof(err)) != 0) {
		fmt_print(2, "tunnel-client: %s\n", err);
		return 2;
	}
	if (url.userinfo[0] != '\0' && (cfg.token != NULL || cfg.header_auth)) {
		fmt_print(2, "tunnel-client: the runner URL's user info and %s both give an "
			     "Authorization header\n", cfg.token != NULL ? "--token" : "--header");
		return 2;
	}
	int use_proxy = proxy_select(cfg.proxy, &url, &proxy, err, sizeof(err));
	if (use_proxy < 0) {
		fmt_print(2, "tunnel-client: %s\n", err);
		return 2;
	}
	url_display(&url, shown, sizeof(shown));
	log_set_level(cfg.log_level);
	if (!cfg.check && log_ring_init(cfg.log_ring) != 0) {
		fmt_print(2, "tunnel-client: --log-ring %llu: out of memory\n",
			  (unsigned long long)cfg.log_ring);
		return 1;
	}
	memset(&stats, 0, sizeof(stats));
	stats.start_ms = net_now_ms();
	stats.start_unix_ms = proc_start_ms();
	if (stats.start_unix_ms == 0) {
		stats.start_unix_ms = (uint64_t)time(NULL) * 1000;
	}
	stats.state = "connecting";
	size_limits(&cfg);
	if (url.tls && tls_client_config_load(&tls, &cfg, &url, err, sizeof(err)) != 0) {
		fmt_print(2, "tunnel-client: %s\n", err);
		return 2;
	}
	setup_signals(&waitmask);
	env.cfg = &cfg;
	env.url = &url;
	env.shown_url = shown;
	env.tls = tls;
	env.proxy = use_proxy > 0 ? &proxy : NULL;
	env.stats = &stats;
	env.stop = &stop_flag;
	env.report = &report_flag;
	env.waitmask = &waitmask;
	if (cfg.check) {
		rc = check_run(&env);
		tls_client_config_free(tls);
		return rc;
	}
	log_info("tunnel-client %s starting url=%s container=%s max_connections=%llu%s%s", TC_VERSION,
		 shown, cfg.container_id, (unsigned long long)cfg.max_conns,
		 use_proxy > 0 ? " proxy=" : "", use_proxy > 0 ? proxy.url.host : "");
	for (;;) {
		unsigned long up_ms = 0;
		enum session_result r = session_run(&env, &up_ms);

		if (r == SESSION_STOPPED || stop_flag) {
			break;
		}
		if (r == SESSION_LOST) {
			failures = 0;
			step = up_ms >= TC_STABLE_MS ? 1 : step + 1;
		} else {
			failures++;
			step++;
			if (cfg.max_reconnect > 0 && failures >= cfg.max_reconnect) {
				log_error("giving up after %llu consecutive failed connects",
					  (unsigned long long)failures);
				rc = 1;
				break;
			}
		}
		uint64_t d = backoff_ms(&cfg, step);
		log_info("reconnecting in %llu ms failures=%llu", (unsigned long long)d,
			 (unsigned long long)failures);
		stats.state = "waiting";
		wait_ms(d, &env);
		if (stop_flag) {
			break;
		}
	}
	if (stop_flag) {
		log_info("stopped by signal %d", (int)stop_flag);
	}
	tls_client_config_free(tls);
	return rc;
}
