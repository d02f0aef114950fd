#include "tls_io.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "bounds.h"
#include "fmt.h"
#include "log.h"
#include "rand.h"



/* ---- errors ---- */

/* Mark t failed once: later calls return -1 with errno = err; msg (or
 * the engine's error when msg is NULL and err is EPROTO) says why. */
void tls_io_fail(struct tls_io *io, int err, const char *msg)
{
	int e = br_ssl_engine_last_error(io->eng);
	int refused = msg != NULL; /* the peer hung up, or sent an alert */
	const char *about = NULL;  /* what the peer did, after its name */
	char *m = io->errmsg;
	size_t cap = sizeof(io->errmsg);

	if (io->failed) {
		return;
	}
	io->failed = 1;
	io->fail_errno = err;
	if (msg == NULL && err != EPROTO) {
		msg = strerror(err);
	} else if (msg == NULL && e < BR_ERR_RECV_FATAL_ALERT && !io->hs_done && io->first_byte >= 0 &&
		   io->first_byte != 22 && io->first_byte != 21) {
		/* A TLS peer starts with a handshake record or an alert (HTTP
		 * starts with a letter). */
		about = "is not speaking TLS (ws:// at one end, wss:// at the other?)";
	} else if (msg == NULL && e > BR_ERR_OK && e < BR_ERR_RECV_FATAL_ALERT && io->hs_done &&
		   e != BR_ERR_BAD_MAC) {
		/* The record layer after the handshake: a damaged stream,
		 * not the version or size problem BearSSL's code names. */
		about = "sent a corrupt TLS record";
	} else if (msg == NULL) {
		msg = tls_profile_error(e);
	}
	if (about != NULL) {
		fmt_snprintf(m, cap, "%s %s", io->peer, about);
	} else if (msg != NULL) {
		fmt_snprintf(m, cap, "%s", msg);
	} else if (e >= BR_ERR_RECV_FATAL_ALERT && e < BR_ERR_SEND_FATAL_ALERT + 256) {
		unsigned a = (unsigned)e & 255;

		refused = e < BR_ERR_SEND_FATAL_ALERT;
		if (refused) {
			fmt_snprintf(m, cap, "%s sent TLS alert %s (%u)", io->peer, tls_profile_alert(a), a);
		} else {
			fmt_snprintf(m, cap, "TLS alert %s (%u) sent to the %s", tls_profile_alert(a), a, io->peer);
		}
	} else {
		fmt_snprintf(m, cap, "%s (BearSSL error %d)",
			 e >= BR_ERR_X509_OK && e < 64 ? "bad certificate" : "TLS error", e);
	}
	if (refused && !io->hs_done && io->hint != NULL) {
		size_t n = strlen(m);
		fmt_snprintf(m + n, cap - n, "%s", io->hint(io));
	}
	errno = err;
}

const char *tls_io_strerror(const struct tls_io *io)
{
	if (io == NULL || !io->failed) {
		return "no TLS error";
	}
	return io->errmsg;
}

/* ---- engine ---- */


void tls_io_setup(struct tls_io *io, br_ssl_engine_context *eng, int fd, const char *peer,
		  unsigned char *buf, size_t len)
{
	uint8_t seed[32];

	io->eng = eng;
	io->fd = fd;
	io->peer = peer;
	io->readable = 0;
	io->writable = 1;
	io->first_byte = -1;
	buf_init(&io->rin, TC_TLS_STAGE);
	buf_init(&io->rout, TC_TLS_STAGE);
	tls_profile_apply(eng);
	br_ssl_engine_set_buffer(eng, buf, len, 1);
	/* BearSSL also reads /dev/urandom itself where it can; this seed makes
	 * sure the engine has kernel entropy even without /dev (scratch). */
	if (rand_bytes(seed, sizeof(seed)) == 0) {
		br_ssl_engine_inject_entropy(eng, seed, sizeof(seed));
	}
	memset(seed, 0, sizeof(seed));
}

void tls_io_free(struct tls_io *io)
{
	if (io != NULL) {
		buf_free(&io->rin);
		buf_free(&io->rout);
		io->destroy(io);
	}
}

/* The peer hung up during the handshake: say so in words. */
static void hung_up(struct tls_io *io, const char *what)
{
	char msg[96];

	fmt_snprintf(msg, sizeof(msg), "%s closed the %s during the TLS handshake", io->peer, what);
	tls_io_fail(io, EPROTO, msg);
}

/* A socket call failed with err. A peer that refuses a handshake often
 * just closes (reset or broken pipe on our side): say that in words. */
static void sock_fail(struct tls_io *io, int err)
{
	if (!io->hs_done && (err == EPIPE || err == ECONNRESET)) {
		hung_up(io, "connection");
	} else {
		tls_io_fail(io, err, NULL);
	}
}

/* Move finished records from the engine into rout. 1 if the engine has
 * none left, 0 if rout is full. */
