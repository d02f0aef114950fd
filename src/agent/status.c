#include "status.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "fmt.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "proc.h"
#include "session.h"
#include "stats.h"

static const struct httpx_limits limits = {
	"status", TC_STATUS_REQUEST_MAX, TC_STATUS_RESPONSE_MAX, TC_STATUS_TIMEOUT_MS,
	TC_STATUS_LINGER_MS,
};

int status_init(struct status *st, const struct session_env *env, const struct conn_table *conns,
		struct pollset *ps)
{
	memset(st, 0, sizeof(*st));
	st->env = env;
	st->conns = conns;
	st->ps = ps;
	st->on = env->cfg->status_port != 0;
	st->first_slot = ps->n;
	for (size_t i = 0; st->on && i < TC_STATUS_CONNS; i++) {
		if (pollset_add(ps, -1, 0, NULL) != 0) {
			return -1;
		}
	}
	return 0;
}

/* ---- the answers ---- */

static uint64_t uptime_s(const struct stats *n)
{
	return (net_now_ms() - n->start_ms) / 1000;
}

/* A number, or null when unknown. */
static void json_num(struct text *t, const char *key, int known, uint64_t v)
{
	if (known) {
		text_fmt(t, ",\"%s\":%llu", key, (unsigned long long)v);
	} else {
		text_fmt(t, ",\"%s\":null", key);
	}
}

/* Hundredths as a decimal: 1234 -> 12.34 */
static void json_cents(struct text *t, uint64_t v)
{
	text_fmt(t, "%llu.%02u", (unsigned long long)(v / 100), (unsigned)(v % 100));
}

struct listing {
	struct text *t;
	uint64_t now;
	size_t n;
};

