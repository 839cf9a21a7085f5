/*
 * fuzz_refpack.c: the cache's packing (controller/refpack.c). The input,
 * split at a point derived from its hash, is a reference and a text: the
 * text packs against the reference (and against none) within
 * ctl_refpack_bound and unpacks to itself; and the whole input, read as
 * code, unpacks against the reference or is refused, never reading or
 * writing out of bounds.
 */
#include "fuzz.h"

#include "refpack.h"

static void round_trip(const struct ctl_ref *ref, const char *text, size_t len)
{
	unsigned char *code = xmalloc(ctl_refpack_bound(len) ? ctl_refpack_bound(len) : 1);
	size_t n = ctl_refpack(code, ref, text, len);
	FUZZ_ASSERT(n <= ctl_refpack_bound(len));
	char *back = xmalloc(len ? len : 1);
	FUZZ_ASSERT(ctl_refunpack(back, len, ref, code, n) == 0);
	FUZZ_ASSERT(len == 0 || memcmp(back, text, len) == 0);
	free(back);
	free(code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fuzz_hash(data, size);
	size_t split = size ? (size_t)(h % (size + 1)) : 0;
	char *ref_text = fuzz_bytes(data, split), *text = fuzz_bytes(data + split, size - split);
	struct ctl_ref *ref = ctl_ref_new(ref_text, split);

	round_trip(ref, text, size - split);
	round_trip(ref, ref_text, split);
	round_trip(NULL, text, size - split);

	/* Any bytes as code, for an output of a length derived from them. */
	size_t out_len = (size_t)((h >> 32) % 4096);
	unsigned char *code = (unsigned char *)fuzz_bytes(data, size);
	char *out = xmalloc(out_len ? out_len : 1);
	int rc = ctl_refunpack(out, out_len, ref, code, size);
	FUZZ_ASSERT(rc == 0 || rc == -1);
	free(out);
	free(code);

	ctl_ref_retire(ref);
	round_trip(ref, text, size - split);
	ctl_ref_drop(ref);
	free(ref_text);
	free(text);
	return 0;
}
