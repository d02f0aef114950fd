#include "report.h"

#include <stddef.h>
#include <string.h>

#include "agent.h"
#include "expose.h"
#include "fmt.h"
#include "metrics.h"
#include "net.h"
#include "registry.h"
#include "server.h"
#include "text.h"

/* An open agent that is the one registered for its id: what /metrics
 * counts as up (a replaced session still closing is not). */
static int agent_up(const struct server *s, const struct agent *a)
{
	return agent_is_open(a) && registry_find(s->reg, agent_id(a)) == a;
}

static size_t agents_up(const struct server *s)
{
	size_t n = 0;

	for (struct list *l = s->agents.next; l != &s->agents; l = l->next) {
		n += agent_up(s, agent_of_link(l)) ? 1 : 0;
	}
	return n;
}

/* Every field of struct server_counters, for /status and /metrics. */
static const struct counter {
	const char *name;   /* its key in /status */
	size_t off;
} counters[] = {
	{"agents_accepted", offsetof(struct server_counters, agents_accepted)},
	{"agents_refused", offsetof(struct server_counters, agents_refused)},
	{"agents_replaced", offsetof(struct server_counters, agents_replaced)},
	{"public_accepted", offsetof(struct server_counters, public_accepted)},
	{"public_refused", offsetof(struct server_counters, public_refused)},
	{"bytes_to_agents", offsetof(struct server_counters, bytes_to_agents)},
	{"bytes_from_agents", offsetof(struct server_counters, bytes_from_agents)},
};

_Static_assert(sizeof(counters) / sizeof(counters[0]) * sizeof(uint64_t) ==
		       sizeof(struct server_counters),
	       "a new server counter: add it to the table above (and to /metrics)");

static uint64_t counter(const struct server *s, size_t off)
{
	uint64_t v;

	memcpy(&v, (const char *)&s->n + off, sizeof(v));
	return v;
}

static uint64_t uptime_s(const struct server *s)
{
	return (net_now_ms() - s->started_ms) / 1000;
}

void report_status(struct server *s, struct text *t)
{
	const char *sep = "";

	text_str(t, "{\"version\":");
	text_json(t, TC_VERSION, 0);
	text_fmt(t, ",\"uptime_s\":%llu,\"listen\":", (unsigned long long)uptime_s(s));
	text_json(t, s->listen_shown, 0);
	text_fmt(t, ",\"tls\":%s,\"agents\":[", s->tls != NULL ? "true" : "false");
	for (struct list *l = s->agents.next; l != &s->agents; l = l->next) {
		struct agent_info ai;
		char since[32];

		agent_info(agent_of_link(l), &ai);
		text_fmt(t, "%s{\"id\":", sep);
		text_json(t, ai.id, 1);
		text_str(t, ",\"addr\":");
		text_json(t, ai.addr, 0);
		text_str(t, ",\"user_agent\":");
		text_json(t, ai.user_agent, 0);
		text_str(t, ",\"state\":");
		text_json(t, ai.state, 0);
		text_str(t, ",\"connected_since\":");
		if (ai.connected_at > 0) {
			fmt_utc(since, sizeof(since), ai.connected_at * 1000, 0);
			text_json(t, since, 0);
		} else {
			text_str(t, "null");
		}
		text_fmt(t, ",\"connections\":%zu,\"bytes_in\":%llu,\"bytes_out\":%llu}", ai.connections,
			 (unsigned long long)ai.bytes_in, (unsigned long long)ai.bytes_out);
		sep = ",";
	}
	text_str(t, "],\"exposes\":[");
	sep = "";
	for (struct list *l = s->exposes.next; l != &s->exposes; l = l->next) {
		struct expose_info ei;

		expose_info(expose_of_link(l), &ei);
		text_fmt(t, "%s{\"name\":", sep);
		text_json(t, ei.name, 0);
		text_str(t, ",\"proto\":");
		text_json(t, ei.proto, 0);
		text_str(t, ",\"bind\":");
		text_json(t, ei.bind, 0);
		text_str(t, ",\"agent\":");
		text_json(t, ei.agent, 0);
		text_fmt(t, ",\"port\":%u,\"state\":", (unsigned)ei.port);
		text_json(t, ei.state, 0);
		text_fmt(t, ",\"connections\":%zu,\"accepted\":%llu}", ei.connections,
			 (unsigned long long)ei.accepted);
		sep = ",";
	}
	text_str(t, "],\"counters\":{");
	sep = "";
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		text_fmt(t, "%s\"%s\":%llu", sep, counters[i].name,
			 (unsigned long long)counter(s, counters[i].off));
		sep = ",";
	}
	text_str(t, "}}\n");
}

/* ---- /metrics ---- */