static int stage(struct tls_io *io)
{
	for (;;) {
		size_t len;
		size_t room;
		unsigned char *rec = br_ssl_engine_sendrec_buf(io->eng, &len);
		uint8_t *dst;

		if (rec == NULL) {
			return 1;
		}
		dst = buf_space(&io->rout, &room);
		if (dst == NULL) {
			return 0;
		}
		if (room > len) {
			room = len;
		}
		memcpy(dst, rec, room);
		buf_commit(&io->rout, room);
		br_ssl_engine_sendrec_ack(io->eng, room);
	}
}

/* Stage the engine's records and write rout to the socket: one send for
 * many records. 1 if bytes moved, 0 if none could (nothing pending, or
 * the socket is full), -1 on a socket error (io marked). */
static int pump_send(struct tls_io *io)
{
	int moved = 0;

	for (;;) {
		size_t have;
		const uint8_t *p;
		ssize_t n;
		int drained = stage(io);

		p = buf_data(&io->rout, &have);
		if (have == 0 || !io->writable) {
			return moved;
		}
		n = send(io->fd, p, have, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			io->writable = 0;
			return moved;
		}
		if (n < 0) {
			sock_fail(io, errno);
			return -1;
		}
		buf_consume(&io->rout, (size_t)n);
		moved = 1;
		if ((size_t)n < have) {
			io->writable = 0; /* full: wait for poll */
			return moved;
		}
		if (drained) {
			return moved;
		}
	}
}

/* Feed the engine one piece of record bytes from rin, reading the socket
 * into rin (one large read) when it is empty. 1 if bytes moved or end of
 * stream was seen, 0 if none (the socket has nothing, or the engine wants
 * no records now), -1 on failure (io marked). */
static int pump_recv(struct tls_io *io)
{
	size_t len;
	size_t have;
	unsigned char *rec = br_ssl_engine_recvrec_buf(io->eng, &len);
	const uint8_t *p;

	if (rec == NULL) {
		return 0;
	}
	if (buf_len(&io->rin) == 0) {
		size_t room;
		uint8_t *dst = buf_space(&io->rin, &room);
		ssize_t n;

		if (io->eof || !io->readable || dst == NULL) {
			return 0;
		}
		do {
			n = recv(io->fd, dst, room, 0);
		} while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			io->readable = 0;
			return 0;
		}
		if (n < 0) {
			sock_fail(io, errno);
			return -1;
		}
		if (n == 0) {
			if (!io->hs_done) {
				hung_up(io, "connection");
				return -1;
			}
			/* End of stream without close_notify: the WebSocket
			 * layer above has its own framing and close handshake,
			 * so report a plain end of stream, not an error. */
			io->eof = 1;
			return 1;
		}
		if ((size_t)n < room) {
			io->readable = 0; /* drained: wait for poll */
		}
		if (io->first_byte < 0) {
			io->first_byte = dst[0];
		}
		buf_commit(&io->rin, (size_t)n);
	}
	p = buf_data(&io->rin, &have);
	if (have > len) {
		have = len;
	}
	memcpy(rec, p, have);
	br_ssl_engine_recvrec_ack(io->eng, have);
	buf_consume(&io->rin, have);
	return 1;
}

/* The engine stopped: mark t with its reason unless it closed cleanly.
 * 0 for a clean close, -1 for a failure. */
static int engine_closed(struct tls_io *io)
{
	if (br_ssl_engine_last_error(io->eng) == BR_ERR_OK) {
		return 0;
	}
	tls_io_fail(io, EPROTO, NULL);
	return -1;
}


const char *tls_io_suite(const struct tls_io *io)
{
	br_ssl_session_parameters sp;

	br_ssl_engine_get_session_parameters(io->eng, &sp);
	return tls_profile_suite(sp.cipher_suite);
}

int tls_io_handshake(struct tls_io *io)
{
	if (io->failed) {
		errno = io->fail_errno;
		return -1;
	}
	if (io->hs_done) {
		return 1;
	}
	for (;;) {
		unsigned st = br_ssl_engine_current_state(io->eng);
		int sent, got;

		if (st & BR_SSL_CLOSED) {
			if (engine_closed(io) == 0) {
				hung_up(io, "TLS session");
			}
			return -1;
		}
		if (st & (BR_SSL_SENDAPP | BR_SSL_RECVAPP)) {
			br_ssl_session_parameters sp;

			io->hs_done = 1;
			if (pump_send(io) < 0) {
				return -1;
			}
			br_ssl_engine_get_session_parameters(io->eng, &sp);
			log_debug("TLS handshake done suite=%s verify=%s",
				  tls_profile_suite(sp.cipher_suite),
				  io->verify != NULL ? io->verify : "none");
			return 1;
		}
		sent = pump_send(io);
		if (sent < 0) {
			return -1;
		}
		got = pump_recv(io);
		if (got < 0) {
			return -1;
		}
		if (!sent && !got) {
			return 0;
		}
	}
}

