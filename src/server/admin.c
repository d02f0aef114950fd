/* admin: the --admin HTTP endpoint. A listener and at most TS_ADMIN_CONNS
 * connections, each with its pollset slot. A connection reads one request
 * head (http.c), answers it from a snapshot of the server taken then, and
 * closes once the answer is written:
 *
 *   READ -> WRITE -> LINGER -> DONE, or READ -> DONE (EOF, error, timeout)
 *
 * Nothing here changes the server: it reads agent_info(), expose_info()
 * and the counters. No token is ever in what those give. */
#include "admin.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "bounds.h"
#include "buf.h"
#include "expose.h"
#include "fmt.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "net.h"
#include "num.h"
#include "registry.h"
#include "server.h"

/* Clock ticks per second in /proc: USER_HZ, 100 on every Linux target
 * (sysconf(_SC_CLK_TCK) says so too, at a cost of 1 KiB). */
#define USER_HZ 100

enum conn_state {
	AC_READ,   /* reading the request head (deadline: TS_ADMIN_TIMEOUT_MS) */
	AC_WRITE,  /* writing the answer (deadline: TS_ADMIN_TIMEOUT_MS) */
	AC_LINGER, /* answer written, our side shut; dropping input until EOF */
	AC_DONE,   /* finished; freed by admin_reap */
};

/* An answer: p[start..len) is what is still to be written. The body is
 * appended behind TEXT_HEAD_ROOM free bytes, its status line and headers
 * then go in front of it (text_prepend), and the writer consumes from the
 * front: one allocation, no copy. At most TS_ADMIN_RESPONSE_MAX bytes; once
 * it could not grow, failed says why (TEXT_NO_MEMORY, TEXT_TOO_BIG) and
 * every later addition is a no-op. */
enum { TEXT_OK, TEXT_NO_MEMORY, TEXT_TOO_BIG };

#define TEXT_HEAD_ROOM 384

struct text {
	char *p;
	size_t start;
	size_t len;
	size_t cap;
	int failed;
};

struct admin_conn {
	struct pollable pl; /* first: OWN_ADMIN_CONN and the slot */
	int fd;
	enum conn_state state;
	uint64_t deadline;
	struct buf in;      /* the request head, TS_ADMIN_REQUEST_MAX */
	struct text out;    /* the answer, as it is built and written */
	char addr[64];
	struct list link;   /* on the admin's conns */
};

struct admin {
	struct listener l;  /* first: OWN_ADMIN and the listener's slot */
	char where[72];     /* the --admin address, as given */
	struct list conns;
	size_t n_conns;     /* reading a request or writing an answer (the limit) */
	uint64_t start_ms;  /* process start, Unix milliseconds */
};

/* ---- text ---- */

/* Room for n more bytes (and a NUL) at t->p + t->len, or NULL. */
static char *text_room(struct text *t, size_t n)
{
	if (t->failed) {
		return NULL;
	}
	if (n >= TS_ADMIN_RESPONSE_MAX - t->len) {
		t->failed = TEXT_TOO_BIG;
		return NULL;
	}
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap == 0 ? 4096 : t->cap;
		char *p;
		while (cap < t->len + n + 1) {
			cap *= 2;
		}
		p = realloc(t->p, cap);
		if (p == NULL) {
			t->failed = TEXT_NO_MEMORY;
			return NULL;
		}
		t->p = p;
		t->cap = cap;
	}
	return t->p + t->len;
}

static void text_add(struct text *t, const char *s, size_t n)
{
	char *p = text_room(t, n);

	if (p != NULL) {
		memcpy(p, s, n);
		t->len += n;
	}
}

