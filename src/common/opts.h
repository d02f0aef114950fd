/* opts: command-line options from a table, shared by both programs. Each
 * option has a long name (and maybe a short one), an environment variable,
 * a kind and the offset of its field in the program's config struct. The
 * environment is read first, then argv: a flag beats its environment
 * variable. Messages name the exact option and value ("--max-udp: 'x' is
 * not a whole number from 1 to 65536"). Strings point into argv, environ
 * or memory the caller keeps (they are not copied). */
#ifndef OPTS_H
#define OPTS_H

#include <stddef.h>
#include <stdint.h>

enum opt_kind {
	OPT_STR,     /* const char *, non-empty */
	OPT_SECONDS, /* uint64_t milliseconds from "5" or "0.25", min..max ms */
	OPT_COUNT,   /* uint64_t, min..max */
	OPT_LEVEL,   /* enum log_level from "trace".."error" */
	OPT_FLAG,    /* uint64_t 0/1; a bare flag is 1; "1/0, true/false, yes/no" */
	OPT_LIST,    /* repeatable: add() takes each value (one from the
		      * environment, from starting with '$', may hold several) */
};

struct opt {
	char shortname;
	const char *longname;
	const char *env;
	enum opt_kind kind;
	size_t offset; /* of the field in the config struct */
	uint64_t min;  /* counts and seconds (ms) */
	uint64_t max;
	const char *help;
	/* OPT_LIST: take v (from as in opts_apply). 0, or -1 with err. */
	int (*add)(void *cfg, const char *v, const char *from, char *err, size_t errlen);
};

enum opts_result { OPTS_RUN, OPTS_HELP, OPTS_VERSION, OPTS_ERROR };

/* Store value v of option o in cfg; from ("--name", "$ENV", "file:3")
 * names where it came from in the error line. 0 or -1. */
int opts_apply(const struct opt *o, void *cfg, const char *v, const char *from, char *err,
	       size_t errlen);
/* The option with this long name (len bytes), or NULL. */
const struct opt *opts_find(const struct opt *t, size_t n, const char *name, size_t len);
/* The environment, then argv[1..]. -h/--help and -V/--version stop early. */
enum opts_result opts_parse(const struct opt *t, size_t n, void *cfg, int argc, char **argv,
			    char *err, size_t errlen);
/* One "  --name VALUE   help / env VAR" entry per option on stdout. */
void opts_usage(const struct opt *t, size_t n);

#endif