void report_metrics(struct server *s, struct text *t)
{
	static const char *const pub = "tunnel_server_public_connections";

	metrics_head(t, "tunnel_server_agents", "gauge", "Agents with an open tunnel.");
	metrics_sample(t, "tunnel_server_agents", agents_up(s));
	metrics_head(t, "tunnel_server_agent_connections", "gauge",
	       "Agent connections, those still in TLS or the upgrade included.");
	metrics_sample(t, "tunnel_server_agent_connections", s->n_agents);
	metrics_head(t, "tunnel_server_agents_accepted_total", "counter", "Agent upgrades completed.");
	metrics_sample(t, "tunnel_server_agents_accepted_total", s->n.agents_accepted);
	metrics_head(t, "tunnel_server_agents_refused_total", "counter",
	       "Agent connections refused (bad request, token, limits).");
	metrics_sample(t, "tunnel_server_agents_refused_total", s->n.agents_refused);
	metrics_head(t, "tunnel_server_agents_replaced_total", "counter",
	       "Agent sessions ended by a newer one for their id.");
	metrics_sample(t, "tunnel_server_agents_replaced_total", s->n.agents_replaced);
	metrics_head(t, pub, "gauge", "Open public TCP connections and UDP flows of an expose.");
	for (struct list *l = s->exposes.next; l != &s->exposes; l = l->next) {
		struct expose_info ei;
		expose_info(expose_of_link(l), &ei);
		metrics_sample1(t, pub, "expose", ei.name, ei.connections);
	}
	metrics_head(t, "tunnel_server_public_accepted_total", "counter",
	       "Public TCP connections and UDP flows accepted.");
	metrics_sample(t, "tunnel_server_public_accepted_total", s->n.public_accepted);
	metrics_head(t, "tunnel_server_public_refused_total", "counter",
	       "Public connections refused (no agent, agent error, limits).");
	metrics_sample(t, "tunnel_server_public_refused_total", s->n.public_refused);
	metrics_head(t, "tunnel_server_bytes_total", "counter", "Payload bytes carried through tunnels.");
	metrics_sample1(t, "tunnel_server_bytes_total", "direction", "to_agents", s->n.bytes_to_agents);
	metrics_sample1(t, "tunnel_server_bytes_total", "direction", "from_agents", s->n.bytes_from_agents);
	metrics_head(t, "tunnel_server_agent_up", "gauge", "1 for each agent id with an open tunnel.");
	for (struct list *l = s->agents.next; l != &s->agents; l = l->next) {
		struct agent *a = agent_of_link(l);
		if (agent_up(s, a)) {
			metrics_sample1(t, "tunnel_server_agent_up", "agent", agent_id(a), 1);
		}
	}
	metrics_build_info(t, "tunnel_server");
	metrics_process(t, s->start_unix_ms);
}

/* ---- the page ---- */

static void td(struct text *t, const char *s)
{
	text_str(t, "<td>");
	text_esc(t, s, HTTP_ESC_HTML);
	text_str(t, "</td>");
}

static void td_num(struct text *t, uint64_t v)
{
	text_fmt(t, "<td class=n>%llu</td>", (unsigned long long)v);
}

void report_page(struct server *s, struct text *t)
{
	uint64_t up = uptime_s(s);
	size_t n = 0;

	text_str(t, "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
		    "<meta http-equiv=refresh content=5>"
		    "<meta name=viewport content=\"width=device-width,initial-scale=1\">"
		    "<title>tunnel-server</title><style>"
		    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}"
		    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
		    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}"
		    "th{background:#f2f2f2}td.n{text-align:right}"
		    "</style></head><body>\n<h1>tunnel-server ");
	text_esc(t, TC_VERSION, HTTP_ESC_HTML);
	text_str(t, "</h1>\n<p>Agents dial <b>");
	text_esc(t, s->listen_shown, HTTP_ESC_HTML);
	text_fmt(t, "</b> (%s). Up %llud %02uh %02um %02us; %zu agents open.</p>\n",
		 s->tls != NULL ? "wss" : "ws", (unsigned long long)(up / 86400),
		 (unsigned)(up / 3600 % 24), (unsigned)(up / 60 % 60), (unsigned)(up % 60),
		 agents_up(s));
	text_str(t, "<h2>Agents</h2>\n<table id=agents><tr><th>ID</th><th>Address</th>"
		    "<th>User agent</th><th>State</th><th>Connected since</th>"
		    "<th>Connections</th><th>Bytes in</th><th>Bytes out</th></tr>\n");
	for (struct list *l = s->agents.next; l != &s->agents; l = l->next, n++) {
		struct agent_info ai;
		char since[32];

		agent_info(agent_of_link(l), &ai);
		if (ai.connected_at > 0) {
			fmt_utc(since, sizeof(since), ai.connected_at * 1000, 0);
		} else {
			fmt_snprintf(since, sizeof(since), "-");
		}
		text_str(t, "<tr>");
		td(t, ai.id[0] != '\0' ? ai.id : "-");
		td(t, ai.addr);
		td(t, ai.user_agent);
		td(t, ai.state);
		td(t, since);
		td_num(t, ai.connections);
		td_num(t, ai.bytes_in);
		td_num(t, ai.bytes_out);
		text_str(t, "</tr>\n");
	}
	if (n == 0) {
		text_str(t, "<tr><td colspan=8>No agent connected.</td></tr>\n");
	}
	text_str(t, "</table>\n<h2>Exposes</h2>\n<table id=exposes><tr><th>Name</th><th>Proto</th>"
		    "<th>Bind</th><th>Agent</th><th>Port</th><th>State</th><th>Connections</th>"
		    "<th>Accepted</th></tr>\n");
	n = 0;
	for (struct list *l = s->exposes.next; l != &s->exposes; l = l->next, n++) {
		struct expose_info ei;

		expose_info(expose_of_link(l), &ei);
		text_str(t, "<tr>");
		td(t, ei.name);
		td(t, ei.proto);
		td(t, ei.bind);
		td(t, ei.agent);
		td_num(t, ei.port);
		td(t, ei.state);
		td_num(t, ei.connections);
		td_num(t, ei.accepted);
		text_str(t, "</tr>\n");
	}
	if (n == 0) {
		text_str(t, "<tr><td colspan=8>No expose configured.</td></tr>\n");
	}
	text_str(t, "</table>\n<h2>Counters</h2>\n<table id=counters>\n");
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		text_fmt(t, "<tr><th>%s</th>", counters[i].name);
		td_num(t, counter(s, counters[i].off));
		text_str(t, "</tr>\n");
	}
	text_str(t, "</table>\n<p><a href=\"/status\">status (JSON)</a> &middot; "
		    "<a href=\"/metrics\">metrics</a></p>\n</body></html>\n");
}

