/* libFuzzer target: TLS after the handshake, both ends: the agent's
 * tls_client and tunnel-server's tls_server, with the tls_io pump they
 * share, on two of fz_os's in-memory sockets, and the input standing
 * between them as the wire. LLVMFuzzerInitialize makes one connection
 * per cipher suite (a full handshake, the certificate checked) and keeps
 * a copy of both ends' whole state; each run puts it back in place, at the
 * same addresses, so the script starts on an established connection
 * without a handshake of its own (through BearSSL's instrumented engine
 * that would be most of the run's cost). Either end writes application
 * bytes; the wire delivers what an end sent, in pieces of any size, or
 * changes a byte of it, drops bytes, slips in bytes of the input; an end
 * reads and flushes as after a poll, closes (close_notify), asks to
 * renegotiate, gives back its buffers; its socket ends, fails or fills up.
 *
 * Input: one byte of settings (which connection: AES-128-GCM, AES-256-GCM or
 * ChaCha20-Poly1305), then ops (see step()). When the script ends the wire
 * delivers everything, sockets take everything, and both ends are pumped
 * until nothing moves.
 *
 * Checked besides the sanitizers (fz_fail):
 *   - what an end reads is a prefix of what the other wrote: a changed,
 *     dropped, replayed or made-up record is never taken as data;
 *   - on an untouched wire (no byte changed, dropped or slipped in, no
 *     socket ended or failed, no renegotiation asked) no end fails, and
 *     once settled each end has read all the other wrote, unless it
 *     closed first;
 *   - a damaged stream fails as one: a bad record MAC, a corrupt record,
 *     or an alert, never a version or certificate problem;
 *   - the ends settle; a failure has a reason; nothing leaks. */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "fz_file.h"
#include "fz_frames.h"
#include "fz_in.h"
#include "fz_os.h"
#include "fz_tls.h"
#include "tls_client.h"
#include "tls_io.h"
#include "tls_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A self-signed P-256 certificate for runner.test and its key, made once
 * with openssl for this target: the agent trusts the certificate itself
 * (--ca-file), the server half presents it. */
static const char cert_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBmTCCAT6gAwIBAgIUJpp6YzuGZ5H60FsYDaWHv5LP9qswCgYIKoZIzj0EAwIw\n"
	"FjEUMBIGA1UEAwwLcnVubmVyLnRlc3QwIBcNMjYxMTI2MTk1NTExWhgPMjEyNjEx\n"
	"MDIxOTU1MTFaMBYxFDASBgNVBAMMC3J1bm5lci50ZXN0MFkwEwYHKoZIzj0CAQYI\n"
	"KoZIzj0DAQcDQgAEG2ektf2qcaGhU/0EsBfOV8x/qGIBopdL57PJpN7vqKYw/Tja\n"
	"NL54jS7qfYvz7RczfWjxyD9ZULmY9cb83GywAKNoMGYwHQYDVR0OBBYEFMEYVn1+\n"
	"dGRxCk5s10xb7wvKVk0iMB8GA1UdIwQYMBaAFMEYVn1+dGRxCk5s10xb7wvKVk0i\n"
	"MBYGA1UdEQQPMA2CC3J1bm5lci50ZXN0MAwGA1UdEwEB/wQCMAAwCgYIKoZIzj0E\n"
	"AwIDSQAwRgIhAMjvFZ9QqNdvAYSJDjbOvUHKjHeH3CpD0Pic2pZqmaRCAiEArd1s\n"
	"acccNMGSi+hcAhnF0UlRTZB+OdS3XsadplEZAfw=\n"
	"-----END CERTIFICATE-----\n";
static const char key_pem[] =
	"-----BEGIN EC PRIVATE KEY-----\n"
	"MHcCAQEEIH822jBcPLKVp03RvJVI3hA/PSPSHrZfYGPuJffuZVyToAoGCCqGSM49\n"
	"AwEHoUQDQgAEG2ektf2qcaGhU/0EsBfOV8x/qGIBopdL57PJpN7vqKYw/TjaNL54\n"
	"jS7qfYvz7RczfWjxyD9ZULmY9cb83GywAA==\n"
	"-----END EC PRIVATE KEY-----\n";

#define WIRE_MAX (2u << 20)    /* record bytes an end may send in a run */
#define PLAIN_MAX (512u << 10) /* application bytes an end may write */
#define SETTLE_ROUNDS 200

