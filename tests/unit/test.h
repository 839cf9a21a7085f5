/*
 * test.h: the unit test harness. Each test file defines cases with TEST()
 * and lists them in TEST_MAIN(); CMake finds the TEST() names and registers
 * each case with CTest on its own, so `ctest -R queue_dedup` runs just one.
 * A failed CHECK prints file:line and the expression, and the case fails.
 */
#ifndef ACRPOOL_TEST_H
#define ACRPOOL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;

#define TEST(name) static void name(void)

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		test_failures++; \
	} \
} while (0)

#define CHECK_INT(a, b) do { \
	long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ != b_) { \
		fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", \
			__FILE__, __LINE__, #a, a_, #b, b_); \
		test_failures++; \
	} \
} while (0)

#define CHECK_STR(a, b) do { \
	const char *a_ = (a), *b_ = (b); \
	if (!a_ || !b_ || strcmp(a_, b_) != 0) { \
		fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", \
			__FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
		test_failures++; \
	} \
} while (0)

struct test_case {
	const char *name;
	void (*fn)(void);
};

#define T(name) {#name, name}
#define TEST_MAIN(...) \
	int main(int argc, char **argv) { \
		static const struct test_case cases[] = {__VA_ARGS__}; \
		size_t n = sizeof(cases) / sizeof(cases[0]), ran = 0; \
		for (size_t i = 0; i < n; i++) { \
			if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) \
				continue; \
			int before = test_failures; \
			cases[i].fn(); \
			ran++; \
			fprintf(stderr, "%s %s\n", test_failures == before ? "ok  " : "FAIL", cases[i].name); \
		} \
		if (ran == 0) { \
			fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "(any)"); \
			return 2; \
		} \
		return test_failures ? 1 : 0; \
	}

#endif