static int list_conn(void *ctx, const struct conn *c)
{
	struct listing *l = ctx;

	if (l->n == TC_STATUS_LIST_MAX) {
		return 1;
	}
	text_fmt(l->t,
		 "%s{\"id\":%u,\"proto\":\"%s\",\"port\":%u,\"state\":\"%s\",\"age_s\":%llu,"
		 "\"bytes_in\":%llu,\"bytes_out\":%llu,\"queued\":%llu}",
		 l->n > 0 ? "," : "", (unsigned)c->node.id, c->proto == TUNNEL_UDP ? "udp" : "tcp",
		 (unsigned)c->port, conn_state_name(c),
		 (unsigned long long)((l->now - c->created_ms) / 1000),
		 (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
		 (unsigned long long)c->q.bytes);
	l->n++;
	return 0;
}

static void system_json(struct text *t)
{
	struct proc_stat ps;
	struct statvfs vfs;
	uint64_t total = 0;
	uint64_t avail = 0;
	uint64_t load[3];
	int have_ps = proc_stat(&ps) == 0;
	int have_mem = proc_meminfo(&total, &avail) == 0;
	int have_vfs = statvfs("/", &vfs) == 0;

	text_str(t, ",\"system\":{\"rss_kb\":");
	if (have_ps && ps.rss_pages > 0) { /* 0: emulated (qemu-user fakes the file) */
		text_fmt(t, "%llu", (unsigned long long)(ps.rss_pages * (uint64_t)getpagesize() / 1024));
	} else {
		text_str(t, "null");
	}
	json_num(t, "mem_total_kb", have_mem, total);
	json_num(t, "mem_available_kb", have_mem, avail);
	text_str(t, ",\"load\":");
	if (proc_loadavg(load) == 0) {
		for (int i = 0; i < 3; i++) {
			text_str(t, i == 0 ? "[" : ",");
			json_cents(t, load[i]);
		}
		text_str(t, "]");
	} else {
		text_str(t, "null");
	}
	json_num(t, "disk_free_kb", have_vfs,
		 have_vfs ? (uint64_t)vfs.f_bavail * vfs.f_frsize / 1024 : 0);
	text_str(t, ",\"cpu_user_s\":");
	if (have_ps) {
		json_cents(t, ps.user_ticks * 100 / PROC_HZ);
		text_str(t, ",\"cpu_system_s\":");
		json_cents(t, ps.system_ticks * 100 / PROC_HZ);
	} else {
		text_str(t, "null,\"cpu_system_s\":null");
	}
	text_str(t, "}");
}

static void status_json(const struct status *st, struct text *t)
{
	const struct stats *n = st->env->stats;
	struct listing l = {t, net_now_ms(), 0};
	char since[32];

	text_str(t, "{\"version\":");
	text_json(t, TC_VERSION, 0);
	text_str(t, ",\"target\":");
	text_json(t, TC_TARGET, 0);
	text_fmt(t, ",\"pid\":%ld,\"uptime_s\":%llu,\"session\":{\"state\":", (long)getpid(),
		 (unsigned long long)uptime_s(n));
	text_json(t, n->state, 0);
	text_str(t, ",\"runner_url\":");
	text_json(t, st->env->shown_url, 0);
	text_str(t, ",\"container_id\":");
	text_json(t, st->env->cfg->container_id, 0);
	text_str(t, ",\"connected_since\":");
	if (n->connected_since > 0) {
		fmt_utc(since, sizeof(since), n->connected_since * 1000, 0);
		text_json(t, since, 0);
	} else {
		text_str(t, "null");
	}
	text_fmt(t, ",\"reconnects\":%llu,\"last_error\":",
		 (unsigned long long)(n->dials > 0 ? n->dials - 1 : 0));
	text_json(t, n->last_error, 1);
	text_fmt(t,
		 "},\"counters\":{\"bytes_to_runner\":%llu,\"bytes_from_runner\":%llu,"
		 "\"connections_opened\":%llu,\"connections_refused\":%llu,"
		 "\"connections_errored\":%llu,\"messages_dropped\":%llu},\"connections\":[",
		 (unsigned long long)n->bytes_to_runner, (unsigned long long)n->bytes_from_runner,
		 (unsigned long long)n->conns_opened, (unsigned long long)n->conns_refused,
		 (unsigned long long)n->conns_errored, (unsigned long long)n->msgs_dropped);
	conn_each(st->conns, list_conn, &l);
	text_fmt(t, "],\"connections_live\":%zu,\"truncated\":%s", conn_count(st->conns),
		 l.n < conn_count(st->conns) ? "true" : "false");
	system_json(t);
	text_str(t, "}\n");
}

static void status_metrics(const struct status *st, struct text *t)
{
	const struct stats *n = st->env->stats;
	static const char *const conns = "tunnel_client_connections";
	static const char *const bytes = "tunnel_client_bytes_total";

	metrics_head(t, "tunnel_client_session_up", "gauge", "1 while the tunnel is open.");
	metrics_sample(t, "tunnel_client_session_up", strcmp(n->state, "open") == 0);
	metrics_head(t, conns, "gauge", "Live connections by protocol.");
	metrics_sample1(t, conns, "proto", "tcp", conn_count(st->conns) - st->conns->udp);
	metrics_sample1(t, conns, "proto", "udp", st->conns->udp);
	metrics_head(t, bytes, "counter", "Payload bytes carried, by direction.");
	metrics_sample1(t, bytes, "direction", "to_runner", n->bytes_to_runner);
	metrics_sample1(t, bytes, "direction", "from_runner", n->bytes_from_runner);
	metrics_head(t, "tunnel_client_reconnects_total", "counter",
		     "Dials to the runner after the first.");
	metrics_sample(t, "tunnel_client_reconnects_total", n->dials > 0 ? n->dials - 1 : 0);
	metrics_head(t, "tunnel_client_connections_opened_total", "counter",
		     "Connections opened (CONNECTED sent).");
	metrics_sample(t, "tunnel_client_connections_opened_total", n->conns_opened);
	metrics_head(t, "tunnel_client_connections_refused_total", "counter",
		     "CONNECTs refused (allow list, limits).");
	metrics_sample(t, "tunnel_client_connections_refused_total", n->conns_refused);
	metrics_head(t, "tunnel_client_connections_errored_total", "counter",
		     "Connections that failed (connect error, timeout, stall).");
	metrics_sample(t, "tunnel_client_connections_errored_total", n->conns_errored);
	metrics_head(t, "tunnel_client_messages_dropped_total", "counter",
		     "Runner messages that could not be used.");
	metrics_sample(t, "tunnel_client_messages_dropped_total", n->msgs_dropped);
	metrics_build_info(t, "tunnel_client");
	metrics_process(t, n->start_unix_ms);
}

static void log_piece(void *ctx, const char *p, size_t n)
{
	text_add(ctx, p, n);
}

static void route(void *ctx, const char *path, size_t n, struct text *t, struct httpx_answer *a)
{
	const struct status *st = ctx;

	if (n == 8 && memcmp(path, "/healthz", 8) == 0) {
		text_str(t, "ok\n");
	} else if (n == 6 && memcmp(path, "/ready", 6) == 0) {
		int open = strcmp(st->env->stats->state, "open") == 0;
		text_str(t, open ? "ready\n" : "not ready\n");
		a->status = open ? 200 : 503;
	} else if (n == 7 && memcmp(path, "/status", 7) == 0) {
		a->type = "application/json";
		status_json(st, t);
	} else if (n == 8 && memcmp(path, "/metrics", 8) == 0) {
		a->type = "text/plain; version=0.0.4; charset=utf-8";
		status_metrics(st, t);
	} else if (n == 5 && memcmp(path, "/logs", 5) == 0) {
		log_ring_read(log_piece, t);
	} else {
		a->status = 404;
	}
}

/* ---- the exchanges ---- */

int status_open(void *ctx, uint64_t now)
{
	struct status *st = ctx;
	int sv[2];

	for (size_t i = 0; i < TC_STATUS_CONNS; i++) {
		if (st->used[i]) {
			continue;
		}
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
			return -1;
		}
		httpx_open(&st->x[i], sv[0], "tunnel", &limits, now);
		st->used[i] = 1;
		st->ps->pfd[st->first_slot + i].fd = sv[0];
		pollset_set(st->ps, st->first_slot + i, httpx_events(&st->x[i]));
		return sv[1];
	}
	log_info("status connection refused reason=\"%d exchanges busy\"", TC_STATUS_CONNS);
	errno = ECONNREFUSED;
	return -1;
}

