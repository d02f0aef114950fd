/* Minimal unit-test harness: TEST() registers a function at start-up,
 * CHECK() records a failure with file and line and goes on. The runner
 * (unit_main.c) prints one line per failure and "N passed, M failed". */
#ifndef UNIT_H
#define UNIT_H

#include <stddef.h>
#include <string.h>

struct unit_test {
	const char *name;
	void (*fn)(void);
	struct unit_test *next;
};

void unit_register(struct unit_test *t);
void unit_fail(const char *file, int line, const char *expr);

#define TEST(name)                                                          \
	static void name(void);                                             \
	static struct unit_test name##_test = {#name, name, NULL};          \
	__attribute__((constructor)) static void name##_register(void)      \
	{                                                                   \
		unit_register(&name##_test);                                \
	}                                                                   \
	static void name(void)

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			unit_fail(__FILE__, __LINE__, #cond);               \
		}                                                           \
	} while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)
#define CHECK_STR(a, b) CHECK(strcmp((a), (b)) == 0)

#endif
