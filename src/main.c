/* tunnel-client: entry point. Parses the configuration and runs the agent. */
#include <stdio.h>

#include "config.h"
#include "log.h"
#include "url.h"

int main(int argc, char **argv)
{
	struct config cfg;
	struct url url;
	char err[256];

	switch (config_parse(&cfg, argc, argv, err, sizeof(err))) {
	case CONFIG_HELP:
		config_usage();
		return 0;
	case CONFIG_VERSION:
		printf("tunnel-client %s\n", TC_VERSION);
		return 0;
	case CONFIG_ERROR:
		fprintf(stderr, "tunnel-client: %s\n", err);
		return 2;
	case CONFIG_RUN:
		break;
	}
	if (url_parse(cfg.runner_url, &url, err, sizeof(err)) != 0) {
		fprintf(stderr, "tunnel-client: %s\n", err);
		return 2;
	}
	log_set_level(cfg.log_level);
	log_error("not implemented yet");
	return 1;
}
