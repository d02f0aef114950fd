/* Every peer-controlled size and every queue mark, in one place. */
#ifndef BOUNDS_H
#define BOUNDS_H

/* Largest DATA payload the agent sends: the user side's WebSocket client
 * ends its whole session on a message over 1 MiB; it reads 64 KiB chunks. */
#define TC_DATA_MAX 65536
/* One local read: the payload of one DATA message the agent sends. The
 * largest whose WebSocket frame (8-byte tunnel header included) keeps the
 * 16-bit length form, so the frame header can be written in front of bytes
 * read straight into the output buffer (65535 - 8). */
#define TC_DATA_READ 65527
/* Largest upgrade response header block accepted from the runner. */
#define TC_HS_RESPONSE_MAX 8192
/* Framed bytes waiting for the runner socket (wslay writes into it). */
#define TC_OUT_CAP (768 * 1024)
/* Local sockets are read only while framed + TLS bytes stay below this. */
#define TC_OUT_HWM (512 * 1024)
/* One read from the runner socket. */
#define TC_IN_CAP (512 * 1024)
/* Consecutive runner DATA for one TCP connection staged for one write. */
#define TC_STAGE_CAP (512 * 1024)
/* TLS records read from (written to) the socket in one call. */
#define TC_TLS_STAGE (128 * 1024)
/* The buffers a burst grew (WebSocket, the agent's message staging, TLS
 * staging) are given back once no bulk has moved for this long (agent and
 * tunnel-server). */
#define TC_IDLE_RELEASE_MS 5000
/* Runner->local bytes queued for one connection before the tunnel stops
 * reading the WebSocket (head-of-line; bounded by the stall timeout). */
#define TC_CONN_HWM (256 * 1024)
/* Tunnel replies (CONNECTED, CLOSE, ERROR, PONG) queued in wslay before the
 * tunnel stops reading the WebSocket. */
#define TC_CTRL_MAX 4096
/* ERROR text sent to the runner, at most. */
#define TC_ERROR_TEXT_MAX 120
/* --allow-ports entries at most. */
#define TC_ALLOW_MAX 64
/* --header lines, all together, bytes at most. */
#define TC_HEADERS_MAX 2048
/* A token (agent --token, server tokens): bytes at most. */
#define TC_TOKEN_MAX 256
/* Wait for the close handshake before a redial or exit. */
#define TC_CLOSE_WAIT_MS 1000
/* A busy loop (every poll returns work) looks for a pending signal this
 * often: the longest a SIGTERM waits under load. */
#define TC_SIGNAL_CHECK_MS 50
/* Remembered ids we closed, so stray DATA for them gets at most one CLOSE. */
#define TC_CLOSED_IDS 64
/* Descriptors kept for the agent itself (stdio, the runner socket, a CA
 * file, /dev/urandom) when --max-connections follows the open-file limit. */
#define TC_FD_RESERVE 32
/* The default --max-connections at most, however high the limit. */
#define TC_CONNS_AUTO_MAX 65536
/* A session that stayed up this long resets the backoff. */
#define TC_STABLE_MS 30000
/* The status port (--status-port): exchanges at once (more get ERROR),
 * request head and answer bytes, time to send the request and to take the
 * answer, time to drain the client after it, live connections listed. */
#define TC_STATUS_CONNS 4
#define TC_STATUS_REQUEST_MAX 4096
#define TC_STATUS_RESPONSE_MAX (1u << 20)
#define TC_STATUS_TIMEOUT_MS 5000
#define TC_STATUS_LINGER_MS 1000
#define TC_STATUS_LIST_MAX 256
/* --log-ring: the default, and at most. */
#define TC_LOG_RING_DEFAULT 16384
#define TC_LOG_RING_MAX (1u << 20)

/* ---- tunnel-server ---- */

/* An agent id: the last path segment of /ws/tunnel/ID. */
#define TS_AGENT_ID_MAX 64
/* Largest upgrade request header block accepted from an agent. */
#define TS_REQUEST_MAX 8192
/* A new agent connection must finish TLS and its upgrade within this. */
#define TS_HANDSHAKE_MS 10000
/* Exposes at most (command line, environment and config file together). */
#define TS_EXPOSES_MAX 256
/* Tokens in a token file at most. */
#define TS_TOKENS_MAX 4096
/* UDP flows (public source addresses) of one expose at once. */
#define TS_UDP_FLOWS 1024
/* Agent->public bytes queued for one public connection before the server
 * stops reading that agent's WebSocket. */
#define TS_PUBLIC_HWM (256 * 1024)
/* A public connection the client closed: in-flight DATA from the agent is
 * still written for this long, then the socket closes. */
#define TS_LINGER_MS 1000
/* Timers of agents are checked at least this often. */
#define TS_TIMER_TICK_MS 250
/* Connections accepted per wake-up of a listener, and how long a listener
 * rests when descriptors run out. */
#define TS_ACCEPT_BATCH 64
#define TS_ACCEPT_PAUSE_MS 250
/* Admin HTTP: request header bytes, connections, the time a client gets to
 * send its request (and to take the answer), the largest answer, and how
 * long input is drained after it so the close is not a reset. */
#define TS_ADMIN_REQUEST_MAX 4096
#define TS_ADMIN_CONNS 32
#define TS_ADMIN_TIMEOUT_MS 5000
#define TS_ADMIN_RESPONSE_MAX (16u << 20)
#define TS_ADMIN_LINGER_MS 1000

#endif
