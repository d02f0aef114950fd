/* libFuzzer target: tunnel-server's token file (src/server/auth.c,
 * --token-file) and the check of an agent's Authorization against it.
 *
 * Input: the file.
 *
 * Checked besides the sanitizers: an error is one terminated line; a file that loads agrees with a plain reading of
 * it: for each id named (and one that is not), "Bearer TOKEN" passes
 * exactly for the token of the id's first line, else of the first '*'
 * line, and a changed token never passes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "bounds.h"
#include "fz_file.h"
#include "fz_frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LINES_MAX 64

struct line {
	char id[TS_AGENT_ID_MAX + 1];
	char tok[TC_TOKEN_MAX + 1];
};

static int sp(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The plain reading: up to LINES_MAX "ID TOKEN" lines; -1 if a line is
 * not one (as auth.c says), -2 if there are more than we follow. */
static int plain(const uint8_t *p, size_t n, struct line *out, size_t *count)
{
	size_t i = 0;

	*count = 0;
	while (i < n) {
		size_t e = i;
		while (e < n && p[e] != '\n') {
			e++;
		}
		size_t a = i;
		while (a < e && sp((char)p[a])) {
			a++;
		}
		if (a < e && p[a] != '#') {
			size_t ie = a;
			while (ie < e && !sp((char)p[ie])) {
				ie++;
			}
			size_t t = ie;
			while (t < e && sp((char)p[t])) {
				t++;
			}
			size_t te = t;
			while (te < e && !sp((char)p[te])) {
				te++;
			}
			size_t r = te;
			while (r < e && sp((char)p[r])) {
				r++;
			}
			if (ie == a || ie - a > TS_AGENT_ID_MAX || te == t || te - t > TC_TOKEN_MAX ||
			    (r < e && p[r] != '#')) {
				return -1;
			}
			if (*count == LINES_MAX) {
				return -2;
			}
			memcpy(out[*count].id, p + a, ie - a);
			out[*count].id[ie - a] = '\0';
			memcpy(out[*count].tok, p + t, te - t);
			out[*count].tok[te - t] = '\0';
			(*count)++;
		}
		i = e + 1;
	}
	return 0;
}

static const char *want_for(const struct line *l, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(l[i].id, id) == 0) {
			return l[i].tok;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(l[i].id, "*") == 0) {
			return l[i].tok;
		}
	}
	return NULL;
}

static void check(const struct auth *a, const struct line *l, size_t n, const char *id)
{
	char hdr[TC_TOKEN_MAX + 16];
	const char *want = want_for(l, n, id);

	if (want == NULL) {
		if (auth_check(a, id, "Bearer x") || auth_check(a, id, "")) {
			fz_fail("auth_check: an id without a token passes");
		}
		return;
	}
	snprintf(hdr, sizeof(hdr), "Bearer %s", want);
	if (!auth_check(a, id, hdr)) {
		fz_fail("auth_check: the right token is refused");
	}
	hdr[strlen(hdr) - 1] ^= 1;
	if (auth_check(a, id, hdr)) {
		fz_fail("auth_check: a changed token passes");
	}
	snprintf(hdr, sizeof(hdr), "Bearer %sx", want);
	if (auth_check(a, id, hdr) || auth_check(a, id, want)) {
		fz_fail("auth_check: a longer token, or one without Bearer, passes");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct line lines[LINES_MAX];
	struct auth *a = NULL;
	char path[32];
	char err[300];
	size_t n = 0;

	fz_file(1, data, size, path);
	memset(err, 'Z', sizeof(err));
	int r = auth_load(&a, NULL, path, err, sizeof(err));
	/* A NUL ends auth.c's text early: then only the sanitizers judge. */
	int want = memchr(data, 0, size) != NULL ? -2 : plain(data, size, lines, &n);
	if (r != 0) {
		if (strnlen(err, sizeof(err)) == sizeof(err)) {
			fz_fail("auth_load: an error line not terminated");
		}
		if (want == 0 && n > 0) {
			fz_fail("auth_load: refused a file the plain reading accepts");
		}
		return 0;
	}
	if (want == -1 || (want == 0 && n == 0)) {
		fz_fail("auth_load: accepted a file the plain reading refuses");
	}
	if (want == 0) {
		for (size_t i = 0; i < n; i++) {
			check(a, lines, n, lines[i].id);
		}
		check(a, lines, n, "no-such-agent-id");
	}
	auth_free(a);
	return 0;
}