static void step(struct status *st, size_t i, uint64_t now)
{
	size_t slot = st->first_slot + i;

	httpx_step(&st->x[i], now, route, st);
	if (st->x[i].state == HX_DONE) {
		httpx_free(&st->x[i]);
		st->used[i] = 0;
		st->ps->pfd[slot].fd = -1;
		pollset_set(st->ps, slot, 0);
		return;
	}
	pollset_set(st->ps, slot, httpx_events(&st->x[i]));
}

size_t status_poll_done(struct status *st, uint64_t now)
{
	size_t seen = 0;

	for (size_t i = 0; st->on && i < TC_STATUS_CONNS; i++) {
		struct pollfd *p = &st->ps->pfd[st->first_slot + i];
		if (p->revents != 0) {
			p->revents = 0;
			seen++;
			if (st->used[i]) {
				step(st, i, now);
			}
		}
	}
	return seen;
}

void status_timers(struct status *st, uint64_t now, uint64_t *next)
{
	for (size_t i = 0; st->on && i < TC_STATUS_CONNS; i++) {
		if (!st->used[i]) {
			continue;
		}
		if (now >= st->x[i].deadline) {
			step(st, i, now);
		}
		if (st->used[i] && st->x[i].deadline < *next) {
			*next = st->x[i].deadline;
		}
	}
}

void status_free(struct status *st)
{
	for (size_t i = 0; i < TC_STATUS_CONNS; i++) {
		if (st->used[i]) {
			httpx_free(&st->x[i]);
			st->used[i] = 0;
		}
	}
}

/* ---- SIGUSR1 ---- */

static int log_conn(void *ctx, const struct conn *c)
{
	const uint64_t *now = ctx;

	log_info("status conn id=%u proto=%s port=%u state=%s age_s=%llu bytes_in=%llu "
		 "bytes_out=%llu queued=%zu",
		 (unsigned)c->node.id, c->proto == TUNNEL_UDP ? "udp" : "tcp", (unsigned)c->port,
		 conn_state_name(c), (unsigned long long)((*now - c->created_ms) / 1000),
		 (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out, c->q.bytes);
	return 0;
}

void status_log(const struct session_env *env, const struct conn_table *conns)
{
	const struct stats *n = env->stats;
	uint64_t now = net_now_ms();

	log_info("status state=%s url=%s container=%s uptime_s=%llu reconnects=%llu "
		 "connections=%zu bytes_to_runner=%llu bytes_from_runner=%llu opened=%llu "
		 "refused=%llu errored=%llu dropped=%llu",
		 n->state, env->shown_url, env->cfg->container_id, (unsigned long long)uptime_s(n),
		 (unsigned long long)(n->dials > 0 ? n->dials - 1 : 0),
		 conns != NULL ? conn_count(conns) : 0, (unsigned long long)n->bytes_to_runner,
		 (unsigned long long)n->bytes_from_runner, (unsigned long long)n->conns_opened,
		 (unsigned long long)n->conns_refused, (unsigned long long)n->conns_errored,
		 (unsigned long long)n->msgs_dropped);
	if (conns != NULL) {
		conn_each(conns, log_conn, &now);
	}
}
