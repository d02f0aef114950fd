/* Placeholder until wss:// lands (issue 4): every TLS entry point fails. */
#include "tls.h"

#include <errno.h>
#include <stdio.h>

int tls_config_load(struct tls_config **out, const struct config *cfg,
		    const struct url *url, char *err, size_t errlen)
{
	*out = NULL;
	snprintf(err, errlen, "wss:// is not supported by this build yet");
	return -1;
}

void tls_config_free(struct tls_config *tc) {}
struct tls *tls_new(const struct tls_config *tc, int fd) { return NULL; }
void tls_free(struct tls *t) {}
int tls_handshake(struct tls *t) { return -1; }
ssize_t tls_read(struct tls *t, void *buf, size_t len) { errno = EPROTO; return -1; }
ssize_t tls_write(struct tls *t, const void *buf, size_t len) { errno = EPROTO; return -1; }
int tls_flush(struct tls *t) { return -1; }
short tls_events(const struct tls *t, int want_write) { return 0; }
size_t tls_pending_out(const struct tls *t) { return 0; }
void tls_close(struct tls *t) {}
const char *tls_strerror(const struct tls *t) { return "TLS not supported"; }
