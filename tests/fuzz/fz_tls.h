/* fz_tls: the agent's TLS settings for the TLS targets: its real option
 * parsing with wss://runner.test/ and a CA file holding ca_pem. */
#ifndef FZ_TLS_H
#define FZ_TLS_H

#include "config.h"
#include "fz_args.h"
#include "fz_file.h"
#include "fz_frames.h"
#include "log.h"
#include "tls_client.h"
#include "url.h"

/* The loaded settings (fz_fail on a problem); file slot 0 holds ca_pem,
 * whose path is put in ca_path. Logging is set to errors only. */
static inline struct tls_config *fz_tls_client_config(const char *ca_pem, char ca_path[32])
{
	static const char *const vars[] = {"SSL_CERT_FILE", "TLS_SERVER_NAME", "TLS_PIN",
					   "TLS_CERT", "TLS_KEY", "TLS_INSECURE"};
	static struct config cfg;
	static struct url url;
	char *args[] = {"tunnel-client", "--runner-url", "wss://runner.test/", "--container-id",
			"c0ffee", "--ca-file", ca_path, "--log-level", "error"};
	struct tls_config *tc;
	char err[256];

	fz_env_clear(vars, FZ_COUNT(vars));
	fz_file(0, ca_pem, strlen(ca_pem), ca_path);
	if (config_parse(&cfg, (int)FZ_COUNT(args), args, err, sizeof(err)) != CONFIG_RUN ||
	    url_parse(cfg.runner_url, &url, err, sizeof(err)) != 0 ||
	    tls_client_config_load(&tc, &cfg, &url, err, sizeof(err)) != 0) {
		fz_fail(err);
	}
	log_set_level(LOG_ERROR);
	return tc;
}

#endif
