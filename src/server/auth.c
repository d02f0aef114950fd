#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bounds.h"
#include "fmt.h"

struct token {
	char id[TS_AGENT_ID_MAX + 1]; /* "*" for any other id */
	char value[TC_TOKEN_MAX + 1];
};

struct auth {
	struct token *tokens;
	size_t n;
	char all[TC_TOKEN_MAX + 1]; /* --token, or "" */
};

#define TOKEN_FILE_MAX (1u << 20)

void auth_free(struct auth *a)
{
	if (a == NULL) {
		return;
	}
	if (a->tokens != NULL) {
		memset(a->tokens, 0, a->n * sizeof(*a->tokens));
		free(a->tokens);
	}
	memset(a, 0, sizeof(*a));
	free(a);
}

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

/* Parse the file's text (modified in place). */
static int parse(struct auth *a, char *text, const char *file, char *err, size_t errlen)
{
	unsigned line = 0;
	char *p = text;

	while (*p != '\0') {
		char *end = strchr(p, '\n');
		char *next = end != NULL ? end + 1 : p + strlen(p);

		line++;
		if (end != NULL) {
			*end = '\0';
		}
		while (is_space(*p)) {
			p++;
		}
		if (*p != '\0' && *p != '#') {
			char *id = p;
			while (*p != '\0' && !is_space(*p)) {
				p++;
			}
			size_t idlen = (size_t)(p - id);
			while (is_space(*p)) {
				p++;
			}
			char *tok = p;
			while (*p != '\0' && !is_space(*p)) {
				p++;
			}
			size_t toklen = (size_t)(p - tok);
			while (is_space(*p)) {
				p++;
			}
			if (idlen == 0 || idlen > TS_AGENT_ID_MAX || toklen == 0 ||
			    toklen > TC_TOKEN_MAX || (*p != '\0' && *p != '#')) {
				fmt_snprintf(err, errlen, "--token-file %s:%u: expected \"AGENT_ID TOKEN\" "
							  "(id up to %d bytes, token 1 to %d bytes)",
					     file, line, TS_AGENT_ID_MAX, TC_TOKEN_MAX);
				return -1;
			}
			if (a->n == TS_TOKENS_MAX) {
				fmt_snprintf(err, errlen, "--token-file %s: more than %d tokens", file,
					     TS_TOKENS_MAX);
				return -1;
			}
			struct token *t = &a->tokens[a->n++];
			memcpy(t->id, id, idlen);
			memcpy(t->value, tok, toklen);
		}
		p = next;
	}
	return 0;
}

static int load_file(struct auth *a, const char *file, char *err, size_t errlen)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	char *text;
	size_t len = 0;
	int rc;

	if (fd < 0) {
		fmt_snprintf(err, errlen, "--token-file %s: %s", file, strerror(errno));
		return -1;
	}
	text = malloc(TOKEN_FILE_MAX + 1);
	a->tokens = calloc(TS_TOKENS_MAX, sizeof(*a->tokens));
	if (text == NULL || a->tokens == NULL) {
		fmt_snprintf(err, errlen, "out of memory");
		free(text);
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, text + len, TOKEN_FILE_MAX - len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			rc = n < 0 ? -1 : 0;
			if (rc < 0) {
				fmt_snprintf(err, errlen, "--token-file %s: %s", file, strerror(errno));
			}
			break;
		}
		len += (size_t)n;
		if (len == TOKEN_FILE_MAX) {
			fmt_snprintf(err, errlen, "--token-file %s: larger than %u bytes", file,
				     TOKEN_FILE_MAX);
			rc = -1;
			break;
		}
	}
	close(fd);
	if (rc == 0) {
		text[len] = '\0';
		rc = parse(a, text, file, err, errlen);
	}
	memset(text, 0, len);
	free(text);
	return rc;
}

int auth_load(struct auth **out, const char *token, const char *file, char *err, size_t errlen)
{
	struct auth *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (a == NULL) {
		fmt_snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (token != NULL) {
		if (strlen(token) > TC_TOKEN_MAX) {
			fmt_snprintf(err, errlen, "--token: longer than %d bytes", TC_TOKEN_MAX);
			auth_free(a);
			return -1;
		}
		memcpy(a->all, token, strlen(token) + 1);
	}
	if (file != NULL && load_file(a, file, err, errlen) != 0) {
		auth_free(a);
		return -1;
	}
	if (file != NULL && a->n == 0) {
		/* An empty file must not read as "no auth". */
		fmt_snprintf(err, errlen, "--token-file %s: no tokens in it (one \"AGENT_ID TOKEN\" "
					  "per line)", file);
		auth_free(a);
		return -1;
	}
	*out = a;
	return 0;
}

int auth_required(const struct auth *a)
{
	return a->all[0] != '\0' || a->n > 0;
}

/* Equal, in time that depends on the lengths only. */
static int same(const char *a, size_t alen, const char *b, size_t blen)
{
	uint8_t diff = (uint8_t)(alen != blen);
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++) {
		diff |= (uint8_t)(a[i] ^ b[i]);
	}
	return diff == 0;
}

int auth_check(const struct auth *a, const char *agent_id, const char *authorization)
{
	const char *want = NULL;
	const char *given = authorization;

	if (!auth_required(a)) {
		return 1;
	}
	for (size_t i = 0; i < a->n && want == NULL; i++) {
		if (strcmp(a->tokens[i].id, agent_id) == 0) {
			want = a->tokens[i].value;
		}
	}
	for (size_t i = 0; i < a->n && want == NULL; i++) {
		if (strcmp(a->tokens[i].id, "*") == 0) {
			want = a->tokens[i].value;
		}
	}
	if (want == NULL && a->all[0] != '\0') {
		want = a->all;
	}
	if (want == NULL) {
		return 0; /* tokens exist, none for this id */
	}
	if (strncmp(given, "Bearer ", 7) != 0) {
		return 0;
	}
	given += 7;
	return same(given, strlen(given), want, strlen(want));
}
