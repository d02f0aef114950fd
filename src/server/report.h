/* report: what tunnel-server shows about itself, as JSON (/status),
 * Prometheus text (/metrics) and an HTML page (/), appended to a text.
 * Values that come from peers (agent ids, user agents) are escaped for
 * each format; tokens are never shown. */
#ifndef REPORT_H
#define REPORT_H

struct server;
struct text;

void report_status(struct server *s, struct text *t);
void report_metrics(struct server *s, struct text *t);
void report_page(struct server *s, struct text *t);

#endif