/* One end: 0 the agent (client), 1 the server. */
struct end {
	struct fz_sock *s;
	struct tls_io *io;
	struct end *peer;
	/* What this end sent, and how much of it the wire has passed on to
	 * the peer's socket (or dropped). */
	uint8_t wire[WIRE_MAX];
	size_t wire_len;
	size_t wire_off;
	/* What this end's writes took, and how much of the peer's it read. */
	uint8_t plain[PLAIN_MAX];
	size_t plain_len;
	size_t got;
	size_t appetite; /* bytes a poll turn reads at most (0: all there are) */
	int closed; /* it started a close_notify */
	int ended;  /* a read said end of stream */
};

static const uint16_t suites[] = {
	BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
};
#define N_SUITES (sizeof(suites) / sizeof(suites[0]))

static struct {
	struct fz_in in;
	struct end ends[2];
	int touched; /* a byte on the wire changed, dropped or slipped in */
	int faulted; /* a socket ended or failed under an end */
	int reneg;   /* an end asked to renegotiate */
	uint8_t scratch[64 << 10];
} w;

static struct tls_config *client_cfg;
static struct tls_server_config *server_cfg;

/* Per suite: both ends' objects, kept for the whole process (an engine
 * points into itself), and their bytes right after the handshake. */
static struct {
	struct tls_io *io[2];
	uint8_t *saved[2];
	size_t size[2];
} conns[N_SUITES];

/* ---- the wire ---- */

static void on_send(struct fz_sock *s, const uint8_t *p, size_t n)
{
	struct end *e = &w.ends[s == w.ends[0].s ? 0 : 1];

	if (n > WIRE_MAX - e->wire_len) {
		fz_fail("tls: an end sent over 2 MiB of records in one run");
	}
	memcpy(e->wire + e->wire_len, p, n);
	e->wire_len += n;
}

/* Pass up to n of e's sent bytes to its peer's socket; the bytes moved. */
static size_t deliver(struct end *e, size_t n)
{
	size_t left = e->wire_len - e->wire_off;
	struct fz_sock *to = e->peer->s;

	if (n > left) {
		n = left;
	}
	if (n == 0 || to->in_n == FZ_SLICES) {
		return 0;
	}
	fz_push(to, e->wire + e->wire_off, n, 1, 0);
	e->wire_off += n;
	return n;
}

/* ---- the ends ---- */

/* What e read must be the next bytes its peer wrote. */
static void check_read(struct end *e, const uint8_t *p, size_t n)
{
	const struct end *from = e->peer;

	if (n > from->plain_len - e->got || memcmp(from->plain + e->got, p, n) != 0) {
		fz_fail("tls: an end read bytes its peer never wrote");
	}
	e->got += n;
}

/* A failed end must say why. */
static void check_failure(const struct end *e)
{
	const char *why = tls_io_strerror(e->io);

	if (e->io->failed && (why == NULL || why[0] == '\0')) {
		fz_fail("tls: a failure with no reason");
	}
}

/* How far e has come: bytes it read from its socket, wrote to it, and
 * took as data. */
static uint64_t progress(const struct end *e)
{
	return e->peer->wire_off - fz_queued(e->s) + e->s->out_total + e->got;
}

/* One turn of a poll loop for e: what its socket is ready for, as the
 * transport asks (tls_io_events), then the handshake until done, reads
 * until EAGAIN, a flush. 1 if anything moved. */
static int pump(struct end *e)
{
	static uint8_t buf[16 << 10];
	struct pollfd p = {e->s->fd, tls_io_events(e->io, 0), 0};
	uint64_t before = progress(e);
	int r;

	if (fz_poll(&p, 1, 0) > 0) {
		tls_io_ready(e->io, p.revents);
	}
	if (!e->io->hs_done) {
		r = tls_io_handshake(e->io);
		check_failure(e);
		if (r != 1) {
			return progress(e) != before;
		}
	}
	/* As the programs do, whether or not poll said POLLIN: plaintext
	 * and records may wait in the engine and the staging buffer. */
	size_t want = e->appetite != 0 ? e->appetite : SIZE_MAX;
	for (int i = 0; i < 64 && !e->ended && want > 0; i++) {
		ssize_t n = tls_io_read(e->io, buf, want < sizeof(buf) ? want : sizeof(buf));
		if (n > 0) {
			check_read(e, buf, (size_t)n);
			want -= (size_t)n;
			continue;
		}
		e->ended = n == 0;
		break;
	}
	(void)tls_io_flush(e->io);
	check_failure(e);
	return progress(e) != before;
}