static void text_str(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

static void text_fmt(struct text *t, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void text_fmt(struct text *t, const char *f, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, f);
	n = fmt_vsnprintf(NULL, 0, f, ap);
	va_end(ap);
	p = text_room(t, (size_t)n);
	if (p != NULL) {
		va_start(ap, f);
		fmt_vsnprintf(p, (size_t)n + 1, f, ap);
		va_end(ap);
		t->len += (size_t)n;
	}
}

static void text_esc(struct text *t, const char *s, enum http_escape mode)
{
	size_t n = strlen(s);
	size_t need = http_escape(NULL, 0, s, n, mode);
	char *p = text_room(t, need);

	if (p != NULL) {
		http_escape(p, need + 1, s, n, mode);
		t->len += need;
	}
}

/* A JSON string, or null for NULL or "" when empty_null. */
static void json_str(struct text *t, const char *s, int empty_null)
{
	if (s == NULL || (empty_null && s[0] == '\0')) {
		text_str(t, "null");
		return;
	}
	text_add(t, "\"", 1);
	text_esc(t, s, HTTP_ESC_JSON);
	text_add(t, "\"", 1);
}

static void text_free(struct text *t)
{
	free(t->p);
	memset(t, 0, sizeof(*t));
}

/* Start an answer: empty, with the head's room in front. */
static void text_begin(struct text *t)
{
	text_free(t);
	if (text_room(t, TEXT_HEAD_ROOM) != NULL) {
		t->start = TEXT_HEAD_ROOM;
		t->len = TEXT_HEAD_ROOM;
	}
}

static size_t text_len(const struct text *t)
{
	return t->len - t->start;
}

/* Put s[0..n) in front (room left by text_begin). 0, or -1. */
static int text_prepend(struct text *t, const char *s, size_t n)
{
	if (t->failed || t->p == NULL || n > t->start) {
		return -1;
	}
	t->start -= n;
	memcpy(t->p + t->start, s, n);
	return 0;
}

/* Keep only the first n bytes (HEAD: the head without the body). */
static void text_keep(struct text *t, size_t n)
{
	t->len = t->start + n;
}

static const char *text_data(const struct text *t, size_t *n)
{
	*n = text_len(t);
	return t->p + t->start;
}

static void text_consume(struct text *t, size_t n)
{
	t->start += n;
}

/* ---- what is shown ---- */

/* Days since 1970-01-01 to a civil date (proleptic Gregorian). */
static void civil(int64_t days, int *y, unsigned *m, unsigned *d)
{
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

/* Unix seconds as RFC 3339 UTC, "2026-11-22T04:20:33Z". */
static void rfc3339(int64_t secs, char out[32])
{
	int64_t days = (secs >= 0 ? secs : secs - 86399) / 86400;
	unsigned sod = (unsigned)(secs - days * 86400);
	int y;
	unsigned m;
	unsigned d;

	civil(days, &y, &m, &d);
	fmt_snprintf(out, 32, "%04d-%02u-%02uT%02u:%02u:%02uZ", y, m, d, sod / 3600, sod / 60 % 60,
		     sod % 60);
}

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

static void build_status(struct server *s, struct text *t)
{
	const char *sep = "";

	text_str(t, "{\"version\":");
	json_str(t, TC_VERSION, 0);
	text_fmt(t, ",\"uptime_s\":%llu,\"listen\":", (unsigned long long)uptime_s(s));
	json_str(t, s->cfg.listen, 0);
	text_fmt(t, ",\"tls\":%s,\"agents\":[", s->tls != NULL ? "true" : "false");
	for (struct list *l = s->agents.next; l != &s->agents; l = l->next) {
		struct agent_info ai;
		char since[32];

		agent_info(agent_of_link(l), &ai);
		text_fmt(t, "%s{\"id\":", sep);
		json_str(t, ai.id, 1);
		text_str(t, ",\"addr\":");
		json_str(t, ai.addr, 0);
		text_str(t, ",\"user_agent\":");
		json_str(t, ai.user_agent, 0);
		text_str(t, ",\"state\":");
		json_str(t, ai.state, 0);
		text_str(t, ",\"connected_since\":");
		if (ai.connected_at > 0) {
			rfc3339(ai.connected_at, since);
			json_str(t, since, 0);
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
		json_str(t, ei.name, 0);
		text_str(t, ",\"proto\":");
		json_str(t, ei.proto, 0);
		text_str(t, ",\"bind\":");
		json_str(t, ei.bind, 0);
		text_str(t, ",\"agent\":");
		json_str(t, ei.agent, 0);
		text_fmt(t, ",\"port\":%u,\"state\":", (unsigned)ei.port);
		json_str(t, ei.state, 0);
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

/* Read a small /proc file into buf (NUL-terminated); its length or -1. */
static ssize_t read_proc(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	if (fd < 0) {
		return -1;
	}
	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			break;
		}
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return (ssize_t)n;
}

/* From /proc/self/stat: fields 14-15 (utime, stime), 22 (starttime), 23
 * (vsize), 24 (rss). */
struct proc_stat {
	uint64_t cpu_ticks;
	uint64_t start_ticks;
	uint64_t vsize;
	uint64_t rss_pages;
};

static int proc_stat(struct proc_stat *ps)
{
	char buf[1024];
	char *p;
	uint64_t f[25];
	int field = 3; /* the one after ") " is the third */

	if (read_proc("/proc/self/stat", buf, sizeof(buf)) < 0) {
		return -1;
	}
	p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
	if (p == NULL) {
		return -1;
	}
	p++;
	memset(f, 0, sizeof(f));
	while (*p != '\0' && field < 25) {
		char *tok;
		while (*p == ' ') {
			p++;
		}
		tok = p;
		while (*p != ' ' && *p != '\0' && *p != '\n') {
			p++;
		}
		if (*p != '\0') {
			*p++ = '\0';
		}
		if (field >= 14 && num_parse_u64(tok, 0, UINT64_MAX, &f[field]) != 0) {
			return -1;
		}
		field++;
	}
	if (field < 25) {
		return -1;
	}
	ps->cpu_ticks = f[14] + f[15];
	ps->start_ticks = f[22];
	ps->vsize = f[23];
	ps->rss_pages = f[24];
	return 0;
}

static uint64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* When the process started, Unix milliseconds: its start in clock ticks
 * after boot, against the time since boot (/proc/uptime). 0 if unknown. */
static uint64_t process_start_ms(void)
{
	struct proc_stat ps;
	char buf[128];
	char *sp;
	uint64_t up_ms;
	uint64_t since_start;

	if (proc_stat(&ps) != 0 || read_proc("/proc/uptime", buf, sizeof(buf)) < 0) {
		return 0;
	}
	sp = strchr(buf, ' ');
	if (sp == NULL) {
		return 0;
	}
	*sp = '\0';
	if (num_parse_seconds(buf, UINT64_MAX / 2, &up_ms) != 0 ||
	    up_ms < ps.start_ticks * 1000 / USER_HZ) {
		return 0;
	}
	since_start = up_ms - ps.start_ticks * 1000 / USER_HZ;
	return realtime_ms() - since_start;
}

/* Open descriptors: the entries of /proc/self/fd but the one reading it. */
static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = 0;
	struct dirent *e;

	if (d == NULL) {
		return -1;
	}
	for (e = readdir(d); e != NULL; e = readdir(d)) {
		n += e->d_name[0] != '.' ? 1 : 0;
	}
	closedir(d);
	return n > 0 ? n - 1 : 0;
}

static void metric(struct text *t, const char *name, const char *type, const char *help)
{
	text_fmt(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} v */
static void sample1(struct text *t, const char *name, const char *label, const char *value,
		    uint64_t v)
{
	text_fmt(t, "%s{%s=\"", name, label);
	text_esc(t, value, HTTP_ESC_LABEL);
	text_fmt(t, "\"} %llu\n", (unsigned long long)v);
}

static void sample(struct text *t, const char *name, uint64_t v)
{
	text_fmt(t, "%s %llu\n", name, (unsigned long long)v);
}

/* A value in milliseconds as seconds with three decimals. */
static void sample_ms(struct text *t, const char *name, uint64_t ms)
{
	text_fmt(t, "%s %llu.%03u\n", name, (unsigned long long)(ms / 1000), (unsigned)(ms % 1000));
}

static void build_metrics(struct server *s, struct text *t)
{
	static const char *const pub = "tunnel_server_public_connections";
	struct proc_stat ps;
	struct rlimit rl;
	long fds = open_fds();

	metric(t, "tunnel_server_agents", "gauge", "Agents with an open tunnel.");
	sample(t, "tunnel_server_agents", agents_up(s));
	metric(t, "tunnel_server_agent_connections", "gauge",
	       "Agent connections, those still in TLS or the upgrade included.");
	sample(t, "tunnel_server_agent_connections", s->n_agents);
	metric(t, "tunnel_server_agents_accepted_total", "counter", "Agent upgrades completed.");
	sample(t, "tunnel_server_agents_accepted_total", s->n.agents_accepted);
	metric(t, "tunnel_server_agents_refused_total", "counter",
	       "Agent connections refused (bad request, token, limits).");
	sample(t, "tunnel_server_agents_refused_total", s->n.agents_refused);
	metric(t, "tunnel_server_agents_replaced_total", "counter",
	       "Agent sessions ended by a newer one for their id.");
	sample(t, "tunnel_server_agents_replaced_total", s->n.agents_replaced);
	metric(t, pub, "gauge", "Open public TCP connections and UDP flows of an expose.");
	for (struct list *l = s->exposes.next; l != &s->exposes; l = l->next) {
		struct expose_info ei;
		expose_info(expose_of_link(l), &ei);
		sample1(t, pub, "expose", ei.name, ei.connections);
	}
	metric(t, "tunnel_server_public_accepted_total", "counter",
	       "Public TCP connections and UDP flows accepted.");
	sample(t, "tunnel_server_public_accepted_total", s->n.public_accepted);
	metric(t, "tunnel_server_public_refused_total", "counter",
	       "Public connections refused (no agent, agent error, limits).");
	sample(t, "tunnel_server_public_refused_total", s->n.public_refused);
	metric(t, "tunnel_server_bytes_total", "counter", "Payload bytes carried through tunnels.");
	sample1(t, "tunnel_server_bytes_total", "direction", "to_agents", s->n.bytes_to_agents);
	sample1(t, "tunnel_server_bytes_total", "direction", "from_agents", s->n.bytes_from_agents);
	metric(t, "tunnel_server_agent_up", "gauge", "1 for each agent id with an open tunnel.");
	for (struct list *l = s->agents.next; l != &s->agents; l = l->next) {
		struct agent *a = agent_of_link(l);
		if (agent_up(s, a)) {
			sample1(t, "tunnel_server_agent_up", "agent", agent_id(a), 1);
		}
	}
	metric(t, "tunnel_server_build_info", "gauge", "The running build; always 1.");
	text_str(t, "tunnel_server_build_info{version=\"");
	text_esc(t, TC_VERSION, HTTP_ESC_LABEL);
	text_str(t, "\",target=\"");
	text_esc(t, TC_TARGET, HTTP_ESC_LABEL);
	text_str(t, "\"} 1\n");
	if (proc_stat(&ps) == 0) {
		metric(t, "process_cpu_seconds_total", "counter",
		       "Total user and system CPU time spent in seconds.");
		sample_ms(t, "process_cpu_seconds_total", ps.cpu_ticks * 1000 / USER_HZ);
		metric(t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
		sample(t, "process_resident_memory_bytes", ps.rss_pages * (uint64_t)getpagesize());
		metric(t, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
		sample(t, "process_virtual_memory_bytes", ps.vsize);
	}
	if (fds >= 0) {
		metric(t, "process_open_fds", "gauge", "Number of open file descriptors.");
		sample(t, "process_open_fds", (uint64_t)fds);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		metric(t, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
		sample(t, "process_max_fds", (uint64_t)rl.rlim_cur);
	}
	metric(t, "process_start_time_seconds", "gauge",
	       "Start time of the process since unix epoch in seconds.");
	sample_ms(t, "process_start_time_seconds", s->admin->start_ms);
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

static void build_page(struct server *s, struct text *t)
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
	text_esc(t, s->cfg.listen, HTTP_ESC_HTML);
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
			rfc3339(ai.connected_at, since);
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

/* ---- connections ---- */

/* Mark c finished (once); admin_reap closes and frees it. */
static void finish(struct server *s, struct admin_conn *c, const char *why)
{
	if (c->state == AC_DONE) {
		return;
	}
	if (why != NULL) {
		log_debug("admin connection closed addr=%s reason=\"%s\"", c->addr, why);
	}
	if (c->state != AC_LINGER) {
		s->admin->n_conns--;
	}
	c->state = AC_DONE;
	pollset_set(&s->ps, c->pl.slot, 0);
}

/* Read and drop what the client still sends, until its EOF. */
static void linger(struct server *s, struct admin_conn *c)
{
	char scratch[1024];

	for (int i = 0; i < 16; i++) {
		ssize_t r = read(c->fd, scratch, sizeof(scratch));
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		}
		if (r <= 0) {
			finish(s, c, NULL);
			return;
		}
	}
}

/* Write what is left of the answer; then shut our side and linger. */
static void flush(struct server *s, struct admin_conn *c, uint64_t now)
{
	for (;;) {
		size_t len;
		const char *p = text_data(&c->out, &len);
		ssize_t w;

		if (len == 0) {
			break;
		}
		w = write(c->fd, p, len);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		}
		if (w < 0) {
			char why[64];
			finish(s, c, net_reason(errno, why, sizeof(why)));
			return;
		}
		text_consume(&c->out, (size_t)w);
	}
	text_free(&c->out);
	shutdown(c->fd, SHUT_WR);
	c->state = AC_LINGER; /* on its way out: no longer counts */
	s->admin->n_conns--;
	c->deadline = now + TS_ADMIN_LINGER_MS;
	pollset_set(&s->ps, c->pl.slot, POLLIN);
	linger(s, c);
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	}
	return "Internal Server Error";
}

/* Copy n bytes of s into dst (cap bytes), cut to fit, NUL-terminated. */
static void copy_cut(char *dst, size_t cap, const char *s, size_t n)
{
	size_t k = n < cap - 1 ? n : cap - 1;

	memcpy(dst, s, k);
	dst[k] = '\0';
}

/* Build the answer to a parsed head (res) and start writing it. */
static void answer(struct server *s, struct admin_conn *c, enum http_result res,
		   const struct http_request *req, uint64_t now)
{
	struct text *t = &c->out;
	const char *type = "text/plain; charset=utf-8";
	const char *extra = "";
	int head_only = 0;
	int status = 200;
	char head[TEXT_HEAD_ROOM];
	size_t head_len;

	text_begin(t);
	if (res == HTTP_ERR_MALFORMED) {
		status = 400;
	} else if (res == HTTP_ERR_TOO_BIG) {
		status = 431;
	} else if (!http_method_is(req, "GET") && !http_method_is(req, "HEAD")) {
		status = 405;
		extra = "Allow: GET, HEAD\r\n";
	} else {
		size_t n = http_path_len(req);
		head_only = http_method_is(req, "HEAD");
		if (n == 8 && memcmp(req->target, "/healthz", 8) == 0) {
			text_str(t, "ok\n");
		} else if (n == 7 && memcmp(req->target, "/status", 7) == 0) {
			type = "application/json";
			build_status(s, t);
		} else if (n == 8 && memcmp(req->target, "/metrics", 8) == 0) {
			type = "text/plain; version=0.0.4; charset=utf-8";
			build_metrics(s, t);
		} else if (n == 1 && req->target[0] == '/') {
			type = "text/html; charset=utf-8";
			extra = "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n";
			build_page(s, t);
		} else {
			status = 404;
		}
	}
	if (t->failed) {
		log_warn("admin answer not built addr=%s reason=\"%s\"", c->addr,
			 t->failed == TEXT_TOO_BIG ? "larger than its bound" : "out of memory");
		status = 500;
		type = "text/plain; charset=utf-8";
		extra = "";
	}
	if (status != 200) {
		text_begin(t);
		text_fmt(t, "%s\n", reason_phrase(status));
	}
	if (log_enabled(LOG_DEBUG)) {
		char method[16] = "-";
		char target[128] = "-";
		if (res == HTTP_DONE) {
			copy_cut(method, sizeof(method), req->method, req->method_len);
			copy_cut(target, sizeof(target), req->target, req->target_len);
		}
		log_debug("admin request addr=%s method=%s target=%s status=%d bytes=%zu", c->addr,
			  method, target, status, text_len(t));
	}
	buf_free(&c->in); /* req points into it: not used from here on */
	head_len = (size_t)fmt_snprintf(head, sizeof(head),
					"HTTP/1.1 %d %s\r\n"
					"Content-Type: %s\r\n"
					"Content-Length: %zu\r\n"
					"Cache-Control: no-store\r\n"
					"X-Content-Type-Options: nosniff\r\n"
					"%s"
					"Connection: close\r\n"
					"\r\n",
					status, reason_phrase(status), type, text_len(t), extra);
	if (head_len >= sizeof(head) || text_prepend(t, head, head_len) != 0) {
		finish(s, c, "out of memory");
		return;
	}
	if (head_only) {
		text_keep(t, head_len);
	}
	c->state = AC_WRITE;
	c->deadline = now + TS_ADMIN_TIMEOUT_MS;
	pollset_set(&s->ps, c->pl.slot, POLLOUT);
	flush(s, c, now);
}

/* Read the request head; answer it once whole (or once it cannot be). */
static void on_readable(struct server *s, struct admin_conn *c, uint64_t now)
{
	for (;;) {
		struct http_request req;
		enum http_result res;
		const uint8_t *data;
		size_t len;
		size_t avail;
		uint8_t *p = buf_space(&c->in, &avail);
		ssize_t r;

		if (p == NULL) {
			finish(s, c, "out of memory");
			return;
		}
		r = read(c->fd, p, avail);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		}
		if (r <= 0) {
			char why[64];
			finish(s, c, r == 0 ? "closed before a whole request" :
					   net_reason(errno, why, sizeof(why)));
			return;
		}
		buf_commit(&c->in, (size_t)r);
		data = buf_data(&c->in, &len);
		res = http_parse_request(data, len, TS_ADMIN_REQUEST_MAX, &req);
		if (res != HTTP_NEED_MORE) {
			answer(s, c, res, &req, now);
			return;
		}
	}
}

static void accept_conns(struct server *s, uint64_t now)
{
	struct admin *a = s->admin;

	for (int i = 0; i < TS_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		int fd = listener_accept(s, &a->l, now, &ss);
		struct admin_conn *c;
		char addr[64];

		if (fd < 0) {
			return;
		}
		net_addr_str((const struct sockaddr *)&ss, addr, sizeof(addr));
		if (a->n_conns >= TS_ADMIN_CONNS) {
			log_debug("admin connection refused addr=%s reason=\"%d connections open\"", addr,
				  TS_ADMIN_CONNS);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c == NULL || pollset_add(&s->ps, fd, POLLIN, c) != 0) {
			log_error("out of memory accepting an admin connection addr=%s", addr);
			free(c);
			close(fd);
			return;
		}
		c->pl.owner = OWN_ADMIN_CONN;
		c->pl.slot = s->ps.n - 1;
		c->fd = fd;
		c->state = AC_READ;
		c->deadline = now + TS_ADMIN_TIMEOUT_MS;
		buf_init(&c->in, TS_ADMIN_REQUEST_MAX);
		memcpy(c->addr, addr, sizeof(addr));
		list_add_tail(&a->conns, &c->link);
		a->n_conns++;
	}
}

/* ---- the interface ---- */

int admin_open(struct server *s, char *err, size_t errlen)
{
	const struct sockaddr *sa = (const struct sockaddr *)&s->cfg.admin_addr;
	struct admin *a = calloc(1, sizeof(*a));
	char why[64];

	if (a == NULL) {
		fmt_snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->l.pl.owner = OWN_ADMIN;
	a->l.what = "admin";
	list_init(&a->conns);
	fmt_snprintf(a->where, sizeof(a->where), "%s", s->cfg.admin);
	a->l.fd = net_listen(sa, s->cfg.admin_len, SOCK_STREAM);
	if (a->l.fd < 0) {
		fmt_snprintf(err, errlen, "--admin %s: %s", s->cfg.admin,
			     net_reason(errno, why, sizeof(why)));
		free(a);
		return -1;
	}
	if (pollset_add(&s->ps, a->l.fd, POLLIN, &a->l.pl) != 0) {
		fmt_snprintf(err, errlen, "out of memory");
		close(a->l.fd);
		free(a);
		return -1;
	}
	a->l.pl.slot = s->ps.n - 1;
	a->start_ms = process_start_ms();
	if (a->start_ms == 0) {
		a->start_ms = (uint64_t)s->started_at * 1000;
	}
	s->admin = a;
	log_info("admin endpoint listening on %s", a->where);
	if (!net_is_loopback(sa)) {
		log_warn("admin endpoint on a non-loopback address: anyone who reaches %s can read "
			 "the status",
			 a->where);
	}
	return 0;
}

void admin_on_events(struct server *s, void *owner, short revents, uint64_t now)
{
	struct pollable *o = owner;
	struct admin_conn *c;

	if (o->owner == OWN_ADMIN) {
		accept_conns(s, now);
		return;
	}
	c = (struct admin_conn *)o;
	switch (c->state) {
	case AC_READ:
		on_readable(s, c, now);
		break;
	case AC_WRITE:
		flush(s, c, now);
		break;
	case AC_LINGER:
		linger(s, c);
		break;
	case AC_DONE:
		break;
	}
}

void admin_timers(struct server *s, uint64_t now, uint64_t *next)
{
	struct admin *a = s->admin;

	listener_timers(s, &a->l, now, next);
	for (struct list *l = a->conns.next; l != &a->conns; l = l->next) {
		struct admin_conn *c = list_entry(l, struct admin_conn, link);

		if (c->state == AC_DONE) {
			continue;
		}
		if (now >= c->deadline) {
			finish(s, c, c->state == AC_READ    ? "no whole request in time"
				     : c->state == AC_WRITE ? "answer not taken in time"
							    : NULL);
		} else if (c->deadline < *next) {
			*next = c->deadline;
		}
	}
}

static void conn_free(struct server *s, struct admin_conn *c)
{
	server_drop_slot(s, c->pl.slot);
	close(c->fd);
	list_del(&c->link);
	if (c->state == AC_READ || c->state == AC_WRITE) {
		s->admin->n_conns--;
	}
	buf_free(&c->in);
	text_free(&c->out);
	free(c);
}

void admin_reap(struct server *s)
{
	struct admin *a = s->admin;

	for (struct list *l = a->conns.next; l != &a->conns;) {
		struct admin_conn *c = list_entry(l, struct admin_conn, link);

		l = l->next;
		if (c->state == AC_DONE) {
			conn_free(s, c);
		}
	}
}

void admin_close(struct server *s)
{
	struct admin *a = s->admin;

	for (struct list *l = list_first(&a->conns); l != NULL; l = list_first(&a->conns)) {
		conn_free(s, list_entry(l, struct admin_conn, link));
	}
	server_drop_slot(s, a->l.pl.slot);
	close(a->l.fd);
	free(a);
	s->admin = NULL;
}
