/* libFuzzer target: tunnel-server's settings file (src/server/config.c:
 * --config, "name value" lines over src/common/opts.c), exposes included.
 *
 * Input: the file. argv is "tunnel-server --config FILE".
 *
 * Checked besides the sanitizers: an error is one terminated line; an
 * accepted configuration has a listen address, at most TS_EXPOSES_MAX
 * exposes, each with a valid agent id, a port and a bind address, no two
 * on the same address and proto. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fz_args.h"
#include "fz_file.h"
#include "fz_frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_env_clear_server();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct server_config c;
	char path[32];
	char err[300];
	char *argv[4];

	fz_file(0, data, size, path);
	argv[0] = "tunnel-server";
	argv[1] = "--config";
	argv[2] = path;
	argv[3] = NULL;
	memset(err, 'Z', sizeof(err));
	enum server_config_result r = server_config_load(&c, 3, argv, err, sizeof(err));
	if (r == SCFG_ERROR && strnlen(err, sizeof(err)) == sizeof(err)) {
		fz_fail("server_config_load: an error line not terminated");
	}
	if (r == SCFG_RUN) {
		if (c.listen == NULL || c.listen_len == 0 || c.n_exposes > TS_EXPOSES_MAX) {
			fz_fail("server_config_load: no listen address, or too many exposes");
		}
		for (size_t i = 0; i < c.n_exposes; i++) {
			const struct expose_spec *e = &c.exposes[i];
			if (!server_config_agent_id_ok(e->agent, strlen(e->agent)) || e->port == 0 ||
			    e->bind_len == 0) {
				fz_fail("server_config_load: a bad expose accepted");
			}
			for (size_t j = 0; j < i; j++) {
				if (c.exposes[j].proto == e->proto && c.exposes[j].bind_len == e->bind_len &&
				    memcmp(&c.exposes[j].bind, &e->bind, e->bind_len) == 0) {
					fz_fail("server_config_load: two exposes on one address");
				}
			}
		}
	}
	server_config_free(&c);
	return 0;
}
