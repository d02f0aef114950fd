/* tls_server: the server's side of wss://: its certificate chain and
 * private key (RSA or EC, PEM), and a BearSSL server context per agent
 * connection. The engine profile and pumping are shared with the agent
 * (tls_io.c); agents are not asked for certificates. */
#ifndef TLS_SERVER_H
#define TLS_SERVER_H

#include <stddef.h>

struct tls_io;
struct tls_server_config;

/* Load and check cert_file (chain, end-entity first) and key_file (its
 * key). On a problem err gets one line naming the file; -1. */
int tls_server_config_load(struct tls_server_config **out, const char *cert_file,
			   const char *key_file, char *err, size_t errlen);
void tls_server_config_free(struct tls_server_config *c);
/* A server handshake on a connected non-blocking socket, for the
 * transport (which frees it). NULL when out of memory. c must outlive it. */
struct tls_io *tls_server_new(const struct tls_server_config *c, int fd);

#endif
