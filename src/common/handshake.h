/* handshake: the WebSocket HTTP/1.1 upgrade (RFC 6455 section 4) as pure
 * functions on bytes; the session does the I/O. */
#ifndef HANDSHAKE_H
#define HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

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
};

/* base64 of 16 nonce bytes into key (HS_KEY_LEN + 1 bytes, NUL-terminated). */
void hs_make_key(const uint8_t nonce[16], char key[HS_KEY_LEN + 1]);
/* The Sec-WebSocket-Accept value for key (HS_ACCEPT_LEN + 1 bytes). */
void hs_accept_for(const char *key, char accept[HS_ACCEPT_LEN + 1]);
/* Write the GET request; returns its length, or -1 if out is too small. */
int hs_request(char *out, size_t outlen, const char *host, const char *path,
	       const char *key);
/* Parse the response in p[0..len). On HS_DONE, *consumed is the header
 * length (bytes after it are WebSocket frames). *status gets the HTTP
 * status when one was read. At most max bytes of header are accepted. */
enum hs_result hs_parse_response(const uint8_t *p, size_t len, size_t max,
				 const char *key, size_t *consumed, int *status);
const char *hs_strerror(enum hs_result r);

#endif
