/* libFuzzer target: the agent's TLS client before the handshake completes.
 * The real tls_client (BearSSL with our profile, X.509 validation against
 * a test CA as the only anchor) and tls_io pump run on one of fz_os's
 * in-memory sockets; the input is everything the "runner" sends: its
 * records (ServerHello, Certificate, ServerKeyExchange, alerts, anything),
 * in pieces whose sizes the input picks, so record and message boundaries
 * fall anywhere.
 *
 * Input: one byte of settings (bit 0: the runner's bytes arrive at once;
 * else in pieces of 1 + the next byte's value), then the bytes.
 *
 * Checked besides the sanitizers (fz_fail): the handshake never completes
 * (only a server holding the private key of a certificate the test CA
 * signed could finish it), it fails with a reason once the bytes end, and
 * nothing leaks. After the handshake is not reached here: that would take
 * a server in the same process, and every record after it must pass the
 * AEAD check first. */
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fz_os.h"
#include "fz_tls.h"
#include "tls_client.h"
#include "tls_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A P-256 CA made once with openssl for this target. Its key, and the key
 * of the runner.test certificate it signed for the seeds (seeds.py), were
 * not kept: no input can sign a ServerKeyExchange the agent accepts. */
static const char ca_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBhDCCASugAwIBAgIUFmFH+jlcNwkMTV0Q88yxS3VOuDUwCgYIKoZIzj0EAwIw\n"
	"FzEVMBMGA1UEAwwMZnV6eiB0ZXN0IENBMCAXDTI2MTEyNjE0MDgyOFoYDzIxMjYx\n"
	"MTAyMTQwODI4WjAXMRUwEwYDVQQDDAxmdXp6IHRlc3QgQ0EwWTATBgcqhkjOPQIB\n"
	"BggqhkjOPQMBBwNCAATHGKE7RkF6iBWVcOst4m6v5bT1riJH4X2FOMYzO3szrYgS\n"
	"ONPP0gPFrDPqzm2eILwqC0YxOVeEQlwcTYw291I5o1MwUTAdBgNVHQ4EFgQUc/3S\n"
	"alMDLkg6YVobAWtRagngkcMwHwYDVR0jBBgwFoAUc/3SalMDLkg6YVobAWtRagng\n"
	"kcMwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiAv7tV4A/UzLmK4\n"
	"Ul4yHWSxHahF8pvXEEcyBXRkUn/5kAIgdmyTzEKHy2Aybi3E0Wnu1oVmSMo5bjHX\n"
	"tGfBBqhofnI=\n"
	"-----END CERTIFICATE-----\n";

static struct tls_config *tc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char path[32];

	tc = fz_tls_client_config(ca_pem, path);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0) {
		return 0;
	}
	fz_reset();
	struct fz_sock *s = fz_new(SOCK_STREAM, 0);
	s->connected = 1;
	struct tls_io *io = tls_client_new(tc, s->fd);
	if (io == NULL) {
		fz_fail("tls_client_new: out of memory");
	}
	int whole = data[0] & 1;
	size_t off = 1;
	int r = 0;
	/* Each turn: the next piece arrives once the last one was taken, and
	 * the engine is pumped as after a poll that found the socket readable
	 * and writable; after the last piece, the end of stream. */
	for (size_t turn = 0; r == 0 && turn < size + 64; turn++) {
		if (fz_queued(s) == 0) {
			if (off < size) {
				size_t n = size - off;
				if (!whole) {
					size_t piece = 1 + (size_t)data[off++];
					n = size - off < piece ? size - off : piece;
				}
				fz_push(s, data + off, n, 1, 0);
				off += n;
			} else {
				s->in_eof = 1;
			}
		}
		tls_io_ready(io, POLLIN | POLLOUT);
		r = tls_io_handshake(io);
	}
	if (r == 1) {
		fz_fail("tls: a handshake completed with bytes no one holding a key signed");
	}
	if (r == 0) {
		fz_fail("tls: the handshake still pending after the end of stream");
	}
	if (tls_io_strerror(io) == NULL || tls_io_strerror(io)[0] == '\0') {
		fz_fail("tls: a failure with no reason");
	}
	tls_io_free(io);
	fz_close(s->fd);
	if (fz_open_count() != 0) {
		fz_fail("fake sockets left open");
	}
	return 0;
}