ssize_t tls_io_read(struct tls_io *io, void *buf, size_t len)
{
	size_t done = 0;

	if (io->failed) {
		errno = io->fail_errno;
		return -1;
	}
	/* As many records as are here, up to len: one call can take what a
	 * large socket read brought. */
	while (done < len) {
		unsigned st = br_ssl_engine_current_state(io->eng);
		int sent, got;

		if (st & BR_SSL_RECVAPP) {
			size_t avail;
			unsigned char *p = br_ssl_engine_recvapp_buf(io->eng, &avail);
			size_t n = avail < len - done ? avail : len - done;

			memcpy((uint8_t *)buf + done, p, n);
			br_ssl_engine_recvapp_ack(io->eng, n);
			done += n;
			continue;
		}
		if (done > 0 && (buf_len(&io->rin) == 0 || (st & BR_SSL_CLOSED))) {
			break; /* more would take a socket read */
		}
		if (st & BR_SSL_CLOSED) {
			return engine_closed(io) == 0 ? 0 : -1;
		}
		if (io->eof) {
			return 0;
		}
		sent = pump_send(io); /* the engine may owe the peer a record */
		if (sent < 0) {
			return done > 0 ? (ssize_t)done : -1;
		}
		got = pump_recv(io);
		if (got < 0) {
			return done > 0 ? (ssize_t)done : -1;
		}
		if (!sent && !got) {
			if (done > 0) {
				break;
			}
			errno = EAGAIN;
			return -1;
		}
	}
	return (ssize_t)done;
}

ssize_t tls_io_write(struct tls_io *io, const void *buf, size_t len)
{
	size_t done = 0;

	if (io->failed) {
		errno = io->fail_errno;
		return -1;
	}
	/* One record per piece, staged in rout, until rout is full; the
	 * socket gets them all at the next flush. */
	while (done < len) {
		if (!stage(io)) {
			break; /* rout is full */
		}
		unsigned st = br_ssl_engine_current_state(io->eng);
		if (st & BR_SSL_CLOSED) {
			if (engine_closed(io) == 0) {
				errno = EPIPE;
			}
			return done > 0 ? (ssize_t)done : -1;
		}
		if (!(st & BR_SSL_SENDAPP)) {
			break;
		}
		size_t avail;
		unsigned char *p = br_ssl_engine_sendapp_buf(io->eng, &avail);
		size_t n = avail < len - done ? avail : len - done;

		memcpy(p, (const uint8_t *)buf + done, n);
		br_ssl_engine_sendapp_ack(io->eng, n);
		/* A record now: tls_io_pending_out then counts every accepted
		 * byte, and nothing waits for a later flush. */
		br_ssl_engine_flush(io->eng, 0);
		done += n;
	}
	if (done == 0) {
		/* Nothing taken: try to make room on the socket. */
		if (pump_send(io) < 0) {
			return -1;
		}
		errno = EAGAIN;
		return -1;
	}
	return (ssize_t)done;
}

int tls_io_flush(struct tls_io *io)
{
	if (io->failed) {
		errno = io->fail_errno;
		return -1;
	}
	br_ssl_engine_flush(io->eng, 0);
	if (pump_send(io) < 0) {
		return -1;
	}
	if ((br_ssl_engine_current_state(io->eng) & BR_SSL_CLOSED) && engine_closed(io) != 0) {
		return -1;
	}
	return 0;
}

short tls_io_events(const struct tls_io *io, int want_write)
{
	unsigned st = br_ssl_engine_current_state(io->eng);
	short ev = 0;

	if (io->failed || (st & BR_SSL_CLOSED)) {
		return io->eof ? 0 : POLLIN;
	}
	if ((st & BR_SSL_SENDREC) || buf_len(&io->rout) > 0) {
		ev |= POLLOUT;
	}
	if ((st & BR_SSL_RECVREC) && !io->eof && buf_len(&io->rin) == 0) {
		ev |= POLLIN;
	}
	if (want_write && (st & BR_SSL_SENDAPP)) {
		ev |= POLLOUT;
	}
	return ev;
}

size_t tls_io_pending_out(const struct tls_io *io)
{
	size_t len = 0;

	br_ssl_engine_sendrec_buf(io->eng, &len);
	return len + buf_len(&io->rout);
}

void tls_io_ready(struct tls_io *io, short revents)
{
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		io->readable = 1;
	}
	if (revents & (POLLOUT | POLLHUP | POLLERR)) {
		io->writable = 1;
	}
}

void tls_io_trim(struct tls_io *io)
{
	if (buf_len(&io->rin) == 0) {
		buf_free(&io->rin);
	}
	if (buf_len(&io->rout) == 0) {
		buf_free(&io->rout);
	}
}

void tls_io_close(struct tls_io *io)
{
	if (io->failed) {
		return;
	}
	br_ssl_engine_close(io->eng);
	(void)pump_send(io);
}