/* e writes total bytes: p[0..n) over and over, as much as it takes. */
static void write_app(struct end *e, const uint8_t *p, size_t n, size_t total)
{
	size_t fill = total < sizeof(w.scratch) ? total : sizeof(w.scratch);

	if (n == 0) {
		return;
	}
	for (size_t i = 0; i < fill; i += n) {
		memcpy(w.scratch + i, p, fill - i < n ? fill - i : n);
	}
	if (total > PLAIN_MAX - e->plain_len) {
		total = PLAIN_MAX - e->plain_len;
	}
	while (total > 0) {
		size_t k = total < fill ? total : fill;
		ssize_t got = tls_io_write(e->io, w.scratch, k);
		if (got <= 0) {
			break;
		}
		memcpy(e->plain + e->plain_len, w.scratch, (size_t)got);
		e->plain_len += (size_t)got;
		total -= (size_t)got;
		if ((size_t)got < k) {
			break;
		}
	}
	(void)tls_io_flush(e->io);
	check_failure(e);
}

/* One op of the script. Low nibble: what; bit 4: which end; bits 5-7:
 * a size class. */
static void step(uint8_t op)
{
	struct fz_in *in = &w.in;
	struct end *e = &w.ends[(op >> 4) & 1];
	unsigned cls = op >> 5;
	const uint8_t *p;
	size_t n, left = e->wire_len - e->wire_off;

	switch (op & 0xf) {
	case 0: /* e writes the next bytes, repeated */
		p = fz_in_take(in, fz_in_len(in), &n);
		write_app(e, p, n, n * (cls == 0 ? 1 : (size_t)cls * cls * 512));
		break;
	case 1: /* the wire passes on some of what e sent; class 7: all */
		n = (size_t)fz_in_u8(in) + 1;
		deliver(e, cls == 7 ? left : n << cls);
		break;
	case 2: /* ... changes a byte of it */
		n = fz_in_u16(in);
		uint8_t x = fz_in_u8(in);
		if (left > 0) {
			e->wire[e->wire_off + n % left] ^= x != 0 ? x : 0x80;
			w.touched = 1;
		}
		break;
	case 3: /* ... drops some */
		n = (size_t)fz_in_u8(in) + 1;
		if (left > 0) {
			e->wire_off += n < left ? n : left;
			w.touched = 1;
		}
		break;
	case 4: /* ... slips bytes of the input in ahead of e's peer's */
		p = fz_in_take(in, fz_in_len(in), &n);
		if (n > 0 && e->peer->s->in_n < FZ_SLICES) {
			fz_push(e->peer->s, p, n, 1, 0);
			w.touched = 1;
		}
		break;
	case 5: /* close_notify */
		tls_io_close(e->io);
		e->closed = 1;
		break;
	case 6: /* e's socket: end of stream, or a reset */
		if (cls & 1) {
			e->s->in_err = ECONNRESET;
		} else {
			e->s->in_eof = 1;
		}
		w.faulted = 1;
		break;
	case 7: /* e's socket takes only so much before it is full */
		n = fz_in_u8(in);
		e->s->out_budget = cls == 7 ? SIZE_MAX : n << cls;
		break;
	case 8: /* e gives back its staging buffers */
		tls_io_trim(e->io);
		break;
	case 9: /* e asks for a renegotiation, which the other end refuses
		 * (once a run: two ends without the flag would make a full
		 * handshake, which neither program ever does) */
		if (w.reneg) {
			break;
		}
		w.reneg = 1;
		br_ssl_engine_remove_flags(e->io->eng, BR_OPT_NO_RENEGOTIATION);
		(void)br_ssl_engine_renegotiate(e->io->eng);
		(void)tls_io_flush(e->io);
		check_failure(e);
		break;
	case 10: /* e's application takes only so much per poll turn; 7: all */
		n = (size_t)fz_in_u8(in) + 1;
		e->appetite = cls == 7 ? 0 : n << cls;
		break;
	default: /* a poll turn */
		pump(e);
		break;
	}
}

/* Deliver everything both ways and pump both ends until nothing moves.
 * 0 once settled, -1 if they never do. */
static int settle(void)
{
	for (int round = 0; round < SETTLE_ROUNDS; round++) {
		int moved = 0;
		for (int i = 0; i < 2; i++) {
			struct end *e = &w.ends[i];
			e->s->out_budget = SIZE_MAX;
			e->appetite = 0;
			moved |= deliver(e, SIZE_MAX) > 0;
		}
		for (int i = 0; i < 2; i++) {
			moved |= pump(&w.ends[i]);
		}
		if (!moved) {
			return 0;
		}
	}
	return -1;
}

