/* handshake: the WebSocket HTTP/1.1 upgrade (RFC 6455 section 4) as pure
 * functions on bytes, both sides: the agent's request and the check of the
 * response, the server's parse of a request and its answers. The callers
 * do the I/O. */
#ifndef HANDSHAKE_H
#define HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#ifndef TC_TARGET
#define TC_TARGET "unknown"
#endif

#define HS_KEY_LEN 24    /* base64 of 16 random bytes */
#define HS_ACCEPT_LEN 28 /* base64 of a SHA-1 */

enum hs_result {
	HS_DONE = 0,       /* 101 with the right accept value; *consumed set */
	HS_NEED_MORE = 1,  /* header block not complete yet */
	HS_ERR_TOO_BIG = -1,
	HS_ERR_NOT_HTTP = -2,
	HS_ERR_STATUS = -3,  /* a status other than 101 (in *status) */
	HS_ERR_UPGRADE = -4, /* missing/wrong Upgrade or Connection header */
	HS_ERR_ACCEPT = -5,  /* Sec-WebSocket-Accept missing or wrong */
	HS_ERR_KEY = -6,     /* request: Sec-WebSocket-Key missing or malformed */
	HS_ERR_VERSION = -7, /* request: Sec-WebSocket-Version is not 13 */
};

#define HS_PATH_MAX 512
#define HS_USER_AGENT_MAX 128
#define HS_AUTH_MAX 512

/* What a server needs from an upgrade request. */
struct hs_request {
	char path[HS_PATH_MAX];                /* request target, starts with '/' */
	char key[HS_KEY_LEN + 1];              /* Sec-WebSocket-Key */
	char user_agent[HS_USER_AGENT_MAX];    /* cut to fit; "" if none */
	char authorization[HS_AUTH_MAX];       /* "" if none; a secret */
	int version_ok;                        /* Sec-WebSocket-Version: 13 */
};

/* Standard base64 of in[0..len) into out (4 * ((len + 2) / 3) + 1 bytes,
 * NUL-terminated). */
void hs_base64(const uint8_t *in, size_t len, char *out);
/* base64 of 16 nonce bytes into key (HS_KEY_LEN + 1 bytes, NUL-terminated). */
void hs_make_key(const uint8_t nonce[16], char key[HS_KEY_LEN + 1]);
/* The Sec-WebSocket-Accept value for key (HS_ACCEPT_LEN + 1 bytes). */
void hs_accept_for(const char *key, char accept[HS_ACCEPT_LEN + 1]);
/* Write the GET request, with User-Agent: tunnel-client/VERSION (TARGET)
 * and extra header lines (each ending in CRLF; "" for none); returns its
 * length, or -1 if out is too small. */
int hs_request(char *out, size_t outlen, const char *host, const char *path,
	       const char *key, const char *extra);
/* The same with another Sec-WebSocket-Version: a probe that a WebSocket
 * server refuses before any handler runs (--check). */
int hs_request_version(char *out, size_t outlen, const char *host, const char *path,
		       const char *key, const char *extra, int version);
/* Parse the response in p[0..len). On HS_DONE, *consumed is the header
 * length (bytes after it are WebSocket frames). *status gets the HTTP
 * status when one was read. At most max bytes of header are accepted. */
enum hs_result hs_parse_response(const uint8_t *p, size_t len, size_t max,
				 const char *key, size_t *consumed, int *status);
/* Parse an upgrade request in p[0..len) (at most max header bytes). On
 * HS_DONE *consumed is the header length. HS_ERR_NOT_HTTP: not a GET
 * HTTP/1.1 request (400); HS_ERR_TOO_BIG: header block, target or
 * Authorization too long (431); HS_ERR_UPGRADE, HS_ERR_KEY: not a
 * WebSocket upgrade (400); HS_ERR_VERSION: answer 426. */
enum hs_result hs_parse_request(const uint8_t *p, size_t len, size_t max, struct hs_request *req,
				size_t *consumed);
/* The 101 answer for a request's key; its length, or -1 if out is too
 * small. */
int hs_response_101(char *out, size_t outlen, const char *key);
/* A refusal ("HTTP/1.1 401 Unauthorized" ...) with the reason as a plain
 * text body and Connection: close; 426 also names version 13. Its length,
 * or -1. */
int hs_response_refuse(char *out, size_t outlen, int status, const char *reason);
const char *hs_strerror(enum hs_result r);

#endif
