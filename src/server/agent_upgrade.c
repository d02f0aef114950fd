/* agent_upgrade: an agent's upgrade request, once whole: the path names
 * the agent id, the token must match, then 101 and the registry (the
 * newest connection of an id wins), or an HTTP refusal. */
#include "agent_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "config.h"
#include "registry.h"

#define TUNNEL_PREFIX "/ws/tunnel/"

/* Queue an HTTP refusal; the connection ends once it is written. */
static void refuse(struct agent *a, int status, const char *reason, const char *why)
{
	char resp[256];
	int n = hs_response_refuse(resp, sizeof(resp), status, reason);

	log_warn("agent refused id=%s addr=%s status=%d reason=\"%s\"", a->id[0] != '\0' ? a->id : "-",
		 a->addr, status, why);
	a->srv->n.agents_refused++;
	buf_consume(&a->ws.in, buf_len(&a->ws.in));
	if (n < 0 || buf_append(&a->ws.out, resp, (size_t)n) != 0) {
		agent_end(a, LOG_DEBUG, why);
		return;
	}
	a->state = AG_REFUSING;
}

/* The request is whole: check it, answer 101, register. */
static void admit(struct agent *a, const struct hs_request *req, size_t used, uint64_t now)
{
	struct server *s = a->srv;
	const char *id = req->path + sizeof(TUNNEL_PREFIX) - 1;
	char resp[256];
	struct agent *old;
	int failed;
	int n;

	if (strncmp(req->path, TUNNEL_PREFIX, sizeof(TUNNEL_PREFIX) - 1) != 0 ||
	    !server_config_agent_id_ok(id, strlen(id))) {
		refuse(a, 404, "Not Found", "not a tunnel path");
		return;
	}
	memcpy(a->id, id, strlen(id) + 1);
	memcpy(a->user_agent, req->user_agent, sizeof(a->user_agent));
	if (!auth_check(s->auth, a->id, req->authorization)) {
		refuse(a, 401, "Unauthorized", req->authorization[0] != '\0' ? "wrong token" : "no token");
		return;
	}
	n = hs_response_101(resp, sizeof(resp), req->key);
	if (n < 0 || buf_append(&a->ws.out, resp, (size_t)n) != 0) {
		agent_end(a, LOG_WARN, "cannot answer the upgrade");
		return;
	}
	buf_consume(&a->ws.in, used);
	old = registry_put(s->reg, a, &failed);
	if (failed) {
		agent_end(a, LOG_ERROR, "out of memory registering");
		return;
	}
	a->registered = 1;
	a->state = AG_OPEN;
	a->deadline_ms = 0;
	a->last_rx_ms = now;
	a->connected_at = (int64_t)time(NULL);
	s->n.agents_accepted++;
	char ua[HS_USER_AGENT_MAX];
	log_info("agent connected id=%s addr=%s user_agent=\"%s\"", a->id, a->addr,
		 log_safe(ua, sizeof(ua), a->user_agent));
	if (old != NULL) {
		/* The newest wins; the old one's end must not unregister it. */
		old->registered = 0;
		s->n.agents_replaced++;
		agent_shutdown(old, 1001, "replaced by a new connection", now);
	}
}

void agent_read_request(struct agent *a, uint64_t now)
{
	size_t len;
	size_t used = 0;
	const uint8_t *p = buf_data(&a->ws.in, &len);
	struct hs_request *req;
	enum hs_result r;

	if (len == 0) {
		return;
	}
	req = malloc(sizeof(*req));
	if (req == NULL) {
		agent_end(a, LOG_ERROR, "out of memory reading the upgrade");
		return;
	}
	r = hs_parse_request(p, len, TS_REQUEST_MAX, req, &used);
	switch (r) {
	case HS_NEED_MORE:
		break;
	case HS_DONE:
		admit(a, req, used, now);
		break;
	case HS_ERR_TOO_BIG:
		refuse(a, 431, "Request Header Fields Too Large", "request header too large");
		break;
	case HS_ERR_VERSION:
		refuse(a, 426, "Upgrade Required", hs_strerror(r));
		break;
	case HS_ERR_NOT_HTTP:
		/* A TLS handshake record: a wss:// agent on a plain listener. */
		refuse(a, 400, "Bad Request",
		       p[0] == 22 ? "a TLS handshake on a plain ws:// listener (the agent dials wss://)"
				  : "not an HTTP request");
		break;
	default:
		refuse(a, 400, "Bad Request", hs_strerror(r));
		break;
	}
	/* The token was in it: wipe before the memory is reused. */
	memset(req, 0, sizeof(*req));
	free(req);
}
