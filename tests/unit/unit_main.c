/* Runs every registered unit test; exit 0 only if all passed. */
#include <stdio.h>

#include "unit.h"

static struct unit_test *tests;
static int current_failed;

void unit_register(struct unit_test *t)
{
	t->next = tests;
	tests = t;
}

void unit_fail(const char *file, int line, const char *expr)
{
	fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, expr);
	current_failed = 1;
}

int main(void)
{
	int passed = 0;
	int failed = 0;

	for (struct unit_test *t = tests; t != NULL; t = t->next) {
		current_failed = 0;
		t->fn();
		if (current_failed) {
			fprintf(stderr, "FAILED %s\n", t->name);
			failed++;
		} else {
			passed++;
		}
	}
	printf("unit tests: %d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
