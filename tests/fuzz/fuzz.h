/*
 * fuzz.h: what every libFuzzer target here shares: the entry point's
 * prototype (warnings are errors, -Wmissing-prototypes included), exact-size
 * copies of the input so AddressSanitizer sees a read one byte past the end,
 * a hash of the input to derive parameters (split points, statuses) without
 * consuming bytes, so that a seed file is exactly the data it stands for,
 * and FUZZ_ASSERT for the properties a target checks beyond "no crash".
 */
#ifndef ACRPOOL_FUZZ_H
#define ACRPOOL_FUZZ_H

#include "xalloc.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* A heap copy of exactly size bytes (no terminator): reading past the end
 * is an ASan report, not a silent read of a NUL. */
static inline char *fuzz_bytes(const uint8_t *data, size_t size)
{
	char *p = xmalloc(size ? size : 1);
	if (size)
		memcpy(p, data, size);
	return p;
}

/* A NUL-terminated heap copy in a buffer of exactly strlen + 1 bytes (the
 * input is cut at its first NUL, as a C string from a JSON value would be). */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t n = nul ? (size_t)(nul - data) : size;
	char *s = xmalloc(n + 1);
	if (n)
		memcpy(s, data, n);
	s[n] = '\0';
	return s;
}

/* FNV-1a over the input: a stable source of parameters. */
static inline uint64_t fuzz_hash(const uint8_t *data, size_t size)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 0x100000001b3ull;
	return h;
}

#endif