/* Fresh sockets for both ends (the same descriptors every time). */
static void new_sockets(void)
{
	fz_reset();
	fz_hooks.on_send = on_send;
	w.touched = w.faulted = w.reneg = 0;
	for (int i = 0; i < 2; i++) {
		struct end *e = &w.ends[i];
		e->s = fz_new(SOCK_STREAM, i);
		e->s->connected = 1;
		e->peer = &w.ends[!i];
		e->wire_len = e->wire_off = e->plain_len = e->got = 0;
		e->appetite = 0;
		e->closed = e->ended = 0;
	}
}

/* Suite k's connection: a full handshake (the server offering only that
 * suite), then both ends' state saved. */
static void handshake(size_t k)
{
	new_sockets();
	struct tls_io *c = tls_client_new(client_cfg, w.ends[0].s->fd);
	struct tls_io *s = tls_server_new(server_cfg, w.ends[1].s->fd);
	if (c == NULL || s == NULL) {
		fz_fail("tls: out of memory");
	}
	/* The server's context embeds its engine first. */
	br_ssl_engine_set_suites(s->eng, &suites[k], 1);
	br_ssl_server_reset((br_ssl_server_context *)(void *)s->eng);
	w.ends[0].io = c;
	w.ends[1].io = s;
	if (settle() != 0 || !c->hs_done || !s->hs_done) {
		fz_fail("tls: the handshake between the two ends does not complete");
	}
	for (int i = 0; i < 2; i++) {
		struct tls_io *io = w.ends[i].io;
		/* Nothing in flight: the staging buffers hold no memory. */
		tls_io_trim(io);
		if (io->rin.data != NULL || io->rout.data != NULL) {
			fz_fail("tls: bytes in flight after the handshake");
		}
		/* Each end is one allocation that starts with its tls_io. */
		conns[k].io[i] = io;
		conns[k].size[i] = malloc_usable_size(io);
		conns[k].saved[i] = malloc(conns[k].size[i]);
		if (conns[k].saved[i] == NULL) {
			fz_fail("tls: out of memory");
		}
		memcpy(conns[k].saved[i], io, conns[k].size[i]);
		fz_close(w.ends[i].s->fd);
	}
}

/* Suite k's connection as it was right after its handshake. */
static void restore(size_t k)
{
	new_sockets();
	for (int i = 0; i < 2; i++) {
		memcpy(conns[k].io[i], conns[k].saved[i], conns[k].size[i]);
		w.ends[i].io = conns[k].io[i];
		if (w.ends[i].io->fd != w.ends[i].s->fd) {
			fz_fail("tls: a restored end lost its socket");
		}
	}
}

/* The run's memory and sockets given back; the objects stay. */
static void release(void)
{
	for (int i = 0; i < 2; i++) {
		buf_free(&w.ends[i].io->rin);
		buf_free(&w.ends[i].io->rout);
		fz_close(w.ends[i].s->fd);
	}
	if (fz_open_count() != 0) {
		fz_fail("fake sockets left open");
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char cert_path[32], key_path[32];
	char err[256];

	client_cfg = fz_tls_client_config(cert_pem, cert_path);
	fz_file(1, key_pem, sizeof(key_pem) - 1, key_path);
	if (tls_server_config_load(&server_cfg, cert_path, key_path, err, sizeof(err)) != 0) {
		fz_fail(err);
	}
	for (size_t k = 0; k < N_SUITES; k++) {
		handshake(k);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0) {
		return 0;
	}
	restore(data[0] % N_SUITES);
	w.in.p = data + 1;
	w.in.n = size - 1;
	w.in.off = 0;
	while (fz_in_more(&w.in)) {
		step(fz_in_u8(&w.in));
	}
	if (settle() != 0) {
		fz_fail("tls: the two ends never settle");
	}
	for (int i = 0; i < 2; i++) {
		const struct end *e = &w.ends[i];
		const struct end *from = e->peer;
		const char *why = tls_io_strerror(e->io);
		if (e->io->failed && w.touched && !w.faulted && !w.reneg &&
		    strstr(why, "corrupt TLS record") == NULL && strstr(why, "TLS alert") == NULL &&
		    strcmp(why, "bad record MAC") != 0) {
			fz_fail("tls: a damaged stream reported as something else");
		}
		if (w.touched || w.faulted || w.reneg) {
			continue;
		}
		if (e->io->failed) {
			fz_fail("tls: an end failed on an untouched wire");
		}
		if (!e->closed && e->got != from->plain_len) {
			fz_fail("tls: an end did not read all its peer wrote");
		}
	}
	release();
	return 0;
}
