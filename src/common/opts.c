#include "opts.h"

#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "log.h"
#include "num.h"

int opts_apply(const struct opt *o, void *cfg, const char *v, const char *from, char *err,
	       size_t errlen)
{
	char *field = (char *)cfg + o->offset;
	uint64_t n;

	switch (o->kind) {
	case OPT_STR:
		if (v[0] == '\0') {
			fmt_snprintf(err, errlen, "%s: empty value", from);
			return -1;
		}
		memcpy(field, &v, sizeof(v));
		return 0;
	case OPT_SECONDS:
		if (num_parse_seconds(v, o->max, &n) != 0 || n < o->min) {
			fmt_snprintf(err, errlen, "%s: '%s' is not a number of seconds (e.g. 5 or 0.5)", from, v);
			return -1;
		}
		memcpy(field, &n, sizeof(n));
		return 0;
	case OPT_COUNT:
		if (num_parse_u64(v, o->min, o->max, &n) != 0) {
			fmt_snprintf(err, errlen, "%s: '%s' is not a whole number from %llu to %llu", from, v,
				     (unsigned long long)o->min, (unsigned long long)o->max);
			return -1;
		}
		memcpy(field, &n, sizeof(n));
		return 0;
	case OPT_LEVEL: {
		enum log_level level;
		if (log_level_parse(v, &level) != 0) {
			fmt_snprintf(err, errlen, "%s: '%s' is not one of trace, debug, info, warn, error", from, v);
			return -1;
		}
		memcpy(field, &level, sizeof(level));
		return 0;
	}
	case OPT_FLAG:
		if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0) {
			n = 1;
		} else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0 || v[0] == '\0') {
			n = 0;
		} else {
			fmt_snprintf(err, errlen, "%s: '%s' is not a boolean (1/0, true/false)", from, v);
			return -1;
		}
		memcpy(field, &n, sizeof(n));
		return 0;
	case OPT_LIST:
		if (v[0] == '\0') {
			fmt_snprintf(err, errlen, "%s: empty value", from);
			return -1;
		}
		return o->add(cfg, v, from, err, errlen);
	}
	return -1;
}

const struct opt *opts_find(const struct opt *t, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		if (strlen(t[i].longname) == len && strncmp(t[i].longname, name, len) == 0) {
			return &t[i];
		}
	}
	return NULL;
}

static const struct opt *find_short(const struct opt *t, size_t n, char ch)
{
	for (size_t i = 0; i < n; i++) {
		if (ch != 0 && t[i].shortname == ch) {
			return &t[i];
		}
	}
	return NULL;
}

enum opts_result opts_parse(const struct opt *t, size_t n, void *cfg, int argc, char **argv,
			    char *err, size_t errlen)
{
	char from[64];

	for (size_t i = 0; i < n; i++) {
		const char *v = t[i].env != NULL ? getenv(t[i].env) : NULL;
		if (v != NULL && (v[0] != '\0' || t[i].kind == OPT_FLAG)) {
			fmt_snprintf(from, sizeof(from), "$%s", t[i].env);
			if (opts_apply(&t[i], cfg, v, from, err, errlen) != 0) {
				return OPTS_ERROR;
			}
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct opt *o = NULL;
		const char *v = NULL;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			return OPTS_HELP;
		}
		if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			return OPTS_VERSION;
		}
		if (strncmp(a, "--", 2) == 0) {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq != NULL ? (size_t)(eq - a - 2) : strlen(a + 2);
			o = opts_find(t, n, a + 2, len);
			if (o != NULL && eq != NULL) {
				v = eq + 1;
			}
		} else if (a[0] == '-' && a[1] != '\0') {
			o = find_short(t, n, a[1]);
			if (o != NULL && a[2] != '\0') {
				v = a[2] == '=' ? a + 3 : a + 2;
			}
		}
		if (o == NULL) {
			fmt_snprintf(err, errlen, "unknown option '%s' (see --help)", a);
			return OPTS_ERROR;
		}
		fmt_snprintf(from, sizeof(from), "--%s", o->longname);
		if (v == NULL && o->kind == OPT_FLAG) {
			v = "1";
		}
		if (v == NULL) {
			if (i + 1 >= argc) {
				fmt_snprintf(err, errlen, "%s: missing value", from);
				return OPTS_ERROR;
			}
			v = argv[++i];
		}
		if (opts_apply(o, cfg, v, from, err, errlen) != 0) {
			return OPTS_ERROR;
		}
	}
	return OPTS_RUN;
}

void opts_usage(const struct opt *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char name[48];
		const struct opt *o = &t[i];
		if (o->shortname != 0) {
			fmt_snprintf(name, sizeof(name), "-%c, --%s", o->shortname, o->longname);
		} else {
			fmt_snprintf(name, sizeof(name), "    --%s", o->longname);
		}
		if (o->env != NULL) {
			fmt_print(1, "  %-26s %s\n  %-26s   env %s\n", name, o->help, "", o->env);
		} else {
			fmt_print(1, "  %-26s %s\n", name, o->help);
		}
	}
	fmt_print(1, "  %-26s %s\n  %-26s %s\n", "-h, --help", "this text", "-V, --version",
		  "print the version and exit");
}
